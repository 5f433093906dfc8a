"""Scale a flavor-minimal shadow's figures up to the full flavor.

A shadow runs with a small flavor (e.g. 1 vCPU); the VM will have more.
For each metric the full/shadow ratio is modelled as ``r ** b`` where
``r`` is the vCPU ratio (RAM ratio for memory metrics). Before any
(shadow, full VM) pairs exist the exponents are the documented priors in
``PRIOR_EXPONENTS`` with a wide uncertainty; :meth:`ScaleUpModel.fit`
learns ``log(full/shadow) = a + b log r`` per metric by OLS once at least
``min_pairs`` pairs exist, and then uses the learned correction and its
residual spread instead.
"""

import dataclasses
import logging
import math

import numpy as np
import statsmodels.api as sm

LOG = logging.getLogger(__name__)

# Exponent of the vCPU (or RAM) ratio: 1 = scales linearly, 0 = unchanged.
PRIOR_EXPONENTS = {
    "cpu_ops_per_s": 0.9,
    "mem_bandwidth_gbps": 0.5,
    "disk_iops": 0.2,
    "disk_mbps": 0.2,
    "net_rps": 0.5,
    "net_mbps": 0.3,
}
# Uncertainty of a prior exponent (standard deviation of b).
PRIOR_EXPONENT_SD = 0.2
MEMORY_METRICS = frozenset({"mem_bandwidth_gbps"})


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
        """The flavor ratio that drives ``metric``."""
        scale = scale or {}
        if metric in MEMORY_METRICS and scale.get("shadow_ram_mb"):
            return (float(scale.get("full_ram_mb", scale["shadow_ram_mb"]))
                    / float(scale["shadow_ram_mb"]))
        if scale.get("shadow_vcpus"):
            return (float(scale.get("full_vcpus", scale["shadow_vcpus"]))
                    / float(scale["shadow_vcpus"]))
        return 1.0

    def fit(self, pairs):
        """Learn corrections from ``(shadow, full)`` measurement pairs.

        Parameters
        ----------
        pairs : list of dict
            ``metric``, ``shadow_value``, ``full_value`` and the ``scale``
            keys (``shadow_vcpus``, ``full_vcpus``, ...).
        """
        by_metric = {}
        for pair in pairs:
            if pair["shadow_value"] <= 0 or pair["full_value"] <= 0:
                continue
            by_metric.setdefault(pair["metric"], []).append(pair)
        for metric, rows in by_metric.items():
            if len(rows) < self.min_pairs:
                continue
            log_ratio = np.log([self.ratio(metric, r) for r in rows])
            log_gain = np.log([r["full_value"] / r["shadow_value"]
                               for r in rows])
            if np.ptp(log_ratio) > 0:
                fit = sm.OLS(log_gain, sm.add_constant(log_ratio)).fit()
                intercept, exponent = (float(v) for v in fit.params)
            else:
                fit = sm.OLS(log_gain - 0, np.ones((len(rows), 1))).fit()
                intercept, exponent = float(fit.params[0]), 0.0
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
        exponent = PRIOR_EXPONENTS.get(metric, 0.0)
        log_sd = PRIOR_EXPONENT_SD * abs(math.log(ratio)) \
            if metric in PRIOR_EXPONENTS else 0.0
        return ScaleFactor(ratio ** exponent, log_sd, "prior")
