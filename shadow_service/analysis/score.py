"""Performance Score: weighted average of normalised metrics, 0-100.

Each metric is first turned into a "goodness" where more is better
(the value itself for throughput, 1/value for latency, and
``1 / (1 + value / STEAL_HALF_PCT)`` for percentages such as steal, so
10 % steal halves the goodness), then divided by the best goodness among the
candidate hosts, so 1.0 means "as good as the best host" and the score of
a host is ``100 * sum(w * normalised) / sum(w)`` over the metrics it has.
The same function scores Monte Carlo draws (an extra trailing axis), which
is how :mod:`.confidence` turns uncertainties into probabilities.
"""

import numpy as np

from shadow_service.workloads import catalogue

EPSILON = 1e-9
STEAL_HALF_PCT = 10.0


def goodness(metric, values):
    """Map a metric's values to "more is better"."""
    values = np.asarray(values, dtype=float)
    if metric in catalogue.PERCENT_METRICS:
        return 1.0 / (1.0 + np.clip(values, 0.0, 100.0) / STEAL_HALF_PCT)
    if catalogue.METRIC_DIRECTIONS.get(metric) == catalogue.LOWER:
        return 1.0 / np.maximum(values, EPSILON)
    return np.maximum(values, 0.0)


def normalised(metrics, values):
    """Normalise a (hosts, metrics[, draws]) array host-wise to 0..1.

    NaN marks a missing value and stays NaN. A metric whose best goodness
    is zero gives every host 1.0 (it cannot tell them apart).
    """
    result = np.empty_like(values, dtype=float)
    for column, metric in enumerate(metrics):
        good = goodness(metric, values[:, column])
        if good.size and _complete(good, result[:, column]):
            continue
        good = np.where(np.isnan(values[:, column]), np.nan, good)
        best = np.nanmax(good, axis=0) if np.isfinite(good).any() \
            else np.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            result[:, column] = np.where(best > EPSILON, good / best, 1.0)
        result[:, column][np.isnan(values[:, column])] = np.nan
    return result


def _complete(good, out):
    """:func:`normalised` of one metric's goodness ``good`` into ``out``
    when no value is missing and every best is finite (Monte Carlo draws
    of a thousand hosts: the same figures without the masks); False,
    ``out`` unwritten, otherwise."""
    best = np.max(good, axis=0)
    if np.isnan(best).any() or np.isinf(best).any():
        return False
    with np.errstate(invalid="ignore", divide="ignore"):
        np.copyto(out, np.where(best > EPSILON, good / best, 1.0))
    return True


def scores(metrics, weights, values):
    """Scores 0..100 of a (hosts, metrics[, draws]) array of values.

    Hosts without any weighted metric get NaN.
    """
    norm = normalised(metrics, values)
    weight = np.asarray([weights[m] for m in metrics], dtype=float)
    if values.ndim == 3 and norm.shape[1] and not np.isnan(norm).any():
        return _complete_draws(norm, weight)
    shape = (1, len(metrics)) + (1,) * (values.ndim - 2)
    weight = weight.reshape(shape)
    present = ~np.isnan(norm)
    total = np.sum(np.where(present, weight, 0.0), axis=1)
    weighted = np.sum(np.where(present, norm * weight, 0.0), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 100.0 * weighted / total, np.nan)


def _complete_draws(norm, weight):
    """:func:`scores` of (hosts, metrics, draws) normalised values where
    every host has every metric: the same sums, in the same order (metric
    by metric), without the masks for missing values (Monte Carlo draws
    of a thousand hosts are about a million values)."""
    weighted = norm[:, 0] * weight[0]
    total = weight[0]
    for column in range(1, norm.shape[1]):
        weighted += norm[:, column] * weight[column]
        total += weight[column]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 100.0 * weighted / total, np.nan)
