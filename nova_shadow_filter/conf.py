"""Options of the ``[shadow_weigher]`` group, read inside nova-scheduler.

Only oslo.config is imported here: this module is loaded by nova-scheduler.
"""

from oslo_config import cfg

#: Longest budget, in seconds, the shadow service takes
#: (``shadow_service.schema.BUDGET``): a longer one is refused.
MAX_BUDGET_S = 86400.0
#: Longest wait, in seconds, for what is not a budget (a look-up, the
#: round trip's margin): the conductor stops waiting for the scheduler
#: long before (``[DEFAULT] long_rpc_timeout``, 1800 s by default).
MAX_WAIT_S = 300.0

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
Multiplier for the shadow weight.

Each host's weight is 0..1: 1 for hosts within ``tie_margin`` points of the
best Performance Score, 0 for hosts ``score_range`` or more points behind,
linear in between, then pulled toward the neutral 0.5 by the host's
confidence. Nova's own weighers each span 0..1 across the candidates, so
with the default of 10.0 a clear ranking (a lead of ``tie_margin`` plus a
few points) outweighs the RAM, CPU, disk and I/O weighers at their default
multipliers of 1.0, while hosts the service ranks equally good are left to
them. A negative value prefers the hosts the service ranked worst (useful
only for experiments).

This option can be overridden per host aggregate with the aggregate metadata
key ``shadow_weight_multiplier`` (the lowest value when a host's aggregates
set several; a value that is not a finite number is ignored, with one
warning naming the aggregate). A request the weigher has no ranking for (no
hint, a rejection, an outage, observe mode) gets weight 0 for every host,
which no multiplier changes: Nova's own weighers decide.

Possible values:

* An integer or float value, where the value corresponds to the multiplier
  ratio for this weigher.

Related options:

* ``[filter_scheduler] weight_classes`` must include
  ``nova_shadow_filter.weigher.ShadowWeigher``.
* ``tie_margin``, ``score_range``, ``confidence_weighting``
"""),
    cfg.FloatOpt(
        'tie_margin',
        default=2.0,
        min=0.0,
        max=100.0,
        help="""
Score points within which hosts count as equally good: every host within
this margin of the best score gets the full weight, so Nova's other weighers
choose among them.

Related options:

* ``score_range``; the service's ``[analysis] tie_margin`` (the same idea
  in its confidence).
"""),
    cfg.FloatOpt(
        'score_range',
        default=12.0,
        min=0.1,
        max=100.0,
        help="""
Score points behind the best at which a host's weight reaches 0. Smaller
values make small score differences decide more strongly.

Related options:

* ``tie_margin`` (must be smaller)
"""),
    cfg.BoolOpt(
        'confidence_weighting',
        default=True,
        help="""
Pull each host's weight toward neutral by the complement of its confidence:
``0.5 + confidence x (weight - 0.5)``. A host the service could not measure
(confidence 0) is then neutral, and a ranking the service is unsure of moves
Nova's choice less.
"""),
    cfg.StrOpt(
        'mode',
        default='enforce',
        choices=[('enforce', 'apply the weights'),
                 ('observe', 'compute and log the weights at INFO, apply '
                  'neutral ones: a trial run next to Nova\'s own choice')],
        help="""
Whether the weigher applies its weights.

