"""Scale a flavor-minimal shadow's figures up to the full flavor.

A shadow runs with a small flavor (e.g. 1 vCPU) and runs the profile's
load scaled by ``shadow_scale`` (a quarter by default); the VM will run
all of it. For each metric the full/shadow ratio is modelled as
``r ** b`` where ``r`` is the ratio that drives the metric:

* throughput metrics (``RATE_METRICS``): the **load ratio**
  ``1 / shadow_scale``, the share of the load the full VM runs that the
  shadow did not. Every component of a profile scales with it (rate
  targets, working sets, worker counts times duty cycle, see
  :meth:`loadgen.profiles.Profile.scaled`), so on a host with room the
  full VM does ``r`` times the shadow's work: the prior exponent is 1;
* utilisation of the instance's own vCPUs (``cpu_util_pct``): the load
  ratio times ``shadow_vcpus / full_vcpus``; prior exponent 1;
* latencies and steal: ``r = 1``, unchanged until learned.

The vCPU count does not enter throughput: rounding gives a 2 vCPU
request's shadow 1 vCPU (half, not a quarter), yet it runs a quarter of
the load. Host pressure (the full VM competing with its neighbours) is
the contention model's part, not the scale-up's. A ``scale`` without a
load ratio (a caller that knows only the flavors) falls back to the vCPU
ratio.

Before any (shadow, full VM) pairs exist the prior has a wide uncertainty
(``PRIOR_EXPONENT_SD`` on the exponent); :meth:`ScaleUpModel.fit` learns
``log(full/shadow) = a + b log r`` per metric by OLS once at least
``min_pairs`` pairs exist, and then uses the learned correction and its
residual spread instead (with one ratio only, or two pairs, ``b`` stays
the prior's and ``a`` is learned).
"""

import dataclasses
import logging
import math

import numpy as np
import statsmodels.api as sm

from shadow_service.analysis import series

LOG = logging.getLogger(__name__)

# Work done per second: scales with the load the instance runs.
RATE_METRICS = frozenset({"cpu_ops_per_s", "mem_bandwidth_gbps",
                          "disk_iops", "disk_mbps", "net_rps", "net_mbps"})
# Share of the instance's own vCPUs in use.
SHARE_METRICS = frozenset({"cpu_util_pct"})
# Exponent of the driving ratio before anything was learned. On the twin
# the full/shadow ratio of every throughput metric was 3.9-4.3 for a load
# ratio of 4 across five profiles and 1-16 vCPU flavors, except where the
# profile outgrows the flavor (batch-cpu's two busy workers on 1 vCPU: 2x)
# and where the VM's 5-minute samples all fell in cache's spikes (7.4-8x):
# the learner's part.
PRIOR_EXPONENT = 1.0
# Uncertainty of the prior exponent (standard deviation of b).
PRIOR_EXPONENT_SD = 0.2


# Least RAM a shadow boots with, whatever the scale.
MIN_SHADOW_RAM_MB = 256


def shadow_flavor(flavor, shadow_scale):
    """The flavor-minimal copy of ``flavor`` a shadow boots with:
    ``shadow_scale`` of its vCPUs (at least 1), RAM (at least
    :data:`MIN_SHADOW_RAM_MB`) and disk (at least 1 GB); extra specs kept."""
    return {
        'name': 'shadow-%s' % flavor.get('name', 'custom'),
        'vcpus': max(1, int(round(flavor['vcpus'] * shadow_scale))),
        'ram_mb': max(MIN_SHADOW_RAM_MB,
                      int(flavor['ram_mb'] * shadow_scale)),
        'disk_gb': max(1, int(flavor.get('disk_gb', 1) * shadow_scale)),
        'extra_specs': dict(flavor.get('extra_specs', {})),
    }


