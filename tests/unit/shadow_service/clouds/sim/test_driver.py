"""The ``sim`` CloudDriver: what nova-shadow sees of the twin."""

import pytest
from oslo_config import cfg

from loadgen import profiles
from shadow_service import conf as shadow_conf
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
    shadow_conf.register_opts(conf)
    conf([])
    conf.set_override('backfill_hours', 1, group='sim')
    conf.set_override('unknown_hosts', 'derive', group='sim')
    return sim_driver.SimDriver(conf, store)


def _boot(driver, hosts, name='web'):
    return driver.boot_shadows(
        'ev-1', {'flavor': {'vcpus': 1, 'ram_mb': 1024, 'disk_gb': 5}},
        hosts, profiles.load_profile(name))


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
    driver.host_facts(['compute1'])
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
    features = driver.host_facts(['compute1', 'node-16'])
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


VM_REQUEST = {'flavor': {'vcpus': 2, 'ram_mb': 4096, 'disk_gb': 20},
              'profile': 'web'}


def test_a_vm_with_a_lifetime_departs_by_itself(driver):
    before = driver.nova_view('node-05')
    driver.place_vm(VM_REQUEST, 'node-05', instance_id='short',
                    lifetime_s=3600.0)
    driver.place_vm(VM_REQUEST, 'node-05', instance_id='stays')
    during = driver.nova_view('node-05')
    driver.wait(3600.0)
    after = driver.nova_view('node-05')

    assert during['running_vms'] == before['running_vms'] + 2
    assert after['running_vms'] == before['running_vms'] + 1
    assert after['memory_mb_used'] == before['memory_mb_used'] + 4096
    assert [w.workload_id for w in driver.twin.running(kind='vm')] == [
        'stays']


def test_host_features_count_vms_created_and_deleted_in_the_last_day(
        driver):
    for number in range(3):
        driver.place_vm(VM_REQUEST, 'node-07', instance_id='vm-%d' % number,
                        lifetime_s=1800.0 if number == 0 else None)
    driver.wait(3600.0)
    features = driver.host_facts(['node-07', 'node-08'])

    assert features['node-07']['vm_arrivals_24h'] == 3
    assert features['node-07']['vm_departures_24h'] == 1
    assert features['node-08']['vm_arrivals_24h'] == 0
    # A day on: only the churn counts are read, so sample it sparsely
    # (the default 10 s samples of every host for a day cost a minute).
    driver.fast_forward(86400.0, sample_interval_s=3600.0,
                        host_metric_interval_s=3600.0)
    assert driver.churn('node-07') == {'vm_arrivals_24h': 0,
                                       'vm_departures_24h': 0}


def test_the_oracle_scores_a_vm_over_its_life_when_shorter_than_a_day(
        driver):
    driver.place_vm(VM_REQUEST, 'node-09', instance_id='brief',
                    lifetime_s=2 * 3600.0)
    realised = driver.oracle.placed('brief')
    assert len(next(iter(realised.metrics.values()))) == 24   # 300 s steps


def test_lists_the_cluster_hosts_as_available(driver):
    hosts = driver.list_hosts()
    assert [h.host for h in hosts] == driver.host_names()
    assert all(h.available and h.availability_zone == 'nova'
               for h in hosts)


def test_a_resized_vm_keeps_its_id_and_runs_with_the_new_flavor(
        driver, store):
    driver.place_vm(VM_REQUEST, 'node-05', instance_id='grow')
    driver.wait(600.0, sample_interval_s=60.0)
    before = driver.nova_view('node-05')
    driver.resize('grow', {'name': 'm1.large', 'vcpus': 4, 'ram_mb': 8192,
                           'disk_gb': 40})
    assert driver.get_instance('grow').status == 'RESIZE'
    driver.wait(driver.conf.sim.resize_duration, sample_interval_s=60.0)
    assert driver.get_instance('grow').status == 'VERIFY_RESIZE'
    driver.confirm_resize('grow')
    driver.wait(600.0, sample_interval_s=60.0)

    instance = driver.get_instance('grow')
    assert instance.host == 'node-05'
    assert instance.flavor['vcpus'] == 4
    after = driver.nova_view('node-05')
    assert after['memory_mb_used'] == before['memory_mb_used'] + 4096
    assert after['running_vms'] == before['running_vms']
    # One series under the instance id, before and after the resize.
    points = store.query_points('instance_metric', {'instance': 'grow'})
    times = [p.time for p in points]
    assert min(times) < driver.now() - 600 < max(times)
    # A resize in place is neither a departure nor an arrival.
    assert driver.churn('node-05')['vm_arrivals_24h'] == 1


def test_a_migrated_vm_moves_its_load_to_the_new_host(driver):
    driver.place_vm(VM_REQUEST, 'node-05', instance_id='mover')
    source, target = driver.nova_view('node-05'), driver.nova_view('node-06')
    driver.live_migrate('mover', 'node-06')
    assert driver.get_instance('mover').status == 'MIGRATING'
    driver.wait(driver.migration_duration(VM_REQUEST['flavor']['ram_mb']))
    assert driver.get_instance('mover').host == 'node-06'
    assert driver.nova_view('node-05')['running_vms'] == \
        source['running_vms'] - 1
    assert driver.nova_view('node-06')['running_vms'] == \
        target['running_vms'] + 1
    assert driver.churn('node-06')['vm_arrivals_24h'] == 1


def test_siblings_boot_like_their_instance_and_are_deleted(driver):
    driver.place_vm(VM_REQUEST, 'node-05', instance_id='web-1')
    sibling = driver.boot_sibling('web-1', name='web-2')
    assert sibling.instance_id == 'web-2' and sibling.status == 'BUILD'
    assert sibling.flavor == driver.get_instance('web-1').flavor
    assert sibling.metadata['profile'] == 'web'
    driver.delete_instance('web-2')
    driver.delete_instance('web-2')    # already gone: no error
    with pytest.raises(base.CloudError):
        driver.get_instance('web-2')


def test_a_sibling_is_in_its_instance_s_project(driver):
    driver.place_vm(VM_REQUEST, 'node-05', instance_id='web-1',
                    project_id='tenant-1')
    assert driver.get_instance('web-1').project_id == 'tenant-1'
    assert driver.boot_sibling('web-1').project_id == 'tenant-1'


def test_unknown_instances_are_a_cloud_error(driver):
    with pytest.raises(base.CloudError):
        driver.resize('nope', {'vcpus': 1, 'ram_mb': 512})
    with pytest.raises(base.CloudError):
        driver.live_migrate('nope', 'node-01')


def test_undeclared_hosts_are_refused_by_default(store):
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf([])
    driver = sim_driver.SimDriver(conf, store)
    shadows = _boot(driver, ['node-01', 'node-99'])
    assert [s.host for s in shadows] == ['node-01']
    assert set(driver.host_facts(['node-01', 'node-99'])) == {'node-01'}
    with pytest.raises(base.CloudError):
        driver.place_vm(VM_REQUEST, 'node-99')


def test_derived_hosts_are_bounded(store):
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf([])
    conf.set_override('unknown_hosts', 'derive', group='sim')
    conf.set_override('max_derived_hosts', 2, group='sim')
    conf.set_override('backfill_hours', 0, group='sim')
    driver = sim_driver.SimDriver(conf, store)
    shadows = _boot(driver, ['x1', 'x2', 'x3', 'node-02'])
    assert [s.host for s in shadows] == ['x1', 'x2', 'node-02']
