import pytest

from shadow_service.watcher import ladder


def test_a_ladder_is_read_smallest_first_and_finds_rungs():
    found = ladder.parse(['s:1:1024', 'm:2:2048:20', 'l:4:4096:40'])
    assert [r.name for r in found.rungs] == ['s', 'm', 'l']
    assert found.index_of({'name': 'm'}) == 1
    assert found.index_of({'vcpus': 4, 'ram_mb': 4096}) == 2
    assert found.index_of({'vcpus': 0}) is None
    assert found.rung_for(1.5) == 1 and found.rung_for(99) == 2
    assert found.rungs[1].to_flavor() == {'name': 'm', 'vcpus': 2,
                                          'ram_mb': 2048, 'disk_gb': 20}


def test_a_flavor_is_on_a_rung_only_by_its_name_or_its_exact_size():
    found = ladder.parse(['s:2:2048', 'm:4:4096', 'l:8:8192'])
    # Nova shows no name while a resize is under way (the twin neither):
    # the exact vCPUs and RAM find the rung.
    assert found.index_of({'vcpus': 4, 'ram_mb': 4096}) == 1
    assert found.index_of({'name': 'l', 'vcpus': 8, 'ram_mb': 8192}) == 2
    # A flavor the ladder does not list is on no rung, whatever its size
    # (it used to be taken for the largest rung with no more vCPUs, and
    # resized).
    assert found.index_of({'name': 'm1.odd', 'vcpus': 6,
                           'ram_mb': 6144}) is None
    assert found.index_of({'name': 'm1.huge', 'vcpus': 32,
                           'ram_mb': 65536}) is None
    assert found.index_of({'vcpus': 4, 'ram_mb': 16384}) is None
    assert found.index_of({'vcpus': 4}) is None
    assert found.index_of(None) is None


@pytest.mark.parametrize('entries,message', [
    (['s:1'], r'flavor_ladder\[0\]: .* not name:vcpus:ram_mb'),
    (['s:1:1024', 'm:two:2048'], r'flavor_ladder\[1\]: vcpus .two.'),
    (['s:0:1024'], r'flavor_ladder\[0\]: vcpus must be positive'),
    (['s:2:1024', 'm:2:2048'], 'must have more vCPUs than s'),
    (['s:1:1024', 's:2:2048'], 'appears twice'),
    (['s:1:4096', 'm:2:2048'],
     r'm \(2048 MB of RAM\) must have at least the RAM of s \(4096 MB\)'),
])
def test_a_malformed_ladder_names_the_entry(entries, message):
    with pytest.raises(ValueError, match=message):
        ladder.parse(entries)


def test_a_ladder_whose_root_disks_differ_is_warned_of():
    # Nova refuses to shrink the root disk of a VM booted from an image.
    growing = ladder.parse(['s:1:2048:20', 'm:2:4096:40', 'l:4:8192:40'])
    assert growing.disk_warning() == (
        "flavor_ladder: the rungs' root disks differ (20, 40 GB): Nova "
        'refuses to shrink the root disk of a VM booted from an image, so '
        'such a VM is shrunk only to rungs whose disk holds its own (VMs '
        'booted from a volume are not limited); give every rung the same '
        'disk_gb to let every VM shrink')
    assert ladder.parse(['s:1:2048:40', 'm:2:4096:40']).disk_warning() is None
    assert ladder.parse(['s:1:2048', 'm:2:4096']).disk_warning() is None
