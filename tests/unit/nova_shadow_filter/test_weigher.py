"""ShadowWeigher driven by Nova's real HostWeightHandler and HostStates.

The shadow service on the other end of ``fake://`` is a scripted endpoint
here (what it answers is the point of each test); the functional tests put
the real service there.
"""

import logging
import math
import threading
import time
import types
import uuid

import nova.conf
import oslo_messaging as messaging
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from nova import objects
from nova.scheduler import manager as nova_manager
from nova.scheduler import weights
from nova.scheduler.weights import ram
from oslo_config import fixture as config_fixture

from nova_shadow_filter import conf as shadow_conf
from nova_shadow_filter import priorcache
from nova_shadow_filter import weigher as shadow_weigher
from shadow_service import exception
from shadow_service import manager
from shadow_service import rpc
from shadow_service import rpcapi
from shadow_service import schema
from tests import nova_support
from tests import service_support

CONF = nova.conf.CONF


@pytest.fixture(autouse=True)
def api_database():
    with nova_support.api_database():
        yield


class OldScriptedService:
    """An RPC endpoint of API 1.1 that answers what the test tells it
    to."""

    target = messaging.Target(version='1.1')

    def __init__(self, answer=None, delay=0.0, error=None):
        self.answer = answer
        self.delay = delay
        self.error = error
        self.calls = []

    @messaging.expected_exceptions(exception.ShadowException)
    def rank_hosts(self, ctxt, request, hosts, budget_s, detail=True):
        self.calls.append(('rank_hosts', request, hosts, budget_s))
        self.detail = detail
        time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.answer

    def get_evaluation(self, ctxt, evaluation_id):
        self.calls.append(('get_evaluation', evaluation_id))
        return {'evaluation_id': evaluation_id, 'status': 'finished',
                'ranking': self.answer}


class ScriptedService(OldScriptedService):
    """:class:`OldScriptedService` of API 1.3: the scripted ranking is
    answered as columns in the request's order (as the service's
    ``columns_reply`` makes them); an answer that is not a ranking is
    answered as is.  Calls are recorded with the hosts as a list."""

    target = messaging.Target(version='1.3')

    @messaging.expected_exceptions(exception.ShadowException)
    def rank_host_columns(self, ctxt, request, hosts, budget_s):
        self.calls.append(('rank_hosts', request,
                           schema.hosts_from_columns(hosts), budget_s))
        self.columns = hosts
        time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        answer = self.answer
        if isinstance(answer, dict) and isinstance(answer.get('hosts'),
                                                   list):
            try:
                return manager.columns_reply(answer, hosts['host'])
            except (KeyError, TypeError):
                pass
        return answer


@pytest.fixture
def flags():
    fixture = config_fixture.Config(CONF)
    fixture.setUp()
    topic = 'shadow-unit-%s' % time.monotonic_ns()
    # The cache of answers from history is off but where a test turns
    # it on (``cached``): each test's requests all reach its service.
    fixture.config(transport_url='fake:/', topic=topic,
                   default_budget=2.0, deadline_margin=0.5,
                   reset_timeout=60.0, prior_cache_ttl=0.0,
                   group='shadow_weigher')
    fixture.config(ram_weight_multiplier=1.0, group='filter_scheduler')
    yield fixture
    fixture.cleanUp()


@pytest.fixture
def serve(flags):
    servers = []

    def start(endpoint):
        transport = rpc.get_transport(CONF, 'fake:/')
        target = messaging.Target(exchange=rpcapi.EXCHANGE,
                                  topic=CONF.shadow_weigher.topic,
                                  server='test')
        server = messaging.get_rpc_server(transport, target, [endpoint])
        server.start()
        servers.append(server)
        return endpoint

    yield start
    for server in servers:
        server.stop()
        server.wait()


def ranking(scores, confidence=1.0):
    return {'evaluation_id': 'e', 'status': 'finished',
            'confidence': confidence,
            'hosts': [{'host': h, 'score': s, 'confidence': confidence}
                      for h, s in scores.items()]}


def neutral():
    """What a host a ranking does not tell apart weighs, multiplied."""
    return shadow_weigher.NEUTRAL * CONF.shadow_weigher.weight_multiplier


def no_effect():
    """What every host of a request without a ranking weighs: nothing,
    whatever its multiplier."""
    return 0.0


def weigh(hosts, spec, weighers=None):
    handler = weights.HostWeightHandler()
    shadow = shadow_weigher.ShadowWeigher()
    weighers = weighers or [shadow]
    weighed = handler.get_weighed_objects(weighers, hosts, spec)
    return [w.obj.host for w in weighed], weighed, shadow


def three_hosts():
    # host1 has the most free RAM, so Nova's RAM weigher prefers it.
    return [nova_support.host_state('host1', free_ram_mb=60000),
            nova_support.host_state('host2', free_ram_mb=30000),
            nova_support.host_state('host3', free_ram_mb=20000)]


def test_no_hint_gives_neutral_weights_without_any_rpc(serve):
    service = serve(ScriptedService(ranking({'host3': 100})))
    spec = nova_support.request_spec()
    order, weighed, _ = weigh(three_hosts(), spec)
    assert service.calls == []
    assert {w.weight for w in weighed} == {no_effect()}


def test_a_clear_ranking_decides_over_the_ram_weigher(serve):
    service = serve(ScriptedService(
        ranking({'host1': 70, 'host2': 75, 'host3': 84})))
    spec = nova_support.request_spec({'shadow_profile': 'web'})
    shadow = shadow_weigher.ShadowWeigher()
    order, weighed, _ = weigh(three_hosts(), spec,
                              [ram.RAMWeigher(), shadow])
    assert order[0] == 'host3'
    assert len(service.calls) == 1
    # The hosts go as columns (RPC API 1.3): no nodename column when
    # every nodename is the host's name, no cost column without costs.
    assert service.columns['host'] == ['host1', 'host2', 'host3']
    assert 'nodename' not in service.columns
    assert 'cost' not in service.columns
    _, request, hosts, budget = service.calls[0]
    assert request['profile'] == 'web'
    assert request['flavor'] == {'name': 'm1.test', 'vcpus': 2,
                                 'ram_mb': 4096, 'disk_gb': 20,
                                 'extra_specs': {}}
    # The shared request builder: a 2 vCPU VM runs the profile as is.
    assert request['profile_scale'] == 1.0
    assert request['instance_uuid'] == spec.instance_uuid
    assert [h['host'] for h in hosts] == ['host1', 'host2', 'host3']
    assert hosts[0]['free_ram_mb'] == 60000
    assert budget == 2.0


def test_near_ties_are_left_to_novas_weighers(serve):
    # host3 leads by less than the tie margin: the RAM weigher decides.
    serve(ScriptedService(ranking({'host1': 83, 'host2': 40, 'host3': 84})))
    order, weighed, _ = weigh(
        three_hosts(), nova_support.request_spec({'shadow_profile': 'web'}),
        [ram.RAMWeigher(), shadow_weigher.ShadowWeigher()])
    assert order[0] == 'host1'
    assert order[-1] == 'host2'


def test_weights_follow_the_documented_mapping(serve):
    serve(ScriptedService(ranking({'host1': 99, 'host2': 94, 'host3': 60})))
    _, weighed, _ = weigh(three_hosts(), nova_support.request_spec(
        {'shadow_profile': 'web'}))
    by_host = {w.obj.host: w.weight for w in weighed}
    multiplier = CONF.shadow_weigher.weight_multiplier
    # 1 within tie_margin (2) of the best, 0 at score_range (12) behind.
    assert by_host['host1'] == pytest.approx(1.0 * multiplier)
    assert by_host['host2'] == pytest.approx((1 - 3 / 10) * multiplier)
    assert by_host['host3'] == pytest.approx(0.0)


