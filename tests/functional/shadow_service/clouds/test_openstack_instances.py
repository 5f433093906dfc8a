"""The watcher's instance actions through the openstack driver, on real
Nova: look up, resize and confirm, live-migrate, boot a sibling, delete."""

import socket

import pytest

from shadow_service.clouds import base
from shadow_service.clouds.openstack import driver as os_driver
from shadow_service.history import memory
from tests import openstack_support as support

pytestmark = [pytest.mark.nova]


class InstanceActionsTest(support.OpenStackHarnessTestBase):

    def test_the_watchers_actions_act_on_real_servers(self):
        _conf, driver = self.make_driver(memory.MemoryStore())
        flavors = {f['name']: f['id'] for f in self.api.get_flavors()}
        body = self._build_server(name='app', networks='none',
                                  az='nova:host1',
                                  flavor_id=flavors['m1.small'])
        body['metadata'] = {'tier': 'web'}
        app = self._wait_for_state_change(
            self.api.post_server({'server': body}), 'ACTIVE')

        instance = driver.get_instance(app['id'])
        self.assertEqual(('host1', 'm1.small', 1, 2048),
                         (instance.host, instance.flavor['name'],
                          instance.flavor['vcpus'],
                          instance.flavor['ram_mb']))
        self.assertEqual({'tier': 'web'}, instance.metadata)

        driver.resize(app['id'], {'name': 'm1.medium'})
        self._wait_for_state_change(app, 'VERIFY_RESIZE')
        driver.confirm_resize(app['id'])
        self._wait_for_state_change(app, 'ACTIVE')
        resized = driver.get_instance(app['id'])
        self.assertEqual('m1.medium', resized.flavor['name'])

        target = next(h for h in support.HOSTS if h != resized.host)
        driver.live_migrate(app['id'], target)
        self.wait_for(lambda: driver.get_instance(app['id']).host == target
                      and self.api.get_server(app['id'])['status']
                      == 'ACTIVE', timeout=30, what='the live migration')

        sibling = driver.boot_sibling(app['id'], name='app-2',
                                      metadata={'group_of': app['id']})
        server = self._wait_for_state_change({'id': sibling.instance_id},
                                             'ACTIVE')
        self.assertEqual('app-2', server['name'])
        self.assertEqual('m1.medium', server['flavor']['original_name'])
        self.assertEqual({'tier': 'web', 'group_of': app['id']},
                         server['metadata'])
        self.assertEqual(server['metadata'], sibling.metadata)

        driver.delete_instance(sibling.instance_id)
        self._wait_until_deleted(server)
        driver.delete_instance(sibling.instance_id)  # gone: no error
        with self.assertRaises(base.CloudError):
            driver.get_instance(sibling.instance_id)

    def _volume_backed_vm(self):
        volume = self.cinder.IMAGE_BACKED_VOL
        body = self._build_server(name='app', networks='none',
                                  image_uuid='')
        body['block_device_mapping_v2'] = [{
            'boot_index': 0, 'uuid': volume, 'source_type': 'volume',
            'destination_type': 'volume'}]
        return volume, self._wait_for_state_change(
            self.api.post_server({'server': body}), 'ACTIVE')

    def test_a_root_volume_cinder_cannot_show_is_a_reason_not_a_crash(self):
        _conf, driver = self.make_driver(memory.MemoryStore())
        volume, app = self._volume_backed_vm()
        instance = driver.get_instance(app['id'])
        self.assertTrue(instance.volume_backed)
        self.assertIsNone(driver.why_no_sibling(instance))
        self.cinder_api.answers['GET /v3/volumes/%s' % volume] = (
            503, {'message': 'Cinder is restarting'})
        reason = driver.why_no_sibling(instance)
        self.assertTrue(reason.startswith(
            'its root volume cannot be read: Reading volume %s, the root '
            'disk of %s failed (HTTP 503)' % (volume, app['id'])), reason)
        with self.assertRaises(base.CloudError) as caught:
            driver.boot_sibling(app['id'])
        self.assertTrue(caught.exception.retryable)
        self.assertEqual(1, len(self.api.get_servers()))

    def test_why_a_root_volume_cannot_be_read_is_told_apart(self):
        conf, driver = self.make_driver(memory.MemoryStore())
        volume, app = self._volume_backed_vm()
        instance = driver.get_instance(app['id'])
        read = ('Reading volume %s, the root disk of %s failed'
                % (volume, app['id']))
        answers = self.cinder_api.answers
        answers['GET /v3/volumes/%s' % volume] = (404, {'itemNotFound': {
            'code': 404, 'message': 'Volume %s could not be found.'
            % volume}})
        self.assertEqual(
            'its root volume cannot be found: %s (HTTP 404): Volume %s '
            'could not be found.' % (read, volume),
            driver.why_no_sibling(instance))
        answers['GET /v3/volumes/%s' % volume] = (403, {'forbidden': {
            'code': 403, 'message': 'Policy doesn\'t allow '
            'volume:get to be performed.'}})
        self.assertEqual(
            'its root volume may not be read by the driver\'s user '
            '(forbidden by the cloud\'s policy): %s (HTTP 403): Policy '
            'doesn\'t allow volume:get to be performed.' % read,
            driver.why_no_sibling(instance))
        # Cinder not answering: nothing listens there, or a listener that
        # never answers (the call's time-out, 0.5 s here).
        closed = socket.socket()
        closed.bind(('127.0.0.1', 0))
        silent = socket.socket()
        silent.bind(('127.0.0.1', 0))
        silent.listen(8)
        self.addCleanup(silent.close)
        for listener in (closed, silent):
            self.cinder_url = 'http://127.0.0.1:%d/v3' % (
                listener.getsockname()[1])
            conn = self.connection()
            conn.session.timeout = 0.5
            driver = os_driver.OpenStackDriver(
                conf, memory.MemoryStore(), connection=conn)
            if listener is closed:
                closed.close()
            reason = driver.why_no_sibling(instance)
            self.assertTrue(reason.startswith(
                'its root volume cannot be read now, the cloud did not '
                'answer (unreachable or timed out; the next run asks '
                'again): %s: ' % read), reason)
        # A VM gone meanwhile is not its volume's fault.
        self.api.delete_server(app['id'])
        self._wait_until_deleted(app)
        self.assertTrue(driver.why_no_sibling(instance).startswith(
            'the VM cannot be found: Looking up instance %s failed (HTTP '
            '404)' % app['id']))
