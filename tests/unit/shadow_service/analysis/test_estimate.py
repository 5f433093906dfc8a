"""Per-metric estimates: the age drift learned from repeated runs."""

import math

import numpy as np
import pytest

from shadow_service.analysis import analyzer as analyzer_lib
from shadow_service.analysis import estimate

HOUR = 3600.0


def _random_walk_runs(drift, *, hosts=40, runs=6, noise=0.0, seed=0):
    """Per host, runs whose mean walks by ``drift`` per sqrt(hour) and is
    read with a relative sampling error ``noise`` (stated with it)."""
    rng = np.random.default_rng(seed)
    all_runs = []
    for _host in range(hosts):
        level, t, host_runs = 100.0, 0.0, []
        for _run in range(runs):
            gap_h = rng.uniform(0.5, 6.0)
            t += gap_h * HOUR
            level *= 1 + drift * math.sqrt(gap_h) * rng.standard_normal()
            read = level * (1 + noise * rng.standard_normal())
            host_runs.append((t, read, noise * level))
        all_runs.append(host_runs)
    return all_runs


@pytest.mark.parametrize('drift', [0.01, 0.05, 0.2])
def test_the_drift_of_a_random_walk_is_recovered(drift):
    learned, pairs = estimate.fit_age_drift(_random_walk_runs(drift),
                                            margin_sd=0.0)
    assert pairs == 40 * 5
    assert learned == pytest.approx(drift, rel=0.25)
    assert estimate.fit_age_drift(_random_walk_runs(drift))[0] >= learned


def test_sampling_error_is_not_taken_for_drift():
    steady = _random_walk_runs(0.0, noise=0.05, seed=1)
    learned, _pairs = estimate.fit_age_drift(steady)
    assert learned < 0.02
    assert estimate.fit_age_drift(steady, margin_sd=0.0)[0] < 0.01
    # Not subtracting it would have read 5 % noise as drift.
    unstated = [[(t, m, 0.0) for t, m, _s in run] for run in steady]
    assert estimate.fit_age_drift(unstated)[0] > 0.03


def test_few_pairs_state_a_larger_drift_than_many():
    few = _random_walk_runs(0.05, hosts=4, seed=2)
    many = _random_walk_runs(0.05, hosts=400, seed=2)
    central = estimate.fit_age_drift(few, margin_sd=0.0)[0]
    assert estimate.fit_age_drift(few)[0] > central
    assert estimate.fit_age_drift(many)[0] == pytest.approx(0.05, rel=0.1)


def test_too_few_pairs_learn_nothing():
    runs = _random_walk_runs(0.05, hosts=2, runs=3)
    assert estimate.fit_age_drift(runs, min_pairs=20) == (None, 4)
    assert estimate.fit_age_drift([], min_pairs=1) == (None, 0)


def test_runs_are_paired_in_time_order_whatever_their_order():
    runs = _random_walk_runs(0.05, seed=3)
    shuffled = [list(reversed(run)) for run in runs]
    assert estimate.fit_age_drift(shuffled) == estimate.fit_age_drift(runs)


def test_run_summary_needs_min_samples():
    assert estimate.run_summary([1.0, 2.0]) is None
    mean, sd = estimate.run_summary([10.0, 11.0, 9.0, 10.0])
    assert mean == pytest.approx(10.0)
    assert sd > 0


class _Drift:
    def __init__(self, default, by_metric):
        self.default = default
        self.by_metric = by_metric


