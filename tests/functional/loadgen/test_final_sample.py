"""A run emits the interval that ends it: every interval of its measured
time is a sample, so a run whose loop is reached late, or whose duration
is one interval, still has data."""

from tests.functional.loadgen.conftest import metric_values

_CPU = {'cpu': {'workers': 1, 'duty_cycle': 0.1}}


def _timestamps(samples):
    return sorted({s['time'] for s in samples})


def test_a_run_of_one_interval_emits_its_sample(run_loadgen):
    samples, summary = run_loadgen({
        'name': 'one-interval', 'duration_s': 1.0, 'warmup_s': 0,
        'interval_s': 1.0, 'components': _CPU})
    assert summary['status'] == 'completed'
    assert len(_timestamps(samples)) == 1
    assert summary['samples_emitted'] == len(samples) > 0
    assert len(metric_values(samples, 'cpu_ops_per_s')) == 1
    assert metric_values(samples, 'cpu_ops_per_s')[0] > 0


def test_every_interval_after_the_warm_up_is_a_sample(run_loadgen):
    samples, summary = run_loadgen({
        'name': 'three-intervals', 'duration_s': 2.0, 'warmup_s': 0.5,
        'interval_s': 0.5, 'components': _CPU})
    # 0.5-1.0, 1.0-1.5, 1.5-2.0: the last ends the run.
    assert len(_timestamps(samples)) == 3
    assert summary['samples_emitted'] == len(samples)
    assert abs(summary['measured_s'] - 1.5) < 0.25
