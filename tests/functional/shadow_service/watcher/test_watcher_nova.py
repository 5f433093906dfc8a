"""The watcher acting on real Nova (its functional harness: API,
conductor, scheduler, Placement, three computes with the fake virt
driver) through the ``openstack`` cloud driver.

The fake virt driver runs no guest, so nothing measures the VMs: each
test writes the ``instance_metric`` samples a monitoring source would
have written into the (real) history store, the one edge nothing here
can provide.  Everything else is what the daemon runs:
``service.build_watcher`` around the openstack driver.
"""

import logging
import threading
import time
import uuid

import fixtures
import pytest
from nova import context as nova_context
from nova import crypto
from nova import exception as nova_exception
from nova import objects
from nova.virt import fake as fake_virt

from shadow_service import measurements as names
from shadow_service import service
from shadow_service.clouds import base
from shadow_service.clouds.openstack import driver as os_driver
from shadow_service.history import base as history_base
from shadow_service.history import memory
from shadow_service.watcher import actuator
from shadow_service.watcher import ranking
from shadow_service.watcher import records
from shadow_service.watcher.policies import base as policy_base
from tests import openstack_support as support

pytestmark = [pytest.mark.nova]

STEP_S = 60.0
RESET_POLICY = 'os_compute_api:os-admin-actions:reset_state'
DELETE_POLICY = 'os_compute_api:servers:delete'
LADDER = ['m1.small:1:2048:20', 'm1.medium:2:4096:40', 'm1.large:4:8192:80']


