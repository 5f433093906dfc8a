"""The contention learner inside real evaluations on the twin."""

import json

import numpy as np
import pytest

from shadow_service import evaluation
from shadow_service import learners
from shadow_service import measurements as names
from shadow_service.analysis import analyzer as analyzer_mod
from shadow_service.clouds.sim import driver as sim_driver
from shadow_service.history import base
from shadow_service.history import memory
from shadow_service.history import sqlite
from shadow_service.learners import base as learner_base
from shadow_service.learners import contention as learning
from tests import service_support

# These tests name hosts node-1, node-2...: the twin makes them up.
DERIVE = {'unknown_hosts': 'derive'}

REQUEST = {'flavor': {'name': 'm1.large', 'vcpus': 4, 'ram_mb': 8192,
                      'disk_gb': 40},
           'profile': 'batch-cpu'}
# A CPU-hungry tenant VM: eight times the batch profile's load.
BUSY_VM = {'flavor': {'name': 'busy', 'vcpus': 16, 'ram_mb': 4096,
                      'disk_gb': 10},
           'profile': 'batch-cpu', 'profile_scale': 8.0}
HOSTS = [{'host': 'node-%d' % i} for i in range(1, 7)]
LOADED_HOSTS = ('node-1', 'node-2', 'node-3')
ROUNDS = 6


class FailingHistory(memory.MemoryStore):
    """A real store whose reads of evaluation records fail."""

    def query_points(self, measurement, *args, **kwargs):
        if measurement == 'evaluation':
            raise base.HistoryError('store unreachable')
        return super().query_points(measurement, *args, **kwargs)


def make_evaluator(history=None, learner=None, **learner_options):
    conf = service_support.make_conf(sim=DERIVE)
    history = history if history is not None else memory.MemoryStore()
    driver = service_support.twin_with_hosts(conf, history, HOSTS)
    if learner is None and learner_options:
        learner = learning.ContentionLearner(history, clock=driver.now,
                                             **learner_options)
    return evaluation.Evaluator(
        driver, history, analyzer_mod.Analyzer(), sample_interval=1.0,
        min_run_time=2.0, prior_lookback=0,
        learners=learners.Learners(contention=learner))


@pytest.fixture(scope='module')
def trained():
    """Six evaluations while busy VMs pile up on three of six hosts."""
    evaluator = make_evaluator(min_rows=20, refit_every=1)
    for _ in range(ROUNDS):
        evaluator.run(evaluator.new(REQUEST, HOSTS, 10.0))
        for host in LOADED_HOSTS:
            evaluator.driver.place_vm(BUSY_VM, host)
        evaluator.driver.wait(300.0)
    last = evaluator.run(evaluator.new(REQUEST, HOSTS, 10.0))
    models = evaluator.learner.models(REQUEST, 'batch-cpu')
    return evaluator, models, last


def test_evaluation_record_keeps_the_host_features_used(trained):
    evaluator, _models, last = trained
    record = evaluator.history.get_evaluation(last['evaluation_id'])
    assert set(record['host_features']) == {h['host'] for h in HOSTS}
    assert record['host_features']['node-1']['num_instances'] >= 9
    assert 'host_features' not in last, 'not part of the RPC ranking'


def test_learned_slopes_follow_the_twins_physics(trained):
    _evaluator, models, _last = trained
    ops = models['cpu_ops_per_s']
    steal = models['cpu_steal_pct']
    # Busy VMs beyond the cores share them: less work, more steal per VM.
    assert ops.slope('num_instances') < 0
    assert steal.slope('num_instances') > 0
    change, change_se = ops.degradation({'num_instances': 12,
                                         'hardware_class': 'legacy'})
    assert change + 2 * change_se < 0


def test_rankings_carry_contention_reasons_once_trained(trained):
    _evaluator, _models, last = trained
    reasons = [r for h in last['hosts'] for r in h['reasons']]
    assert any(r.startswith('cpu_ops_per_s: -')
               and 'expected from one more VM' in r for r in reasons)


def test_only_metrics_with_variation_get_a_model(trained):
    evaluator, models, _last = trained
    rows = evaluator.learner.training_rows()
    assert len(rows) >= 20
    assert set(models) <= {r['metric'] for r in rows}
    assert len(rows) == evaluator.learner.rows


def test_failing_refit_keeps_the_last_good_models(trained):
    evaluator, models, _last = trained
    learner = evaluator.learner
    healthy, failures = learner.history, learner.failures
    learner.history = FailingHistory()
    try:
        kept = learner.refit()
    finally:
        learner.history = healthy
    assert learner.failures == failures + 1
    assert kept[learner_base.workload_key(REQUEST, 'batch-cpu')] == models


