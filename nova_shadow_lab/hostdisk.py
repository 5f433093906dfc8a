"""A lab host's disk of its own: a RAM-backed block device.

Without one, every lab host's instance disks are directories on the disk
holding ``lab.state_dir``, which the rest of the machine shares: their
I/O figures move with whatever else uses that disk, and cgroup v1 blkio
throttles hold for each instance alone, not for the host. With
``share.disk`` a host gets an ext4 file system on a loop device whose
backing file lies in ``/dev/shm`` (RAM, so no other I/O on the machine
reaches it), mounted on the host's directory; every instance and tenant
of the host joins the host's blkio group, whose throttles on that device
are then one budget that the host's I/O competes for, as on one disk.

:func:`create` makes and mounts it; :func:`release` unmounts it (the loop
device goes with the mount) and removes the backing file;
:func:`release_under` does so for every mount below a directory (what
the reaper and the stale-run sweep call). Standard library only (the
reaper imports it).
"""

import os
import shutil
import subprocess

from nova_shadow_lab import cgroups

SHM = '/dev/shm'
MOUNTINFO = cgroups.MOUNTINFO


class HostDiskError(RuntimeError):
    pass


def image_dir(prefix, run):
    """Where a run's backing files live (RAM)."""
    return os.path.join(SHM, '%s-%s' % (prefix, run))


def _run(argv):
    try:
        done = subprocess.run(argv, capture_output=True, text=True,
                              timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise HostDiskError('%s: %s' % (argv[0], exc)) from exc
    if done.returncode != 0:
        raise HostDiskError('%s failed (%d): %s' % (
            ' '.join(argv[:2]), done.returncode,
            (done.stderr or done.stdout).strip()[:300]))
    return done.stdout


def mounts(mountinfo=MOUNTINFO):
    """``[(mount point, source)]`` of this mount namespace."""
    return [(point, source) for point, _fstype, source, _options
            in cgroups.mount_entries(mountinfo)]


def create(image, mountpoint, size_mb):
    """A ``size_mb`` ext4 file system on a loop device backed by
    ``image`` (under :data:`SHM`), mounted on ``mountpoint``; returns the
    loop device's ``major:minor``."""
    os.makedirs(os.path.dirname(image), exist_ok=True)
    os.makedirs(mountpoint, exist_ok=True)
    with open(image, 'wb') as f:
        f.truncate(int(size_mb) * 1024 * 1024)
    try:
        # No journal: the host's I/O budget goes to its instances' I/O.
        _run(['mkfs.ext4', '-q', '-F', '-O', '^has_journal', image])
        _run(['mount', '-o', 'loop,noatime', image, mountpoint])
        source = dict(mounts()).get(mountpoint)
        if not source or not source.startswith('/dev/loop'):
            raise HostDiskError('%s is not mounted from a loop device '
                                '(source %r)' % (mountpoint, source))
        st = os.stat(source)
        return '%d:%d' % (os.major(st.st_rdev), os.minor(st.st_rdev))
    except BaseException:
        release(mountpoint, image)
        raise


def release(mountpoint, image=None):
    """Unmount ``mountpoint`` (lazily if busy) and remove ``image``;
    returns what could not be done."""
    problems = []
    if any(m == mountpoint for m, _s in mounts()):
        try:
            _run(['umount', mountpoint])
        except HostDiskError:
            try:
                _run(['umount', '-l', mountpoint])
            except HostDiskError as exc:
                problems.append(str(exc))
    if image:
        try:
            os.unlink(image)
        except FileNotFoundError:
            pass
        except OSError as exc:
            problems.append('%s: %s' % (image, exc))
    return problems


def release_under(directory, images=None):
    """Unmount every mount below ``directory`` (deepest first) and remove
    the ``images`` directory; returns what could not be done."""
    problems = []
    base = directory.rstrip('/') + '/' if directory else None
    below = sorted((m for m, _s in mounts()
                    if base and m.startswith(base)), key=len, reverse=True)
    for mountpoint in below:
        problems += release(mountpoint)
    if images and os.path.exists(images):
        shutil.rmtree(images, ignore_errors=True)
        if os.path.exists(images):
            problems.append('%s remains' % images)
    return problems
