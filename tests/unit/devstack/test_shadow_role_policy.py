"""The role the devstack plugin (and doc/source/openstack.rst) gives the
shadow project's user is enough, and needed, under Nova's own default
policy.

The ``openstack`` driver pins shadows to hosts (``host=`` or
``<zone>:<host>``), creates private flavors and gives the shadow project
access to them, lists compute services and hypervisor details; the watcher
resizes, confirms and live-migrates tenants' servers to a chosen host.
Each is checked with oslo.policy against the defaults Nova 34 registers:
allowed for the ``admin`` role in the shadow project, on any project's
server, and (for the admin-only ones) refused to a ``member``.
"""

import pytest
from oslo_config import cfg
from oslo_policy import policy as oslo_policy

pytest.importorskip('nova.policies')
from nova import policies  # noqa: E402

SHADOW_PROJECT = 'c0ffee00c0ffee00c0ffee00c0ffee00'
TENANT_PROJECT = 'deadbeefdeadbeefdeadbeefdeadbeef'

DRIVER_RULES = [
    'os_compute_api:servers:create',
    'compute:servers:create:requested_destination',   # host=
    'os_compute_api:servers:create:forced_host',      # <zone>:<host>
    'os_compute_api:os-flavor-manage:create',
    'os_compute_api:os-flavor-access:add_tenant_access',
    'os_compute_api:os-flavor-extra-specs:create',
    'os_compute_api:os-services:list',
    'os_compute_api:os-hypervisors:list-detail',
]
WATCHER_RULES = [
    'os_compute_api:servers:resize',
    'os_compute_api:servers:confirm_resize',
    'os_compute_api:os-migrate-server:migrate_live',
    'os_compute_api:os-migrate-server:migrate_live:host',
]
ADMIN_ONLY = [
    'compute:servers:create:requested_destination',
    'os_compute_api:servers:create:forced_host',
    'os_compute_api:os-flavor-manage:create',
    'os_compute_api:os-flavor-access:add_tenant_access',
    'os_compute_api:os-hypervisors:list-detail',
    'os_compute_api:os-migrate-server:migrate_live:host',
]


@pytest.fixture(scope='module')
def enforcer():
    # No policy file: only Nova's registered defaults apply.
    conf = cfg.ConfigOpts()
    conf([], project='nova-shadow-policy-test', default_config_files=[])
    enforcer = oslo_policy.Enforcer(conf)
    enforcer.register_defaults(policies.list_rules())
    enforcer.load_rules()
    return enforcer


def _creds(role):
    return {'roles': [role], 'project_id': SHADOW_PROJECT,
            'user_id': 'nova-shadow', 'system_scope': None}


def test_every_rule_exists_in_novas_defaults(enforcer):
    for rule in DRIVER_RULES + WATCHER_RULES:
        assert rule in enforcer.registered_rules, rule


@pytest.mark.parametrize('rule', DRIVER_RULES)
def test_admin_in_the_shadow_project_may_do_what_the_driver_does(enforcer,
                                                                 rule):
    target = {'project_id': SHADOW_PROJECT, 'user_id': 'nova-shadow'}
    assert enforcer.authorize(rule, target, _creds('admin'),
                              do_raise=False)


@pytest.mark.parametrize('rule', WATCHER_RULES)
def test_admin_may_act_on_a_tenants_server(enforcer, rule):
    target = {'project_id': TENANT_PROJECT, 'user_id': 'someone'}
    assert enforcer.authorize(rule, target, _creds('admin'), do_raise=False)


@pytest.mark.parametrize('rule', ADMIN_ONLY)
def test_a_member_may_not(enforcer, rule):
    target = {'project_id': SHADOW_PROJECT, 'user_id': 'nova-shadow'}
    assert not enforcer.authorize(rule, target, _creds('member'),
                                  do_raise=False)
