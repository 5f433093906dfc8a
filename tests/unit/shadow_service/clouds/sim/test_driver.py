"""The ``sim`` CloudDriver: what nova-shadow sees of the twin."""

import pytest
from oslo_config import cfg

from loadgen import profiles
from shadow_service.clouds import base
from shadow_service.clouds.sim import driver as sim_driver
from shadow_service.history import memory

CONTRACT_METRICS = {
    'cpu_ops_per_s', 'cpu_util_pct', 'cpu_steal_pct', 'mem_bandwidth_gbps',
    'mem_latency_ns', 'disk_iops', 'disk_mbps', 'disk_p95_latency_ms',
    'net_rps', 'net_p95_rtt_ms', 'net_mbps'}


@pytest.fixture
def store():
    return memory.MemoryStore()


@pytest.fixture
def driver(store):
    conf = cfg.ConfigOpts()
    conf([])
    sim_driver.SimDriver(conf, store)  # registers [sim]
    conf.set_override('backfill_hours', 1, group='sim')
    return sim_driver.SimDriver(conf, store)


def _boot(driver, hosts, name='web'):
    return driver.boot_shadows(
        'ev-1', {'flavor': {'vcpus': 1, 'ram_mb': 1024, 'disk_gb': 5}},
        hosts, profiles.load_profile(name).to_dict())


def test_is_a_cloud_driver(driver):
    assert isinstance(driver, base.CloudDriver)


def test_accepts_any_host_names(driver):
    shadows = _boot(driver, ['compute1', {'host': 'host1'}, 'node-07'])
    assert [s.host for s in shadows] == ['compute1', 'host1', 'node-07']
    assert all(isinstance(s, base.Shadow) for s in shadows)


def test_shadow_samples_follow_the_contract(driver, store):
    _boot(driver, ['compute1', 'compute2'])
    start = driver.now()
    driver.wait(10)
    assert driver.now() == start + 10
    points = store.query_points('shadow_sample', {'evaluation': 'ev-1'})
    assert points
    for point in points:
        assert set(point.tags) == {'evaluation', 'shadow', 'host',
                                   'profile', 'metric'}
        assert point.tags['profile'] == 'web'
        assert point.tags['metric'] in CONTRACT_METRICS
        assert set(point.fields) == {'value'}
    assert {p.tags['host'] for p in points} == {'compute1', 'compute2'}


def test_new_hosts_get_monitoring_history(driver, store):
    driver.host_features(['compute1'])
    points = store.query_points('host_metric', {'host': 'compute1'})
    assert points and min(p.time for p in points) < driver.now() - 3000
    assert {p.tags['metric'] for p in points} <= CONTRACT_METRICS


def test_deleted_shadows_are_gone_and_stop_sampling(driver, store):
    shadows = _boot(driver, ['compute1', 'compute2'])
    assert {s.shadow_id for s in driver.list_shadows()} == {
        s.shadow_id for s in shadows}
    driver.delete_shadows(shadows)
    driver.delete_shadows(shadows)  # already gone: no error
    assert driver.list_shadows() == []
    driver.wait(10)
    assert not store.query_points('shadow_sample')


def test_host_features_are_only_measurable_things(driver):
    features = driver.host_features(['compute1', 'node-16'])
    for host_features in features.values():
        assert 'cores' in host_features
        assert 'cpu_util_pct_mean_24h' in host_features
        hidden = [k for k in host_features if 'tenant' in k
                  or 'trace' in k or 'share' in k]
        assert hidden == []


def test_oracle_scores_hosts_for_benchmarks(driver):
    profile = profiles.load_profile('db-oltp')
    flavor = {'vcpus': 2, 'ram_mb': 4096, 'disk_gb': 20}
    best, results = driver.oracle.best(profile, flavor,
                                       ['node-01', 'node-16'])
    assert best.host == 'node-16'     # NVMe beats a RAID of 10k disks
    assert not results['node-01'].qos_met
    assert 0 < results['node-01'].performance < best.performance <= 100
