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


def _refit_opts(prefix, model, cost):
    """The refit cadence options of one history learner:
    ``<prefix>_refit_every``, ``<prefix>_refit_interval`` and
    ``<prefix>_max_evaluations``.
    """
    return [
        cfg.IntOpt(
            '%s_refit_every' % prefix,
            default=10,
            min=1,
            help="""
Evaluations between two refits of %s.

The first evaluation after a start always fits.

Related options:

* ``%s_refit_interval``: both must have passed.
""" % (model, prefix)),
        cfg.FloatOpt(
            '%s_refit_interval' % prefix,
            default=60.0,
            min=0.0,
            help="""
Fewest seconds between two refits of %s.

Related options:

* ``%s_refit_every``: both must have passed.
""" % (model, prefix)),
        cfg.IntOpt(
            '%s_max_evaluations' % prefix,
            default=200,
            min=1,
            help="""
Newest evaluation records read per refit of %s; bounds the cost of a
refit (%s).
""" % (model, cost)),
    ]



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
        'first_sample_timeout',
        default=60.0,
        min=0.0,
        help="""
Seconds a shadow may stay without a single sample once it is up before the
evaluation deletes it and goes on without its host.

A shadow whose load generator never reports (it did not start in the
guest, or cannot reach the collector) would otherwise keep the ``racing``
and ``pool`` schedules from stopping until their budget is spent, every
other shadow running on meanwhile. Its host is left unmeasured ("its
shadow sent no sample within ...") and keeps its estimate from history
when it has one. A shadow that has reported once is never deleted this
way. The twin's shadows get at least two of its ``[sim]
sample_interval``.

Possible values:

* 0: wait for a shadow's first sample as long as the budget lasts.
* A positive number of seconds; keep it above the time your shadows take
  from being up (``ACTIVE``) to their first sample: the guest's boot, its
  user-data and the load generator's start. The default leaves a minute
  for that; with the weigher's default 30 s budget it never ends an
  evaluation early, only longer ones (pre-flight evaluations).
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
Requests asked of history only (RPC API 1.4: the weigher's refreshes and
records of the requests it answered from its cache) boot nothing and take
no slot.
"""),
    cfg.IntOpt(
        'evaluation_ttl',
        default=3600,
        min=60,
        help="""
Seconds a finished evaluation stays in the service's memory, where
``get_evaluation`` and the ``shadow_evaluation`` scheduler hint find it
without reading the history store.  At most the 1,024 most recent
finished evaluations (holding at most 32,768 candidate hosts in all) are
kept, whatever this says; an evaluation no longer in memory is read from
the history store, which keeps its record for ``[history]
record_retention_days``.
"""),
    cfg.FloatOpt(
        'unpolled_evaluation_timeout',
        default=60.0,
        min=0.0,
        help="""
Seconds an evaluation started with ``start_evaluation`` may go without its
caller polling it (``get_evaluation``) before it is cancelled, as
``cancel_evaluation`` would (it stops and deletes its shadows) and logged:
its caller died or gave up, and it would otherwise hold one of
``max_concurrent_evaluations`` for its whole budget.

The clients that wait for an evaluation (``openstack shadow evaluate
--wait``, ``nova-shadow evaluate --remote --wait``) poll it every 0.5 s
and 1 s, each poll waiting at most 30 s for its answer; a pre-flight
evaluation started without waiting, for a later ``shadow_evaluation``
hint, is marked as such by those clients and never cancelled this way.

Possible values:

* 0: never cancel an evaluation for not being polled.
* A positive number of seconds; keep it above the longest gap between
  two polls of your clients (their poll interval plus how long an answer
  may take).
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
    cfg.ListOpt(
        'inline_profile_allow',
        default=[],
        help="""
Local files, directories and network peers an inline workload profile may
name.

A request may carry its profile inline (loadgen's format) instead of a
name.  Such a profile may name a trace file (``path``), a disk file or
directory (``components.disk.file``, ``components.disk.dir``) or a network
peer (``components.network.peer``); the service reads trace files itself
and a real shadow would open the rest.  By default none is allowed and a
request that names one is rejected with ``InvalidRequest`` naming the
field.

Possible values:

* Absolute directories: every path at or below one is allowed
  (``..`` is never allowed).
* ``host:port`` peers, allowed exactly as written.

Related options:

* ``profile_dirs``: the operator's own named profiles, which may name
  anything.
"""),
    cfg.FloatOpt(
        'prior_lookback',
        default=86400.0,
        min=0.0,
        help="""
Seconds of history an evaluation reads for its prior.

Shadow samples that earlier evaluations of the same workload (profile,
flavor size and profile scale) left on the candidate hosts within this
window form the prior ranking (older samples
count for less).  When the prior covers every candidate with
``confidence_target``, no shadow is booted.  0 disables the prior: every
evaluation measures from scratch.

Related options:

* ``confidence_target``
"""),
    cfg.BoolOpt(
        'contention_learning',
        default=True,
        help="""
Fit the contention model on the history of earlier evaluations.

Every evaluation record keeps the candidate hosts' features (load,
co-located VMs, hardware class) next to what the shadows achieved there.
With this on, the service regresses each metric of each workload on those
features and applies the fit to new rankings: a host's score includes the
change expected when one more VM lands on it, and a disagreement between
the shadow and the model widens the uncertainty.  Off: host features are
not used.

Related options:

* ``contention_lookback``, ``contention_min_rows``,
  ``contention_refit_every``, ``contention_refit_interval``,
  ``contention_max_evaluations``, ``contention_method``,
  ``contention_features``
"""),
    cfg.FloatOpt(
        'contention_lookback',
        default=7 * 86400.0,
        min=60.0,
        help="""
Seconds of evaluation records the contention model is fitted on.

Older evaluations are not used.  A longer window gives more rows and slower
refits; a shorter one follows hardware and tenant changes sooner.

Related options:

* ``contention_max_evaluations``
"""),
    cfg.IntOpt(
        'contention_min_rows',
        default=30,
        min=5,
        help="""
Fewest training rows a metric needs before it gets a contention model.

One row is one host measured by one evaluation of the same workload
(profile, flavor vCPUs and profile scale).  Metrics whose target or host
load never varied get no model whatever the count.
"""),
    *_refit_opts('contention', 'the contention models',
                 'one history query per evaluation'),
    cfg.StrOpt(
        'contention_method',
        default='ols',
        choices=[('ols', 'ordinary least squares'),
                 ('wls', 'least squares weighted by sample counts'),
                 ('quantile', 'median regression with quantile intervals, '
                              'robust to outliers')],
        help="""
Estimator of the contention regression.
"""),
    cfg.ListOpt(
        'contention_features',
        default=['num_instances'],
        help="""
Host features the contention model regresses on, besides the hardware
class.

The analyzer adds the model's ``num_instances`` slope as "the change from
one more VM".  Utilisation and steal (``cpu_util_pct``,
``cpu_steal_pct``, ``mem_bw_util``, ``io_util``) are what more VMs *cause*:
adding them makes the fit better at explaining a shadow's figure but
leaves ``num_instances`` measuring only a VM that adds no load, so the
default leaves them out.

