"""Options of the ``[analysis]`` group: how hosts are scored and trusted.

The analyzer itself never reads configuration; the service builds it with
``Analyzer.from_conf(conf)`` which reads this group.
"""

from oslo_config import cfg
from oslo_config import types

from shadow_service.conf import utils as conf_utils

analysis_group = cfg.OptGroup(
    name='analysis',
    title='Performance analysis options',
    help="""
How nova-shadow turns shadow measurements and history into a Performance
Score (0-100) and a confidence (0-1) per host, and how it forecasts.
""")

ALL_OPTS = [
    cfg.FloatOpt(
        'cotenancy_horizon',
        default=86400.0,
        min=0.0,
        help="""
Seconds of future co-tenancy a host's score accounts for.

Where a contention model has been learned, a host's predicted figures are
degraded for the new VM itself plus the host's recent net growth in VMs
(arrivals minus departures over the last day, from the cloud's instance
actions) continued over this horizon, so a host that keeps filling up is
ranked by how the VM will run there later, not only now.

Possible values:

* 0: only the new VM itself counts.
* A positive number of seconds (default one day).
"""),
    cfg.DictOpt(
        'metric_weights',
        default={},
        help="""
Operator multipliers per metric, applied on top of the weights derived
from the workload profile's sensitivity.

Possible values:

* Empty (default): use the profile's sensitivity only.
* ``metric:multiplier`` pairs, e.g. ``cpu_steal_pct:2,net_mbps:0``; a
  multiplier of 0 removes the metric from the score. Metric names are
  those of the metric catalogue.
"""),
    cfg.FloatOpt(
        'tie_margin',
        default=2.0,
        min=0.0,
        max=50.0,
        help="""
Score points within which two hosts count as equally good. Confidence is
the probability that the order is right or the hosts are within this
margin of each other.

Related options:

* ``[shadow] confidence_target``.
"""),
    cfg.FloatOpt(
        'age_drift_per_sqrt_hour',
        default=0.05,
        min=0.0,
        max=1.0,
        help="""
Relative drift assumed for a measurement per square root of hour of data
age: old data widens the uncertainty and so lowers confidence.

Possible values:

* 0: data never goes stale.
* 0.05 (default): one-hour-old data gains 5 %, one-day-old data ~25 % of
  its value as standard deviation.

Related options:

* ``age_drift_learning``: learned from the history, this figure is used
  only for metrics without enough repeated measurements.
"""),
    cfg.Opt(
        'age_drift_per_metric',
        type=types.Dict(types.Float(min=0.0, max=1.0)),
        default={},
        help="""
Relative drift per square root of hour of data age for the named metrics,
in place of ``age_drift_per_sqrt_hour`` for them.

With ``age_drift_learning`` on, a metric's learned drift still takes
precedence; this figure is what the metric ages at while the learner has
too few repeated measurements of it (which happens late in a busy period,
when most requests are answered from history and few shadows run long
enough to be paired).

Possible values:

* Empty (default): every metric without a learned drift ages at
  ``age_drift_per_sqrt_hour``.
* ``metric:drift`` pairs, e.g. ``disk_p95_latency_ms:0.17``, each drift
  between 0 and 1. Metric names are those of the metric catalogue; an
  unknown name stops the service at start.

Related options:

* ``age_drift_per_sqrt_hour``, ``age_drift_learning``,
  ``age_drift_min_pairs``.
"""),
    cfg.BoolOpt(
        'age_drift_learning',
        default=True,
        help="""
Learn the age drift from the history instead of assuming
``age_drift_per_sqrt_hour``: how much repeated shadows of the same workload
on the same host really changed between evaluations (net of their sampling
error), per metric. Hosts whose measurements hold steady then keep a
confident prior for longer, so more requests are answered from history
without shadows; hosts that change fast go stale sooner.

Related options:

* ``age_drift_per_sqrt_hour`` (or the metric's figure in
  ``age_drift_per_metric``): used until a metric has
  ``age_drift_min_pairs`` pairs of repeated measurements.
* ``[shadow] prior_lookback``: the history the drift is learned from.
"""),
    cfg.IntOpt(
        'age_drift_min_pairs',
        default=20,
        min=1,
        help="""
Pairs of repeated shadow measurements (same workload, same host, same
metric, consecutive evaluations) a metric needs before its age drift is
learned.
"""),
    cfg.FloatOpt(
        'age_drift_refit_interval',
        default=3600.0,
        min=0.0,
        help="""
Fewest seconds (on the cloud driver's clock) between two refits of the
learned age drift.

Related options:

* ``age_drift_refit_every``: both must have passed.
"""),
    cfg.IntOpt(
        'age_drift_refit_every',
        default=20,
        min=1,
        help="""
Evaluations between two refits of the learned age drift. Every evaluation
counts once, whether it boots shadows or is answered from the history, so
in a cloud that places few VMs this, not ``age_drift_refit_interval``,
sets how long new repeated measurements wait before the drift learns
them; lower it there. The first evaluation after a start always fits.

Related options:

* ``age_drift_refit_interval``: both must have passed.
* ``age_drift_learning``: without it nothing is refitted.
"""),
    cfg.IntOpt(
        'confidence_draws',
        default=400,
        min=50,
        max=20000,
        help="""
Monte Carlo draws used to compute confidence; more is steadier and slower
(400 draws rank 20 hosts in a few milliseconds).
"""),
    cfg.FloatOpt(
        'interval_level',
        default=0.9,
        min=0.5,
        max=0.99,
        help="""
Coverage of forecast prediction intervals.
"""),
    cfg.StrOpt(
        'forecaster',
        default='auto',
        help="""
Forecaster plugin (``nova_shadow.forecasters`` entry point) used for
history forecasts.

Possible values:

* ``auto`` (default): per-series selection by rolling-origin backtest with
  conformal intervals.
* ``seasonal_naive``, ``naive``, ``ses``, ``holt_winters``, ``arima``,
  ``stl_arima``.
"""),
]


