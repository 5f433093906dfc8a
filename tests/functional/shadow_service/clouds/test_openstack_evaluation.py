"""Evaluations with the openstack driver inside real Nova.

Nova's own functional harness (API, conductor, scheduler, Placement,
three computes with the fake virt driver) runs the shadows; the fake
virt driver runs nothing, so a :class:`FakeGuest` reads each shadow's
user-data through the API and posts samples to the real collector with
the token it finds there, as loadgen would.  The weigher
(``ShadowWeigher``) reaches the service over the real RabbitMQ.
"""

import os
import socket
import time
import uuid

import fixtures
import pytest

from nova_shadow_filter import weigher  # noqa: F401 (registers options)
from shadow_service import service
from shadow_service.clouds.openstack import driver as os_driver
from shadow_service.history import sqlite
from tests import openstack_support as support
from tests import service_support

RABBIT_URL = os.environ.get('NOVA_SHADOW_RABBIT_URL',
                            'rabbit://guest:guest@127.0.0.1:5672/')
# Generous: shadows take a few seconds to come up in a loaded harness; the
# evaluation stops as soon as its ranking is confident anyway.
BUDGET = 20.0
REQUEST = {'flavor': {'name': 'm1.small', 'vcpus': 1, 'ram_mb': 2048,
                      'disk_gb': 4},
           'profile': 'batch-cpu', 'image_id': support.IMAGE_ID}


def _rabbit_listening():
    try:
        with socket.create_connection(('127.0.0.1', 5672), timeout=1):
            return True
    except OSError:
        return False


pytestmark = [pytest.mark.nova]


class _ServiceTestBase(support.OpenStackHarnessTestBase):
    """The shadow service assembled by ``service.build`` around the
    openstack driver, over an SQLite history."""

    def start_shadow_service(self, **groups):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'history.sqlite')
        self.store = sqlite.SQLiteStore(path=path)
        conf, self.driver = self.make_driver(self.store, **groups)
        self.parts = service.build(conf, history=self.store,
                                   driver=self.driver)
        self.addCleanup(self.parts.close)
        return self.parts

    def evaluate(self, hosts, budget=BUDGET):
        guest = support.FakeGuest(self.admin_api)
        guest.start()
        self.addCleanup(guest.stop)
        started = time.monotonic()
        ranking = self.parts.manager.evaluate(dict(REQUEST), hosts, budget)
        took = time.monotonic() - started
        guest.stop()
        return ranking, took, guest

    def assert_nothing_left(self, server_ids):
        self.assertEqual([], self.shadow_servers())
        for server_id in server_ids:
            self.assertEqual({}, self.allocations(server_id))


@pytest.mark.rabbit
@pytest.mark.skipif(not _rabbit_listening() and
                    not os.environ.get('NOVA_SHADOW_REQUIRE_SERVICES'),
                    reason='RabbitMQ is not running on 127.0.0.1:5672')
