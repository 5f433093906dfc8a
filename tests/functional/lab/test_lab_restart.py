"""LabDriver behind real Nova when a host's compute restarts: the host
comes back empty, the driver says its servers are off (not missing), so
Nova's power-state sync stops them and a start or hard reboot boots them
afresh, and every other action takes them as stopped guests; with
``resume_guests_state_on_host_boot`` the servers that ran boot again at
once. A spawn that the stop cuts short fails cleanly. And a dead guest
is reported dead, paused or not.
"""

import logging
import os
import signal
import threading

import pytest

from nova_shadow_lab import cloud
from nova_shadow_lab import driver as lab_driver
from nova_shadow_lab import userdata
from tests import lab_support as lab

pytestmark = [pytest.mark.nova]

HOST = 'lab-fast'
COUNT_BOOTS = lab.COUNT_BOOTS
# nova.compute.power_state
RUNNING, PAUSED, SHUTDOWN, CRASHED = 1, 3, 4, 6


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def _running(cloud_, server, count=3, host=HOST):
    """The server's lab instance on ``host`` once ``count`` processes run
    in its cgroup."""
    instance = cloud_.lab_host(host).get(server['id'])
    assert instance is not None, 'no lab instance on %s' % host
    lab.wait_for(lambda: len(instance.sandbox.group.pids()) >= count,
                 what='processes of %s' % server['id'])
    return instance


def _settled(cloud_, server, status):
    return lab.wait_for(
        lambda: (lambda s: s if s['status'] in (status, 'ERROR') and
                 s['OS-EXT-STS:task_state'] is None else None)(
            cloud_.api.get_server(server['id'])),
        what='server %s %s' % (server['id'], status))


# Where the server that is resized away from HOST goes (a host no other
# test of this file restarts).
RESIZE_DEST = 'lab-slow'
# Servers on HOST as its compute stops, one per test, and the action
# that put each one in the state the test starts from (None: running).
BEFORE_RESTART = {
    'seen-off': None,
    'to-reboot': None,
    'to-start': None,
    'lost': None,
    'to-revert': ('migrate', {'host': RESIZE_DEST}, 'VERIFY_RESIZE'),
    # Resized on HOST itself (to BIGGER).
    'to-revert-here': ('resize', None, 'VERIFY_RESIZE'),
    'to-restore': ('delete', None, 'SOFT_DELETED'),
    'to-resume': ('suspend', None, 'SUSPENDED'),
    'to-unrescue': ('rescue', {}, 'RESCUE'),
}


def _settle_before_restart(cloud_, servers, bigger):
    """Each server of ``BEFORE_RESTART`` put in its state (all the
    actions first, then the waits); a resize is to flavor ``bigger``,
    and Nova keeps it on ``HOST``."""
    actions = {name: step for name, step in BEFORE_RESTART.items() if step}
    cloud_.flags(reclaim_instance_interval=3600)  # a delete soft-deletes
    cloud_.flags(allow_resize_to_same_host=True)
    try:
        with pytest.MonkeyPatch.context() as patch:
            # The test weigher's preferred host: where a resize stays.
            patch.setattr(lab, 'PREFERRED_HOST', HOST)
            for name, (action, body, _status) in actions.items():
                if action == 'delete':
                    cloud_.api.delete_server(servers[name]['id'])
                    continue
                if action == 'resize':
                    body = {'flavorRef': bigger['id']}
                cloud_.api.post_server_action(servers[name]['id'],
                                              {action: body})
            for name, (_action, _body, status) in actions.items():
                current = _settled(cloud_, servers[name], status)
                assert current['status'] == status, current.get('fault')
        here = cloud_.api.get_server(servers['to-revert-here']['id'])
        assert here['OS-EXT-SRV-ATTR:host'] == HOST
    finally:
        cloud_.flags(reclaim_instance_interval=0)
        cloud_.flags(allow_resize_to_same_host=False)


