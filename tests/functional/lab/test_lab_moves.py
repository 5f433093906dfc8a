"""LabDriver behind real Nova when a server moves or sleeps: live and cold
migration, resize revert, a resize on the server's own host, suspend and
resume, soft delete and restore, rescue, and a hostname longer than
a kernel hostname. A guest runs on one host at a time, no process of it
outlives its server, and what the driver says of its power matches what
its processes do.
"""

import pytest

from tests import lab_support as lab

pytestmark = [pytest.mark.nova]

BACKGROUND = lab.user_data('#!/bin/sh\nsleep 300 &\n')
SOURCE, DEST = 'lab-fast', 'lab-spare'
# Where the scheduler puts a server free to go anywhere (a resize).
SAME_HOST = lab.PREFERRED_HOST


@pytest.fixture(scope='module')
def servers(lab_cloud):
    """One server per test, booted all at once on ``SOURCE``."""
    created = {name: lab.create(lab_cloud, name, SOURCE, BACKGROUND)
               for name in ('live', 'cold', 'revert', 'suspend', 'soft',
                            'to-itself')}
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


def _limits(instance):
    """The guest's cgroup's cpu.shares and memory limit (MiB)."""
    group = instance.sandbox.group
    return (int(group.read('cpu', 'cpu.shares')),
            int(group.read('memory', 'memory.limit_in_bytes')) // lab.MIB)


def _inits(instance):
    """Pids of the lab init (a guest's first process) in its cgroup."""
    found = []
    for pid in instance.sandbox.group.pids():
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                argv = f.read().split(b'\0')
        except OSError:
            continue
        if argv[:2] == [b'/usr/bin/python3', b'/.lab/init.py']:
            found.append(pid)
    return found


def _resized_once(cloud, server, pids):
    """The server's guest once it runs again, checked to be the only
    one: the processes before are gone, one init runs, and its user-data
    ran once (its root kept)."""
    instance = cloud.lab_host(SAME_HOST).get(server['id'])
    assert instance is not None, 'no lab instance on %s' % SAME_HOST
    lab.wait_for(lambda: _inits(instance), what='the guest booted again')
    assert instance.sandbox.alive()
    assert not [p for p in pids if lab.pid_alive(p)]
    assert len(_inits(instance)) == 1
    assert lab.boots(instance) == b'boot\n'
    return instance


def test_a_resize_on_its_own_host_boots_the_guest_once_with_the_new_flavor(
        lab_cloud):
    server = lab.boot(lab_cloud, 'same-host', SAME_HOST, lab.COUNT_BOOTS)
    lab_cloud.flags(allow_resize_to_same_host=True)
    try:
        instance = _running(lab_cloud, SAME_HOST, server)
        lab.boots(instance)
        pids = instance.sandbox.group.pids()
        # m1.tiny: 1 vCPU, 512 MB.
        assert _limits(instance) == (1024, 512)

        # To m1.small (1 vCPU, 2048 MB, the host's 1024 MB cap), reverted.
        lab_cloud.api.post_server_action(server['id'],
                                         {'resize': {'flavorRef': '2'}})
        resized = _settled(lab_cloud, server, 'VERIFY_RESIZE')
        assert resized['OS-EXT-SRV-ATTR:host'] == SAME_HOST
        assert resized['OS-EXT-STS:power_state'] == 1
        instance = _resized_once(lab_cloud, server, pids)
        assert _limits(instance) == (1024, 1024)
        pids = instance.sandbox.group.pids()
        lab_cloud.api.post_server_action(server['id'],
                                         {'revertResize': None})
        reverted = _settled(lab_cloud, server, 'ACTIVE')
        assert reverted['OS-EXT-STS:power_state'] == 1
        instance = _resized_once(lab_cloud, server, pids)
        assert _limits(instance) == (1024, 512)

        # To m1.medium (2 vCPUs, 4096 MB, capped at 1024), confirmed.
        pids = instance.sandbox.group.pids()
        lab_cloud.api.post_server_action(server['id'],
                                         {'resize': {'flavorRef': '3'}})
        _settled(lab_cloud, server, 'VERIFY_RESIZE')
        instance = _resized_once(lab_cloud, server, pids)
        assert _limits(instance) == (2048, 1024)
        pids = instance.sandbox.group.pids()
        lab_cloud.api.post_server_action(server['id'],
                                         {'confirmResize': None})
        confirmed = _settled(lab_cloud, server, 'ACTIVE')
        assert confirmed['OS-EXT-STS:power_state'] == 1
        assert lab_cloud.lab_host(SAME_HOST).get(server['id']) is instance
        assert instance.sandbox.group.pids() == pids
        assert _limits(instance) == (2048, 1024)
    finally:
        lab_cloud.flags(allow_resize_to_same_host=False)
        lab.delete(lab_cloud, server)
    assert _gone(instance)


def test_rescue_boots_a_rescue_system_beside_the_guests_files(lab_cloud):
    server = lab.boot(lab_cloud, 'rescued', SOURCE, lab.COUNT_BOOTS)
    try:
        instance = _running(lab_cloud, SOURCE, server)
        assert lab.boots(instance) == b'boot\n'
        pids = instance.sandbox.group.pids()
        lab_cloud.api.post_server_action(server['id'], {'rescue': {}})
        rescued = _settled(lab_cloud, server, 'RESCUE')
        assert rescued['OS-EXT-STS:power_state'] == 1
        # The guest is off; its rescue system runs in its cgroup, with
        # no user-data, and sees the guest's files at /mnt/guest.
        assert not [p for p in pids if lab.pid_alive(p)]
        rescue = instance.rescue
        assert rescue is not None and rescue.alive()
        output = lab.wait_for(
            lambda: (lambda t: t if 'boot finished' in t else None)(
                lab.console(lab_cloud, server)), what='rescue booted')
        assert 'user-data: none' in output
        inside = set()
        for pid in instance.sandbox.group.pids():
            try:
                with open('/proc/%d/root/mnt/guest/opt/boots' % pid,
                          'rb') as f:
                    inside.add(f.read())
            except OSError:
                pass  # bubblewrap's outer process: the machine's root
        assert inside == {b'boot\n'}

        lab_cloud.api.post_server_action(server['id'], {'unrescue': None})
        back = _settled(lab_cloud, server, 'ACTIVE')
        assert back['OS-EXT-STS:power_state'] == 1
        assert not rescue.alive()
        assert instance.rescue is None
        assert _running(lab_cloud, SOURCE, server) is instance
        # The guest's own root again: its user-data did not run again.
        assert lab.boots(instance) == b'boot\n'
    finally:
        lab.delete(lab_cloud, server)
    assert _gone(instance)


def test_a_cold_migration_to_its_own_host_is_refused(lab_cloud, servers):
    # What an operator sees: Nova's API refuses a migration naming the
    # server's host (whatever the driver or allow_resize_to_same_host).
    from nova.tests.functional.api import client

    server = servers['to-itself']
    lab_cloud.flags(allow_resize_to_same_host=True)
    try:
        with pytest.raises(client.OpenStackApiException) as refused:
            lab_cloud.api.post_server_action(
                server['id'], {'migrate': {'host': SOURCE}})
    finally:
        lab_cloud.flags(allow_resize_to_same_host=False)
    assert refused.value.response.status_code == 400
    assert 'Cannot migrate to the host where the server exists' in \
        refused.value.response.text
    current = lab_cloud.api.get_server(server['id'])
    assert (current['status'], current['OS-EXT-SRV-ATTR:host']) == \
        ('ACTIVE', SOURCE)


def _report_resources(cloud, host):
    """The compute's resource report (a real one's periodic task):
    the driver's capabilities reach Placement as traits."""
    from nova import context

    cloud.computes[host].manager.update_available_resource(
        context.get_admin_context())


def _same_host_cold_migrate_claimed(cloud, host, claimed):
    cloud.flags(same_host_cold_migrate=claimed, group='nova_shadow_lab')
    _report_resources(cloud, host)


def test_a_cold_migration_leaves_its_host_even_with_same_host_resizes(
        lab_cloud):
    # allow_resize_to_same_host is a resize's setting: a cold migration
    # asks the driver (same_host_cold_migrate, off by default).
    server = lab.boot(lab_cloud, 'leaves', SAME_HOST, BACKGROUND)
    lab_cloud.flags(allow_resize_to_same_host=True)
    try:
        # No host named, and the scheduler prefers SAME_HOST.
        lab_cloud.api.post_server_action(server['id'], {'migrate': None})
        migrated = _settled(lab_cloud, server, 'VERIFY_RESIZE')
        assert migrated['OS-EXT-SRV-ATTR:host'] != SAME_HOST
    finally:
        lab_cloud.flags(allow_resize_to_same_host=False)
        lab.delete(lab_cloud, server)


def test_with_same_host_cold_migrate_a_cold_migration_may_keep_its_host(
        lab_cloud):
    server = lab.boot(lab_cloud, 'to-itself', SAME_HOST, lab.COUNT_BOOTS)
    _same_host_cold_migrate_claimed(lab_cloud, SAME_HOST, True)
    try:
        instance = _running(lab_cloud, SAME_HOST, server)
        lab.boots(instance)
        pids = instance.sandbox.group.pids()
        # No host named: the scheduler may keep it (it prefers SAME_HOST).
        lab_cloud.api.post_server_action(server['id'], {'migrate': None})
        migrated = _settled(lab_cloud, server, 'VERIFY_RESIZE')
        assert migrated['OS-EXT-SRV-ATTR:host'] == SAME_HOST
        assert migrated['OS-EXT-STS:power_state'] == 1
        instance = _resized_once(lab_cloud, server, pids)
        assert _limits(instance) == (1024, 512)
        pids = instance.sandbox.group.pids()
        lab_cloud.api.post_server_action(server['id'],
                                         {'revertResize': None})
        reverted = _settled(lab_cloud, server, 'ACTIVE')
        assert reverted['OS-EXT-STS:power_state'] == 1
        # (A confirm leaves it running, as a resize's on its host.)
        instance = _resized_once(lab_cloud, server, pids)
        assert _limits(instance) == (1024, 512)
    finally:
        _same_host_cold_migrate_claimed(lab_cloud, SAME_HOST, False)
        lab.delete(lab_cloud, server)
    assert _gone(instance)
