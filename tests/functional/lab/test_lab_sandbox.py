"""A lab host's sandboxes without Nova: real cgroups, real bubblewrap,
driven through :class:`nova_shadow_lab.host.LabHost` as the driver drives
it. What an instance can reach of the machine, and what its user-data
does across a power-off and power-on.
"""

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests

from nova_shadow_lab import cgroups
from nova_shadow_lab import config as lab_config
from nova_shadow_lab import host as lab_host
from nova_shadow_lab import hostdisk
from nova_shadow_lab import http as lab_http
from nova_shadow_lab import runtime
from nova_shadow_lab import sandbox
from nova_shadow_lab import userdata
from tests import lab_support as lab

pytestmark = [pytest.mark.nova]


@pytest.fixture(scope='module')
def host(tmp_path_factory):
    lab.require_lab()
    config = lab_config.parse_config({
        'lab': {'cgroup_prefix': 'nova-shadow-lab-sandbox-test',
                'state_dir': str(tmp_path_factory.mktemp('lab-state'))},
        'hosts': [{'name': 'box', 'share': {'cpu': 0.3,
                                            'memory_mb': 512}}]})
    run = runtime.LabRun(config.lab).start()
    try:
        box = lab_host.LabHost(run, config.hosts[0], config.lab).start()
        try:
            yield box
        finally:
            box.stop()
    finally:
        run.stop()


def _start(host, script):
    plan = userdata.build_plan(
        base64.b64encode(script.encode('utf-8')).decode('ascii'))
    return host.start_instance(str(uuid.uuid4()), 'probe', 1, 256, plan)


def _console_line(instance, prefix, count=1):
    """The ``count``-th console line that starts with ``prefix``."""
    def found():
        lines = [line for line in instance.sandbox.console_output()
                 .splitlines() if line.startswith(prefix)]
        return lines[count - 1] if len(lines) >= count else None
    return lab.wait_for(found, what='%r on the console' % prefix)


# Machine-wide kernel settings an instance must not change: a core
# pattern runs its helper as root outside every namespace, the CFS
# bandwidth slice moves every host's CPU quota, swappiness and pid_max
# the whole machine's memory and processes.
SYSCTLS = ('kernel/core_pattern', 'kernel/sched_cfs_bandwidth_slice_us',
           'vm/swappiness', 'vm/drop_caches', 'kernel/pid_max')
PROBE_SYSCTLS = r'''#!/usr/bin/python3
import json, os
opened = {}
for name in %r:
    path = '/proc/sys/' + name
    try:
        # Opening for writing is the permission check; nothing is written.
        os.close(os.open(path, os.O_WRONLY))
        opened[name] = 'writable'
    except OSError as exc:
        opened[name] = exc.strerror
print('SYSCTLS ' + json.dumps(opened), flush=True)
''' % (SYSCTLS,)


def test_an_instance_cannot_change_the_machines_kernel_settings(host):
    instance = _start(host, PROBE_SYSCTLS)
    try:
        line = _console_line(instance, 'SYSCTLS ')
    finally:
        host.stop_instance(instance.uuid)
    opened = json.loads(line.split(' ', 1)[1])
    assert set(opened) == set(SYSCTLS)
    assert not [n for n, result in opened.items() if result == 'writable'], \
        opened


def test_user_data_that_is_still_running_does_not_run_again_after_power_on(
        host):
    # A shadow's runcmd runs its workload until the instance goes away.
    instance = _start(host, '#cloud-config\n' + json.dumps({
        'write_files': [{'path': '/root/log', 'content': 'file\n',
                         'append': True}],
        'runcmd': ['echo "RUNS $(wc -l < /root/log)"', 'sleep 600']}))
    try:
        assert _console_line(instance, 'RUNS ') == 'RUNS 1'
        host.power_off(instance.uuid)
        host.power_on(instance.uuid)
        output = lab.wait_for(
            lambda: (lambda text: text if 'already ran' in text or
                     text.count('RUNS ') > 1 else None)(
                instance.sandbox.console_output()), what='second boot')
        with open('%s/root/root/log' % instance.directory) as f:
            written = f.read()
    finally:
        host.stop_instance(instance.uuid)
    assert 'user-data already ran on this instance' in output
    assert output.count('RUNS ') == 1
    assert written == 'file\n'


