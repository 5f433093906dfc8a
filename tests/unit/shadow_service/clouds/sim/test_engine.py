"""The twin's engine: clock, sampling, determinism, contention on hosts."""

import numpy as np
import pytest

from loadgen import profiles
from shadow_service.clouds.sim import engine
from shadow_service.history import memory


def _twin(seed=0, noise_pct=3.0):
    return engine.build_twin(seed=seed, history=memory.MemoryStore(),
                             noise_pct=noise_pct, sample_interval_s=1.0)


def _start(twin, host, name='batch-cpu', vcpus=2, kind='shadow', wid='w1'):
    return twin.start_workload(engine.Workload(
        workload_id=wid, kind=kind, host=host,
        profile=profiles.load_profile(name), vcpus=vcpus, ram_mb=2048,
        disk_gb=10, started_at=twin.clock, evaluation_id='ev'))


def _dump(store, measurement):
    return [p.to_dict() for p in store.query_points(measurement)]


def test_same_seed_and_calls_give_the_same_samples():
    runs = []
    for _ in range(2):
        twin = _twin(seed=5)
        _start(twin, 'node-03', 'web')
        twin.advance(30)
        twin.advance(90)
        runs.append((_dump(twin.history, 'shadow_sample'),
                     _dump(twin.history, 'host_metric')))
    assert runs[0] == runs[1]
    assert runs[0][0] and runs[0][1]


def test_clock_moves_only_when_advanced_and_samples_fall_on_a_grid():
    twin = _twin()
    start = twin.clock
    _start(twin, 'node-01')
    assert twin.clock == start
    twin.advance(10)
    twin.advance(10)
    assert twin.clock == start + 20
    times = sorted({p.time for p in twin.history.query_points(
        'shadow_sample')})
    assert len(times) == 20
    assert all(float(t).is_integer() for t in times)


def test_stopped_workload_writes_no_more_samples():
    twin = _twin()
    _start(twin, 'node-01')
    twin.advance(5)
    twin.stop_workload('w1')
    before = len(twin.history.query_points('shadow_sample'))
    twin.advance(60)
    assert len(twin.history.query_points('shadow_sample')) == before


def test_vm_writes_instance_metrics():
    twin = _twin()
    _start(twin, 'node-13', 'web', vcpus=4, kind='vm', wid='vm-1')
    twin.advance(600, sample_interval_s=300)
    points = twin.history.query_points('instance_metric',
                                       {'instance': 'vm-1'})
    assert {p.tags['metric'] for p in points} >= {'cpu_ops_per_s',
                                                  'net_p95_rtt_ms'}
    assert len({p.time for p in points}) == 2


def test_without_noise_samples_equal_the_model():
    twin = _twin(noise_pct=0.0)
    _start(twin, 'node-02')
    twin.advance(5)
    sample = twin.history.query_points(
        'shadow_sample', {'metric': 'cpu_ops_per_s'})[-1]
    _f, _t, metrics = twin.evaluate('node-02', [sample.time])
    assert sample.fields['value'] == pytest.approx(
        metrics['w1'][0]['cpu_ops_per_s'][0])


def test_a_heavy_neighbour_slows_a_cpu_bound_workload():
    twin = _twin(noise_pct=0.0)
    host = twin.host('node-02')
    _start(twin, 'node-02', vcpus=2)
    times = [twin.clock + 1]
    alone = twin.evaluate('node-02', times)[2]['w1'][0]['cpu_ops_per_s']
    hog = profiles.load_profile('batch-cpu').scaled(
        host.host_class.cores)
    twin.start_workload(engine.Workload(
        workload_id='hog', kind='vm', host='node-02', profile=hog,
        vcpus=host.host_class.cores * 2, ram_mb=1024, disk_gb=1,
        started_at=twin.clock))
    crowded = twin.evaluate('node-02', times)[2]['w1'][0]
    assert crowded['cpu_ops_per_s'][0] < 0.6 * alone[0]
    assert crowded['cpu_steal_pct'][0] > 40


def test_background_follows_the_traces_time_of_day():
    twin = _twin()
    host = twin.host('node-13')
    day = twin.clock + np.arange(0, 86400, 300.0)
    busy = host.background(day)['busy_vcpus']
    assert busy.min() >= 0 and busy.max() > busy.min()


