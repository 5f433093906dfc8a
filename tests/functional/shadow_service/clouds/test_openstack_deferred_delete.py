"""Shadows on a cloud that defers deletes (Nova's ``[DEFAULT]
reclaim_instance_interval`` above 0), inside real Nova.

There a DELETE leaves the server SOFT_DELETED until the interval passes:
hidden from the default server list, yet holding its Placement
allocations, its host's RAM and CPU and the project's quota.  The
driver force-deletes its shadows (``forceDelete``) so that they free
what they hold at once; the garbage collector force-deletes the
SOFT_DELETED shadows it is responsible for; a refused ``forceDelete``
is a clear error at once, not a wait until ``delete_timeout``.
"""

import logging
import re
import threading
import time

import fixtures
import pytest

from loadgen import profiles
from shadow_service.clouds import base
from shadow_service.clouds.openstack import driver as os_driver
from shadow_service.history import memory
from shadow_service.watcher import actuator
from tests import openstack_support as support

pytestmark = [pytest.mark.nova]

REQUEST = {'flavor': {'vcpus': 1, 'ram_mb': 512, 'disk_gb': 1},
           'profile': 'web', 'image_id': support.IMAGE_ID}
PROFILE = profiles.load_profile('web')
#: Nova's deferred delete: an hour, as an operator might set it.
RECLAIM_INTERVAL_S = 3600
FORCE_POLICY = 'os_compute_api:os-deferred-delete:force'
#: Lets a user list with any filter (``deleted`` among them).
ALL_FILTERS_POLICY = 'os_compute_api:servers:allow_all_filters'


