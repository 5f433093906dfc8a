"""Profiles: built-ins, validation errors, patterns, scaling, traces."""

import glob
import gzip
import json
import math
import os

import pytest

from loadgen import profiles
from loadgen.profiles import ProfileError

# ../shared beside the checkout (as CI places it).
BITBRAINS = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', '..',
    'shared', 'traces', 'bitbrains_rnd', '2013-7', '1.csv.gz')


def _spec(**overrides):
    spec = {'name': 't', 'duration_s': 10,
            'components': {'cpu': {'workers': 1, 'duty_cycle': 0.5}}}
    spec.update(overrides)
    return spec


@pytest.mark.parametrize('name', profiles.BUILTIN_PROFILES)
def test_builtin_profiles_load_and_round_trip(name):
    profile = profiles.load_profile(name)
    assert profile.name == name
    assert math.isclose(sum(profile.sensitivity.values()), 1.0)
    again = profiles.load_profile(profile.to_dict())
    assert again.to_dict() == profile.to_dict()
    json.dumps(profile.to_dict())


def test_sensitivity_is_normalised_and_defaults_from_the_mix():
    profile = profiles.load_profile(_spec(sensitivity={'cpu': 3,
                                                       'latency': 1}))
    assert profile.sensitivity['cpu'] == pytest.approx(0.75)
    derived = profiles.load_profile(_spec(components={
        'disk': {}, 'network': {'mode': 'rr'}})).sensitivity
    assert derived['cpu'] == 0
    assert derived['io'] == derived['network'] == derived['latency'] > 0


def test_disk_string_pattern_is_the_access_pattern():
    profile = profiles.load_profile(_spec(components={
        'disk': {'pattern': 'sequential'}}))
    assert profile.components['disk']['access'] == 'sequential'
    assert profile.intensity('disk', 5) == 1.0


def test_component_pattern_overrides_the_profile_pattern():
    profile = profiles.load_profile(_spec(
        pattern={'type': 'constant', 'level': 2},
        components={'cpu': {'pattern': {'type': 'ramp', 'start': 0,
                                        'end': 1, 'over_s': 10}},
                    'memory': {}}))
    assert profile.intensity('cpu', 5) == pytest.approx(0.5)
    assert profile.intensity('cpu', 50) == pytest.approx(1.0)
    assert profile.intensity('memory', 5) == 2.0


def test_diurnal_and_spike_patterns_follow_their_definition():
    diurnal = profiles.load_profile(_spec(pattern={
        'type': 'diurnal', 'period_s': 100, 'amplitude': 0.5}))
    assert diurnal.intensity('cpu', 25) == pytest.approx(1.5)
    assert diurnal.intensity('cpu', 75) == pytest.approx(0.5)
    spikes = profiles.load_profile(_spec(pattern={
        'type': 'spikes', 'every_s': 10, 'length_s': 2, 'factor': 3}))
    assert [spikes.intensity('cpu', t) for t in (5, 10, 11.5, 12.5, 21)] \
        == [1, 3, 3, 1, 3]


def test_intensity_is_deterministic_and_never_negative():
    profile = profiles.load_profile(_spec(pattern={
        'type': 'diurnal', 'period_s': 7, 'amplitude': 1.0}))
    values = [profile.intensity('cpu', t / 10) for t in range(1000)]
    assert min(values) >= 0
    assert values == [profile.intensity('cpu', t / 10) for t in range(1000)]


def test_scaled_profile_keeps_total_demand():
    profile = profiles.load_profile(_spec(components={
        'cpu': {'workers': 8, 'duty_cycle': 0.5},
        'disk': {'target_iops': 1000, 'file_size_mb': 400},
        'network': {'connections': 4, 'duty_cycle': 1.0}}))
    small = profile.scaled(0.125)
    cpu = small.components['cpu']
    assert cpu['workers'] == 1 and cpu['duty_cycle'] == pytest.approx(0.5)
    assert small.components['disk']['target_iops'] == pytest.approx(125)
    assert small.components['disk']['file_size_mb'] == pytest.approx(50)
    assert small.components['network']['connections'] == 1
    assert small.components['network']['duty_cycle'] == pytest.approx(0.5)
    assert small.scale == pytest.approx(0.125)
    with pytest.raises(ProfileError, match='scale'):
        profile.scaled(-1)