LIFETIME_OPTS = [
    cfg.FloatOpt(
        'lifetime_horizon',
        default=86400.0,
        min=0.0,
        help="""
Seconds of the new VM's life its predicted performance covers.

Each candidate host's own load (CPU, steal, memory bandwidth, disk IOPS)
is forecast this far ahead from its utilisation history, read from the
``[metrics] source``; where a contention model has been learned, every
predicted figure moves by what the forecast mean load does to it, and the
forecast interval widens its uncertainty. The host's reasons say what the
forecast saw (for example "quiet now (CPU 22 %), forecast peak 19:00 UTC
+40 % CPU").

Possible values:

* 0: rank on the shadow measurements now (no host forecasts).
* A positive number of seconds (default one day).

Related options:

* ``[metrics] source``: with ``none`` (its default) there is no history
  to forecast and this option has no effect.
* ``lifetime_history``, ``lifetime_step``, ``forecaster``.
"""),
    cfg.FloatOpt(
        'lifetime_history',
        default=3 * 86400.0,
        min=3600.0,
        help="""
Seconds of each host's utilisation history read to forecast its load
(default three days: enough for a daily season to show).
"""),
    cfg.FloatOpt(
        'lifetime_step',
        default=3600.0,
        min=60.0,
        help="""
Grid of the host load history and forecasts, in seconds; a host's forecast
is also reused for this long (default one hour).

Related options:

* ``lifetime_failure_ttl``: how long a forecast made while the metrics
  source could not be read is reused.
"""),
    cfg.FloatOpt(
        'lifetime_failure_ttl',
        default=60.0,
        min=0.0,
        help="""
Seconds a host's load forecast is reused when its history could not be
read (the ``[metrics] source`` failed or did not answer in time).

Such a host is ranked on its shadow measurements alone and its reasons say
"CPU history unavailable"; after this long the next ranking asks the
metrics source again, so a passing outage of the monitoring costs the
host its forecast for this long rather than for a whole
``lifetime_step``. A forecast read in full is reused for the step.

Possible values:

* 0: ask again at every ranking (every ranking of an evaluation may then
  wait for a source that is down, within the evaluation's budget).
* A positive number of seconds (default one minute); more than
  ``lifetime_step`` has the effect of ``lifetime_step``.

Related options:

* ``lifetime_step``: how long a forecast read in full is reused.
* ``[metrics] query_timeout_s``, ``query_retries``: how long one read of
  a source that is down takes.
"""),
    cfg.IntOpt(
        'lifetime_min_points',
        default=24,
        min=3,
        help="""
Fewest ``lifetime_step`` buckets of history with data a host load metric
needs before it is forecast; a host with less is ranked on its shadow
measurements alone, and its reasons say so.
"""),
]