def test_confidence_pulls_weights_toward_neutral(serve):
    answer = ranking({'host1': 99, 'host2': 60})
    answer['hosts'][0]['confidence'] = 0.5
    answer['hosts'][1]['confidence'] = 0.0
    serve(ScriptedService(answer))
    _, weighed, _ = weigh(three_hosts()[:2], nova_support.request_spec(
        {'shadow_profile': 'web'}))
    by_host = {w.obj.host: w.weight for w in weighed}
    multiplier = CONF.shadow_weigher.weight_multiplier
    assert by_host['host1'] == pytest.approx(0.75 * multiplier)
    assert by_host['host2'] == pytest.approx(0.5 * multiplier)


def test_budget_hint_is_used_and_clipped(serve, flags):
    flags.config(max_budget=5.0, group='shadow_weigher')
    service = serve(ScriptedService(ranking({'host1': 1})))
    weigh(three_hosts(), nova_support.request_spec(
        {'shadow_profile': 'web', 'shadow_budget': '3.5'}))
    weigh(three_hosts(), nova_support.request_spec(
        {'shadow_profile': 'web', 'shadow_budget': '900'}))
    assert [c[3] for c in service.calls] == [3.5, 5.0]


@pytest.mark.parametrize('bad', ['soon', '-3', 'nan', 'inf', '', 10 ** 400])
def test_bad_budget_hint_falls_back_to_the_default(serve, bad):
    service = serve(ScriptedService(ranking({'host1': 1})))
    weigh(three_hosts(), nova_support.request_spec(
        {'shadow_profile': 'web', 'shadow_budget': bad}))
    assert [c[3] for c in service.calls] == [2.0]


def test_bad_evaluation_hint_is_ignored_without_rpc(serve):
    service = serve(ScriptedService(ranking({'host1': 1})))
    _, weighed, _ = weigh(three_hosts(), nova_support.request_spec(
        {'shadow_evaluation': 'not-a-uuid'}))
    assert service.calls == []
    assert {w.weight for w in weighed} == {no_effect()}


def test_evaluation_hint_looks_up_a_finished_evaluation(serve):
    service = serve(ScriptedService(ranking({'host2': 80, 'host1': 5})))
    evaluation_id = '8f0ab0a4-61f6-4fd8-a4ad-2d3c3c7b3f4e'
    order, _, _ = weigh(three_hosts(), nova_support.request_spec(
        {'shadow_evaluation': evaluation_id}))
    assert service.calls == [('get_evaluation', evaluation_id)]
    assert order[0] == 'host2'


@pytest.fixture
def real_service(flags):
    """The real shadow service on the weigher's topic over ``fake://``."""
    running = service_support.RunningService(
        'fake:/', topic=CONF.shadow_weigher.topic).start()
    running.wait_until_serving()
    yield running
    running.stop()


def _recorded(service, scores, project_id=None):
    """The id of a finished evaluation the service holds only in its
    history, of a request of ``project_id`` (None: a pre-flight)."""
    evaluation_id = str(uuid.uuid4())
    request = {'flavor': {'vcpus': 2, 'ram_mb': 4096}, 'profile': 'web'}
    if project_id is not None:
        request['project_id'] = project_id
    record = dict(ranking(scores), evaluation_id=evaluation_id,
                  request=request)
    service.history.put_evaluation(record, when=time.time())
    return evaluation_id


def test_another_project_s_evaluation_hint_weighs_nothing(real_service,
                                                          caplog):
    # nova_support.request_spec() boots for project-1.
    theirs = _recorded(real_service, {'host3': 95, 'host1': 5},
                       project_id='project-2')
    _, weighed, _ = weigh(three_hosts(), nova_support.request_spec(
        {'shadow_evaluation': theirs}))
    assert {w.weight for w in weighed} == {no_effect()}
    (line,) = [r.getMessage() for r in caplog.records
               if r.name == shadow_weigher.__name__
               and r.levelname == 'WARNING']
    # As for an unknown id, and nothing of the other project's.
    assert 'EvaluationNotFound' in line and theirs in line
    assert 'project-2' not in line and 'host3' not in line
    # The operator's read-back (no project) still finds it.
    assert real_service.client().get_evaluation(
        {}, theirs, timeout=10)['status'] == 'finished'


@pytest.mark.parametrize('project_id', ['project-1', None])
def test_the_project_s_own_or_a_preflight_evaluation_hint_decides(
        real_service, project_id):
    evaluation_id = _recorded(real_service, {'host3': 95, 'host1': 5},
                              project_id=project_id)
    order, _, _ = weigh(three_hosts(), nova_support.request_spec(
        {'shadow_evaluation': evaluation_id}),
        weighers=[ram.RAMWeigher(), shadow_weigher.ShadowWeigher()])
    assert order[0] == 'host3'


def test_hosts_the_ranking_does_not_mention_are_neutral(serve):
    serve(ScriptedService(ranking({'host1': 60})))
    _, weighed, _ = weigh(three_hosts(), nova_support.request_spec(
        {'shadow_profile': 'web'}))
    by_host = {w.obj.host: w.weight for w in weighed}
    assert by_host['host2'] == by_host['host3'] == neutral()
    assert by_host['host1'] == 2 * neutral()


def test_an_older_service_gets_host_lists_from_then_on(serve, caplog):
    # A service of RPC API 1.1 (before host columns): the first request
    # learns it and is still answered; later ones ask 1.1 at once.
    service = serve(OldScriptedService(
        ranking({'host1': 70, 'host2': 75, 'host3': 84})))
    shadow = shadow_weigher.ShadowWeigher()
    handler = weights.HostWeightHandler()
    for _ in range(3):
        weighed = handler.get_weighed_objects(
            [ram.RAMWeigher(), shadow], three_hosts(),
            nova_support.request_spec({'shadow_profile': 'web'}))
        assert weighed[0].obj.host == 'host3'
    assert len(service.calls) == 3
    # Only host, score and confidence come back (RPC API 1.1).
    assert service.detail is False
    assert [h['host'] for h in service.calls[0][2]] == [
        'host1', 'host2', 'host3']
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == 'WARNING']
    assert len(warnings) == 1
    assert 'RPC API 1.3' in warnings[0]
    assert shadow.breaker.state == 'closed'


def test_host_columns_are_tried_again_after_a_while(serve, monkeypatch):
    # The service may be upgraded after the scheduler: once
    # COLUMNS_RETRY_S has passed the weigher asks with columns again.
    service = serve(OldScriptedService(
        ranking({'host1': 70, 'host2': 75, 'host3': 84})))
    shadow = shadow_weigher.ShadowWeigher()
    handler = weights.HostWeightHandler()

    def boot():
        return handler.get_weighed_objects(
            [shadow], three_hosts(),
            nova_support.request_spec({'shadow_profile': 'web'}))

    boot()
    assert shadow._columns is False
    now = time.monotonic()
    monkeypatch.setattr(shadow_weigher, '_clock',
                        lambda: now + shadow_weigher.COLUMNS_RETRY_S + 1)
    # Upgraded: the same endpoint now also takes columns (API 1.3).
    service.target = messaging.Target(version='1.3')
    service.rank_host_columns = types.MethodType(
        ScriptedService.rank_host_columns, service)
    assert boot()[0].obj.host == 'host3'
    assert shadow._columns is True
    assert service.columns['host'] == ['host1', 'host2', 'host3']


def test_nodenames_and_costs_go_as_columns_where_a_host_has_them(serve):
    service = serve(ScriptedService(ranking({'host1': 70, 'host2': 90})))
    hosts = [nova_support.host_state('host1', free_ram_mb=60000),
             nova_support.host_state('host2', free_ram_mb=30000)]
    hosts[1].nodename = 'node-b'
    hosts[1].aggregates = [objects.Aggregate(
        id=1, name='pricey', hosts=['host2'],
        metadata={'shadow_host_cost': '2.5'})]
    order, _, _ = weigh(hosts, nova_support.request_spec(
        {'shadow_profile': 'web'}))
    assert order[0] == 'host2'
    assert service.columns['nodename'] == ['host1', 'node-b']
    assert service.columns['cost'] == [None, 2.5]
    rows = service.calls[0][2]
    assert 'cost' not in rows[0] and rows[1]['cost'] == 2.5