@pytest.mark.parametrize('spec, field', [
    (_spec(components={'gpu': {}}), 'components.gpu'),
    (_spec(components={'cpu': {'duty_cycle': -0.5}}),
     'components.cpu.duty_cycle'),
    (_spec(components={'cpu': {'duty_cycle': 5}}),
     'components.cpu.duty_cycle'),
    (_spec(components={'cpu': {'workers': 1e9}}), 'components.cpu.workers'),
    (_spec(components={'cpu': {'workers': 1.5}}), 'components.cpu.workers'),
    (_spec(components={'disk': {'fsync': 'yes'}}), 'components.disk.fsync'),
    (_spec(components={'disk': {'engine': 'uring'}}),
     'components.disk.engine'),
    (_spec(components={'disk': {'engine': 'aio', 'fsync': True}}),
     'components.disk.engine'),
    (_spec(components={'disk': {'engine': 'aio', 'target_iops': 50}}),
     'components.disk.engine'),
    (_spec(components={'disk': {'file': ''}}), 'components.disk.file'),
    (_spec(components={'network': {'peer': 'nohost'}}),
     'components.network.peer'),
    (_spec(pattern={'type': 'spikes', 'length_s': 1, 'factor': 2}),
     'pattern.every_s'),
    (_spec(pattern={'type': 'spikes', 'every_s': 10, 'length_s': 1,
                    'factor': 1e6}), 'pattern.factor'),
    (_spec(pattern={'type': 'ramp', 'start': -1}), 'pattern.start'),
    (_spec(pattern={'type': 'wobble'}), 'pattern.type'),
    (_spec(duration_s=-3), 'duration_s'),
    (_spec(duration_s=float('nan')), 'duration_s'),
    (_spec(warmup_s=10), 'warmup_s'),
    (_spec(sensitivity={'cpu': 0}), 'sensitivity'),
    (_spec(sensitivity={'gpu': 1}), 'sensitivity.gpu'),
    (_spec(colour='red'), 'colour'),
    (_spec(name=''), 'name'),
])
def test_bad_input_names_the_field(spec, field):
    with pytest.raises(ProfileError) as info:
        profiles.load_profile(spec)
    assert info.value.field == field
    assert str(info.value).startswith(field + ':')


def test_unknown_profile_name_is_an_error():
    with pytest.raises(ProfileError, match='no built-in profile'):
        profiles.load_profile('no-such-profile')


def test_yaml_and_json_files_load_and_name_the_bad_line(tmp_path):
    good = tmp_path / 'mine.yaml'
    good.write_text('duration_s: 5\ncomponents:\n  cpu: {duty_cycle: 0.2}\n')
    profile = profiles.load_profile(str(good))
    assert profile.name == 'mine'
    assert profile.components['cpu']['duty_cycle'] == 0.2
    bad = tmp_path / 'bad.yaml'
    bad.write_text('duration_s: 5\ncomponents:\n  cpu: [unclosed\n')
    with pytest.raises(ProfileError, match=r'bad\.yaml:\d'):
        profiles.load_profile(str(bad))


def test_planetlab_trace_replays_normalised_values(tmp_path):
    trace = tmp_path / 'vm 1'
    trace.write_text('10\n20\n40\n')
    profile = profiles.load_profile(_spec(pattern={
        'type': 'trace', 'path': str(trace), 'format': 'planetlab',
        'step_s': 300, 'speedup': 300}))
    assert [profile.intensity('cpu', t) for t in (0, 1, 2, 3, 0.5)] == \
        pytest.approx([0.25, 0.5, 1.0, 0.25, 0.375])
    inline = profiles.load_profile(profile.to_dict())
    assert inline.intensity('cpu', 1.5) == profile.intensity('cpu', 1.5)


