"""The twin's instance actions take the time and cost they take on a
real cloud (the ``[sim]`` resize, migration and boot options)."""

import pytest

from shadow_service.clouds import base
from tests import watcher_support as support


def _twin(tmp_path, **sim):
    conf = support.make_conf(tmp_path, sim=sim)
    return support.twin(conf)


def _busy(driver, instance_id, at):
    """Busy vCPUs the instance's workloads get at time ``at``."""
    twin = driver.twin
    total = 0.0
    for work in twin.workloads.values():
        if work.reported_id == instance_id and work.running_at(at):
            _f, _t, metrics = twin.evaluate(work.host, [at])
            achieved, _active = metrics[work.workload_id]
            total += achieved['cpu_util_pct'][0] / 100.0 * work.vcpus
    return total


def test_a_resize_runs_on_the_old_flavor_then_reboots_then_verifies(
        tmp_path):
    driver, _history = _twin(tmp_path, resize_duration=240.0,
                             resize_downtime=60.0)
    support.place(driver, 'vm', [3.0] * 10)
    start = driver.now()
    driver.resize('vm', {'name': 'medium', 'vcpus': 4, 'ram_mb': 4096})
    resizing = driver.get_instance('vm')
    assert resizing.status == 'RESIZE' and resizing.flavor['vcpus'] == 2
    with pytest.raises(base.CloudError, match='is RESIZE'):
        driver.resize('vm', {'name': 'large', 'vcpus': 8, 'ram_mb': 8192})
    with pytest.raises(base.CloudError, match='no resize to confirm'):
        driver.confirm_resize('vm')
    assert _busy(driver, 'vm', start + 100) == pytest.approx(2.0)
    assert _busy(driver, 'vm', start + 200) == 0.0       # rebooting
    driver.fast_forward(240.0)
    done = driver.get_instance('vm')
    assert done.status == 'VERIFY_RESIZE' and done.flavor == {
        'vcpus': 4, 'ram_mb': 4096, 'disk_gb': 0, 'name': 'medium'}
    assert _busy(driver, 'vm', driver.now()) == pytest.approx(3.0)
    driver.confirm_resize('vm')
    assert driver.get_instance('vm').status == 'ACTIVE'


def test_a_resize_keeps_the_workload_where_it_was_in_its_trace(tmp_path):
    driver, _history = _twin(tmp_path, resize_duration=0.0,
                             resize_downtime=0.0)
    support.place(driver, 'vm', [1.0, 1.0, 1.0, 3.0, 3.0, 3.0],
                  flavor='medium')
    driver.fast_forward(2 * support.STEP_S)
    driver.resize('vm', {'name': 'large', 'vcpus': 8, 'ram_mb': 8192})
    driver.confirm_resize('vm')
    # Three steps in, the trace says 3 busy vCPUs (it did not restart).
    assert _busy(driver, 'vm', driver.now() + support.STEP_S) == \
        pytest.approx(3.0)


def test_a_live_migration_takes_the_memory_copy_and_loads_both_hosts(
        tmp_path):
    driver, _history = _twin(tmp_path, migration_bandwidth_mbps=1000.0,
                             migration_dirty_ratio=0.25,
                             migration_setup=5.0, migration_pause=0.5,
                             migration_cpu_vcpus=0.5)
    support.place(driver, 'vm', [1.0] * 10, flavor='large')   # 8 GB
    start = driver.now()
    expected = 5.0 + 8192 * 8 * 1.25 / 1000.0               # 86.9 s
    assert driver.migration_duration(8192) == pytest.approx(expected)
    with pytest.raises(base.CloudError, match='already runs on host-1'):
        driver.live_migrate('vm', 'host-1')
    driver.live_migrate('vm', 'host-2')
    moving = driver.get_instance('vm')
    assert moving.status == 'MIGRATING' and moving.host == 'host-1'
    copy = [w for w in driver.twin.workloads.values()
            if w.kind == 'overhead']
    assert sorted(w.host for w in copy) == ['host-1', 'host-2']
    observed = driver.twin.host_observation('host-2', [start + 30])
    assert observed['cpu_util_pct'][0] > 0           # the copy's CPU
    assert observed['net_mbps'][0] == pytest.approx(1000.0)
    assert _busy(driver, 'vm', start + 30) == pytest.approx(1.0)
    driver.fast_forward(expected + 1)
    arrived = driver.get_instance('vm')
    assert arrived.status == 'ACTIVE' and arrived.host == 'host-2'
    assert _busy(driver, 'vm', driver.now()) == pytest.approx(1.0)


def test_a_sibling_boots_then_takes_its_share_of_the_group_load(tmp_path):
    driver, _history = _twin(tmp_path, boot_duration=45.0)
    support.place(driver, 'web', [6.0] * 10, flavor='large', group='web')
    start = driver.now()
    sibling = driver.boot_sibling('web')
    assert sibling.status == 'BUILD' and sibling.server_group == 'web'
    assert sibling.metadata['nova_shadow_watch'] == 'true'
    assert _busy(driver, 'web', start + 30) == pytest.approx(6.0)
    driver.fast_forward(60.0)
    assert driver.get_instance(sibling.instance_id).status == 'ACTIVE'
    later = driver.now()
    assert _busy(driver, 'web', later) == pytest.approx(3.0)
    assert _busy(driver, sibling.instance_id, later) == pytest.approx(3.0)
    driver.delete_instance(sibling.instance_id)
    assert _busy(driver, 'web', later + 1) == pytest.approx(6.0)
    with pytest.raises(base.CloudError, match='no instance'):
        driver.get_instance(sibling.instance_id)


def test_siblings_booted_together_spread_over_the_hosts(tmp_path):
    # Nova claims a VM's allocation when it schedules it, not when its
    # guest is up: siblings booting at the same moment must not all land
    # on the host that looked emptiest before the first of them.
    driver, _history = _twin(tmp_path, boot_duration=45.0)
    support.place(driver, 'web', [6.0] * 10, flavor='large', group='web')
    booted = [driver.boot_sibling('web') for _ in range(4)]
    assert all(s.status == 'BUILD' for s in booted)
    hosts = [s.host for s in booted]
    # Three equal hosts, 'web' (8 GB) on host-1: the first two siblings
    # take the empty hosts; then no host holds more than two of the five.
    assert sorted(hosts[:2]) == ['host-2', 'host-3']
    every = hosts + ['host-1']
    assert max(every.count(h) for h in set(every)) == 2
    view = driver.nova_view(hosts[0])
    assert view['memory_mb_used'] >= 8192 and view['running_vms'] >= 1