def test_a_null_score_leaves_that_host_neutral(serve):
    serve(ScriptedService({'scores': [None, 40, 90],
                           'confidences': [None, 1.0, 1.0]}))
    _, weighed, _ = weigh(three_hosts(), nova_support.request_spec(
        {'shadow_profile': 'web'}))
    by_host = {w.obj.host: w.weight for w in weighed}
    assert by_host['host1'] == neutral()
    assert by_host['host3'] > by_host['host1'] > by_host['host2']


@pytest.mark.parametrize('reply', [
    None, 'garbage', {'hosts': 'x'}, {'hosts': [{'host': 'host1'}]},
    {'hosts': [{'host': 'host1', 'score': 101}]},
    {'hosts': [{'host': 'host1', 'score': float('nan')}]},
    {'hosts': [{'host': 'host1', 'score': True}]},
    {'hosts': [{'host': 'host1', 'score': 50, 'confidence': 2}]},
    {'hosts': [['host1', 50]]},
    # Answers in columns (RPC API 1.3).
    {'scores': [50, 60], 'confidences': [1, 1, 1]},
    {'scores': [50, 60, 70], 'confidences': [1, 1]},
    {'scores': 'x', 'confidences': [1, 1, 1]},
    {'scores': [50, 60, 101], 'confidences': [1, 1, 1]},
    {'scores': [50, 60, True], 'confidences': [1, 1, 1]},
    {'scores': [50, 60, 70], 'confidences': [1, 1, 2]},
])
def test_malformed_reply_gives_neutral_weights(serve, reply, caplog):
    serve(ScriptedService(reply))
    _, weighed, shadow = weigh(three_hosts(), nova_support.request_spec(
        {'shadow_profile': 'web'}))
    assert {w.weight for w in weighed} == {no_effect()}
    warnings = [r for r in caplog.records if r.levelname == 'WARNING']
    assert len(warnings) == 1
    assert shadow.breaker.state == 'closed'


@pytest.mark.parametrize('error', [
    exception.ProfileNotFound(profile='nosuch'),
    exception.InvalidRequest(reason='flavor.vcpus: 0 is less than 1'),
    exception.ServiceBusy(running=4),
])
def test_a_rejection_is_neutral_for_that_request_only(serve, error):
    service = serve(ScriptedService(error=error))
    shadow = shadow_weigher.ShadowWeigher()
    handler = weights.HostWeightHandler()
    for _ in range(3):
        weighed = handler.get_weighed_objects(
            [shadow], three_hosts(),
            nova_support.request_spec({'shadow_profile': 'web'}))
        assert {w.weight for w in weighed} == {no_effect()}
    # Every request was still asked: one tenant's mistake (or a busy
    # service) does not switch the weigher off for everyone.
    assert len(service.calls) == 3
    assert shadow.breaker.state == 'closed'
    service.error, service.answer = None, ranking({'host3': 90, 'host1': 5})
    weighed = handler.get_weighed_objects(
        [shadow], three_hosts(),
        nova_support.request_spec({'shadow_profile': 'web'}))
    assert weighed[0].obj.host == 'host3'


def test_slow_service_is_cut_off_at_the_deadline(serve):
    serve(ScriptedService(ranking({'host1': 99}), delay=5.0))
    start = time.monotonic()
    _, weighed, shadow = weigh(three_hosts(), nova_support.request_spec(
        {'shadow_profile': 'web', 'shadow_budget': '1'}))
    elapsed = time.monotonic() - start
    assert {w.weight for w in weighed} == {no_effect()}
    assert elapsed < 1.0 + 0.5 + 1.0
    # One outage is counted, not yet enough to open the breaker.
    assert shadow.breaker.state == 'closed'


def test_open_circuit_costs_nothing_and_sends_nothing(serve):
    service = serve(ScriptedService(ranking({'host1': 99}), delay=5.0))
    hosts = three_hosts()
    handler = weights.HostWeightHandler()
    shadow = shadow_weigher.ShadowWeigher()
    spec = nova_support.request_spec(
        {'shadow_profile': 'web', 'shadow_budget': '1'})
    for _ in range(CONF.shadow_weigher.failure_threshold):
        handler.get_weighed_objects([shadow], hosts, spec)
    assert shadow.breaker.state == 'open'
    calls = len(service.calls)
    start = time.monotonic()
    for _ in range(20):
        weighed = handler.get_weighed_objects([shadow], hosts, spec)
        assert {w.weight for w in weighed} == {no_effect()}
    # None of the 20 waited for the service (one wait is the 1 s budget
    # plus the margin): a bound on waiting, not a speed target (the
    # scheduler overhead benchmark measures the cost).
    assert time.monotonic() - start < 1.0
    assert len(service.calls) == calls


def test_circuit_closes_after_a_successful_trial(serve, flags):
    flags.config(reset_timeout=0.0, group='shadow_weigher')
    service = serve(ScriptedService(ranking({'host3': 90})))
    shadow = shadow_weigher.ShadowWeigher()
    for _ in range(CONF.shadow_weigher.failure_threshold):
        shadow.breaker.record_failure()
    assert shadow.breaker.state != 'closed'
    handler = weights.HostWeightHandler()
    weighed = handler.get_weighed_objects(
        [shadow], three_hosts(),
        nova_support.request_spec({'shadow_profile': 'web'}))
    assert weighed[0].obj.host == 'host3'
    assert shadow.breaker.state == 'closed'
    assert len(service.calls) == 1


def test_no_service_listening_gives_neutral_weights_in_time(flags):
    flags.config(failure_threshold=1, group='shadow_weigher')
    start = time.monotonic()
    _, weighed, shadow = weigh(three_hosts(), nova_support.request_spec(
        {'shadow_profile': 'web', 'shadow_budget': '1'}))
    assert {w.weight for w in weighed} == {no_effect()}
    assert time.monotonic() - start < 1.0 + 0.5 + 1.0
    assert shadow.breaker.state == 'open'


def test_aggregate_metadata_overrides_the_multiplier(serve):
    serve(ScriptedService(ranking({'host1': 100, 'host2': 94})))
    hosts = [nova_support.host_state(
                 'host1',
                 aggregates=[nova_support.aggregate(
                     {'shadow_weight_multiplier': '2.5'})]),
             nova_support.host_state('host2')]
    _, weighed, _ = weigh(hosts, nova_support.request_spec(
        {'shadow_profile': 'web'}))
    by_host = {w.obj.host: w.weight for w in weighed}
    assert by_host['host1'] == pytest.approx(2.5)
    # 6 points behind: weight 1 - (6 - 2) / 10.
    assert by_host['host2'] == pytest.approx(
        0.6 * CONF.shadow_weigher.weight_multiplier)


def _gold_host3():
    """Three hosts; host3, the one Nova's RAM weigher likes least, is in
    an aggregate whose ``shadow_weight_multiplier`` is twice the
    configured one."""
    hosts = three_hosts()
    hosts[2] = nova_support.host_state(
        'host3', free_ram_mb=20000, aggregates=[nova_support.aggregate(
            {'shadow_weight_multiplier': '20'}, name='gold')])
    return hosts


def _ram_alone():
    weighed = weights.HostWeightHandler().get_weighed_objects(
        [ram.RAMWeigher()], three_hosts(), nova_support.request_spec())
    return [(w.obj.host, w.weight) for w in weighed]


@pytest.mark.parametrize('case', [
    'no hint', 'bad hint', 'rejected', 'circuit open', 'observe mode',
    'every host tied'])
