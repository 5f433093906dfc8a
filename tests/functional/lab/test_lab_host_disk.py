"""A lab host with a disk of its own (``share.disk``): a RAM-backed loop
device mounted on the host's directory, whose throttles are one I/O
budget that the host's instances share, released when the lab stops and
when its process is SIGKILLed.

The lab runs in a child process (one Nova per process; the package's
``lab_cloud`` fixture holds this one's).
"""

import json
import os
import signal
import subprocess
import sys

import pytest

from nova_shadow_lab import hostdisk
from tests import lab_support as lab

pytestmark = [pytest.mark.nova]

IOPS = 300
WRITES = 300

SCENARIO = r'''
import json, os, sys, time
from nova_shadow_lab import cloud, hostdisk
from tests import lab_support as lab

IOPS, WRITES, KILL = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == '1'
# The writes wait for /var/tmp/go (written host-side), so that two
# instances write at the same time however far apart they boot.
WRITE = '#cloud-config\n' + json.dumps({'runcmd': [
    'touch /var/tmp/ready; '
    'while [ ! -e /var/tmp/go ]; do sleep 0.01; done; '
    'start=$(date +%%s.%%N); '
    'dd if=/dev/zero of=/var/tmp/blob bs=4k count=%d oflag=direct '
    '2>/dev/null; end=$(date +%%s.%%N); echo "$start $end" > /var/tmp/dd-time'
    % WRITES]})
config = {'hosts': [{'name': 'disk-host', 'share': {
    'cpu': 0.5, 'disk': {'size_mb': 128, 'write_iops': IOPS,
                         'read_iops': IOPS}}}]}


def go(host, servers):
    """Let the servers write, together once each is ready."""
    roots = [host.get(server['id']).sandbox.root for server in servers]
    for root in roots:
        lab.wait_for(lambda r=root: os.path.exists(
            os.path.join(r, 'var/tmp/ready')), timeout=60, what='ready')
    for root in roots:
        open(os.path.join(root, 'var/tmp/go'), 'w').close()


def timed(lab_cloud, host, servers):
    spans = []
    for server in servers:
        root = host.get(server['id']).sandbox.root
        path = os.path.join(root, 'var/tmp/dd-time')
        lab.wait_for(lambda p=path: os.path.exists(p) and
                     os.path.getsize(p), timeout=60, what='dd')
        with open(path) as f:
            spans.append([float(v) for v in f.read().split()])
    return spans


with cloud.LabCloud(config, serve=False) as lab_cloud:
    run = lab_cloud.run
    host = lab_cloud.lab_host('disk-host')
    state = {'state_dir': run.state_dir, 'directory': host.directory,
             'images': hostdisk.image_dir(run.prefix, run.name),
             'device': host.disk_device,
             'source': dict(hostdisk.mounts()).get(host.directory),
             'status_disk': host.status()['disk'],
             'reaper': run.reaper_pid}
    if KILL:
        lab.boot(lab_cloud, 'writer', 'disk-host', lab.user_data(
            '#!/bin/sh\nsleep 600 &\n'))
        print(json.dumps(state), flush=True)
        time.sleep(600)
    alone = lab.boot(lab_cloud, 'alone', 'disk-host', lab.user_data(WRITE))
    go(host, [alone])
    state['alone'] = timed(lab_cloud, host, [alone])
    state['alone_figures'] = host.instance_figures(alone['id'])
    lab.delete(lab_cloud, alone)
    pair = [lab.create(lab_cloud, 'pair-%d' % i, 'disk-host',
                       lab.user_data(WRITE)) for i in range(2)]
    pair = [lab.wait_active(lab_cloud, s) for s in pair]
    go(host, pair)
    state['pair'] = timed(lab_cloud, host, pair)
    state['host_figures'] = host.figures()
    lab.delete(lab_cloud, *pair)
print(json.dumps(state), flush=True)
'''


def _scenario(kill=False):
    env = dict(os.environ, PYTHONPATH=lab.REPO,
               OS_NOVA_DISABLE_EVENTLET_PATCHING='True')
    return subprocess.Popen(
        [sys.executable, '-c', SCENARIO, str(IOPS), str(WRITES),
         '1' if kill else '0'], cwd=lab.REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _released(state):
    below = [m for m, _s in hostdisk.mounts()
             if m.startswith(state['state_dir'])]
    return not below and not os.path.exists(state['images'])


def test_host_disk_is_one_io_budget_and_is_released():
    lab.require_lab()
    child = _scenario()
    out, _err = child.communicate(timeout=300)
    assert child.returncode == 0, out
    state = json.loads(out.strip().splitlines()[-1])
    assert state['source'].startswith('/dev/loop')
    assert state['device'].startswith('7:')
    assert state['status_disk']['size_mb'] == 128
    assert state['status_disk']['throttles'] == {'read_iops': IOPS,
                                                 'write_iops': IOPS}

    (start, end), = state['alone']
    alone = end - start
    pair = [e - s for s, e in state['pair']]
    both = max(e for _s, e in state['pair']) - min(
        s for s, _e in state['pair'])
    print('%d direct 4 KiB writes at %d IOPS: alone %.2f s; two at once '
          '%.2f and %.2f s (%.2f s for both)' % (WRITES, IOPS, alone, *pair,
                                                 both))
    # The throttle holds for one instance...
    assert alone >= 0.7 * WRITES / IOPS
    # ...and for the host: two instances, writing at the same time,
    # share the budget.
    assert max(s for s, _e in state['pair']) < min(e for _s, e in
                                                    state['pair'])
    assert both >= 0.7 * 2 * WRITES / IOPS
    assert sum(pair) / len(pair) >= 1.3 * alone
    # The host's blkio group counts its instances' I/O; an instance's own
    # I/O figures are unknown (it joins the host's group).
    assert state['host_figures']['io_write_ops'] >= 3 * WRITES
    assert state['alone_figures']['io_write_ops'] is None
    assert _released(state)


def test_sigkill_releases_the_host_disk():
    lab.require_lab()
    child = _scenario(kill=True)
    try:
        line = child.stdout.readline()
        assert line, 'the lab process died before it was ready'
        state = json.loads(line)
        assert dict(hostdisk.mounts()).get(state['directory'], '') \
            .startswith('/dev/loop')
        assert os.path.exists(state['images'])
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    lab.wait_for(lambda: not lab.pid_alive(state['reaper']), timeout=20,
                 what='reaper done')
    assert _released(state)
    assert not os.path.exists(state['state_dir'])
