import pytest

from shadow_service import exception
from shadow_service import schema

GOOD = {'flavor': {'vcpus': 2, 'ram_mb': 4096}, 'profile': 'web'}


def test_good_request_passes():
    schema.validate_request(GOOD)
    schema.validate_request(dict(GOOD, profile={'name': 'inline'}))


@pytest.mark.parametrize('request_, field', [
    ({'profile': 'web'}, "'flavor' is a required property"),
    ({'flavor': {'vcpus': 0, 'ram_mb': 1}, 'profile': 'web'},
     'request.flavor.vcpus'),
    ({'flavor': {'vcpus': 1, 'ram_mb': 'lots'}, 'profile': 'web'},
     'request.flavor.ram_mb'),
    (dict(GOOD, profile=''), 'request.profile'),
    (dict(GOOD, colour='blue'), 'colour'),
])
def test_bad_request_names_the_field(request_, field):
    with pytest.raises(exception.InvalidRequest) as info:
        schema.validate_request(request_)
    assert field in str(info.value)


def test_hosts_need_names_and_no_duplicates():
    schema.validate_hosts([{'host': 'a'}, {'host': 'b', 'vcpus': 4}])
    with pytest.raises(exception.InvalidRequest, match='hosts.0'):
        schema.validate_hosts([{'nodename': 'a'}])
    with pytest.raises(exception.InvalidRequest, match='duplicate'):
        schema.validate_hosts([{'host': 'a'}, {'host': 'a'}])
    with pytest.raises(exception.InvalidRequest):
        schema.validate_hosts([])


@pytest.mark.parametrize('field', ['vcpus', 'total_ram_mb', 'free_ram_mb',
                                   'num_instances', 'cost', 'newer_fact'])
def test_a_host_number_no_float_holds_is_refused(field):
    with pytest.raises(exception.InvalidRequest, match='hosts.1'):
        schema.validate_hosts([{'host': 'a'}, {'host': 'b',
                                               field: 10 ** 400}])


@pytest.mark.parametrize('name', ['b\n', 'b\nforged', '\n', 'b\r'])
def test_a_host_name_with_a_line_break_is_refused(name):
    # Also a final newline, which Python's ``$`` alone lets through.
    with pytest.raises(exception.InvalidRequest, match='hosts.1'):
        schema.validate_hosts([{'host': 'a'}, {'host': name}])
    with pytest.raises(exception.InvalidRequest):
        schema.validate_request(dict(GOOD, profile=name))


def test_host_columns_become_the_host_list():
    rows = schema.hosts_from_columns({
        'host': ['a', 'b', 'c'], 'nodename': ['a', None, 'node-c'],
        'vcpus': [64, 32.0, None], 'num_instances': [3, None, 0],
        'free_ram_mb': [-512, 1024, 2048], 'cost': [None, 2.5, 0]})
    assert rows == [
        {'host': 'a', 'nodename': 'a', 'vcpus': 64, 'num_instances': 3,
         'free_ram_mb': -512},
        {'host': 'b', 'vcpus': 32.0, 'free_ram_mb': 1024, 'cost': 2.5},
        {'host': 'c', 'nodename': 'node-c', 'num_instances': 0,
         'free_ram_mb': 2048, 'cost': 0}]
    # What the row check accepts, it accepts.
    schema.validate_hosts(rows)


@pytest.mark.parametrize('columns, where', [
    ([{'host': 'a'}], 'hosts: must be an object of columns'),
    ({'vcpus': [1]}, 'hosts.host: a list of host names is required'),
    ({'host': []}, 'hosts.host: must name 1 to 10000 hosts'),
    ({'host': ['a'] * 10001}, 'hosts.host: must name 1 to 10000 hosts'),
    ({'host': ['a', 'b'], 'colour': ['x', 'y']}, 'hosts.colour: not a '),
    ({'host': ['a', 'b'], 'vcpus': [1]}, 'hosts.vcpus: must be a list as '
     'long as hosts.host (2)'),
    ({'host': ['a', 'b'], 'vcpus': 'lots'}, 'hosts.vcpus: must be a list'),
    ({'host': ['a', 7]}, 'hosts.host.1: must be a string'),
    ({'host': ['a', None]}, 'hosts.host.1: must be a string'),
    ({'host': ['a', '']}, 'hosts.host.1: must be 1 to 255'),
    ({'host': ['a', 'b\nforged']}, 'hosts.host.1: must be 1 to 255'),
    ({'host': ['a', 'b\n']}, 'hosts.host.1: must be 1 to 255'),
    ({'host': ['a\n', 'b']}, 'hosts.host.0: must be 1 to 255'),
    ({'host': ['a', 'x' * 256]}, 'hosts.host.1: must be 1 to 255'),
    ({'host': ['a', 'b'], 'nodename': ['a', 3]}, 'hosts.nodename.1'),
    ({'host': ['a', 'b', 'c'], 'nodename': [None, 'n', 'x\ty']},
     'hosts.nodename.2: must be at most 255 printable'),
    ({'host': ['a', 'b'], 'nodename': [None, 'x' * 256]},
     'hosts.nodename.1: must be at most 255 printable'),
    ({'host': ['a', 'b'], 'vcpus': [1, float('nan')]},
     'hosts.vcpus.1: must be a finite number'),
    ({'host': ['a', 'b'], 'free_ram_mb': [float('inf'), 1]},
     'hosts.free_ram_mb.0: must be a finite number'),
    ({'host': ['a', 'b'], 'vcpus': [1, True]}, 'hosts.vcpus.1: must be a '
     'number or null'),
    ({'host': ['a', 'b'], 'vcpus': [1, '4']}, 'hosts.vcpus.1'),
    ({'host': ['a', 'b'], 'vcpus_used': [-1, 1]},
     'hosts.vcpus_used.0: must be at least 0'),
    ({'host': ['a', 'b'], 'num_instances': [1, 1.5]},
     'hosts.num_instances.1: must be an integer or null'),
    ({'host': ['a', 'b'], 'cost': [1, -0.5]}, 'hosts.cost.1: must be at '
     'least 0'),
    ({'host': ['a', 'a']}, 'hosts: duplicate host names'),
    # An integer JSON allows but no float holds (it crashed the ranking).
    ({'host': ['a', 'b'], 'cost': [10 ** 400, 1]},
     'hosts.cost.0: must be within 1e+15 of 0'),
    ({'host': ['a', 'b'], 'free_ram_mb': [1, -10 ** 400]},
     'hosts.free_ram_mb.1: must be within 1e+15 of 0'),
    ({'host': ['a', 'b'], 'num_instances': [0, 10 ** 400]},
     'hosts.num_instances.1: must be within 1e+15 of 0'),
])
def test_bad_host_columns_name_the_column_and_host(columns, where):
    with pytest.raises(exception.InvalidRequest) as info:
        schema.hosts_from_columns(columns)
    assert where in str(info.value)
    # One line, whatever the tenant-supplied name held.
    assert '\n' not in str(info.value)


@pytest.mark.parametrize('budget', [0, -1, 'ten', 10 ** 9])
def test_bad_budget_is_rejected(budget):
    with pytest.raises(exception.InvalidRequest, match='budget_s'):
        schema.validate_budget(budget)
