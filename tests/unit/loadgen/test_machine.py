"""The machine plan: workers bounded by CPUs, memory and disk checked."""

import os

import pytest

from loadgen import machine
from loadgen import profiles
from loadgen.profiles import ProfileError


def _profile(**components):
    return profiles.load_profile({'name': 't', 'duration_s': 5,
                                  'components': components})


def test_cpu_workers_beyond_the_cpus_keep_their_demand():
    plan = machine.plan(_profile(cpu={'workers': 3, 'duty_cycle': 0.5}),
                        cpus=2)
    assert plan.components['cpu']['workers'] == 2
    assert plan.components['cpu']['duty_cycle'] == pytest.approx(0.75)
    assert 'components.cpu.workers: 3 asked, 2 CPUs here' in plan.notes[0]


def test_demand_beyond_the_cpus_is_cut_to_one_busy_worker_per_cpu():
    plan = machine.plan(_profile(cpu={'workers': 1024},
                                 memory={'workers': 256,
                                         'working_set_mb': 16}), cpus=2)
    assert plan.components['cpu'] == {'workers': 2, 'duty_cycle': 1.0}
    assert plan.components['memory']['workers'] == 2
    assert len(plan.notes) == 2


def test_workers_within_the_cpus_are_left_alone_and_not_mentioned():
    profile = _profile(cpu={'workers': 2, 'duty_cycle': 0.3})
    plan = machine.plan(profile, cpus=4)
    assert plan.components['cpu'] == profile.components['cpu']
    assert plan.notes == []


def test_the_profile_itself_is_not_changed():
    profile = _profile(cpu={'workers': 64})
    machine.plan(profile, cpus=1)
    assert profile.components['cpu']['workers'] == 64


def test_memory_is_checked_against_mem_available(tmp_path):
    meminfo = tmp_path / 'meminfo'
    meminfo.write_text('MemTotal: 4096000 kB\nMemAvailable: 1048576 kB\n')
    fits = machine.plan(_profile(memory={'working_set_mb': 512}),
                        meminfo=str(meminfo))
    assert fits.mem_available_mb == 1024
    assert 512 < fits.memory_needed_mb < 0.9 * 1024
    with pytest.raises(ProfileError) as info:
        machine.plan(_profile(memory={'working_set_mb': 1000}),
                     meminfo=str(meminfo))
    assert info.value.field == 'components.memory.working_set_mb'
    assert 'MemAvailable here is 1024 MiB' in info.value.message


@pytest.mark.parametrize('components, field, mem_available_kb', [
    ({'network': {'connections': 256, 'payload_bytes': 64 * 2 ** 20}},
     'components.network.connections', 1048576),
    ({'disk': {'iodepth': 16, 'block_size_kb': 16384, 'engine': 'aio',
               'file_size_mb': 64}},
     'components.disk.block_size_kb', 262144),
    ({'disk': {'iodepth': 256, 'file_size_mb': 64}},
     'components.disk.iodepth', 1048576),
])
def test_the_field_asking_for_most_memory_is_named(components, field,
                                                   mem_available_kb,
                                                   tmp_path):
    meminfo = tmp_path / 'meminfo'
    meminfo.write_text('MemAvailable: %d kB\n' % mem_available_kb)
    with pytest.raises(ProfileError) as info:
        machine.plan(_profile(**components), workdir=str(tmp_path),
                     meminfo=str(meminfo))
    assert info.value.field == field


def test_without_meminfo_memory_is_not_guessed_but_said(tmp_path):
    plan = machine.plan(_profile(memory={'working_set_mb': 1024 * 1024}),
                        meminfo=str(tmp_path / 'missing'))
    assert plan.mem_available_mb is None
    assert any('memory not checked' in note for note in plan.notes)
    assert plan.to_dict()['mem_available_mb'] is None


def test_disk_file_is_checked_against_free_space(tmp_path):
    free_mb = machine.free_disk_mb(str(tmp_path))
    fits = machine.plan(_profile(disk={'file_size_mb': 8}),
                        workdir=str(tmp_path))
    assert fits.disk_needed_mb == 8 and fits.disk_free_mb > 8
    if 2 * free_mb > 1024 * 1024:
        pytest.skip('more free space than the schema maximum')
    with pytest.raises(ProfileError) as info:
        machine.plan(_profile(disk={'file_size_mb': 2 * free_mb}),
                     workdir=str(tmp_path))
    assert info.value.field == 'components.disk.file_size_mb'
    assert os.listdir(tmp_path) == []


def test_missing_disk_dir_or_file_is_named(tmp_path):
    with pytest.raises(ProfileError) as info:
        machine.plan(_profile(disk={'dir': str(tmp_path / 'none')}))
    assert info.value.field == 'components.disk.dir'
    with pytest.raises(ProfileError) as info:
        machine.plan(_profile(disk={'file': str(tmp_path / 'none')}))
    assert info.value.field == 'components.disk.file'


def test_disk_file_on_tmpfs_counts_as_memory(tmp_path):
    mounts = tmp_path / 'mounts'
    mounts.write_text('none / ext4 rw 0 0\nnone %s tmpfs rw 0 0\n'
                      % tmp_path)
    meminfo = tmp_path / 'meminfo'
    meminfo.write_text('MemAvailable: 1048576 kB\n')
    profile = _profile(disk={'file_size_mb': 900})
    on_disk = machine.plan(profile, workdir='/', meminfo=str(meminfo),
                           mounts=str(mounts))
    assert on_disk.memory_needed_mb < 100
    with pytest.raises(ProfileError) as info:
        machine.plan(profile, workdir=str(tmp_path), meminfo=str(meminfo),
                     mounts=str(mounts))
    assert info.value.field == 'components.disk.file_size_mb'
    assert machine.filesystem_type(str(tmp_path), str(mounts)) == 'tmpfs'
    assert machine.filesystem_type('/', str(mounts)) == 'ext4'
    assert machine.filesystem_type(str(tmp_path), str(tmp_path / 'no')) \
        is None


def test_cpus_available_follows_the_affinity_mask():
    assert machine.cpus_available() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize('name', profiles.BUILTIN_PROFILES)
def test_memory_estimate_for_a_flavor_matches_the_guest_check(name,
                                                               tmp_path):
    """The service can check a profile against a flavor with the same
    arithmetic the guest uses."""
    mounts = tmp_path / 'mounts'
    mounts.write_text('none / ext4 rw 0 0\n')
    profile = profiles.load_profile(name)
    on_guest = machine.plan(profile, workdir=str(tmp_path), cpus=1,
                            mounts=str(mounts))
    assert machine.memory_needed_mb(profile, cpus=1) == \
        on_guest.memory_needed_mb
    assert machine.memory_needed_mb(profiles.load_profile('idle'), 1) == \
        machine.PARENT_MB


def test_network_memory_does_not_grow_with_the_message_size():
    """Messages are sent from one shared buffer and read through a
    256 KiB one: 64 MiB messages need no more than 256 KiB ones."""
    def needed(size):
        return machine.memory_needed_mb(_profile(network={
            'connections': 256, 'payload_bytes': size,
            'response_bytes': size}), cpus=2)
    assert needed(64 * 2 ** 20) == needed(256 * 1024)
    assert needed(64 * 2 ** 20) < 256 * 5 + 64