def test_unparsable_trace_names_file_and_line(tmp_path):
    trace = tmp_path / 'broken'
    trace.write_text('10\n20\nforty\n')
    with pytest.raises(ProfileError, match='broken:3'):
        profiles.load_profile(_spec(pattern={
            'type': 'trace', 'path': str(trace), 'format': 'planetlab'}))
    with pytest.raises(ProfileError, match='cannot read'):
        profiles.load_profile(_spec(pattern={
            'type': 'trace', 'path': str(tmp_path / 'missing'),
            'format': 'planetlab'}))


def test_bitbrains_trace_is_deduplicated_and_resampled(tmp_path):
    text = ('Timestamp [ms];\tCPU cores;\tCPU capacity provisioned [MHZ];'
            '\tCPU usage [MHZ];\tCPU usage [%]\n'
            '0;\t1;\t1000;\t100;\t10\n'
            '0;\t1;\t1000;\t200;\t20\n'
            '900;\t1;\t1000;\t800;\t80\n'
            '1200;\t1;\t1000;\t3000;\t300\n')
    path = tmp_path / 'vm.csv.gz'
    path.write_bytes(gzip.compress(text.encode()))
    profile = profiles.load_profile(_spec(pattern={
        'type': 'trace', 'path': str(path), 'format': 'bitbrains',
        'normalise': 'none', 'scale': 0.01}))
    # 20 % at 0 (last duplicate wins), linear to 80 % at 900, clipped 100.
    assert profile.pattern.params['values'] == pytest.approx(
        [20, 40, 60, 80, 100])


@pytest.mark.skipif(not glob.glob(BITBRAINS), reason='no shared traces')
def test_real_bitbrains_and_csv_traces_parse(tmp_path):
    profile = profiles.load_profile(_spec(pattern={
        'type': 'trace', 'path': BITBRAINS, 'format': 'bitbrains',
        'column': 'Memory usage [KB]', 'speedup': 600}))
    assert len(profile.pattern.params['values']) > 8000
    assert 0 <= profile.intensity('cpu', 123.4) <= 1
    csv_path = tmp_path / 't.csv'
    csv_path.write_text('t,load\n0,1\n1,3\n')
    csv_profile = profiles.load_profile(_spec(pattern={
        'type': 'trace', 'path': str(csv_path), 'column': 'load',
        'step_s': 1, 'normalise': 'mean'}))
    assert csv_profile.intensity('cpu', 1) == pytest.approx(1.5)


@pytest.mark.parametrize('iodepth, block_size_kb', [(256, 1024),
                                                    (16, 16384)])
def test_disk_may_have_256_mib_in_flight(iodepth, block_size_kb):
    profile = profiles.load_profile(_spec(components={'disk': {
        'iodepth': iodepth, 'block_size_kb': block_size_kb}}))
    assert profile.components['disk']['iodepth'] == iodepth


def test_disk_with_more_than_256_mib_in_flight_is_refused():
    # A stop waits for what is in flight: 256 x 16 MiB took over 60 s.
    with pytest.raises(ProfileError) as info:
        profiles.load_profile(_spec(components={'disk': {
            'iodepth': 256, 'block_size_kb': 16384}}))
    assert info.value.field == 'components.disk.iodepth'
    assert '256 x 16384' in info.value.message


def test_scaling_up_keeps_disk_in_flight_within_the_limit():
    profile = profiles.load_profile(_spec(components={'disk': {
        'iodepth': 8, 'block_size_kb': 16384}}))
    scaled = profile.scaled(64)
    disk = scaled.components['disk']
    assert disk['iodepth'] == 16
    assert disk['iodepth'] * disk['block_size_kb'] <= 256 * 1024
