"""What every load component shares: worker processes, pacing, counters.

A component owns N worker processes (``fork``ed, so no pickling and it
works from a zipapp). The parent talks to them through shared memory
only: one ``level`` value it updates from the profile's pattern, a stop
flag, and per worker a counter array and a latency histogram that only
that worker writes. ``snapshot()`` reads them (plus each worker's CPU time
from ``/proc/<pid>/stat``) and ``metrics()`` turns the difference of two
snapshots into the metric catalogue of ``doc/source/contributor/
contracts.rst``.

Pacing (``Pacer``): with a rate target the level scales the target and
operations are spread evenly; without one the level is a duty cycle of a
100 ms period (busy, then sleep). Busy time is wall time, or the worker's
own CPU time when the component sets ``busy_clock = time.thread_time``.
A subclass implements ``setup_worker`` (returns the zero-argument
operation, which calls ``record``) and ``component_metrics``.
"""

import gc
import logging
import multiprocessing
import os
import signal
import sys
import time

from loadgen import stats

LOG = logging.getLogger(__name__)

PERIOD_S = 0.1
# How long workers have to finish their operation once told to stop
# (every operation checks the stop at least once per PERIOD_S, so on an
# idle machine they take ~0.1 s), then how long the ones that did not are
# given to die once killed. One deadline for all workers, not one each.
STOP_GRACE_S = 3.0
KILL_GRACE_S = 1.0
COUNTERS = ('ops', 'bytes', 'busy_s', 'errors', 'aux1', 'aux2')
OPS, BYTES, BUSY, ERRORS, AUX1, AUX2 = range(len(COUNTERS))
_CTX = multiprocessing.get_context('fork')
PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid):
    """Make this (forked) process end when ``parent_pid`` dies.

    On Linux the kernel sends SIGKILL to this process when the thread that
    forked it exits, even if the parent was SIGKILLed
    (``prctl(PR_SET_PDEATHSIG)``, via ctypes, standard library only). If
    the parent is already gone, exit now. Elsewhere, or without ctypes,
    workers notice a new parent pid within one pacing period.
    """
    if sys.platform.startswith('linux'):
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (ImportError, OSError, AttributeError):
            LOG.debug('prctl(PR_SET_PDEATHSIG) unavailable')
    if os.getppid() != parent_pid:
        os._exit(0)


def _nothing():
    pass


class WorkerState:
    """The shared memory one worker writes and the parent reads."""

    def __init__(self, histogram):
        self.counters = _CTX.RawArray('d', len(COUNTERS))
        self.histogram = (_CTX.RawArray('q', stats.NUM_BUCKETS)
                          if histogram else None)
        self.process = None


class Pacer:
    """Decides when a worker works: duty cycle or evenly spaced rate."""

    def __init__(self, level, stop, rate_per_worker, busy_clock=None):
        self._busy_clock = busy_clock or time.perf_counter
        self._level = level
        self._stop = stop
        self._rate = rate_per_worker
        self._parent = os.getppid()
        #: Set by the worker's SIGTERM handler: this worker alone stops.
        self.terminated = False

    def stopping(self):
        return (self.terminated or self._stop.value != 0
                or os.getppid() != self._parent)

    def run(self, operation):
        """Call ``operation()`` as paced until told to stop.

        An operation that keeps work in flight between calls (the disk's
        ``aio`` engine) has a ``pause`` attribute: called before every
        sleep and at the end, it completes that work, so no request's
        latency includes the pacer's sleep.
        """
        pause = getattr(operation, 'pause', None) or _nothing
        try:
            if self._rate:
                self._run_rate(operation)
            else:
                self._run_duty(operation, pause)
        finally:
            pause()

    def _run_duty(self, operation, pause=None):
        clock = time.perf_counter
        busy_clock = self._busy_clock
        pause = pause or _nothing
        while not self.stopping():
            start = clock()
            period_end = start + PERIOD_S
            busy_start = busy_clock()
            budget = PERIOD_S * min(1.0, self._level.value)
            while busy_clock() - busy_start < budget and clock() < period_end:
                operation()
            remaining = period_end - clock()
            if remaining > 0:
                pause()
                remaining = period_end - clock()
                if remaining > 0:
                    time.sleep(remaining)

    def _run_rate(self, operation):
        clock = time.perf_counter
        next_at = clock()
        check_at = next_at
        while True:
            now = clock()
            if now >= check_at:
                if self.stopping():
                    return
                check_at = now + PERIOD_S
            rate = self._rate * self._level.value
            if rate <= 0:
                time.sleep(PERIOD_S)
                next_at = clock()
                continue
            if next_at > now:
                time.sleep(min(next_at - now, PERIOD_S))
                continue
            operation()
            next_at = max(next_at + 1.0 / rate, now - PERIOD_S)


