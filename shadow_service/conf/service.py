"""Options of the ``[shadow]`` group: the service and its evaluations."""

from oslo_config import cfg

from shadow_service.conf import utils as conf_utils

shadow_group = cfg.OptGroup(
    name='shadow',
    title='Shadow service options',
    help="""
Options for ``shadow-service``: where it listens, which cloud it boots
shadows on, and how hard it tries before answering the scheduler.
""")

shadow_opts = [
    cfg.StrOpt(
        'topic',
        default='shadow',
        help="""
RPC topic the service listens on.

Related options:

* ``[shadow_weigher] topic`` in nova.conf of nova-scheduler must match.
"""),
    cfg.StrOpt(
        'cloud_driver',
        default='sim',
        help="""
Cloud driver that boots and deletes shadows.

Possible values:

* ``sim``: the built-in digital twin (no cloud needed; the default).
* ``openstack``: a real cloud reached through openstacksdk.
* Any other plugin registered in the ``nova_shadow.clouds`` entry point
  namespace.
"""),
    cfg.FloatOpt(
        'confidence_target',
        default=0.8,
        min=0.0,
        max=1.0,
        help="""
Overall confidence at which an evaluation stops early.

An evaluation keeps its shadows running (and stops measuring clearly worse
hosts) until the ranking's confidence reaches this value or its budget is
spent.
"""),
    cfg.IntOpt(
        'max_shadow_hosts',
        default=8,
        min=1,
        help="""
Most candidate hosts that get a shadow in one evaluation.

When the scheduler offers more hosts, the ones the prior ranks best are
tested; the rest keep their prior score.
"""),
    cfg.FloatOpt(
        'sample_interval',
        default=1.0,
        min=0.05,
        help="""
Seconds between two reads of the shadows' measurements during an evaluation.
"""),
    cfg.FloatOpt(
        'min_run_time',
        default=2.0,
        min=0.0,
        help="""
Seconds the shadows run before any host may be dropped or the evaluation may
stop on confidence.
"""),
    cfg.FloatOpt(
        'max_budget',
        default=300.0,
        min=1.0,
        help="""
Most seconds one evaluation may run, whatever the caller asks for.
"""),
    cfg.FloatOpt(
        'shadow_scale',
        default=0.25,
        min=0.01,
        max=1.0,
        help="""
Share of the requested flavor a shadow gets (and of the profile's load it
runs). A 4 vCPU request with the default 0.25 gets a 1 vCPU shadow.
"""),
    cfg.IntOpt(
        'max_concurrent_evaluations',
        default=4,
        min=1,
        help="""
Evaluations that may run at the same time; further requests get a typed
``ServiceBusy`` error and the scheduler falls back to neutral weights.
"""),
    cfg.IntOpt(
        'evaluation_ttl',
        default=3600,
        min=60,
        help="""
Seconds a finished evaluation stays available for the
``shadow_evaluation`` scheduler hint.
"""),
    cfg.ListOpt(
        'profile_dirs',
        default=['/etc/nova-shadow/profiles'],
        help="""
Directories holding the operator's own workload profiles.

A ``shadow_profile=<name>`` hint that is not a built-in profile is looked up
as ``<dir>/<name>.yaml``, ``.yml`` or ``.json`` in these directories, in
order.  Names are letters, digits, ``_``, ``.`` and ``-`` only; tenants can
never make the service read any other file.
"""),
    cfg.FloatOpt(
        'prior_lookback',
        default=86400.0,
        min=0.0,
        help="""
Seconds of history an evaluation reads for its prior.

Shadow samples that earlier evaluations of the same profile left on the
candidate hosts within this window form the prior ranking (older samples
count for less).  When the prior covers every candidate with
``confidence_target``, no shadow is booted.  0 disables the prior: every
evaluation measures from scratch.

Related options:

* ``confidence_target``
"""),
    cfg.BoolOpt(
        'cleanup_on_start',
        default=True,
        help="""
Delete shadows left behind by an earlier run when the service starts.
"""),
]


def register_opts(conf):
    conf_utils.register_group_opts(conf, shadow_group, shadow_opts)


def list_opts():
    return {shadow_group: shadow_opts}
