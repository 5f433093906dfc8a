"""The lab's temporary directories: named for their owner process, and
removed by the next lab once that process is gone, never while it runs.
"""

import os
import subprocess

from nova_shadow_lab import cgroups
from nova_shadow_lab import tempdirs


def _dead_pid():
    child = subprocess.Popen(['true'])
    child.wait()
    return child.pid


def _owned_by(base, pid, start):
    path = os.path.join(str(base), '%s%d-%d-abc123' % (tempdirs.PREFIX, pid,
                                                        start))
    os.makedirs(os.path.join(path, 'nested'))
    with open(os.path.join(path, 'nested', 'history.sqlite'), 'w') as f:
        f.write('x')
    return path


def test_a_directory_is_named_for_the_process_that_made_it(tmp_path):
    path = tempdirs.make(str(tmp_path))
    name = os.path.basename(path)
    pid = os.getpid()
    assert name.startswith('%s%d-%d-' % (tempdirs.PREFIX, pid,
                                         cgroups.process_start_time(pid)))
    assert tempdirs.owner_alive(name)


def test_sweep_removes_directories_of_dead_owners_only(tmp_path):
    dead = _owned_by(tmp_path, _dead_pid(), 12345)
    mine = tempdirs.make(str(tmp_path))
    sleeper = subprocess.Popen(['sleep', '60'])
    try:
        live = _owned_by(tmp_path, sleeper.pid,
                         cgroups.process_start_time(sleeper.pid))
        # A live process that reuses a dead owner's pid: another start
        # time, so the directory is stale.
        reused = _owned_by(tmp_path, sleeper.pid, 1)
        others = [os.path.join(str(tmp_path), name) for name in
                  ('nova-shadow-lab-x7k2p9q1', 'tmpab12cd34',
                   'nova-shadow-lab-1-2')]
        for path in others:
            os.makedirs(path)

        assert tempdirs.stale(str(tmp_path)) == sorted([dead, reused])
        assert tempdirs.sweep_stale(str(tmp_path)) == sorted([dead, reused])

        assert not os.path.exists(dead)
        assert not os.path.exists(reused)
        assert os.path.isdir(mine)
        assert os.path.isdir(live)
        assert all(os.path.isdir(path) for path in others)
    finally:
        sleeper.kill()
        sleeper.wait()
    # Its owner gone, the next sweep takes it.
    assert tempdirs.sweep_stale(str(tmp_path)) == [live]


def test_sweep_of_a_missing_base_does_nothing(tmp_path):
    assert tempdirs.sweep_stale(str(tmp_path / 'missing')) == []