def test_going_back_in_time_is_refused():
    twin = _twin()
    with pytest.raises(ValueError):
        twin.advance(-1)
    with pytest.raises(ValueError):
        twin.jump_to(twin.clock - 1)


def test_a_bursty_neighbour_adds_its_demand_only_in_its_bursts(tmp_path):
    import yaml

    from shadow_service.clouds.sim import cluster
    data = yaml.safe_load(open(cluster.DEFAULT_CLUSTER_FILE))
    data['neighbours'] = {'nightly': {
        'vcpus': 16, 'ram_mb': 32768, 'busy_vcpus': 16, 'mem_gbps': 16,
        'disk_iops': 500, 'net_mbps': 10, 'period_s': 43200,
        'burst_s': 10800, 'quiet': 0.03}}
    data['hosts'] = [
        {'name': 'quiet', 'class': 'general', 'tenants': []},
        {'name': 'noisy', 'class': 'general', 'tenants': [],
         'neighbours': ['nightly']}]
    path = tmp_path / 'c.yaml'
    path.write_text(yaml.safe_dump(data))
    twin = engine.build_twin(cluster_file=str(path), seed=2, noise_pct=0)
    assert twin.host('quiet').allocated_vcpus == 0
    assert twin.host('noisy').allocated_vcpus == 16
    times = twin.clock + np.arange(0.0, 86400.0, 300.0)
    busy = twin.host('noisy').background(times)['busy_vcpus']
    assert set(np.round(busy, 6)) == {16.0, 0.48}
    # 3 h of every 12 h: a quarter of the day.
    assert np.mean(busy == 16.0) == pytest.approx(0.25, abs=0.01)
    assert not twin.host('quiet').background(times)['busy_vcpus'].any()
    steal = twin.host_observation('noisy', times)['cpu_steal_pct']
    assert not steal.any()       # 16 busy vCPUs fit 24 threads


def _relative_noise(twin, host, metric):
    """Each ``metric`` sample of ``w1`` over its noise-free value."""
    points = twin.history.query_points('shadow_sample', {'metric': metric})
    times = [p.time for p in points]
    truth = twin.evaluate(host, times)[2]['w1'][0][metric]
    return np.array([p.fields['value'] for p in points]) / truth - 1.0


def test_samples_carry_the_labs_noise_metric_by_metric():
    """By default a sample's noise is the lab's: 10 % for CPU throughput,
    twice that for disk IOPS, 1.3 times for disk p95 latency."""
    twin = engine.build_twin(seed=3, history=memory.MemoryStore(),
                             sample_interval_s=1.0)
    _start(twin, 'node-09', 'db-oltp', vcpus=2)
    twin.advance(2000)
    for metric, pct in (('cpu_ops_per_s', 10.0), ('disk_iops', 20.0),
                        ('disk_p95_latency_ms', 13.0)):
        spread = np.std(_relative_noise(twin, 'node-09', metric))
        assert spread == pytest.approx(pct / 100.0, rel=0.1), metric


def test_host_monitoring_keeps_its_own_noise():
    twin = engine.build_twin(seed=3, history=memory.MemoryStore(),
                             host_noise_pct=5.0, metric_noise_scale={})
    twin.host('node-09')
    twin.advance(3600 * 24, host_metric_interval_s=60)
    points = twin.history.query_points(
        'host_metric', {'host': 'node-09', 'metric': 'cpu_util_pct'})
    times = [p.time for p in points]
    truth = twin.host_observation('node-09', times)['cpu_util_pct']
    spread = np.std(np.array([p.fields['value'] for p in points]) / truth)
    assert spread == pytest.approx(0.05, rel=0.1)


def test_no_noise_means_none_at_all():
    twin = engine.build_twin(seed=3, history=memory.MemoryStore(),
                             noise_pct=0.0, host_noise_pct=5.0)
    _start(twin, 'node-09', 'db-oltp', vcpus=2)
    twin.advance(120, host_metric_interval_s=60)
    assert twin.host_noise_pct == 0.0
    assert not np.any(_relative_noise(twin, 'node-09', 'disk_iops'))
    host = twin.history.query_points('host_metric', {'host': 'node-09',
                                                     'metric': 'disk_iops'})
    truth = twin.host_observation('node-09', [p.time for p in host])
    assert [p.fields['value'] for p in host] == pytest.approx(
        list(truth['disk_iops']))
