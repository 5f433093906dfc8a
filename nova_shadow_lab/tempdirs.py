"""The lab's temporary directories, named for the process that owns them.

:func:`make` creates ``<tmp>/nova-shadow-lab-<pid>-<start>-<random>``,
where ``<pid>`` and ``<start>`` (its start time in clock ticks since
boot) name the process that made it; ``<tmp>`` is :mod:`tempfile`'s
directory (``$TMPDIR``, else ``/tmp``). The lab keeps in them what lives
for one lab: the ``nova-shadow lab`` command's ``clouds.yaml``, service
config, log and history, and a LabCloud's Nova databases and lock files.
A lab that stops removes its own; one that is SIGKILLed cannot, so
:func:`sweep_stale`, which every lab start calls, removes those whose
owner is gone. The start time tells a live owner from a new process that
reuses a dead owner's pid; a directory with a mount below it is left
alone (and logged), since removing it would remove the mounted files.
"""

import logging
import os
import re
import shutil
import tempfile

from nova_shadow_lab import cgroups

LOG = logging.getLogger(__name__)
PREFIX = 'nova-shadow-lab-'
_OWNED = re.compile(r'^%s(\d+)-(\d+)-[A-Za-z0-9_]+\Z' % re.escape(PREFIX))


def make(base=None):
    """Create a directory owned by this process in ``base`` (default:
    :mod:`tempfile`'s); return its path."""
    pid = os.getpid()
    prefix = '%s%d-%d-' % (PREFIX, pid, cgroups.process_start_time(pid) or 0)
    return tempfile.mkdtemp(prefix=prefix, dir=base)


def owner_alive(name):
    """False when ``name`` is a lab temporary directory whose owner
    process is gone; True for any other name."""
    match = _OWNED.match(name)
    if not match:
        return True
    pid, start = int(match.group(1)), int(match.group(2))
    return cgroups.process_start_time(pid) == start


def stale(base=None):
    """Paths of the lab directories in ``base`` whose owner is gone."""
    base = base or tempfile.gettempdir()
    try:
        names = os.listdir(base)
    except OSError:
        return []
    return sorted(os.path.join(base, name) for name in names
                  if _OWNED.match(name) and not owner_alive(name))


def _mounted_below(path):
    below = os.path.join(os.path.realpath(path), '')
    try:
        with open('/proc/self/mounts', encoding='utf-8') as f:
            points = [line.split()[1] for line in f if line.strip()]
    except OSError:
        return []
    return [p for p in points if os.path.join(p, '').startswith(below)]


def sweep_stale(base=None):
    """Remove the lab directories in ``base`` left by dead processes;
    return the paths removed."""
    removed = []
    for path in stale(base):
        mounts = _mounted_below(path)
        if mounts:
            LOG.warning('stale lab directory %s kept: mounts below it (%s)',
                        path, ', '.join(mounts))
            continue
        shutil.rmtree(path, ignore_errors=True)
        if os.path.exists(path):
            LOG.warning('stale lab directory %s could not be removed', path)
            continue
        LOG.info('removed stale lab directory %s', path)
        removed.append(path)
    return removed