class WatcherOnNovaTest(support.OpenStackHarnessTestBase):

    def setUp(self):
        super().setUp()
        self.flavors = {f['name']: f['id'] for f in self.api.get_flavors()}
        self.store = memory.MemoryStore()

    def _boot(self, name, host='host1', metadata=None, group=None,
              flavor='m1.small', volume=None):
        body = self._build_server(name=name, networks='none',
                                  az='nova:%s' % host,
                                  flavor_id=self.flavors[flavor],
                                  image_uuid='' if volume else None)
        if volume:
            body['block_device_mapping_v2'] = [{
                'boot_index': 0, 'uuid': volume, 'source_type': 'volume',
                'destination_type': 'volume'}]
        body['metadata'] = dict({'nova_shadow_watch': 'true'},
                                **(metadata or {}))
        request = {'server': body}
        if group:
            request['os:scheduler_hints'] = {'group': group}
        return self._wait_for_state_change(self.api.post_server(request),
                                           'ACTIVE')

    def _watcher(self, openstack=None, **watcher):
        options = {'flavor_ladder': LADDER, 'interval': STEP_S,
                   'step': STEP_S, 'resize_duration': 60.0,
                   'boot_duration': 30.0, 'migration_duration': 60.0,
                   'history_window': 3600.0, 'hold_window': 600.0,
                   'dry_run': False, 'ranker': 'none',
                   'immunity_window': 0.0, 'cooldown': 0.0,
                   'hysteresis_runs': 1, 'min_errors': 1000}
        options.update(watcher)
        conf, driver = self.make_driver(self.store, watcher=options,
                                        openstack=openstack or {})
        assembled = service.build_watcher(conf, history=self.store,
                                          driver=driver)
        self.addCleanup(assembled.close)
        return assembled.watcher, driver

    def _measured(self, driver, server, metric, values, last=None):
        """``values`` of ``metric`` one step apart, the last one at
        ``last`` (now by default); returns that time."""
        now = driver.now() if last is None else last
        host = server['OS-EXT-SRV-ATTR:host']
        self.store.write([history_base.Point(
            names.INSTANCE_METRIC,
            {names.TAG_INSTANCE: server['id'], names.TAG_HOST: host,
             names.TAG_METRIC: metric}, {names.FIELD_VALUE: float(v)},
            now - (len(values) - 1 - i) * STEP_S)
            for i, v in enumerate(values)])
        return now

    def _records(self, server_id):
        return records.read(self.store, 0, time.time() + 3600, server_id)

    def _actions(self, server_id):
        return [a['action'] for a in
                self.api.get_instance_actions(server_id)]

    def test_a_vm_forecast_to_outgrow_its_flavor_is_resized_and_confirmed(
            self):
        app = self._boot('app')
        watcher, driver = self._watcher(policy='forecast')
        rising = [30.0] * 40 + [40.0, 55.0, 70.0, 85.0, 95.0]
        self._measured(driver, app, 'cpu_util_pct', rising)
        steps = watcher.run_once()
        self.assertEqual([app['id']], [s.instance_id for s in steps])
        step = steps[0]
        self.assertEqual(('resize_up', 'started'),
                         (step.decision.action, step.outcome))
        target = step.record['target_flavor']['name']
        self.assertIn(target, ('m1.medium', 'm1.large'))
        self._wait_for_state_change(app, 'VERIFY_RESIZE')
        self.wait_for(lambda: not watcher.run_once() or not watcher.pending,
                      timeout=30, what='the watcher to confirm the resize')
        server = self._wait_for_state_change(app, 'ACTIVE')
        self.assertEqual(target, server['flavor']['original_name'])
        outcomes = [r['outcome'] for r in self._records(app['id'])
                    if r['decision_id'] == step.record['decision_id']]
        self.assertEqual(['started', 'done'], outcomes)
        self.assertIn('confirmResize', self._actions(app['id']))

    def test_dry_run_records_the_resize_and_changes_nothing(self):
        app = self._boot('app')
        watcher, driver = self._watcher(policy='forecast', dry_run=True)
        self._measured(driver, app, 'cpu_util_pct',
                       [30.0] * 40 + [40.0, 55.0, 70.0, 85.0, 95.0])
        step = watcher.run_once()[0]
        self.assertEqual(('resize_up', 'dry_run'),
                         (step.decision.action, step.outcome))
        self.assertTrue(step.detail.startswith('would resize %s from '
                                               'm1.small' % app['id']))
        server = self.api.get_server(app['id'])
        self.assertEqual(('ACTIVE', 'm1.small'),
                         (server['status'], server['flavor']['original_name']))
        self.assertEqual(['create'], self._actions(app['id']))
        self.assertEqual(['dry_run'], [r['outcome'] for r in
                                       self._records(app['id'])])

    def _quiet(self, flavor, volume=None, app=None, **watcher):
        """A VM on ``flavor`` whose demand has fallen (``app``, or one
        booted), and the step for it of a watcher (more ``[watcher]``
        options in ``watcher``) that knows a forecast error of it, of
        zero, so it may shrink at once: ``(server, watcher, step)``."""
        app = app or self._boot('quiet', flavor=flavor, volume=volume)
        watcher, driver = self._watcher(**dict(
            dict(policy='forecast', hold_window=0.0, min_errors=1),
            **watcher))
        watcher.errors.update(app['id'], flavor, 1.0, 0.0)
        self._measured(driver, app, 'cpu_util_pct', [3.0] * 40)
        steps = watcher.run_once()
        self.assertEqual([app['id']], [s.instance_id for s in steps])
        return app, watcher, steps[0]

    def test_a_vm_booted_from_an_image_is_not_shrunk_below_its_root_disk(
            self):
        # The ladder's rungs have 20, 40 and 80 GB root disks: libvirt
        # refuses to shrink an image's copy (the fake driver would not).
        app, _watcher, step = self._quiet('m1.medium')
        self.assertEqual(('resize_down', 'suppressed'),
                         (step.decision.action, step.outcome))
        self.assertEqual("the root disk (40 GB) cannot shrink to "
                         "m1.small's 20 GB: the VM did not boot from a "
                         "volume", step.detail)
        self.assertEqual(['create'], self._actions(app['id']))
        self.assertEqual('m1.medium', self.api.get_server(
            app['id'])['flavor']['original_name'])

    def test_a_vm_booted_from_a_volume_is_shrunk(self):
        app, watcher, step = self._quiet(
            'm1.medium', volume=self.cinder.IMAGE_BACKED_VOL)
        self.assertEqual('', app['image'])
        self.assertEqual(('resize_down', 'started'),
                         (step.decision.action, step.outcome))
        self.assertEqual('m1.small', step.record['target_flavor']['name'])
        self._wait_for_state_change(app, 'VERIFY_RESIZE')
        self.wait_for(lambda: not watcher.run_once() or not watcher.pending,
                      timeout=30, what='the watcher to confirm the resize')
        server = self._wait_for_state_change(app, 'ACTIVE')
        self.assertEqual('m1.small', server['flavor']['original_name'])

    def test_a_shrink_that_went_to_error_is_an_attempt_not_a_scaling(self):
        # Nova fails the resize where it finishes: the VM goes to ERROR,
        # on its old flavor.
        self.useFixture(fixtures.MockPatch(
            'nova.virt.fake.FakeDriver.finish_migration',
            side_effect=RuntimeError('the host failed the resize')))
        app, watcher, step = self._quiet(
            'm1.medium', volume=self.cinder.IMAGE_BACKED_VOL,
            cooldown=3600.0)
        self.assertEqual(('resize_down', 'started'),
                         (step.decision.action, step.outcome))
        self._wait_for_state_change(app, 'ERROR')
        watcher.run_once()
        self.assertEqual(['started', 'failed'], [
            r['outcome'] for r in self._records(app['id'])])
        self.assertEqual(0, watcher.counters['actions'])
        # An operator sets it right.
        self.admin_api.post_server_action(
            app['id'], {'os-resetState': {'state': 'active'}})
        self.assertEqual('m1.medium', self._wait_for_state_change(
            app, 'ACTIVE')['flavor']['original_name'])
        # It changed nothing: no cooldown holds the next shrink back, in
        # the watcher that followed it nor in one restarted from its
        # records (dry-run here: it only says).  Before: both held it
        # back for the hour ('cooldown: last scaling (resize_down) ...').
        _app, restarted, again = self._quiet('m1.medium', app=app,
                                             cooldown=3600.0, dry_run=True)
        self.assertEqual(('resize_down', 'dry_run'),
                         (again.decision.action, again.outcome), again.detail)
        (step,) = watcher.run_once()
        self.assertEqual(('resize_down', 'started'),
                         (step.decision.action, step.outcome), step.detail)
        self.assertEqual(1, watcher.counters['actions'])

    def _volume(self, **fields):
        """A volume in Nova's Cinder fixture (``fields`` as Cinder shows
        them); its id."""
        volume_id = str(uuid.uuid4())
        self.cinder.volumes[volume_id] = dict({
            'id': volume_id, 'display_name': 'root', 'size': 1,
            'status': 'available', 'attach_status': 'detached',
            'multiattach': False, 'availability_zone': 'nova'}, **fields)
        return volume_id

    def _bdms(self, server_id):
        """The block device mappings Nova keeps of ``server_id``."""
        return objects.BlockDeviceMappingList.get_by_instance_uuid(
            nova_context.get_admin_context(), server_id)

    def test_a_vm_booted_from_a_volume_gets_a_sibling_on_a_new_volume(self):
        # The fixture's volume made from image1 (its image metadata), here
        # of 30 GB and of the fixture's one volume type.
        source = self.cinder.IMAGE_BACKED_VOL
        self.cinder.volumes[source] = {
            'id': source, 'display_name': 'root', 'size': 30,
            'volume_type': 'lvm-1', 'status': 'available',
            'attach_status': 'detached', 'multiattach': False,
            'availability_zone': 'nova'}
        app, watcher, driver, busy, sibling = self._scaled_out(
            volume=source)
        self.assertEqual('', app['image'])
        [mapping] = self._bdms(sibling)
        self.assertEqual(
            (0, 'image', 'volume', support.IMAGE_ID, 30, 'lvm-1', True),
            (mapping.boot_index, mapping.source_type,
             mapping.destination_type, mapping.image_id,
             mapping.volume_size, mapping.volume_type,
             mapping.delete_on_termination))
        # Nova asked Cinder for that volume, and the sibling boots from it.
        created = mapping.volume_id
        self.assertEqual(30, self.cinder.volumes[created]['size'])
        self.assertEqual(
            [{'id': created, 'delete_on_termination': True}],
            self.api.get_server(sibling)[
                'os-extended-volumes:volumes_attached'])
        self.assertIn('GET /v3/volumes/%s' % source, self.cinder_api.calls)
        # The scale-in deletes the sibling's volume with it, not the
        # original's.
        self._scaled_in(app, watcher, driver, busy, sibling)
        self.assertEqual([created], self.deleted_volumes)

    def test_a_sibling_scaled_in_where_deletes_are_deferred_frees_quota(
            self):
        # Nova keeps a deleted server SOFT_DELETED for an hour, holding
        # its project's quota (and its host).
        self.flags(reclaim_instance_interval=3600)
        app, watcher, driver, busy, sibling = self._scaled_out()
        self.assertEqual(2, self.api.get_limits()['absolute'][
            'totalInstancesUsed'])
        # Before: a plain DELETE, the sibling SOFT_DELETED for the hour.
        self._scaled_in(app, watcher, driver, busy, sibling)
        self.assertEqual(1, self.api.get_limits()['absolute'][
            'totalInstancesUsed'])
        self.assertEqual({}, self.allocations(sibling))

    def test_a_vm_whose_root_volume_was_not_made_from_an_image_gets_no_sibling(
            self):
        snapshot = str(uuid.uuid4())
        volume = self._volume(snapshot_id=snapshot, bootable=True)
        app = self._boot('web', metadata={'nova_shadow_scaling':
                                          'horizontal'}, volume=volume)
        watcher, driver = self._watcher(policy='forecast', max_count=2)
        self._measured(driver, app, 'cpu_util_pct', [100.0] * 30)
        step = watcher.run_once()[0]
        self.assertEqual(('scale_out', 'suppressed'),
                         (step.decision.action, step.outcome))
        reason = ('its root volume %s was created from snapshot %s, not '
                  'from an image: a sibling has no image to boot from'
                  % (volume, snapshot))
        self.assertEqual(reason, step.detail)
        self.assertEqual([reason], [r['guard'] for r in
                                    self._records(app['id'])])
        self.assertEqual(1, len(self.api.get_servers()))
        # Asked directly, the driver says why rather than sending Nova a
        # server without an image.
        with self.assertRaises(base.CloudError) as caught:
            driver.boot_sibling(app['id'])
        self.assertEqual('%s: %s' % (app['id'], reason),
                         str(caught.exception))
        self.assertEqual(1, len(self.api.get_servers()))

    def test_a_starved_vm_is_live_migrated_to_the_host_the_service_prefers(
            self):
        app = self._boot('app', host='host1')
        watcher, driver = self._watcher(policy='forecast', ranker='history',
                                        ranking_budget=20.0)
        self._measured(driver, app, 'cpu_util_pct', [40.0] * 30)
        self._measured(driver, app, 'cpu_steal_pct', [2.0] * 20 + [30.0] * 20)
        # shadow-service measures the other hosts for this VM's workload
        # (its shadows, its collector); the watcher boots none and ranks
        # from what the service left in history.
        conf, service_driver = self.make_driver(self.store)
        measuring = service.build(conf, history=self.store,
                                  driver=service_driver)
        self.addCleanup(measuring.close)
        instance = [i for i in driver.list_instances()
                    if i.instance_id == app['id']][0]
        guest = support.FakeGuest(self.admin_api)
        guest.start()
        self.addCleanup(guest.stop)
        measured = measuring.manager.rank_hosts(
            None, ranking.ranking_request(instance,
                                          watcher._profile(instance)),
            [{'host': 'host2'}, {'host': 'host3'}], 20.0)
        guest.stop()
        self.assertEqual('shadows', measured['source'])
        before = {s['id'] for s in self.shadow_servers()}
        step = watcher.run_once()[0]
        # The watcher's ranking booted nothing.
        self.assertLessEqual({s['id'] for s in self.shadow_servers()},
                             before)
        self.assertEqual(('live_migrate', 'started'),
                         (step.decision.action, step.outcome), step.detail)
        # The host, not the flavor, is short: CPU steal breaks the target.
        self.assertEqual('cpu_steal_pct', step.decision.metric)
        # host2's shadows measured the most work per second (in history).
        self.assertEqual('host2', step.record['target_host'])
        self.wait_for(lambda: self.api.get_server(app['id'])[
            'OS-EXT-SRV-ATTR:host'] == 'host2', timeout=30,
            what='the live migration')
        self._wait_for_state_change(app, 'ACTIVE')
        self.wait_for(lambda: not watcher.run_once() or not watcher.pending,
                      timeout=30, what='the watcher to see it done')
        outcomes = [r['outcome'] for r in self._records(app['id'])
                    if r['decision_id'] == step.record['decision_id']]
        self.assertEqual(['started', 'done'], outcomes)
        self.assertIn('live-migration', self._actions(app['id']))

    def _scaled_out(self, volume=None):
        """A horizontally scaled VM (booted from ``volume`` when given),
        busy: the watcher boots it a sibling, in its server group;
        ``(server, watcher, driver, time of the busy samples, sibling)``."""
        group = self.api.post_server_groups(
            {'name': 'web', 'policy': 'soft-anti-affinity'})
        app = self._boot('web-1', metadata={
            'nova_shadow_scaling': 'horizontal'}, group=group['id'],
            volume=volume)
        # The samples below stand for half an hour each time, but the
        # runs are seconds apart: no hold window, or the growth's bound
        # (held for that window of real time) would keep the sibling.
        watcher, driver = self._watcher(policy='forecast', max_count=2,
                                        hold_window=0.0, min_errors=1)
        busy = self._measured(driver, app, 'cpu_util_pct', [100.0] * 30)
        step = watcher.run_once()[0]
        self.assertEqual(('scale_out', 'started'),
                         (step.decision.action, step.outcome), step.detail)
        sibling = step.record['siblings'][0]
        self._wait_for_state_change({'id': sibling}, 'ACTIVE')
        self.wait_for(lambda: not watcher.run_once() or not watcher.pending,
                      timeout=30, what='the sibling to count')
        self.assertEqual([sibling], watcher.siblings[app['id']])
        server = self.api.get_server(sibling)
        self.assertEqual(('m1.small', 'true', 'horizontal', app['id']), (
            server['flavor']['original_name'],
            server['metadata']['nova_shadow_watch'],
            server['metadata']['nova_shadow_scaling'],
            server['metadata']['nova_shadow_sibling_of']))
        self.assertIn(sibling, self.api.get_server_group(
            group['id'])['members'])
        return app, watcher, driver, busy, sibling

    def _scaled_in(self, app, watcher, driver, busy, sibling):
        """The load of :meth:`_scaled_out`'s VM falls: the group shrinks
        back to its original VM."""
        self._scale_in_started(app, watcher, driver, busy)
        self._wait_until_deleted({'id': sibling})
        self.wait_for(lambda: not watcher.run_once() or not watcher.pending,
                      timeout=30, what='the watcher to see it deleted')
        self.assertEqual([], watcher.siblings[app['id']])
        self.assertEqual('ACTIVE', self.api.get_server(app['id'])['status'])

    def _scale_in_started(self, app, watcher, driver, busy):
        """The load of :meth:`_scaled_out`'s VM falls: the watcher starts
        deleting its sibling."""
        # A watcher shrinks nothing before it knows a forecast error of
        # the VM (or its flavor); the runs here are seconds apart, so none
        # matures: give it one, of zero (no margin, as before).
        watcher.errors.update(app['id'], 'm1.small', 1.0, 0.0)
        # The quiet samples take the busy ones' instants: written seconds
        # after them, each would share its step with a busy one, and the
        # newest step, which ends after the sibling booted, would count
        # both on the two members.
        self._measured(driver, app, 'cpu_util_pct', [10.0] * 30, last=busy)
        steps = watcher.run_once()
        self.assertEqual([app['id']], [s.instance_id for s in steps])
        self.assertEqual(('scale_in', 'started'),
                         (steps[0].decision.action, steps[0].outcome))

    def test_a_scale_out_group_grows_and_shrinks(self):
        app, watcher, driver, busy, sibling = self._scaled_out()
        self._scaled_in(app, watcher, driver, busy, sibling)
        # The driver forgot the deletion once the sibling was seen gone.
        # Before: it kept it until 1024 later ones pushed it out.
        self.assertNotIn(sibling, driver._sibling_deletions)

    def _task_state(self, server_id):
        return self.admin_api.get_server(server_id)['OS-EXT-STS:task_state']

    def _instances_used(self):
        return self.api.get_limits()['absolute']['totalInstancesUsed']

    def test_a_sibling_whose_deletion_never_completes_is_deleted_again(
            self):
        app, watcher, driver, busy, sibling = self._scaled_out()
        # The compute host never gets the sibling's deletion: Nova shows
        # it with task state deleting for good and ignores further
        # deletes of it.
        lost, losing = self.lose_deletions()
        self._scale_in_started(app, watcher, driver, busy)
        self.assertEqual(1, lost.call_count)
        self.assertEqual('deleting', self._task_state(sibling))
        losing.clear()

        # A dry-run watcher following it only looks.
        pending = watcher.pending[app['id']]
        driver.deletion_grace_s = 0.0
        observer = actuator.Actuator(driver, ladder=None, dry_run=True)
        self.assertIsNone(observer.follow(pending, driver.now())[0])
        # Within the grace (twice delete_timeout from the deletion): left
        # to finish.
        driver.deletion_grace_s = 60.0
        watcher.run_once()
        self.assertEqual(1, lost.call_count)
        self.assertEqual('deleting', self._task_state(sibling))

        # Past it: reset and deleted again, one warning.  Before: the
        # watcher followed it until the scale-in timed out, and the
        # sibling held the project's quota for good.
        driver.deletion_grace_s = 0.0
        with self.assertLogs(os_driver.__name__, logging.DEBUG) as logs:
            watcher.run_once()
        (warning,) = self.driver_warnings(logs.records)
        self.assertIn('Deleting sibling %s again (its deletion has not '
                      'completed' % sibling, warning)
        self.assertIn('task state deleting', warning)
        self.assertEqual(2, lost.call_count)
        driver.deletion_grace_s = 60.0
        # (Its state reset to ERROR as it goes.)
        self.wait_for(lambda: self.server_gone(sibling),
                      what='the sibling gone')
        self.wait_for(lambda: not watcher.run_once() or not watcher.pending,
                      timeout=30, what='the watcher to see it deleted')
        self.assertEqual([], watcher.siblings[app['id']])
        self.assertEqual(1, self._instances_used())
        self.assertEqual({}, self.allocations(sibling))

    def _scale_in_timed_out(self):
        """A scale-in whose sibling's deletion its compute host lost (task
        state deleting for good) times out: ``(server, watcher, driver,
        sibling, the mock of the deletions Nova accepted)``."""
        app, watcher, driver, busy, sibling = self._scaled_out()
        lost, losing = self.lose_deletions()
        self._scale_in_started(app, watcher, driver, busy)
        self.assertEqual('deleting', self._task_state(sibling))
        losing.clear()
        # The scale-in's deadline passes within the driver's grace: it
        # times out, the sibling still being deleted.  The load is back
        # meanwhile: no scale-in is decided again (which would pick the
        # stuck sibling, still a member, again).
        driver.deletion_grace_s = 60.0
        watcher.pending[app['id']].deadline = driver.now() - 1.0
        self._measured(driver, app, 'cpu_util_pct', [100.0] * 30)
        (step,) = watcher.run_once()
        self.assertNotEqual('scale_in', step.decision.action)
        self.assertEqual({}, watcher.pending)
        self.assertEqual([sibling], watcher.siblings[app['id']])
        self.assertIn('timed out', [
            r for r in self._records(app['id'])
            if r['outcome'] == 'failed'][0]['detail'])
        self.assertEqual(1, lost.call_count)
        return app, watcher, driver, sibling, lost

    def _deleted_again(self, app, watcher, driver, sibling, lost):
        """Past the grace, ``watcher``'s next run has ``driver`` reset and
        delete the stuck ``sibling`` again, saying so once; it goes, and
        its look-up then has the driver forget it."""
        driver.deletion_grace_s = 0.0
        with self.assertLogs(os_driver.__name__, logging.DEBUG) as logs:
            watcher.run_once()
        (warning,) = self.driver_warnings(logs.records)
        self.assertIn('Deleting sibling %s again (its deletion has not '
                      'completed' % sibling, warning)
        self.assertIn("project %s's quota" % app['tenant_id'], warning)
        self.assertEqual(2, lost.call_count)
        driver.deletion_grace_s = 60.0
        self.wait_for(lambda: self.server_gone(sibling),
                      what='the sibling gone')
        self.assertEqual(1, self._instances_used())
        self.assertEqual({}, self.allocations(sibling))
        # Once its look-up finds it gone, the driver forgets it.
        driver.deletion_grace_s = 0.0
        watcher.run_once()
        self.assertNotIn(sibling, driver._sibling_deletions)
        self.assertEqual(2, lost.call_count)

    def test_a_stuck_sibling_is_deleted_again_after_its_scale_in_failed(
            self):
        # Past the grace, a later run resets and deletes it again, as the
        # collector does a shadow's.  Before: nothing asked again once the
        # scale-in ended, and the sibling held the project's quota for
        # good.
        self._deleted_again(*self._scale_in_timed_out())

    def test_a_restarted_watcher_deletes_again_a_stuck_sibling(self):
        app, _stopped, _driver, sibling, lost = self._scale_in_timed_out()
        # The watcher restarts (a new driver, which remembers nothing):
        # the scale-in's records say which sibling's deletion it asked.
        # Before: the new driver never heard of it, and the sibling held
        # the project's quota until a later scale-in picked it again.
        watcher, driver = self._watcher(policy='forecast', max_count=2,
                                        hold_window=0.0, min_errors=1)
        self._deleted_again(app, watcher, driver, sibling, lost)
        # Its group no longer counts it.
        self.assertEqual([], watcher.siblings[app['id']])

    def test_a_watcher_restarted_past_its_look_back_deletes_a_stuck_sibling(
            self):
        app, _stopped, _driver, sibling, lost = self._scale_in_timed_out()
        # The watcher restarts after longer than any window it reads its
        # records over: the scale-in's records are older than all of
        # them.  Before: the restart read only that window, and the
        # stuck sibling held the project's quota for good.
        watcher, driver = self._watcher(policy='forecast', max_count=2,
                                        hold_window=0.0, min_errors=1)
        opts = watcher.opts
        window = max(opts.cycle_window, opts.immunity_window, opts.cooldown,
                     opts.ceiling_window, opts.history_window, 3600.0)
        self.assertTrue(watcher.restore(driver.now() + 2 * window))
        self._deleted_again(app, watcher, driver, sibling, lost)

    def _scale_in_start_fails(self, refused):
        """A scale-in whose start fails, Nova's policy refusing
        ``refused``: ``(server, sibling)``, the watcher stopped after it
        (a new one is built over the same records)."""
        app, watcher, driver, busy, sibling = self._scaled_out()
        self.policy.set_rules({refused: '!'}, overwrite=False)
        watcher.errors.update(app['id'], 'm1.small', 1.0, 0.0)
        self._measured(driver, app, 'cpu_util_pct', [10.0] * 30, last=busy)
        (step,) = watcher.run_once()
        self.assertEqual(('scale_in', 'failed'),
                         (step.decision.action, step.outcome), step.detail)
        self.assertEqual([sibling], step.record['siblings'])
        self.policy.set_rules({refused: '@'}, overwrite=False)
        return app, sibling

    def _restarted(self):
        # A new watcher knows no forecast error of the VM: it shrinks
        # nothing itself on its first runs.
        watcher, driver = self._watcher(policy='forecast', max_count=2,
                                        hold_window=0.0, min_errors=1)
        driver.deletion_grace_s = 0.0
        return watcher, driver

    def test_a_restart_carries_on_the_deletion_a_failed_scale_in_asked(
            self):
        # Deletes are deferred and Nova refuses the force-delete: the
        # DELETE was taken (the sibling is SOFT_DELETED, holding the
        # project's quota) but the scale-in's start failed.  The driver
        # that asked remembers it; a restarted one is handed it from the
        # record.  Before: only a scale-in that started was, and the
        # sibling stayed until Nova reclaimed it.
        self.flags(reclaim_instance_interval=3600)
        app, sibling = self._scale_in_start_fails(
            os_driver.FORCE_DELETE_POLICY)
        self.assertEqual('SOFT_DELETED',
                         self.admin_api.get_server(sibling)['status'])
        watcher, _driver = self._restarted()
        watcher.run_once()
        self.wait_for(lambda: self.server_gone(sibling),
                      what='the sibling force-deleted')
        self.assertEqual(1, self._instances_used())

    def test_a_restart_leaves_a_sibling_whose_deletion_nova_refused(self):
        # Nova refused the DELETE itself: the sibling is as it was, a
        # member of the group, as the watcher that tried leaves it.  A
        # restarted watcher hands it to the driver too (the record cannot
        # tell the two apart), which deletes nothing that is not being
        # deleted.
        app, sibling = self._scale_in_start_fails(DELETE_POLICY)
        watcher, driver = self._restarted()
        for _ in range(2):
            watcher.run_once()
        self.assertNotIn(sibling, driver._sibling_deletions)
        server = self.admin_api.get_server(sibling)
        self.assertEqual(('ACTIVE', None),
                         (server['status'], server['OS-EXT-STS:task_state']))
        self.assertEqual([sibling], watcher.siblings[app['id']])
        self.assertEqual(2, self._instances_used())

    def test_a_soft_deleted_sibling_is_no_member_of_its_group(self):
        # Deletes are deferred and Nova refuses the force-delete: the
        # sibling stays SOFT_DELETED for the reclaim interval.  The
        # listing leaves it out, but the look-up of each sibling found
        # it, so it counted towards the group's size (its max_count,
        # its capacity, the next scale-in's choice) until it was gone,
        # in the running watcher and in a restarted one.
        self.flags(reclaim_instance_interval=3600)
        app, watcher, driver, busy, sibling = self._scaled_out()
        self.policy.set_rules({os_driver.FORCE_DELETE_POLICY: '!'},
                              overwrite=False)
        watcher.errors.update(app['id'], 'm1.small', 1.0, 0.0)
        self._measured(driver, app, 'cpu_util_pct', [10.0] * 30, last=busy)
        (step,) = watcher.run_once()
        self.assertEqual(('scale_in', 'failed'),
                         (step.decision.action, step.outcome), step.detail)
        self.assertEqual('SOFT_DELETED',
                         self.admin_api.get_server(sibling)['status'])
        # The running watcher's next run: the load is still low, but the
        # group has one member left, so no scale-in picks the sibling
        # again.
        (step,) = watcher.run_once()
        self.assertNotEqual('scale_in', step.decision.action, step.detail)
        self.assertEqual([], watcher.siblings[app['id']])
        self.assertEqual(1, watcher._members(app['id']))
        # A restarted one (its records say the sibling joined the group).
        watcher, driver = self._restarted()
        watcher.run_once()
        self.assertEqual('SOFT_DELETED',
                         self.admin_api.get_server(sibling)['status'])
        self.assertEqual([], watcher.siblings[app['id']])
        self.assertEqual(1, watcher._members(app['id']))

    def test_a_stuck_soft_delete_of_a_sibling_says_what_an_admin_runs(
            self):
        self.flags(reclaim_instance_interval=3600)
        app, watcher, driver, busy, sibling = self._scaled_out()
        driver.conf.set_override('delete_timeout', 1.0, 'openstack')
        self.policy.set_rules({RESET_POLICY: '!'}, overwrite=False)
        # The deferred delete never reaches the compute host: Nova shows
        # the sibling ACTIVE, task state soft-deleting, for good.
        lost, losing = self.lose_deletions(soft_deletes=True)
        self._scale_in_started(app, watcher, driver, busy)
        self.assertEqual(1, lost.call_count)
        self.assertEqual('soft-deleting', self._task_state(sibling))
        losing.clear()

        driver.deletion_grace_s = 0.0
        with self.assertLogs(os_driver.__name__, logging.DEBUG) as logs:
            for _ in range(3):
                watcher.run_once()
        (warning,) = self.driver_warnings(logs.records)
        self.assertIn('Sibling %s stays' % sibling, warning)
        self.assertIn("project %s's quota" % app['tenant_id'], warning)
        self.assertIn('HTTP 403', warning)
        self.assertIn(RESET_POLICY, warning)
        self.assertIn('openstack server set --state error %s' % sibling,
                      warning)
        self.assertIn('openstack server delete %s' % sibling, warning)
        self.assertEqual(1, lost.call_count)
        self.assertEqual('soft-deleting', self._task_state(sibling))
        self.assertIn(app['id'], watcher.pending)

        # The policy allows it now: the next run resets and deletes it
        # again, and once Nova keeps it SOFT_DELETED, force-deletes it.
        self.policy.set_rules({RESET_POLICY: '@'}, overwrite=False)
        watcher.run_once()
        self.assertEqual(2, lost.call_count)
        driver.deletion_grace_s = 60.0
        self.wait_for(lambda: not watcher.run_once() or not watcher.pending,
                      timeout=30, what='the watcher to see it deleted')
        self.assertTrue(self.server_gone(sibling))
        self.assertEqual([], watcher.siblings[app['id']])
        self.assertEqual(1, self._instances_used())

    def _one_sibling_fails(self):
        """The host fails to spawn the first sibling it is given (a
        hypervisor that cannot read the image): Nova puts that sibling in
        ERROR and reschedules it nowhere.  Returns the ids of the
        siblings whose spawn failed."""
        failed = []
        spawn = fake_virt.FakeDriver.spawn

        def failing(virt, context, instance, *args, **kwargs):
            if actuator.SIBLING_KEY in instance.metadata and not failed:
                failed.append(instance.uuid)
                raise nova_exception.InvalidDiskInfo(
                    reason='the host could not read the image')
            return spawn(virt, context, instance, *args, **kwargs)

        self.useFixture(fixtures.MockPatchObject(
            fake_virt.FakeDriver, 'spawn', new=failing))
        return failed

    def _one_sibling_stalls(self):
        """The host's spawn of the first sibling it is given does not
        return until the returned event is set (a hypervisor that hangs
        on it): Nova keeps that sibling in BUILD.  Returns ``(the ids of
        the siblings that stalled, the event)``."""
        stalled = []
        release = threading.Event()
        self.addCleanup(release.set)
        spawn = fake_virt.FakeDriver.spawn

        def stalling(virt, context, instance, *args, **kwargs):
            if actuator.SIBLING_KEY in instance.metadata and not stalled:
                stalled.append(instance.uuid)
                release.wait(30)
            return spawn(virt, context, instance, *args, **kwargs)

        self.useFixture(fixtures.MockPatchObject(
            fake_virt.FakeDriver, 'spawn', new=stalling))
        return stalled, release

    def _scale_out_of_two(self, listing=False, **watcher):
        """A busy VM's scale-out boots two siblings.  The VM is watched
        by its id alone (no listing: the group knows only what the
        watcher's actions say) unless ``listing``; more ``[watcher]``
        options in ``watcher``.  ``(server, watcher, driver, the
        scale-out's first step, the watcher's options)``."""
        group = self.api.post_server_groups(
            {'name': 'web', 'policy': 'soft-anti-affinity'})
        app = self._boot('web-1', metadata={
            'nova_shadow_scaling': 'horizontal'}, group=group['id'])
        # The immunity window keeps the runs that follow the scale-out
        # from starting another.
        options = dict(policy='forecast', max_count=3, hold_window=0.0,
                       min_errors=1, target_utilisation=0.4,
                       immunity_window=3600.0)
        options.update(watcher)
        if not listing:
            options.update(instances=[app['id']], watch_metadata_key='')
        watcher, driver = self._watcher(**options)
        self._measured(driver, app, 'cpu_util_pct', [100.0] * 30)
        (step,) = watcher.run_once()
        self.assertEqual(('scale_out', 'started', 2), (
            step.decision.action, step.outcome,
            len(step.record['siblings'])), step.detail)
        return app, watcher, driver, step, options

    def _scale_out_of_two_failed(self, listing=False, **watcher):
        """:meth:`_scale_out_of_two`, one of whose siblings goes to
        ERROR: ``(server, watcher, driver, the failed sibling, the one
        that came up, the scale-out's decision id, the watcher's
        options)``."""
        failed = self._one_sibling_fails()
        app, watcher, driver, step, options = self._scale_out_of_two(
            listing, **watcher)
        self.wait_for(lambda: failed, what='a sibling to fail')
        (broken,) = failed
        (came_up,) = set(step.record['siblings']) - {broken}
        self._wait_for_state_change({'id': broken}, 'ERROR')
        self._wait_for_state_change({'id': came_up}, 'ACTIVE')
        self.assertEqual(3, self._instances_used())
        return (app, watcher, driver, broken, came_up,
                step.record['decision_id'], options)

    def test_a_sibling_that_went_to_error_is_deleted_and_the_others_join(
            self):
        (app, watcher, driver, broken, came_up, decision_id,
         options) = self._scale_out_of_two_failed()
        self.wait_for(lambda: not watcher.run_once() or not watcher.pending,
                      timeout=30, what='the watcher to see it end')
        end = [r for r in self._records(app['id'])
               if r['decision_id'] == decision_id][-1]
        # The group grew, by one sibling of two.
        self.assertEqual('done', end['outcome'])
        self.assertIn('sibling %s went to ERROR' % broken, end['detail'])
        # The one that came up is a member at once (the group's size and
        # its member-count timeline say so); the one in ERROR is deleted
        # and frees the project's quota.  Before: the ERROR sibling
        # stayed, counted against the quota, and neither was a member
        # (here, with no listing, ever; elsewhere, only once a listing
        # found them by their metadata, the ERROR one included).
        self.assertEqual([came_up], watcher.siblings[app['id']])
        self.assertEqual(2, watcher._members(app['id']))
        self.assertEqual([came_up], end['joined'])
        self.wait_for(lambda: self.server_gone(broken),
                      what='the failed sibling gone')
        self.assertEqual(2, self._instances_used())
        self.assertEqual({}, self.allocations(broken))
        # A restarted watcher finds the group in the records.
        restarted, _driver = self._watcher(**options)
        self.assertTrue(restarted.restore(driver.now()))
        self.assertEqual([came_up], restarted.siblings[app['id']])

    def test_a_partial_scale_out_is_a_scaling_for_the_guard(self):
        # One sibling of two came up: the group grew, so the scale-out
        # is a scaling (a shrink waits for the cooldown after it, a
        # shrink soon after it is a flap, and it is a change of
        # direction for the cycle breaker), counted among the watcher's
        # actions, and its failed part is recorded.  Before: a failed
        # attempt, no scaling, counted out of the actions.
        (app, watcher, driver, broken, came_up, decision_id,
         options) = self._scale_out_of_two_failed(cooldown=7200.0)
        started_at = watcher.pending[app['id']].started_at
        self.wait_for(lambda: not watcher.run_once() or not watcher.pending,
                      timeout=30, what='the watcher to see it end')
        end = [r for r in self._records(app['id'])
               if r['decision_id'] == decision_id][-1]
        self.assertEqual(('done', [came_up], [broken]), (
            end['outcome'], end['joined'], end['discarded']))
        self.assertIn('sibling %s went to ERROR' % broken, end['detail'])
        self.assertEqual(1, watcher.counters['actions'])
        # Past the immunity window, within the cooldown.
        later = started_at + options['immunity_window'] + 60.0
        shrink = policy_base.Decision('scale_in', 'demand fell')
        restarted, _driver = self._watcher(**options)
        self.assertTrue(restarted.restore(driver.now()))
        for guarded in (watcher, restarted):
            self.assertFalse(guarded.guard.last(app['id']).failed)
            refusal = guarded.guard.check(app['id'], shrink, later)
            self.assertTrue(refusal and refusal.startswith(
                'cooldown: last scaling (scale_out)'), refusal)
            self.assertTrue(guarded.guard.is_flap(app['id'], -1, later))

    def test_a_sibling_still_booting_at_the_deadline_is_deleted(self):
        # The host hangs on one sibling's spawn: Nova keeps it in BUILD
        # past the scale-out's deadline.  It is deleted then (it would
        # otherwise come up later, no member of a group watched by its
        # VM's id, holding its project's quota, or join the group past
        # max_count), and the one that came up joins the group.
        # Before: it was left as it was, neither deleted nor counted.
        stalled, release = self._one_sibling_stalls()
        app, watcher, driver, step, _options = self._scale_out_of_two()
        self.wait_for(lambda: stalled, what='a sibling to stall')
        (slow,) = stalled
        (came_up,) = set(step.record['siblings']) - {slow}
        self._wait_for_state_change({'id': came_up}, 'ACTIVE')
        watcher.run_once()
        self.assertIn(app['id'], watcher.pending)
        watcher.run_once(now=watcher.pending[app['id']].deadline + 1.0)
        self.assertNotIn(app['id'], watcher.pending)
        end = [r for r in self._records(app['id']) if r['decision_id']
               == step.record['decision_id']][-1]
        self.assertEqual(([came_up], [slow]),
                         (end['joined'], end['discarded']))
        self.assertIn('timed out', end['detail'])
        self.assertIn(slow, end['detail'])
        self.assertEqual('done', end['outcome'])
        self.assertEqual([came_up], watcher.siblings[app['id']])
        self.assertEqual(2, watcher._members(app['id']))
        # Its host lets go of it: the deletion completes and frees the
        # project's quota.
        release.set()
        self.wait_for(lambda: self.server_gone(slow), timeout=15,
                      what='the stalled sibling gone')
        self.assertEqual(2, self._instances_used())
        self.assertEqual({}, self.allocations(slow))

    def test_a_failed_sibling_nova_would_not_delete_is_deleted_again(self):
        # Nova refuses the deletion (its policy, here, for a while): the
        # driver asks again on a later run, as for a stuck deletion.
        # Meanwhile the listing that finds groups by their metadata
        # leaves it out: a sibling in ERROR is no member.
        self.policy.set_rules({DELETE_POLICY: '!'}, overwrite=False)
        (app, watcher, driver, broken, came_up, _decision_id,
         _options) = self._scale_out_of_two_failed(listing=True)
        self.wait_for(lambda: not watcher.run_once() or not watcher.pending,
                      timeout=30, what='the watcher to see it end')
        self.assertEqual('ERROR', self.api.get_server(broken)['status'])
        self.assertEqual([came_up], watcher.siblings[app['id']])
        watcher.run_once()
        self.assertEqual([came_up], watcher.siblings[app['id']])
        self.policy.set_rules({DELETE_POLICY: '@'}, overwrite=False)
        driver.deletion_grace_s = 0.0
        with self.assertLogs(os_driver.__name__, logging.DEBUG) as logs:
            watcher.run_once()
        (warning,) = self.driver_warnings(logs.records)
        self.assertIn('Deleting sibling %s again' % broken, warning)
        self.wait_for(lambda: self.server_gone(broken),
                      what='the failed sibling gone')
        self.assertEqual(2, self._instances_used())
        watcher.run_once()
        self.assertNotIn(broken, driver._sibling_deletions)

    def test_a_sibling_deleted_while_its_scale_out_is_followed(self):
        # An operator deletes one of the new siblings before the watcher
        # sees them up: the other joins the group, which grew by one.
        # Before: the look-up's 404 failed the scale-out, and the sibling
        # that came up was no member.
        app, watcher, driver, step, _options = self._scale_out_of_two()
        gone, came_up = step.record['siblings']
        for sibling in (gone, came_up):
            self._wait_for_state_change({'id': sibling}, 'ACTIVE')
        self.api.delete_server(gone)
        self._wait_until_deleted({'id': gone})
        self.wait_for(lambda: not watcher.run_once() or not watcher.pending,
                      timeout=30, what='the watcher to see it end')
        self.assertEqual([came_up], watcher.siblings[app['id']])
        end = [r for r in self._records(app['id']) if r['decision_id']
               == step.record['decision_id']][-1]
        self.assertIn('sibling %s is gone' % gone, end['detail'])
        self.assertEqual(('done', [came_up], []), (
            end['outcome'], end['joined'], end['discarded']))

    def _tenant_vm(self, project_id, key_name=None, flavor_id=None):
        """A horizontally scaled VM booted by a member of ``project_id``
        (another project than the driver's), in a server group of that
        project; ``(the tenant's API, the group, the server)``."""
        tenant = self.tenant_api(project_id)
        group = tenant.post_server_groups(
            {'name': 'web', 'policy': 'soft-anti-affinity'})
        body = self._build_server(
            name='web-1', networks='none',
            flavor_id=flavor_id or self.flavors['m1.small'])
        body['metadata'] = {'nova_shadow_watch': 'true',
                            'nova_shadow_scaling': 'horizontal'}
        if key_name:
            _private, public, _fingerprint = crypto.generate_key_pair()
            tenant.post_keypair({'keypair': {'name': key_name,
                                             'public_key': public}})
            body['key_name'] = key_name
        app = tenant.post_server({'server': body, 'os:scheduler_hints': {
            'group': group['id']}})
        return tenant, group, self._wait_for_state_change(app, 'ACTIVE')

    def _busy(self, openstack=None):
        return self._watcher(policy='forecast', max_count=2,
                             hold_window=0.0, min_errors=1,
                             openstack=openstack)

    @staticmethod
    def _refusal_forgotten(driver, memory_s=0.5):
        """Shorten ``driver``'s memory of Keystone's refusals to
        ``memory_s`` and let that pass: what a watcher's next run finds
        (its interval is well past the memory's default)."""
        driver.refusal_memory_s = memory_s
        time.sleep(memory_s)

    def _no_role(self, project):
        return (
            'the driver\'s user admin has no role in project %s, the VM\'s '
            'project, where its sibling is booted (Keystone refused a '
            'token of that project: The request you have made requires '
            'authentication. (HTTP 401)); grant one with: openstack role '
            'add --user admin --project %s member' % (project, project))

    def _project_servers(self, project_id):
        return self.admin_api.get_servers(search_opts={
            'all_tenants': 1, 'project_id': project_id})

    def test_a_sibling_is_booted_in_its_vm_s_project(self):
        project = uuid.uuid4().hex
        # The operator's ``openstack role add``.
        self.keystone.grant(project, 'member')
        tenant, group, app = self._tenant_vm(project, key_name='tenant-key')
        self.assertNotEqual(project, self.api_fixture.project_id)
        watcher, driver = self._busy()
        busy = self._measured(driver, app, 'cpu_util_pct', [100.0] * 30)
        step = watcher.run_once()[0]
        self.assertEqual(('scale_out', 'started'),
                         (step.decision.action, step.outcome), step.detail)
        sibling = step.record['siblings'][0]
        server = self._wait_for_state_change({'id': sibling}, 'ACTIVE')
        # Nova keeps it in the tenant's project (read as admin), and the
        # tenant sees and manages it like its own.
        self.assertEqual(project, server['tenant_id'])
        self.assertIn(sibling, [s['id'] for s in tenant.get_servers()])
        self.assertIn(sibling, tenant.get_server_group(group['id'])[
            'members'])
        # The key pair is the tenant user's: Nova would refuse it to the
        # driver's user, so the sibling has none and the record says so.
        self.assertIsNone(server['key_name'])
        self.assertEqual(
            'boot 1 sibling of %s, without the key pair tenant-key: Nova '
            'keeps key pairs per user, and it is user tenant\'s, not '
            'admin\'s, whom the sibling is booted as' % app['id'],
            step.detail)
        self.assertIn(sibling, [i.instance_id for i in
                                driver.list_instances([project])])
        self.wait_for(lambda: not watcher.run_once() or not watcher.pending,
                      timeout=30, what='the sibling to count')
        self.assertEqual([sibling], watcher.siblings[app['id']])
        # Deleting it needs no more than the driver's own credentials.
        self._scaled_in(app, watcher, driver, busy, sibling)
        self.assertEqual([app['id']],
                         [s['id'] for s in self._project_servers(project)])

    def test_no_role_in_the_vm_s_project_suppresses_the_scale_out(self):
        project = uuid.uuid4().hex
        _tenant, _group, app = self._tenant_vm(project)
        watcher, driver = self._busy()
        self._measured(driver, app, 'cpu_util_pct', [100.0] * 30)
        step = watcher.run_once()[0]
        self.assertEqual(('scale_out', 'suppressed'),
                         (step.decision.action, step.outcome), step.detail)
        reason = (
            'the driver\'s user admin has no role in project %s, the VM\'s '
            'project, where its sibling is booted (Keystone refused a '
            'token of that project: The request you have made requires '
            'authentication. (HTTP 401)); grant one with: openstack role '
            'add --user admin --project %s member' % (project, project))
        self.assertEqual(reason, step.detail)
        self.assertEqual([reason], [r['guard'] for r in
                                    self._records(app['id'])])
        with self.assertRaises(base.CloudError) as caught:
            driver.boot_sibling(app['id'])
        self.assertEqual(reason, str(caught.exception))
        self.assertFalse(caught.exception.credentials_refused)
        self.assertEqual([app['id']],
                         [s['id'] for s in self._project_servers(project)])
        self.assertEqual([], self._project_servers(
            self.api_fixture.project_id))
        # Once the role is granted, the next run boots the sibling there.
        self.keystone.grant(project, 'member')
        self._refusal_forgotten(driver)
        step = watcher.run_once()[0]
        self.assertEqual(('scale_out', 'started'),
                         (step.decision.action, step.outcome), step.detail)
        self.assertEqual(project, self.admin_api.get_server(
            step.record['siblings'][0])['tenant_id'])

    def test_a_project_without_the_role_costs_one_login_per_run(self):
        # Every busy VM of the project asks for a sibling in one run; the
        # driver asks Keystone once, not once per VM.
        project = uuid.uuid4().hex
        apps = [self._tenant_vm(project)[2] for _ in range(3)]
        watcher, driver = self._busy()
        for app in apps:
            self._measured(driver, app, 'cpu_util_pct', [100.0] * 30)
        steps = watcher.run_once()
        self.assertEqual(
            sorted((app['id'], 'scale_out', 'suppressed',
                    self._no_role(project)) for app in apps),
            sorted((s.instance_id, s.decision.action, s.outcome, s.detail)
                   for s in steps))
        self.assertEqual(1, self.keystone.token_requests[project])
        with self.assertRaises(base.CloudError) as caught:
            driver.boot_sibling(apps[0]['id'])
        self.assertEqual(self._no_role(project), str(caught.exception))
        self.assertEqual(1, self.keystone.token_requests[project])
        # A role granted counts once the refusal is forgotten.
        self.keystone.grant(project, 'member')
        self._refusal_forgotten(driver)
        steps = watcher.run_once()
        self.assertEqual(
            sorted((app['id'], 'scale_out', 'started') for app in apps),
            sorted((s.instance_id, s.decision.action, s.outcome)
                   for s in steps))

    def test_a_project_s_connection_dropped_from_the_cache_is_closed(self):
        first, second = uuid.uuid4().hex, uuid.uuid4().hex
        self.keystone.grant(first, 'member')
        self.keystone.grant(second, 'member')
        apps = [self._tenant_vm(project)[2] for project in (first, second)]
        _watcher, driver = self._busy()
        self.useFixture(fixtures.MonkeyPatch(
            'shadow_service.clouds.openstack.driver.MAX_PROJECT_CONNECTIONS',
            1))
        self.assertIsNone(driver.why_no_sibling(driver.get_instance(
            apps[0]['id'])))
        kept = driver._project_conns[first]
        self.assertIsNone(driver.why_no_sibling(driver.get_instance(
            apps[1]['id'])))
        self.assertEqual([second], list(driver._project_conns))
        self.assertTrue(kept.closed)
        self.assertFalse(driver._project_conns[second].closed)
        # A role removed drops (and closes) the project's connection too.
        kept = driver._project_conns[second]
        self.keystone.revoke(second)
        self.assertEqual(self._no_role(second), driver.why_no_sibling(
            driver.get_instance(apps[1]['id'])))
        self.assertEqual([], list(driver._project_conns))
        self.assertTrue(kept.closed)

    def test_the_refused_projects_remembered_are_bounded(self):
        first, second = uuid.uuid4().hex, uuid.uuid4().hex
        apps = [self._tenant_vm(project)[2] for project in (first, second)]
        _watcher, driver = self._busy()
        self.useFixture(fixtures.MonkeyPatch(
            'shadow_service.clouds.openstack.driver.MAX_REFUSED_PROJECTS',
            1))
        asked = [(apps[0], first), (apps[1], second), (apps[1], second),
                 (apps[0], first)]
        for app, project in asked:
            self.assertEqual(self._no_role(project), driver.why_no_sibling(
                driver.get_instance(app['id'])))
        # The second project pushed the first out of the memory: asked
        # of Keystone again; the second was answered from memory.
        self.assertEqual([2, 1], [self.keystone.token_requests[project]
                                  for project in (first, second)])
        self.assertEqual([first], list(driver._refused_projects))

    def test_a_role_removed_after_a_sibling_suppresses_the_next_one(self):
        # The connection scoped to the tenant's project is kept after the
        # first sibling; a role removed since is said as a missing role,
        # before a boot, not as a failed call of that connection.
        project = uuid.uuid4().hex
        self.keystone.grant(project, 'member')
        _tenant, _group, app = self._tenant_vm(project,
                                               key_name='tenant-key')
        watcher, driver = self._busy()
        self._measured(driver, app, 'cpu_util_pct', [100.0] * 30)
        step = watcher.run_once()[0]
        self.assertEqual(('scale_out', 'started'),
                         (step.decision.action, step.outcome), step.detail)
        self.keystone.revoke(project)
        reason = (
            'the driver\'s user admin has no role in project %s, the VM\'s '
            'project, where its sibling is booted (Keystone refused a '
            'token of that project: The request you have made requires '
            'authentication. (HTTP 401)); grant one with: openstack role '
            'add --user admin --project %s member' % (project, project))
        self.assertEqual(reason,
                         driver.why_no_sibling(driver.get_instance(app['id'])))
        with self.assertRaises(base.CloudError) as caught:
            driver.boot_sibling(app['id'])
        self.assertEqual(reason, str(caught.exception))
        # Granted again, the next sibling boots there.
        self.keystone.grant(project, 'member')
        self._refusal_forgotten(driver)
        self.assertIsNone(
            driver.why_no_sibling(driver.get_instance(app['id'])))
        sibling = driver.boot_sibling(app['id'])
        self.assertEqual(project, self.admin_api.get_server(
            sibling.instance_id)['tenant_id'])

    def _refused_by_nova(self, project):
        return (
            'the token of project %s, the VM\'s project, where its sibling '
            'is booted, was refused (Finding flavor m1.small failed (HTTP '
            '401): The request you have made requires authentication.): '
            'the driver\'s user admin may have lost its role there since '
            'Keystone gave the token; check with: openstack role '
            'assignment list --user admin --project %s; grant one with: '
            'openstack role add --user admin --project %s member'
            % (project, project, project))

    def test_a_token_nova_refuses_at_boot_is_remembered_for_the_project(
            self):
        # Keystone gives the token of the project, Nova answers 401 to
        # it: the run boots once there, not once per VM of the project.
        project = uuid.uuid4().hex
        self.keystone.grant(project, 'member')
        apps = [self._tenant_vm(project)[2] for _ in range(3)]
        self.keystone.nova_refuses(project)
        watcher, driver = self._busy()
        for app in apps:
            self._measured(driver, app, 'cpu_util_pct', [100.0] * 30)
        steps = sorted(watcher.run_once(), key=lambda s: s.outcome)
        [failed] = [s for s in steps if s.outcome == 'failed']
        reason = self._refused_by_nova(project)
        self.assertEqual(
            'boot 1 sibling of %s: %s' % (failed.instance_id, reason),
            failed.detail)
        self.assertEqual(
            sorted((a['id'], 'suppressed', reason) for a in apps
                   if a['id'] != failed.instance_id),
            sorted((s.instance_id, s.outcome, s.detail) for s in steps
                   if s is not failed))
        self.assertEqual(1, self.keystone.nova_refusals[project])
        # Asked directly meanwhile, the driver says so without asking.
        with self.assertRaises(base.CloudError) as caught:
            driver.boot_sibling(apps[0]['id'])
        self.assertEqual(reason, str(caught.exception))
        self.assertFalse(caught.exception.credentials_refused)
        self.assertEqual(1, self.keystone.nova_refusals[project])
        self.assertEqual([], list(driver._project_conns))
        # Once Nova takes the project's tokens again, the next run boots.
        self.keystone.nova_refuses(project, refuses=False)
        self._refusal_forgotten(driver)
        steps = watcher.run_once()
        self.assertEqual(3 * [('scale_out', 'started')],
                         [(s.decision.action, s.outcome) for s in steps],
                         [s.detail for s in steps])

    def _flavor_access(self, flavor_id, project, action):
        self.admin_api.api_post('/flavors/%s/action' % flavor_id, {
            '%sTenantAccess' % action: {'tenant': project}})

    def test_a_sibling_s_flavor_is_found_as_its_project_sees_it(self):
        project = uuid.uuid4().hex
        self.keystone.grant(project, 'member')
        private = self._create_flavor(name='tenant.small', vcpu=1,
                                      disk=20, ephemeral=0, is_public=False)
        self._flavor_access(private, project, 'add')
        _tenant, _group, app = self._tenant_vm(project, flavor_id=private)
        _watcher, driver = self._busy()
        sibling = driver.boot_sibling(app['id'])
        server = self._wait_for_state_change(
            {'id': sibling.instance_id}, 'ACTIVE')
        self.assertEqual((project, 'tenant.small'), (
            server['tenant_id'], server['flavor']['original_name']))
        # No longer shared with the project: the driver's own credentials
        # (admin) still see it, but the project may not boot with it.
        self._flavor_access(private, project, 'remove')
        with self.assertRaises(base.CloudError) as caught:
            driver.boot_sibling(app['id'])
        self.assertEqual(
            'no flavor tenant.small that project %s may use: Nova shows '
            'a project the public flavors and the private ones shared '
            'with it (openstack flavor set --project %s tenant.small '
            'shares one)' % (project, project), str(caught.exception))
        self.assertEqual(2, len(self._project_servers(project)))

    def test_a_sibling_may_be_booted_in_the_service_project(self):
        project = uuid.uuid4().hex
        tenant, _group, app = self._tenant_vm(project)
        watcher, driver = self._busy(
            openstack={'sibling_project': 'service'})
        self._measured(driver, app, 'cpu_util_pct', [100.0] * 30)
        step = watcher.run_once()[0]
        self.assertEqual(('scale_out', 'started'),
                         (step.decision.action, step.outcome), step.detail)
        sibling = step.record['siblings'][0]
        server = self._wait_for_state_change({'id': sibling}, 'ACTIVE')
        self.assertEqual(self.api_fixture.project_id, server['tenant_id'])
        self.assertNotIn(sibling, [s['id'] for s in tenant.get_servers()])
