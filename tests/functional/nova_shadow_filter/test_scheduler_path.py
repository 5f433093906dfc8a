"""The scheduler path under what Nova and its users do, in real Nova.

Nova's own functional harness (API, conductor, scheduler with the
ShadowWeigher, Placement, three fake computes) with a real shadow service
(the twin behind it) or, where the answer itself is what a test is about, a
scripted endpoint, over the real RabbitMQ: a bad hint followed by a good
one, a multi-create, every move operation, observe mode, a
``shadow_evaluation`` hint of another project, a clear ranking against
Nova's default weighers, and Nova's versioned notifications.
"""

import tempfile
import time
import uuid

import oslo_messaging as messaging
import pytest

pytest.importorskip('nova.tests.functional.integrated_helpers')

from nova import context as nova_context  # noqa: E402
from nova import objects  # noqa: E402
from nova import rpc as nova_rpc  # noqa: E402
from nova.compute import vm_states  # noqa: E402

from nova_shadow_filter import operations  # noqa: E402
from shadow_service import notifications  # noqa: E402
from shadow_service import rpc  # noqa: E402
from shadow_service import rpcapi  # noqa: E402
from tests import service_support  # noqa: E402
from tests.functional.nova_shadow_filter import test_weigher_nova as base  # noqa: E402,E501

pytestmark = base.pytestmark
HOSTS = base.HOSTS
PROFILE = base.PROFILE


class _WithService(base.ShadowWeigherNovaTestBase):
    """A real shadow service over the twin of host1..host3."""

    SERVICE_GROUPS = {}

    def setUp(self):
        super().setUp()
        tmp = tempfile.mkdtemp(prefix='nova-shadow-test-')
        groups = {'shadow': {'sample_interval': 1.0, 'min_run_time': 2.0,
                             'confidence_target': 0.99},
                  'sim': {'cluster_file': base._cluster_file(tmp)}}
        for group, values in self.SERVICE_GROUPS.items():
            groups.setdefault(group, {}).update(values)
        self.service = service_support.RunningService(
            base.RABBIT_URL, topic=self.topic, **groups).start()
        self.addCleanup(self.service.stop)
        self.service.wait_until_serving()

    def _new_evaluations(self, before):
        return [e for k, e in self.service.evaluations.items()
                if k not in before]

    def _server(self, name, hints=None, flavor='m1.small', az=None):
        server = self._build_server(name=name, networks='none', az=az,
                                    flavor_id=self.flavors[flavor])
        body = {'server': server}
        if hints:
            body['os:scheduler_hints'] = hints
        return self._wait_for_state_change(self.api.post_server(body),
                                           'ACTIVE')


class BadHintThenGoodHintTest(_WithService):

    def test_a_bad_profile_does_not_switch_the_weigher_off(self):
        before = set(self.service.evaluations)
        self.assertIn(self._boot('typo', hints={
            'shadow_profile': 'no-such-profile'}), HOSTS)
        self.assertEqual([], self._new_evaluations(before),
                         'the service rejected the request')

        landed = self._boot('good', hints={'shadow_profile': PROFILE})
        new = self._new_evaluations(before)
        self.assertEqual(1, len(new), 'the next request is evaluated')
        self.assertEqual('finished', new[0].status)
        self.assertEqual(new[0].ranking['hosts'][0]['host'], landed)


class MultiCreateTest(_WithService):
    BUDGET = 3.0

    def test_five_instances_share_one_evaluation(self):
        before = set(self.service.evaluations)
        server = self._build_server(name='many', networks='none',
                                    flavor_id=self.flavors['m1.small'])
        server.update({'min_count': 5, 'max_count': 5})
        start = time.monotonic()
        self.api.post_server({'server': server,
                              'os:scheduler_hints': {
                                  'shadow_profile': PROFILE}})
        servers = []
        deadline = time.monotonic() + 120
        while len(servers) < 5 and time.monotonic() < deadline:
            servers = [s for s in self.api.get_servers()
                       if s['name'].startswith('many')
                       and s['status'] == 'ACTIVE']
            time.sleep(0.2)
        elapsed = time.monotonic() - start
        self.assertEqual(5, len(servers))
        new = self._new_evaluations(before)
        self.assertEqual(1, len(new), 'one evaluation per request')
        self.assertEqual(5, new[0].request['num_instances'])
        # One budget, not five (plus the boots themselves).
        self.assertLess(elapsed, self.BUDGET + 2.0 + 30.0)