@pytest.fixture(scope='module')
def restarted(lab_cloud):
    """Servers on ``HOST``, each running (its user-data ran once) and
    then put in the state of ``BEFORE_RESTART``; then the compute of
    ``HOST`` stopped while one more spawns and started again, before
    Nova's power-state sync runs (what ``start_compute`` runs is recorded
    instead; a test syncs its own server, see :func:`_sync`)."""
    created = {name: lab.create(lab_cloud, name, HOST, COUNT_BOOTS)
               for name in BEFORE_RESTART}
    bigger = lab_cloud.api.post_flavor({'flavor': {
        'name': 'restart-bigger', 'vcpus': 1, 'ram': 768, 'disk': 1}})
    servers = {name: lab.wait_active(lab_cloud, server)
               for name, server in created.items()}
    for server in servers.values():
        lab.boots(_running(lab_cloud, server))
    _settle_before_restart(lab_cloud, servers, bigger)

    driver = lab_cloud.computes[HOST].manager.driver
    entered = threading.Event()
    spawned = {}
    synced = []
    records = _Records()
    build_plan = userdata.build_plan
    spawn = lab_driver.LabDriver.spawn

    def held_build_plan(user_data):
        # The spawn goes on once the compute's stop has begun.
        entered.set()
        lab.wait_for(lambda: driver.lab_host is None, what='compute stop')
        return build_plan(user_data)

    def recorded_spawn(self, context, instance, *args, **kwargs):
        try:
            return spawn(self, context, instance, *args, **kwargs)
        except BaseException as exc:
            spawned[instance.uuid] = exc
            raise

    logger = logging.getLogger('nova_shadow_lab')
    logger.addHandler(records)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(userdata, 'build_plan', held_build_plan)
        patch.setattr(lab_driver.LabDriver, 'spawn', recorded_spawn)
        patch.setattr(cloud.LabCloud, '_sync_power_states',
                      staticmethod(synced.append))
        try:
            cut = lab.create(lab_cloud, 'cut-short', HOST, COUNT_BOOTS)
            servers['cut-short'] = cut
            assert entered.wait(20), 'the spawn did not begin'
            lab_cloud.stop_compute(HOST)
            lab.wait_for(lambda: cut['id'] in spawned, what='spawn ended')
        finally:
            logger.removeHandler(records)
            if HOST not in lab_cloud.computes:
                lab_cloud.start_compute(HOST)
    yield {'servers': servers, 'spawned': spawned, 'records': records,
           'synced': synced}
    from nova.tests.functional.api import client

    left = []
    for server in servers.values():
        try:
            lab_cloud.api.get_server(server['id'])
        except client.OpenStackApiNotFoundException:
            pass  # deleted by its test
        else:
            # Listed or not: a soft-deleted server is not.
            left.append(server)
    lab.delete(lab_cloud, *left)
    lab_cloud.api.delete_flavor(bigger['id'])


def _sync(cloud_, server):
    """Nova's power-state sync of this one server (what a compute runs
    for each of its servers soon after it starts), so that a test sees
    the state a real compute would leave and no other test's server is
    touched."""
    from nova import context
    from nova import objects

    ctxt = context.get_admin_context()
    instance = objects.Instance.get_by_uuid(ctxt, server['id'])
    # By the compute of the server's host (a resized server's is its
    # destination's until the resize is confirmed or reverted).
    manager = cloud_.computes[instance.host].manager
    manager._query_driver_power_state_and_sync(ctxt, instance)


def test_a_spawn_cut_short_by_a_compute_stop_fails_cleanly(restarted):
    uuid = restarted['servers']['cut-short']['id']
    failure = restarted['spawned'][uuid]
    assert type(failure).__name__ == 'InstanceDeployFailure'
    assert 'lab host %s stopped during the spawn' % HOST in str(failure)
    # A warning, no traceback.
    lab_records = [r for r in restarted['records'].records
                   if r.name.startswith('nova_shadow_lab')]
    assert not [r for r in lab_records if r.exc_info], \
        [r.getMessage() for r in lab_records if r.exc_info]
    assert any('stopped during the spawn' in r.getMessage()
               for r in lab_records)


