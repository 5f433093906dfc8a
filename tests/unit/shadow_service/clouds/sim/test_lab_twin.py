"""The twin of the lab's hosts against the lab's stored measurements.

``shadow_service/clouds/sim/data/lab.yaml`` is the twin calibrated on one
lab run (``benchmarks/results/twin_fidelity.json``); the same file holds a
second, independent lab run (``confirmation``).  These tests run the twin
of that cluster file through the benchmark's own scenarios (imported by
path, as the benchmark runs them; no lab, no Nova) and hold it to what the
measurements say.
"""

import json
import os
import sys

import pytest

from shadow_service.clouds.sim import cluster as cluster_mod

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))))
sys.path.insert(0, os.path.join(REPO, 'benchmarks'))

import twin_fidelity  # noqa: E402

LAB_CLUSTER = os.path.join(REPO, 'shadow_service', 'clouds', 'sim', 'data',
                           'lab.yaml')
KEY_METRICS = ('batch-cpu:cpu_ops_per_s', 'db-oltp:cpu_ops_per_s',
               'db-oltp:disk_iops', 'db-oltp:disk_p95_latency_ms',
               'overall')


@pytest.fixture(scope='module')
def stored():
    with open(twin_fidelity.RESULTS) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def predicted(stored):
    """The lab twin's slowdowns in every stored scenario."""
    counts = tuple(stored['neighbour_counts'])
    kinds = tuple(stored['neighbour_kinds'])
    profiles = tuple(stored['profiles'])
    cluster = cluster_mod.load_cluster(LAB_CLUSTER)
    return twin_fidelity.slowdowns(
        twin_fidelity.run_twin(None, stored['duration_s'], counts, kinds,
                               profiles, cluster=cluster),
        counts, kinds, profiles)


def _errors(lab_means, stored, predicted):
    counts = tuple(stored['neighbour_counts'])
    measured = twin_fidelity.slowdowns(
        twin_fidelity.load_lab({'lab_means': lab_means}), counts,
        tuple(stored['neighbour_kinds']), tuple(stored['profiles']))
    return twin_fidelity.error_summary(
        twin_fidelity.compare(measured, predicted))


def test_the_lab_twin_holds_the_stored_calibration(stored):
    cluster = cluster_mod.load_cluster(LAB_CLUSTER)
    params = stored['after']['params']
    for name in twin_fidelity.HOSTS:
        host_class = cluster.host_spec(name).host_class
        assert host_class.cores == twin_fidelity.HOSTS[name]
        for key in ('disk_service_ms', 'mem_bandwidth_gbps'):
            assert getattr(host_class, key) == params[key]
        if 'disk_iops_scale' in params:
            # A lab host with a disk of its own: its throttle, scaled.
            assert host_class.disk_iops == round(
                params['disk_iops_scale'] *
                twin_fidelity.HOST_DISK_IOPS[name])
        else:
            assert host_class.disk_iops == params['disk_iops']
    for key in ('worker_stream_gbps', 'cpu_memory_fraction',
                'io_cpu_ms_per_op', 'cpu_sharing_overhead',
                'disk_p95_floor_ms', 'disk_steal_wait_ms'):
        assert cluster.assumptions[key] == params.get(key, 0.0)


def test_the_lab_twin_reproduces_the_published_errors(stored, predicted):
    """On the run it was fitted to, its errors are the published ones."""
    errors = _errors(stored['lab_means'], stored, predicted)
    for metric in KEY_METRICS:
        assert errors[metric] == pytest.approx(
            stored['after']['median_abs_error'][metric], abs=1e-3)


def test_on_another_run_the_twin_meets_the_aim(stored, predicted):
    """On an independent lab run, the calibrated twin's median error on
    each key metric is within the 0.15 aim, and it is no worse than the
    bundled twin overall. (The lab now agrees with itself closer than
    that: its disk figures within 0.07-0.09, so the twin is held to the
    aim, not to the lab's own agreement.)"""
    other = stored['confirmation']
    errors = _errors(other['lab_means'], stored, predicted)
    for metric in KEY_METRICS:
        assert errors[metric] <= 0.15
        assert errors[metric] == pytest.approx(
            other['after']['median_abs_error'][metric], abs=1e-3)
    assert errors['overall'] <= (
        other['before']['median_abs_error']['overall'])


def test_the_measured_vm_reads_and_writes_its_disk_directly():
    """The lab's measured VM uses O_DIRECT unless asked not to: buffered,
    the page cache served part of its reads, so the host disk's budget
    (and the twin, which has no page cache) saw only part of its I/O."""
    direct = twin_fidelity.measured_profile('db-oltp', 10.0)
    assert direct['components']['disk']['direct'] is True
    assert direct['components']['disk']['file_size_mb'] == 32.0
    buffered = twin_fidelity.measured_profile('db-oltp', 10.0, direct=False)
    assert buffered['components']['disk']['direct'] is False
    # A profile without a disk part gets none.
    assert 'disk' not in twin_fidelity.measured_profile(
        'batch-cpu', 10.0)['components']


def test_host_disk_budgets_follow_the_cpu_share_and_bound_db_oltp():
    """Each lab host's IOPS budget is in proportion to its CPU share and
    below what db-oltp's direct I/O reaches alone on that share (the lab
    measured 122 and 287 IOPS at 100 and 200; at 800 and 1,600 its
    IOPS followed the CPU quota instead)."""
    budgets = twin_fidelity.HOST_DISK_IOPS
    shares = twin_fidelity.HOSTS
    ratios = {h: budgets[h] / shares[h] for h in shares}
    assert len(set(ratios.values())) == 1
    config = twin_fidelity.lab_config(own_disk=True)
    for host in config['hosts']:
        disk = host['share']['disk']
        assert disk['read_iops'] == disk['write_iops'] == \
            budgets[host['name']]
    assert all(b <= 400 for b in budgets.values())


