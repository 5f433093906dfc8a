"""ShadowWeigher inside real Nova: API, conductor, scheduler, placement and
three compute services with the fake virt driver, from Nova's own
functional harness; a real shadow service (the twin behind it) on the other
end of the RPC over the real RabbitMQ.
"""

import os
import socket
import sys
import tempfile
import time

import pytest
import yaml

pytest.importorskip('nova.tests.functional.integrated_helpers')

from nova.tests.functional import integrated_helpers  # noqa: E402

from nova_shadow_filter import breaker  # noqa: E402
from nova_shadow_filter import weigher  # noqa: E402  (registers opts)
from shadow_service.clouds.sim import cluster  # noqa: E402
from tests import service_support  # noqa: E402

RABBIT_URL = os.environ.get('NOVA_SHADOW_RABBIT_URL',
                            'rabbit://guest:guest@127.0.0.1:5672/')
HOSTS = ('host1', 'host2', 'host3')
# The twin behind the service models Nova's three computes as three
# hardware classes, so the measured ranking has a clear winner.
HOST_CLASSES = {'host1': 'legacy', 'host2': 'compute', 'host3': 'general'}
PROFILE = 'db-oltp'


def _cluster_file(directory):
    with open(cluster.DEFAULT_CLUSTER_FILE) as f:
        data = yaml.safe_load(f)
    data['hosts'] = [{'name': h, 'class': c} for h, c in HOST_CLASSES.items()]
    path = os.path.join(directory, 'cluster.yaml')
    with open(path, 'w') as f:
        yaml.safe_dump(data, f)
    return path
WEIGHERS = ['nova.scheduler.weights.ram.RAMWeigher',
            'nova_shadow_filter.weigher.ShadowWeigher']


def _rabbit_listening():
    try:
        with socket.create_connection(('127.0.0.1', 5672), timeout=1):
            return True
    except OSError:
        return False


pytestmark = [
    pytest.mark.nova, pytest.mark.rabbit,
    pytest.mark.skipif(
        not _rabbit_listening() and
        not os.environ.get('NOVA_SHADOW_REQUIRE_SERVICES'),
        reason='RabbitMQ is not running on 127.0.0.1:5672'),
]


class ShadowWeigherNovaTestBase(integrated_helpers._IntegratedTestBase):
    microversion = 'latest'
    ADMIN_API = True
    BUDGET = 4.0
    #: ``[shadow_weigher] deadline_margin``: what a call may take past the
    #: budget.
    DEADLINE_MARGIN = 2.0

    def setUp(self):
        # The scheduler reads weight_classes when it starts: set it first.
        self.flags(weight_classes=getattr(self, 'weighers', WEIGHERS),
                   group='filter_scheduler')
        self.flags(ram_weight_multiplier=1.0, group='filter_scheduler')
        self.flags(compute_driver='fake.MediumFakeDriver')
        self.flags(api_paste_config=os.path.join(
            sys.prefix, 'etc', 'nova', 'api-paste.ini'), group='wsgi')
        self.topic = service_support.unique_topic()
        self.flags(transport_url=RABBIT_URL, topic=self.topic,
                   default_budget=self.BUDGET,
                   deadline_margin=self.DEADLINE_MARGIN,
                   group='shadow_weigher')
        super().setUp()
        for host in HOSTS[1:]:
            self._start_compute(host)
        self.flavors = {f['name']: f['id'] for f in self.api.get_flavors()}

    def _setup_compute_service(self):
        return self._start_compute(HOSTS[0])

    def _clear_attrs(self):
        # Nova's base deletes public attributes at clean-up; pytest still
        # needs some of them after the test, and memory is not a concern.
        pass

    def _boot(self, name, flavor='m1.small', hints=None, az=None):
        server = self._build_server(name=name, networks='none', az=az,
                                    flavor_id=self.flavors[flavor])
        body = {'server': server}
        if hints:
            body['os:scheduler_hints'] = hints
        created = self.api.post_server(body)
        server = self._wait_for_state_change(created, 'ACTIVE')
        return server['OS-EXT-SRV-ATTR:host']


