"""The cluster file and hosts derived from names."""

import pytest
import yaml

from shadow_service.clouds.sim import cluster


@pytest.fixture(scope='module')
def default_cluster():
    return cluster.load_cluster(seed=3)


def test_default_cluster_has_16_hosts_in_3_classes(default_cluster):
    specs = [default_cluster.host_spec(n)
             for n in default_cluster.host_names]
    assert len(specs) == 16
    assert {s.host_class.name for s in specs} == {'legacy', 'general',
                                                  'compute'}
    assert all(s.tenants for s in specs)


def test_tenants_fit_the_host_and_its_allocation_ratio(default_cluster):
    for name in default_cluster.host_names:
        spec = default_cluster.host_spec(name)
        hc = spec.host_class
        traces = [default_cluster.library.load(t.kind, t.path)
                  for t in spec.tenants]
        ram = sum(t.ram_mb or tr.ram_mb for t, tr in zip(spec.tenants,
                                                         traces))
        vcpus = sum(t.vcpus or tr.vcpus for t, tr in zip(spec.tenants,
                                                         traces))
        assert ram <= hc.memory_mb * 0.85
        assert vcpus <= hc.cores * hc.vcpu_allocation_ratio[1]


def test_any_host_name_gets_a_stable_class_and_tenants(default_cluster):
    again = cluster.load_cluster(seed=3)
    for name in ('compute1', 'compute2', 'host1'):
        assert default_cluster.host_spec(name) == again.host_spec(name)
    other_seed = cluster.load_cluster(seed=4)
    assert any(default_cluster.host_spec(n) != other_seed.host_spec(n)
               for n in ('compute1', 'compute2', 'host1'))


def test_unknown_class_is_rejected(tmp_path):
    path = tmp_path / 'c.yaml'
    data = yaml.safe_load(open(cluster.DEFAULT_CLUSTER_FILE))
    data['hosts'] = [{'name': 'a', 'class': 'nope'}]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(cluster.ClusterError, match='unknown class'):
        cluster.load_cluster(str(path))


def test_class_missing_a_field_is_rejected(tmp_path):
    path = tmp_path / 'c.yaml'
    path.write_text(yaml.safe_dump({'classes': {'x': {'cores': 4}}}))
    with pytest.raises(cluster.ClusterError, match='lacks'):
        cluster.load_cluster(str(path))


def test_missing_file_is_a_cluster_error(tmp_path):
    with pytest.raises(cluster.ClusterError):
        cluster.load_cluster(str(tmp_path / 'missing.yaml'))


def _neighbour_cluster(tmp_path, neighbours, hosts=None, seed=1):
    data = yaml.safe_load(open(cluster.DEFAULT_CLUSTER_FILE))
    data['neighbours'] = neighbours
    if hosts is not None:
        data['hosts'] = hosts
    path = tmp_path / 'c.yaml'
    path.write_text(yaml.safe_dump(data))
    return cluster.load_cluster(str(path), seed=seed)


DISK_HEAVY = {'vcpus': 4, 'ram_mb': 16384, 'busy_vcpus': 0.5,
              'mem_gbps': 0.5, 'disk_iops': 35000, 'net_mbps': 5}


def test_neighbours_are_drawn_by_share_and_count_against_ram(tmp_path):
    half = _neighbour_cluster(tmp_path, {'disk': dict(DISK_HEAVY,
                                                      share=0.5)})
    carriers = 0
    for name in half.host_names:
        spec = half.host_spec(name)
        kinds = [t.neighbour.name for t in spec.tenants if t.neighbour]
        assert kinds in ([], ['disk'])
        carriers += bool(kinds)
        ram = sum(t.ram_mb or half.library.load(t.kind, t.path).ram_mb
                  for t in spec.tenants)
        assert ram <= spec.host_class.memory_mb * 0.85
    assert 3 <= carriers <= 13
    none = _neighbour_cluster(tmp_path, {'disk': dict(DISK_HEAVY,
                                                      share=0.0)})
    assert not any(t.neighbour for n in none.host_names
                   for t in none.host_spec(n).tenants)


def test_a_host_may_name_its_neighbours(tmp_path):
    named = _neighbour_cluster(
        tmp_path, {'disk': DISK_HEAVY},
        hosts=[{'name': 'a', 'class': 'general', 'neighbours': ['disk']},
               {'name': 'b', 'class': 'general', 'tenants': [],
                'neighbours': ['disk']},
               {'name': 'c', 'class': 'general'}])
    assert [t.neighbour.name for t in named.host_spec('a').tenants
            if t.neighbour] == ['disk']
    assert [t.kind for t in named.host_spec('b').tenants] == ['neighbour']
    assert not any(t.neighbour for t in named.host_spec('c').tenants)


@pytest.mark.parametrize('change, message', [
    ({'disk_iops': -1}, 'disk_iops must be a number'),
    ({'busy_vcpus': 9}, 'busy_vcpus exceeds vcpus'),
    ({'period_s': 100, 'burst_s': 200}, 'burst_s must be in'),
    ({'quiet': 2}, 'quiet must be in'),
    ({'colour': 'red'}, 'unknown field'),
])
def test_a_bad_neighbour_is_rejected_naming_the_field(tmp_path, change,
                                                      message):
    with pytest.raises(cluster.ClusterError, match=message):
        _neighbour_cluster(tmp_path, {'disk': dict(DISK_HEAVY, **change)})


def test_neighbours_missing_fields_or_over_shared_are_rejected(tmp_path):
    with pytest.raises(cluster.ClusterError, match='lacks mem_gbps'):
        _neighbour_cluster(tmp_path, {'disk': {
            k: v for k, v in DISK_HEAVY.items() if k != 'mem_gbps'}})
    with pytest.raises(cluster.ClusterError, match='more than 1'):
        _neighbour_cluster(tmp_path, {'a': dict(DISK_HEAVY, share=0.6),
                                      'b': dict(DISK_HEAVY, share=0.6)})
    with pytest.raises(cluster.ClusterError, match='unknown neighbour'):
        _neighbour_cluster(tmp_path, {}, hosts=[
            {'name': 'a', 'class': 'general', 'neighbours': ['disk']}])


@pytest.mark.parametrize('value', [-1, 'fast', True, float('nan')])
def test_a_bad_assumption_is_rejected_naming_the_field(tmp_path, value):
    with open(cluster.DEFAULT_CLUSTER_FILE) as f:
        data = yaml.safe_load(f)
    data['assumptions']['disk_steal_wait_ms'] = value
    path = tmp_path / 'cluster.yaml'
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(cluster.ClusterError,
                       match='assumptions: disk_steal_wait_ms must be a '
                             'non-negative number'):
        cluster.load_cluster(str(path))


def test_an_unknown_assumption_is_rejected_naming_it(tmp_path):
    # A misspelt name would leave the default in force unnoticed.
    with open(cluster.DEFAULT_CLUSTER_FILE) as f:
        data = yaml.safe_load(f)
    data['assumptions']['disk_steal_wait'] = 30.0
    path = tmp_path / 'cluster.yaml'
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(cluster.ClusterError,
                       match=r'assumptions: unknown field disk_steal_wait '
                             r'\(known: .*disk_steal_wait_ms'):
        cluster.load_cluster(str(path))


def test_the_bundled_clusters_assumptions_are_valid():
    for name in ('cluster.yaml', 'lab.yaml'):
        path = cluster.DEFAULT_CLUSTER_FILE.replace('cluster.yaml', name)
        loaded = cluster.load_cluster(path)
        assert loaded.assumptions['disk_steal_wait_ms'] >= 0
