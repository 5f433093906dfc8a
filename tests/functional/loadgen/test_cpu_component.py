"""CPU component, run for real: duty cycle and contention."""

import json
import os
import resource
import subprocess
import time

from tests.functional.loadgen.conftest import loadgen_command
from tests.functional.loadgen.conftest import loadgen_env
from tests.functional.loadgen.conftest import metric_values
from tests.functional.loadgen.conftest import parse_output


def _cpu_profile(workers, duty, duration=3.0):
    return {'name': 'cpu-test', 'duration_s': duration, 'warmup_s': 0.5,
            'interval_s': 0.5,
            'components': {'cpu': {'workers': workers,
                                   'duty_cycle': duty}}}


def test_half_duty_cycle_uses_about_half_a_core(run_loadgen):
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    samples, summary = run_loadgen(_cpu_profile(1, 0.5))
    wall_s = time.monotonic() - started
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    measured_pct = summary['overall']['cpu_worker_util_pct']
    # Generous band: other engineers load this 2-core box.
    assert 35 <= measured_pct <= 62, measured_pct
    intervals = metric_values(samples, 'cpu_worker_util_pct')
    assert len(intervals) >= 4
    # Independent check: the kernel's rusage of the whole run (workers
    # plus the parent's start-up) cannot be below what the workers used.
    used_s = ((children_after.ru_utime + children_after.ru_stime) -
              (children_before.ru_utime + children_before.ru_stime))
    worker_s = summary['components']['cpu']['cpu_s']
    assert used_s >= worker_s * 0.9
    assert used_s <= wall_s * 1.2
    assert summary['overall']['cpu_ops_per_s'] > 0
    assert 0 <= summary['overall']['cpu_util_pct'] <= 100
    assert 0 <= summary['overall']['cpu_steal_pct'] <= 100


def _start(profile):
    return subprocess.Popen(
        loadgen_command('run', json.dumps(profile)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=loadgen_env())


def _ops_per_s(process):
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    return parse_output(stdout)[1]['overall']['cpu_ops_per_s']


def test_two_concurrent_runs_each_achieve_less_than_one_alone():
    profile = _cpu_profile(2, 1.0, duration=3.0)
    alone = _ops_per_s(_start(profile))
    first, second = _start(profile), _start(profile)
    together = [_ops_per_s(first), _ops_per_s(second)]
    assert all(value < 0.9 * alone for value in together), (alone, together)


def test_schema_maximum_of_cpu_workers_finishes_in_bounded_time():
    """1024 workers asked on a small guest: one worker per CPU runs."""
    started = time.monotonic()
    result = subprocess.run(
        loadgen_command('run', json.dumps(_cpu_profile(1024, 1.0))),
        capture_output=True, text=True, timeout=30, env=loadgen_env())
    wall_s = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    summary = parse_output(result.stdout)[1]
    cpus = len(os.sched_getaffinity(0))
    assert summary['status'] == 'completed'
    assert summary['components']['cpu']['workers'] == min(1024, cpus)
    assert summary['components']['cpu']['workers_requested'] == 1024
    assert 'components.cpu.workers' in result.stderr
    assert wall_s < 15, wall_s