PEAK_OPTS = [
    cfg.BoolOpt(
        'peak_headroom',
        default=True,
        help="""
Predict a host's CPU steal at its busiest hours of the last day, not only
at the shadows' minutes.

A neighbour that is quiet now and busy for hours later (a nightly batch
job) shows neither in the shadows' samples nor in a forecast mean over
the day. With this on, each host's CPU utilisation and steal at the 95th
percentile of its last 24 h (host facts the cloud driver reports from
monitoring) plus the new VM's busy vCPUs are shared among the host's
hardware threads (processor sharing); where the steal this gives is
higher than the shadows measured, the VM's predicted ``cpu_steal_pct``
becomes it and the host's reasons say so. It is the steal during the
host's busiest 5 % of a day: the share of time at which a QoS target that
must hold 95 % of the time is decided.

Possible values:

* true (default): hosts whose busy hours leave no room for the VM rank
  lower.
* false: rank on the shadow measurements (and the lifetime forecast).

Related options:

* ``lifetime_horizon``: forecasts the mean load over the VM's first hours
  through a learned contention model; this option looks at the peak.
* ``peak_memory_headroom``: the same for memory bandwidth.
"""),
    cfg.BoolOpt(
        'peak_memory_headroom',
        default=True,
        help="""
Predict a VM's memory bandwidth and latency with its full memory traffic on
the host's memory system at its busy level, not only at the shadow's.

A shadow streams a fraction (``[shadow] shadow_scale``) of the VM's memory
traffic, so it measures the latency of a host with room where the full VM,
and the VMs like it the host is expected to gain
(``cotenancy_horizon``), would oversubscribe the memory system. With this
on, the host's memory bandwidth in use (the larger of its 95th percentile
over the last 24 h and its last 15 minutes, host facts the cloud driver
reports from monitoring) plus the full VM's traffic (the shadow's
``mem_bandwidth_gbps`` times the load ratio) is compared with 90 % of the
data sheet's sustained bandwidth (``rated_mem_bandwidth_gbps``); beyond
it the VM's predicted ``mem_bandwidth_gbps`` is divided, and its
``mem_latency_ns`` multiplied, by the oversubscription (streams share the
bandwidth in proportion to demand; each miss waits longer in the same
proportion), and the host's reasons say so. Profiles whose shadows report
no memory bandwidth, and hosts without those facts, are left as measured.

Possible values:

* true (default): hosts whose memory system the VM would oversubscribe
  rank lower.
* false: memory figures as the shadows measured them (scaled up).
"""),
]

