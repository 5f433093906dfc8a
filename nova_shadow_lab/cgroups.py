"""cgroup v1 plumbing for the lab: create, limit, measure, kill, remove.

Standard library only: the reaper process imports this module without
Nova. Every access to ``/sys`` goes through ``io.open``,
``os.path.exists``, ``os.mkdir``, ``os.rmdir`` and ``os.walk``, because
Nova's functional test base poisons ``open``, ``os.path.isdir``,
``os.listdir`` and ``glob`` on ``/sys`` paths.

A :class:`Group` is one logical cgroup (a relative path such as
``nova-shadow-lab/run-1-2-0/host1/<uuid>``) present in every mounted v1
hierarchy the lab uses (``CONTROLLERS``); co-mounted controllers (for
example ``cpu,cpuacct``) share one directory. Lab groups live below
``<mount>/<prefix>/<run>``, where the run name carries the owner's pid and
process start time, so a sweep can tell a live lab (possibly another one
on the same machine) from the leftovers of a dead one.

Change what is measured in :func:`figures`; change how groups die in
:func:`kill`.
"""

import errno
import io
import os
import re
import signal
import time

CONTROLLERS = ('cpu', 'cpuacct', 'cpuset', 'memory', 'blkio', 'pids',
               'freezer')
DEFAULT_PREFIX = 'nova-shadow-lab'
MOUNTINFO = '/proc/self/mountinfo'
UNLIMITED = 2 ** 62
_RUN_NAME = re.compile(r'^run-(\d+)-(\d+)-(\d+)\Z')
# io.open is the original open; Nova's test base replaces builtins.open.
_open = io.open  # noqa: UP020


class CgroupError(Exception):
    """A cgroup file could not be created, written or read."""


def _unescape(text):
    return re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), text)


def mount_entries(mountinfo=MOUNTINFO):
    """``[(mount point, fstype, source, super options)]`` of this mount
    namespace, from ``mountinfo`` (empty when it cannot be read)."""
    try:
        with _open(mountinfo) as f:
            lines = f.readlines()
    except OSError:
        return []
    entries = []
    for line in lines:
        left, sep, right = line.partition(' - ')
        if not sep:
            continue
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        entries.append((_unescape(fields[4]), rfields[0], rfields[1],
                        rfields[2]))
    return entries


def hierarchies(mountinfo=MOUNTINFO):
    """Return ``{controller: mount point}`` of the mounted v1 hierarchies.

    Only controllers in ``CONTROLLERS`` are returned; a controller that is
    mounted twice keeps its first mount point.
    """
    found = {}
    for point, fstype, _source, options in mount_entries(mountinfo):
        if fstype != 'cgroup':
            continue
        options = set(options.split(','))
        for controller in CONTROLLERS:
            if controller in options and controller not in found:
                found[controller] = point
    return found


def read_file(path):
    """A file's text, read past Nova's test-base poison on ``/sys``."""
    with _open(path) as f:
        return f.read()


_read = read_file


def _write(path, value):
    try:
        with _open(path, 'w') as f:
            f.write(str(value))
    except OSError as exc:
        raise CgroupError('cannot write %r to %s: %s'
                          % (str(value), path, exc.strerror or exc))


def _mkdir(path):
    try:
        os.mkdir(path)
    except FileExistsError:
        return False
    except OSError as exc:
        raise CgroupError('cannot create cgroup %s: %s'
                          % (path, exc.strerror or exc))
    return True


