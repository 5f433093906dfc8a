"""Memory component: bandwidth and random-access latency of a working set.

Each worker owns ``working_set_mb / workers`` of memory, half source and
half destination, filled with random bytes. An operation copies one 1 MiB
chunk (``memmove`` through ``memoryview`` slices), so
``mem_bandwidth_gbps`` = bytes read+written / time spent copying (the
speed achieved while working; a contention signal). Every 100 ms a worker
also walks a dependent pseudo-random chain of 8-byte loads over its
working set and the same chain over a 4 KiB (cache-resident) buffer;
``mem_latency_ns`` is the difference per load, which removes the Python
interpreter's cost and leaves the memory system's.
``target_gbps`` paces the copies; without it the duty cycle applies.
"""

import os
import time

from loadgen.components import base

CHUNK = 1 << 20
CHASE_STEPS = 4000
_MIX = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1


def _chase(words, steps):
    """Walk ``steps`` dependent loads over ``words``; returns elapsed ns."""
    count = len(words)
    index = 0
    started = time.perf_counter_ns()
    for step in range(steps):
        index = ((words[index] ^ (step * _MIX)) & _MASK) % count
    return time.perf_counter_ns() - started


def _random_buffer(size):
    block = os.urandom(min(size, CHUNK))
    buffer = bytearray(size)
    for offset in range(0, size, len(block)):
        end = min(size, offset + len(block))
        buffer[offset:end] = block[:end - offset]
    return buffer


def half_bytes(working_set_mb, workers):
    """Bytes of each half (source, destination) of one worker's share."""
    per_worker = working_set_mb * 2 ** 20 / workers
    return max(CHUNK, int(per_worker / 2) // CHUNK * CHUNK)


class MemoryComponent(base.Component):
    name = 'memory'

    def worker_count(self):
        return self.params['workers']

    def rate_target(self):
        target = self.params['target_gbps']
        if target is None:
            return None
        return target * 1e9 / (2 * CHUNK)

    def setup_worker(self, index, state):
        half = half_bytes(self.params['working_set_mb'],
                          self.params['workers'])
        source = _random_buffer(half)
        target = bytearray(half)
        source_view = memoryview(source)
        target_view = memoryview(target)
        words = source_view.cast('Q')
        small_words = memoryview(_random_buffer(4096)).cast('Q')
        chunks = half // CHUNK
        counters = state.counters
        clock = time.perf_counter_ns
        position = [0, time.monotonic()]

        def operation():
            offset = position[0] * CHUNK
            started = clock()
            target_view[offset:offset + CHUNK] = \
                source_view[offset:offset + CHUNK]
            base.record(state, started, clock(), 2 * CHUNK)
            position[0] = (position[0] + 1) % chunks
            if time.monotonic() >= position[1]:
                position[1] = time.monotonic() + base.PERIOD_S
                net_ns = (_chase(words, CHASE_STEPS) -
                          _chase(small_words, CHASE_STEPS))
                counters[base.AUX1] += CHASE_STEPS
                counters[base.AUX2] += net_ns
        return operation

    def component_metrics(self, delta, elapsed_s):
        counters = delta['counters']
        metrics = {}
        if counters['busy_s'] > 0:
            metrics['mem_bandwidth_gbps'] = (
                counters['bytes'] / counters['busy_s'] / 1e9)
        if counters['aux1'] > 0:
            metrics['mem_latency_ns'] = max(
                0.0, counters['aux2'] / counters['aux1'])
        return metrics