Possible values:

* Names of numeric host features the cloud driver reports; unknown or
  constant ones are left out at fit time.
"""),
    cfg.BoolOpt(
        'scaleup_learning',
        default=True,
        help="""
Learn how a shadow's figures scale up to the full flavor from the VMs that
were placed after an evaluation.

A shadow runs a flavor-minimal copy of the VM with ``shadow_scale`` of the
profile's load, so its figures are scaled to the full flavor before hosts
are compared: ``r ** b`` per metric, where ``r`` is the load ratio
``1 / shadow_scale`` for throughput metrics and ``b`` is 1 until learned
(latencies are not scaled). When an evaluation's
request carries an ``instance_uuid`` (the weigher sends Nova's) and the
cloud's monitoring writes that VM's ``instance_metric`` points, the service
pairs what the shadow achieved on the VM's host with what the VM achieved
there and fits ``b`` (and an offset) per metric; once a metric has
``scaleup_min_pairs`` pairs its learned correction replaces the prior.
Off: the priors are always used.

Related options:

* ``scaleup_min_pairs``, ``scaleup_window``, ``scaleup_lookback``,
  ``scaleup_refit_every``, ``scaleup_refit_interval``,
  ``scaleup_max_evaluations``, ``shadow_scale``
"""),
    cfg.IntOpt(
        'scaleup_min_pairs',
        default=8,
        min=2,
        help="""
Fewest (shadow, placed VM) pairs a metric needs before its learned
scale-up replaces the prior exponent.
"""),
    cfg.FloatOpt(
        'scaleup_window',
        default=3600.0,
        min=60.0,
        help="""
Seconds of a placed VM's own metrics, from its first sample, that are
compared with its shadow. Short windows keep the comparison close in time
to the shadow run (the host's load changes little); long ones average more
samples.
"""),
    cfg.FloatOpt(
        'scaleup_lookback',
        default=30 * 86400.0,
        min=0.0,
        help="""
Seconds of evaluation records (history store time) the scale-up learner
reads.

Related options:

* ``scaleup_max_evaluations``
"""),
    *_refit_opts('scaleup', 'the scale-up model',
                 "one history query for the shadow's samples and one for "
                 "the placed VM's metrics per evaluation"),
    cfg.BoolOpt(
        'cleanup_on_start',
        default=True,
        help="""
Delete shadows left behind by an earlier run when the service starts.
"""),
    cfg.StrOpt(
        'evaluation_schedule',
        default='racing',
        choices=[('racing', 'answer from the prior when history decides '
                            'the ranking; otherwise shadows only on the '
                            'hosts that could change it, each dropped as '
                            'soon as it cannot, until the ranking is '
                            'settled'),
                 ('pool', 'shadows on up to max_shadow_hosts candidates '
                          '(unknown hosts first), clearly worse hosts '
                          'dropped, stop at confidence_target'),
                 ('full', 'a shadow on every candidate for the whole '
                          'budget, no prior: the costly reference')],
        help="""
How an evaluation spends its budget of shadow time.

``racing`` asks, before and after every read of the shadows, how many
score points the scheduler could lose by taking the current top host: the
expected opportunity cost, drawn from the part of every host's uncertainty
a shadow can narrow (its samples' and their age, not what the contention
model and the host's load forecast add). When history covers every
candidate and that loss is below ``prior_settle_margin`` (unset:
``settle_margin``; or its confidence reaches ``confidence_target``), no
shadow is booted. Otherwise only the
hosts history knows nothing about, the top host and the hosts whose
expected improvement over it is not negligible get shadows; the race ends
as soon as the ranking is settled.

Related options:

* ``settle_margin``, ``prior_settle_margin``, ``confidence_target``,
  ``min_run_time``, ``max_shadow_hosts``, ``prior_lookback``
"""),
    cfg.FloatOpt(
        'settle_margin',
        default=1.0,
        min=0.0,
        max=100.0,
        help="""
Expected score points lost by taking the top host below which a ranking is
settled (the ``racing`` schedule).

A host leaves the race when its expected improvement over the top host is
below a quarter of this margin. Smaller values
measure longer and more hosts; 0 never settles on this rule (only
``confidence_target`` and the budget stop the race).

Related options:

* ``evaluation_schedule``; ``prior_settle_margin`` (the margin of the
  answer from history alone, when it differs); ``[analysis] tie_margin``
  (score points within which two hosts count as equally good).
"""),
    cfg.FloatOpt(
        'prior_settle_margin',
        min=0.0,
        max=100.0,
        help="""
Expected score points lost by taking the prior's top host at or below which
history alone answers, without booting shadows (the ``racing`` schedule).

Unset, ``settle_margin`` is used. Only this first verdict reads it:
``settle_margin`` keeps deciding when a race that has booted shadows stops
and, at a quarter of it, which hosts leave the race. A value above
``settle_margin`` answers more requests from history while races that do
run keep measuring as long as before.

Related options:

* ``settle_margin``, ``evaluation_schedule``, ``prior_trust_learning``
"""),
    cfg.BoolOpt(
        'prior_trust_learning',
        default=False,
        help="""
Learn, per profile, how much of the prior's expected loss was real, and
weigh it by that before comparing it with ``prior_settle_margin`` (the
``racing`` schedule).

After every race that booted shadows, the expected loss of the prior's
top host is asked again of the race's final ranking and recorded
(``history_verdict.loss_after``). Over a profile's races whose prior
expected loss lay between the margin and four times it, the ratio of the
two sums (shrunk toward 1 by five pseudo-races, bounded to 0.25-4) is
how far that profile's prior can be trusted: below 1 history answers more
of its requests alone, above 1 fewer. The answer's ``history_verdict``
says the ratio used (``trust``).

Related options:

* ``prior_trust_min_outcomes``, ``prior_trust_lookback``,
  ``prior_settle_margin``
"""),
    cfg.IntOpt(
        'prior_trust_min_outcomes',
        default=10,
        min=1,
        help="""
Races of a profile (with a prior expected loss between the margin and four
times it) needed before its ratio is learned; until then the prior's
expected loss is taken as stated.

Related options:

* ``prior_trust_learning``
"""),
    cfg.FloatOpt(
        'prior_trust_lookback',
        default=7 * 86400.0,
        min=3600.0,
        help="""
Seconds of evaluation records (on the cloud driver's clock) the prior
trust is learned from.

Related options:

* ``prior_trust_learning``
"""),
    cfg.StrOpt(
        'cost_policy',
        default='none',
        choices=[('none', 'report each host\'s cost, rank by score alone'),
                 ('cap', 'best score among the hosts that cost at most '
                         'max_host_cost'),
                 ('per_cost', 'best score per unit of cost')],
        help="""
How a host's cost weighs against its score.

Every ranking lists each host's cost (``host_costs``, or the
``shadow_host_cost`` metadata of its host aggregates, which the weigher
sends). With ``cap``, a host costing more than ``max_host_cost`` may not
take the VM: it gets no shadow and score 0 (a host without a cost passes).
With ``per_cost``, a host's score is divided by its cost relative to the
cheapest candidate, so a host twice as expensive needs twice the score to
rank level (a host without a cost counts ``default_host_cost``). Hosts
that are down, disabled (in maintenance) or outside the request's
availability zone never take the VM, whatever the policy.

Related options:

* ``max_host_cost``, ``host_costs``, ``default_host_cost``
"""),
    cfg.FloatOpt(
        'max_host_cost',
        min=0.0,
        help="""
Most a host may cost (per hour, in the unit of ``host_costs``) to take a
VM under ``cost_policy = cap``. Required by that policy.
"""),
    cfg.DictOpt(
        'host_costs',
        default={},
        help="""
Cost per hour of each host (``host:cost``), for ``cost_policy``: a
finite number of at least 0 (anything else stops the service at start).

The ``shadow_host_cost`` metadata of a host's aggregates, which the weigher
sends with each host, takes precedence.
"""),
    cfg.FloatOpt(
        'default_host_cost',
        default=1.0,
        min=0.001,
        help="""
Cost of a host with no cost of its own under ``cost_policy = per_cost``.
"""),
]


def register_opts(conf):
    conf_utils.register_group_opts(conf, shadow_group, shadow_opts)


def list_opts():
    return {shadow_group: shadow_opts}