def test_a_sandbox_that_cannot_join_its_cgroup_does_not_start(host,
                                                               tmp_path):
    # The shell that joins the cgroup fails: there is no such group.
    box = sandbox.Sandbox(host.run, host.group.child('never-created'),
                          str(tmp_path), hostname='probe',
                          command=['/bin/sleep', '300'])
    with pytest.raises(RuntimeError, match='cannot join cgroup') as caught:
        box.start()
    assert 'never-created' in str(caught.value)
    assert box.popen.poll() is not None
    assert not box.group.exists()


def test_a_sandbox_bubblewrap_cannot_set_up_does_not_start(host, tmp_path):
    group = host.group.child('bad-bind')
    group.create()
    box = sandbox.Sandbox(host.run, group, str(tmp_path), hostname='probe',
                          command=['/bin/sleep', '300'],
                          binds=[(str(tmp_path / 'missing'), '/.lab/x',
                                  False)])
    with pytest.raises(RuntimeError, match='bubblewrap') as caught:
        box.start()
    # bubblewrap's own reason, from the console.
    assert "Can't find source path" in str(caught.value)
    assert box.popen.poll() is not None
    assert not group.exists()


def test_an_instance_that_fails_to_start_leaves_nothing(host, monkeypatch):
    # A lab install whose guest init is missing: bubblewrap cannot bind it.
    monkeypatch.setattr(lab_host, 'GUEST_INIT', '/nonexistent/init.py')
    uuid_ = str(uuid.uuid4())
    plan = userdata.build_plan(
        base64.b64encode(b'#!/bin/sh\nsleep 300\n').decode('ascii'))
    with pytest.raises(RuntimeError, match='/nonexistent/init.py'):
        host.start_instance(uuid_, 'probe', 1, 256, plan)
    assert host.get(uuid_) is None
    assert not host.group.child(uuid_).exists()
    assert not os.path.exists(os.path.join(host.directory, uuid_))


def test_the_lab_json_says_404_for_an_instance_deleted_while_it_looks(
        host, monkeypatch):
    instance = _start(host, '#!/bin/sh\nsleep 300\n')
    found = host.get

    def found_then_deleted(uuid_):
        # The server's delete lands right after the lookup.
        result = found(uuid_)
        if result is not None:
            host.stop_instance(uuid_)
        return result

    monkeypatch.setattr(host, 'get', found_then_deleted)
    server = lab_http.Server(lab_http.lab_app(lambda: {host.name: host}))
    server.start()
    try:
        response = requests.get('%s/servers/%s' % (server.url,
                                                   instance.uuid),
                                timeout=10)
    finally:
        server.stop()
        host.stop_instance(instance.uuid)
    assert response.status_code == 404, response.text
    assert response.json() == {'error': 'no lab instance %s'
                                        % instance.uuid}


def test_a_hosts_status_while_it_stops_is_a_snapshot(host):
    config = lab_config.parse_config({
        'lab': {'cgroup_prefix': host.settings.cgroup_prefix,
                'state_dir': host.settings.state_dir},
        'hosts': [{'name': 'stopping', 'share': {'cpu': 0.1},
                   'tenants': [{'kind': 'cpu', 'name': name,
                                'intensity': 0.05}
                               for name in ('first', 'second')]}]})
    stopping = lab_host.LabHost(host.run, config.hosts[0],
                                host.settings).start()
    stopper = threading.Thread(target=stopping.stop)
    first = stopping.tenants['first']
    alive = first.alive

    def alive_while_the_host_stops():
        # The host stops while status() is reading its tenants.
        stopper.start()
        stopper.join(timeout=30)
        return alive()

    first.alive = alive_while_the_host_stops
    try:
        status = stopping.status()
    finally:
        if stopper.ident is None:
            stopping.stop()
        stopper.join(timeout=30)
    assert not stopper.is_alive()
    assert sorted(status['tenants']) == ['first', 'second']
    assert not stopping.group.exists()


