"""cgroup v1 discovery and run identity, without touching /sys."""

import os
import subprocess

import pytest

from nova_shadow_lab import cgroups

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
30 29 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
31 29 0:27 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
32 29 0:28 / /sys/fs/cgroup/my\\040pids rw,relatime - cgroup cgroup rw,pids
33 29 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
34 29 0:30 / /other/memory rw,relatime - cgroup cgroup rw,memory
"""


def test_hierarchies_reads_v1_mounts_and_comounted_controllers(tmp_path):
    path = tmp_path / 'mountinfo'
    path.write_text(MOUNTINFO)
    assert cgroups.hierarchies(str(path)) == {
        'cpu': '/sys/fs/cgroup/cpu,cpuacct',
        'cpuacct': '/sys/fs/cgroup/cpu,cpuacct',
        'memory': '/sys/fs/cgroup/memory',
        'pids': '/sys/fs/cgroup/my pids',
    }


def test_a_group_has_one_directory_per_hierarchy():
    group = cgroups.Group({'cpu': '/c', 'cpuacct': '/c', 'memory': '/m'},
                          '/lab/run/host/')
    assert group.relpath == 'lab/run/host'
    assert group.dirs() == ['/c/lab/run/host', '/m/lab/run/host']
    assert group.child('vm').path('memory') == '/m/lab/run/host/vm'
    assert group.procs_files() == ['/c/lab/run/host/cgroup.procs',
                                   '/m/lab/run/host/cgroup.procs']


def test_a_group_joining_another_in_one_hierarchy(tmp_path):
    mounts = {'cpu': '/c', 'cpuacct': '/c', 'blkio': str(tmp_path)}
    host = cgroups.Group(mounts, 'lab/run/host')
    (tmp_path / 'lab/run/host/vm').mkdir(parents=True)
    (tmp_path / 'lab/run/host/vm/blkio.throttle.io_serviced').write_text('')
    vm = host.child('vm').joining('blkio', host)
    # Its processes join the host's blkio group, its own elsewhere...
    assert vm.procs_files() == [
        '/c/lab/run/host/vm/cgroup.procs',
        str(tmp_path / 'lab/run/host/cgroup.procs')]
    # ...it is still made and removed in every hierarchy...
    assert vm.dirs() == ['/c/lab/run/host/vm',
                         str(tmp_path / 'lab/run/host/vm')]
    # ...and has no I/O figures of its own there.
    assert vm.read('blkio', 'blkio.throttle.io_serviced') is None
    assert host.child('vm').read('blkio',
                                 'blkio.throttle.io_serviced') == ''
    # A hierarchy shared with another controller cannot be joined apart.
    assert host.child('vm').joining('cpu', host) is None


def test_run_names_carry_the_owner_and_die_with_it():
    name = cgroups.run_name(os.getpid(), 3)
    assert name.startswith('run-%d-' % os.getpid()) and name.endswith('-3')
    assert cgroups.run_owner_alive(name)
    child = subprocess.Popen(['true'])
    start = cgroups.process_start_time(child.pid)
    child.wait()
    assert not cgroups.run_owner_alive('run-%d-%d-1' % (child.pid, start))
    # Same pid, other start time: a recycled pid is not the owner.
    assert not cgroups.run_owner_alive('run-%d-1-1' % os.getpid())
    assert cgroups.run_owner_alive('not-a-run')


def test_figures_parse_what_the_kernel_writes(tmp_path):
    def write(controller, name, text):
        directory = tmp_path / controller / 'g'
        directory.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    write('cpuacct', 'cpuacct.usage', '1500\n')
    write('cpu', 'cpu.stat', 'nr_periods 10\nnr_throttled 4\n'
          'throttled_time 900\n')
    write('cpu', 'cpu.stat.local', 'throttled_time 1200\n')
    write('cpu', 'cpu.cfs_quota_us', '25000\n')
    write('cpu', 'cpu.cfs_period_us', '100000\n')
    write('memory', 'memory.limit_in_bytes', '9223372036854771712\n')
    write('memory', 'memory.usage_in_bytes', '4096\n')
    write('blkio', 'blkio.throttle.io_service_bytes_recursive',
          '254:0 Read 100\n254:0 Write 300\n8:0 Write 5\n'
          'Total 405\n')
    mounts = {c: str(tmp_path / c)
              for c in ('cpu', 'cpuacct', 'memory', 'blkio')}
    figures = cgroups.figures(cgroups.Group(mounts, 'g'))
    assert figures['cpu_usage_ns'] == 1500
    assert figures['cpu_throttled_ns'] == 1200  # includes ancestors'
    assert (figures['cpu_nr_periods'], figures['cpu_nr_throttled']) == \
        (10, 4)
    assert figures['cpu_quota_cpus'] == 0.25
    assert figures['memory_limit_bytes'] is None  # unlimited
    assert figures['memory_usage_bytes'] == 4096
    assert (figures['io_read_bytes'], figures['io_write_bytes']) == (100, 305)
    assert figures['io_read_ops'] is None  # file absent
    assert figures['pids_current'] is None  # no pids hierarchy



class _Freezer:
    """A cgroup v1 freezer that answers FREEZING to the first ``after``
    FROZEN writes, as one with a task slow to stop does."""

    def __init__(self, monkeypatch, tmp_path, after):
        directory = tmp_path / 'freezer' / 'g'
        directory.mkdir(parents=True)
        self.state_file = str(directory / 'freezer.state')
        self.group = cgroups.Group({'freezer': str(tmp_path / 'freezer')},
                                   'g')
        self.after, self.frozen_writes, self.state = after, 0, 'THAWED'
        monkeypatch.setattr(cgroups, '_write', self.write)
        monkeypatch.setattr(cgroups, '_read', self.read)

    def write(self, path, value):
        assert path == self.state_file
        if value == 'FROZEN':
            self.frozen_writes += 1
            self.state = ('FROZEN' if self.frozen_writes > self.after
                          else 'FREEZING')
        else:
            self.state = value

    def read(self, path):
        assert path == self.state_file
        return self.state + '\n'


def test_freeze_waits_for_frozen_and_writes_again_while_freezing(
        monkeypatch, tmp_path):
    freezer = _Freezer(monkeypatch, tmp_path, after=3)
    cgroups.freeze(freezer.group, timeout=5, poll=0.001)
    assert freezer.frozen_writes == 4
    assert freezer.state == 'FROZEN'


def test_a_freeze_that_never_completes_thaws_and_says_so(
        monkeypatch, tmp_path):
    freezer = _Freezer(monkeypatch, tmp_path, after=10 ** 9)
    with pytest.raises(cgroups.FreezeTimeout, match='stayed FREEZING'):
        cgroups.freeze(freezer.group, timeout=0.05, poll=0.001)
    assert freezer.state == 'THAWED'
