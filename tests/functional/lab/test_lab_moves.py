"""LabDriver behind real Nova when a server moves or sleeps: live and cold
migration, resize revert, suspend and resume, soft delete and restore,
and a hostname longer than
a kernel hostname. A guest runs on one host at a time, no process of it
outlives its server, and what the driver says of its power matches what
its processes do.
"""

import pytest

from tests import lab_support as lab

pytestmark = [pytest.mark.nova]

BACKGROUND = lab.user_data('#!/bin/sh\nsleep 300 &\n')
SOURCE, DEST = 'lab-fast', 'lab-spare'


@pytest.fixture(scope='module')
def servers(lab_cloud):
    """One server per test, booted all at once on ``SOURCE``."""
    created = {name: lab.create(lab_cloud, name, SOURCE, BACKGROUND)
               for name in ('live', 'cold', 'revert', 'suspend', 'soft')}
    yield {name: lab.wait_active(lab_cloud, server)
           for name, server in created.items()}
    left = {s['id'] for s in lab_cloud.api.get_servers()}
    lab.delete(lab_cloud, *[s for s in created.values() if s['id'] in left])


def _running(cloud, host, server, count=3):
    """The server's lab instance on ``host`` once ``count`` processes run
    in its cgroup."""
    instance = cloud.lab_host(host).get(server['id'])
    assert instance is not None, 'no lab instance on %s' % host
    lab.wait_for(lambda: len(instance.sandbox.group.pids()) >= count,
                 what='processes of %s on %s' % (server['id'], host))
    return instance


def _settled(cloud, server, status):
    return lab.wait_for(
        lambda: (lambda s: s if s['status'] == status and
                 s['OS-EXT-STS:task_state'] is None else None)(
            cloud.api.get_server(server['id'])),
        what='server %s %s' % (server['id'], status))


def _gone(instance):
    return not instance.sandbox.alive() and not [
        p for p in instance.sandbox.group.pids() if lab.pid_alive(p)]


def test_live_migration_leaves_no_guest_on_the_source(lab_cloud, servers):
    server = servers['live']
    try:
        source = _running(lab_cloud, SOURCE, server)
        pids = source.sandbox.group.pids()
        lab_cloud.api.post_server_action(server['id'], {'os-migrateLive': {
            'host': DEST, 'block_migration': 'auto'}})
        lab.wait_for(
            lambda: (lambda s: s['OS-EXT-SRV-ATTR:host'] == DEST and
                     s['OS-EXT-STS:task_state'] is None)(
                lab_cloud.api.get_server(server['id'])), what='migrated')
        dest = _running(lab_cloud, DEST, server)
        assert lab_cloud.lab_host(SOURCE).get(server['id']) is None
        assert not [p for p in pids if lab.pid_alive(p)]
        assert not source.sandbox.group.exists()
    finally:
        lab.delete(lab_cloud, server)
    assert _gone(dest)


def test_cold_migration_powers_the_source_off_and_confirm_removes_it(
        lab_cloud, servers):
    server = servers['cold']
    try:
        source = _running(lab_cloud, SOURCE, server)
        lab_cloud.api.post_server_action(server['id'],
                                         {'migrate': {'host': DEST}})
        _settled(lab_cloud, server, 'VERIFY_RESIZE')
        _running(lab_cloud, DEST, server)
        # As a hypervisor's migrate_disk_and_power_off: the source guest
        # is off (its files kept for a revert), not running beside the
        # destination's.
        assert _gone(source)
        assert lab_cloud.lab_host(SOURCE).get(server['id']) is source
        lab_cloud.api.post_server_action(server['id'],
                                         {'confirmResize': None})
        _settled(lab_cloud, server, 'ACTIVE')
        assert lab_cloud.lab_host(SOURCE).get(server['id']) is None
    finally:
        lab.delete(lab_cloud, server)


