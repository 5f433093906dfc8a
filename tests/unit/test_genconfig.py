"""The generated sample config lists every option group (tox -e genconfig)."""

import io

import pytest
from oslo_config import generator

from shadow_service import conf as shadow_conf


def _generate(namespaces):
    conf = generator.cfg.ConfigOpts()
    generator.register_cli_opts(conf)
    out = io.StringIO()
    conf(['--namespace=%s' % n for n in namespaces] + ['--wrap-width=79'])
    generator.generate(conf, output_file=out)
    return out.getvalue()


def test_service_sample_lists_every_option_group():
    pytest.importorskip('importlib.metadata')
    sample = _generate(['nova_shadow.service'])
    groups = [group.name for group, _ in shadow_conf.list_opts()]
    assert {'shadow', 'history', 'sim'} <= set(groups)
    for group in groups:
        assert '[%s]' % group in sample
    assert 'cloud_driver' in sample
    assert {'openstack', 'collector'} <= set(groups)
    openstack = sample.split('\n[openstack]\n')[1].split('\n[')[0]
    # The driver's own options and keystoneauth's, password plugin included.
    for option in ('pin_method', 'max_shadows_per_host', 'auth_type',
                   'auth_url', 'username', 'project_domain_name'):
        assert '#%s = ' % option in openstack, option


def test_weigher_sample_lists_its_group_with_help():
    sample = _generate(['nova_shadow.weigher'])
    assert '[shadow_weigher]' in sample
    assert 'circuit breaker' in sample