class ShadowWeigherPlacesOnBestHostTest(ShadowWeigherNovaTestBase):

    def setUp(self):
        super().setUp()
        tmp = tempfile.mkdtemp(prefix='nova-shadow-test-')
        self.service = service_support.RunningService(
            RABBIT_URL, topic=self.topic,
            shadow={'sample_interval': 1.0, 'min_run_time': 3.0,
                    'confidence_target': 0.99},
            sim={'cluster_file': _cluster_file(tmp)}).start()
        self.addCleanup(self.service.stop)
        self.service.wait_until_serving()

    def _best_host_now(self):
        ranking = self.service.client().rank_hosts(
            {}, {'flavor': {'vcpus': 1, 'ram_mb': 2048}, 'profile': PROFILE},
            [{'host': h} for h in HOSTS], self.BUDGET, timeout=30)
        return ranking['hosts'][0]['host']

    def test_boot_lands_on_the_host_the_service_ranks_best(self):
        best = self._best_host_now()
        # Make the best-ranked host the one Nova's RAM weigher likes least,
        # so that only the shadow ranking can bring the VM there.
        self.assertEqual(best, self._boot('filler', 'm1.medium',
                                          az='nova:%s' % best))

        control = self._boot('control')
        self.assertNotEqual(best, control,
                            'without a hint Nova must not pick %s' % best)

        before = set(self.service.evaluations)
        landed = self._boot('shadowed', hints={'shadow_profile': PROFILE})
        new = [e for k, e in self.service.evaluations.items()
               if k not in before]
        self.assertEqual(1, len(new), 'one RPC per scheduling request')
        ranking = new[0].ranking
        self.assertEqual('finished', ranking['status'])
        self.assertEqual(set(HOSTS), {h['host'] for h in ranking['hosts']})
        self.assertEqual(ranking['hosts'][0]['host'], landed)
        self.assertEqual(best, landed)

    def test_boot_without_hint_sends_nothing(self):
        self._boot('plain')
        self.assertEqual({}, self.service.evaluations)


class ShadowServiceDownTest(ShadowWeigherNovaTestBase):
    # Each of the two outages waits the whole deadline (budget + margin):
    # short ones, as no service answers either way.
    BUDGET = 1.0
    DEADLINE_MARGIN = 1.0

    def _shadow_weigher(self):
        (found,) = [w for w in self.scheduler.manager.host_manager.weighers
                    if isinstance(w, weigher.ShadowWeigher)]
        return found

    def test_boots_succeed_within_the_deadline_when_service_is_down(self):
        shadow_weigher = self._shadow_weigher()
        calls = []
        call = shadow_weigher._call

        def counted(plan):
            calls.append(plan.what)
            return call(plan)

        shadow_weigher._call = counted
        start = time.monotonic()
        first = self._boot('a', hints={'shadow_profile': 'web'})
        first_s = time.monotonic() - start
        self.assertIn(first, HOSTS)
        # budget + deadline margin, plus the boot itself.
        self.assertLess(first_s, self.BUDGET + self.DEADLINE_MARGIN + 10.0)

        # The second outage (failure_threshold 2) opens the circuit: that
        # boot waits once more, the next does not call (so does not wait)
        # at all.  Each boot is timed on its own, so the first one's own
        # time (scheduling, spawning) does not count against the second.
        start = time.monotonic()
        self.assertIn(self._boot('b', hints={'shadow_profile': 'web'}),
                      HOSTS)
        self.assertLess(time.monotonic() - start,
                        self.BUDGET + self.DEADLINE_MARGIN + 10.0)
        self.assertEqual(2, len(calls), calls)
        self.assertEqual(breaker.CircuitBreaker.OPEN,
                         shadow_weigher.breaker.state)
        # Counted, not timed: a boot's own time on a loaded machine can
        # exceed any bound that tells "no wait" from "a short wait".
        self.assertIn(self._boot('c', hints={'shadow_profile': 'web'}),
                      HOSTS)
        self.assertEqual(2, len(calls), calls)

    def test_bad_hints_never_fail_a_boot(self):
        for hints in ({'shadow_profile': ''},
                      {'shadow_profile': 'web', 'shadow_budget': 'later'},
                      {'shadow_evaluation': 'not-a-uuid'}):
            self.assertIn(self._boot('bad', hints=hints), HOSTS)


