"""Shadow user-data fits Nova's limit and carries the collector token."""

import json
import random

import pytest

from loadgen import profiles
from shadow_service.clouds.openstack import userdata

URL = 'http://192.0.2.10:8787/v1/samples'
TOKEN = 'nss1.6b7a3c52-0b8f-4d0e-9a55-2f0d3f7d9a11.' + 'A' * 43
TAGS = {'evaluation': '6b7a3c52-0b8f-4d0e-9a55-2f0d3f7d9a11',
        'host': 'a-rather-long-compute-host-name.rack-17.example.org',
        'profile': 'analytics'}


@pytest.mark.parametrize('name', sorted(profiles.BUILTIN_PROFILES))
def test_every_builtin_profile_fits_novas_user_data_limit(name):
    profile = profiles.load_profile(name).scaled(0.25)
    encoded = userdata.encoded_user_data(profile, dict(TAGS, profile=name),
                                         collector_url=URL, token=TOKEN)
    assert len(encoded) <= userdata.NOVA_USER_DATA_LIMIT == 65535


def test_the_guest_gets_the_token_in_a_private_file_and_the_sink():
    encoded = userdata.encoded_user_data(
        profiles.load_profile('web'), TAGS, collector_url=URL, token=TOKEN)
    document = userdata.decode(encoded)
    assert document.startswith('#cloud-config\n')
    config = json.loads(document.partition('\n')[2])
    files = {f['path']: f for f in config['write_files']}
    token_file = files[userdata.TOKEN_PATH]
    assert token_file['permissions'] == '0600'
    command = json.dumps(config['runcmd'])
    assert '--sink %s' % URL in command
    assert '--sink-token-file %s' % userdata.TOKEN_PATH in command
    assert TOKEN not in command


def test_a_user_data_nova_would_refuse_is_an_error_that_says_what_to_do():
    noise = random.Random(0)
    profile = profiles.load_profile({
        'name': 'long-trace', 'duration_s': 60,
        'components': {'cpu': {'workers': 1, 'duty_cycle': 0.5,
                               'pattern': {
                                   'type': 'trace', 'step_s': 1,
                                   'values': [noise.random()
                                              for _ in range(20000)]}}}})
    with pytest.raises(userdata.UserDataTooLarge) as caught:
        userdata.encoded_user_data(profile, TAGS, collector_url=URL,
                                   token=TOKEN)
    assert 'preinstalled' in str(caught.value)
