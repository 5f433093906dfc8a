"""The request builder's profile scale stays within what the service and
loadgen take, for every flavor size the schema allows."""

import pytest

from loadgen import profiles as lg_profiles
from nova_shadow_filter import request as request_lib
from shadow_service import schema
from shadow_service.workloads import profiles


def test_the_largest_scale_is_loadgens_and_the_schemas():
    scale = schema.REQUEST['properties']['profile_scale']
    assert request_lib.MAX_PROFILE_SCALE == lg_profiles.MAX_SCALE
    assert request_lib.MAX_PROFILE_SCALE == scale['maximum']


@pytest.mark.parametrize('vcpus, scale', [
    (1, 0.5), (2, 1.0), (8, 4.0), (128, 64.0), (129, 64.0), (192, 64.0),
    (1024, 64.0)])
def test_a_flavor_of_any_size_the_schema_takes_is_evaluated(vcpus, scale):
    # Before, a flavor above 128 vCPUs became a request the service
    # refused ("profile_scale: 96.0 is greater than the maximum of 64"),
    # which left the VM with neutral weights.
    request = request_lib.build_request(
        {'vcpus': vcpus, 'ram_mb': 4096, 'disk_gb': 10}, 'web')
    assert request['profile_scale'] == scale
    schema.validate_request(request)
    profile = profiles.resolve_profile(request)
    assert profile.scale == pytest.approx(
        profiles.resolve_profile(dict(request, profile_scale=1.0)).scale
        * scale)
