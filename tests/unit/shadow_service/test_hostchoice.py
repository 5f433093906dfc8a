"""Which hosts may take a VM and how cost weighs against score, alone and
inside a real evaluation on the twin."""

import pytest

from shadow_service import evaluation
from shadow_service import hostchoice
from shadow_service.analysis import analyzer as analyzer_mod
from shadow_service.clouds import base
from shadow_service.clouds.sim import driver as sim_driver
from shadow_service.history import memory
from tests import service_support

REQUEST = {'flavor': {'name': 'm1.large', 'vcpus': 4, 'ram_mb': 8192,
                      'disk_gb': 40},
           'profile': 'db-oltp'}


def _ranking(*scores):
    return {'confidence': 0.9, 'hosts': [
        {'host': h, 'score': s, 'confidence': 0.9, 'predicted': {'x': 1.0},
         'reasons': []} for h, s in scores]}


def test_unavailable_hosts_say_why():
    assert hostchoice.unavailable(base.HostInfo('a', up=False)) == 'is down'
    assert hostchoice.unavailable(base.HostInfo('a', disabled=True)) == (
        'is disabled (maintenance)')
    assert hostchoice.unavailable(
        base.HostInfo('a', availability_zone='az2'), 'az1') == (
        'is in zone az2, not az1')
    assert hostchoice.unavailable(base.HostInfo('a'), 'az1') is None
    assert hostchoice.unavailable(
        base.HostInfo('a', availability_zone='az1'), 'az1') is None


def test_cap_excludes_only_hosts_known_to_cost_more():
    policy = hostchoice.CostPolicy('cap', max_cost=2.0,
                                   host_costs={'b': 3.0})
    costs = policy.costs([{'host': 'a', 'cost': 1.5}, {'host': 'b'},
                          {'host': 'c'}])
    assert costs == {'a': 1.5, 'b': 3.0}
    assert policy.exclusions(['a', 'b', 'c'], costs, {}) == {
        'b': 'costs 3 > 2'}


def test_scheduler_cost_wins_over_configured_cost():
    policy = hostchoice.CostPolicy(host_costs={'a': 9.0})
    assert policy.costs([{'host': 'a', 'cost': 2.0}]) == {'a': 2.0}


def test_per_cost_ranks_by_score_per_cost():
    policy = hostchoice.CostPolicy('per_cost')
    result = policy.apply(_ranking(('fast', 90.0), ('cheap', 80.0)),
                          {'fast': 2.0, 'cheap': 1.0}, {})
    assert [h['host'] for h in result['hosts']] == ['cheap', 'fast']
    fast = result['hosts'][1]
    assert fast['score'] == 45.0 and fast['performance_score'] == 90.0
    assert fast['cost'] == 2.0
    assert 'per cost' in fast['reasons'][0]


def test_excluded_hosts_score_zero_with_the_reason_first():
    policy = hostchoice.CostPolicy()
    result = policy.apply(_ranking(('a', 90.0), ('b', 80.0)), {},
                          {'a': 'is disabled (maintenance)'})
    assert [h['host'] for h in result['hosts']] == ['b', 'a']
    excluded = result['hosts'][1]
    assert (excluded['score'], excluded['confidence']) == (0.0, 1.0)
    assert excluded['performance_score'] == 90.0
    assert excluded['reasons'][0] == (
        'may not take the VM: is disabled (maintenance)')


@pytest.mark.parametrize('options, field', [
    ({'policy': 'cheapest'}, 'cost policy'),
    ({'policy': 'cap'}, 'max_host_cost'),
    ({'default_cost': 0.0}, 'default_host_cost'),
    ({'host_costs': {'a': -1}}, 'host_costs'),
    ({'host_costs': {'a': 'cheap'}},
     r'\[shadow\] host_costs: the cost of a, cheap, is not a finite'),
    ({'host_costs': {'a': 'nan'}}, 'the cost of a, nan, is not a finite'),
    ({'host_costs': {'a\nERROR forged': 'inf'}},
     r'the cost of a\\nERROR forged, inf, is not'),
])
def test_bad_policy_names_the_field(options, field):
    with pytest.raises(ValueError, match=field):
        hostchoice.CostPolicy(**options)


