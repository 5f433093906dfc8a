"""Disk component: random or sequential block I/O on a file.

``prepare`` writes a file of ``file_size_mb`` (random bytes, not sparse),
syncs it and drops it from the page cache. ``iodepth`` worker processes
each issue synchronous ``preadv``/``pwritev`` calls of ``block_size_kb``,
so iodepth N keeps N requests in flight (like fio's ``psync`` with N
jobs, or ``libaio`` with ``iodepth=N``). ``read_ratio`` picks reads vs
writes, ``fsync`` syncs after every write (counted in its latency),
``direct`` opens with ``O_DIRECT`` when the platform and file system
allow it (otherwise buffered, with a warning, reported in the summary).
Sequential workers each walk their own slice of the file.

Emits ``disk_iops``, ``disk_mbps``, ``disk_p50/p95/p99_latency_ms``.
"""

import logging
import mmap
import os
import random
import time

from loadgen.components import base

LOG = logging.getLogger(__name__)
FILL_CHUNK = 1 << 20


def _direct_supported(path):
    flag = getattr(os, 'O_DIRECT', 0)
    if not flag:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | flag)
    except OSError:
        return False
    try:
        buffer = mmap.mmap(-1, mmap.PAGESIZE)
        os.preadv(fd, [buffer], 0)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


class DiskComponent(base.Component):
    name = 'disk'
    histogram = True

    def __init__(self, params, workdir):
        super().__init__(params, workdir)
        directory = params.get('dir') or workdir
        self.path = os.path.join(directory, 'loadgen-disk-%d.dat'
                                 % os.getpid())
        self.block_bytes = params['block_size_kb'] * 1024
        size = int(params['file_size_mb'] * 2 ** 20)
        self.blocks = max(1, size // self.block_bytes)
        self.direct = False

    def worker_count(self):
        return self.params['iodepth']

    def rate_target(self):
        return self.params['target_iops']

    def prepare(self):
        block = os.urandom(FILL_CHUNK)
        remaining = self.blocks * self.block_bytes
        with open(self.path, 'wb') as f:
            while remaining > 0:
                remaining -= f.write(block[:min(remaining, FILL_CHUNK)])
            f.flush()
            os.fsync(f.fileno())
            if hasattr(os, 'posix_fadvise'):
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        if self.params['direct']:
            self.direct = _direct_supported(self.path)
            if not self.direct:
                LOG.warning('O_DIRECT not supported for %s; using '
                            'buffered I/O', self.path)

    def cleanup(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _open(self):
        flags = os.O_RDWR
        if self.direct:
            flags |= os.O_DIRECT
        return os.open(self.path, flags)

    def _offsets(self, index):
        blocks = self.blocks
        block_bytes = self.block_bytes
        if self.params['access'] == 'random':
            rng = random.Random(os.getpid())
            randrange = rng.randrange
            while True:
                yield randrange(blocks) * block_bytes
        span = max(1, blocks // self.worker_count())
        first = (index * span) % blocks
        position = 0
        while True:
            yield (first + position) % blocks * block_bytes
            position = (position + 1) % span

    def setup_worker(self, index, state):
        fd = self._open()
        buffer = mmap.mmap(-1, self.block_bytes)
        buffer.write(os.urandom(self.block_bytes))
        buffers = [buffer]
        offsets = self._offsets(index)
        read_ratio = self.params['read_ratio']
        sync = self.params['fsync']
        choose = random.Random(os.getpid() + 1).random
        clock = time.perf_counter_ns
        block_bytes = self.block_bytes
        preadv, pwritev, fsync = os.preadv, os.pwritev, os.fsync

        def operation():
            offset = next(offsets)
            is_read = choose() < read_ratio
            started = clock()
            try:
                if is_read:
                    preadv(fd, buffers, offset)
                else:
                    pwritev(fd, buffers, offset)
                    if sync:
                        fsync(fd)
            except OSError:
                base.record_error(state)
                time.sleep(0.01)
                return
            base.record(state, started, clock(), block_bytes)
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