class Group:
    """One lab cgroup across the v1 hierarchies in ``mounts``."""

    def __init__(self, mounts, relpath, joins=None):
        self.mounts = dict(mounts)
        self.relpath = relpath.strip('/')
        # controller -> Group: processes started in this group join that
        # group in that controller's hierarchy instead (see joining()).
        self.joins = dict(joins or {})

    def __repr__(self):
        return 'Group(%r)' % self.relpath

    def child(self, name):
        return Group(self.mounts, '%s/%s' % (self.relpath, name))

    def has(self, controller):
        return controller in self.mounts

    def joining(self, controller, other):
        """This group, whose processes join ``other`` in ``controller``'s
        hierarchy (for example a host's blkio group, whose throttles are
        then one budget for all of its processes). None when
        ``controller`` shares its hierarchy with another controller (its
        processes would move in both)."""
        if not self.has(controller):
            return None
        mount = self.mounts[controller]
        if any(m == mount for c, m in self.mounts.items() if c != controller):
            return None
        return Group(self.mounts, self.relpath,
                     dict(self.joins, **{controller: other}))

    def path(self, controller):
        """The group's directory in ``controller``'s hierarchy."""
        return os.path.join(self.mounts[controller], self.relpath)

    def dirs(self):
        """Distinct directories of this group, one per hierarchy."""
        return sorted({self.path(c) for c in self.mounts})

    def exists(self):
        return any(os.path.exists(d) for d in self.dirs())

    def create(self):
        """Create the group (and its parents) in every hierarchy.

        cpuset needs ``cpus`` and ``mems`` at every level before a task can
        join: new levels copy their parent's.
        """
        cpuset_dir = self.path('cpuset') if self.has('cpuset') else None
        for directory in self.dirs():
            base = next(m for m in sorted(self.mounts.values(), key=len,
                                          reverse=True)
                        if directory.startswith(m.rstrip('/') + '/'))
            current = base
            for part in directory[len(base):].strip('/').split('/'):
                parent, current = current, os.path.join(current, part)
                if os.path.exists(current):
                    continue
                if _mkdir(current) and directory == cpuset_dir:
                    for name in ('cpuset.cpus', 'cpuset.mems'):
                        target = os.path.join(current, name)
                        if not _read(target).strip():
                            _write(target, _read(
                                os.path.join(parent, name)).strip())

    def write(self, controller, name, value):
        _write(os.path.join(self.path(controller), name), value)

    def read(self, controller, name):
        """The file's text, or None when the controller or file is absent
        (or the group's processes join another group in that hierarchy:
        its own figures there are not its processes')."""
        if not self.has(controller) or controller in self.joins:
            return None
        path = os.path.join(self.path(controller), name)
        if not os.path.exists(path):
            return None
        try:
            return _read(path)
        except OSError:
            return None

    def procs_files(self):
        """The ``cgroup.procs`` files a process writes itself to, to join
        this group (the joined group's, where :meth:`joining` says)."""
        return sorted({os.path.join(
            self.joins[c].path(c) if c in self.joins else self.path(c),
            'cgroup.procs') for c in self.mounts})

    def pids(self):
        """Pids in this group and its descendants, over all hierarchies."""
        found = set()
        for directory in self.dirs():
            for root, _dirs, _files in os.walk(directory):
                try:
                    text = _read(os.path.join(root, 'cgroup.procs'))
                except OSError:
                    continue
                found.update(int(p) for p in text.split())
        return found


def _set_freezer(group, state):
    """Write ``state`` to the freezer of the group and, for THAWED, of
    every descendant (a paused child stays frozen otherwise)."""
    if not group.has('freezer'):
        return
    top = group.path('freezer')
    if not os.path.exists(top):
        return
    targets = [top]
    if state == 'THAWED':
        targets = [root for root, _d, _f in os.walk(top)]
    for directory in targets:
        try:
            _write(os.path.join(directory, 'freezer.state'), state)
        except CgroupError:
            pass


class FreezeTimeout(CgroupError):
    """A freezer did not reach FROZEN in time (a task in an
    uninterruptible sleep holds it in FREEZING)."""


def freeze(group, timeout=10.0, poll=0.005):
    """Freeze ``group`` and wait until the kernel says FROZEN.

    A cgroup v1 freezer answers FREEZING until every task has stopped;
    the write is repeated while it does, which retries the tasks that
    were not frozen yet. Raises :class:`FreezeTimeout` (after thawing
    again, so nothing stays half frozen) when FROZEN is not reached
    within ``timeout`` seconds.
    """
    state_file = os.path.join(group.path('freezer'), 'freezer.state')
    deadline = time.monotonic() + timeout
    _set_freezer(group, 'FROZEN')
    while True:
        state = _read(state_file).strip()
        if state == 'FROZEN':
            return
        if time.monotonic() >= deadline:
            _set_freezer(group, 'THAWED')
            raise FreezeTimeout('%s stayed %s for %.1f s'
                                % (state_file, state, timeout))
        time.sleep(poll)
        _set_freezer(group, 'FROZEN')


def thaw(group):
    """Thaw ``group`` and every descendant."""
    _set_freezer(group, 'THAWED')


def kill(group, timeout=5.0):
    """SIGKILL every process in ``group`` and its descendants.

    With the freezer controller the tree is frozen first, so nothing can
    fork while being killed. Returns the pids still present at the
    deadline (empty when all are gone).
    """
    deadline = time.monotonic() + timeout
    frozen = False
    if group.has('freezer') and os.path.exists(group.path('freezer')):
        try:
            freeze(group, timeout=max(0.0, deadline - time.monotonic()))
            frozen = True
        except (FreezeTimeout, OSError):
            # Kill what can be killed; the loop below retries.
            pass
    delay = 0.002
    while True:
        pids = group.pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if frozen:
            _set_freezer(group, 'THAWED')
            frozen = False
        if not pids or time.monotonic() >= deadline:
            return pids
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def remove(group, timeout=2.0):
    """Remove the group and its descendants from every hierarchy.

    Returns the directories that could not be removed.
    """
    deadline = time.monotonic() + timeout
    left = []
    for directory in group.dirs():
        if not os.path.exists(directory):
            continue
        for root, _dirs, _files in os.walk(directory, topdown=False):
            while True:
                try:
                    os.rmdir(root)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or \
                            time.monotonic() >= deadline:
                        left.append(root)
                        break
                    time.sleep(0.01)
    return left


def sweep(group, timeout=5.0):
    """Kill everything in ``group`` and remove it; return what is left."""
    survivors = kill(group, timeout=timeout)
    return survivors, remove(group, timeout=max(0.5, timeout / 2))