def test_a_restarted_host_reports_its_servers_off(lab_cloud, restarted):
    from nova import context
    from nova import objects

    service = lab_cloud.computes[HOST]
    assert restarted['synced'] == [service]
    ctxt = context.get_admin_context()
    instance = objects.Instance.get_by_uuid(
        ctxt, restarted['servers']['seen-off']['id'])
    assert lab_cloud.lab_host(HOST).get(instance.uuid) is None
    assert service.manager.driver.get_info(instance).state == SHUTDOWN


def _outcome(cloud_, server, action, body=None):
    """POST ``action``; once Nova is done with it, the server's status
    and power state (or the API's refusal)."""
    try:
        cloud_.api.post_server_action(server['id'], {action: body})
    except Exception as exc:
        return type(exc).__name__
    current = lab.wait_for(
        lambda: (lambda s: s if s['OS-EXT-STS:task_state'] is None
                 else None)(cloud_.api.get_server(server['id'])),
        what='%s of %s done' % (action, server['id']))
    return current['status'], current['OS-EXT-STS:power_state']


def _reverts(records, server):
    """How many task-state reverts of ``server`` Nova's compute logged."""
    return sum(1 for r in records.records
               if r.getMessage().startswith('Successfully reverted task '
                                            'state') and
               getattr(getattr(r, 'instance', None), 'uuid', None) ==
               server['id'])


def _refused(cloud_, server, action, records):
    """:func:`_outcome` of an action the compute refuses, once Nova is
    done with it: its task state is cleared a second time after the
    server is seen settled, which would clear the next action's."""
    before = _reverts(records, server)
    outcome = _outcome(cloud_, server, action)
    if outcome == ('ACTIVE', RUNNING):
        # Nova does not always clear it a second time (under load the
        # revert was not logged within 90 s): wait a while for it, and
        # :func:`_stopped` takes a stop the late revert undid.
        try:
            lab.wait_for(lambda: _reverts(records, server) > before,
                         timeout=15.0,
                         what='task state of %s reverted' % server['id'])
        except AssertionError:
            pass
    return outcome


def _stopped(cloud_, server):
    """:func:`_outcome` of ``os-stop``, asked again once if a late
    task-state revert of the refused action before it undid it (Nova
    then logs the stop as preempted and the server runs on)."""
    outcome = _outcome(cloud_, server, 'os-stop')
    if outcome == ('ACTIVE', RUNNING):
        outcome = _outcome(cloud_, server, 'os-stop')
    return outcome


def _console(cloud_, server):
    try:
        return 'boot finished' in lab.console(cloud_, server)
    except Exception as exc:
        return type(exc).__name__


def test_every_action_takes_a_server_whose_host_restarted_as_a_stopped_one(
        lab_cloud, restarted):
    lost = restarted['servers']['lost']
    # Its twin: a guest that is off while Nova still says it runs, as the
    # lost one's (its compute did not restart).
    twin = lab.boot(lab_cloud, 'off-twin', HOST, COUNT_BOOTS)
    records = _Records()
    manager_log = logging.getLogger('nova.compute.manager')
    level = manager_log.level
    manager_log.setLevel(logging.INFO)  # the reverts are INFO
    manager_log.addHandler(records)
    try:
        _running(lab_cloud, twin)
        lab.wait_for(lambda: _console(lab_cloud, twin) is True,
                     what='the twin booted')
        lab_cloud.lab_host(HOST).power_off(twin['id'])
        steps = [
            ('console', _console, True),
            # A guest that is off cannot pause or suspend: refused, the
            # server left as it was (not in ERROR).
            ('pause', lambda c, s: _refused(c, s, 'pause', records),
             ('ACTIVE', RUNNING)),
            ('suspend', lambda c, s: _refused(c, s, 'suspend', records),
             ('ACTIVE', RUNNING)),
            ('stop', _stopped,
             ('SHUTOFF', SHUTDOWN)),
            # A snapshot of the stopped guest, then the offload.
            ('shelve', lambda c, s: _outcome(c, s, 'shelve'),
             ('SHELVED_OFFLOADED', SHUTDOWN)),
        ]
        seen = {'lost': [], 'twin': []}
        for step, act, _expected in steps:
            for name, server in (('lost', lost), ('twin', twin)):
                seen[name].append((step, act(lab_cloud, server)))
        expected = [(step, result) for step, _act, result in steps]
        assert seen == {'lost': expected, 'twin': expected}
        # Nothing of either runs on the host any more.
        for server in (lost, twin):
            assert lab_cloud.lab_host(HOST).get(server['id']) is None
    finally:
        manager_log.removeHandler(records)
        manager_log.setLevel(level)
        lab.delete(lab_cloud, twin)