def test_no_ranking_leaves_nova_s_order_whatever_the_multipliers(
        serve, flags, case):
    # Nova multiplies each host's weight by that host's multiplier: a
    # weight of 0.5 for every host would have the aggregate's multiplier
    # prefer host3 although nothing ranked it.
    service = serve(ScriptedService(ranking(
        {'host1': 80, 'host2': 80, 'host3': 80} if case == 'every host tied'
        else {'host3': 95, 'host1': 60, 'host2': 60})))
    hints = {'shadow_profile': 'web'}
    shadow = shadow_weigher.ShadowWeigher()
    if case == 'no hint':
        hints = {}
    elif case == 'bad hint':
        hints = {'shadow_evaluation': 'not-a-uuid'}
    elif case == 'rejected':
        service.error = exception.ProfileNotFound(profile='web')
    elif case == 'circuit open':
        for _ in range(CONF.shadow_weigher.failure_threshold):
            shadow.breaker.record_failure()
    elif case == 'observe mode':
        flags.config(mode='observe', group='shadow_weigher')
    weighed = weights.HostWeightHandler().get_weighed_objects(
        [ram.RAMWeigher(), shadow], _gold_host3(),
        nova_support.request_spec(hints))
    assert [(w.obj.host, w.weight) for w in weighed] == _ram_alone()


@pytest.mark.parametrize('bad', ['nan', 'inf', '-inf', '1e999', 'abc', ''])
def test_an_aggregate_multiplier_that_is_not_a_finite_number_is_ignored(
        serve, caplog, bad):
    serve(ScriptedService(ranking({'host1': 99, 'host2': 60, 'host3': 60})))
    shadow = shadow_weigher.ShadowWeigher()
    handler = weights.HostWeightHandler()
    broken = nova_support.aggregate({'shadow_weight_multiplier': bad},
                                    name='broken', id=7)
    double = nova_support.aggregate({'shadow_weight_multiplier': '2'},
                                    name='double', id=8)
    multiplier = CONF.shadow_weigher.weight_multiplier
    for _ in range(3):
        hosts = three_hosts()
        hosts[0] = nova_support.host_state('host1', free_ram_mb=60000,
                                           aggregates=[broken])
        hosts[1] = nova_support.host_state('host2', free_ram_mb=30000,
                                           aggregates=[broken, double])
        weighed = handler.get_weighed_objects(
            [shadow], hosts,
            nova_support.request_spec({'shadow_profile': 'web'}))
        by_host = {w.obj.host: w.weight for w in weighed}
        # The configured multiplier where only the bad value is set, the
        # other aggregate's where it has one.
        assert by_host['host1'] == pytest.approx(multiplier)
        assert shadow.weight_multiplier(hosts[1]) == 2.0
        assert all(math.isfinite(w) for w in by_host.values())
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == 'WARNING']
    # One warning, naming the aggregate and the value, for all the hosts
    # and requests.
    assert len(warnings) == 1, warnings
    assert 'broken' in warnings[0]
    assert 'shadow_weight_multiplier=%s' % bad in warnings[0]


def test_observe_mode_asks_logs_and_applies_nothing(serve, flags, caplog):
    flags.config(mode='observe', group='shadow_weigher')
    service = serve(ScriptedService(ranking({'host1': 10, 'host3': 95})))
    with caplog.at_level(logging.INFO):
        _, weighed, _ = weigh(three_hosts(), nova_support.request_spec(
            {'shadow_profile': 'web'}))
    assert len(service.calls) == 1
    assert {w.weight for w in weighed} == {no_effect()}
    observed = [r.getMessage() for r in caplog.records
                if 'observe mode' in r.getMessage()]
    assert len(observed) == 1 and 'host3=1.00' in observed[0]


def test_the_weights_summary_is_made_only_when_logged(serve, caplog,
                                                      monkeypatch):
    serve(ScriptedService(ranking({'host1': 10, 'host3': 95})))
    made = []
    summary = shadow_weigher.ShadowWeigher._summary

    def counted(states, weights_):
        made.append(len(states))
        return summary(states, weights_)

    monkeypatch.setattr(shadow_weigher.ShadowWeigher, '_summary',
                        staticmethod(counted))
    with caplog.at_level(logging.INFO, logger=shadow_weigher.__name__):
        weigh(three_hosts(), nova_support.request_spec(
            {'shadow_profile': 'web'}))
    assert made == [], 'no summary while debug logging is off'
    with caplog.at_level(logging.DEBUG, logger=shadow_weigher.__name__):
        weigh(three_hosts(), nova_support.request_spec(
            {'shadow_profile': 'web'}))
    assert made == [3]
    assert any('Shadow weights for' in r.getMessage() and 'host3=1.00'
               in r.getMessage() for r in caplog.records)


def test_tenant_text_is_clipped_and_escaped_in_logs(serve, caplog):
    serve(ScriptedService(error=exception.ProfileNotFound(
        profile='x' * 10000)))
    hint = 'evil\nFAKE LOG LINE ' + 'y' * 10000
    weigh(three_hosts(), nova_support.request_spec(
        {'shadow_profile': hint, 'shadow_budget': hint}))
    lines = [r.getMessage() for r in caplog.records
             if r.levelname in ('WARNING', 'INFO')]
    assert lines
    for line in lines:
        assert '\n' not in line
        assert len(line) < 600
        assert 'Traceback' not in line


def test_a_multi_create_asks_once_and_spreads_as_hosts_fill(serve):
    service = serve(ScriptedService(
        ranking({'host1': 99.5, 'host2': 99, 'host3': 60}, confidence=0.9)))
    hosts = three_hosts()
    spec = nova_support.request_spec({'shadow_profile': 'web'})
    spec.num_instances = 3
    # What a RequestSpec from Nova's conductor holds, which Nova's
    # consumption of a host reads.
    spec.pci_requests = objects.InstancePCIRequests(requests=[])
    spec.numa_topology = None
    handler = weights.HostWeightHandler()
    shadow = shadow_weigher.ShadowWeigher()
    placed = []
    for _ in range(3):
        spec.instance_uuid = str(uuid.uuid4())
        weighed = handler.get_weighed_objects([shadow], hosts, spec)
        chosen = weighed[0].obj
        # What Nova's scheduler does after choosing a host for one
        # instance: without a server group it consumes the host's
        # resources and counts the instance, but does not name it in the
        # host's instances.
        nova_manager.SchedulerManager._consume_selected_host(
            chosen, spec, instance_uuid=spec.instance_uuid)
        placed.append(chosen.host)
    assert all(not h.instances for h in hosts)
    assert len(service.calls) == 1
    assert service.calls[0][1]['num_instances'] == 3
    # The two equally good hosts share the first instances; the clearly
    # worse host3 gets the third only if nothing better is left.
    assert set(placed[:2]) == {'host1', 'host2'}
    assert placed[2] != 'host3'


def test_aggregate_cost_is_sent_with_the_host_and_bad_costs_ignored(
        caplog):
    hosts = [nova_support.host_state('host1', aggregates=[
                 nova_support.aggregate({'shadow_host_cost': '1.5'}),
                 nova_support.aggregate({'shadow_host_cost': '4'})]),
             nova_support.host_state('host2', aggregates=[
                 nova_support.aggregate({'shadow_host_cost': 'cheap'})]),
             nova_support.host_state('host3')]
    with caplog.at_level(logging.WARNING):
        described = {h['host']: h
                     for h in shadow_weigher.describe_hosts(hosts)}
    assert described['host1']['cost'] == 4.0
    assert 'cost' not in described['host2']
    assert 'cost' not in described['host3']
    assert any('shadow_host_cost=cheap' in r.getMessage()
               for r in caplog.records)


# -- the cache of answers from history ([shadow_weigher] prior_cache_ttl) --

