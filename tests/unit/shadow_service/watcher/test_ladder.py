import pytest

from shadow_service.watcher import ladder


def test_a_ladder_is_read_smallest_first_and_finds_rungs():
    found = ladder.parse(['s:1:1024', 'm:2:2048:20', 'l:4:4096:40'])
    assert [r.name for r in found.rungs] == ['s', 'm', 'l']
    assert found.index_of({'name': 'm'}) == 1
    assert found.index_of({'vcpus': 4, 'ram_mb': 4096}) == 2
    assert found.index_of({'vcpus': 3, 'ram_mb': 3000}) == 1
    assert found.index_of({'vcpus': 0}) is None
    assert found.rung_for(1.5) == 1 and found.rung_for(99) == 2
    assert found.rungs[1].to_flavor() == {'name': 'm', 'vcpus': 2,
                                          'ram_mb': 2048, 'disk_gb': 20}


@pytest.mark.parametrize('entries,message', [
    (['s:1'], r'flavor_ladder\[0\]: .* not name:vcpus:ram_mb'),
    (['s:1:1024', 'm:two:2048'], r'flavor_ladder\[1\]: vcpus .two.'),
    (['s:0:1024'], r'flavor_ladder\[0\]: vcpus must be positive'),
    (['s:2:1024', 'm:2:2048'], 'must have more vCPUs than s'),
    (['s:1:1024', 's:2:2048'], 'appears twice'),
])
def test_a_malformed_ladder_names_the_entry(entries, message):
    with pytest.raises(ValueError, match=message):
        ladder.parse(entries)