class MaintenanceTwin(sim_driver.SimDriver):
    """The twin with some hosts disabled or in another zone, as Nova's
    compute services would list them."""

    disabled = ()
    zones = {}

    def list_hosts(self):
        return [base.HostInfo(h, disabled=h in self.disabled,
                              availability_zone=self.zones.get(h, 'nova'))
                for h in ('node-1', 'node-2', 'node-3', 'node-4')]


def _evaluator(policy, **driver_attrs):
    conf = service_support.make_conf(sim={'unknown_hosts': 'derive'})
    history = memory.MemoryStore()
    # Its hosts made up before the evaluations, whose budget would
    # otherwise pay for it (service_support.twin_with_hosts).
    driver = service_support.twin_with_hosts(conf, history, HOSTS,
                                             twin=MaintenanceTwin)
    for name, value in driver_attrs.items():
        setattr(driver, name, value)
    booted = []
    boot = driver.boot_shadows

    def recording_boot(evaluation_id, request, hosts, profile, **kwargs):
        booted.extend(hosts)
        return boot(evaluation_id, request, hosts, profile, **kwargs)

    driver.boot_shadows = recording_boot
    evaluator = evaluation.Evaluator(
        driver, history, analyzer_mod.Analyzer(), sample_interval=1.0,
        min_run_time=2.0, cost_policy=policy)
    return evaluator, booted


HOSTS = [{'host': 'node-%d' % i} for i in range(1, 5)]


def test_hosts_in_maintenance_or_over_the_cap_get_no_shadow_and_score_0():
    policy = hostchoice.CostPolicy('cap', max_cost=2.0,
                                   host_costs={'node-4': 5.0})
    evaluator, booted = _evaluator(policy, disabled=('node-1',),
                                   zones={'node-2': 'az2'})
    request = dict(REQUEST, availability_zone='nova')
    ranking = evaluator.run(evaluator.new(request, HOSTS, 20.0))
    assert set(booted) == {'node-3'}
    by_host = {h['host']: h for h in ranking['hosts']}
    assert ranking['hosts'][0]['host'] == 'node-3'
    for host, why in (('node-1', 'is disabled (maintenance)'),
                      ('node-2', 'is in zone az2, not nova'),
                      ('node-4', 'costs 5 > 2')):
        assert by_host[host]['score'] == 0.0
        assert by_host[host]['reasons'][0] == 'may not take the VM: ' + why
    assert by_host['node-4']['cost'] == 5.0
    assert ranking['cost_policy'] == 'cap'
    assert evaluator.driver.list_shadows() == []


def test_no_host_may_take_the_vm_answers_without_shadows():
    evaluator, booted = _evaluator(hostchoice.CostPolicy(),
                                   disabled=('node-1', 'node-2', 'node-3',
                                             'node-4'))
    ranking = evaluator.run(evaluator.new(REQUEST, HOSTS, 10.0))
    assert booted == []
    assert ranking['source'] == 'history'
    assert all(h['score'] == 0.0 for h in ranking['hosts'])


def test_per_cost_evaluation_prefers_the_cheaper_of_close_hosts():
    costs = [dict(h, cost=1.0 if h['host'] == 'node-3' else 4.0)
             for h in HOSTS]
    evaluator, _booted = _evaluator(hostchoice.CostPolicy('per_cost'))
    ranking = evaluator.run(evaluator.new(REQUEST, costs, 20.0))
    by_host = {h['host']: h for h in ranking['hosts']}
    for host, entry in by_host.items():
        if host != 'node-3':
            assert entry['score'] == pytest.approx(
                entry['performance_score'] / 4.0, abs=0.01)
    # A quarter of the cost outweighs any gap of less than 4x.
    assert ranking['hosts'][0]['host'] == 'node-3'