def _half_started_config(host, name, share):
    return lab_config.parse_config({
        'lab': {'cgroup_prefix': host.settings.cgroup_prefix,
                'state_dir': host.settings.state_dir},
        'hosts': [{'name': name, 'share': dict(share, cpu=0.1),
                   'tenants': [{'kind': 'cpu', 'name': tenant,
                                'intensity': 0.05}
                               for tenant in ('first', 'second')]}]}
    ).hosts[0]


def test_a_host_that_fails_at_its_second_tenant_stops_what_it_started(
        host):
    if not host.group.has('cpuset'):
        pytest.skip('no cpuset hierarchy')
    config = _half_started_config(host, 'second-fails',
                                  {'disk': {'size_mb': 64}})
    # The second tenant's cgroup already exists with no CPUs: the kernel
    # refuses to let its sandbox join it.
    group = host.run.group.child(config.name)
    parent = host.run.group.path('cpuset')
    os.makedirs(group.child('tenant-second').path('cpuset'))
    for name in ('cpuset.cpus', 'cpuset.mems'):
        group.write('cpuset', name,
                    cgroups.read_file(os.path.join(parent, name)).strip())
    starting = lab_host.LabHost(host.run, config, host.settings)
    with pytest.raises(RuntimeError,
                       match='cannot join cgroup .*/tenant-second'):
        starting.start()
    assert not starting.group.exists()
    assert not starting.tenants
    assert starting.directory not in dict(hostdisk.mounts())
    assert not os.listdir(hostdisk.image_dir(host.run.prefix,
                                             host.run.name))
    assert not [p for p in _lab_processes(host.run)
                if 'tenant=second-fails' in p or 'second-fails-' in p]


def test_a_host_whose_disk_fails_removes_its_cgroups(host):
    config = _half_started_config(host, 'disk-fails',
                                  {'disk': {'size_mb': 64}})
    # A directory where the disk's backing file goes.
    os.makedirs(os.path.join(hostdisk.image_dir(host.run.prefix,
                                                host.run.name),
                             '%s.img' % config.name))
    starting = lab_host.LabHost(host.run, config, host.settings)
    try:
        with pytest.raises(OSError):
            starting.start()
    finally:
        os.rmdir(os.path.join(hostdisk.image_dir(host.run.prefix,
                                                 host.run.name),
                              '%s.img' % config.name))
    assert not starting.group.exists()
    assert starting.directory not in dict(hostdisk.mounts())


def _lab_processes(run):
    """Command lines of processes in the run's cgroups."""
    found = []
    for pid in run.group.pids():
        try:
            with open('/proc/%d/cmdline' % pid) as f:
                found.append(f.read().replace('\0', ' '))
        except OSError:
            pass
    return found


PROBE_WRITES = r'''#!/usr/bin/python3
import json, os
wrote = {}
for directory in %r:
    try:
        path = os.path.join(directory, 'probe-%%d' %% os.getpid())
        with open(path, 'w') as f:
            f.write('x')
        os.unlink(path)
        wrote[directory] = 'writable'
    except OSError as exc:
        wrote[directory] = exc.strerror
try:
    os.mkdir('/srv')
    wrote['mkdir /srv'] = 'writable'
except OSError as exc:
    wrote['mkdir /srv'] = exc.strerror
print('WRITES ' + json.dumps(wrote), flush=True)
'''
WRITABLE = ('/opt', '/var', '/var/tmp', '/tmp', '/etc', '/root', '/run',
            '/dev/shm')


