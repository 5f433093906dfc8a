"""The garbage collector of the openstack driver inside real Nova: a
restarted service deletes the shadows it left behind and anyone's expired
shadows, at start and periodically, and leaves another service's live
shadows alone; a deletion that never completes (its compute host never
got it) is reset and asked again."""

import logging
import time

import pytest

from loadgen import profiles
from shadow_service import service
from shadow_service.clouds import base
from shadow_service.clouds.openstack import driver as os_driver
from shadow_service.history import memory
from tests import openstack_support as support

pytestmark = [pytest.mark.nova]

RESET_POLICY = 'os_compute_api:os-admin-actions:reset_state'
REQUEST = {'flavor': {'vcpus': 1, 'ram_mb': 512, 'disk_gb': 1},
           'profile': 'web', 'image_id': support.IMAGE_ID}


class GarbageCollectionTest(support.OpenStackHarnessTestBase):

    def _boot(self, service_id, hosts, shadow=None, openstack=None):
        openstack = dict(openstack or {}, service_id=service_id,
                         network='none')
        _conf, driver = self.make_driver(memory.MemoryStore(),
                                         shadow=shadow or {},
                                         openstack=openstack)
        evaluation_id = '%08d-0000-4000-8000-000000000000' % len(
            self.shadow_servers())
        shadows = driver.boot_shadows(evaluation_id, REQUEST, hosts,
                                      profiles.load_profile('web'))
        self.assertEqual(len(hosts), len(
            driver.wait_until_active(shadows, 30)))
        return {s.shadow_id for s in shadows}

    def _restart(self, service_id, shadow=None, **openstack):
        openstack.update(service_id=service_id, network='none')
        conf, driver = self.make_driver(memory.MemoryStore(),
                                        shadow=shadow or {},
                                        openstack=openstack)
        parts = service.build(conf, history=memory.MemoryStore(),
                              driver=driver)
        self.addCleanup(parts.close)
        return parts

    def _remaining(self):
        return {s['id'] for s in self.shadow_servers()}

    def test_left_overs_and_expired_shadows_go_live_ones_stay(self):
        # A service that died with two shadows running...
        left = self._boot('svc-a', ['host1', 'host2'])
        # ...another service's live shadow, and one that expired (its
        # lifetime is max_budget + expiry_margin: 1 s).
        live = self._boot('svc-b', ['host3'])
        expired = self._boot('svc-c', ['host3'], shadow={'max_budget': 1.0},
                             openstack={'expiry_margin': 0.0})
        time.sleep(1.0)
        self.assertEqual(left | live | expired, self._remaining())

        parts = self._restart('svc-a')
        self.assertEqual(live, self._remaining())
        for server_id in left | expired:
            self.assertEqual({}, self.allocations(server_id))
        parts.close()

        # The periodic pass of a restarted svc-b (no pass at start) removes
        # its left-over.
        self._restart('svc-b', shadow={'cleanup_on_start': False},
                      gc_interval=1.5)
        self.assertEqual(live, self._remaining())
        self.wait_for(lambda: not self._remaining(), timeout=10,
                      what='the periodic garbage collection')
        self.assertEqual({}, self.allocations(live.pop()))


class StuckDeletionTest(support.OpenStackHarnessTestBase):
    """A shadow whose DELETE Nova accepted but whose compute host never
    got it: Nova shows it with task state ``deleting`` for good and
    ignores any further DELETE while the compute service is up."""

    def _stuck_shadow(self, host):
        _conf, driver = self.make_driver(
            memory.MemoryStore(),
            openstack={'network': 'none', 'delete_timeout': 1.0})
        (shadow,) = driver.boot_shadows(
            '00000000-0000-4000-8000-000000000000', REQUEST, [host],
            profiles.load_profile('web'))
        self.assertEqual(1, len(driver.wait_until_active([shadow], 30)))
        lost, losing = self.lose_deletions()
        with self.assertRaises(base.CloudError) as raised:
            driver.delete_shadows([shadow])
        self.assertIn('not gone', str(raised.exception))
        self.assertEqual(1, lost.call_count)
        server = self.admin_api.get_server(shadow.shadow_id)
        self.assertEqual('ACTIVE', server['status'])
        self.assertEqual('deleting', server['OS-EXT-STS:task_state'])
        # From now on the compute hosts get what Nova sends them.
        losing.clear()
        return driver, shadow.shadow_id, lost

    def test_a_deletion_that_never_completes_is_reset_and_asked_again(self):
        driver, server_id, lost = self._stuck_shadow('host1')

        # Within twice delete_timeout of the deletion: left to finish;
        # past it, asked again (before: a DELETE Nova ignored, a wait
        # until delete_timeout and "not gone", every twice
        # delete_timeout, for ever).
        warning = self.collect_past_the_grace(driver)
        self.assertIn('Deleting shadow %s again (its deletion has not '
                      'completed' % server_id, warning)
        self.assertIn('task state deleting', warning)
        # Its state reset, the deletion reached its host this time.
        self.assertEqual(2, lost.call_count)
        self.wait_for(lambda: self.server_gone(server_id),
                      what='the shadow deleted')
        self.assertEqual({}, self.allocations(server_id))
        self.assertEqual(
            0, self.api.get_limits()['absolute']['totalInstancesUsed'])
        self.assertEqual(0, driver.collect_garbage())
        self.assertEqual({}, driver._deletions)

    def test_a_refused_reset_says_what_an_admin_runs_once(self):
        self.policy.set_rules({RESET_POLICY: '!'}, overwrite=False)
        driver, server_id, lost = self._stuck_shadow('host2')

        driver.deletion_grace_s = 0.0
        with self.assertLogs(os_driver.__name__, logging.DEBUG) as logs:
            for _ in range(3):
                self.assertEqual(1, driver.collect_garbage())
        (warning,) = self.driver_warnings(logs.records)
        self.assertIn('Shadow %s stays' % server_id, warning)
        self.assertIn('HTTP 403', warning)
        self.assertIn(RESET_POLICY, warning)
        self.assertIn('openstack server set --state error %s' % server_id,
                      warning)
        self.assertIn('openstack server delete %s' % server_id, warning)
        # Nothing more asked of Nova than the reset it refused.
        self.assertEqual(1, lost.call_count)
        self.assertEqual('deleting', self.admin_api.get_server(
            server_id)['OS-EXT-STS:task_state'])

        # The policy allows it now: the next pass past the grace ends it.
        self.policy.set_rules({RESET_POLICY: '@'},
                              overwrite=False)
        self.assertEqual(1, driver.collect_garbage())
        self.wait_for(lambda: self.server_gone(server_id),
                      what='the shadow deleted')
        self.assertEqual({}, self.allocations(server_id))