class HistoryService(ScriptedService):
    """:class:`ScriptedService` of API 1.4: its answers are from history
    (``source`` as scripted), and it takes ``history_only`` and
    ``record``; every call is kept in ``calls14`` with those flags (None
    when not sent: a call of API 1.3)."""

    target = messaging.Target(version='1.4')

    def __init__(self, answer, source='history'):
        super().__init__(answer)
        self.source = source
        self.calls14 = []

    @messaging.expected_exceptions(exception.ShadowException)
    def rank_host_columns(self, ctxt, request, hosts, budget_s,
                          history_only=None, record=None):
        self.calls14.append({'hosts': list(hosts['host']),
                             'history_only': history_only,
                             'record': record, 'request': request,
                             'ctxt': ctxt})
        reply = ScriptedService.rank_host_columns(self, ctxt, request,
                                                  hosts, budget_s)
        reply['source'] = self.source
        return reply

    def wait_for(self, count, timeout=10.0):
        """The calls once there are ``count`` (records are casts, sent
        after the answer)."""
        deadline = time.monotonic() + timeout
        while len(self.calls14) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.calls14


@pytest.fixture
def cached(flags):
    flags.config(prior_cache_ttl=30.0, group='shadow_weigher')
    return flags


def _weigh_with(shadow, hosts, spec):
    handler = weights.HostWeightHandler()
    weighed = handler.get_weighed_objects([shadow], hosts, spec)
    return [w.obj.host for w in weighed], weighed


def test_an_answer_from_history_is_reused_for_the_same_workload(serve,
                                                                cached):
    service = serve(HistoryService(
        ranking({'host1': 70, 'host2': 75, 'host3': 84})))
    shadow = shadow_weigher.ShadowWeigher()
    orders = [_weigh_with(shadow, three_hosts(), nova_support.request_spec(
        {'shadow_profile': 'web'}))[0] for _ in range(3)]
    assert orders == [['host3', 'host2', 'host1']] * 3
    calls = service.wait_for(3)
    # One question, then two records of requests answered from the
    # cache (whole, from history, recorded).
    assert [(c['history_only'], c['record']) for c in calls] == [
        (False, True), (True, True), (True, True)]
    assert all(c['hosts'] == ['host1', 'host2', 'host3'] for c in calls)
    time.sleep(0.2)
    assert len(service.calls14) == 3


def _answered_once(serve):
    """``(service, weigher, spec)``: a web request weighed once against
    a service answering from history, its record received."""
    service = serve(HistoryService(
        ranking({'host1': 70, 'host2': 75, 'host3': 84})))
    shadow = shadow_weigher.ShadowWeigher()
    spec = nova_support.request_spec({'shadow_profile': 'web'})
    _weigh_with(shadow, three_hosts(), spec)
    service.wait_for(1)
    return service, shadow, spec


def test_a_record_says_when_nova_asked(serve, cached):
    # Records wait behind others before the service gets to them: each
    # says when Nova asked, the time the service stamps it with (before
    # the move Nova then made).
    service, shadow, spec = _answered_once(serve)
    before = time.time()
    _weigh_with(shadow, three_hosts(), spec)
    after = time.time()
    record = service.wait_for(2)[1]
    assert (record['history_only'], record['record']) == (True, True)
    assert before <= record['ctxt'][rpcapi.CTXT_ASKED_AT] <= after


def test_a_record_is_queued_after_its_request_is_weighed(serve, cached,
                                                       monkeypatch):
    # The records thread does not share the GIL with the request's own
    # pass over the hosts: the record is queued once the weights are made.
    service, shadow, spec = _answered_once(serve)
    events = []
    make_weights, send_record = shadow._weights, shadow._send_record

    def weights(*args):
        try:
            return make_weights(*args)
        finally:
            events.append('weights made')

    def send(record):
        events.append('record queued')
        return send_record(record)

    monkeypatch.setattr(shadow, '_weights', weights)
    monkeypatch.setattr(shadow, '_send_record', send)
    order, _ = _weigh_with(shadow, three_hosts(), nova_support.request_spec(
        {'shadow_profile': 'web'}))
    assert order[0] == 'host3'
    assert len(service.calls14) == 1
    record = service.wait_for(2)[1]
    assert (record['history_only'], record['record']) == (True, True)
    assert events == ['weights made', 'record queued']


def test_a_host_whose_facts_changed_is_neutral_and_asked_again(serve,
                                                               cached):
    service = serve(HistoryService(
        ranking({'host1': 70, 'host2': 75, 'host3': 84})))
    shadow = shadow_weigher.ShadowWeigher()
    spec = nova_support.request_spec({'shadow_profile': 'web'})
    _weigh_with(shadow, three_hosts(), spec)
    # host2 took a VM; the service now ranks it best.
    service.answer = ranking({'host1': 70, 'host2': 95, 'host3': 84})
    hosts = three_hosts()
    hosts[1] = nova_support.host_state('host2', free_ram_mb=26000,
                                       vcpus_used=2, num_instances=1)
    order, weighed = _weigh_with(shadow, hosts, nova_support.request_spec(
        {'shadow_profile': 'web'}))
    # Answered at once: host2 neutral (not its old 75, not yet its 95).
    assert order[0] == 'host3'
    by_host = {w.obj.host: w.weight for w in weighed}
    assert by_host['host2'] == pytest.approx(neutral())
    refresh, record = service.wait_for(3)[1:]
    # Asked again about every candidate: the service scores each host
    # relative to the best of the list it is given.
    assert refresh['hosts'] == ['host1', 'host2', 'host3']
    assert (refresh['history_only'], refresh['record']) == (True, False)
    assert record['hosts'] == ['host1', 'host2', 'host3']
    assert (record['history_only'], record['record']) == (True, True)
    # The refreshed entry is kept: the same facts again weigh host2 by
    # it and only the record is sent.
    order, _ = _weigh_with(shadow, hosts, nova_support.request_spec(
        {'shadow_profile': 'web'}))
    assert order[0] == 'host2'
    assert [(c['history_only'], c['record'])
            for c in service.wait_for(4)[3:]] == [(True, True)]


class RefreshRefused(HistoryService):
    """:class:`HistoryService` that refuses the questions about the hosts
    whose facts changed (history only, unrecorded)."""

    @messaging.expected_exceptions(exception.ShadowException)
    def rank_host_columns(self, ctxt, request, hosts, budget_s,
                          history_only=None, record=None):
        if history_only and record is False:
            self.calls14.append({'hosts': list(hosts['host']),
                                 'history_only': history_only,
                                 'record': record, 'request': request,
                                 'ctxt': ctxt})
            raise exception.ServiceBusy(running=4)
        return super().rank_host_columns(ctxt, request, hosts, budget_s,
                                         history_only=history_only,
                                         record=record)


def test_a_failed_question_about_changed_hosts_still_sends_the_record(
        serve, cached, caplog):
    service = serve(RefreshRefused(
        ranking({'host1': 70, 'host2': 75, 'host3': 84})))
    shadow = shadow_weigher.ShadowWeigher()
    _ask(shadow)
    hosts = three_hosts()
    hosts[1] = nova_support.host_state('host2', free_ram_mb=26000,
                                       vcpus_used=2, num_instances=1)
    assert _ask(shadow, hosts=hosts)[0] == 'host3'
    refresh, record = service.wait_for(3)[1:]
    assert (refresh['history_only'], refresh['record']) == (True, False)
    # The request is recorded all the same, with every candidate.
    assert (record['history_only'], record['record']) == (True, True)
    assert record['hosts'] == ['host1', 'host2', 'host3']
    assert rpcapi.is_record(record['ctxt'])
    assert shadow._recorder.dropped == 0
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == 'WARNING']
    assert len(warnings) == 1
    assert 'ask the shadow service again' in warnings[0]
    assert 'ServiceBusy' in warnings[0]
    # The host stays neutral and is asked about with the next request.
    order, weighed = _weigh_with(shadow, hosts, nova_support.request_spec(
        {'shadow_profile': 'web'}))
    assert {w.obj.host: w.weight for w in weighed}['host2'] == \
        pytest.approx(neutral())