class ShadowWeigherHostCostTest(ShadowWeigherNovaTestBase):
    """The ``shadow_host_cost`` aggregate metadata reaches the service
    with each host, and the service's cost cap keeps the VM off a host that
    costs too much even when it measures best."""

    def setUp(self):
        super().setUp()
        tmp = tempfile.mkdtemp(prefix='nova-shadow-test-')
        self.service = service_support.RunningService(
            RABBIT_URL, topic=self.topic,
            shadow={'sample_interval': 1.0, 'min_run_time': 3.0,
                    'confidence_target': 0.99, 'cost_policy': 'cap',
                    'max_host_cost': 2.0},
            sim={'cluster_file': _cluster_file(tmp)}).start()
        self.addCleanup(self.service.stop)
        self.service.wait_until_serving()

    def test_host_over_the_cost_cap_is_not_chosen(self):
        ranking = self.service.client().rank_hosts(
            {}, {'flavor': {'vcpus': 1, 'ram_mb': 2048}, 'profile': PROFILE},
            [{'host': h} for h in HOSTS], self.BUDGET, timeout=30)
        best = ranking['hosts'][0]['host']
        aggregate = self._create_aggregate('premium')
        self.admin_api.add_host_to_aggregate(aggregate, best)
        self.admin_api.post_aggregate_action(aggregate, {
            'set_metadata': {'metadata': {'shadow_host_cost': '5'}}})

        before = set(self.service.evaluations)
        landed = self._boot('capped', hints={'shadow_profile': PROFILE})
        new = [e for k, e in self.service.evaluations.items()
               if k not in before]
        self.assertEqual(1, len(new))
        # What the weigher sent: the aggregate's cost with the host.
        sent = {h['host']: h for h in new[0].hosts}
        self.assertEqual(5.0, sent[best]['cost'])
        self.assertNotIn('cost', sent[[h for h in HOSTS if h != best][0]])
        entry = {h['host']: h for h in new[0].ranking['hosts']}[best]
        self.assertEqual(0.0, entry['score'])
        self.assertEqual('may not take the VM: costs 5 > 2',
                         entry['reasons'][0])
        self.assertNotEqual(best, landed)


class ShadowWeigherPriorCacheTest(ShadowWeigherNovaTestBase):
    """``[shadow_weigher] prior_cache_ttl``: once the service answered a
    workload from history, the next boot of it is answered by the
    weigher from that answer (the host that took the previous VM
    neutral), the service is asked again about every candidate (from
    history, unrecorded: it scores hosts relative to the best of the
    list) and the whole request is still recorded by the service."""

    def setUp(self):
        # Long enough that the test's boots all fall within it.
        self.flags(prior_cache_ttl=120.0, group='shadow_weigher')
        super().setUp()
        tmp = tempfile.mkdtemp(prefix='nova-shadow-test-')
        self.service = service_support.RunningService(
            RABBIT_URL, topic=self.topic,
            shadow={'sample_interval': 1.0, 'min_run_time': 3.0,
                    'confidence_target': 0.5},
            sim={'cluster_file': _cluster_file(tmp)}).start()
        self.addCleanup(self.service.stop)
        self.service.wait_until_serving()

    def _new(self, before, count, timeout=20.0):
        """The evaluations the service admitted since ``before``, once
        there are ``count`` of them (records arrive after the boot)."""
        deadline = time.monotonic() + timeout
        while True:
            new = [e for k, e in self.service.evaluations.items()
                   if k not in before and e.status != 'running']
            if len(new) >= count or time.monotonic() > deadline:
                return sorted(new, key=lambda e: e.started_at)
            time.sleep(0.1)

    def test_a_workload_answered_from_history_is_reused(self):
        hints = {'shadow_profile': PROFILE}
        # The first boot measures the hosts; a later one finds that
        # history decides (on a loaded machine the first may end with
        # too few samples for that, and the next measures again).
        for index in range(4):
            before = set(self.service.evaluations)
            second = self._boot('vm%d' % index, hints=hints)
            [answer] = self._new(before, 1)
            if answer.ranking['source'] == 'history':
                break
        self.assertEqual('history', answer.ranking['source'])
        self.assertEqual(set(HOSTS), {h['host'] for h in answer.hosts})
        self.assertTrue(answer.record)

        # The third boot: only the host that took the second VM changed.
        before = set(self.service.evaluations)
        third = self._boot('third', hints=hints)
        refresh, record = self._new(before, 2, timeout=60.0)
        self.assertIn(second, HOSTS)
        self.assertEqual(set(HOSTS), {h['host'] for h in refresh.hosts})
        self.assertTrue(refresh.history_only)
        self.assertFalse(refresh.record)
        # The record of the whole request, sent after the answer.
        self.assertEqual(set(HOSTS), {h['host'] for h in record.hosts})
        self.assertTrue(record.history_only)
        self.assertTrue(record.record)
        self.assertEqual('history', record.ranking['source'])
        # The boot-or-move look-up the cached answer did not wait for.
        self.assertEqual('boot', record.request['purpose'])
        self.assertIn(third, HOSTS)
        # In history: the record, not the refresh.
        deadline = time.monotonic() + 10.0
        while (self.service.history.get_evaluation(record.evaluation_id)
               is None and time.monotonic() < deadline):
            time.sleep(0.1)
        self.assertIsNotNone(
            self.service.history.get_evaluation(record.evaluation_id))
        self.assertIsNone(
            self.service.history.get_evaluation(refresh.evaluation_id))
