"""The evaluation loop with the real twin, history store and analyzer."""

import pytest

from shadow_service import evaluation
from shadow_service import exception
from shadow_service.analysis import analyzer as analyzer_mod
from shadow_service.analysis import scaleup
from shadow_service.clouds.sim import driver as sim_driver
from shadow_service.history import memory
from tests import service_support

# These tests name hosts node-1, node-2...: the twin makes them up.
DERIVE = {'unknown_hosts': 'derive'}

REQUEST = {'flavor': {'name': 'm1.large', 'vcpus': 4, 'ram_mb': 8192,
                      'disk_gb': 40},
           'profile': 'db-oltp'}
HOSTS = [{'host': 'node-%d' % i} for i in range(1, 7)]


def make_evaluator(analyzer=None, **options):
    conf = service_support.make_conf(sim=DERIVE)
    history = memory.MemoryStore()
    driver = sim_driver.SimDriver(conf, history)
    options.setdefault('sample_interval', 1.0)
    options.setdefault('min_run_time', 2.0)
    return evaluation.Evaluator(
        driver, history, analyzer or analyzer_mod.Analyzer(), **options)


def test_shadows_are_flavor_minimal():
    flavor = scaleup.shadow_flavor(
        {'name': 'big', 'vcpus': 16, 'ram_mb': 65536, 'disk_gb': 100}, 0.25)
    assert flavor == {'name': 'shadow-big', 'vcpus': 4, 'ram_mb': 16384,
                      'disk_gb': 25, 'extra_specs': {}}
    tiny = scaleup.shadow_flavor({'vcpus': 1, 'ram_mb': 512}, 0.1)
    assert tiny['vcpus'] == 1 and tiny['ram_mb'] == 256


def test_evaluation_ranks_every_host_and_leaves_no_shadow():
    evaluator = make_evaluator()
    run = evaluator.new(REQUEST, HOSTS, 20.0)
    seen = []
    ranking = evaluator.run(run, progress=lambda e, r: seen.append(
        e.progress))
    assert {h['host'] for h in ranking['hosts']} == {
        h['host'] for h in HOSTS}
    assert ranking['source'] == 'shadows'
    assert ranking['shadow_host_seconds'] > 0
    assert seen and seen == sorted(seen)
    assert evaluator.driver.list_shadows() == []
    assert evaluator.history.get_evaluation(run.evaluation_id)[
        'request'] == REQUEST


def test_at_most_max_shadow_hosts_run_at_once_and_all_get_measured():
    evaluator = make_evaluator(max_shadow_hosts=3)
    driver = evaluator.driver
    peak = []
    boot = driver.boot_shadows

    def recording_boot(evaluation_id, request, hosts, profile, **kwargs):
        shadows = boot(evaluation_id, request, hosts, profile, **kwargs)
        peak.append(len(driver.list_shadows()))
        return shadows

    driver.boot_shadows = recording_boot
    ranking = evaluator.run(evaluator.new(REQUEST, HOSTS, 60.0))
    assert max(peak) <= 3
    assert len(peak) >= 2, 'freed slots are refilled from the queue'
    assert {h['host'] for h in ranking['hosts']} == {
        h['host'] for h in HOSTS}
    assert driver.list_shadows() == []


def test_history_of_earlier_shadows_is_the_prior():
    evaluator = make_evaluator(confidence_target=0.5)
    first = evaluator.run(evaluator.new(REQUEST, HOSTS, 20.0))
    assert first['source'] == 'shadows'
    second = evaluator.run(evaluator.new(REQUEST, HOSTS, 20.0))
    assert second['source'] == 'history'
    assert second['shadow_host_seconds'] == 0
    assert second['hosts'][0]['host'] == first['hosts'][0]['host']


def test_prior_can_be_disabled():
    evaluator = make_evaluator(confidence_target=0.5, prior_lookback=0)
    evaluator.run(evaluator.new(REQUEST, HOSTS, 20.0))
    again = evaluator.run(evaluator.new(REQUEST, HOSTS, 20.0))
    assert again['source'] == 'shadows'


class ExplodingAnalyzer(analyzer_mod.Analyzer):
    """Fails on the first ranking that has shadow measurements."""

    def rank(self, sensitivity, observations, **kwargs):
        if observations:
            raise RuntimeError('analysis blew up')
        return super().rank(sensitivity, observations, **kwargs)


def test_a_crash_mid_evaluation_leaves_no_shadow_behind():
    evaluator = make_evaluator(analyzer=ExplodingAnalyzer())
    with pytest.raises(RuntimeError, match='blew up'):
        evaluator.run(evaluator.new(REQUEST, HOSTS, 10.0))
    assert evaluator.driver.list_shadows() == []


def test_budget_bounds_the_run():
    evaluator = make_evaluator(confidence_target=1.0)
    ranking = evaluator.run(evaluator.new(REQUEST, HOSTS[:2], 5.0))
    # Two shadows for at most the budget each (on the twin's clock).
    assert 0 < ranking['shadow_host_seconds'] <= 2 * 5.0 + 2


def test_unknown_profile_is_a_typed_error():
    evaluator = make_evaluator()
    with pytest.raises(exception.ProfileNotFound):
        evaluator.run(evaluator.new(dict(REQUEST, profile='nope'), HOSTS,
                                    5.0))


def test_bad_inline_profile_names_the_field():
    evaluator = make_evaluator()
    bad = dict(REQUEST, profile={'name': 'x', 'components': {
        'cpu': {'workers': -2, 'duty_cycle': 0.5}}})
    with pytest.raises(exception.InvalidRequest, match='workers'):
        evaluator.run(evaluator.new(bad, HOSTS, 5.0))


def test_prior_only_uses_shadows_of_the_same_workload():
    evaluator = make_evaluator(confidence_target=0.5)
    evaluator.run(evaluator.new(REQUEST, HOSTS, 20.0))
    bigger = dict(REQUEST, flavor=dict(REQUEST['flavor'], vcpus=16))
    other_size = evaluator.run(evaluator.new(bigger, HOSTS, 20.0))
    assert other_size['source'] == 'shadows'
    scaled = dict(REQUEST, profile_scale=2.0)
    assert evaluator.run(evaluator.new(scaled, HOSTS, 20.0))[
        'source'] == 'shadows'
    assert evaluator.run(evaluator.new(REQUEST, HOSTS, 20.0))[
        'source'] == 'history'