def scale_keys(flavor, shadow_scale):
    """How a shadow relates to the full VM, for :class:`ScaleUpModel`:
    the load ratio (the shadow runs ``shadow_scale`` of the profile's
    load) and both flavors' vCPUs and RAM."""
    shadow = shadow_flavor(flavor, shadow_scale)
    return {'load_ratio': 1.0 / float(shadow_scale),
            'shadow_vcpus': shadow['vcpus'], 'full_vcpus': flavor['vcpus'],
            'shadow_ram_mb': shadow['ram_mb'],
            'full_ram_mb': flavor['ram_mb']}


def usable_pair_value(value):
    """Whether one side of a (shadow, full VM) pair can be fitted: a
    finite number within ``1 / series.MAX_MAGNITUDE`` to
    ``series.MAX_MAGNITUDE`` (zero, negative, tiny and huge values would
    put a logarithm of any size into the fit)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return False
    return (math.isfinite(value)
            and 1.0 / series.MAX_MAGNITUDE <= value <= series.MAX_MAGNITUDE)


@dataclasses.dataclass
class ScaleFactor:
    factor: float
    log_sd: float
    source: str


class ScaleUpModel:
    """Per-metric scale-up correction, prior until learned."""

    def __init__(self, *, min_pairs=8):
        self.min_pairs = min_pairs
        self.learned = {}

    @staticmethod
    def ratio(metric, scale):
        """The ratio that drives ``metric`` from shadow to full VM."""
        scale = scale or {}
        if metric not in RATE_METRICS and metric not in SHARE_METRICS:
            return 1.0
        load = scale.get("load_ratio")
        vcpus = (float(scale["full_vcpus"]) / float(scale["shadow_vcpus"])
                 if scale.get("shadow_vcpus") and scale.get("full_vcpus")
                 else 1.0)
        if not load:
            # A record from before the load ratio was kept.
            return vcpus
        load = float(load)
        return load / vcpus if metric in SHARE_METRICS else load

    def fit(self, pairs):
        """Learn corrections from ``(shadow, full)`` measurement pairs.

        Parameters
        ----------
        pairs : list of dict
            ``metric``, ``shadow_value``, ``full_value`` and the ``scale``
            keys (``load_ratio``, ``shadow_vcpus``, ``full_vcpus``).
        """
        by_metric = {}
        for pair in pairs:
            if not (usable_pair_value(pair["shadow_value"])
                    and usable_pair_value(pair["full_value"])):
                continue
            by_metric.setdefault(pair["metric"], []).append(pair)
        for metric, rows in by_metric.items():
            if len(rows) < self.min_pairs:
                continue
            log_ratio = np.log([self.ratio(metric, r) for r in rows])
            log_gain = np.log([r["full_value"] / r["shadow_value"]
                               for r in rows])
            if np.ptp(log_ratio) > 0 and len(rows) > 2:
                fit = sm.OLS(log_gain, sm.add_constant(log_ratio)).fit()
                intercept, exponent = (float(v) for v in fit.params)
            else:
                # One ratio only (one shadow_scale), or two pairs (a line
                # through both leaves no spread to state): learn the
                # offset from the prior's slope, which still applies if
                # the ratio changes later.
                fit = sm.OLS(log_gain - PRIOR_EXPONENT * log_ratio,
                             np.ones((len(rows), 1))).fit()
                intercept, exponent = float(fit.params[0]), PRIOR_EXPONENT
            residual_sd = float(np.sqrt(fit.scale))
            self.learned[metric] = (intercept, exponent, residual_sd,
                                    len(rows))
        return self

    def factor(self, metric, scale):
        """Multiplier from the shadow's figure to the full flavor's."""
        ratio = self.ratio(metric, scale)
        if ratio == 1.0 and metric not in self.learned:
            return ScaleFactor(1.0, 0.0, "same flavor")
        if metric in self.learned:
            intercept, exponent, residual_sd, count = self.learned[metric]
            return ScaleFactor(math.exp(intercept + exponent
                                        * math.log(ratio)),
                               residual_sd, "learned from %d pairs" % count)
        return ScaleFactor(ratio ** PRIOR_EXPONENT,
                           PRIOR_EXPONENT_SD * abs(math.log(ratio)),
                           "prior")