def test_untrained_learner_changes_nothing():
    without = make_evaluator()
    with_learner = make_evaluator(min_rows=20, refit_every=1)
    first = without.run(without.new(REQUEST, HOSTS, 10.0, 'same-id'))
    second = with_learner.run(with_learner.new(REQUEST, HOSTS, 10.0,
                                               'same-id'))
    assert with_learner.learner.fits == 1
    assert [(h['host'], h['score'], h['reasons']) for h in first['hosts']] \
        == [(h['host'], h['score'], h['reasons'])
            for h in second['hosts']]


def test_history_read_failure_does_not_fail_the_evaluation():
    history = FailingHistory()
    evaluator = make_evaluator(history=history, min_rows=20, refit_every=1)
    ranking = evaluator.run(evaluator.new(REQUEST, HOSTS, 10.0))
    assert ranking['status'] == 'finished'
    assert len(ranking['hosts']) == len(HOSTS)
    assert evaluator.learner.failures == 1


def test_refits_at_most_every_n_evaluations_and_seconds():
    elapsed = {'s': 0.0}
    learner = learning.ContentionLearner(
        memory.MemoryStore(), refit_every=3, refit_interval_s=60.0,
        monotonic=lambda: elapsed['s'])
    fits = []
    for _ in range(7):
        learner.models(REQUEST, 'batch-cpu')
        fits.append(learner.fits)
    assert fits == [1, 1, 1, 1, 1, 1, 1], 'the interval has not passed'
    elapsed['s'] = 61.0
    learner.models(REQUEST, 'batch-cpu')
    assert learner.fits == 2
    learner.models(REQUEST, 'batch-cpu')
    assert learner.fits == 2, 'fewer than refit_every evaluations'


def test_training_rows_join_median_samples_with_features():
    record = {'request': REQUEST,
              'host_features': {'a': {'num_instances': 3,
                                      'hardware_class': 'x'}}}
    samples = [base.Point('shadow_sample',
                          {'host': host, 'metric': 'cpu_ops_per_s',
                           'profile': 'batch-cpu', 'evaluation': 'e'},
                          {'value': value}, t)
               for t, (host, value) in enumerate(
                   [('a', 10.0), ('a', 30.0), ('a', 11.0), ('b', 5.0)])]
    rows = learning.training_rows(record, samples)
    assert rows == [{'num_instances': 3, 'hardware_class': 'x',
                     'key': ('batch-cpu', 4, 1.0),
                     'metric': 'cpu_ops_per_s', 'host': 'a',
                     'value': 11.0, 'samples': 3}]


def test_recorded_features_are_json_scalars_only():
    kept = learner_base.recordable_features(
        {'a': {'n': 2, 'f': float('nan'), 'cls': 'x', 'obj': object(),
               'ok': 1.5}})
    assert kept == {'a': {'n': 2, 'cls': 'x', 'ok': 1.5}}
    json.dumps(kept)


def test_with_contention_copies_and_leaves_the_analyzer_alone():
    analyzer = analyzer_mod.Analyzer()
    assert analyzer.with_contention({}) is analyzer
    model = object()
    adjusted = analyzer.with_contention({'cpu_ops_per_s': model})
    assert adjusted.contention == {'cpu_ops_per_s': model}
    assert analyzer.contention == {}


def test_conf_wires_the_learner_into_the_evaluator():
    conf = service_support.make_conf(
        sim=DERIVE, shadow={'contention_min_rows': 12,
                            'contention_refit_every': 4})
    store = memory.MemoryStore()
    driver = sim_driver.SimDriver(conf, store)
    evaluator = evaluation.Evaluator.from_conf(
        conf, driver, store, analyzer_mod.Analyzer())
    assert evaluator.learner.min_rows == 12
    assert evaluator.learner.refit_every == 4
    assert evaluator.learner.features == ('num_instances',)
    conf.set_override('contention_learning', False, group='shadow')
    assert evaluation.Evaluator.from_conf(
        conf, driver, store, analyzer_mod.Analyzer()).learner is None


def test_records_and_learner_share_the_drivers_clock():
    # The twin's clock is in 2013; a record stamped with the wall clock
    # would fall outside every lookback window the learner computes.
    conf = service_support.make_conf(sim=DERIVE,
                                     shadow={'contention_min_rows': 5})
    store = memory.MemoryStore()
    driver = service_support.twin_with_hosts(conf, store, HOSTS)
    evaluator = evaluation.Evaluator.from_conf(
        conf, driver, store, analyzer_mod.Analyzer())
    ranking = evaluator.run(evaluator.new(REQUEST, HOSTS, 10.0))
    assert ranking['source'] == 'shadows'

    points = store.query_points('evaluation',
                                {'evaluation': ranking['evaluation_id']})

    # The ``running`` record at the start and the final one, both on the
    # driver's clock, as the store keeps it (to the microsecond: a wait
    # cut short by the budget leaves the twin's clock between two).
    now = base.time_to_us(driver.now())
    times = [base.time_to_us(p.time) for p in points]
    assert len(times) == 2
    assert times[-1] == now
    assert all(now - 60_000_000 <= t <= now for t in times)
    assert evaluator.learner.training_rows(), 'the record is in the window'


