"""The RPC contract of shadow-service, run over any transport.

``RPCContract`` is mixed into a test class that provides ``transport_url``;
the unit suite runs it over ``fake://``, the functional suite over the real
RabbitMQ.  The service behind it is the real one: the twin, the analyzer and
an in-memory history store.
"""

import time
import uuid

import pytest

from shadow_service import exception
from tests import service_support

REQUEST = {'flavor': {'name': 'm1.large', 'vcpus': 4, 'ram_mb': 8192,
                      'disk_gb': 40},
           'profile': 'web'}
HOSTS = [{'host': 'node-%02d' % i, 'vcpus': 32} for i in range(1, 5)]
FAST = {'shadow': {'sample_interval': 1.0, 'min_run_time': 2.0}}


def wait_until_done(api, evaluation_id, timeout=60):
    """Poll ``get_evaluation`` until the evaluation is no longer running."""
    deadline = time.monotonic() + timeout
    state = api.get_evaluation({}, evaluation_id, timeout=30)
    while state['status'] in ('pending', 'running'):
        assert time.monotonic() < deadline, 'evaluation still running'
        time.sleep(0.2)
        state = api.get_evaluation({}, evaluation_id, timeout=30)
    return state


class RPCContract:
    transport_url = None

    @pytest.fixture
    def service(self):
        running = service_support.RunningService(self.transport_url,
                                                 **FAST).start()
        running.wait_until_serving()
        yield running
        running.stop()

    def test_rank_hosts_returns_every_host_scored_and_deletes_shadows(
            self, service):
        ranking = service.client().rank_hosts({}, REQUEST, HOSTS, 10.0,
                                              timeout=60)
        assert ranking['status'] == 'finished'
        assert {h['host'] for h in ranking['hosts']} == {
            h['host'] for h in HOSTS}
        scores = [h['score'] for h in ranking['hosts']]
        assert scores == sorted(scores, reverse=True)
        assert all(0 <= s <= 100 for s in scores)
        assert 0 <= ranking['confidence'] <= 1
        driver = service.manager.evaluator.driver
        assert driver.list_shadows() == []
        record = service.history.get_evaluation(ranking['evaluation_id'])
        assert record['hosts'] == ranking['hosts']

    def test_compact_ranking_keeps_only_what_the_weigher_reads(
            self, service):
        request = dict(REQUEST, purpose='resize')     # history only: fast
        ranking = service.client().rank_hosts({}, request, HOSTS, 10.0,
                                              timeout=60, detail=False)
        assert {h['host'] for h in ranking['hosts']} == {
            h['host'] for h in HOSTS}
        assert all(set(h) == {'host', 'score', 'confidence'}
                   for h in ranking['hosts'])
        # The evaluation record keeps every detail.
        record = service.history.get_evaluation(ranking['evaluation_id'])
        assert all('reasons' in h for h in record['hosts'])

    def test_detail_that_is_not_a_boolean_is_a_typed_error(self, service):
        cctxt = service.client().client.prepare(version='1.1', timeout=30)
        with pytest.raises(exception.InvalidRequest) as info:
            cctxt.call({}, 'rank_hosts', request=REQUEST, hosts=HOSTS,
                       budget_s=5.0, detail='no')
        assert 'detail' in str(info.value)

    def test_bad_request_gets_a_typed_error_naming_the_field(self, service):
        bad = dict(REQUEST, flavor={'vcpus': -1, 'ram_mb': 1})
        with pytest.raises(exception.InvalidRequest) as info:
            service.client().rank_hosts({}, bad, HOSTS, 5.0, timeout=30)
        assert 'flavor.vcpus' in str(info.value)

    def test_unknown_profile_gets_a_typed_error(self, service):
        with pytest.raises(exception.InvalidRequest) as info:
            service.client().rank_hosts(
                {}, dict(REQUEST, profile='no-such-profile'), HOSTS, 5.0,
                timeout=30)
        assert 'no-such-profile' in str(info.value)

    def test_unknown_evaluation_is_not_found(self, service):
        with pytest.raises(exception.EvaluationNotFound):
            service.client().get_evaluation({}, str(uuid.uuid4()),
                                            timeout=30)

    def test_async_evaluation_can_be_polled_to_the_end(self, service):
        api = service.client()
        evaluation_id = api.start_evaluation({}, REQUEST, HOSTS, 10.0,
                                             timeout=30)
        state = wait_until_done(api, evaluation_id)
        assert state['status'] == 'finished'
        assert state['ranking']['evaluation_id'] == evaluation_id
        assert len(state['ranking']['hosts']) == len(HOSTS)

    @pytest.fixture
    def slow_service(self):
        """A service whose evaluations may not stop on confidence for
        150 s, so a cancel always finds them running."""
        running = service_support.RunningService(
            self.transport_url,
            shadow={'sample_interval': 1.0, 'min_run_time': 150.0}).start()
        running.wait_until_serving()
        yield running
        running.stop()

    def test_cancelled_evaluation_stops_early_and_cleans_up(
            self, slow_service):
        api = slow_service.client()
        started = time.monotonic()
        evaluation_id = api.start_evaluation({}, REQUEST, HOSTS, 200.0,
                                             timeout=30)
        api.cancel_evaluation({}, evaluation_id)
        state = wait_until_done(api, evaluation_id)
        assert state['status'] == 'cancelled'
        assert time.monotonic() - started < 60
        assert slow_service.manager.evaluator.driver.list_shadows() == []
