"""What this machine can give a run: CPUs, memory and disk space.

``plan(profile, workdir)`` is called by ``shadow-loadgen validate`` and
again by ``run`` before anything starts (and by :class:`loadgen.runner.
Runner` when it is not given a plan). It

* bounds CPU-bound worker processes by the CPUs this process may use
  (``os.sched_getaffinity``): ``cpu.workers`` and ``memory.workers``
  above that run as one worker per CPU with the duty cycle raised so
  ``workers x duty_cycle`` (the demand) is kept, up to what the CPUs can
  give. More busy processes than CPUs add only time-sharing, and forking
  hundreds of them on a small guest takes minutes;
* estimates the memory the run needs (working sets, I/O buffers, about
  ``WORKER_MB`` per worker process, ``PARENT_MB`` for loadgen itself, and
  the disk file when it lives on tmpfs) and refuses a run that needs more
  than ``MEMORY_SHARE`` of ``MemAvailable`` (``/proc/meminfo``);
* refuses a disk file larger than ``DISK_SHARE`` of the free space of
  its file system.

A refusal is a :class:`loadgen.errors.ProfileError` naming the field
that asks for the most. What cannot be known here (no ``/proc/meminfo``,
no ``statvfs``) is not guessed: it is said in ``Plan.notes``. The checks
are against the machine that runs them, so ``validate`` on one machine
says nothing about another. Change the shares or the per-process sizes
here.
"""

import os
import tempfile

from loadgen.components import memory as memory_component
from loadgen.components import network as network_component
from loadgen.errors import ProfileError

MEMINFO = '/proc/meminfo'
MOUNTS = '/proc/self/mounts'
# Private memory of one forked worker: 2.0-2.2 MiB measured (Private_Dirty
# in /proc/<pid>/smaps_rollup, Python 3.11), the network echo server
# 7.8 MiB; rounded up.
WORKER_MB = 4.0
ECHO_SERVER_MB = 8.0
# The loadgen process itself (25 MiB RSS measured), rounded up.
PARENT_MB = 32.0
MEMORY_SHARE = 0.9
DISK_SHARE = 0.9
_MIB = 2.0 ** 20
_RAM_FILESYSTEMS = ('tmpfs', 'ramfs')


