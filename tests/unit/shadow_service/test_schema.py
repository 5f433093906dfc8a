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


@pytest.mark.parametrize('budget', [0, -1, 'ten', 10 ** 9])
def test_bad_budget_is_rejected(budget):
    with pytest.raises(exception.InvalidRequest, match='budget_s'):
        schema.validate_budget(budget)
