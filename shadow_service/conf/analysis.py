"""Options of the ``[analysis]`` group: how hosts are scored and trusted.

The analyzer itself never reads configuration; the service builds it with
``Analyzer.from_conf(conf)`` which reads this group.
"""

from oslo_config import cfg

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


def register_opts(conf):
    conf_utils.register_group_opts(conf, analysis_group, ALL_OPTS)


def list_opts():
    return {analysis_group: ALL_OPTS}
