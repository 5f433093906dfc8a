"""The openstack driver's pure parts: error translation, flavor names,
the scheduler's host figures as host facts."""

import pytest
import requests
from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as sdk_exc

from shadow_service.clouds import base
from shadow_service.clouds.openstack import driver


def _http_error(status, message):
    response = requests.Response()
    response.status_code = status
    response._content = (b'{"forbidden": {"message": "%s"}}'
                         % message.encode())
    response.headers['Content-Type'] = 'application/json'
    response.url = 'http://nova/v2.1/servers'
    return sdk_exc.HttpException(message=message, response=response)


def _translated(exc):
    with pytest.raises(base.CloudError) as caught:
        with driver.cloud_errors('Creating the shadow on h1', host='h1'):
            raise exc
    assert not isinstance(caught.value, (sdk_exc.SDKException,
                                         ks_exc.ClientException))
    return caught.value


@pytest.mark.parametrize('exc, retryable', [
    (_http_error(503, 'Service Unavailable'), True),
    (_http_error(409, 'Cannot delete while resizing'), True),
    (_http_error(429, 'Too many requests'), True),
    (_http_error(400, 'Invalid flavorRef'), False),
    (_http_error(403, 'Quota exceeded for instances: Requested 1, but '
                      'already used 2 of 2 instances'), False),
    (sdk_exc.ResourceTimeout('Timeout waiting'), True),
    (ks_exc.ConnectFailure('Unable to establish connection'), True),
    (ks_exc.ConnectTimeout('Request timed out'), True),
    (sdk_exc.SDKException('something else'), False),
])
def test_every_client_failure_becomes_a_cloud_error(exc, retryable):
    error = _translated(exc)
    assert error.retryable is retryable
    assert error.host == 'h1'
    assert str(error).startswith('Creating the shadow on h1 failed')


def test_a_quota_error_says_so():
    error = _translated(_http_error(403, 'Quota exceeded for instances'))
    assert 'HTTP 403' in str(error) and 'Quota exceeded' in str(error)


def test_flavor_names_follow_sizes_and_extra_specs():
    name = driver.OpenStackDriver.flavor_name
    plain = name('nova-shadow', {'vcpus': 1, 'ram_mb': 2048, 'disk_gb': 10})
    assert plain.startswith('nova-shadow-1c-2048m-10g-')
    pinned = name('nova-shadow', {'vcpus': 1, 'ram_mb': 2048, 'disk_gb': 10,
                                  'extra_specs': {'hw:cpu_policy':
                                                  'dedicated'}})
    assert pinned != plain
    assert pinned == name('nova-shadow', {
        'vcpus': 1, 'ram_mb': 2048, 'disk_gb': 10,
        'extra_specs': {'hw:cpu_policy': 'dedicated'}})
    assert name('x', {'vcpus': 2, 'ram_mb': 512}).startswith('x-2c-512m-0g-')


def test_the_schedulers_host_figures_become_host_facts():
    found = driver._scheduler_facts({
        'host': 'h1', 'vcpus': 32, 'vcpus_used': 12.0,
        'total_ram_mb': 65536, 'free_ram_mb': 16384, 'num_instances': 9})
    assert found == {'cores': 32, 'vcpus_used': 12.0, 'memory_mb': 65536,
                     'memory_mb_used': 49152, 'num_instances': 9,
                     'running_vms': 9}
    assert driver._scheduler_facts({'host': 'h1'}) == {}


def _conf(tmp_path, text):
    from tests import service_support

    path = tmp_path / 'nova-shadow.conf'
    path.write_text(text)
    conf = service_support.make_conf()
    conf(['--config-file', str(path)], project='nova-shadow-test')
    return conf


def test_keystoneauth_options_of_the_group_make_the_session(tmp_path):
    conf = _conf(tmp_path, '[openstack]\nauth_type = password\n'
                 'auth_url = http://keystone.example:5000/v3\n'
                 'username = nova-shadow\npassword = secret\n'
                 'project_name = shadows\nuser_domain_name = Default\n'
                 'project_domain_name = Default\napi_timeout = 7\n'
                 'region_name = RegionTwo\n')
    conn = driver.connect(conf)
    auth = conn.session.auth
    assert auth.auth_url == 'http://keystone.example:5000/v3'
    assert auth._username == 'nova-shadow'
    assert auth._project_name == 'shadows'
    assert conn.session.timeout == 7.0
    assert conn.config.get_region_name('compute') == 'RegionTwo'


