"""The generated sample config lists every option group (tox -e genconfig)."""

import io
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest
from oslo_config import generator

from shadow_service import conf as shadow_conf

REPO = pathlib.Path(__file__).resolve().parents[2]
SERVICE_GENERATOR = (REPO / 'etc/nova-shadow'
                     / 'shadow-service-config-generator.conf')


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


def service_sample():
    """The sample ``tox -e genconfig`` writes for shadow-service.conf, from
    the namespaces its generator configuration lists."""
    text = SERVICE_GENERATOR.read_text()
    namespaces = re.findall(r'^namespace\s*=\s*(\S+)', text, re.M)
    assert namespaces
    return _generate(namespaces)


def sample_options(sample):
    """``{group: {option, ...}}`` of a generated sample."""
    options = {}
    group = None
    for line in sample.splitlines():
        header = re.fullmatch(r'\[(\w+)\]', line)
        if header:
            group = header.group(1)
            continue
        setting = re.match(r'#([a-z_0-9]+) =', line)
        if setting:
            options.setdefault(group, set()).add(setting.group(1))
    return options


def test_service_sample_lists_the_launchers_options():
    """The daemons run under oslo.service's launcher, which registers
    ``graceful_shutdown_timeout`` (how long a stop may take before the
    worker is killed) and ``log_options``."""
    from oslo_service import opts as launcher_opts

    registered = cfg_names(launcher_opts.register_service_opts)
    assert 'graceful_shutdown_timeout' in registered
    default = sample_options(service_sample())['DEFAULT']
    assert registered <= default, registered - default


def cfg_names(register):
    """The names of the options ``register(conf)`` registers."""
    from oslo_config import cfg

    conf = cfg.ConfigOpts()
    builtin = set(conf)     # oslo.config's own (config_source ...)
    register(conf)
    return set(conf) - builtin


def test_service_sample_lists_no_option_oslo_service_deprecated():
    """oslo.service's launcher options come with the eventlet backdoor's
    (``backdoor_port``, ``backdoor_socket``), deprecated for removal and
    never read by the daemons: the sample leaves them out."""
    from oslo_service import service as os_service

    deprecated = {opt.name for _group, opts in os_service.list_opts()
                  for opt in opts if opt.deprecated_for_removal}
    assert {'backdoor_port', 'backdoor_socket'} <= deprecated
    sample = service_sample()
    listed = set().union(*sample_options(sample).values())
    assert not deprecated & listed, deprecated & listed
    assert 'DEPRECATED: Enable eventlet backdoor' not in sample


#: What the launcher's namespace leaves oslo.service's backend at, in a
#: fresh interpreter where ``before`` ran first.
_LAUNCHER_BACKEND = textwrap.dedent("""\
    import sys
    from oslo_service import backend
    {before}
    from shadow_service.conf import launcher
    imported = backend.get_backend_type()
    names = sorted(opt.name for _group, opts in launcher.list_opts()
                   for opt in opts)
    print(imported, backend.get_backend_type().value, ','.join(names))
    """)


def _launcher_backend(before=''):
    out = subprocess.run(
        [sys.executable, '-W', 'ignore', '-c',
         _LAUNCHER_BACKEND.format(before=before)],
        capture_output=True, text=True, cwd=REPO, check=True, timeout=60)
    return out.stdout.split()


def test_launcher_options_do_not_select_the_eventlet_backend():
    """Importing ``oslo_service.service`` selects oslo.service's eventlet
    backend when none was chosen; the launcher's namespace chooses the
    daemons' threading backend instead, and only when its options are
    listed, not when it is imported."""
    assert _launcher_backend() == [
        'None', 'threading', 'graceful_shutdown_timeout,log_options']


def test_launcher_options_keep_a_backend_chosen_before():
    """In ``oslo-config-generator``, oslo.messaging's namespace has already
    chosen the eventlet backend: listing the launcher's options keeps it,
    they are the same on either backend."""
    before = 'backend.init_backend(backend.BackendType.EVENTLET)'
    assert _launcher_backend(before) == [
        'BackendType.EVENTLET', 'eventlet',
        'graceful_shutdown_timeout,log_options']
