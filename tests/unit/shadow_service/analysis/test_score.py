"""Performance Scores: normalising draws without missing values gives
the figures of the masked computation, whatever the values."""

import numpy as np
import pytest

from shadow_service.analysis import score

METRICS = ['cpu_ops_per_s', 'cpu_steal_pct', 'mem_latency_ns',
           'net_mbps']


def masked(metrics, values):
    """:func:`score.normalised` as defined: missing values masked."""
    result = np.empty_like(values, dtype=float)
    for column, metric in enumerate(metrics):
        good = score.goodness(metric, values[:, column])
        good = np.where(np.isnan(values[:, column]), np.nan, good)
        best = np.nanmax(good, axis=0) if np.isfinite(good).any() \
            else np.nan
        with np.errstate(invalid='ignore', divide='ignore'):
            result[:, column] = np.where(best > score.EPSILON, good / best,
                                         1.0)
        result[:, column][np.isnan(values[:, column])] = np.nan
    return result


@pytest.mark.parametrize('case', ['complete', 'missing', 'zeros',
                                  'infinite', 'one host', 'no host'])
@pytest.mark.parametrize('draws', [None, 50])
def test_normalised_values_are_the_masked_computations(case, draws):
    rng = np.random.default_rng(len(case))
    hosts = {'one host': 1, 'no host': 0}.get(case, 40)
    shape = (hosts, len(METRICS)) + (() if draws is None else (draws,))
    values = rng.uniform(0.0, 200.0, shape)
    if case == 'missing':
        values[3, 1] = np.nan
        values[5:9, 2] = np.nan
        values[:, 3] = np.nan
    elif case == 'zeros':
        values[:, 0] = 0.0
        values[:, 3] = -1.0
    elif case == 'infinite':
        values[2, 0] = np.inf
        values[:, 3] = np.inf
    with np.errstate(invalid='ignore', divide='ignore'):
        np.testing.assert_array_equal(score.normalised(METRICS, values),
                                      masked(METRICS, values))
        weights = dict.fromkeys(METRICS, 1.0)
        assert np.array_equal(score.scores(METRICS, weights, values),
                              _masked_scores(weights, values),
                              equal_nan=True)


def _masked_scores(weights, values):
    norm = masked(METRICS, values)
    weight = np.asarray([weights[m] for m in METRICS]).reshape(
        (1, len(METRICS)) + (1,) * (values.ndim - 2))
    present = ~np.isnan(norm)
    total = np.sum(np.where(present, weight, 0.0), axis=1)
    weighted = np.sum(np.where(present, norm * weight, 0.0), axis=1)
    complete = (values.ndim == 3 and norm.shape[1]
                and not np.isnan(norm).any())
    if complete:
        return score._complete_draws(norm, weight.ravel())
    return np.where(total > 0, 100.0 * weighted / total, np.nan)
