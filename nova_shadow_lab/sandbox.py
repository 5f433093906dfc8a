"""A confined process tree: bubblewrap in a private root, in lab cgroups.

``Sandbox.start`` runs, from the run's launcher thread::

    sh -c '<join each cgroup.procs>; exec "$@"' ... bwrap <args> -- CMD

so the shell joins the instance's cgroups (every hierarchy) before
``exec bwrap``, and everything below inherits them. The wrapper starts in
a session (and process group) of its own: a Ctrl-C in the lab's terminal
(SIGINT to its foreground process group) reaches the lab, never its
sandboxes, which stop when the lab stops them (or, should it die, by
``--die-with-parent`` and the reaper). Inside the sandbox a
second shell writes ``started`` to a pipe (its stdin; the command gets
``/dev/null``) and execs the command: ``start``
returns once that has arrived, and raises :class:`SandboxStartError`
(having killed and removed what it started) when the pipe closes first
(the cgroups could not be joined or bubblewrap could not set the
sandbox up) or after :data:`START_TIMEOUT_S`. Bubblewrap gives the
command a private root: ``/usr`` read-only (plus the ``/bin``, ``/lib``...
symlinks or read-only binds), per-sandbox writable ``/opt /var /tmp /etc
/root`` (host directories under the sandbox's directory) on a read-only
root, ``/proc`` of a
new pid namespace with ``/proc/sys`` (the machine's kernel settings)
read-only, a minimal ``/dev`` whose ``/dev/console`` is the
console FIFO, a tmpfs ``/run``, new ipc and uts namespaces, no
capabilities, ``--die-with-parent``; it shares the host's network
namespace, so a collector on 127.0.0.1 is reachable.

Change the sandbox's view of the machine in :func:`bwrap_args`.
"""

import json
import os
import select
import shutil
import subprocess
import time

from nova_shadow_lab import cgroups

WRITABLE_DIRS = ('opt', 'var', 'tmp', 'etc', 'root')
TOP_LEVEL_LINKS = ('bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32')
ETC_FILES = ('passwd', 'group', 'nsswitch.conf', 'ld.so.cache',
             'resolv.conf', 'host.conf', 'services', 'protocols',
             'localtime')
PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
# Exit status of the wrapper when a cgroup cannot be joined.
JOIN_FAILED = 121
_JOIN_AND_EXEC = ('n=$1; shift; '
                  'while [ "$n" -gt 0 ]; do '
                  'echo $$ > "$1" || exit %d; shift; n=$((n - 1)); '
                  'done; exec "$@"' % JOIN_FAILED)
# Runs inside the sandbox, so bubblewrap has set it up: says so on its
# stdin (the write end of a pipe; dash takes no fd above 9), gives the
# command /dev/null instead and execs it.
STARTED = b'started'
_SIGNAL_AND_EXEC = ('printf %s >&0 || exit 1; exec </dev/null; exec "$@"'
                    % STARTED.decode())
# How long a sandbox may take to be set up before start gives up.
START_TIMEOUT_S = 30.0
# How much of what the wrapper and bubblewrap wrote a start error quotes.
START_ERROR_BYTES = 2000


class SandboxStartError(RuntimeError):
    """The sandbox did not start (cgroups, bubblewrap); nothing is left."""


def bwrap_args(root, hostname, console_fifo, binds=(), command=()):
    """bwrap's argv for a sandbox whose writable dirs live in ``root``.

    ``binds`` are ``(host_path, sandbox_path, writable)`` tuples added
    after the standard layout.
    """
    args = ['bwrap', '--die-with-parent', '--new-session',
            '--unshare-pid', '--unshare-ipc', '--unshare-uts',
            '--hostname', hostname, '--cap-drop', 'ALL', '--clearenv',
            '--setenv', 'PATH', PATH, '--setenv', 'HOME', '/root',
            '--setenv', 'LANG', 'C.UTF-8',
            '--ro-bind', '/usr', '/usr']
    for name in TOP_LEVEL_LINKS:
        host_path = '/' + name
        if os.path.islink(host_path):
            args += ['--symlink', os.readlink(host_path), host_path]
        elif os.path.isdir(host_path):
            args += ['--ro-bind', host_path, host_path]
    # The new /proc's sys/ is the machine's kernel settings, and the
    # sandbox runs as uid 0, which owns them: read-only (bubblewrap
    # covers sysrq-trigger, irq and bus itself).
    args += ['--proc', '/proc', '--ro-bind', '/proc/sys', '/proc/sys',
             '--dev', '/dev',
             '--bind', console_fifo, '/dev/console', '--tmpfs', '/run']
    for name in WRITABLE_DIRS:
        args += ['--bind', os.path.join(root, name), '/' + name]
    for host_path, sandbox_path, writable in binds:
        args += ['--bind' if writable else '--ro-bind', host_path,
                 sandbox_path]
    # The root itself (bubblewrap's tmpfs, holding the mount points) is
    # read-only: only the directories mounted above stay writable. Last,
    # since every mount point must be made before; not recursive.
    args += ['--remount-ro', '/', '--chdir', '/', '--']
    return args + list(command)