class Component:
    """Base of the cpu, memory, disk and network components.

    Subclasses set ``name``, ``histogram`` and implement ``worker_count``,
    ``rate_target`` (ops/s over all workers or None), ``duty_cycle``,
    ``setup_worker(index)`` returning a zero-argument operation, and
    ``component_metrics(delta, elapsed_s)``.
    """

    name = None
    histogram = False
    busy_clock = None   # duty cycle measured in wall time unless set

    def __init__(self, params, workdir):
        self.params = params
        self.workdir = workdir
        self._level = _CTX.RawValue('d', 0.0)
        self._stop = _CTX.RawValue('i', 0)
        self._workers = []
        self._pacer = None      # set in each worker

    # -- subclass hooks -------------------------------------------------
    def prepare(self):
        """Create files, connections checks; runs before workers fork."""

    def cleanup(self):
        """Remove what ``prepare`` created; always called."""

    def worker_count(self):
        return 1

    def rate_target(self):
        return None

    def duty_cycle(self):
        return self.params.get('duty_cycle', 1.0)

    def setup_worker(self, index, state):
        raise NotImplementedError

    def component_metrics(self, delta, elapsed_s):
        raise NotImplementedError

    # -- parent side ----------------------------------------------------
    def set_intensity(self, multiplier):
        """Apply the pattern multiplier at the current time."""
        if self.rate_target() is None:
            self._level.value = min(1.0, self.duty_cycle() * multiplier)
        else:
            self._level.value = multiplier

    def start(self):
        """Fork the workers; they idle (level 0) until all have started,
        so busy workers never slow down the forking of the next ones."""
        count = self.worker_count()
        rate = self.rate_target()
        per_worker = rate / count if rate else None
        parent = os.getpid()
        for index in range(count):
            state = WorkerState(self.histogram)
            state.process = _CTX.Process(
                target=self._worker_main,
                args=(index, state, per_worker, parent),
                name='loadgen-%s-%d' % (self.name, index), daemon=True)
            self._workers.append(state)
        level, self._level.value = self._level.value, 0.0
        # Collect once here, not in every worker: a collection touches
        # every object, copying the whole heap into each forked worker.
        gc.collect()
        gc.freeze()
        try:
            for state in self._workers:
                state.process.start()
        finally:
            gc.unfreeze()
            self._level.value = level

    def _worker_main(self, index, state, per_worker, parent):
        die_with_parent(parent)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        pacer = Pacer(self._level, self._stop, per_worker, self.busy_clock)

        def terminated(signum, frame):
            # SIGTERM reaches the workers with the parent when the whole
            # process group or cgroup is stopped (``kill -- -PGID``,
            # systemd): finish like a stopped run (exit 0), not as a
            # worker that died.
            pacer.terminated = True
        signal.signal(signal.SIGTERM, terminated)
        # An operation that can block longer than a pacing period (a
        # 64 MiB network message) checks ``self.stopping()`` as it goes.
        self._pacer = pacer
        operation = self.setup_worker(index, state)
        # Nothing the hot loop does creates reference cycles: keep the
        # collector's pauses out of the measured latencies. (The parent
        # collected and froze the heap just before forking.)
        gc.freeze()
        gc.disable()
        pacer.run(operation)

    def stopping(self):
        """In a worker: True once the run asked it to stop."""
        return self._pacer.stopping()

    def sleep(self, seconds):
        """In a worker: sleep ``seconds`` or until told to stop."""
        end = time.monotonic() + seconds
        while not self.stopping():
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, PERIOD_S))

    def worker_pids(self):
        return [s.process.pid for s in self._workers if s.process.pid]

    def dead_workers(self):
        return [s.process.name for s in self._workers
                if s.process.exitcode not in (None, 0)]

    def snapshot(self):
        """Summed counters, histogram and worker CPU seconds right now."""
        counters = [0.0] * len(COUNTERS)
        histogram = [0] * stats.NUM_BUCKETS if self.histogram else None
        cpu_s = 0.0
        for state in self._workers:
            for index, value in enumerate(state.counters):
                counters[index] += value
            if histogram is not None:
                stats.add_counts(histogram, state.histogram[:])
            cpu_s += stats.process_cpu_seconds(state.process.pid) or 0.0
        return {'counters': counters, 'histogram': histogram,
                'cpu_s': cpu_s}

    @staticmethod
    def delta(now, before):
        """Difference of two snapshots (used for intervals and totals)."""
        histogram = None
        if now['histogram'] is not None:
            histogram = stats.diff_counts(now['histogram'],
                                          before['histogram'])
        return {
            'counters': dict(zip(COUNTERS, stats.diff_counts(
                now['counters'], before['counters']))),
            'histogram': histogram,
            'cpu_s': max(0.0, now['cpu_s'] - before['cpu_s']),
        }

    def metrics(self, delta, elapsed_s):
        """Metric name -> value for one delta over ``elapsed_s``."""
        if elapsed_s <= 0:
            return {}
        return self.component_metrics(delta, elapsed_s)

    def stop(self, timeout_s=STOP_GRACE_S, kill_grace_s=KILL_GRACE_S):
        """Ask workers to finish, then make sure they have (see
        ``stop_all``)."""
        stop_all([self], timeout_s, kill_grace_s)