class MoveOperationsTest(_WithService):
    """Each move: what the weigher asks (history only, or nothing)."""

    # The boot's evaluation must boot and measure its shadows, which on a
    # loaded machine takes longer than a 4 s budget leaves (it then
    # answers without them): a long budget it does not wait out, ending
    # at min_run_time once the ranking is this confident.
    BUDGET = 15.0
    SERVICE_GROUPS = {'shadow': {'confidence_target': 0.5}}

    def setUp(self):
        super().setUp()
        self.flags(allow_resize_to_same_host=False)
        self.flags(move_timeout=3.0, group='shadow_weigher')
        before = set(self.service.evaluations)
        self.server = self._server('mover', hints={'shadow_profile': PROFILE})
        (self.boot,) = self._new_evaluations(before)

    def _asked_for(self, action):
        before = set(self.service.evaluations)
        action()
        return [e.request.get('purpose', 'boot')
                for e in self._new_evaluations(before)]

    def test_an_instance_still_building_is_a_boot(self):
        # The weigher's record of a boot looks the instance up after the
        # request; by then Nova's conductor may have mapped the new
        # instance to its cell.  Until its build ends it is still a boot.
        uuid_ = self.server['id']
        self.assertEqual(operations.MOVE,
                         operations.operation_of_instance(uuid_))
        ctxt = nova_context.get_admin_context()
        mapping = objects.InstanceMapping.get_by_instance_uuid(ctxt, uuid_)
        with nova_context.target_cell(ctxt, mapping.cell_mapping) as cctxt:
            instance = objects.Instance.get_by_uuid(cctxt, uuid_)
            instance.vm_state = vm_states.BUILDING
            instance.save()
        self.assertEqual(operations.BOOT,
                         operations.operation_of_instance(uuid_))

    def test_a_boot_runs_shadows_and_moves_ask_history_only(self):
        self.assertEqual('boot', self.boot.request.get('purpose', 'boot'))
        self.assertGreater(self.boot.ranking['shadow_host_seconds'], 0)

        def resize():
            server = self._resize_server(self.server,
                                         self.flavors['m1.medium'])
            self._confirm_resize(server)

        self.assertEqual(['resize'], self._asked_for(resize))
        self.assertEqual(['migrate'], self._asked_for(
            lambda: self._confirm_resize(self._migrate_server(self.server))))
        self.assertEqual(['live-migrate'], self._asked_for(
            lambda: self._live_migrate(self.server)))

        def unshelve():
            self._shelve_server(self.server)
            self._unshelve_server(self.server)

        self.assertEqual(['unshelve'], self._asked_for(unshelve))
        for evaluation in self.service.evaluations.values():
            if evaluation.request.get('purpose', 'boot') != 'boot':
                self.assertEqual('history', evaluation.ranking['source'])
                self.assertEqual(0, evaluation.ranking['shadow_host_seconds'])

    def test_an_evacuation_never_waits(self):
        server = self.api.get_server(self.server['id'])
        source = server['OS-EXT-SRV-ATTR:host']
        service_id = self.admin_api.get_services(
            host=source, binary='nova-compute')[0]['id']
        self.computes[source].stop()
        self.admin_api.put_service(service_id, {'forced_down': 'true'})
        before = set(self.service.evaluations)
        moved = self._evacuate_server(server)
        self.assertNotEqual(source, moved['OS-EXT-SRV-ATTR:host'])
        self.assertEqual([], self._new_evaluations(before))


class ObserveModeTest(_WithService):

    def test_observe_mode_evaluates_but_nova_decides(self):
        self.flags(mode='observe', group='shadow_weigher')
        best = self.service.client().rank_hosts(
            {}, {'flavor': {'vcpus': 1, 'ram_mb': 2048}, 'profile': PROFILE},
            [{'host': h} for h in HOSTS], self.BUDGET,
            timeout=30)['hosts'][0]['host']
        # The host the service ranks best is the one Nova's RAM weigher
        # likes least: only applied shadow weights would bring a VM there.
        self._boot('filler', 'm1.medium', az='nova:%s' % best)
        before = set(self.service.evaluations)
        observed = self._boot('observed', hints={'shadow_profile': PROFILE})
        (evaluation,) = self._new_evaluations(before)
        self.assertEqual(best, evaluation.ranking['hosts'][0]['host'])
        self.assertNotEqual(best, observed,
                            'the weights are not applied in observe mode')


