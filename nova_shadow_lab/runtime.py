"""Process-wide pieces of the lab: the launcher thread, the console pump
and the *run* (the cgroups, files and reaper of one lab in this process).

- :class:`Launcher`: every sandbox is started from one long-lived thread.
  Bubblewrap's ``--die-with-parent`` uses ``PR_SET_PDEATHSIG``, which
  fires when the *thread* that forked it exits; Nova runs ``spawn`` on
  short-lived pool threads.
- :class:`ConsolePump`: one thread moves what sandboxes write to their
  console FIFOs (``/dev/console``, stdout, stderr) into each instance's
  ``console.log``, capped at ``console_max_bytes``.
- :class:`LabRun`: ``<mount>/<prefix>/<run>`` in every cgroup hierarchy
  and ``<state_dir>/<run>`` on disk, and a reaper process
  (:mod:`nova_shadow_lab.reaper`) that sweeps both when this process
  closes the reaper's pipe or dies. Starting a run first sweeps runs left
  by dead processes. :func:`acquire` and :func:`release` share one run
  between the LabCloud and its compute services (reference counted).
"""

import concurrent.futures
import fcntl
import logging
import os
import queue
import selectors
import shutil
import subprocess
import threading

from nova_shadow_lab import cgroups
from nova_shadow_lab import hostdisk
from nova_shadow_lab import reaper

LOG = logging.getLogger(__name__)
REQUIRED_CONTROLLERS = ('cpu', 'cpuacct', 'memory', 'pids', 'freezer')


class LabUnavailable(RuntimeError):
    """This machine cannot run the lab (no root, cgroup v1 or bwrap)."""


def environment_problems():
    """Why the lab cannot run here (an empty list when it can)."""
    problems = []
    if os.geteuid() != 0:
        problems.append('the lab needs root to create cgroups')
    if shutil.which('bwrap') is None:
        problems.append('bubblewrap is not installed '
                        '(apt-get install -y bubblewrap)')
    mounts = cgroups.hierarchies()
    missing = [c for c in REQUIRED_CONTROLLERS if c not in mounts]
    if missing:
        problems.append('cgroup v1 controllers not mounted: %s'
                        % ', '.join(missing))
    return problems


class Launcher:
    """Runs ``subprocess.Popen`` on one daemon thread that never exits."""

    def __init__(self):
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name='nova-shadow-lab-launcher')
        self._thread.start()

    def _loop(self):
        while True:
            func, args, kwargs, future = self._queue.get()
            try:
                future.set_result(func(*args, **kwargs))
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)

    def call(self, func, *args, **kwargs):
        future = concurrent.futures.Future()
        self._queue.put((func, args, kwargs, future))
        return future.result()

    def popen(self, argv, **kwargs):
        return self.call(subprocess.Popen, argv, **kwargs)


