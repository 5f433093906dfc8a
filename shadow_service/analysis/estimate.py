"""Per host, per metric: a predicted value and its uncertainty.

:func:`from_samples` turns one metric's shadow samples into a
:class:`MetricEstimate`: the sample mean and the standard deviation of
what the VM will achieve, combining

* the standard error of the mean with an effective sample size that
  accounts for lag-1 autocorrelation,
* drift within the run (half the difference between the halves' means),
* a wide relative prior when there are fewer than ``MIN_SAMPLES``,
* the age of the data: ``age_drift`` of the value per sqrt(hour).

:func:`combine` joins this run's estimate with the one earlier runs of
the same workload on the same host give (their age in their sd): the
precision-weighted mean, so a host measured again starts from its
history instead of from a few new samples alone.

:func:`fit_age_drift` learns that drift from the history: how much
repeated shadow runs of the same workload on the same host really
changed between evaluations, net of their sampling error.

:func:`adjust` then applies the contention model (the effect of the VM
being added, and of the VMs the host is expected to gain while the VM runs
(:func:`~shadow_service.analysis.contention.expected_added_instances`),
and the disagreement between shadow and model) and the scale-up to the
full flavor. Uncertainties add in quadrature; the scale-up's is kept apart
(``common_sd``) because one factor applies to every host of a request.
"""

import dataclasses
import hashlib
import math

import numpy as np

from shadow_service.analysis import contention as contention_lib
from shadow_service.analysis import series
from shadow_service.workloads import catalogue

MIN_SAMPLES = 3
FEW_SAMPLES_RELATIVE_SD = 0.15
#: Fewest pairs of repeated runs before :func:`fit_age_drift` answers.
MIN_DRIFT_PAIRS = 20
PERCENT_BOUNDS = (0.0, 100.0)
NONNEGATIVE_BOUNDS = (0.0, None)
#: Sample estimates kept (per metric and samples) for priors.
SAMPLE_ESTIMATES_KEPT = 65536
_KEPT = {}
_MISSING = object()


@dataclasses.dataclass
class MetricEstimate:
    """``sd`` is what sets this host apart from the others (sampling,
    drift, age, contention); ``common_sd`` is uncertainty every host of
    the request shares (the scale-up to the full flavor: one factor for
    all), which moves all predictions together and so does not make a
    ranking less certain.  ``measured_sd`` is the part of ``sd`` that
    measuring the host again can narrow (the samples' own uncertainty and
    their age; None: all of it), without what the models add (contention,
    the host's load forecast over the VM's life, peak headroom), which no
    shadow narrows."""

    value: float
    sd: float
    samples: int
    notes: list
    common_sd: float = 0.0
    measured_sd: float = None

    @property
    def measurable_sd(self):
        """The part of ``sd`` a new measurement of the host can narrow."""
        if self.measured_sd is None:
            return self.sd
        return min(self.measured_sd, self.sd)

    @property
    def total_sd(self):
        """Uncertainty of the predicted value itself."""
        return math.hypot(self.sd, self.common_sd)

    @property
    def relative_sd(self):
        return self.sd / max(abs(self.value), 1e-9)


def from_samples(metric, samples, *, data_age_s=0.0, age_drift=0.05):
    """Estimate a metric from time-ordered samples; None if none usable."""
    try:
        data = np.asarray(samples, dtype=float)
    except (TypeError, ValueError):
        data = None
    if data is None or data.ndim != 1:
        base = _estimate(metric, samples)
    else:
        # Kept per samples (by digest): a prior asks again for the same
        # samples of every host on every request.
        key = (metric, data.size,
               hashlib.blake2b(data.tobytes(), digest_size=16).digest())
        base = _KEPT.get(key, _MISSING)
        if base is _MISSING:
            base = _estimate(metric, data)
            if len(_KEPT) >= SAMPLE_ESTIMATES_KEPT:
                _KEPT.clear()
            _KEPT[key] = base
    if base is None:
        return None
    value, sd, size, notes = base
    age_hours = max(float(data_age_s or 0.0), 0.0) / 3600.0
    age_sd = age_drift * abs(value) * math.sqrt(age_hours)
    return MetricEstimate(value, math.sqrt(sd ** 2 + age_sd ** 2), size,
                          list(notes))