class EvaluationHintOfAnotherProjectTest(_WithService):
    """A ``shadow_evaluation`` hint is looked up for the booting project:
    another project's evaluation weighs nothing (as an unknown id), the
    project's own and an operator's pre-flight (no project) decide."""

    def _evaluate(self, project_id=None):
        """The evaluation id and best host of a ranking of the three
        hosts for a request of ``project_id``."""
        request = {'flavor': {'vcpus': 1, 'ram_mb': 2048},
                   'profile': PROFILE}
        if project_id is not None:
            request['project_id'] = project_id
        ranking = self.service.client().rank_hosts(
            {}, request, [{'host': h} for h in HOSTS], self.BUDGET,
            timeout=30)
        return ranking['evaluation_id'], ranking['hosts'][0]['host']

    def test_only_the_project_s_own_or_no_project_s_evaluation_decides(
            self):
        theirs, best = self._evaluate('another-project')
        ours, ours_best = self._evaluate(self.api.project_id)
        preflight, preflight_best = self._evaluate()
        self.assertEqual({best}, {ours_best, preflight_best},
                         'the twin ranks the same request alike')
        # The host the rankings prefer is the one Nova's RAM weigher
        # likes least: only applied shadow weights bring a VM there.
        self._boot('filler', 'm1.medium', az='nova:%s' % best)
        self.assertNotEqual(
            best, self._boot('foreign', hints={'shadow_evaluation': theirs}),
            "another project's evaluation must weigh nothing")
        for name, evaluation_id in (('own', ours), ('preflight', preflight)):
            server = self._server(
                name, hints={'shadow_evaluation': evaluation_id})
            self.assertEqual(best, server['OS-EXT-SRV-ATTR:host'], name)
            # The best host then takes no more of the harness's VMs.
            self._delete_server(server)
        # The operator (no project) still reads the other project's.
        shown = self.service.client().get_evaluation({}, theirs, timeout=30)
        self.assertEqual('finished', shown['status'])


class ScriptedRanking:
    """An RPC endpoint that answers the ranking the test sets."""

    target = messaging.Target(version='1.1')

    def __init__(self):
        self.answer = None
        self.calls = 0

    def rank_hosts(self, ctxt, request, hosts, budget_s, detail=True):
        self.calls += 1
        return self.answer

    def get_evaluation(self, ctxt, evaluation_id):
        return {'status': 'finished', 'ranking': self.answer}


class NovaDefaultWeighersTest(base.ShadowWeigherNovaTestBase):
    """The documented defaults against every weigher Nova enables by
    default: a clear lead decides, a near-tie is left to Nova."""

    WEIGHERS = ['nova.scheduler.weights.all_weighers',
                'nova_shadow_filter.weigher.ShadowWeigher']

    def setUp(self):
        self.weighers = self.WEIGHERS
        super().setUp()
        self.endpoint = ScriptedRanking()
        transport = rpc.get_transport(service_support.make_conf(),
                                      base.RABBIT_URL)
        server = messaging.get_rpc_server(
            transport, messaging.Target(exchange=rpcapi.EXCHANGE,
                                        topic=self.topic, server='scripted'),
            [self.endpoint])
        server.start()
        self.addCleanup(server.wait)
        self.addCleanup(server.stop)
        # host3 is the host Nova's own weighers like least (and still
        # has room for three m1.tiny).
        self._boot('filler-1', 'm1.medium', az='nova:host3')
        self._boot('filler-2', 'm1.small', az='nova:host3')

    def _ranking(self, scores):
        return {'evaluation_id': str(uuid.uuid4()), 'status': 'finished',
                'confidence': 0.95,
                'hosts': [{'host': h, 'score': s, 'confidence': 0.95}
                          for h, s in scores.items()]}

    def test_a_clear_lead_decides_and_a_near_tie_does_not(self):
        nova_choice = self._boot('control', 'm1.tiny')
        self.assertNotEqual('host3', nova_choice)
        # A lead within the tie margin: Nova's weighers, which dislike
        # host3, decide (host3 still has room for it).
        self.endpoint.answer = self._ranking(
            {'host1': 80.0, 'host2': 80.0, 'host3': 81.0})
        self.assertNotEqual('host3', self._boot(
            'near-tie', 'm1.tiny', hints={'shadow_profile': 'web'}))
        # Clear leads (the 9-14 points that lost to Nova's weighers with
        # the earlier normalisation) decide.
        for lead in (9.0, 12.0, 14.0):
            self.endpoint.answer = self._ranking(
                {'host1': 80.0, 'host2': 80.0, 'host3': 80.0 + lead})
            self.assertEqual('host3', self._boot(
                'lead-%d' % lead, 'm1.tiny',
                hints={'shadow_profile': 'web'}))
        self.assertEqual(4, self.endpoint.calls)


