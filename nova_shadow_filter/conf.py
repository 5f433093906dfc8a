"""Options of the ``[shadow_weigher]`` group, read inside nova-scheduler.

Only oslo.config is imported here: this module is loaded by nova-scheduler.
"""

from oslo_config import cfg

shadow_weigher_group = cfg.OptGroup(
    name='shadow_weigher',
    title='nova-shadow weigher options',
    help="""
Options for ``nova_shadow_filter.weigher.ShadowWeigher``, the weigher that asks
the shadow service to rank candidate hosts for requests carrying a
``shadow_profile`` or ``shadow_evaluation`` scheduler hint.
""")

shadow_weigher_opts = [
    cfg.FloatOpt(
        'weight_multiplier',
        default=10.0,
        help="""
Multiplier for the shadow Performance Score.

The score is 0-100 and is normalised to 0-1 before this multiplier applies,
so with the default of 10.0 a perfect score outweighs Nova's RAM and CPU
weighers at their default multiplier of 1.0. A negative value prefers the
hosts the service ranked worst (useful only for experiments).

This option can be overridden per host aggregate with the aggregate metadata
key ``shadow_weight_multiplier``.

Possible values:

* An integer or float value, where the value corresponds to the multiplier
  ratio for this weigher.

Related options:

* ``[filter_scheduler] weight_classes`` must include
  ``nova_shadow_filter.weigher.ShadowWeigher``.
"""),
    cfg.StrOpt(
        'transport_url',
        secret=True,
        help="""
Messaging transport URL of the broker where the shadow service listens.

Unset (the default) reuses nova-scheduler's own ``[DEFAULT] transport_url``.
Set it to reach a shadow service on a separate broker, for example
``rabbit://shadow:secret@broker2:5672/``.
"""),
    cfg.StrOpt(
        'topic',
        default='shadow',
        help="""
RPC topic on which the shadow service listens.

Related options:

* ``[shadow] topic`` of the shadow service must have the same value.
"""),
    cfg.FloatOpt(
        'default_budget',
        default=30.0,
        min=0.5,
        help="""
Seconds the scheduler waits for a ranking when the request has a
``shadow_profile`` hint but no ``shadow_budget`` hint.

Related options:

* ``max_budget`` bounds both this value and the ``shadow_budget`` hint.
"""),
    cfg.FloatOpt(
        'max_budget',
        default=120.0,
        min=0.5,
        help="""
Most seconds a tenant's ``shadow_budget`` hint may make the scheduler wait.

Larger hints are clipped to this value (and logged). The conductor waits
for the scheduler's answer up to nova's ``[DEFAULT] long_rpc_timeout``
(1800 s by default); keep ``max_budget`` plus ``deadline_margin`` well
below it, and remember that every second here is a second the tenant's
boot waits.
"""),
    cfg.FloatOpt(
        'lookup_timeout',
        default=5.0,
        min=0.1,
        help="""
Seconds the scheduler waits for the service to return a finished
pre-flight evaluation named by a ``shadow_evaluation`` hint.
"""),
    cfg.FloatOpt(
        'deadline_margin',
        default=2.0,
        min=0.0,
        help="""
Seconds added to the budget for the round trip before the weigher gives up.

The weigher enforces its own deadline (budget + margin) around every call,
because a messaging call can block far longer than its timeout when the
broker is unreachable. After the deadline the weights are neutral.
"""),
    cfg.IntOpt(
        'failure_threshold',
        default=1,
        min=1,
        help="""
Consecutive failed calls after which the circuit breaker opens.

While the breaker is open the weigher returns neutral weights at once and
sends nothing, so a dead service costs a scheduling request nothing.

Related options:

* ``reset_timeout``
"""),
    cfg.FloatOpt(
        'reset_timeout',
        default=30.0,
        min=0.0,
        help="""
Seconds the circuit breaker stays open before one trial call is let through.
A successful trial closes the breaker; a failed one opens it again.
"""),
    cfg.FloatOpt(
        'unscored_host_score',
        default=50.0,
        min=0.0,
        max=100.0,
        help="""
Score given to a host that the service's ranking does not mention (for
example a host added to the candidate list after a pre-flight evaluation).
"""),
]


def register_opts(conf):
    # A fresh group: register_group keeps a shallow copy of what it is
    # given, and a shared option table would leak overrides between
    # ConfigOpts objects.
    conf.register_group(cfg.OptGroup(name=shadow_weigher_group.name,
                                     title=shadow_weigher_group.title,
                                     help=shadow_weigher_group.help))
    conf.register_opts(shadow_weigher_opts, group=shadow_weigher_group.name)


def list_opts():
    return {shadow_weigher_group: shadow_weigher_opts}


def generator_opts():
    """Entry point for oslo-config-generator: ``[(group, opts)]``."""
    return list(list_opts().items())