def combine(current, earlier):
    """One estimate from two independent ones of the same quantity: the
    precision-weighted mean of ``current`` (this run's samples) and
    ``earlier`` (earlier runs' samples, their age already in their
    ``sd``), with the sd of that mean.  Either may be None (the other is
    returned).

    Both must be raw sample estimates (before :func:`adjust`): the
    contention model and the scale-up apply once, to the combination, so
    their uncertainty is not counted as if each run had its own.
    """
    if earlier is None:
        return current
    if current is None:
        return earlier
    if not (current.sd > 0 and earlier.sd > 0):
        # A zero sd is an exact figure: it decides alone.
        return current if not current.sd > 0 else earlier
    w_current, w_earlier = current.sd ** -2, earlier.sd ** -2
    total = w_current + w_earlier
    value = (current.value * w_current + earlier.value * w_earlier) / total
    return MetricEstimate(
        value, math.sqrt(1.0 / total), current.samples + earlier.samples,
        list(current.notes) + ["with %d earlier samples (%.0f %% of the "
                               "weight)" % (earlier.samples,
                                            100.0 * w_earlier / total)])


def _estimate(metric, samples):
    """``(value, sd, size, notes)`` of the samples alone (no age), or
    None."""
    bounds = (PERCENT_BOUNDS if metric in catalogue.PERCENT_METRICS
              else NONNEGATIVE_BOUNDS)
    cleaned = series.clean(list(samples) if not isinstance(
        samples, np.ndarray) else samples, bounds=bounds)
    data = cleaned.values
    if data.size == 0:
        return None
    notes = list(cleaned.notes)
    value = float(np.mean(data))
    if data.size < MIN_SAMPLES:
        sd = FEW_SAMPLES_RELATIVE_SD * max(abs(value), 1e-9)
        if data.size > 1:
            sd = max(sd, float(np.std(data, ddof=1)))
        notes.append("only %d samples" % data.size)
    else:
        sd = math.sqrt(standard_error(data) ** 2 + drift(data) ** 2)
    return value, sd, int(data.size), tuple(notes)


def fit_age_drift(runs, *, min_pairs=MIN_DRIFT_PAIRS, margin_sd=1.0):
    """The relative drift per sqrt(hour) that repeated runs show.

    ``runs`` holds one sequence per (workload, host, metric): the runs of
    that workload's shadows on that host as ``(time_s, mean, sd_of_mean)``
    in any order.  Consecutive runs ``a``, ``b`` form a pair; with ``m``
    the mean of their two means, the pair's squared relative change
    ``((mean_b - mean_a) / m) ** 2`` is expected to be its sampling
    variance ``(sd_a ** 2 + sd_b ** 2) / m ** 2`` plus ``drift ** 2``
    times the hours between them (a random walk of the value, the model
    :func:`from_samples` ages data with).  The squared drift is estimated
    as the summed excess over the summed hours (a pair counts in
    proportion to its gap), raised by ``margin_sd`` standard errors of
    that sum, so that few or scattered pairs state a larger drift rather
    than a confidently small one.

    Returns
    -------
    (drift, pairs)
        ``drift`` is None when fewer than ``min_pairs`` pairs exist (or
        none has a positive gap); ``pairs`` is how many were used.
    """
    excesses, gaps = [], []
    for run in runs:
        ordered = sorted((float(t), float(m), float(s))
                         for t, m, s in run)
        for (t_a, m_a, s_a), (t_b, m_b, s_b) in zip(ordered, ordered[1:]):
            gap_h = (t_b - t_a) / 3600.0
            base = (abs(m_a) + abs(m_b)) / 2.0
            if gap_h <= 0 or base <= 1e-9 or not all(
                    math.isfinite(v) for v in (m_a, m_b, s_a, s_b)):
                continue
            change = ((m_b - m_a) / base) ** 2
            sampling = (s_a ** 2 + s_b ** 2) / base ** 2
            excesses.append(change - sampling)
            gaps.append(gap_h)
    pairs = len(gaps)
    if pairs < max(int(min_pairs), 1):
        return None, pairs
    excess, hours = np.array(excesses), np.array(gaps)
    squared = float(np.sum(excess) / np.sum(hours))
    spread = math.sqrt(float(np.sum((excess - squared * hours) ** 2)))
    upper = (float(np.sum(excess)) + margin_sd * spread) / float(
        np.sum(hours))
    return math.sqrt(max(upper, 0.0)), pairs