def test_the_worst_metric_objective_scores_the_worst_key_metric():
    """``overall`` pools every row; ``worst-metric`` is the largest of the
    per-metric medians (the aim holds per metric)."""
    def row(metric, error):
        return {'profile': 'db-oltp', 'metric': metric, 'abs_error': error}
    rows = ([row('cpu_ops_per_s', e) for e in (0.01, 0.02, 0.03)]
            + [row('disk_iops', e) for e in (0.02, 0.03, 0.04)]
            + [row('disk_p95_latency_ms', e) for e in (0.3, 0.4, 0.5)])
    assert twin_fidelity.fit_score(rows)[0] == pytest.approx(0.03)
    assert twin_fidelity.fit_score(rows, 'worst-metric')[0] == \
        pytest.approx(0.4)
    mean = sum(r['abs_error'] for r in rows) / len(rows)
    assert twin_fidelity.fit_score(rows, 'worst-metric')[1] == \
        pytest.approx(mean)


def test_the_disk_latency_floor_adds_to_p95_and_nothing_else():
    """``disk_p95_floor_ms`` (0 by default: the bundled twin unchanged)
    adds that many ms to every disk p95 latency and moves no other
    figure."""
    assert cluster_mod.DEFAULT_ASSUMPTIONS['disk_p95_floor_ms'] == 0.0
    params = {'disk_iops_scale': 1.0, 'disk_service_ms': 20.0}
    kinds = ('disk', 'cpu')
    base = twin_fidelity.run_twin(params, 6.0, (1,), kinds,
                                  ('db-oltp',))
    floored = twin_fidelity.run_twin(dict(params, disk_p95_floor_ms=50.0),
                                     6.0, (1,), kinds, ('db-oltp',))
    assert base.keys() == floored.keys()
    for key, metrics in base.items():
        for metric, value in metrics.items():
            expected = value['mean'] + (
                50.0 if metric == 'disk_p95_latency_ms' else 0.0)
            assert floored[key][metric]['mean'] == pytest.approx(expected)


def test_the_cpu_wait_of_a_closed_loop_slows_its_iops_beside_cpu_work():
    """``disk_steal_wait_ms`` (0 by default and in the bundled cluster
    file: the bundled twin unchanged) lowers db-oltp's IOPS beside CPU and
    memory neighbours and moves nothing else: not its IOPS alone or beside
    disk neighbours (which take no CPU), not its p95 latency (the
    device's), not a CPU figure."""
    assert cluster_mod.DEFAULT_ASSUMPTIONS['disk_steal_wait_ms'] == 0.0
    assert cluster_mod.load_cluster().assumptions['disk_steal_wait_ms'] == 0
    params = {'disk_iops_scale': 1.0, 'disk_service_ms': 20.0}
    kinds = ('disk', 'cpu', 'memory-bandwidth')
    base = twin_fidelity.run_twin(params, 6.0, (1, 3), kinds,
                                  ('db-oltp', 'batch-cpu'))
    waiting = twin_fidelity.run_twin(dict(params, disk_steal_wait_ms=30.0),
                                     6.0, (1, 3), kinds,
                                     ('db-oltp', 'batch-cpu'))
    assert base.keys() == waiting.keys()
    for key, metrics in base.items():
        _host, profile, kind, count = key
        slowed = profile == 'db-oltp' and kind in ('cpu', 'memory-bandwidth')
        for metric, value in metrics.items():
            got = waiting[key][metric]['mean']
            if slowed and metric in ('disk_iops', 'disk_mbps'):
                assert got < value['mean'] * 0.99
            else:
                assert got == pytest.approx(value['mean'])
    # More CPU neighbours, a longer wait.
    for host in twin_fidelity.HOSTS:
        one = waiting[(host, 'db-oltp', 'cpu', 1)]['disk_iops']['mean']
        three = waiting[(host, 'db-oltp', 'cpu', 3)]['disk_iops']['mean']
        assert three < one


def test_the_lab_terms_cluster_is_the_bundled_one_with_the_lab_wait():
    """``benchmarks/data/cluster-lab-terms.yaml`` (placement on a twin with
    the lab's I/O-thread wait, ``twin.rst``) is the bundled cluster file
    with only ``disk_steal_wait_ms`` changed, to the lab twin's value."""
    import yaml
    bundled_file = os.path.join(REPO, 'shadow_service', 'clouds', 'sim',
                                'data', 'cluster.yaml')
    terms_file = os.path.join(REPO, 'benchmarks', 'data',
                              'cluster-lab-terms.yaml')
    with open(bundled_file) as f:
        bundled = yaml.safe_load(f)
    with open(terms_file) as f:
        terms = yaml.safe_load(f)
    lab = cluster_mod.load_cluster(LAB_CLUSTER).assumptions
    assert lab['disk_steal_wait_ms'] > 0
    assert terms['assumptions'].pop('disk_steal_wait_ms') == \
        lab['disk_steal_wait_ms']
    assert bundled['assumptions'].pop('disk_steal_wait_ms') == 0
    assert terms == bundled
    loaded = cluster_mod.load_cluster(terms_file)
    assert loaded.assumptions['disk_steal_wait_ms'] == \
        lab['disk_steal_wait_ms']
    assert loaded.host_names == cluster_mod.load_cluster().host_names
