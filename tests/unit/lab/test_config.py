"""The lab config: the sample loads, defaults merge, tenants become loadgen
profiles, and bad input names the field."""

import os

import pytest

from loadgen import profiles
from nova_shadow_lab import config

SAMPLE = os.path.join(os.path.dirname(config.__file__), 'etc', 'lab.yaml')


def test_sample_config_has_hosts_with_different_shares():
    lab = config.load_config(SAMPLE)
    assert len(lab.hosts) >= 3
    assert len({h.share.cpu for h in lab.hosts}) >= 3
    noisy = lab.host('lab-noisy')
    kinds = {t.kind for t in noisy.tenants}
    assert {'cpu', 'bursty', 'memory-bandwidth'} <= kinds
    trace = next(t for t in noisy.tenants if t.name == 'planetlab')
    pattern = trace.profile['components']['cpu']['pattern']
    assert pattern['type'] == 'trace' and len(pattern['values']) == 288


def test_defaults_merge_into_hosts_and_the_host_wins():
    lab = config.parse_config({
        'defaults': {'resources': {'vcpus': 4},
                     'share': {'cpu': 0.5, 'memory_mb': 512}},
        'hosts': [{'name': 'a'},
                  {'name': 'b', 'share': {'cpu': 0.25}}]})
    a, b = lab.hosts
    assert (a.resources.vcpus, a.share.cpu, a.share.memory_mb) == \
        (4, 0.5, 512)
    assert (b.share.cpu, b.share.memory_mb) == (0.25, 512)
    assert a.resources.memory_mb == config.Resources().memory_mb


@pytest.mark.parametrize('kind,component', [
    ('cpu', 'cpu'), ('bursty', 'cpu'), ('memory-bandwidth', 'memory'),
    ('disk', 'disk')])
def test_tenant_kinds_become_valid_loadgen_profiles(kind, component):
    lab = config.parse_config({'hosts': [{'name': 'h', 'tenants': [
        {'kind': kind, 'intensity': 0.3}]}]})
    tenant = lab.hosts[0].tenants[0]
    assert tenant.name == '%s-0' % kind
    assert list(tenant.profile['components']) == [component]
    assert tenant.profile['components'][component]['duty_cycle'] == 0.3
    profiles.load_profile(tenant.profile)  # loadgen accepts it back


def test_trace_paths_are_relative_to_the_config_file(tmp_path):
    (tmp_path / 'trace.txt').write_text('10\n50\n90\n')
    path = tmp_path / 'lab.yaml'
    path.write_text('hosts:\n- name: h\n  tenants:\n  - kind: cpu\n'
                    '    trace: {path: trace.txt, step_s: 1}\n')
    tenant = config.load_config(str(path)).hosts[0].tenants[0]
    pattern = tenant.profile['components']['cpu']['pattern']
    assert pattern['values'] == [10.0, 50.0, 90.0]
    assert pattern['source_path'] == str(tmp_path / 'trace.txt')