def run_summary(data):
    """``(mean, sd_of_mean)`` of one run's samples (the autocorrelation-
    corrected standard error and the within-run drift), or None when it
    has fewer than ``MIN_SAMPLES`` finite samples within
    :data:`.series.MAX_MAGNITUDE`."""
    data = np.asarray(data, dtype=float)
    data = data[np.isfinite(data)]
    # What series.clean leaves out too: no measurement is this large.
    data = data[np.abs(data) <= series.MAX_MAGNITUDE]
    if data.size < MIN_SAMPLES:
        return None
    return (float(np.mean(data)),
            math.sqrt(standard_error(data) ** 2 + drift(data) ** 2))


def standard_error(data):
    """Standard error of the mean with an autocorrelation correction."""
    spread = float(np.std(data, ddof=1))
    if spread == 0:
        return 0.0
    centred = data - data.mean()
    lag1 = float(np.dot(centred[1:], centred[:-1])
                 / np.dot(centred, centred))
    lag1 = min(max(lag1, 0.0), 0.95)
    effective = max(data.size * (1 - lag1) / (1 + lag1), 1.0)
    return spread / math.sqrt(effective)


def drift(data):
    """Half the difference between the means of the two halves."""
    half = data.size // 2
    if half < 2:
        return 0.0
    return abs(float(np.mean(data[half:]) - np.mean(data[:half]))) / 2


def adjust(metric, estimate, *, features=None, contention=None,
           scale=None, scaleup=None, horizon_s=86400.0, lifetime=None):
    """Apply contention, the lifetime outlook and scale-up; return
    (estimate, reasons).

    ``horizon_s`` is how long ahead the VM's co-tenancy is predicted (the
    VM itself plus the host's expected net arrivals over that time).
    ``lifetime`` is ``(change, sd, horizon_s)``: the change of the metric
    the host's own forecast load brings over the VM's first hours and its
    uncertainty (:func:`shadow_service.analysis.lifetime.lifetime_shift`).
    """
    reasons = []
    value, sd = estimate.value, estimate.sd
    # What measuring again can narrow: the estimate as it comes in.
    measured_sd = estimate.measurable_sd
    if contention is not None and features:
        added = contention_lib.expected_added_instances(features, horizon_s)
        try:
            modelled = float(contention.predict(features).mean[0])
            delta, delta_sd = contention.degradation(features, added)
        except (ValueError, KeyError) as error:
            reasons.append("%s: contention model not applied (%s)"
                           % (metric, error))
        else:
            disagreement = abs(modelled - value)
            value += delta
            sd = math.sqrt(sd ** 2 + delta_sd ** 2
                           + (0.5 * disagreement) ** 2)
            if added > 1.0:
                expected = ("from this VM and %.1f more expected over "
                            "%.0f h" % (added - 1.0, horizon_s / 3600.0))
            else:
                expected = "from one more VM"
            reasons.append("%s: %+.3g expected %s; shadow %.3g vs model "
                           "%.3g" % (metric, delta, expected,
                                     estimate.value, modelled))
    if lifetime is not None:
        change, change_sd, lifetime_s = lifetime
        if change or change_sd:
            base = max(abs(value), 1e-9)
            value += change
            sd = math.hypot(sd, change_sd)
            reasons.append("%s: %+.3g (%+.1f %%) over the next %.0f h from "
                           "the host's forecast load" % (
                               metric, change, 100.0 * change / base,
                               lifetime_s / 3600.0))
    if metric in catalogue.PERCENT_METRICS:
        value = min(max(value, 0.0), 100.0)
    else:
        value = max(value, 0.0)
    common_sd = 0.0
    if scaleup is not None and scale:
        factor = scaleup.factor(metric, scale)
        if factor.factor != 1.0 or factor.log_sd:
            value *= factor.factor
            sd *= factor.factor
            measured_sd *= factor.factor
            common_sd = value * factor.log_sd
    return MetricEstimate(value, sd, estimate.samples, estimate.notes,
                          common_sd, measured_sd), reasons