def test_hard_reboot_of_a_server_whose_host_restarted_boots_it_afresh(
        lab_cloud, restarted):
    server = restarted['servers']['to-reboot']
    # Nova has not seen it off yet: ACTIVE and RUNNING, nothing runs.
    current = lab_cloud.api.get_server(server['id'])
    assert (current['status'], current['OS-EXT-STS:power_state']) == \
        ('ACTIVE', RUNNING)

    lab_cloud.api.post_server_action(server['id'],
                                     {'reboot': {'type': 'HARD'}})
    current = _settled(lab_cloud, server, 'ACTIVE')
    assert (current['status'], current['OS-EXT-STS:power_state']) == \
        ('ACTIVE', RUNNING), current.get('fault')
    instance = _running(lab_cloud, server)
    # A fresh root: the user-data ran again.
    assert lab.boots(instance) == b'boot\n'


def test_the_power_state_sync_stops_them_and_a_start_boots_afresh(
        lab_cloud, restarted):
    server = restarted['servers']['to-start']
    _sync(lab_cloud, server)
    current = _settled(lab_cloud, server, 'SHUTOFF')
    assert (current['status'], current['OS-EXT-STS:power_state']) == \
        ('SHUTOFF', SHUTDOWN)

    lab_cloud.api.post_server_action(server['id'], {'os-start': None})
    current = _settled(lab_cloud, server, 'ACTIVE')
    assert (current['status'], current['OS-EXT-STS:power_state']) == \
        ('ACTIVE', RUNNING), current.get('fault')
    assert lab.boots(_running(lab_cloud, server)) == b'boot\n'


def _boots_afresh(cloud_, server, action, body=None):
    """After Nova's sync of ``server`` (off, its host having restarted),
    ``action``: the server is ACTIVE and RUNNING and its guest runs on
    ``HOST`` from a new root (its user-data ran once, again)."""
    _sync(cloud_, server)
    assert cloud_.lab_host(HOST).get(server['id']) is None
    cloud_.api.post_server_action(server['id'], {action: body})
    current = _settled(cloud_, server, 'ACTIVE')
    assert (current['status'], current['OS-EXT-STS:power_state']) == \
        ('ACTIVE', RUNNING), current.get('fault')
    assert current['OS-EXT-SRV-ATTR:host'] == HOST
    instance = _running(cloud_, server)
    assert instance.powered_on and instance.rescue is None
    assert lab.boots(instance) == b'boot\n'
    return instance


def test_a_resize_revert_after_the_source_restarted_boots_it_there_afresh(
        lab_cloud, restarted):
    server = restarted['servers']['to-revert']
    _boots_afresh(lab_cloud, server, 'revertResize')
    # The destination's guest is gone.
    assert lab_cloud.lab_host(RESIZE_DEST).get(server['id']) is None


