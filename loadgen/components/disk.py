"""Disk component: random or sequential block I/O on a file.

``prepare`` creates a file of ``file_size_mb`` that has **no name**: on
Linux it is opened with ``O_TMPFILE`` in ``dir`` (default: the run's
parent directory), elsewhere it is created and unlinked at once. Its data
lives exactly as long as an open descriptor, so a run that is killed
(even with SIGKILL) leaves nothing on disk. The file is filled with random
bytes (not sparse, no unwritten extents), synced and dropped from the
page cache. Given ``file``, an existing file (or block device) is used in
place instead: never created, resized or removed; its first
``file_size_mb`` are used, and writes overwrite its data.

With ``engine: sync`` (default) ``iodepth`` worker processes inherit the
descriptor and each issue synchronous ``preadv``/``pwritev`` calls of
``block_size_kb`` from one page-aligned buffer, so iodepth N keeps N
requests in flight (like fio's ``psync`` with N jobs). With ``engine:
aio`` one worker keeps N requests in flight with Linux native AIO
(``loadgen.components.aio``; like fio's ``libaio`` with ``iodepth=N``),
falling back to ``sync`` where that is unavailable. ``read_ratio``
picks reads vs writes, ``fsync`` syncs after every write (counted in its
latency), ``direct`` sets ``O_DIRECT`` when the platform and file system
allow it (otherwise buffered, with a warning, reported in the summary).
Sequential workers each walk their own slice of the file.

The per-operation path is kept short (it is what a Python tool adds to
the device's latency): one specialised closure per read/write mix, no
allocation, offsets from a local generator state, the latency timed with
``perf_counter_ns`` around the system call only and recorded in the
worker's preallocated shared histogram; the worker runs with the garbage
collector off (see ``base``).

Emits ``disk_iops``, ``disk_mbps``, ``disk_p50/p95/p99_latency_ms``.
"""

import errno
import logging
import math
import mmap
import os
import random
import stat
import tempfile
import time

from loadgen import stats
from loadgen.components import aio
from loadgen.components import base
from loadgen.errors import ProfileError

LOG = logging.getLogger(__name__)
FILL_CHUNK = 1 << 20
# errno values meaning "this file system / kernel has no O_TMPFILE".
_NO_TMPFILE = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL)


def open_anonymous(directory):
    """A read-write descriptor of a new file with no name in ``directory``.

    ``O_TMPFILE`` where the kernel and file system have it; otherwise a
    uniquely named file that is unlinked before this returns.
    """
    flag = getattr(os, 'O_TMPFILE', 0)
    if flag:
        try:
            return os.open(directory, flag | os.O_RDWR, 0o600)
        except OSError as exc:
            if exc.errno not in _NO_TMPFILE:
                raise
    fd, path = tempfile.mkstemp(prefix='loadgen-disk-', suffix='.dat',
                                dir=directory)
    os.unlink(path)
    return fd


def enable_direct(fd, block_bytes):
    """Set ``O_DIRECT`` on ``fd`` if an aligned read then works.

    Returns True when direct I/O is in use; on failure the descriptor is
    left as it was (buffered).
    """
    flag = getattr(os, 'O_DIRECT', 0)
    if not flag:
        return False
    import fcntl
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | flag)
    except OSError:
        return False
    buffer = _aligned_buffer(block_bytes)
    try:
        os.preadv(fd, [buffer], 0)
        return True
    except OSError:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
        return False
    finally:
        buffer.close()


def _aligned_buffer(size):
    """A page-aligned (O_DIRECT-safe) private anonymous buffer."""
    flags = getattr(mmap, 'MAP_PRIVATE', 0) | getattr(mmap, 'MAP_ANONYMOUS',
                                                       0)
    if flags:
        return mmap.mmap(-1, size, flags=flags)
    return mmap.mmap(-1, size)


def _fill(fd, size):
    block = os.urandom(FILL_CHUNK)
    view = memoryview(block)
    offset = 0
    while offset < size:
        offset += os.pwrite(fd, view[:min(size - offset, FILL_CHUNK)],
                            offset)
    os.fsync(fd)


