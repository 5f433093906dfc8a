"""The lab's reaper: removes a run's processes, cgroups and files when the
process that owns the run is gone, however it went (SIGKILL included).

:func:`spawn` starts ``python -I`` on this module in a new session with a
pipe on its stdin; the owner keeps the write end. The reaper blocks reading
the pipe. End of file means the owner closed it (a clean stop) or died
(the kernel closes the pipe). The reaper then kills every process in the
run's cgroups, removes the cgroups in every hierarchy, unmounts the run's
host disks (and removes their RAM backing files), removes the run's state
directory, and exits. Standard library only.

Bwrap's ``--die-with-parent`` already kills sandboxes when their launcher
thread dies; the reaper covers the rest (escaped children, background
tenants, cgroups, files).
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BOOT = ('import runpy, sys; sys.path.insert(0, sys.argv[1]); '
         'del sys.argv[1]; '
         'runpy.run_module("nova_shadow_lab.reaper", run_name="__main__")')


def spawn(prefix, run, state_dir, log_path='', mounts_dir=''):
    """Start a reaper for ``<prefix>/<run>``; return its ``Popen``.

    The caller owns ``popen.stdin``: closing it (or dying) starts the
    sweep. ``log_path``, when given, receives what could not be removed
    (nothing is written when the sweep is complete). Host disks mounted
    below ``mounts_dir`` (default ``state_dir``) are unmounted even when
    the state directory is kept.
    """
    argv = [sys.executable, '-I', '-c', _BOOT, _PACKAGE_ROOT,
            '--prefix', prefix, '--run', run, '--state-dir', state_dir,
            '--log', log_path, '--mounts-dir', mounts_dir or state_dir]
    return subprocess.Popen(argv, stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)


def reap(prefix, run, state_dir, timeout=10.0, mounts_dir=''):
    """Sweep one run; return a list of what could not be removed."""
    from nova_shadow_lab import cgroups
    from nova_shadow_lab import hostdisk

    mounts = cgroups.hierarchies()
    problems = []
    group = cgroups.Group(mounts, '%s/%s' % (prefix, run))
    survivors, left = cgroups.sweep(group, timeout=timeout)
    problems += ['pid %d survived' % p for p in sorted(survivors)]
    problems += ['cgroup %s remains' % d for d in left]
    cgroups.remove_prefix_if_empty(mounts, prefix)
    problems += hostdisk.release_under(mounts_dir or state_dir,
                                       hostdisk.image_dir(prefix, run))
    if state_dir and os.path.exists(state_dir):
        shutil.rmtree(state_dir, ignore_errors=True)
        if os.path.exists(state_dir):
            problems.append('state dir %s remains' % state_dir)
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(prog='nova-shadow-lab-reaper')
    parser.add_argument('--prefix', required=True)
    parser.add_argument('--run', required=True)
    parser.add_argument('--state-dir', default='')
    parser.add_argument('--log', default='')
    parser.add_argument('--mounts-dir', default='')
    args = parser.parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)
    # Blocks until the owner closes the pipe or dies.
    while sys.stdin.buffer.read(65536):
        pass
    started = time.monotonic()
    problems = reap(args.prefix, args.run, args.state_dir,
                    mounts_dir=args.mounts_dir)
    if problems and args.log:
        with open(args.log, 'a') as log:
            for problem in problems:
                log.write('reaper %s: %s\n' % (args.run, problem))
            log.write('reaper %s: gave up after %.3f s\n'
                      % (args.run, time.monotonic() - started))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