def test_a_candidate_the_answer_does_not_hold_is_neutral_and_asked_about(
        serve, cached):
    # The filters leave different hosts for different requests: a host
    # the answer does not hold is weighed like one whose facts changed.
    service = serve(HistoryService(
        ranking({'host1': 70, 'host2': 75, 'host3': 84, 'host4': 95})))
    shadow = shadow_weigher.ShadowWeigher()
    _weigh_with(shadow, three_hosts(), nova_support.request_spec(
        {'shadow_profile': 'web'}))
    service.wait_for(1)
    hosts = three_hosts() + [nova_support.host_state('host4')]
    order, weighed = _weigh_with(shadow, hosts, nova_support.request_spec(
        {'shadow_profile': 'web'}))
    assert order[0] == 'host3'
    assert {w.obj.host: w.weight for w in weighed}['host4'] == \
        pytest.approx(neutral())
    refresh, record = service.wait_for(3)[1:]
    assert refresh['hosts'] == ['host1', 'host2', 'host3', 'host4']
    assert (refresh['history_only'], refresh['record']) == (True, False)
    assert record['hosts'] == ['host1', 'host2', 'host3', 'host4']
    # Kept: the next request with it weighs it by its entry.
    order, _ = _weigh_with(shadow, hosts, nova_support.request_spec(
        {'shadow_profile': 'web'}))
    assert order[0] == 'host4'
    assert [(c['history_only'], c['record'])
            for c in service.wait_for(4)[3:]] == [(True, True)]


def test_an_answer_past_half_its_life_is_renewed_in_the_background(
        serve, cached, monkeypatch):
    service = serve(HistoryService(
        ranking({'host1': 70, 'host2': 75, 'host3': 84})))
    shadow = shadow_weigher.ShadowWeigher()

    def ask():
        return _weigh_with(shadow, three_hosts(), nova_support.request_spec(
            {'shadow_profile': 'web'}))[0]

    ask()
    cache = shadow._prior_cache
    now = time.monotonic()
    monkeypatch.setattr(cache, 'clock', lambda: now + 16.0)
    service.answer = ranking({'host1': 90, 'host2': 75, 'host3': 84})
    # Answered from the old answer; asked again whole, recorded, in the
    # background (no separate record).
    assert ask()[0] == 'host3'
    calls = service.wait_for(2)
    assert [(c['history_only'], c['record']) for c in calls] == [
        (False, True), (False, True)]
    deadline = time.monotonic() + 10
    while cache.age(cache_key(shadow)) != 0.0 and \
            time.monotonic() < deadline:
        time.sleep(0.02)
    # The renewed answer is as new, and the next request follows it.
    assert cache.age(cache_key(shadow)) == 0.0
    assert ask()[0] == 'host1'
    assert [(c['history_only'], c['record'])
            for c in service.wait_for(3)[2:]] == [(True, True)]


class ForgottenAfterLookup(priorcache.PriorCache):
    """A cache whose answer another thread drops just after a request
    looked it up (a renewal that found that history no longer decides
    forgets it; the store of a newer answer takes it out and puts it
    back)."""

    def lookup(self, key, columns):
        found = super().lookup(key, columns)
        self.forget(key)
        return found


def test_an_answer_dropped_just_after_its_lookup_still_answers(
        serve, cached):
    service = serve(HistoryService(
        ranking({'host1': 70, 'host2': 75, 'host3': 84})))
    shadow = shadow_weigher.ShadowWeigher()
    # Past half its life once kept: the request would renew it.
    start = time.monotonic()
    clock = iter([start] + [start + 16.0] * 100)
    shadow._prior_cache = ForgottenAfterLookup(
        CONF.shadow_weigher.prior_cache_ttl, clock=lambda: next(clock))
    assert _ask(shadow)[0] == 'host3'
    # Answered from the entries it looked up, without raising into Nova.
    assert _ask(shadow)[0] == 'host3'
    calls = service.wait_for(2)
    time.sleep(0.2)
    # Recorded, not renewed: there is no answer left to renew.
    assert _flags_of(calls) == [(False, True), (True, True)]


class BrokenCache(priorcache.PriorCache):
    """A cache that fails in a way nothing expects."""

    def holds(self, key):
        raise RuntimeError('unexpected')


def test_nothing_raises_into_nova_s_scheduler(serve, cached, caplog):
    service = serve(HistoryService(
        ranking({'host3': 95, 'host1': 60, 'host2': 60})))
    shadow = shadow_weigher.ShadowWeigher()
    shadow._prior_cache = BrokenCache(CONF.shadow_weigher.prior_cache_ttl)
    handler = weights.HostWeightHandler()
    for _ in range(3):
        weighed = handler.get_weighed_objects(
            [ram.RAMWeigher(), shadow], _gold_host3(),
            nova_support.request_spec({'shadow_profile': 'web'}))
        # Neutral weights: Nova's own weighers decide.
        assert [(w.obj.host, w.weight) for w in weighed] == _ram_alone()
    assert service.calls14 == []
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    # One error, with its traceback, for the first of the three.
    assert len(errors) == 1
    assert 'RuntimeError: unexpected' in errors[0].getMessage()
    assert errors[0].exc_info is not None


def cache_key(shadow):
    [key] = list(shadow._prior_cache._answers)
    return key


class GatedService(HistoryService):
    """:class:`HistoryService` whose calls that ``holds(history_only,
    record)`` (whole questions: a renewal) wait while ``gate`` is closed
    (it is open at first; ``waiting`` counts them), and whose next
    ``fail_whole`` whole questions fail (counted in ``failed``)."""

    def __init__(self, answer):
        super().__init__(answer)
        self.gate = threading.Event()
        self.gate.set()
        self.holds = lambda history_only, record: history_only is False
        self.waiting = 0
        self.fail_whole = 0
        self.failed = 0

    @messaging.expected_exceptions(exception.ShadowException)
    def rank_host_columns(self, ctxt, request, hosts, budget_s,
                          history_only=None, record=None):
        if self.holds(history_only, record) and not self.gate.is_set():
            self.waiting += 1
            self.gate.wait(30)
        if history_only is False and self.fail_whole:
            self.fail_whole -= 1
            self.failed += 1
            raise exception.ShadowException('no answer this time')
        return super().rank_host_columns(ctxt, request, hosts, budget_s,
                                         history_only=history_only,
                                         record=record)

    def wait_until_held(self, count, timeout=10.0):
        deadline = time.monotonic() + timeout
        while self.waiting < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.waiting == count


@pytest.fixture
def gated(serve, cached):
    # A renewal may then hold its thread 20 s (the budget).
    cached.config(default_budget=20.0, group='shadow_weigher')
    service = serve(GatedService(
        ranking({'host1': 70, 'host2': 75, 'host3': 84})))
    yield service
    service.gate.set()


def _ask(shadow, profile='web', hosts=None):
    return _weigh_with(shadow, hosts or three_hosts(),
                       nova_support.request_spec(
                           {'shadow_profile': profile}))[0]


def _past_half_life(shadow, monkeypatch):
    now = time.monotonic()
    monkeypatch.setattr(shadow._prior_cache, 'clock', lambda: now + 16.0)


def _flags_of(calls):
    return [(c['history_only'], c['record']) for c in calls]