class ShadowsOnRealNovaTest(_ServiceTestBase):
    WEIGHERS = ['nova.scheduler.weights.ram.RAMWeigher',
                'nova_shadow_filter.weigher.ShadowWeigher']

    def setUp(self):
        self.topic = service_support.unique_topic()
        self.flags(transport_url=RABBIT_URL, topic=self.topic,
                   default_budget=4.0, deadline_margin=2.0,
                   group='shadow_weigher')
        super().setUp()
        self.flavors = {f['name']: f['id'] for f in self.api.get_flavors()}

    def _serve(self):
        server = service.RPCServer(self.parts, transport_url=RABBIT_URL,
                                   server='test-%s' % self.topic)
        server._server.start()
        self.addCleanup(server._server.wait)
        self.addCleanup(server._server.stop)
        api = service_support.rpcapi.ShadowAPI(
            self.parts.conf, topic=self.topic, transport_url=RABBIT_URL)
        deadline = time.monotonic() + 30
        while True:
            try:
                api.get_evaluation({}, str(uuid.uuid4()), timeout=2)
            except Exception as e:
                if type(e).__name__.startswith('EvaluationNotFound'):
                    return
                if time.monotonic() > deadline:
                    raise

    def _boot(self, name, flavor='m1.small', hints=None, az=None):
        server = self._build_server(name=name, networks='none', az=az,
                                    flavor_id=self.flavors[flavor])
        body = {'server': server}
        if hints:
            body['os:scheduler_hints'] = hints
        created = self.api.post_server(body)
        return self._wait_for_state_change(created, 'ACTIVE')[
            'OS-EXT-SRV-ATTR:host']

    def test_shadows_measure_each_candidate_and_the_hint_follows_them(self):
        # host2 is what the fake guests make best; fill it so that Nova's
        # own RAM weigher likes it least.
        self.assertEqual('host2', self._boot('filler', 'm1.medium',
                                             az='nova:host2'))
        self.start_shadow_service(shadow={'topic': self.topic})
        self._serve()
        hosts = [{'host': h, 'vcpus': 10, 'vcpus_used': 1.0,
                  'total_ram_mb': 8192, 'free_ram_mb': 6144,
                  'num_instances': 3 + i}
                 for i, h in enumerate(support.HOSTS)]

        ranking, took, guest = self.evaluate(hosts)

        # One shadow per candidate, on the host asked for, tagged.
        placed = sorted((s['host'], s['metadata']['nova_shadow_host'])
                        for s in guest.seen.values())
        self.assertEqual([(h, h) for h in support.HOSTS], placed)
        for seen in guest.seen.values():
            self.assertEqual(sorted([
                os_driver.SHADOW_TAG,
                os_driver.EVALUATION_TAG % ranking['evaluation_id']]),
                seen['tags'])
            self.assertEqual(ranking['evaluation_id'],
                             seen['metadata']['nova_shadow_evaluation'])
        # Every shadow and its allocation is gone before the answer.
        self.assert_nothing_left(guest.seen)
        self.assertEqual('finished', ranking['status'])
        self.assertEqual('host2', ranking['hosts'][0]['host'])
        self.assertEqual(set(support.HOSTS),
                         set(support.measured_hosts(ranking)))
        self.assertLessEqual(took, BUDGET + 0.5)
        # Samples arrived through the collector, tagged from the tokens.
        samples = self.store.query_points(
            'shadow_sample', {'evaluation': ranking['evaluation_id']})
        self.assertEqual(set(support.HOSTS),
                         {p.tags['host'] for p in samples})
        self.assertEqual(set(guest.seen), {p.tags['shadow'] for p in samples})
        # The scheduler's figures reached the evaluation's host facts.
        evaluation = self.parts.manager._evaluations[
            ranking['evaluation_id']]
        self.assertEqual(4, evaluation.host_features['host2'][
            'num_instances'])
        self.assertEqual('Nehalem', evaluation.host_features['host2'][
            'hardware_class'])

        self.assertNotEqual('host2', self._boot('control'))
        self.assertEqual('host2', self._boot(
            'placed', hints={'shadow_evaluation': ranking['evaluation_id']}))


class FailingHostsDegradeTest(_ServiceTestBase):

    def test_quota_and_a_refused_host_leave_those_hosts_unmeasured(self):
        # Room for one more instance at most (Nova is shared by the
        # module's tests: earlier ones may still hold instances, and one
        # may still be counted while it is being deleted).
        used = self.admin_api.get_limits()['absolute']['totalInstancesUsed']
        self.admin_api.update_quota({'instances': used + 1})
        host3 = self.admin_api.get_services(binary='nova-compute',
                                            host='host3')[0]
        self.admin_api.put_service(host3['id'], {'status': 'disabled'})
        self.start_shadow_service(openstack={'boot_concurrency': 1})
        # host3's compute service is disabled: the service sees it in the
        # hosts' availability and boots no shadow there (score 0, with the
        # reason); host1 and host2 share what is left of the quota: at
        # most one of them boots, the other finds the quota exhausted (at
        # the API, or at the conductor's re-check: its server goes to
        # ERROR then).
        hosts = [{'host': h} for h in ('host3', 'host1', 'host2')]

        ranking, took, guest = self.evaluate(hosts)

        self.assertEqual('finished', ranking['status'])
        measured = support.measured_hosts(ranking)
        self.assertLessEqual(len(measured), 1, measured)
        self.assertEqual(set(measured),
                         {s['host'] for s in guest.seen.values()})
        self.assertEqual({'host1', 'host2', 'host3'},
                         {h['host'] for h in ranking['hosts']})
        by_host = {h['host']: h for h in ranking['hosts']}
        self.assertEqual(0.0, by_host['host3']['score'])
        self.assertTrue(by_host['host3']['reasons'][0].startswith(
            'may not take the VM: '))
        for host in {'host1', 'host2'} - set(measured):
            self.assertEqual(0.0, by_host[host]['confidence'])
            self.assertIn('no shadow could boot', by_host[host]['reasons'][0])
        self.assertLessEqual(took, BUDGET + 0.5)
        created = {s['id'] for s in self.admin_api.get_servers(
            detail=True, search_opts={'deleted': True})}
        self.assert_nothing_left(created)