def test_a_learned_drift_ages_the_prior_per_metric():
    observations = {'a': {'cpu_ops_per_s': [100.0, 101.0, 99.0, 100.0]},
                    'b': {'cpu_ops_per_s': [96.0, 97.0, 95.0, 96.0]}}
    ages = {'a': 9 * HOUR, 'b': 9 * HOUR}
    assumed = analyzer_lib.Analyzer(age_drift=0.05)
    learned = assumed.with_age_drift(_Drift(0.2, {'cpu_ops_per_s': 0.005}))
    assert learned.drift_of('cpu_ops_per_s') == 0.005
    assert learned.drift_of('net_p95_rtt_ms') == 0.2
    assert assumed.drift_of('cpu_ops_per_s') == 0.05
    stale = assumed.rank({'cpu': 1.0}, observations, data_age_s=ages)
    steady = learned.rank({'cpu': 1.0}, observations, data_age_s=ages)
    assert steady.host('a').uncertainty['cpu_ops_per_s'] < \
        stale.host('a').uncertainty['cpu_ops_per_s'] / 3
    assert steady.confidence > stale.confidence
    # Nothing learned yet: the same analyzer.
    assert assumed.with_age_drift(_Drift(None, {})) is assumed
    assert assumed.with_age_drift(None) is assumed


def test_combine_weighs_each_estimate_by_its_precision():
    current = estimate.MetricEstimate(110.0, 10.0, 2, [])
    earlier = estimate.MetricEstimate(100.0, 5.0, 30, [])
    both = estimate.combine(current, earlier)
    # Weights 1/100 and 1/25: four fifths on the earlier estimate.
    assert both.value == pytest.approx(102.0)
    assert both.sd == pytest.approx(math.sqrt(1.0 / (1 / 100 + 1 / 25)))
    assert both.sd < min(current.sd, earlier.sd)
    assert both.samples == 32
    assert estimate.combine(current, None) is current
    assert estimate.combine(None, earlier) is earlier


def test_old_samples_weigh_less_in_a_combination():
    fresh = estimate.from_samples('cpu_ops_per_s', [110.0, 111.0, 109.0])
    samples = [100.0, 101.0, 99.0, 100.0, 100.5, 99.5]
    recent = estimate.combine(fresh, estimate.from_samples(
        'cpu_ops_per_s', samples, data_age_s=0.5 * HOUR, age_drift=0.1))
    old = estimate.combine(fresh, estimate.from_samples(
        'cpu_ops_per_s', samples, data_age_s=20 * HOUR, age_drift=0.1))
    assert abs(old.value - fresh.value) < abs(recent.value - fresh.value)
    assert old.sd > recent.sd


def test_a_host_measured_again_is_estimated_with_its_earlier_samples():
    analyzer = analyzer_lib.Analyzer()
    new = {'a': {'cpu_ops_per_s': [104.0]}, 'b': {'cpu_ops_per_s': [96.0]}}
    earlier = {'a': {'cpu_ops_per_s': [100.0, 101.0, 99.0, 100.0] * 3},
               'b': {'cpu_ops_per_s': [100.0, 99.0, 101.0, 100.0] * 3}}
    alone = analyzer.rank({'cpu': 1.0}, new)
    joined = analyzer.rank({'cpu': 1.0}, new, earlier=earlier,
                           earlier_age_s={'a': 600.0, 'b': 600.0})
    for host in ('a', 'b'):
        value = joined.host(host).predicted['cpu_ops_per_s']
        assert 99.0 < value < 101.0
        assert (joined.host(host).uncertainty['cpu_ops_per_s']
                < alone.host(host).uncertainty['cpu_ops_per_s'])
    # Earlier samples alone do not make a host measured.
    only_a = analyzer.rank({'cpu': 1.0}, {'a': new['a']}, earlier=earlier)
    assert [h.host for h in only_a.hosts if h.predicted] == ['a']


def test_what_the_models_add_is_not_measurable():
    """The load forecast (and the contention model) widen an estimate's
    sd; a new shadow narrows only the samples' part, which the adjusted
    estimate keeps apart."""
    sampled = estimate.MetricEstimate(100.0, 2.0, 10, [])
    adjusted, _reasons = estimate.adjust(
        'cpu_ops_per_s', sampled, lifetime=(-20.0, 15.0, 86400.0))
    assert adjusted.value == pytest.approx(80.0)
    assert adjusted.sd == pytest.approx(math.hypot(2.0, 15.0))
    assert adjusted.measurable_sd == pytest.approx(2.0)
    # Without models the whole sd is measurable.
    plain, _reasons = estimate.adjust('cpu_ops_per_s', sampled)
    assert plain.measurable_sd == plain.sd == pytest.approx(2.0)