CALIBRATION_OPTS = [
    cfg.BoolOpt(
        'confidence_calibration',
        default=True,
        help="""
State a ranking's confidence through a map learned from what really
happened: the share of earlier rankings, at the same raw confidence, whose
top host really was best (within ``tie_margin``) over the placed VM's
first ``calibration_window`` seconds. Until outcomes are known the
``calibration_prior_map`` is stated (without one, the raw confidence until
``calibration_min_pairs`` outcomes exist). The raw figure stays in the
ranking as ``raw_confidence``.

Outcomes come from ``ranking_outcome`` records and from placed VMs: Nova's
notifications (``[nova_notifications] listen``) say where each VM went and
its ``instance_metric`` points what it achieved.
"""),
    cfg.FloatOpt(
        'calibration_window',
        default=86400.0,
        min=60.0,
        help="""
Seconds of a placed VM's life after which its ranking's outcome is judged
(default its first day).
"""),
    cfg.IntOpt(
        'calibration_min_pairs',
        default=20,
        min=0,
        help="""
Outcomes needed before the learned calibration map replaces the raw
confidence, when there is no ``calibration_prior_map`` (``identity``, or
``calibration_method = bins``). With a prior map the map learns from the
first outcome, the prior worth ``calibration_prior_map_pairs`` of them.
"""),
    cfg.StrOpt(
        'calibration_method',
        default='logistic',
        choices=[('logistic', 'Platt scaling: the stated confidence\'s '
                              'log-odds a straight line in the raw '
                              'one\'s, two figures learned from every '
                              'outcome at once'),
                 ('bins', 'the share right in each of ten raw-confidence '
                          'bins, made monotone (the map before this '
                          'option)')],
        help="""
The form of the calibration map. ``logistic`` learns two figures from all
outcomes together and so follows a raw confidence that is too low (or
high) throughout, or drifts, from a few dozen outcomes; ``bins`` learns
one figure per bin from that bin's outcomes alone and holds the raw
confidence where a bin has few. Replayed on the placement benchmark's
stored ``arrivals`` rows of the current ranker, ``logistic`` stated every
run with a lower calibration error than ``bins``.
"""),
    cfg.FloatOpt(
        'calibration_prior_pairs',
        default=5.0,
        min=0.0,
        help="""
How many outcomes the prior at the raw confidence is worth. ``bins``: the
pseudo-outcomes at the raw confidence added to each confidence bin: a bin
of ``n`` outcomes of which a share ``a`` were right, at mean raw
confidence ``c``, states ``(n * a + prior_pairs * c) / (n +
prior_pairs)``. ``logistic``: the weight of the Gaussian prior that holds
the line at the identity (a quarter of ``prior_pairs`` per figure). Larger
values trust few outcomes less. With a ``calibration_prior_map`` the
logistic map's prior is that map, worth ``calibration_prior_map_pairs``
instead.
"""),
    cfg.StrOpt(
        'calibration_prior_map',
        default='bundled',
        help="""
The logistic calibration map stated before any outcome is known, and the
prior the learned map starts from and hands over from as outcomes accrue.
A ranking's outcome is known only once its VM's first day (or its life,
when shorter) is over, so without a prior the first day's rankings state
their raw confidence, which on the digital twin is too low there.

Possible values:

* ``bundled`` (default): the map shipped with nova-shadow
  (``shadow_service/learners/data/calibration_prior.json``), fitted by
  ``benchmarks/calibration_prior.py`` on the twin's rankings of seeds not
  used to measure it.
* ``identity``: no prior map; the raw confidence until
  ``calibration_min_pairs`` outcomes, a prior at the identity worth
  ``calibration_prior_pairs`` after (the behaviour before this option).
* a path: a JSON file ``{"method": "logistic", "coefficients": [a, b]}``
  (the stated log-odds ``a + b * logit(raw)``), such as
  ``calibration_prior.py`` writes from a cloud's own stored rankings.

Only ``calibration_method = logistic`` reads it.

Related options:

* ``calibration_prior_map_pairs``: what the prior map is worth.
"""),
    cfg.FloatOpt(
        'calibration_prior_map_pairs',
        default=20.0,
        min=0.0,
        help="""
How many outcomes the ``calibration_prior_map`` is worth: the weight of
the Gaussian prior (a quarter of it per figure) that holds the learned
logistic map at the prior map. Larger values hand over to the cloud's own
outcomes later.
"""),
    cfg.StrOpt(
        'calibration_tails',
        default='flat',
        choices=[('flat', 'below the lowest and above the highest confidence '
                          'bin with outcomes, state the share observed in '
                          'that bin'),
                 ('identity', 'run on from the outermost bins to 0 and 1, '
                              'toward the raw confidence (the behaviour '
                              'before this option)')],
        help="""
The ``bins`` calibration map beyond the confidence bins its outcomes cover
(the ``logistic`` map has no tails).
"""),
    cfg.FloatOpt(
        'calibration_share_margin',
        default=0.02,
        min=0.0,
        help="""
How far the share of the candidates' RAM allocated (``memory_mb_used`` over
``memory_mb``) may lie beyond the shares of the rankings the calibration
map's outcomes come from before a ranking keeps its raw confidence: a
cloud fuller (or emptier) than any outcome saw was never observed, and in
a cloud that keeps filling the day-old outcomes overstate how often the
top host is right. 1 reads the map at any share (the behaviour before
this option).
"""),
    cfg.FloatOpt(
        'calibration_lookback',
        default=30 * 86400.0,
        min=3600.0,
        help="""
Seconds of outcomes and evaluation records the calibration map is fitted
on.
"""),
    cfg.FloatOpt(
        'calibration_refit_interval',
        default=3600.0,
        min=0.0,
        help="""
Fewest seconds (on the cloud driver's clock) between two refits of the
calibration map.

Related options:

* ``calibration_refit_every``: both must have passed.
"""),
    cfg.IntOpt(
        'calibration_refit_every',
        default=20,
        min=1,
        help="""
Rankings between two refits of the calibration map. An evaluation ranks
once per sampling round of its shadows, or once when the history answers
alone, so in a cloud that places few VMs this, not
``calibration_refit_interval``, sets how long new outcomes wait before
the map learns them; lower it there. The first ranking after a start
always fits.

Related options:

* ``calibration_refit_interval``: both must have passed.
* ``calibration_max_evaluations``: what each refit reads.
"""),
    cfg.IntOpt(
        'calibration_max_evaluations',
        default=500,
        min=20,
        max=20000,
        help="""
Evaluations a refit of the calibration map reads: the recorded outcomes
of the newest this many evaluations with one, and the outcomes of placed
VMs from the newest this many evaluation records (within
``calibration_lookback``). Each record of a placed VM costs a refit a few
history queries (its creation and its first ``calibration_window`` of
measurements), so this bounds a refit's time; more evaluations fit the
map on more outcomes, older ones.

Related options:

* ``calibration_lookback``, ``calibration_refit_interval``,
  ``calibration_refit_every``, ``calibration_min_pairs``.
"""),
]

ALL_OPTS = ALL_OPTS + LIFETIME_OPTS + PEAK_OPTS + CALIBRATION_OPTS


def register_opts(conf):
    conf_utils.register_group_opts(conf, analysis_group, ALL_OPTS)


def list_opts():
    return {analysis_group: ALL_OPTS}