def test_samples_too_large_to_be_measurements_do_not_train_the_model(
        tmp_path):
    store = sqlite.SQLiteStore(path=str(tmp_path / 'history.sqlite'))
    rng = np.random.default_rng(0)
    when = 1_796_000_000.0
    for number in range(12):
        evaluation_id = 'e-%d' % number
        features = {'node-%d' % h: {'num_instances': (number + h) % 9}
                    for h in range(3)}
        # A host whose shadow sent the largest value the collector
        # accepts, in every sample of one run.
        features['node-odd'] = {'num_instances': 4}
        points = []
        for host, host_features in features.items():
            level = 1000.0 - 20.0 * host_features['num_instances']
            for sample in range(5):
                value = (1e300 if host == 'node-odd' and number == 11
                         else level + rng.normal(0.0, 2.0))
                points.append(base.Point(names.SHADOW_SAMPLE, {
                    names.TAG_EVALUATION: evaluation_id,
                    names.TAG_HOST: host, names.TAG_PROFILE: 'batch-cpu',
                    names.TAG_METRIC: 'cpu_ops_per_s'},
                    {names.FIELD_VALUE: value}, when + sample))
        store.write(points)
        store.put_evaluation({'evaluation_id': evaluation_id,
                              'request': REQUEST,
                              'host_features': features}, when=when + 60.0)
        when += 600.0
    try:
        learner = learning.ContentionLearner(store, min_rows=10,
                                             clock=lambda: when)
        models = learner.models(REQUEST, 'batch-cpu')
    finally:
        store.close()
    assert models['cpu_ops_per_s'].slope() == pytest.approx(-20.0, abs=1.0)
    ranking = analyzer_mod.Analyzer().with_contention(models).rank(
        {'cpu': 1.0},
        {'a': {'cpu_ops_per_s': [900.0, 910.0, 905.0]},
         'b': {'cpu_ops_per_s': [950.0, 940.0, 945.0]}},
        host_features={'a': {'num_instances': 2},
                       'b': {'num_instances': 6}})
    json.dumps(ranking.to_dict(), allow_nan=False)
    assert [h.host for h in ranking.hosts] == ['b', 'a']


def _store_evaluations(store, features_of, when, count=12):
    """``count`` evaluations of four hosts; ``features_of(number, host)``
    gives a host's recorded features (its ops fall by 20 a VM)."""
    rng = np.random.default_rng(1)
    for number in range(count):
        evaluation_id = 'e-%d' % number
        features = {}
        points = []
        for h in range(4):
            host = 'node-%d' % h
            vms = (number + 2 * h) % 9
            features[host] = features_of(number, host, vms)
            for sample in range(5):
                points.append(base.Point(names.SHADOW_SAMPLE, {
                    names.TAG_EVALUATION: evaluation_id,
                    names.TAG_HOST: host, names.TAG_PROFILE: 'batch-cpu',
                    names.TAG_METRIC: 'cpu_ops_per_s'},
                    {names.FIELD_VALUE: 1000.0 - 20.0 * vms
                     + rng.normal(0.0, 2.0)}, when + sample))
        store.write(points)
        store.put_evaluation({'evaluation_id': evaluation_id,
                              'request': REQUEST,
                              'host_features': features}, when=when + 60.0)
        when += 600.0
    return when


def _learn(tmp_path, features_of, min_rows=20):
    store = sqlite.SQLiteStore(path=str(tmp_path / 'history.sqlite'))
    try:
        end = _store_evaluations(store, features_of, 1_796_000_000.0)
        learner = learning.ContentionLearner(store, min_rows=min_rows,
                                             clock=lambda: end)
        return learner.models(REQUEST, 'batch-cpu')
    finally:
        store.close()


def test_a_row_missing_a_regressor_is_left_out_not_the_model(tmp_path):
    def features_of(number, host, vms):
        # One host's fact went missing in one evaluation (NaN facts are
        # not recorded), another's is not a number in one.
        if (number, host) == (3, 'node-1'):
            return {'cpu_util_pct': 40.0}
        if (number, host) == (7, 'node-2'):
            return {'num_instances': 'x'}
        return {'num_instances': vms}

    models = _learn(tmp_path, features_of)
    assert models['cpu_ops_per_s'].slope() == pytest.approx(-20.0, abs=1.0)
    assert models['cpu_ops_per_s'].dropped_rows == 2


def test_a_regressor_missing_from_most_rows_gives_no_model(tmp_path):
    def features_of(number, host, vms):
        return {'num_instances': vms} if host == 'node-0' else {}

    assert _learn(tmp_path, features_of, min_rows=5) == {}


def test_rows_left_out_count_against_min_rows(tmp_path):
    def features_of(number, host, vms):
        return {} if number < 3 else {'num_instances': vms}

    # 48 rows, 12 without the regressor: 36 complete.
    assert _learn(tmp_path, features_of, min_rows=36)
    assert _learn(tmp_path, features_of, min_rows=37) == {}