def remove_prefix_if_empty(mounts, prefix):
    """Remove ``<mount>/<prefix>`` where it has no child groups left."""
    for directory in sorted({os.path.join(m, prefix)
                             for m in mounts.values()}):
        try:
            os.rmdir(directory)
        except OSError:
            pass


# -- run identity ---------------------------------------------------------

def process_start_time(pid):
    """The process's start time in clock ticks since boot, or None."""
    try:
        text = _read('/proc/%d/stat' % pid)
    except OSError:
        return None
    try:
        return int(text.rpartition(')')[2].split()[19])
    except (IndexError, ValueError):
        return None


def run_name(pid, serial):
    """Name of a lab run owned by process ``pid`` (``serial``-th run)."""
    return 'run-%d-%d-%d' % (pid, process_start_time(pid) or 0, serial)


def run_owner_alive(name):
    """False when ``name`` is a run whose owning process is gone."""
    match = _RUN_NAME.match(name)
    if not match:
        return True
    pid, start = int(match.group(1)), int(match.group(2))
    return process_start_time(pid) == start


def run_names(mounts, prefix):
    names = set()
    for mount in mounts.values():
        top = os.path.join(mount, prefix)
        if not os.path.exists(top):
            continue
        for _root, dirs, _files in os.walk(top):
            names.update(d for d in dirs if _RUN_NAME.match(d))
            break
    return names


def stale_runs(mounts, prefix):
    """Runs under ``prefix`` whose owner process is gone."""
    return sorted(n for n in run_names(mounts, prefix)
                  if not run_owner_alive(n))


# -- figures ----------------------------------------------------------------

def _int(text):
    try:
        return int(text.strip())
    except (AttributeError, ValueError):
        return None


def _keyed(text):
    values = {}
    for line in (text or '').splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                values[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return values


def _blkio(text):
    totals = {'Read': 0, 'Write': 0}
    for line in (text or '').splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in totals:
            totals[parts[1]] += int(parts[2])
    return totals


def quota_cpus(group):
    """The group's own CFS quota in CPUs, or None when unlimited."""
    quota = _int(group.read('cpu', 'cpu.cfs_quota_us'))
    period = _int(group.read('cpu', 'cpu.cfs_period_us'))
    if quota is None or period is None or quota < 0 or period <= 0:
        return None
    return quota / period


def figures(group):
    """Host-side accounting of ``group`` (and its descendants).

    Keys (None where the controller or file is missing):
    ``cpu_usage_ns`` (cpuacct.usage), ``cpu_throttled_ns`` (time the
    group's runqueues were throttled, by its own quota or an ancestor's,
    from ``cpu.stat.local`` where the kernel has it, else ``cpu.stat``),
    ``cpu_nr_periods``/``cpu_nr_throttled`` (own quota), ``cpu_quota_cpus``,
    ``memory_usage_bytes``, ``memory_max_usage_bytes``,
    ``memory_limit_bytes``, ``memory_rss_bytes``, ``memory_cache_bytes``,
    ``io_read_bytes``/``io_write_bytes``/``io_read_ops``/``io_write_ops``
    (blkio throttle accounting: reads and direct I/O; buffered writes
    are written back outside the group in cgroup v1), ``pids_current``.
    """
    stat = _keyed(group.read('cpu', 'cpu.stat'))
    local = _keyed(group.read('cpu', 'cpu.stat.local'))
    memory_stat = _keyed(group.read('memory', 'memory.stat'))
    limit = _int(group.read('memory', 'memory.limit_in_bytes'))
    io_bytes = group.read('blkio', 'blkio.throttle.io_service_bytes_recursive')
    io_ops = group.read('blkio', 'blkio.throttle.io_serviced_recursive')
    io_bytes, io_ops = (_blkio(io_bytes) if io_bytes is not None else None,
                        _blkio(io_ops) if io_ops is not None else None)
    return {
        'cpu_usage_ns': _int(group.read('cpuacct', 'cpuacct.usage')),
        'cpu_throttled_ns': local.get('throttled_time',
                                      stat.get('throttled_time')),
        'cpu_nr_periods': stat.get('nr_periods'),
        'cpu_nr_throttled': stat.get('nr_throttled'),
        'cpu_quota_cpus': quota_cpus(group),
        'memory_usage_bytes': _int(group.read('memory',
                                              'memory.usage_in_bytes')),
        'memory_max_usage_bytes': _int(group.read(
            'memory', 'memory.max_usage_in_bytes')),
        'memory_limit_bytes': (limit if limit is not None and
                               limit < UNLIMITED else None),
        'memory_rss_bytes': memory_stat.get('total_rss'),
        'memory_cache_bytes': memory_stat.get('total_cache'),
        'io_read_bytes': io_bytes['Read'] if io_bytes else None,
        'io_write_bytes': io_bytes['Write'] if io_bytes else None,
        'io_read_ops': io_ops['Read'] if io_ops else None,
        'io_write_ops': io_ops['Write'] if io_ops else None,
        'pids_current': _int(group.read('pids', 'pids.current')),
    }