@pytest.mark.parametrize('data,field', [
    ({}, 'hosts'),
    ({'hosts': []}, 'hosts'),
    ({'hosts': [{'share': {}}]}, 'hosts[0].name'),
    ({'hosts': [{'name': 'bad name'}]}, 'hosts[0].name'),
    ({'hosts': [{'name': 'a'}, {'name': 'a'}]}, 'hosts[1].name'),
    ({'hosts': [{'name': 'a', 'cpu': 1}]}, 'hosts[0].cpu'),
    ({'hosts': [{'name': 'a', 'share': {'cpu': 0}}]}, 'hosts[0].share.cpu'),
    ({'hosts': [{'name': 'a', 'share': {'cpu': 'half'}}]},
     'hosts[0].share.cpu'),
    ({'hosts': [{'name': 'a', 'share': {'cpu': 0.005}}]},
     'hosts[0].share.cpu'),
    ({'hosts': [{'name': 'a', 'share': {'cpuset': 'all'}}]},
     'hosts[0].share.cpuset'),
    # CPUs this machine does not have, a range the kernel refuses, and a
    # quota its cpuset cannot give.
    ({'hosts': [{'name': 'a', 'share': {'cpuset': str(os.cpu_count())}}]},
     'hosts[0].share.cpuset'),
    ({'hosts': [{'name': 'a', 'share': {'cpuset': '0,%d-%d' % (
        os.cpu_count(), os.cpu_count() + 1)}}]}, 'hosts[0].share.cpuset'),
    ({'hosts': [{'name': 'a', 'share': {'cpuset': '1-0'}}]},
     'hosts[0].share.cpuset'),
    ({'hosts': [{'name': 'a', 'share': {'cpuset': '0', 'cpu': 1.5}}]},
     'hosts[0].share.cpu'),
    ({'hosts': [{'name': 'a', 'share': {'blkio': {'write_bps': -1}}}]},
     'hosts[0].share.blkio.write_bps'),
    ({'hosts': [{'name': 'a', 'share': {'disk': {'write_iops': 100}}}]},
     'hosts[0].share.disk.size_mb'),
    ({'hosts': [{'name': 'a', 'share': {'disk': {'size_mb': 8}}}]},
     'hosts[0].share.disk.size_mb'),
    ({'hosts': [{'name': 'a', 'share': {'disk': {'size_mb': 64,
                                                 'iops': 100}}}]},
     'hosts[0].share.disk.iops'),
    ({'hosts': [{'name': 'a', 'share': {'disk': {'size_mb': 64},
                                        'blkio': {'write_iops': 9}}}]},
     'hosts[0].share.blkio'),
    ({'hosts': [{'name': 'a', 'resources': {'vcpus': 1.5}}]},
     'hosts[0].resources.vcpus'),
    ({'hosts': [{'name': 'a', 'tenants': [{'kind': 'gpu'}]}]},
     'hosts[0].tenants[0].kind'),
    ({'hosts': [{'name': 'a', 'tenants': [{'kind': 'cpu',
                                            'intensity': 2}]}]},
     'hosts[0].tenants[0].intensity'),
    ({'hosts': [{'name': 'a', 'tenants': [{'kind': 'cpu',
                                            'working_set_mb': 9}]}]},
     'hosts[0].tenants[0].working_set_mb'),
    ({'hosts': [{'name': 'a', 'tenants': [{'kind': 'cpu',
                                            'trace': {'path': '/none'}}]}]},
     'hosts[0].tenants[0].trace'),
    ({'hosts': [{'name': 'a', 'tenants': [{'kind': 'cpu'},
                                           {'kind': 'cpu', 'name': 'cpu-0'}]
                 }]}, 'hosts[0].tenants'),
    ({'lab': {'state_dir': 'relative'}, 'hosts': [{'name': 'a'}]},
     'lab.state_dir'),
    ({'lab': {'color': 'red'}, 'hosts': [{'name': 'a'}]}, 'lab.color'),
])
def test_bad_config_names_the_field(data, field):
    with pytest.raises(config.LabConfigError) as raised:
        config.parse_config(data, source='lab.yaml')
    assert raised.value.field == field
    assert str(raised.value).startswith('lab config lab.yaml: %s: ' % field)


def test_a_host_disk_has_a_size_and_throttles():
    lab = config.parse_config({'hosts': [{'name': 'a', 'share': {
        'disk': {'size_mb': 256, 'write_iops': 800, 'read_bps': 1 << 20}}}]})
    disk = lab.host('a').share.disk
    assert disk.size_mb == 256
    assert disk.throttles == {'write_iops': 800, 'read_bps': 1 << 20}
    plain = config.parse_config({'hosts': [{'name': 'b'}]})
    assert plain.host('b').share.disk.size_mb is None


def test_unknown_host_is_named_with_the_known_ones():
    lab = config.parse_config({'hosts': [{'name': 'a'}, {'name': 'b'}]})
    with pytest.raises(config.LabConfigError, match='no host named .c. '
                       r'\(hosts: a, b\)'):
        lab.host('c')


def test_unreadable_or_invalid_files_are_reported(tmp_path):
    with pytest.raises(config.LabConfigError, match='cannot read'):
        config.load_config(str(tmp_path / 'missing.yaml'))
    bad = tmp_path / 'bad.yaml'
    bad.write_text('hosts: [unclosed\n')
    with pytest.raises(config.LabConfigError, match='not valid YAML'):
        config.load_config(str(bad))
