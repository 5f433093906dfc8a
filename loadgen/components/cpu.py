"""CPU component: N worker processes burning a duty cycle.

Each worker repeats a fixed pure-Python work unit (``_work_unit``, ~20 us)
until it has used its duty cycle's share of CPU time in the current
100 ms period (or the period is over), then sleeps: a demand of "duty x
one core". While the host has room the worker gets its share; under
contention the period runs out first, so fewer units per second and less
CPU time per worker are achieved than asked for. Emits
``cpu_ops_per_s`` (units/s, all workers) and ``cpu_worker_util_pct``
(the workers' utime+stime from ``/proc/<pid>/stat`` as % of one core;
two workers flat out = 200).
"""

import time

from loadgen.components import base

_UNIT = range(400)


def _work_unit():
    acc = 0
    for i in _UNIT:
        acc += i * i ^ acc
    return acc


class CPUComponent(base.Component):
    name = 'cpu'
    busy_clock = staticmethod(time.thread_time)

    def worker_count(self):
        return self.params['workers']

    def setup_worker(self, index, state):
        counters = state.counters
        clock = time.perf_counter_ns

        def operation():
            started = clock()
            _work_unit()
            counters[0] += 1
            counters[2] += (clock() - started) * 1e-9
        return operation

    def component_metrics(self, delta, elapsed_s):
        return {
            'cpu_ops_per_s': delta['counters']['ops'] / elapsed_s,
            'cpu_worker_util_pct': 100.0 * delta['cpu_s'] / elapsed_s,
        }