def test_resize_revert_boots_the_source_again_and_removes_the_dest(
        lab_cloud, servers):
    server = servers['revert']
    try:
        source = _running(lab_cloud, SOURCE, server)
        lab_cloud.api.post_server_action(server['id'],
                                         {'migrate': {'host': DEST}})
        _settled(lab_cloud, server, 'VERIFY_RESIZE')
        dest = _running(lab_cloud, DEST, server)
        assert _gone(source)
        lab_cloud.api.post_server_action(server['id'],
                                         {'revertResize': None})
        reverted = _settled(lab_cloud, server, 'ACTIVE')
        assert reverted['OS-EXT-SRV-ATTR:host'] == SOURCE
        assert reverted['OS-EXT-STS:power_state'] == 1  # RUNNING
        assert _gone(dest)
        assert lab_cloud.lab_host(DEST).get(server['id']) is None
        assert _running(lab_cloud, SOURCE, server) is source
        assert source.sandbox.alive()
    finally:
        lab.delete(lab_cloud, server)
    assert _gone(source)


def test_suspend_freezes_the_guest_and_resume_thaws_it(lab_cloud, servers):
    server = servers['suspend']
    try:
        instance = _running(lab_cloud, SOURCE, server)
        group = instance.sandbox.group
        lab_cloud.api.post_server_action(server['id'], {'suspend': None})
        suspended = _settled(lab_cloud, server, 'SUSPENDED')
        assert group.read('freezer', 'freezer.state').strip() == 'FROZEN'
        assert suspended['OS-EXT-STS:power_state'] == 7  # SUSPENDED
        lab_cloud.api.post_server_action(server['id'], {'resume': None})
        resumed = _settled(lab_cloud, server, 'ACTIVE')
        assert group.read('freezer', 'freezer.state').strip() == 'THAWED'
        assert resumed['OS-EXT-STS:power_state'] == 1
        assert instance.sandbox.alive()
    finally:
        lab.delete(lab_cloud, server)


def test_soft_delete_powers_the_guest_off_and_restore_boots_it(
        lab_cloud, servers):
    server = servers['soft']
    instance = _running(lab_cloud, SOURCE, server)
    pids = instance.sandbox.group.pids()
    # Nova soft-deletes while reclaim_instance_interval is above 0.
    lab_cloud.flags(reclaim_instance_interval=3600)
    try:
        lab_cloud.api.delete_server(server['id'])
        deleted = _settled(lab_cloud, server, 'SOFT_DELETED')
    finally:
        lab_cloud.flags(reclaim_instance_interval=0)
    assert not [p for p in pids if lab.pid_alive(p)]
    assert not instance.sandbox.alive()
    assert deleted['OS-EXT-STS:power_state'] == 4  # SHUTDOWN
    lab_cloud.api.post_server_action(server['id'], {'restore': None})
    restored = _settled(lab_cloud, server, 'ACTIVE')
    assert restored['OS-EXT-STS:power_state'] == 1
    assert _running(lab_cloud, SOURCE, server) is instance


def test_a_fully_qualified_hostname_longer_than_a_kernel_one_boots(
        lab_cloud):
    # Nova 2.94 takes FQDNs up to 255 characters; the kernel's hostname
    # holds 64.
    fqdn = 'a' * 60 + '.lab.example.org'
    body = {'server': {'name': 'fqdn', 'imageRef': lab_cloud.image_id,
                       'flavorRef': '1', 'networks': 'none',
                       'hostname': fqdn,
                       'availability_zone': 'nova:%s' % SOURCE,
                       'user_data': lab.user_data(
                           '#!/bin/sh\nhostname > /dev/console\n'
                           'cat /etc/hosts > /dev/console\n')}}
    lab_cloud.api.microversion = '2.94'
    try:
        server = lab_cloud.api.post_server(body)
    finally:
        lab_cloud.api.microversion = 'latest'
    try:
        lab.wait_active(lab_cloud, server)
        output = lab.wait_for(
            lambda: (lambda t: t if 'boot finished' in t else None)(
                lab.console(lab_cloud, server)), what='boot finished')
        assert '\n%s\n' % ('a' * 60) in output
        assert fqdn in output
    finally:
        lab.delete(lab_cloud, server)