def _drop_cache(fd):
    if hasattr(os, 'posix_fadvise'):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def _size_of(fd):
    info = os.fstat(fd)
    if stat.S_ISBLK(info.st_mode):
        return os.lseek(fd, 0, os.SEEK_END)
    return info.st_size


class DiskComponent(base.Component):
    name = 'disk'
    histogram = True

    def __init__(self, params, workdir):
        super().__init__(params, workdir)
        self.directory = params.get('dir') or workdir
        self.existing = params.get('file')
        self.block_bytes = params['block_size_kb'] * 1024
        size = int(params['file_size_mb'] * 2 ** 20)
        self.blocks = max(1, size // self.block_bytes)
        self.direct = False
        self.fd = None
        self.engine = params.get('engine') or 'sync'
        self._block = None

    def worker_count(self):
        return 1 if self.engine == 'aio' else self.params['iodepth']

    def rate_target(self):
        return self.params['target_iops']

    def prepare(self):
        # What writes write: random once here, copied by every worker
        # (random bytes for each of 256 workers cost seconds of CPU
        # while the run starts).
        self._block = os.urandom(self.block_bytes)
        if self.existing:
            self.fd = self._open_existing()
        else:
            self.fd = open_anonymous(self.directory)
            _fill(self.fd, self.blocks * self.block_bytes)
        _drop_cache(self.fd)
        if self.params['direct']:
            self.direct = enable_direct(self.fd, self.block_bytes)
            if not self.direct:
                LOG.warning('O_DIRECT not supported in %s; using '
                            'buffered I/O', self.existing or self.directory)
        if self.engine == 'aio':
            try:
                aio.Context(self.params['iodepth']).close()
            except OSError as exc:
                LOG.warning('native AIO unavailable (%s); using %d '
                            'synchronous workers', exc,
                            self.params['iodepth'])
                self.engine = 'sync'

    def _open_existing(self):
        field = 'components.disk.file'
        mode = os.O_RDONLY if self.params['read_ratio'] >= 1.0 \
            else os.O_RDWR
        try:
            fd = os.open(self.existing, mode)
        except OSError as exc:
            raise ProfileError(field, 'cannot open %s: %s' % (
                self.existing, exc.strerror)) from None
        blocks = min(self.blocks, _size_of(fd) // self.block_bytes)
        if blocks < 1:
            os.close(fd)
            raise ProfileError(field, '%s is smaller than one block (%d '
                               'bytes)' % (self.existing, self.block_bytes))
        self.blocks = blocks
        return fd

    def cleanup(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def setup_worker(self, index, state):
        if self.engine == 'aio':
            return self._setup_aio_worker(state)
        fd = self.fd
        block_bytes = self.block_bytes
        blocks = self.blocks
        buffer = _aligned_buffer(block_bytes)
        buffer.write(self._block)
        buffers = [buffer]
        read_ratio = self.params['read_ratio']
        sync = self.params['fsync']
        seed = random.SystemRandom().getrandbits(64)
        rand = random.Random(seed).random
        choose = random.Random(seed ^ 0x5DEECE66D).random
        clock = time.perf_counter_ns
        preadv, pwritev, fsync = os.preadv, os.pwritev, os.fsync
        counters = state.counters
        histogram = state.histogram
        log2 = math.log2
        per_octave = stats.BUCKETS_PER_OCTAVE
        top = stats.NUM_BUCKETS - 1
        ops_i, bytes_i, busy_i = base.OPS, base.BYTES, base.BUSY
        sequential = self.params['access'] == 'sequential'
        span = max(1, blocks // self.worker_count())
        first = (index * span) % blocks
        position = 0
        always_read = read_ratio >= 1.0
        never_read = read_ratio <= 0.0

        def operation():
            nonlocal position
            if sequential:
                offset = (first + position) % blocks * block_bytes
                position = position + 1 if position + 1 < span else 0
            else:
                offset = int(rand() * blocks) * block_bytes
            try:
                if always_read or (not never_read and
                                   choose() < read_ratio):
                    started = clock()
                    preadv(fd, buffers, offset)
                    ended = clock()
                else:
                    started = clock()
                    pwritev(fd, buffers, offset)
                    if sync:
                        fsync(fd)
                    ended = clock()
            except OSError:
                base.record_error(state)
                time.sleep(0.01)
                return
            latency = ended - started
            counters[ops_i] += 1
            counters[bytes_i] += block_bytes
            counters[busy_i] += latency * 1e-9
            bucket = int(log2(latency) * per_octave) if latency > 1 else 0
            histogram[bucket if bucket < top else top] += 1
        return operation

    def _setup_aio_worker(self, state):
        """One process keeping ``iodepth`` requests in flight (``aio``).

        An operation reaps at least one completion and resubmits every
        free slot in one ``io_submit``; a request's latency runs from just
        before the ``io_submit`` that queued it to the return of the
        ``io_getevents`` that reaped it (fio libaio's total latency).
        ``pause`` waits for everything in flight before the pacer sleeps.
        """
        import ctypes
        depth = self.params['iodepth']
        context = aio.Context(depth)
        block_bytes = self.block_bytes
        blocks = self.blocks
        read_ratio = self.params['read_ratio']
        sequential = self.params['access'] == 'sequential'
        seed = random.SystemRandom().getrandbits(64)
        rand = random.Random(seed).random
        choose = random.Random(seed ^ 0x5DEECE66D).random
        iocbs = (aio.IOCB * depth)()
        self._aio_buffers = []
        for slot, iocb in enumerate(iocbs):
            buffer = _aligned_buffer(block_bytes)
            buffer.write(self._block)
            self._aio_buffers.append(buffer)
            iocb.data = slot
            iocb.fildes = self.fd
            iocb.buf = aio.buffer_address(buffer)
            iocb.nbytes = block_bytes
        addresses = [ctypes.addressof(iocb) for iocb in iocbs]
        pointers = (ctypes.c_void_p * depth)()
        events = (aio.IOEvent * depth)()
        submitted_at = [0] * depth
        free = list(range(depth))
        clock = time.perf_counter_ns
        counters = state.counters
        histogram = state.histogram
        log2 = math.log2
        per_octave = stats.BUCKETS_PER_OCTAVE
        top = stats.NUM_BUCKETS - 1
        ops_i, bytes_i, busy_i = base.OPS, base.BYTES, base.BUSY
        pread, pwrite = aio.IOCB_CMD_PREAD, aio.IOCB_CMD_PWRITE
        always_read = read_ratio >= 1.0
        never_read = read_ratio <= 0.0
        position = 0

        def submit_free():
            nonlocal position
            count = len(free)
            for index in range(count):
                slot = free[index]
                iocb = iocbs[slot]
                if sequential:
                    iocb.offset = position * block_bytes
                    position = position + 1 if position + 1 < blocks else 0
                else:
                    iocb.offset = int(rand() * blocks) * block_bytes
                iocb.opcode = pread if always_read or (
                    not never_read and choose() < read_ratio) else pwrite
                pointers[index] = addresses[slot]
            started = clock()
            try:
                taken = context.submit(count, pointers)
            except OSError:
                taken = 0
            for index in range(taken):
                submitted_at[free[index]] = started
            del free[:taken]
            if taken < count:
                base.record_error(state)
                time.sleep(0.01)

        def reap(minimum):
            done = context.getevents(minimum, events)
            ended = clock()
            ok = 0
            busy = 0
            for index in range(done):
                event = events[index]
                slot = event.data
                free.append(slot)
                if event.res != block_bytes:
                    base.record_error(state)
                    continue
                latency = ended - submitted_at[slot]
                busy += latency
                ok += 1
                bucket = int(log2(latency) * per_octave) if latency > 1 \
                    else 0
                histogram[bucket if bucket < top else top] += 1
            if ok:
                counters[ops_i] += ok
                counters[bytes_i] += ok * block_bytes
                counters[busy_i] += busy * 1e-9

        def operation():
            if free:
                submit_free()
            if len(free) < depth:
                reap(1)
                submit_free()

        def pause():
            while len(free) < depth:
                reap(depth - len(free))

        operation.pause = pause
        return operation

    def component_metrics(self, delta, elapsed_s):
        counters = delta['counters']
        metrics = {
            'disk_iops': counters['ops'] / elapsed_s,
            'disk_mbps': counters['bytes'] / elapsed_s / 1e6,
        }
        metrics.update(base.latency_metrics('disk', 'latency_ms',
                                            delta['histogram'], 1e-6))
        return metrics