In ``observe`` mode the service still evaluates every hinted request and
records it (and, with its notification listener, where Nova placed the VM),
so an operator can compare nova-shadow's choices with Nova's before letting
it decide.
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
        max=MAX_BUDGET_S,
        help="""
Seconds the scheduler waits for a ranking when the request has a
``shadow_profile`` hint but no ``shadow_budget`` hint.

Possible values:

* 0.5 to 86400 (one day, the longest budget the shadow service takes).
  A value outside them disables the weigher until nova-scheduler is
  restarted with a valid one.

Related options:

* ``max_budget`` bounds both this value and the ``shadow_budget`` hint.
"""),
    cfg.FloatOpt(
        'max_budget',
        default=120.0,
        min=0.5,
        max=MAX_BUDGET_S,
        help="""
Most seconds a tenant's ``shadow_budget`` hint may make the scheduler wait.

Larger hints are clipped to this value (and logged). The conductor waits
for the scheduler's answer up to nova's ``[DEFAULT] long_rpc_timeout``
(1800 s by default); keep ``max_budget`` plus ``deadline_margin`` well
below it, and remember that every second here is a second the tenant's
boot waits.

Possible values:

* 0.5 to 86400 (one day, the longest budget the shadow service takes).
  A value outside them disables the weigher until nova-scheduler is
  restarted with a valid one.
"""),
    cfg.FloatOpt(
        'lookup_timeout',
        default=5.0,
        min=0.1,
        max=MAX_WAIT_S,
        help="""
Seconds the scheduler waits for the service to return a finished
pre-flight evaluation named by a ``shadow_evaluation`` hint.

Possible values:

* 0.1 to 300. A value outside them disables the weigher until
  nova-scheduler is restarted with a valid one.
"""),
    cfg.FloatOpt(
        'deadline_margin',
        default=2.0,
        min=0.0,
        max=MAX_WAIT_S,
        help="""
Seconds added to the budget for the round trip before the weigher gives up.

The weigher enforces its own deadline (budget + margin) around every call,
because a messaging call can block far longer than its timeout when the
broker is unreachable. After the deadline the weights are neutral.

Possible values:

* 0 to 300. A value outside them disables the weigher until nova-scheduler
  is restarted with a valid one.
"""),
    cfg.IntOpt(
        'failure_threshold',
        default=2,
        min=1,
        help="""
Outages within ``failure_window`` seconds after which the circuit breaker
opens.

An outage is a call that got no answer in time or could not reach the
broker. A service that answers, even with a rejection (an unknown profile,
an unknown evaluation, too busy), is up: such a request gets neutral
weights and nothing else changes. While the breaker is open the weigher
returns neutral weights at once and sends nothing, so a dead service costs a
scheduling request nothing.

Related options:

* ``failure_window``, ``reset_timeout``
"""),
    cfg.FloatOpt(
        'failure_window',
        default=300.0,
        min=1.0,
        help="""
Seconds over which outages are counted for ``failure_threshold``; older
ones are forgotten. Keep it longer than ``failure_threshold`` times
``max_budget`` plus ``deadline_margin``, since each outage lasts that long.
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
        'move_timeout',
        default=3.0,
        min=0.0,
        max=MAX_BUDGET_S,
        help="""
Seconds the scheduler waits for a ranking from history (no shadows) when
a VM that carries a ``shadow_profile`` hint is resized, cold or live
migrated, or unshelved. 0 sends nothing for moves. An evacuation or a
rebuild never waits.

Possible values:

* 0 to 86400 (one day: it is sent as the ranking's budget, and the shadow
  service takes none longer). A value outside them disables the weigher
  until nova-scheduler is restarted with a valid one.
"""),
    cfg.FloatOpt(
        'prior_cache_ttl',
        default=10.0,
        min=0.0,
        max=300.0,
        help="""
Seconds for which the weigher answers a request itself from the service's
last answer from history to a boot of the same workload (profile, flavor,
image, project, zone), without waiting for the service.

The service answers from its history prior, without shadows, when history
alone decides the ranking; it makes the same answer again while no new
sample arrives (its prior ages hosts' samples in 10-second steps). The
weigher keeps each host's score and confidence from such an answer with
the facts it sent for the host (vCPUs used, free RAM and disk, instances,
cost). Within this many seconds of the last answer from the service, a
request for the same workload whose candidates all have an entry is
answered from those entries: hosts whose facts are unchanged keep theirs,
and when a few hosts changed (at most a tenth of the candidates, for
example the host that took the previous VM) those are neutral for the
request and the service is asked about its whole candidate list again in
the background, from history alone (it scores each host relative to the
best of the list). An answer past half this time is renewed in the
background. A
candidate the answer did not hold, more changed hosts, or an older answer
make the weigher ask the service about every candidate, as without the
cache. A request the
weigher answered itself is still sent to the service, without waiting, so
it is recorded like any other. Answers that needed shadows are never
reused. The boot-or-move look-up runs after such an answer: a move or an
evacuation of a workload with a cached answer is weighed by it.

0 turns the cache off: every request waits for the service.
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