def cpus_available():
    """CPUs this process may run on (affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def mem_available_mb(path=MEMINFO):
    """``MemAvailable`` in MiB, or None when it cannot be read."""
    try:
        with open(path, encoding='ascii') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


def free_disk_mb(directory):
    """Free MiB for an unprivileged writer in ``directory``, or None."""
    try:
        info = os.statvfs(directory)
    except (OSError, AttributeError):
        return None
    return info.f_bavail * info.f_frsize / _MIB


def filesystem_type(directory, mounts=MOUNTS):
    """Type of the file system holding ``directory`` (``ext4``,
    ``tmpfs``...), or None when it cannot be told."""
    try:
        target = os.path.realpath(directory)
        with open(mounts, encoding='utf-8', errors='replace') as f:
            entries = [line.split() for line in f]
    except OSError:
        return None
    best, kind = '', None
    for entry in entries:
        if len(entry) < 3:
            continue
        point = entry[1].replace('\\040', ' ')
        inside = target == point or target.startswith(
            point.rstrip('/') + '/')
        if inside and len(point) >= len(best):
            best, kind = point, entry[2]
    return kind


def fit_workers(workers, duty_cycle, cpus):
    """(workers, duty_cycle) that run ``workers x duty_cycle`` of demand
    on at most ``cpus`` processes; demand beyond ``cpus`` is cut."""
    if workers <= cpus:
        return workers, duty_cycle
    return cpus, min(1.0, workers * duty_cycle / cpus)


class Plan:
    """What a run will do on this machine.

    Attributes
    ----------
    cpus : int
    components : dict
        component name -> parameters to run with (workers bounded).
    mem_available_mb, memory_needed_mb : float or None
    disk_free_mb, disk_needed_mb : float or None
    notes : list of str
        adjustments made and checks that could not be made, for people.
    """

    def __init__(self, cpus):
        self.cpus = cpus
        self.components = {}
        self.mem_available_mb = None
        self.memory_needed_mb = None
        self.disk_free_mb = None
        self.disk_needed_mb = None
        self.notes = []

    def to_dict(self):
        def rounded(value):
            return None if value is None else round(value, 1)
        return {'cpus': self.cpus,
                'mem_available_mb': rounded(self.mem_available_mb),
                'memory_needed_mb': rounded(self.memory_needed_mb),
                'disk_free_mb': rounded(self.disk_free_mb),
                'disk_needed_mb': rounded(self.disk_needed_mb),
                'notes': list(self.notes)}


def _bound_workers(name, params, plan):
    asked = params['workers']
    workers, duty = fit_workers(asked, params['duty_cycle'], plan.cpus)
    if workers != asked:
        params['workers'], params['duty_cycle'] = workers, duty
        plan.notes.append(
            'components.%s.workers: %d asked, %d CPU%s here: %d worker%s '
            'run at duty_cycle %.3g (the same demand, up to the CPUs)'
            % (name, asked, plan.cpus, '' if plan.cpus == 1 else 's',
               workers, '' if workers == 1 else 's', duty))


def _memory_terms(components, disk_on_ram, disk_file_mb):
    """(field, MiB) of everything the run holds in memory."""
    terms = [('loadgen', PARENT_MB)]
    if 'cpu' in components:
        terms.append(('components.cpu.workers',
                      components['cpu']['workers'] * WORKER_MB))
    if 'memory' in components:
        params = components['memory']
        workers = params['workers']
        data = workers * 2 * memory_component.half_bytes(
            params['working_set_mb'], workers) / _MIB
        terms += [('components.memory.working_set_mb', data),
                  ('components.memory.workers', workers * WORKER_MB)]
    if 'disk' in components:
        params = components['disk']
        processes = 1 if params['engine'] == 'aio' else params['iodepth']
        buffers = params['iodepth'] * params['block_size_kb'] / 1024.0
        terms += [('components.disk.block_size_kb', buffers + 1.0),
                  ('components.disk.iodepth', processes * WORKER_MB)]
        if disk_on_ram:
            terms.append(('components.disk.file_size_mb', disk_file_mb))
    if 'network' in components:
        params = components['network']
        connections = params['connections']
        # Messages are never held whole: each worker reads the answer
        # through one buffer of at most 256 KiB (and the echo server
        # through 64 KiB per connection).
        buffers = network_component.buffer_bytes(params) / _MIB
        echo_mb = ECHO_SERVER_MB if params['peer'] == 'self' else 0.0
        terms.append(('components.network.connections',
                      connections * (WORKER_MB + buffers) + echo_mb))
    return terms


def _disk_file(params, workdir, plan, mounts):
    """MiB of the nameless file, and whether it lives in memory."""
    if params.get('file'):
        if not os.path.exists(params['file']):
            raise ProfileError('components.disk.file', 'no such file: %s'
                               % params['file'])
        return 0.0, False
    directory = params.get('dir') or workdir or tempfile.gettempdir()
    if not os.path.isdir(directory):
        raise ProfileError('components.disk.dir' if params.get('dir')
                           else 'workdir', 'not a directory: %s'
                           % directory)
    block = params['block_size_kb'] * 1024
    size_mb = max(1, int(params['file_size_mb'] * _MIB) // block) * \
        block / _MIB
    plan.disk_needed_mb = size_mb
    plan.disk_free_mb = free_disk_mb(directory)
    if plan.disk_free_mb is None:
        plan.notes.append('disk space not checked: cannot read the free '
                          'space of %s' % directory)
    elif size_mb > DISK_SHARE * plan.disk_free_mb:
        raise ProfileError(
            'components.disk.file_size_mb', 'the disk file needs %.0f MiB '
            'but %s has %.0f MiB free (at most %d%% of it may be used)'
            % (size_mb, directory, plan.disk_free_mb, DISK_SHARE * 100))
    return size_mb, filesystem_type(directory, mounts) in _RAM_FILESYSTEMS


def _bounded(profile, plan):
    components = {name: dict(params)
                  for name, params in profile.components.items()}
    for name in ('cpu', 'memory'):
        if name in components:
            _bound_workers(name, components[name], plan)
    return components


def memory_needed_mb(profile, cpus):
    """MiB ``profile`` would hold on a guest with ``cpus`` CPUs (a disk
    file on tmpfs not counted). Pure: for checking a profile against a
    flavor's RAM before a shadow is booted."""
    components = _bounded(profile, Plan(cpus))
    return sum(mib for _, mib in _memory_terms(components, False, 0.0))


def plan(profile, workdir=None, cpus=None, meminfo=MEMINFO,
         mounts=MOUNTS):
    """Check ``profile`` against this machine; return a :class:`Plan`.

    Parameters
    ----------
    profile : loadgen.profiles.Profile
    workdir : str, optional
        where the disk file is made when ``components.disk.dir`` is not
        set (default: the system temporary directory).
    cpus : int, optional
        CPUs to plan for (default: :func:`cpus_available`).
    meminfo, mounts : str
        where ``MemAvailable`` and the mounted file systems are read.

    Raises
    ------
    ProfileError
        when the run needs more memory or disk than this machine has,
        naming the field that asks for the most.
    """
    result = Plan(cpus or cpus_available())
    components = _bounded(profile, result)
    result.components = components
    disk_mb, disk_on_ram = 0.0, False
    if 'disk' in components:
        disk_mb, disk_on_ram = _disk_file(components['disk'], workdir,
                                          result, mounts)
    terms = _memory_terms(components, disk_on_ram, disk_mb)
    result.memory_needed_mb = sum(mib for _, mib in terms)
    result.mem_available_mb = mem_available_mb(meminfo)
    if result.mem_available_mb is None:
        result.notes.append('memory not checked: no MemAvailable in %s '
                            'here' % meminfo)
        return result
    allowed = MEMORY_SHARE * result.mem_available_mb
    if result.memory_needed_mb > allowed:
        field = max(terms, key=lambda term: term[1])[0]
        detail = ', '.join('%s %.0f' % (name.replace('components.', ''),
                                         mib)
                           for name, mib in terms if mib >= 1)
        raise ProfileError(field, 'the run needs about %.0f MiB of memory '
                           '(MiB: %s) but MemAvailable here is %.0f MiB '
                           '(at most %d%% of it may be used)'
                           % (result.memory_needed_mb, detail,
                              result.mem_available_mb, MEMORY_SHARE * 100))
    return result