def test_a_revert_of_a_resize_on_its_own_host_after_a_restart_boots_afresh(
        lab_cloud, restarted):
    server = restarted['servers']['to-revert-here']
    _sync(lab_cloud, server)
    lab_cloud.api.post_server_action(server['id'], {'revertResize': None})
    reverted = _settled(lab_cloud, server, 'ACTIVE')
    assert reverted['status'] == 'ACTIVE', reverted.get('fault')
    assert reverted['flavor']['original_name'] == 'm1.tiny'
    # Nova keeps the power state its sync recorded (it does not read it
    # after a revert) although the guest runs: until the next sync.
    assert reverted['OS-EXT-STS:power_state'] == SHUTDOWN
    instance = _running(lab_cloud, server)
    # Booted afresh (a new root) with the old flavor's memory.
    assert lab.boots(instance) == b'boot\n'
    assert int(instance.sandbox.group.read(
        'memory', 'memory.limit_in_bytes')) == 512 * lab.MIB
    _sync(lab_cloud, server)
    synced = lab_cloud.api.get_server(server['id'])
    assert (synced['status'], synced['OS-EXT-STS:power_state']) == \
        ('ACTIVE', RUNNING)


def test_a_restore_after_a_restart_boots_the_soft_deleted_server_afresh(
        lab_cloud, restarted):
    _boots_afresh(lab_cloud, restarted['servers']['to-restore'], 'restore')


def test_a_resume_after_a_restart_boots_the_suspended_server_afresh(
        lab_cloud, restarted):
    instance = _boots_afresh(lab_cloud, restarted['servers']['to-resume'],
                             'resume')
    assert not instance.paused and not instance.suspended
    assert instance.sandbox.group.read(
        'freezer', 'freezer.state').strip() == 'THAWED'


def test_an_unrescue_after_a_restart_boots_the_guest_afresh(
        lab_cloud, restarted):
    server = restarted['servers']['to-unrescue']
    _boots_afresh(lab_cloud, server, 'unrescue')
    # Its console is the guest's, not a rescue system's.
    output = lab.wait_for(
        lambda: (lambda t: t if 'boot finished' in t else None)(
            lab.console(lab_cloud, server)), what='the guest booted')
    assert 'user-data: none' not in output


def test_a_paused_instance_whose_guest_died_is_reported_crashed(lab_cloud):
    server = lab.boot(lab_cloud, 'dies', HOST, COUNT_BOOTS)
    try:
        instance = _running(lab_cloud, server)
        # The guest dies; it is paused before Nova sees it (a frozen
        # task cannot die: only one dead before the freeze can be).
        for pid in instance.sandbox.group.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        lab.wait_for(lambda: not instance.sandbox.alive(), what='death')
        lab_cloud.api.post_server_action(server['id'], {'pause': None})
        current = _settled(lab_cloud, server, 'PAUSED')
        assert current['status'] == 'PAUSED'
        assert current['OS-EXT-STS:power_state'] == CRASHED
    finally:
        lab.delete(lab_cloud, server)


def test_with_resume_guests_state_on_host_boot_servers_that_ran_boot_again(
        lab_cloud):
    host = 'lab-spare'
    created = {name: lab.create(lab_cloud, name, host, COUNT_BOOTS)
               for name in ('ran', 'was-off')}
    servers = {name: lab.wait_active(lab_cloud, server)
               for name, server in created.items()}
    try:
        before = {name: _running(lab_cloud, server, host=host)
                  for name, server in servers.items()}
        lab_cloud.api.post_server_action(servers['was-off']['id'],
                                         {'os-stop': None})
        _settled(lab_cloud, servers['was-off'], 'SHUTOFF')
        lab_cloud.flags(resume_guests_state_on_host_boot=True)
        try:
            lab_cloud.stop_compute(host)
            lab_cloud.start_compute(host)
        finally:
            lab_cloud.flags(resume_guests_state_on_host_boot=False)
        ran = lab_cloud.api.get_server(servers['ran']['id'])
        assert (ran['status'], ran['OS-EXT-STS:power_state']) == \
            ('ACTIVE', RUNNING), ran.get('fault')
        instance = _running(lab_cloud, servers['ran'], host=host)
        assert instance is not before['ran']
        # A new root: its user-data ran again, once.
        assert lab.boots(instance) == b'boot\n'
        # The server that was off stays off.
        was_off = lab_cloud.api.get_server(servers['was-off']['id'])
        assert was_off['status'] == 'SHUTOFF'
        assert lab_cloud.lab_host(host).get(was_off['id']) is None
    finally:
        lab.delete(lab_cloud, *servers.values())