def test_only_the_documented_directories_are_writable(host):
    instance = _start(host, PROBE_WRITES % ((('/', '/.lab') + WRITABLE),))
    try:
        line = _console_line(instance, 'WRITES ')
    finally:
        host.stop_instance(instance.uuid)
    wrote = json.loads(line.split(' ', 1)[1])
    assert {d: wrote[d] for d in WRITABLE} == dict.fromkeys(WRITABLE,
                                                            'writable')
    assert wrote['/'] == 'Read-only file system'
    assert wrote['/.lab'] == 'Read-only file system'
    assert wrote['mkdir /srv'] == 'Read-only file system'


def test_an_instance_setting_up_holds_up_no_other_instance(host):
    # The host's CPU is frozen: the new sandbox cannot finish setting up.
    host.group.write('freezer', 'freezer.state', 'FROZEN')
    starting = {}
    uuid_ = str(uuid.uuid4())
    plan = userdata.build_plan(
        base64.b64encode(b'#!/bin/sh\nsleep 300\n').decode('ascii'))

    def start():
        try:
            starting['instance'] = host.start_instance(uuid_, 'slow', 1, 256,
                                                       plan)
        except Exception as exc:
            starting['error'] = exc

    thread = threading.Thread(target=start)
    thread.start()
    try:
        lab.wait_for(lambda: os.path.exists(os.path.join(
            host.directory, uuid_, 'launch.json')), what='launch')
        # A delete on the same host (of an instance it does not have, as
        # Nova's clean-up of a failed build) takes the host's lock.
        began = time.monotonic()
        stopped = host.stop_instance(str(uuid.uuid4()))
        waited = time.monotonic() - began
        still_setting_up = thread.is_alive()
    finally:
        host.group.write('freezer', 'freezer.state', 'THAWED')
        thread.join(timeout=60)
        host.stop_instance(uuid_)
    assert stopped is False
    assert still_setting_up
    assert waited < 1.0, waited
    assert 'error' not in starting, starting
    assert starting['instance'].uuid == uuid_


# A lab process with one instance: Ctrl-C (SIGINT to its process group)
# makes it report whether the instance still runs, then stop it in order.
CTRL_C_LAB = r'''
import base64, json, signal, sys, threading, time, uuid
from nova_shadow_lab import config as lab_config
from nova_shadow_lab import host as lab_host
from nova_shadow_lab import runtime
from nova_shadow_lab import userdata

interrupted = threading.Event()
signal.signal(signal.SIGINT, lambda signum, frame: interrupted.set())
config = lab_config.parse_config({
    'lab': {'cgroup_prefix': 'nova-shadow-lab-ctrl-c-test',
            'state_dir': sys.argv[1]},
    'hosts': [{'name': 'ctrl-c', 'share': {'cpu': 0.1}}]})
run = runtime.LabRun(config.lab).start()
host = lab_host.LabHost(run, config.hosts[0], config.lab).start()
try:
    plan = userdata.build_plan(base64.b64encode(
        b'#!/bin/sh\nexec sleep 600\n').decode('ascii'))
    instance = host.start_instance(str(uuid.uuid4()), 'ctrl-c', 1, 128,
                                   plan)
    box = instance.sandbox
    print(json.dumps({'pid': box.popen.pid}), flush=True)
    interrupted.wait(30)
    time.sleep(0.5)
    print(json.dumps({'interrupted': interrupted.is_set(),
                      'alive': box.alive(),
                      'processes': len(box.group.pids())}), flush=True)
finally:
    host.stop()
    run.stop()
'''