class MultiCreateSpreadsOverTiedHostsTest(base.ShadowWeigherNovaTestBase):
    """A multi-create without a server group in Nova's real scheduler:
    a host that took one of the request's instances counts with less
    confidence for the next, so instances spread over the hosts the
    ranking ties, where Nova's weighers alone would stack them."""

    def setUp(self):
        super().setUp()
        # Nova's RAM weigher stacking: it prefers the host that took the
        # request's previous instance.
        self.flags(ram_weight_multiplier=-1.0, group='filter_scheduler')
        self.endpoint = ScriptedRanking()
        transport = rpc.get_transport(service_support.make_conf(),
                                      base.RABBIT_URL)
        server = messaging.get_rpc_server(
            transport, messaging.Target(exchange=rpcapi.EXCHANGE,
                                        topic=self.topic, server='scripted'),
            [self.endpoint])
        server.start()
        self.addCleanup(server.wait)
        self.addCleanup(server.stop)
        # host1 and host2 tie, host3 is clearly worse.
        self.endpoint.answer = {
            'evaluation_id': str(uuid.uuid4()), 'status': 'finished',
            'confidence': 0.95,
            'hosts': [{'host': h, 'score': s, 'confidence': 0.95}
                      for h, s in (('host1', 80.0), ('host2', 80.5),
                                   ('host3', 60.0))]}

    def _boot_many(self, name, count):
        server = self._build_server(name=name, networks='none',
                                    flavor_id=self.flavors['m1.small'])
        server.update({'min_count': count, 'max_count': count})
        self.api.post_server({'server': server, 'os:scheduler_hints': {
            'shadow_profile': 'web'}})
        servers = []
        deadline = time.monotonic() + 120
        while len(servers) < count and time.monotonic() < deadline:
            servers = [s for s in self.api.get_servers(detail=True)
                       if s['name'].startswith(name)
                       and s['status'] == 'ACTIVE']
            time.sleep(0.2)
        self.assertEqual(count, len(servers))
        return sorted(s['OS-EXT-SRV-ATTR:host'] for s in servers)

    def test_the_instances_share_the_hosts_the_ranking_ties(self):
        self.assertEqual(['host1', 'host2'], self._boot_many('pair', 2))
        self.assertEqual(1, self.endpoint.calls, 'one question per request')


