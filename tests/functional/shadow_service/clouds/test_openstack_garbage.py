"""The garbage collector of the openstack driver inside real Nova: a
restarted service deletes the shadows it left behind and anyone's expired
shadows, at start and periodically, and leaves another service's live
shadows alone."""

import time

import pytest

from loadgen import profiles
from shadow_service import service
from shadow_service.history import memory
from tests import openstack_support as support

pytestmark = [pytest.mark.nova]

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
