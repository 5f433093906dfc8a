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