def test_ctrl_c_reaches_the_lab_but_not_its_sandboxes(tmp_path):
    lab.require_lab()
    env = dict(os.environ, PYTHONPATH=lab.REPO)
    # Its own process group, as a command in a terminal is; SIGINT to that
    # group is what Ctrl-C sends.
    process = subprocess.Popen(
        [sys.executable, '-c', CTRL_C_LAB, str(tmp_path)], cwd=lab.REPO,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        line = process.stdout.readline()
        assert line, process.stderr.read()[-2000:]
        sandbox_pid = json.loads(line)['pid']
        assert os.getpgid(sandbox_pid) != process.pid
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err[-2000:]
    after = json.loads(out)
    assert after == {'interrupted': True, 'alive': True,
                     'processes': after['processes']}
    assert after['processes'] >= 2
    assert not lab.pid_alive(sandbox_pid)


def _in_thread(name, func, *args):
    """Run ``func`` on a thread named ``name``; returns (thread, errors)."""
    errors = []

    def run():
        try:
            func(*args)
        except Exception as exc:
            errors.append(exc)
    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread, errors


def _slowed(box, method, events):
    """``box.<method>`` taking 0.3 s more on the 'power' thread, so that a
    delete arrives while it runs; each call is logged in ``events``."""
    real = getattr(box, method)
    entered = threading.Event()

    def slowed(*args, **kwargs):
        who = threading.current_thread().name
        events.append('%s %s' % (who, method))
        if who == 'power':
            entered.set()
            time.sleep(0.3)
        result = real(*args, **kwargs)
        events.append('%s %s done' % (who, method))
        return result
    setattr(box, method, slowed)
    return entered


def _deleted_during(host, instance, method, change, join_s):
    """Delete ``instance`` while ``change`` (a power change) is inside
    its sandbox's slowed ``method``; returns the events recorded."""
    events = []
    entered = _slowed(instance.sandbox, method, events)
    thread, errors = _in_thread('power', change, instance.uuid)
    assert entered.wait(10)
    assert host.stop_instance(instance.uuid)
    thread.join(join_s)
    assert errors == []
    return events


def test_a_delete_waits_for_a_power_off_under_way(host):
    instance = _start(host, '#!/bin/sh\nexec sleep 600\n')
    box = instance.sandbox
    events = _deleted_during(host, instance, 'stop', host.power_off, 10)
    assert events == ['power stop', 'power stop done',
                      'MainThread stop', 'MainThread stop done']
    assert host.get(instance.uuid) is None
    assert not box.group.exists()
    assert not os.path.exists(box.root)
    # Once deleted, a power change says the instance is gone.
    for change in (host.power_off, host.power_on):
        with pytest.raises(lab_host.InstanceGone):
            change(instance.uuid)


def test_a_delete_during_a_power_on_leaves_no_sandbox_running(host):
    instance = _start(host, '#!/bin/sh\nexec sleep 600\n')
    box = instance.sandbox
    host.power_off(instance.uuid)
    _deleted_during(host, instance, 'start', host.power_on, 40)
    assert host.get(instance.uuid) is None
    # The delete came after the power-on and stopped what it started.
    assert not box.alive()
    assert not box.group.exists()
    assert not os.path.exists(box.root)


def test_of_two_computes_starting_one_lab_host_only_one_gets_on(
        host, monkeypatch):
    run = host.run
    twin = lab_config.parse_config({
        'lab': {'cgroup_prefix': run.prefix,
                'state_dir': os.path.dirname(run.state_dir)},
        'hosts': [{'name': 'twin', 'share': {'cpu': 0.1}}]}).hosts[0]
    real_start = lab_host.LabHost.start
    first_starting, second_done = threading.Event(), threading.Event()

    def start(self):
        # The first start waits until the second compute has tried.
        if not first_starting.is_set():
            first_starting.set()
            second_done.wait(10)
        return real_start(self)
    monkeypatch.setattr(lab_host.LabHost, 'start', start)
    started = []

    def compute():
        try:
            started.append(lab_host.start_host(run, twin, host.settings))
        finally:
            if threading.current_thread().name == 'second':
                second_done.set()
    first, first_errors = _in_thread('first', compute)
    assert first_starting.wait(10)
    second, second_errors = _in_thread('second', compute)
    second.join(30)
    first.join(30)
    try:
        assert len(started) == 1
        errors = first_errors + second_errors
        assert len(errors) == 1
        assert 'lab host twin is already running' in str(errors[0])
        assert run.hosts['twin'] is started[0]
        # The host that got on keeps its cgroups.
        assert started[0].group.exists()
    finally:
        for lab in started:
            lab.stop()
            run.remove_host(lab)
    # The name is free again once the host stops.
    run.check_host_free('twin')