def test_keystoneauth_options_are_scoped_to_another_project(tmp_path):
    # A sibling is booted in its VM's project: the same user, whatever
    # project and domain scope the group names.
    conf = _conf(tmp_path, '[openstack]\nauth_type = password\n'
                 'auth_url = http://keystone.example:5000/v3\n'
                 'username = nova-shadow\npassword = secret\n'
                 'project_name = shadows\nuser_domain_name = Default\n'
                 'project_domain_name = Default\napi_timeout = 7\n')
    auth = driver.connect(conf, project_id='tenant-1').session.auth
    assert (auth._username, auth._password, auth._user_domain_name) == (
        'nova-shadow', 'secret', 'Default')
    assert (auth._project_id, auth._project_name,
            auth._project_domain_name) == ('tenant-1', None, None)
    # The driver's own connection keeps its project.
    assert driver.connect(conf).session.auth._project_name == 'shadows'


def test_a_clouds_yaml_cloud_is_scoped_to_another_project(tmp_path,
                                                          monkeypatch):
    clouds = tmp_path / 'clouds.yaml'
    clouds.write_text(
        'clouds:\n  lab:\n    auth_type: password\n    auth:\n'
        '      auth_url: http://keystone.example:5000/v3\n'
        '      username: nova-shadow\n      password: secret\n'
        '      project_name: shadows\n      user_domain_name: Default\n'
        '      project_domain_name: Default\n')
    monkeypatch.setenv('OS_CLIENT_CONFIG_FILE', str(clouds))
    conf = _conf(tmp_path, '[openstack]\ncloud = lab\n')
    auth = driver.connect(conf, project_id='tenant-1').session.auth
    assert (auth._username, auth._project_id, auth._project_name) == (
        'nova-shadow', 'tenant-1', None)


def test_credentials_without_a_project_cannot_be_scoped(tmp_path):
    conf = _conf(tmp_path, '[openstack]\nauth_type = admin_token\n'
                 'endpoint = http://nova.example\ntoken = t\n')
    with pytest.raises(base.CloudError, match='auth_type admin_token '
                       'cannot be scoped to a project.*sibling_project = '
                       'service'):
        driver.connect(conf, project_id='tenant-1')


@pytest.mark.parametrize('timeout', ['-5', '0', 'nan'])
def test_a_session_timeout_that_is_not_positive_is_refused(tmp_path,
                                                           timeout):
    # It failed every call with requests' own error, naming no option.
    conf = _conf(tmp_path, '[openstack]\nauth_type = password\n'
                 'auth_url = http://keystone.example:5000/v3\n'
                 'username = nova-shadow\npassword = secret\n'
                 'project_name = shadows\ntimeout = %s\n' % timeout)
    with pytest.raises(base.CloudError,
                       match=r'\[openstack\] timeout: must be a number of '
                             r'seconds above 0'):
        driver.connect(conf)


def test_a_clouds_yaml_of_the_wrong_shape_is_a_cloud_error(tmp_path,
                                                          monkeypatch):
    clouds = tmp_path / 'clouds.yaml'
    clouds.write_text('clouds: "a string"\n')
    monkeypatch.setenv('OS_CLIENT_CONFIG_FILE', str(clouds))
    with pytest.raises(base.CloudError,
                       match='Loading the \\[openstack\\] credentials'):
        driver.connect(_conf(tmp_path, '[openstack]\ncloud = lab\n'))


def test_missing_or_unknown_credentials_say_which_options(tmp_path,
                                                          monkeypatch):
    with pytest.raises(base.CloudError, match='cloud .*auth_type'):
        driver.connect(_conf(tmp_path, '[openstack]\n'))
    clouds = tmp_path / 'clouds.yaml'
    clouds.write_text('clouds: {}\n')
    monkeypatch.setenv('OS_CLIENT_CONFIG_FILE', str(clouds))
    with pytest.raises(base.CloudError, match='nowhere'):
        driver.connect(_conf(tmp_path, '[openstack]\ncloud = nowhere\n'))


def test_a_collector_on_a_wildcard_address_needs_an_advertised_url(
        tmp_path, monkeypatch):
    clouds = tmp_path / 'clouds.yaml'
    clouds.write_text('clouds: {lab: {auth_type: none}}\n')
    monkeypatch.setenv('OS_CLIENT_CONFIG_FILE', str(clouds))
    conf = _conf(tmp_path, '[openstack]\ncloud = lab\nnetwork = net1\n'
                 '[collector]\nhost = 0.0.0.0\n')
    with pytest.raises(base.CloudError, match='advertised_url'):
        driver.OpenStackDriver.check_config(conf)
    conf.set_override('advertised_url', 'http://10.0.0.5:8787/v1/samples',
                      group='collector')
    driver.OpenStackDriver.check_config(conf)
    conf.clear_override('advertised_url', group='collector')
    conf.set_override('network', None, group='openstack')
    driver.OpenStackDriver.check_config(conf)