class NotificationListenerTest(_WithService):
    """Nova's versioned notifications over the real RabbitMQ, on an
    exchange of this test's own."""

    EXCHANGE = 'nova-shadow-test-%s' % uuid.uuid4().hex[:8]
    SERVICE_GROUPS = {'nova_notifications': {'listen': True,
                                             'exchange': EXCHANGE,
                                             'pool': 'test-' + EXCHANGE}}

    def setUp(self):
        super().setUp()
        self.flags(notification_format='versioned', group='notifications')
        conf = service_support.make_conf()
        conf.set_override('control_exchange', self.EXCHANGE)
        transport = messaging.get_notification_transport(
            conf, url=base.RABBIT_URL)
        self.addCleanup(transport.cleanup)
        real = messaging.Notifier(
            transport, driver='messaging',
            serializer=nova_rpc.RequestContextSerializer(
                nova_rpc.JsonPayloadSerializer()),
            topics=['versioned_notifications'])
        self.stub_out('nova.rpc.NOTIFIER', real)

    def _wait_for(self, predicate, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        self.fail('timed out')

    def test_nova_s_choice_is_recorded_and_joined_with_the_ranking(self):
        before = set(self.service.evaluations)
        server = self._server('watched', hints={'shadow_profile': PROFILE})
        landed = server['OS-EXT-SRV-ATTR:host']
        (evaluation,) = self._new_evaluations(before)
        history = self.service.history

        self.assertEqual(landed, self._wait_for(
            lambda: notifications.placement_of(history, server['id'])))
        audit = notifications.audit(history, evaluation.evaluation_id)
        self.assertEqual(server['id'], audit['instance'])
        self.assertEqual(landed, audit['nova_chose'])
        self.assertEqual(audit['ranked_first'] == landed, audit['agreed'])

        self._delete_server(server)
        self._wait_for(lambda: [
            e for e in notifications.instance_events(history, server['id'])
            if e['event'] == 'deleted'])

    def _events_until(self, server_id, event, count=1):
        history = self.service.history
        return self._wait_for(lambda: (
            lambda found: found if len([
                e for e in found if e['event'] == event]) >= count else None)(
            notifications.instance_events(history, server_id)))

    def test_a_moved_instance_is_recorded_on_the_host_it_moved_to(self):
        server = self._server('moving', hints={'shadow_profile': PROFILE})
        created_on = server['OS-EXT-SRV-ATTR:host']

        moved = self._live_migrate(server)
        migrated_to = self.api.get_server(moved['id'])[
            'OS-EXT-SRV-ATTR:host']
        self.assertNotEqual(created_on, migrated_to)
        events = self._events_until(server['id'], 'live-migrated')
        self.assertEqual([migrated_to], [
            e['host'] for e in events if e['event'] == 'live-migrated'])

        service_id = self.admin_api.get_services(
            host=migrated_to, binary='nova-compute')[0]['id']
        self.computes[migrated_to].stop()
        self.admin_api.put_service(service_id, {'forced_down': 'true'})
        # The fake driver keeps a live-migrated instance on the source
        # too: evacuate to the third host.
        (third,) = set(HOSTS) - {created_on, migrated_to}
        evacuated_to = self._evacuate_server(
            self.api.get_server(server['id']),
            extra_post_args={'host': third},
            expected_host=third)['OS-EXT-SRV-ATTR:host']
        events = self._events_until(server['id'], 'rebuilt')
        # The evacuation is asked for on the host it leaves, and lands
        # with the rebuild on the new one.
        self.assertEqual([migrated_to], [
            e['host'] for e in events if e['event'] == 'evacuating'])
        self.assertEqual([evacuated_to], [
            e['host'] for e in events if e['event'] == 'rebuilt'])
        # Where the VM runs now: the host of its newest landing.
        self.assertEqual(evacuated_to, [
            e['host'] for e in events
            if e['event'] in notifications.LANDED][-1])

    def test_the_audit_of_a_move_is_where_that_move_landed(self):
        self.flags(allow_resize_to_same_host=False)
        before = set(self.service.evaluations)
        server = self._server('resized', hints={'shadow_profile': PROFILE})
        created_on = server['OS-EXT-SRV-ATTR:host']
        (boot,) = self._new_evaluations(before)
        before = set(self.service.evaluations)
        # Nova's _resize_server waits for its fake notifier, which the
        # real one replaces here.
        self.api.post_server_action(server['id'], {'resize': {
            'flavorRef': self.flavors['m1.medium']}})
        resized = self._wait_for_state_change(server, 'VERIFY_RESIZE')
        self._confirm_resize(resized)
        resized_on = self.api.get_server(server['id'])[
            'OS-EXT-SRV-ATTR:host']
        (resize,) = self._new_evaluations(before)
        self.assertEqual('resize', resize.request['purpose'])
        self.assertNotEqual(created_on, resized_on)
        self._events_until(server['id'], 'resized')
        history = self.service.history

        self.assertEqual(created_on, notifications.audit(
            history, boot.evaluation_id)['nova_chose'])
        audit = notifications.audit(history, resize.evaluation_id)
        self.assertEqual(resized_on, audit['nova_chose'])
        ranked = [h['host'] for h in resize.ranking['hosts']]
        self.assertEqual(ranked.index(resized_on) + 1,
                         audit['rank_of_choice'])
