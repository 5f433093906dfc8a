"""Shadows without a network: their samples come back through Nova's
console log.

The hypervisor is the one part nothing here provides: a fake virt driver
whose console output is what loadgen's console sink would have written
in the guest (``nova-shadow-sample <json>`` lines among boot noise), a
new sample per read.  Everything else is real: Nova's API returns that
output, the openstack driver reads it for shadows that sent nothing to a
collector, validates it like the collector does and writes it to the
history the evaluation reads.
"""

import json
import sys
import time
import types

import pytest
from nova.virt import fake

from shadow_service import service
from shadow_service.history import memory
from tests import openstack_support as support

pytestmark = [pytest.mark.nova]


class ConsoleSamplesDriver(fake.MediumFakeDriver):
    """The console of a guest running loadgen with the console sink."""

    consoles = {}
    config_drives = {}

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        self.config_drives[instance.uuid] = instance.config_drive
        return super().spawn(context, instance, image_meta, injected_files,
                             admin_password, allocations, network_info,
                             block_device_info, power_on, accel_info)

    def get_console_output(self, context, instance):
        lines = self.consoles.setdefault(instance.uuid, [
            '[    0.000000] Linux version 6.1.0', 'cloud-init: modules'])
        for metric, value in (
                ('cpu_ops_per_s', support.HOST_SPEED[instance.host]),
                ('cpu_steal_pct', 1.0)):
            lines.append('[%12.6f] nova-shadow-sample %s' % (
                time.monotonic(), json.dumps({
                    'measurement': 'shadow_sample', 'time': time.time(),
                    'tags': {'evaluation': 'from-the-guest',
                             'host': 'from-the-guest', 'metric': metric},
                    'fields': {'value': value}})))
        return '\r\n'.join(lines) + '\r\n'


sys.modules['nova.virt.consolesamples'] = types.SimpleNamespace(
    ConsoleSamplesDriver=ConsoleSamplesDriver)


class ConsoleFallbackTest(support.OpenStackHarnessTestBase):
    VIRT_DRIVER = 'consolesamples.ConsoleSamplesDriver'

    def test_samples_of_shadows_without_network_come_from_the_console(self):
        store = memory.MemoryStore()
        conf, driver = self.make_driver(
            store, openstack={'network': 'none',
                              'console_poll_interval': 0.5})
        parts = service.build(conf, history=store, driver=driver)
        self.addCleanup(parts.close)
        self.assertIsNone(driver.collector)

        ranking = parts.manager.evaluate(
            {'flavor': {'vcpus': 1, 'ram_mb': 2048, 'disk_gb': 4},
             'profile': 'batch-cpu', 'image_id': support.IMAGE_ID},
            [{'host': h} for h in support.HOSTS], 20.0)

        self.assertEqual('finished', ranking['status'])
        self.assertEqual('host2', ranking['hosts'][0]['host'])
        samples = store.query_points(
            'shadow_sample', {'evaluation': ranking['evaluation_id']})
        self.assertEqual(set(support.HOSTS),
                         {p.tags['host'] for p in samples})
        self.assertEqual(set(ConsoleSamplesDriver.consoles),
                         {p.tags['shadow'] for p in samples})
        # Each console line was stored once, however often it was read.
        lines = sum(len(c) - 2 for c in ConsoleSamplesDriver.consoles.values())
        self.assertEqual(lines, len(samples))
        # Without a network no metadata service gives the guests their
        # user-data: each shadow booted with a config drive.
        self.assertEqual(set(ConsoleSamplesDriver.consoles),
                         set(ConsoleSamplesDriver.config_drives))
        self.assertEqual({'True'},
                         set(ConsoleSamplesDriver.config_drives.values()))
        self.assertEqual([], self.shadow_servers())
