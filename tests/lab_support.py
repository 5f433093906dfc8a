"""Helpers for the lab's tests: a lab config, booting, waiting, user-data.

``require_lab`` skips, saying why, only where the lab cannot work on the
machine (no root, no cgroup v1 controllers); a missing ``bwrap`` fails
when ``NOVA_SHADOW_REQUIRE_SERVICES`` is set (``tools/install-services.sh``
installs it).
"""

import base64
import gzip
import os
import time

import pytest

from nova_shadow_lab import runtime

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1024 * 1024
LAB_CONFIG = {
    'defaults': {
        'resources': {'vcpus': 4, 'memory_mb': 8192, 'disk_gb': 100},
        'share': {'memory_mb': 1024, 'pids_max': 256},
    },
    'hosts': [
        {'name': 'lab-slow', 'share': {'cpu': 0.1}},
        {'name': 'lab-fast', 'share': {'cpu': 0.3}},
        {'name': 'lab-noisy', 'share': {'cpu': 0.2},
         'tenants': [{'kind': 'cpu', 'name': 'burner', 'intensity': 0.5}]},
        {'name': 'lab-spare',
         'share': {'cpu': 0.2, 'blkio': {'write_bps': 4 * MIB}},
         'tenants': [{'kind': 'bursty', 'intensity': 0.3, 'every_s': 2,
                      'length_s': 0.5}]},
    ],
}


PREFERRED_HOST = 'lab-noisy'
WEIGHERS = ['nova.scheduler.weights.ram.RAMWeigher',
            'tests.lab_support.PreferredHostWeigher']
EXTRA_FLAGS = {'DEFAULT': {'reserved_host_memory_mb': 256}}


def _host_weigher_base():
    from nova.scheduler import weights
    return weights.BaseHostWeigher


class PreferredHostWeigher(_host_weigher_base()):
    """A caller-supplied weigher: Nova picks ``PREFERRED_HOST`` when free
    to choose (stands for the ShadowWeigher in the lab's tests)."""

    def weight_multiplier(self, host_state):
        return 1000.0

    def _weigh_object(self, host_state, weight_properties):
        return 1.0 if host_state.host == PREFERRED_HOST else 0.0


def require_lab():
    """Skip (or fail when services are required) if the lab cannot run."""
    problems = runtime.environment_problems()
    if not problems:
        return
    installable = [p for p in problems if 'bubblewrap' in p]
    if installable and os.environ.get('NOVA_SHADOW_REQUIRE_SERVICES'):
        pytest.fail('; '.join(installable))
    pytest.skip('the lab cannot run here: %s' % '; '.join(problems))


def user_data(text, compress=False):
    """Base64 user-data as Nova wants it, optionally gzipped inside."""
    data = text.encode('utf-8') if isinstance(text, str) else text
    if compress:
        data = gzip.compress(data)
    return base64.b64encode(data).decode('ascii')


# User-data that records each run in /opt/boots and leaves a process up.
COUNT_BOOTS = user_data('#!/bin/sh\necho boot >> /opt/boots\nsleep 300 &\n')


def boots(instance):
    """What ``COUNT_BOOTS`` recorded in the instance's root: one
    ``boot`` line per run of its user-data."""
    path = os.path.join(instance.sandbox.root, 'opt/boots')
    # Not only there: the shell creates it before it writes the line.
    wait_for(lambda: os.path.exists(path) and os.path.getsize(path),
             what='/opt/boots')
    with open(path, 'rb') as f:
        return f.read()


def wait_for(predicate, timeout=20.0, interval=0.05, what='condition'):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('timed out after %.0f s waiting for %s'
                                 % (timeout, what))
        time.sleep(interval)


def create(lab, name, host, data=None, flavor='1'):
    """POST a server, pinned to ``host`` (``nova:<host>``) unless None;
    do not wait."""
    body = {'server': {'name': name, 'imageRef': lab.image_id,
                       'flavorRef': flavor, 'networks': 'none'}}
    if host is not None:
        body['server']['availability_zone'] = 'nova:%s' % host
    if data is not None:
        body['server']['user_data'] = data
    return lab.api.post_server(body)


def wait_active(lab, server):
    def ready():
        current = lab.api.get_server(server['id'])
        if current['status'] == 'ERROR':
            raise AssertionError('server %s failed: %s'
                                 % (server['id'], current.get('fault')))
        return current if current['status'] == 'ACTIVE' else None
    return wait_for(ready, what='server %s ACTIVE' % server['id'])


def boot(lab, name, host, data=None, flavor='1'):
    """Boot a server pinned to ``host``; return it once ACTIVE."""
    return wait_active(lab, create(lab, name, host, data, flavor))


def delete(lab, *servers):
    """Delete servers (all requests first) and wait until they are gone."""
    for server in servers:
        lab.api.delete_server(server['id'])
    ids = {server['id'] for server in servers}
    wait_for(lambda: not ids & {s['id'] for s in lab.api.get_servers()},
             what='servers %s deleted' % sorted(ids))


def console(lab, server):
    return lab.api.post_server_action(
        server['id'], {'os-getConsoleOutput': {'length': None}})['output']


def pid_alive(pid):
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rpartition(')')[2].split()[0] != 'Z'
    except OSError:
        return False
