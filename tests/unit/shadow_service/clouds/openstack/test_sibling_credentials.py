"""Which credentials can boot a sibling in its VM's project, against a
Keystone answering token requests over HTTP
(:mod:`tests.keystone_support`) through keystoneauth's own plugins."""

import pytest

from shadow_service.clouds import base
from shadow_service.clouds.openstack import driver
from shadow_service.history import memory
from tests import keystone_support as ks
from tests import service_support

TENANT = 'p-tenant'


@pytest.fixture
def keystone():
    with ks.TokenKeystone() as keystone:
        yield keystone


def _driver(tmp_path, monkeypatch, auth, cloud):
    """A driver whose ``[openstack]`` credentials are ``auth`` (dict of
    keystoneauth options), as the group's options or as a clouds.yaml
    cloud."""
    if cloud:
        clouds = tmp_path / 'clouds.yaml'
        clouds.write_text('clouds:\n  lab:\n    auth_type: %s\n    auth:\n'
                          % auth.pop('auth_type') + ''.join(
                              '      %s: %s\n' % item
                              for item in auth.items()))
        monkeypatch.setenv('OS_CLIENT_CONFIG_FILE', str(clouds))
        text = '[openstack]\ncloud = lab\n'
    else:
        text = '[openstack]\n' + ''.join('%s = %s\n' % item
                                         for item in auth.items())
    path = tmp_path / 'nova-shadow.conf'
    path.write_text(text)
    conf = service_support.make_conf()
    conf(['--config-file', str(path)], project='nova-shadow-test')
    return driver.OpenStackDriver(conf, memory.MemoryStore())


def _vm(project_id):
    return base.Instance(instance_id='vm-1', host='host1', flavor={},
                         project_id=project_id, volume_backed=False)


@pytest.mark.parametrize('cloud', [False, True], ids=['options', 'cloud'])
def test_an_application_credential_says_it_cannot_boot_in_a_tenant_project(
        tmp_path, monkeypatch, keystone, cloud):
    sibling_driver = _driver(tmp_path, monkeypatch, {
        'auth_type': 'v3applicationcredential', 'auth_url': keystone.url,
        'application_credential_id': ks.APP_CREDENTIAL_ID,
        'application_credential_secret': ks.APP_CREDENTIAL_SECRET},
        cloud)
    # Whatever roles the user holds in the tenant's project.
    keystone.roles[TENANT] = ['member']
    assert sibling_driver.why_no_sibling(_vm(TENANT)) == (
        'the driver authenticates with an application credential, which '
        'Keystone keeps to the project it was created in (p-shadows): it '
        'gives no token of project p-tenant, the VM\'s project, where its '
        'sibling is booted, whatever roles the user holds there; give '
        '[openstack] a user\'s password (a user with the member role in '
        'the projects whose VMs are scaled out), or set [openstack] '
        'sibling_project = service to boot siblings in the driver\'s own '
        'project instead')
    # Keystone was asked for the credential's own token only.
    assert keystone.requests == [(('application_credential',), None)]
    # A VM of the credential's project needs no other token.
    assert sibling_driver.why_no_sibling(_vm(ks.APP_CREDENTIAL_PROJECT)) \
        is None


def test_a_password_user_without_a_role_is_told_which_role_to_grant(
        tmp_path, monkeypatch, keystone):
    sibling_driver = _driver(tmp_path, monkeypatch, {
        'auth_type': 'v3password', 'auth_url': keystone.url,
        'username': ks.USER_NAME, 'password': ks.PASSWORD,
        'user_domain_id': 'default', 'project_id': ks.APP_CREDENTIAL_PROJECT},
        False)
    assert sibling_driver.why_no_sibling(_vm(TENANT)) == (
        'the driver\'s user u-nova-shadow has no role in project p-tenant, '
        'the VM\'s project, where its sibling is booted (Keystone refused '
        'a token of that project: The request you have made requires '
        'authentication. (HTTP 401)); grant one with: openstack role add '
        '--user u-nova-shadow --project p-tenant member')
    keystone.roles[TENANT] = ['member']
    sibling_driver.refusal_memory_s = 0.0
    assert sibling_driver.why_no_sibling(_vm(TENANT)) is None
    assert (('password',), TENANT) in keystone.requests