def kernel_hostname(name):
    """The name the kernel takes for ``name`` (at most 64 bytes): the
    first label of a fully qualified name, as cloud-init sets it, cut to
    63 characters."""
    return name.split('.', 1)[0][:63] or name[:63]


def _prepare_etc(etc, hostname, fqdn=None):
    for name in ETC_FILES:
        source = os.path.join('/etc', name)
        target = os.path.join(etc, name)
        if os.path.exists(source) and not os.path.exists(target):
            try:
                shutil.copyfile(source, target)
            except OSError:
                pass
    alternatives = os.path.join(etc, 'alternatives')
    if os.path.isdir('/etc/alternatives') and not os.path.exists(
            alternatives):
        shutil.copytree('/etc/alternatives', alternatives, symlinks=True)
    with open(os.path.join(etc, 'hostname'), 'w') as f:
        f.write(hostname + '\n')
    with open(os.path.join(etc, 'hosts'), 'w') as f:
        f.write('127.0.0.1\tlocalhost\n127.0.1.1\t%s\n'
                '::1\tlocalhost ip6-localhost ip6-loopback\n'
                % (hostname if fqdn in (None, hostname)
                   else '%s %s' % (fqdn, hostname)))


class Sandbox:
    """One confined process tree with its own root, cgroup and console.

    Parameters
    ----------
    run : nova_shadow_lab.runtime.LabRun
    group : nova_shadow_lab.cgroups.Group
        created and limited by the caller; the sandbox joins it.
    directory : str
        host directory for ``root/`` (the writable dirs), ``console`` (the
        FIFO), ``console.log`` and ``launch.json``.
    hostname : str
        the sandbox's host name; a fully qualified one (Nova takes up to
        255 characters) names the sandbox by its first label
        (:func:`kernel_hostname`) and is kept in its ``/etc/hosts``.
    command : list of str
        what runs inside, e.g. ``['/usr/bin/python3', '/.lab/init.py']``.
    binds : list of (host_path, sandbox_path, writable)
    console_max_bytes : int
    """

    def __init__(self, run, group, directory, hostname, command, binds=(),
                 console_max_bytes=1024 * 1024):
        self.run = run
        self.group = group
        self.directory = directory
        self.root = os.path.join(directory, 'root')
        self.hostname = kernel_hostname(hostname)
        self.fqdn = hostname
        self.command = list(command)
        self.binds = list(binds)
        self.console_max_bytes = console_max_bytes
        self.console_log = os.path.join(directory, 'console.log')
        self.fifo = os.path.join(directory, 'console')
        self.popen = None
        self.started_at = None
        self._console = None
        self._console_size = 0
        self._ready_fd = None

    def prepare(self):
        """Create the directories, ``/etc`` skeleton and console FIFO."""
        for name in WRITABLE_DIRS:
            os.makedirs(os.path.join(self.root, name), exist_ok=True)
        # The sandbox's own /tmp, sticky and world-writable as usual.
        os.chmod(os.path.join(self.root, 'tmp'), 0o1777)  # noqa: S103
        for sub in ('log', 'tmp', 'lib'):
            os.makedirs(os.path.join(self.root, 'var', sub), exist_ok=True)
        _prepare_etc(os.path.join(self.root, 'etc'), self.hostname,
                     self.fqdn)
        if not os.path.exists(self.fifo):
            os.mkfifo(self.fifo, 0o600)

    def start(self):
        """Join the cgroup and start the command; returns self once the
        command runs in the set-up sandbox (:meth:`launch` then
        :meth:`confirm_started`).

        Raises :class:`SandboxStartError` when it does not: the
        processes started are killed, the group removed (as
        :meth:`stop`) and the console closed; the message says why,
        quoting what the wrapper and bubblewrap wrote.
        """
        self.launch()
        return self.confirm_started()

    def launch(self):
        """Start the wrapper that joins the cgroup and execs bubblewrap;
        :meth:`confirm_started` must follow."""
        self.prepare()
        self._console_size = (os.path.getsize(self.console_log)
                              if os.path.exists(self.console_log) else 0)
        self._console = self.run.consoles.open(
            self.fifo, self.console_log, self.console_max_bytes)
        procs = self.group.procs_files()
        ready_r, ready_w = os.pipe()
        command = (['/bin/sh', '-c', _SIGNAL_AND_EXEC, 'nova-shadow-lab']
                   + self.command)
        argv = (['/bin/sh', '-c', _JOIN_AND_EXEC, 'nova-shadow-lab',
                 str(len(procs))] + procs +
                bwrap_args(self.root, self.hostname, self.fifo, self.binds,
                           command))
        writer = self._console.writer_fd()
        try:
            self.popen = self.run.launcher.popen(
                argv, stdin=ready_w, stdout=writer, stderr=writer,
                close_fds=True, cwd='/',
                env={'PATH': PATH, 'LANG': 'C.UTF-8'},
                start_new_session=True)
        except BaseException:
            os.close(ready_r)
            self.run.consoles.close(self._console)
            self._console = None
            raise
        finally:
            os.close(writer)
            os.close(ready_w)
        self._ready_fd = ready_r
        self.started_at = time.time()
        with open(os.path.join(self.directory, 'launch.json'), 'a') as f:
            f.write(json.dumps({'t': round(self.started_at, 3),
                                'pid': self.popen.pid,
                                'cgroup': self.group.relpath,
                                'argv': argv}) + '\n')
        return self

    def confirm_started(self, timeout=START_TIMEOUT_S):
        """Wait until the command runs in the set-up sandbox; returns
        self, or stops what :meth:`launch` started and raises
        :class:`SandboxStartError`."""
        ready, self._ready_fd = self._ready_fd, None
        try:
            started = _read_signal(ready, timeout)
        finally:
            os.close(ready)
        if started:
            return self
        self.stop()
        raise SandboxStartError(self._start_failure(self._console_size))

    def _start_failure(self, console_size):
        status = self.popen.poll()
        if status is None:
            reason = 'not set up within %.0f s' % START_TIMEOUT_S
        elif status == JOIN_FAILED:
            reason = 'cannot join cgroup %s' % self.group.relpath
        else:
            reason = 'bubblewrap exited with status %d' % status
        said = ''
        if os.path.exists(self.console_log):
            with open(self.console_log, 'rb') as f:
                f.seek(min(console_size, os.fstat(f.fileno()).st_size))
                said = f.read().decode('utf-8', 'replace').strip()
        if said:
            reason += ': %s' % said[-START_ERROR_BYTES:]
        return 'sandbox %s did not start: %s' % (self.hostname, reason)

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout=5.0):
        """Kill the tree, reap it, remove its cgroup; return leftovers as
        ``(surviving pids, cgroup dirs left)``."""
        survivors, left = cgroups.sweep(self.group, timeout=timeout)
        if self.popen is not None:
            try:
                self.popen.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                survivors = set(survivors) | {self.popen.pid}
        if self._console is not None:
            self.run.consoles.close(self._console)
            self._console = None
        return survivors, left

    def console_output(self, max_bytes=100 * 1024):
        if not os.path.exists(self.console_log):
            return ''
        with open(self.console_log, 'rb') as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            return f.read().decode('utf-8', 'replace')


def _read_signal(fd, timeout):
    """True once :data:`STARTED` arrives on ``fd``; False at end of file
    (every writer gone) or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    data = b''
    while len(data) < len(STARTED):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            return False
        chunk = os.read(fd, len(STARTED) - len(data))
        if not chunk:
            return False
        data += chunk
    return data == STARTED