def test_a_renewal_does_not_hold_the_records_behind_it(gated,
                                                       monkeypatch):
    shadow = shadow_weigher.ShadowWeigher()
    _ask(shadow)
    gated.gate.clear()
    _past_half_life(shadow, monkeypatch)
    # This request's renewal waits at the service (up to its budget)...
    assert _ask(shadow)[0] == 'host3'
    gated.wait_until_held(1)
    # ... and the next requests' records are sent meanwhile (the renewal
    # is claimed: they are not renewals themselves).
    for _ in range(3):
        assert _ask(shadow)[0] == 'host3'
    calls = gated.wait_for(4, timeout=5.0)
    assert _flags_of(calls) == [(False, True)] + [(True, True)] * 3
    assert 'shadow-weigher-renewals' in {
        t.name for t in threading.enumerate()}
    gated.gate.set()
    assert _flags_of(gated.wait_for(5))[4:] == [(False, True)]


def test_a_failed_renewal_is_tried_again_by_the_next_request(gated,
                                                             monkeypatch):
    shadow = shadow_weigher.ShadowWeigher()
    _ask(shadow)
    gated.fail_whole = 1
    _past_half_life(shadow, monkeypatch)
    _ask(shadow)
    deadline = time.monotonic() + 10
    while not gated.failed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gated.failed == 1
    # The next requests past half the answer's life renew it (the first
    # ones may still find the failed renewal claimed and be recorded).
    cache, key = shadow._prior_cache, cache_key(shadow)
    while cache.age(key) != 0.0 and time.monotonic() < deadline:
        _ask(shadow)
        time.sleep(0.05)
    assert cache.age(key) == 0.0
    assert (False, True) in _flags_of(gated.calls14[1:])


@pytest.mark.parametrize('failure', ['rejected', 'no answer in time'])
def test_a_failed_renewal_has_its_request_recorded_instead(
        gated, cached, monkeypatch, caplog, failure):
    shadow = shadow_weigher.ShadowWeigher()
    _ask(shadow)
    if failure == 'rejected':
        gated.fail_whole = 1
    else:
        # The renewal waits at the service past its deadline (budget 1 s
        # plus the 0.5 s margin).
        cached.config(default_budget=1.0, group='shadow_weigher')
        gated.gate.clear()
    _past_half_life(shadow, monkeypatch)
    assert _ask(shadow)[0] == 'host3'
    # The service recorded nothing of the request: it is recorded as one
    # without a renewal is (from history, recorded), with its workload.
    calls = gated.wait_for(2, timeout=10.0)
    assert _flags_of(calls[1:]) == [(True, True)]
    assert calls[1]['hosts'] == ['host1', 'host2', 'host3']
    assert calls[1]['request']['profile'] == 'web'
    assert calls[1]['request']['purpose'] == 'boot'
    assert shadow._recorder.renewals_failed == 1
    assert shadow._recorder.renewals_dropped == 0
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == 'WARNING'
                and 'renew the answer' in r.getMessage()]
    assert len(warnings) == 1
    assert 'recording the request instead' in warnings[0]
    # And its claim is released: the next request may renew the answer.
    deadline = time.monotonic() + 5
    while (not shadow._prior_cache.claim_renewal(cache_key(shadow))
           and time.monotonic() < deadline):
        time.sleep(0.02)
    assert time.monotonic() < deadline


def test_a_renewal_without_room_is_recorded_counted_and_logged_once(
        gated, monkeypatch, caplog):
    profiles = ['web%d' % n for n in range(shadow_weigher.RENEWALS_QUEUED
                                           + 3)]
    shadow = shadow_weigher.ShadowWeigher()
    for profile in profiles:
        _ask(shadow, profile)
    asked = len(gated.wait_for(len(profiles)))
    assert asked == len(profiles)
    gated.gate.clear()
    _past_half_life(shadow, monkeypatch)
    _ask(shadow, profiles[0])
    gated.wait_until_held(1)
    # One renewal made, RENEWALS_QUEUED waiting: the last two have no
    # room and are recorded instead, at once.
    for profile in profiles[1:]:
        assert _ask(shadow, profile)[0] == 'host3'
    calls = gated.wait_for(asked + 2, timeout=5.0)[asked:]
    assert _flags_of(calls) == [(True, True)] * 2
    assert [c['request']['profile'] for c in calls] == profiles[-2:]
    assert shadow._recorder.renewals_dropped == 2
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == 'WARNING']
    assert len(warnings) == 1
    assert 'Not renewing' in warnings[0]
    # The renewals that waited are made; the ones without room are
    # free to be claimed by the next request.
    gated.gate.set()
    renewals = gated.wait_for(asked + 2 + len(profiles) - 2)[asked + 2:]
    assert _flags_of(renewals) == [(False, True)] * (len(profiles) - 2)
    _ask(shadow, profiles[-1])
    last = gated.wait_for(2 * len(profiles) + 1)[-1]
    assert (last['request']['profile'], last['history_only']) == (
        profiles[-1], False)


def _fill_the_records_queue(gated, shadow):
    """Hold ``shadow``'s records thread on the question about a changed
    host (``gated`` holds the unrecorded ones) and queue one request
    behind it: where one record has room, the next one is dropped."""
    gated.gate.clear()
    hosts = three_hosts()
    hosts[1] = nova_support.host_state('host2', free_ram_mb=26000,
                                       vcpus_used=2, num_instances=1)
    _ask(shadow, hosts=hosts)
    gated.wait_until_held(1)
    _ask(shadow)


@pytest.mark.parametrize('bound', [
    # One record waits (of any size) ...
    {'RECORDS_QUEUED': 1},
    # ... or records of three hosts each while three hosts in all do.
    {'RECORD_HOSTS_QUEUED': 3}])
def test_a_renewal_dropped_with_its_record_is_not_left_claimed(
        gated, monkeypatch, bound):
    # The records thread waits on the changed host's question; the one
    # request that fits waits behind it; the renewal after it is dropped.
    for name, value in bound.items():
        monkeypatch.setattr(shadow_weigher, name, value)
    monkeypatch.setattr(shadow_weigher, 'REFRESH_BUDGET_S', 20.0)
    gated.holds = lambda history_only, record: record is False
    shadow = shadow_weigher.ShadowWeigher()
    _ask(shadow)
    _fill_the_records_queue(gated, shadow)
    _past_half_life(shadow, monkeypatch)
    _ask(shadow)
    assert shadow._recorder.dropped == 1
    assert shadow._prior_cache.claim_renewal(cache_key(shadow))


def test_the_records_after_a_drop_report_it_to_the_service(gated,
                                                          monkeypatch):
    # nova-scheduler has no metrics endpoint of ours: the weigher's count
    # of dropped records reaches the service's exporter with its records.
    monkeypatch.setattr(shadow_weigher, 'RECORDS_QUEUED', 1)
    monkeypatch.setattr(shadow_weigher, 'REFRESH_BUDGET_S', 20.0)
    gated.holds = lambda history_only, record: record is False
    shadow = shadow_weigher.ShadowWeigher()
    _ask(shadow)
    _ask(shadow)
    records = [c for c in gated.wait_for(2) if rpcapi.is_record(c['ctxt'])]
    assert len(records) == 1
    assert rpcapi.CTXT_DROPPED not in records[0]['ctxt']
    # The records thread waits on the changed host's question; one
    # request waits behind it; the next is dropped.
    _fill_the_records_queue(gated, shadow)
    _ask(shadow)
    assert shadow._recorder.dropped == 1
    gated.gate.set()
    calls = gated.wait_for(5)
    records = [c for c in calls if rpcapi.is_record(c['ctxt'])]
    assert len(records) == 3
    report = {'sender': shadow._recorder.sender, 'count': 1}
    assert [r['ctxt'].get(rpcapi.CTXT_DROPPED) for r in records] == [
        None, report, report]
    assert rpcapi.dropped_report(records[-1]['ctxt']) == (
        shadow._recorder.sender, 1)