class Console:
    """One instance's console: a FIFO read by the pump into a log file."""

    def __init__(self, fifo, log_path, max_bytes):
        self.fifo = fifo
        self.log_path = log_path
        self.max_bytes = max_bytes
        self.fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self.closed = threading.Event()
        self._size = (os.path.getsize(log_path)
                      if os.path.exists(log_path) else 0)
        #: While the log cannot be written (the host's disk full): the
        #: error that started the episode, and what was dropped since.
        self._drop_error = None
        self.dropped_bytes = 0
        self.dropped_chunks = 0

    def dropped(self, nbytes, exc):
        """``nbytes`` read from the FIFO could not be written: warn once
        per episode (until a write succeeds again), count the rest."""
        if self._drop_error is None:
            self._drop_error = exc
            LOG.warning('console %s: cannot write (%s); dropping this '
                        'instance\'s console output until it can be '
                        'written', self.log_path, exc)
        self.dropped_bytes += nbytes
        self.dropped_chunks += 1

    def end_drop_episode(self, why):
        """Say how much an episode dropped once it ends (``why``: the log
        is written again, or the console is closed)."""
        if self._drop_error is None:
            return
        LOG.warning('console %s: %s; %d bytes of console output (%d '
                    'reads) were dropped since: %s', self.log_path, why,
                    self.dropped_bytes, self.dropped_chunks,
                    self._drop_error)
        self._drop_error = None
        self.dropped_bytes = 0
        self.dropped_chunks = 0

    def append(self, data):
        with open(self.log_path, 'ab') as f:
            f.write(data)
            # The file's own size, not a running count: the log may have
            # been truncated or rotated under us (copytruncate).
            self._size = f.tell()
        if self._size > self.max_bytes:
            keep = self.max_bytes // 2
            with open(self.log_path, 'rb') as f:
                f.seek(max(0, self._size - keep))
                tail = f.read()
            with open(self.log_path, 'wb') as f:
                f.write(tail)
            self._size = len(tail)

    def writer_fd(self):
        """A blocking write end for a child's stdout/stderr."""
        fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return fd

    def tail(self, max_bytes):
        if not os.path.exists(self.log_path):
            return ''
        with open(self.log_path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            return f.read().decode('utf-8', 'replace')


class ConsolePump:
    """One thread that drains every console FIFO into its log file."""

    def __init__(self):
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._changes = []
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name='nova-shadow-lab-console')
        self._thread.start()

    def open(self, fifo, log_path, max_bytes):
        console = Console(fifo, log_path, max_bytes)
        self._change('add', console)
        return console

    def close(self, console, timeout=2.0):
        """Drain what is left, stop reading and close the FIFO."""
        self._change('remove', console)
        console.closed.wait(timeout)

    def _change(self, action, console):
        with self._lock:
            self._changes.append((action, console))
        os.write(self._wake_w, b'x')

    @staticmethod
    def _drain(console):
        while True:
            try:
                data = os.read(console.fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                return
            if not data:
                return
            try:
                console.append(data)
            except OSError as exc:
                # Read on and drop (the guest must not block on a full
                # FIFO), saying so once per episode.
                console.dropped(len(data), exc)
                continue
            console.end_drop_episode('written again')

    def _apply_changes(self):
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            changes, self._changes = self._changes, []
        for action, console in changes:
            if action == 'add':
                self._selector.register(console.fd, selectors.EVENT_READ,
                                        console)
                continue
            self._drain(console)
            console.end_drop_episode('closed')
            try:
                self._selector.unregister(console.fd)
            except (KeyError, ValueError):
                pass
            os.close(console.fd)
            console.closed.set()

    def _loop(self):
        while True:
            for key, _events in self._selector.select():
                if key.data is None:
                    self._apply_changes()
                else:
                    self._drain(key.data)


_process_lock = threading.Lock()
_launcher = None
_pump = None


def launcher():
    global _launcher
    with _process_lock:
        if _launcher is None:
            _launcher = Launcher()
        return _launcher


def console_pump():
    global _pump
    with _process_lock:
        if _pump is None:
            _pump = ConsolePump()
        return _pump


class LabRun:
    """The cgroups, files and reaper of one lab run in this process."""

    _serial = 0

    def __init__(self, settings):
        problems = environment_problems()
        if problems:
            raise LabUnavailable('; '.join(problems))
        LabRun._serial += 1
        self.settings = settings
        self.prefix = settings.cgroup_prefix
        self.mounts = cgroups.hierarchies()
        self.name = cgroups.run_name(os.getpid(), LabRun._serial)
        self.group = cgroups.Group(self.mounts,
                                   '%s/%s' % (self.prefix, self.name))
        self.state_dir = os.path.join(settings.state_dir, self.name)
        self.launcher = launcher()
        self.consoles = console_pump()
        self.hosts = {}
        self._hosts_lock = threading.RLock()
        # Names of hosts being started (claim_host), not yet in hosts.
        self._claimed = set()
        self._reaper = None
        self._pyz = None
        self._pyz_lock = threading.Lock()

    def __repr__(self):
        return 'LabRun(%s)' % self.name

    def start(self):
        self.sweep_stale()
        os.makedirs(self.state_dir, exist_ok=True)
        # A second try covers another lab removing the empty prefix dir.
        try:
            self.group.create()
        except cgroups.CgroupError:
            self.group.create()
        # The lab competes with the rest of the machine at these levels.
        for group in (cgroups.Group(self.mounts, self.prefix), self.group):
            group.write('cpu', 'cpu.shares', self.settings.cpu_shares)
        self._reaper = reaper.spawn(
            self.prefix, self.name,
            '' if self.settings.keep_state else self.state_dir,
            os.path.join(self.settings.state_dir,
                         '%s.reaper.log' % self.name),
            mounts_dir=self.state_dir)
        LOG.info('lab run %s started (cgroups %s, files %s, reaper pid '
                 '%d)', self.name, self.group.relpath, self.state_dir,
                 self._reaper.pid)
        return self

    def sweep_stale(self):
        """Remove what runs of dead processes left behind."""
        for name in cgroups.stale_runs(self.mounts, self.prefix):
            survivors, left = cgroups.sweep(
                cgroups.Group(self.mounts, '%s/%s' % (self.prefix, name)))
            LOG.warning('removed stale lab run %s (survivors %s, left %s)',
                        name, sorted(survivors), left)
        base = self.settings.state_dir
        if not os.path.exists(base):
            return
        for entry in os.listdir(base):
            if entry.startswith('run-') and '.' not in entry and \
                    not cgroups.run_owner_alive(entry):
                # Host disks first: removing a mounted directory's files
                # would leave the mount and its loop device behind.
                hostdisk.release_under(
                    os.path.join(base, entry),
                    hostdisk.image_dir(self.prefix, entry))
                if not self.settings.keep_state:
                    shutil.rmtree(os.path.join(base, entry),
                                  ignore_errors=True)

    def stop(self):
        survivors, left = cgroups.sweep(self.group)
        if survivors or left:
            LOG.warning('lab run %s: survivors %s, cgroups left %s',
                        self.name, sorted(survivors), left)
        cgroups.remove_prefix_if_empty(self.mounts, self.prefix)
        problems = hostdisk.release_under(
            self.state_dir, hostdisk.image_dir(self.prefix, self.name))
        if problems:
            LOG.warning('lab run %s: host disks not released: %s',
                        self.name, '; '.join(problems))
        if not self.settings.keep_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        if self._reaper is not None:
            self._reaper.stdin.close()
            try:
                self._reaper.wait(timeout=10)
            except subprocess.TimeoutExpired:
                LOG.warning('lab reaper %d still running', self._reaper.pid)
        LOG.info('lab run %s stopped', self.name)

    def check_host_free(self, name):
        """Raise RuntimeError when lab host ``name`` already runs here or
        is claimed by a compute that is starting it."""
        with self._hosts_lock:
            if name in self.hosts or name in self._claimed:
                raise RuntimeError(
                    'lab host %s is already running in lab run %s (a '
                    'nova-compute for it is up); stop it first'
                    % (name, self.name))

    def claim_host(self, name):
        """Claim lab host ``name`` before starting it: raises as
        :meth:`check_host_free`, and in one step takes the name, so that
        of two computes starting the same host only one gets on. Pair
        with :meth:`add_host` (started) or :meth:`release_claim`."""
        with self._hosts_lock:
            self.check_host_free(name)
            self._claimed.add(name)

    def release_claim(self, name):
        with self._hosts_lock:
            self._claimed.discard(name)

    def add_host(self, lab_host):
        """Track a started :class:`nova_shadow_lab.host.LabHost` (its
        claim, if any, becomes the host); raises when another host of
        that name runs."""
        with self._hosts_lock:
            if lab_host.name in self.hosts:
                self.check_host_free(lab_host.name)
            self.hosts[lab_host.name] = lab_host
            self._claimed.discard(lab_host.name)

    def remove_host(self, lab_host):
        with self._hosts_lock:
            if self.hosts.get(lab_host.name) is lab_host:
                del self.hosts[lab_host.name]

    @property
    def reaper_pid(self):
        return self._reaper.pid if self._reaper else None

    def loadgen_pyz(self):
        """Path of loadgen.pyz built from this checkout (once per run)."""
        with self._pyz_lock:
            if self._pyz is None:
                from loadgen import build
                self._pyz = build.build_pyz(
                    os.path.join(self.state_dir, 'loadgen.pyz'))
            return self._pyz


_run_lock = threading.Lock()
_run = None
_run_refs = 0


def acquire(settings):
    """The process's lab run (started on first use); pair with release."""
    global _run, _run_refs
    with _run_lock:
        if _run is None:
            _run = LabRun(settings).start()
        elif (_run.settings.cgroup_prefix, _run.settings.state_dir) != (
                settings.cgroup_prefix, settings.state_dir):
            raise RuntimeError(
                'a lab run (%s) with cgroup_prefix %r and state_dir %r is '
                'active in this process; one run at a time'
                % (_run.name, _run.settings.cgroup_prefix,
                   _run.settings.state_dir))
        _run_refs += 1
        return _run


def release(run):
    """Drop one reference; the last one stops the run."""
    global _run, _run_refs
    with _run_lock:
        if run is not _run:
            return
        _run_refs -= 1
        if _run_refs > 0:
            return
        _run = None
    run.stop()


def current():
    """The active run, or None."""
    return _run
