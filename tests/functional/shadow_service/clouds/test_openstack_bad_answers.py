"""A compute API that answers what the API does not: the openstack
driver raises retryable CloudErrors, never Python's own errors, and a
create that did not say it succeeded leaves no server and no taken slot
behind.  The API is a small fake of Nova's (the harness's real Nova never
answers like this: :mod:`tests.compute_api_support`)."""

import uuid

import pytest

from loadgen import profiles
from shadow_service.clouds import base
from tests import compute_api_support

REQUEST = {'flavor': {'vcpus': 1, 'ram_mb': 1024, 'disk_gb': 1},
           'profile': 'web',
           'image_id': '155d900f-4e14-4e4c-a73d-069cbf4541e6'}
EVALUATION = '6b7a3c52-0b8f-4d0e-9a55-2f0d3f7d9a11'


@pytest.fixture
def nova():
    fake = compute_api_support.FakeNova()
    yield fake
    fake.close()


@pytest.mark.parametrize('answer', [
    (200, {'servers': 'nope'}),
    (200, {'servers': [1, 2]}),
    (200, {'other': []}),
    (200, b'<html>fine</html>', 'text/html'),
])
def test_a_server_list_the_api_never_gives_is_a_retryable_cloud_error(
        nova, answer):
    driver = compute_api_support.make_driver(nova)
    nova.answers['GET /v2.1/servers/detail'] = answer
    for call in (driver.list_shadows, driver.collect_garbage):
        with pytest.raises(base.CloudError) as info:
            call()
        assert info.value.retryable
        assert 'Listing shadows failed' in str(info.value)


@pytest.mark.parametrize('answer', [
    (202, {'server': {}}),
    (500, b'<html>oops</html>', 'text/html'),
])
def test_a_create_that_did_not_succeed_leaves_no_server_and_no_slot(
        nova, answer):
    # The fake makes the server, then answers without its id or with an
    # error, as a cloud failing half-way does.
    driver = compute_api_support.make_driver(nova, max_shadows_per_host=1)
    profile = profiles.load_profile('web')
    nova.answers['POST /v2.1/servers'] = answer
    assert driver.boot_shadows(EVALUATION, REQUEST, ['h1', 'h2'],
                               profile) == []
    assert nova.servers == {}
    del nova.answers['POST /v2.1/servers']
    # The hosts' slots were given back: the next evaluation measures both.
    shadows = driver.boot_shadows(str(uuid.uuid4()), REQUEST, ['h1', 'h2'],
                                  profile)
    assert sorted(s.host for s in shadows) == ['h1', 'h2']
    driver.delete_shadows(shadows)
    assert nova.servers == {}