def test_what_the_cache_does_not_hold_asks_about_every_candidate(
        serve, cached, monkeypatch):
    service = serve(HistoryService(
        ranking({'host1': 70, 'host2': 75, 'host3': 84})))
    shadow = shadow_weigher.ShadowWeigher()

    def ask(hosts=None, **spec):
        _weigh_with(shadow, hosts or three_hosts(),
                    nova_support.request_spec({'shadow_profile': 'web'},
                                              **spec))
        time.sleep(0.2)
        return service.calls14[-1]

    assert ask()['record'] is True
    # Another workload (flavor size).
    assert ask(vcpus=4)['history_only'] is False
    # Two candidates the answer did not hold, of four (more than one and
    # than a tenth).
    hosts = three_hosts()[:2] + [nova_support.host_state('host4'),
                                 nova_support.host_state('host5')]
    assert ask(hosts)['hosts'] == ['host1', 'host2', 'host4', 'host5']
    assert service.calls14[-1]['history_only'] is False
    # More changed hosts than a tenth of the candidates (one of three).
    changed = [nova_support.host_state('host1', free_ram_mb=1000),
               nova_support.host_state('host2', free_ram_mb=1000),
               three_hosts()[2]]
    assert ask(changed)['history_only'] is False
    # An answer older than prior_cache_ttl.
    now = time.monotonic()
    monkeypatch.setattr(shadow._prior_cache, 'clock', lambda: now + 31.0)
    assert ask(changed)['history_only'] is False


def test_an_answer_from_shadows_is_never_reused(serve, cached):
    service = serve(HistoryService(ranking({'host1': 70, 'host3': 84}),
                                   source='shadows'))
    shadow = shadow_weigher.ShadowWeigher()
    for _ in range(2):
        _weigh_with(shadow, three_hosts(), nova_support.request_spec(
            {'shadow_profile': 'web'}))
    time.sleep(0.2)
    assert [c['history_only'] for c in service.calls14] == [False, False]


def test_a_service_of_api_1_3_is_asked_without_the_cache(serve, cached,
                                                         caplog):
    answer = ranking({'host1': 70, 'host2': 75, 'host3': 84})
    answer['source'] = 'history'
    service = serve(ScriptedService(answer))
    shadow = shadow_weigher.ShadowWeigher()
    for _ in range(3):
        order, _ = _weigh_with(shadow, three_hosts(),
                               nova_support.request_spec(
                                   {'shadow_profile': 'web'}))
        assert order[0] == 'host3'
    assert len(service.calls) == 3
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == 'WARNING']
    assert len(warnings) == 1
    assert 'RPC API 1.4' in warnings[0]


def test_prior_cache_ttl_0_turns_the_cache_off(serve, flags):
    flags.config(prior_cache_ttl=0.0, group='shadow_weigher')
    service = serve(HistoryService(ranking({'host1': 70, 'host3': 84})))
    shadow = shadow_weigher.ShadowWeigher()
    for _ in range(2):
        _weigh_with(shadow, three_hosts(), nova_support.request_spec(
            {'shadow_profile': 'web'}))
    time.sleep(0.2)
    # Asked at RPC API 1.3, as before the cache: no 1.4 arguments.
    assert [(c['history_only'], c['record']) for c in service.calls14] \
        == [(None, None)] * 2


@pytest.mark.parametrize('raws, named', [
    ({'weight_multiplier': 'abc'}, 'weight_multiplier'),
    ({'weight_multiplier': 'nan'}, 'weight_multiplier: nan is not a finite'),
    ({'tie_margin': '-1'}, 'tie_margin'),
    ({'score_range': '0'}, 'score_range'),
    ({'mode': 'bogus'}, 'mode'),
    ({'default_budget': 'nan'}, 'default_budget: nan is not a finite'),
    ({'max_budget': 'inf'}, 'max_budget'),
    ({'reset_timeout': 'nan'}, 'reset_timeout: nan is not a finite'),
    ({'failure_threshold': 'abc'}, 'failure_threshold'),
    ({'move_timeout': 'abc'}, 'move_timeout'),
    # More than the service takes as a budget (it would refuse every
    # request), or waits no scheduler should make.
    ({'default_budget': '100000'}, 'default_budget'),
    ({'max_budget': '86401'}, 'max_budget'),
    ({'move_timeout': '1e6'}, 'move_timeout'),
    ({'lookup_timeout': '1e6'}, 'lookup_timeout'),
    ({'deadline_margin': '1e6'}, 'deadline_margin'),
    ({'tie_margin': '50', 'score_range': '12'},
     'tie_margin (50) must be below score_range (12)'),
])
def test_an_option_nova_scheduler_cannot_use_disables_the_weigher(
        serve, flags, caplog, raws, named):
    # A value read at each request used to fail every boot's scheduling
    # (the exception left weigh_objects); NaN passed oslo.config's bounds
    # and made every weight NaN.
    service = serve(ScriptedService(ranking({'host3': 100, 'host1': 10})))
    for option in raws:
        # As read from nova.conf (the fixture's overrides would win).
        CONF.clear_override(option, group='shadow_weigher')
    flags.load_raw_values(group='shadow_weigher', **raws)
    weighed = weights.HostWeightHandler().get_weighed_objects(
        [shadow_weigher.ShadowWeigher(), ram.RAMWeigher()], three_hosts(),
        nova_support.request_spec({'shadow_profile': 'web'}))
    order = [w.obj.host for w in weighed]
    assert service.calls == []
    # Nova's own weighers decide: host1 has the most free RAM.
    assert order == ['host1', 'host2', 'host3']
    assert all(math.isfinite(w.weight) for w in weighed)
    errors = [r.getMessage() for r in caplog.records
              if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith('Shadow weigher disabled until '
                                'nova-scheduler is restarted with a valid '
                                'value: [shadow_weigher] ' + named)


def test_the_budget_options_end_where_the_service_s_budgets_end():
    opts = {opt.dest: opt for opt in shadow_conf.shadow_weigher_opts}
    for name in ('default_budget', 'max_budget', 'move_timeout'):
        # Each is sent to the service as a budget.
        assert opts[name].type.max == schema.BUDGET['maximum'], name
    for name in ('lookup_timeout', 'deadline_margin'):
        assert opts[name].type.max is not None, name


HINT_TEXT = (st.text(max_size=40)
             | st.sampled_from(['web', 'db', '3.5', '0', '-1', 'nan', 'inf',
                                '1e999', ' 2 ', str(uuid.UUID(int=7)),
                                'web\nforged']))


HINTS = st.dictionaries(
    st.sampled_from([shadow_weigher.HINT_PROFILE,
                     shadow_weigher.HINT_BUDGET,
                     shadow_weigher.HINT_EVALUATION, 'shadow_other']),
    st.lists(HINT_TEXT, min_size=1, max_size=3))


def test_any_hints_weigh_every_host_within_the_weights_range(serve):
    # Nova hands the weigher its hints as lists of strings, whatever the
    # tenant sent: none of them may fail a boot.
    serve(ScriptedService(ranking({'host1': 70, 'host2': 80})))
    flavor = objects.Flavor(name='m1.test', vcpus=2, memory_mb=4096,
                            root_gb=20, ephemeral_gb=0, swap=0,
                            extra_specs={})
    multiplier = CONF.shadow_weigher.weight_multiplier
    shadow = shadow_weigher.ShadowWeigher()

    @settings(max_examples=100, deadline=None)
    @given(hints=HINTS)
    def check(hints):
        spec = objects.RequestSpec(scheduler_hints=hints,
                                   instance_group=None, flavor=flavor,
                                   project_id='project-1',
                                   instance_uuid=str(uuid.uuid4()))
        _, weighed, _ = weigh(three_hosts(), spec, [shadow])
        assert sorted(w.obj.host for w in weighed) == ['host1', 'host2',
                                                       'host3']
        for w in weighed:
            assert math.isfinite(w.weight)
            assert 0.0 <= w.weight <= multiplier

    check()
