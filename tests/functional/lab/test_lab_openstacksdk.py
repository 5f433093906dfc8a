"""Another process reaches the lab cloud with openstacksdk and the
``clouds.yaml`` the LabCloud wrote: create (pinned by availability zone and
by ``host=`` at 2.74), list, diagnostics, delete; Placement too.
"""

import json
import os
import subprocess
import sys

import pytest

from tests import lab_support as lab

pytestmark = [pytest.mark.nova]

CLIENT = r'''
import json, sys, time
import openstack

image_id, az_host, forced_host = sys.argv[1:4]
conn = openstack.connect(cloud='nova-shadow-lab')
out = {}
flavor = conn.compute.find_flavor('m1.tiny')
pinned = conn.compute.create_server(
    name='sdk-az', image_id=image_id, flavor_id=flavor.id, networks='none',
    availability_zone='nova:%s' % az_host)
forced = conn.compute.create_server(
    name='sdk-host', image_id=image_id, flavor_id=flavor.id,
    networks='none', host=forced_host, microversion='2.74')
servers = [conn.compute.wait_for_server(s, interval=0.1, wait=60)
           for s in (pinned, forced)]
out['hosts'] = {s.name: s.compute_host for s in servers}
out['status'] = {s.name: s.status for s in servers}
out['listed'] = sorted(s.name for s in conn.compute.servers())
diagnostics = conn.compute.get_server_diagnostics(servers[0])
out['diagnostics'] = {'cpu_details': diagnostics.cpu_details,
                      'memory_details': diagnostics.memory_details,
                      'hypervisor': diagnostics.hypervisor}
out['legacy'] = conn.compute.get(
    '/servers/%s/diagnostics' % servers[0].id, microversion='2.1').json()
out['providers'] = sorted(p.name for p in
                          conn.placement.resource_providers())
for server in servers:
    conn.compute.delete_server(server)
for server in servers:
    conn.compute.wait_for_delete(server, interval=0.1, wait=60)
# wait_for_delete stops at status DELETED; the list drops it a moment later.
deadline = time.monotonic() + 30
while True:
    out['after_delete'] = sorted(s.name for s in conn.compute.servers())
    if 'sdk-host' not in out['after_delete'] and \
            'sdk-az' not in out['after_delete'] or \
            time.monotonic() > deadline:
        break
    time.sleep(0.1)
print(json.dumps(out))
'''


def test_openstacksdk_in_another_process_drives_the_lab(lab_cloud):
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=lab_cloud.clouds_yaml)
    result = subprocess.run(
        [sys.executable, '-c', CLIENT, lab_cloud.image_id, 'lab-fast',
         'lab-noisy'], env=env, cwd=lab.REPO, capture_output=True,
        text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])

    assert out['hosts'] == {'sdk-az': 'lab-fast', 'sdk-host': 'lab-noisy'}
    assert out['status'] == {'sdk-az': 'ACTIVE', 'sdk-host': 'ACTIVE'}
    assert {'sdk-az', 'sdk-host'} <= set(out['listed'])
    assert out['diagnostics']['hypervisor'] == 'nova-shadow-lab'
    assert out['diagnostics']['cpu_details'][0]['time'] > 0
    assert out['diagnostics']['memory_details']['maximum'] == 512
    assert out['legacy']['lab_host'] == 'lab-fast'
    assert out['legacy']['cpu_usage_ns'] > 0
    assert 'cpu_throttled_ns' in out['legacy']
    assert out['legacy']['host_cpu_quota_cpus'] == pytest.approx(0.3)
    assert set(lab_cloud.hosts) <= set(out['providers'])
    assert not {'sdk-az', 'sdk-host'} & set(out['after_delete'])