class DeferredDeleteTest(support.OpenStackHarnessTestBase):

    def setUp(self):
        super().setUp()
        self.flags(reclaim_instance_interval=RECLAIM_INTERVAL_S)

    def _driver(self, service_id='svc-a', **openstack):
        openstack.update(service_id=service_id, network='none')
        openstack.setdefault('delete_timeout', 10.0)
        _conf, driver = self.make_driver(memory.MemoryStore(),
                                         openstack=openstack)
        return driver

    def _boot(self, driver, hosts, evaluation_id=None):
        evaluation_id = evaluation_id or (
            '%08d-0000-4000-8000-000000000000' % len(self.shadow_servers()))
        shadows = driver.boot_shadows(evaluation_id, REQUEST, hosts, PROFILE)
        self.assertEqual(len(hosts), len(
            driver.wait_until_active(shadows, 30)))
        return shadows

    def _soft_delete(self, server_id):
        """A plain DELETE, as a service that does not force-delete (or
        was killed just after asking) leaves it."""
        self.admin_api.delete_server(server_id)
        self.wait_for(lambda: self._status(server_id) == 'SOFT_DELETED',
                      what='%s soft-deleted' % server_id)

    def _status(self, server_id):
        """Nova's status of ``server_id`` (shown by id: the default list
        hides SOFT_DELETED servers), or None once it is gone."""
        try:
            return self.admin_api.get_server(server_id)['status']
        except support.client.OpenStackApiNotFoundException:
            return None

    def _task_state(self, server_id):
        return self.admin_api.get_server(server_id)['OS-EXT-STS:task_state']

    def _lose_force_deletes(self):
        """Force-deletes the compute hosts never get: the server stays
        SOFT_DELETED, task state ``deleting``
        (:meth:`~support.OpenStackHarnessTestBase.lose_deletions`)."""
        return self.lose_deletions()

    def _instances_used(self):
        return self.api.get_limits()['absolute']['totalInstancesUsed']

    def test_deleted_shadows_free_their_host_and_quota_at_once(self):
        driver = self._driver()
        shadows = self._boot(driver, ['host1', 'host2'])
        self.assertEqual(2, self._instances_used())

        started = time.monotonic()
        # Before: Nova kept them SOFT_DELETED, with their allocations,
        # and the wait for those ended at delete_timeout in a CloudError.
        driver.delete_shadows(shadows)
        self.assertLess(time.monotonic() - started, 10.0)
        for shadow in shadows:
            self.assertIsNone(self._status(shadow.shadow_id))
            self.assertEqual({}, self.allocations(shadow.shadow_id))
        self.assertEqual(0, self._instances_used())
        self.assertEqual({}, driver._deletions)

    def test_the_collector_force_deletes_soft_deleted_left_overs(self):
        earlier = self._driver('svc-a')
        (left,) = self._boot(earlier, ['host1'])
        other = self._driver('svc-b')
        (others,) = self._boot(other, ['host2'])
        # A run of svc-a killed after its DELETE (or a version that did
        # not force-delete); svc-b, alive, is deleting its own.
        self._soft_delete(left.shadow_id)
        self._soft_delete(others.shadow_id)

        driver = self._driver('svc-a')
        with self.assertLogs(os_driver.__name__, logging.WARNING) as logs:
            # Before: the collector's list did not show it; it stayed
            # SOFT_DELETED, holding host1, for the whole interval.
            self.assertEqual(1, driver.collect_garbage())
        (warning,) = self.driver_warnings(logs.records)
        self.assertIn(left.shadow_id, warning)
        self.assertIn('SOFT_DELETED', warning)
        self.assertIsNone(self._status(left.shadow_id))
        self.assertEqual({}, self.allocations(left.shadow_id))
        # Another live service's shadow is its own to delete.
        self.assertEqual('SOFT_DELETED', self._status(others.shadow_id))
        self.assertEqual(0, driver.collect_garbage())

    def test_a_deletion_whose_wait_ended_is_force_deleted_by_the_collector(
            self):
        # Credentials that may not list deleted servers (Nova then drops
        # the filter): the collector finds the shadow by what it
        # remembers of its deletions.
        self.policy.set_rules({ALL_FILTERS_POLICY: '!'}, overwrite=False)
        # Long enough for the collector's force-delete to be seen through
        # on a busy machine (1 s was not, twice in a loaded suite).
        driver = self._driver(delete_timeout=4.0)
        (shadow,) = self._boot(driver, ['host3'])
        # The hypervisor takes longer than delete_timeout to soft-delete.
        release = threading.Event()
        self.addCleanup(release.set)
        self.useFixture(fixtures.MockPatch(
            'nova.virt.fake.FakeDriver.soft_delete',
            side_effect=lambda instance: release.wait(30)))
        with self.assertRaises(base.CloudError) as raised:
            driver.delete_shadows([shadow])
        self.assertIn('not gone', str(raised.exception))
        release.set()
        self.wait_for(
            lambda: self._status(shadow.shadow_id) == 'SOFT_DELETED',
            what='the shadow soft-deleted')

        with self.assertLogs(os_driver.__name__, logging.WARNING) as logs:
            # Before: no longer listed, taken for gone and forgotten.
            self.assertEqual(1, driver.collect_garbage())
        (warning,) = self.driver_warnings(logs.records)
        self.assertIn('%s (deleted, but kept SOFT_DELETED'
                      % shadow.shadow_id, warning)
        self.assertIsNone(self._status(shadow.shadow_id))
        self.assertEqual({}, self.allocations(shadow.shadow_id))
        self.assertEqual({}, driver._deletions)

    def test_a_refused_force_delete_says_what_to_do_without_waiting(self):
        self.policy.set_rules({FORCE_POLICY: '!'}, overwrite=False)
        driver = self._driver(delete_timeout=20.0)
        (shadow,) = self._boot(driver, ['host1'])

        started = time.monotonic()
        with self.assertRaises(base.CloudError) as raised:
            driver.delete_shadows([shadow])
        # Before: a wait until delete_timeout, then "not gone".
        self.assertLess(time.monotonic() - started, 10.0)
        message = str(raised.exception)
        self.assertIn(shadow.shadow_id, message)
        self.assertIn('SOFT_DELETED', message)
        self.assertIn('HTTP 403', message)
        self.assertIn(FORCE_POLICY, message)
        self.assertIn('reclaim_instance_interval', message)
        self.assertFalse(raised.exception.retryable)
        self.assertEqual('SOFT_DELETED', self._status(shadow.shadow_id))

        # The collector does not ask again at once (twice delete_timeout
        # after the refusal it does).
        self.assertEqual([], driver.garbage_shadows())

        self.policy.set_rules({FORCE_POLICY: '@'}, overwrite=False)
        driver.deletion_grace_s = 0.0
        self.assertEqual(1, driver.collect_garbage())
        self.assertIsNone(self._status(shadow.shadow_id))
        self.assertEqual({}, self.allocations(shadow.shadow_id))

    def test_a_force_delete_left_under_way_is_asked_again(self):
        earlier = self._driver('svc-a')
        (left,) = self._boot(earlier, ['host1'])
        self._soft_delete(left.shadow_id)
        lost, losing = self._lose_force_deletes()
        # A run of svc-a killed after its forceDelete, which the compute
        # host never got.
        self.admin_api.post_server_action(left.shadow_id,
                                          {'forceDelete': None})
        self.assertEqual('deleting', self._task_state(left.shadow_id))
        self.assertEqual('SOFT_DELETED', self._status(left.shadow_id))
        losing.clear()

        driver = self._driver('svc-a', delete_timeout=1.0)
        # A force-delete under way is left to finish, for twice
        # delete_timeout.
        self.assertEqual(0, driver.collect_garbage())
        self.assertEqual('SOFT_DELETED', self._status(left.shadow_id))
        self.assertEqual(1, lost.call_count)

        driver.deletion_grace_s = 0.0
        with self.assertLogs(os_driver.__name__, logging.WARNING) as logs:
            # Before: a plain deletion again (which Nova only soft-
            # deletes), a wait until delete_timeout and "not gone", every
            # time, for the whole reclaim interval.
            self.assertEqual(1, driver.collect_garbage())
        (warning,) = self.driver_warnings(logs.records)
        self.assertIn(left.shadow_id, warning)
        self.assertIn('force-delete has not completed', warning)
        self.wait_for(lambda: self._status(left.shadow_id) is None,
                      what='the shadow force-deleted')
        self.assertEqual({}, self.allocations(left.shadow_id))
        self.assertEqual(0, self._instances_used())
        self.assertEqual(0, driver.collect_garbage())
        self.assertEqual({}, driver._deletions)

    def test_a_force_delete_that_never_finishes_is_repeated_with_backoff(
            self):
        # delete_timeout bounds the whole of delete_shadows' wait: Nova's
        # compute service soft-deleting the shadow (a cast, slow on a
        # busy machine: half a second with stress-ng --cpu 4), then the
        # force-delete that is lost, then the wait it never ends (the
        # test's every run waits it out, hence not a minute).
        driver = self._driver(delete_timeout=5.0)
        (shadow,) = self._boot(driver, ['host2'])
        lost, _losing = self._lose_force_deletes()
        with self.assertRaises(base.CloudError) as raised:
            driver.delete_shadows([shadow])
        self.assertIn('not gone', str(raised.exception))
        self.assertEqual(1, lost.call_count)
        self.assertEqual('deleting', self._task_state(shadow.shadow_id))

        # Within twice delete_timeout of the force-delete: left to
        # finish; past it, asked again.
        warning = self.collect_past_the_grace(driver, passes_within=3)
        self.assertIn('%s again (its force-delete has not completed'
                      % shadow.shadow_id, warning)
        # Its state reset, the force-delete reached its host again.
        self.assertEqual(2, lost.call_count)

        # And is left to finish for twice delete_timeout again.
        driver.deletion_grace_s = 60.0
        with self.assertLogs(os_driver.__name__, logging.DEBUG) as logs:
            for _ in range(3):
                self.assertEqual(0, driver.collect_garbage())
        self.assertEqual([], self.driver_warnings(logs.records))
        self.assertEqual(2, lost.call_count)

    def test_a_soft_delete_that_never_completes_is_reset_and_asked_again(
            self):
        driver = self._driver(delete_timeout=1.0)
        (shadow,) = self._boot(driver, ['host3'])
        # The deferred delete's message never reaches host3: Nova shows
        # the shadow ACTIVE, task state soft-deleting, for good, and
        # ignores further deletes of it.
        lost, losing = self.lose_deletions(soft_deletes=True)
        with self.assertRaises(base.CloudError) as raised:
            driver.delete_shadows([shadow])
        self.assertIn('not gone', str(raised.exception))
        self.assertEqual(1, lost.call_count)
        self.assertEqual('ACTIVE', self._status(shadow.shadow_id))
        self.assertEqual('soft-deleting', self._task_state(shadow.shadow_id))
        losing.clear()

        # Within twice delete_timeout: left to finish; past it, asked
        # again (before: a DELETE Nova ignored, a wait until
        # delete_timeout and "not gone", every twice delete_timeout, for
        # ever).
        warning = self.collect_past_the_grace(driver)
        self.assertIn('Deleting shadow %s again (its deletion has not '
                      'completed' % shadow.shadow_id, warning)
        self.assertIn('task state soft-deleting', warning)
        # Its state reset, the deferred delete reached its host this
        # time; the next pass force-deletes what Nova keeps.
        self.assertEqual(2, lost.call_count)
        self.wait_for(
            lambda: self._status(shadow.shadow_id) == 'SOFT_DELETED',
            what='the shadow soft-deleted')
        # (A wait for the force-delete that a busy machine keeps.)
        driver.conf.set_override('delete_timeout', 10.0, 'openstack')
        self.assertEqual(1, driver.collect_garbage())
        self.assertIsNone(self._status(shadow.shadow_id))
        self.assertEqual({}, self.allocations(shadow.shadow_id))
        self.assertEqual(0, self._instances_used())
        self.assertEqual(0, driver.collect_garbage())

    def _count_gets_by_id(self):
        """The ``GET /servers/<id>`` the driver's connection sends, as
        a list that grows."""
        gets = []
        one = re.compile(r'/servers/[0-9a-f-]{36}$')

        def hook(response, *args, **kwargs):
            if (response.request.method == 'GET'
                    and one.search(response.request.path_url)):
                gets.append(response.request.path_url.rsplit('/', 1)[1])
        hooks = self.conn.session.session.hooks['response']
        hooks.append(hook)
        self.addCleanup(hooks.remove, hook)
        return gets

    def test_remembered_deletions_are_looked_up_a_few_at_a_time(self):
        # Credentials that may neither list deleted servers nor
        # force-delete: the shadows stay SOFT_DELETED, remembered.
        self.policy.set_rules({ALL_FILTERS_POLICY: '!', FORCE_POLICY: '!'},
                              overwrite=False)
        driver = self._driver()
        shadows = self._boot(driver, list(support.HOSTS))
        with self.assertRaises(base.CloudError):
            driver.delete_shadows(shadows)
        ids = {s.shadow_id for s in shadows}
        self.assertEqual(ids, set(driver._deletions))
        gets = self._count_gets_by_id()

        # Before: every remembered deletion looked up, every pass (1,024
        # at most).  Those Nova refused to force-delete less than twice
        # delete_timeout ago are left alone: no look-up.
        self.assertEqual([], driver.garbage_shadows())
        self.assertEqual([], gets)

        # Past that, at most held_lookups_per_pass a pass, the ones
        # looked up longest ago first.
        driver.held_lookups_per_pass = 2
        driver.deletion_grace_s = 0.0
        self.assertEqual(2, len(driver.garbage_shadows()))
        self.assertEqual(2, len(gets))
        self.assertEqual(2, len(set(gets)))
        first = set(gets)
        self.assertEqual(2, len(driver.garbage_shadows()))
        self.assertEqual(4, len(gets))
        # The one left out first comes first.
        self.assertEqual(ids - first, {gets[2]})
        self.assertEqual(ids, set(gets))
        for shadow_id in ids:
            self.assertEqual('SOFT_DELETED', self._status(shadow_id))

    def test_a_sibling_is_force_deleted_or_the_refusal_says_why(self):
        driver = self._driver()
        body = self._build_server(name='app', networks='none',
                                  az='nova:host1')
        app = self._wait_for_state_change(
            self.api.post_server({'server': body}), 'ACTIVE')
        first = driver.boot_sibling(app['id'], name='app-2')
        self._wait_for_state_change({'id': first.instance_id}, 'ACTIVE')
        # Before: a plain DELETE, and the sibling SOFT_DELETED for the
        # interval, holding the project's quota.
        driver.delete_instance(first.instance_id)
        self.wait_for(lambda: self._status(first.instance_id) is None,
                      what='the sibling force-deleted')
        self.assertEqual({}, self.allocations(first.instance_id))
        self.assertEqual(1, self._instances_used())

        # A soft-delete slower than delete_timeout: the watcher's next
        # look at the scale-in force-deletes the sibling.
        slow = driver.boot_sibling(app['id'], name='app-slow')
        self._wait_for_state_change({'id': slow.instance_id}, 'ACTIVE')
        release = threading.Event()
        self.addCleanup(release.set)
        with fixtures.MockPatch(
                'nova.virt.fake.FakeDriver.soft_delete',
                side_effect=lambda instance: release.wait(30)):
            driver.conf.set_override('delete_timeout', 1.0, 'openstack')
            driver.delete_instance(slow.instance_id)
            release.set()
        self.wait_for(
            lambda: self._status(slow.instance_id) == 'SOFT_DELETED',
            what='the sibling soft-deleted')
        acting = actuator.Actuator(driver, ladder=None, dry_run=False)
        pending = actuator.Pending(
            decision_id='d', instance_id=app['id'], action='scale_in',
            started_at=0.0, deadline=3600.0, siblings=[slow.instance_id])
        self.assertIsNone(acting.follow(pending, 1.0)[0])
        self.wait_for(lambda: self._status(slow.instance_id) is None,
                      what='the sibling force-deleted')
        self.assertEqual('done', acting.follow(pending, 2.0)[0])
        self.assertEqual(1, self._instances_used())

        self.policy.set_rules({FORCE_POLICY: '!'}, overwrite=False)
        second = driver.boot_sibling(app['id'], name='app-3')
        self._wait_for_state_change({'id': second.instance_id}, 'ACTIVE')
        with self.assertRaises(base.CloudError) as raised:
            driver.delete_instance(second.instance_id)
        message = str(raised.exception)
        self.assertIn('%s stays SOFT_DELETED' % second.instance_id, message)
        self.assertIn("project %s's quota" % second.project_id, message)
        self.assertIn('HTTP 403', message)
        self.assertIn(FORCE_POLICY, message)
        self.assertFalse(raised.exception.retryable)
        self.assertEqual('SOFT_DELETED', self._status(second.instance_id))
