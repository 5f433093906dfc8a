"""Nothing of the lab survives a SIGKILL of the process running it: its
reaper kills every instance and tenant process, removes the run's cgroups
in every hierarchy and its files, within a few seconds. A new run removes
what runs of dead processes left behind.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from nova_shadow_lab import cgroups
from nova_shadow_lab import config as lab_config
from nova_shadow_lab import hostdisk
from nova_shadow_lab import runtime
from nova_shadow_lab import tempdirs
from tests import lab_support as lab

pytestmark = [pytest.mark.nova]

OWNER = r'''
import json, sys, time
from nova_shadow_lab import cloud
from tests import lab_support as lab

config = {'hosts': [{'name': 'doomed', 'share': {'cpu': 0.2},
                     'tenants': [{'kind': 'cpu', 'intensity': 0.2}]}]}
with cloud.LabCloud(config, serve=False) as lab_cloud:
    script = '#!/bin/sh\nsleep 600 &\nsh -c "sleep 600" &\n'
    server = lab.boot(lab_cloud, 'victim', 'doomed', lab.user_data(script))
    group = lab_cloud.run.group
    lab.wait_for(lambda: len(group.pids()) >= 8, what='processes')
    print(json.dumps({'run': lab_cloud.run.name,
                      'prefix': lab_cloud.run.prefix,
                      'state_dir': lab_cloud.run.state_dir,
                      'reaper': lab_cloud.run.reaper_pid,
                      'pids': sorted(group.pids()),
                      'dirs': group.dirs()}), flush=True)
    time.sleep(600)
'''


def test_sigkill_of_the_lab_process_leaves_no_process_or_cgroup():
    lab.require_lab()
    env = dict(os.environ, PYTHONPATH=lab.REPO,
               OS_NOVA_DISABLE_EVENTLET_PATCHING='True')
    owner = subprocess.Popen([sys.executable, '-c', OWNER], cwd=lab.REPO,
                             env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    try:
        line = owner.stdout.readline()
        assert line, 'the lab process died before it was ready'
        state = json.loads(line)
        # The run's processes are there (a short-lived one, such as a
        # tenant's shell, may have ended since they were listed).
        assert sum(lab.pid_alive(p) for p in state['pids']) >= 4
        assert all(os.path.exists(d) for d in state['dirs'])
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
    killed = time.monotonic()

    lab.wait_for(lambda: not [p for p in state['pids'] if lab.pid_alive(p)],
                 timeout=5, what='lab processes gone')
    lab.wait_for(lambda: not [d for d in state['dirs']
                              if os.path.exists(d)],
                 timeout=5, what='lab cgroups gone')
    lab.wait_for(lambda: not lab.pid_alive(state['reaper']), timeout=10,
                 what='reaper done')
    print('after SIGKILL: %d processes and %d cgroup dirs gone in %.2f s'
          % (len(state['pids']), len(state['dirs']),
             time.monotonic() - killed))
    assert not os.path.exists(state['state_dir'])
    mounts = cgroups.hierarchies()
    assert state['run'] not in cgroups.run_names(mounts, state['prefix'])


def _dead_pid():
    child = subprocess.Popen(['true'])
    child.wait()
    return child.pid


def test_a_new_run_removes_what_dead_runs_left_behind(tmp_path):
    lab.require_lab()
    settings = lab_config.LabSettings(cgroup_prefix='nova-shadow-lab-stale',
                                      state_dir=str(tmp_path))
    mounts = cgroups.hierarchies()
    stale_name = 'run-%d-1-1' % _dead_pid()
    stale = cgroups.Group(mounts, '%s/%s/host/instance'
                          % (settings.cgroup_prefix, stale_name))
    stale.create()
    joined = ' '.join('echo $$ > %s;' % f for f in stale.procs_files())
    leftover = subprocess.Popen(['sh', '-c', joined + ' exec sleep 600'])
    lab.wait_for(lambda: leftover.pid in stale.pids(), what='leftover')
    # The dead run's host disk is still mounted on its host's directory.
    host_dir = os.path.join(str(tmp_path), stale_name, 'host')
    images = hostdisk.image_dir(settings.cgroup_prefix, stale_name)
    hostdisk.create(os.path.join(images, 'host.img'), host_dir, 64)
    assert host_dir in dict(hostdisk.mounts())

    run = runtime.LabRun(settings).start()
    try:
        assert host_dir not in dict(hostdisk.mounts())
        assert not os.path.exists(images)
        assert leftover.wait(timeout=5) == -signal.SIGKILL
        assert not stale.exists()
        assert stale_name not in cgroups.run_names(mounts,
                                                   settings.cgroup_prefix)
        assert not os.path.exists(os.path.join(str(tmp_path), stale_name))
        assert run.group.exists()
    finally:
        run.stop()
    assert not run.group.exists()
    assert not os.path.exists(run.state_dir)


LAB_UP = r'''
import sys, time
from nova_shadow_lab import cloud

config = {'hosts': [{'name': sys.argv[1], 'share': {'cpu': 0.1}}]}
with cloud.LabCloud(config, serve=False):
    print('up', flush=True)
    if sys.argv[2] == 'stay':
        time.sleep(600)
'''


def _lab_process(host, what, temp):
    env = dict(os.environ, PYTHONPATH=lab.REPO, TMPDIR=str(temp),
               OS_NOVA_DISABLE_EVENTLET_PATCHING='True')
    process = subprocess.Popen([sys.executable, '-c', LAB_UP, host, what],
                               cwd=lab.REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if line != 'up\n':
        process.kill()
        raise AssertionError('lab did not start: %s'
                             % process.communicate()[1][-2000:])
    return process


def test_the_next_lab_removes_the_temporary_files_of_a_sigkilled_one(
        tmp_path):
    lab.require_lab()
    temp = tmp_path / 'tmp'
    temp.mkdir()
    # A directory of a lab that is still running (this process).
    live = tempdirs.make(str(temp))
    killed = _lab_process('tmp-killed', 'stay', temp)
    try:
        left = set(os.listdir(str(temp))) - {os.path.basename(live)}
        assert left, 'the lab keeps its databases in the temporary directory'
    finally:
        killed.kill()
        killed.wait(timeout=10)
    assert set(os.listdir(str(temp))) - {os.path.basename(live)} == left

    following = _lab_process('tmp-next', 'exit', temp)
    assert following.wait(timeout=60) == 0
    # The killed lab's files are gone, the live lab's are not, and the
    # lab that exited removed its own.
    assert os.listdir(str(temp)) == [os.path.basename(live)]
