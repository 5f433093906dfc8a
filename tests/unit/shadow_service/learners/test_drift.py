"""The age drift learner on a real store, and the evaluator using it."""

import math

import numpy as np
import pytest

from shadow_service import measurements as names
from shadow_service.history import base
from shadow_service.history import sqlite
from shadow_service.learners import drift as drift_mod

HOUR = 3600.0
T0 = 1_796_000_000.0
REQUEST = {'flavor': {'name': 'm1.large', 'vcpus': 4, 'ram_mb': 8192,
                      'disk_gb': 40},
           'profile': 'db-oltp'}


@pytest.fixture
def store(tmp_path):
    store = sqlite.SQLiteStore(path=str(tmp_path / 'history.sqlite'))
    yield store
    store.close()


def _write_runs(store, *, drift, hosts=6, runs=8, request=REQUEST, seed=0,
                prefix='e', level=1000.0, offset_s=0.0):
    """Repeated shadow runs of ``request`` on ``hosts`` hosts, one
    evaluation every two hours, whose level walks by ``drift`` per
    sqrt(hour); returns the time of the last."""
    rng = np.random.default_rng(seed)
    levels = {'node-%d' % h: level for h in range(hosts)}
    when = T0
    for number in range(runs):
        when = T0 + offset_s + number * 2 * HOUR
        evaluation_id = '%s-%d' % (prefix, number)
        points = []
        for host in levels:
            levels[host] *= 1 + drift * math.sqrt(2.0) * \
                rng.standard_normal()
            for sample in range(12):
                points.append(base.Point(names.SHADOW_SAMPLE, {
                    names.TAG_EVALUATION: evaluation_id,
                    names.TAG_HOST: host,
                    names.TAG_PROFILE: request['profile'],
                    names.TAG_METRIC: 'cpu_ops_per_s'},
                    {names.FIELD_VALUE: levels[host] * (
                        1 + 0.01 * rng.standard_normal())},
                    when + 5.0 * sample))
        store.write(points)
        store.put_evaluation({'evaluation_id': evaluation_id,
                              'request': request, 'hosts': []},
                             when=when + 60.0)
    return when + 60.0


def test_the_learner_measures_how_fast_hosts_change(store):
    now = _write_runs(store, drift=0.1)
    learner = drift_mod.AgeDriftLearner(store, lookback_s=30 * HOUR,
                                        min_pairs=20, clock=lambda: now)
    learned = learner.age_drift()
    assert learned.pairs == 6 * 7
    assert learned.by_metric['cpu_ops_per_s'] == pytest.approx(0.1,
                                                               rel=0.4)
    assert learned.overall == learned.by_metric['cpu_ops_per_s']
    # Metrics without their own pairs keep the configured drift.
    assert learned.default is None


def test_steady_hosts_learn_a_small_drift_but_not_below_the_floor(store):
    now = _write_runs(store, drift=0.0)
    learner = drift_mod.AgeDriftLearner(store, lookback_s=30 * HOUR,
                                        floor=0.004, clock=lambda: now)
    learned = learner.age_drift()
    assert 0.004 <= learned.by_metric['cpu_ops_per_s'] < 0.02


def test_other_workloads_are_not_paired(store):
    # Runs alternate between two flavor sizes on the same hosts: pairing
    # them would read the size difference as drift.
    small = dict(REQUEST, flavor=dict(REQUEST['flavor'], vcpus=1))
    _write_runs(store, drift=0.0, runs=8, prefix='big')
    now = _write_runs(store, drift=0.0, runs=8, prefix='small',
                      request=small, seed=1, level=250.0, offset_s=HOUR)
    learner = drift_mod.AgeDriftLearner(store, lookback_s=30 * HOUR,
                                        clock=lambda: now)
    runs = learner.runs()['cpu_ops_per_s']
    assert len(runs) == 12          # 6 hosts x 2 workloads
    assert all(len(run) == 8 for run in runs)
    assert learner.age_drift().by_metric['cpu_ops_per_s'] < 0.02


def test_too_little_history_keeps_the_configured_drift(store):
    now = _write_runs(store, drift=0.1, hosts=1, runs=3)
    learner = drift_mod.AgeDriftLearner(store, lookback_s=30 * HOUR,
                                        clock=lambda: now)
    learned = learner.age_drift()
    assert learned.by_metric == {} and learned.overall is None


def test_a_failing_store_keeps_the_last_drift(store):
    now = _write_runs(store, drift=0.1)
    learner = drift_mod.AgeDriftLearner(store, lookback_s=30 * HOUR,
                                        refit_every=1, refit_interval_s=0,
                                        clock=lambda: now)
    first = learner.age_drift()

    def broken(*args, **kwargs):
        raise RuntimeError('store down')

    store.query_points = broken
    assert learner.age_drift() is first
    assert learner.failures == 1


def test_bad_options_are_refused(store):
    with pytest.raises(ValueError, match='min_pairs'):
        drift_mod.AgeDriftLearner(store, min_pairs=0)


def test_a_run_of_samples_too_large_to_summarise_is_left_out(store):
    now = _write_runs(store, drift=0.1)
    # One more host in the last run whose shadow sent the largest value
    # the collector accepts among its samples.
    store.write([base.Point(names.SHADOW_SAMPLE, {
        names.TAG_EVALUATION: 'e-7', names.TAG_HOST: 'node-odd',
        names.TAG_PROFILE: REQUEST['profile'],
        names.TAG_METRIC: 'cpu_ops_per_s'}, {names.FIELD_VALUE: value},
        now - 100.0 + index)
        for index, value in enumerate([1000.0, 1e300, 1010.0, 990.0])])
    learner = drift_mod.AgeDriftLearner(store, lookback_s=30 * HOUR,
                                        min_pairs=20, clock=lambda: now)
    learned = learner.age_drift()
    assert learner.failures == 0
    assert learned.pairs == 6 * 7
    assert learned.by_metric['cpu_ops_per_s'] == pytest.approx(0.1,
                                                               rel=0.4)


def test_how_many_evaluations_pass_between_refits_is_an_option(tmp_path):
    """Where few VMs are placed the count, not the interval, holds new
    repeated runs back; ``age_drift_refit_every = 1`` with no interval
    refits at the next evaluation."""
    from oslo_config import cfg

    from shadow_service import conf as shadow_conf
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf([], project='nova-shadow-test')
    assert conf.analysis.age_drift_refit_every == 20
    conf.set_override('age_drift_refit_interval', 0.0, group='analysis')

    def pairs_learned_at_the_second_evaluation(name):
        store = sqlite.SQLiteStore(path=str(tmp_path / name))
        try:
            now = [T0]
            learner = drift_mod.AgeDriftLearner.from_conf(
                conf, store, clock=lambda: now[0])
            assert learner.age_drift().pairs == 0       # first fit
            now[0] = _write_runs(store, drift=0.1)
            return learner.refit_every, learner.age_drift().pairs
        finally:
            store.close()

    assert pairs_learned_at_the_second_evaluation('default') == (20, 0)
    conf.set_override('age_drift_refit_every', 1, group='analysis')
    assert pairs_learned_at_the_second_evaluation('every') == (1, 6 * 7)
    with pytest.raises(ValueError):
        conf.set_override('age_drift_refit_every', 0, group='analysis')