def stop_all(components, timeout_s=STOP_GRACE_S, kill_grace_s=KILL_GRACE_S):
    """Stop every worker of ``components`` together.

    All are told at once, then have ``timeout_s`` (together) to finish;
    those still running are killed and given ``kill_grace_s`` (together)
    to go. So a stop never takes longer than the sum, whatever the
    workers were doing and however many there are.
    """
    processes = [state.process for component in components
                 for state in component._workers
                 if state.process.pid is not None]
    for component in components:
        component._stop.value = 1
    deadline = time.monotonic() + timeout_s
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    stuck = [process for process in processes if process.is_alive()]
    for process in stuck:
        LOG.warning('worker %s did not stop within %.1f s; killing it',
                    process.name, timeout_s)
        process.kill()
    deadline = time.monotonic() + kill_grace_s
    for process in stuck:
        process.join(max(0.0, deadline - time.monotonic()))


def record(state, started_ns, ended_ns, nbytes):
    """Count one operation in ``state`` (called in the worker)."""
    counters = state.counters
    counters[OPS] += 1
    counters[BYTES] += nbytes
    latency_ns = ended_ns - started_ns
    counters[BUSY] += latency_ns * 1e-9
    if state.histogram is not None:
        state.histogram[stats.bucket_of(latency_ns)] += 1


def record_error(state):
    state.counters[ERRORS] += 1


def latency_metrics(prefix, suffix, histogram, scale):
    """p50/p95/p99 metrics from a histogram delta, in ns * ``scale``."""
    points = stats.percentiles_ns(histogram or [], (0.5, 0.95, 0.99))
    return {'%s_p%d_%s' % (prefix, round(q * 100), suffix): value * scale
            for q, value in points.items()}
