"""The devstack plugin, run phase by phase against a recording devstack.

devstack itself cannot run here, so ``fake_devstack.sh`` stands in for it:
the variables ``stack.sh`` sets, and its functions (``setup_develop``,
``run_process``, the keystone helpers...) and the commands it runs
(``openstack``, ``wget``, ``sudo``...) replaced by recorders.  Each test
sources ``devstack/override-defaults``, writes nova.conf as ``lib/nova``
would, sources ``devstack/settings`` and then ``devstack/plugin.sh`` for
every phase of ``stack.sh`` in one shell (``errexit`` and ``nounset`` on),
then ``unstack`` and ``clean`` in shells of their own, as devstack does.
The tests then read what was recorded and parse the nova.conf and
shadow-service.conf the plugin wrote with the options the weigher, the
service, Nova, oslo.messaging and keystoneauth really register: a misspelt
option or a value of the wrong type fails here.

shellcheck checks the plugin's scripts (``apt-get install shellcheck``;
tools/install-services.sh installs it).
"""

import configparser
import copy
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request

import pytest
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg
from oslo_log import _options as log_opts
from oslo_messaging import opts as messaging_opts

from nova_shadow_filter import conf as weigher_conf
from shadow_service.conf import opts as service_opts
from tests.fixtures import influxdb as influxdb_fixture

REPO = pathlib.Path(__file__).resolve().parents[3]
DEVSTACK = REPO / 'devstack'
HARNESS = pathlib.Path(__file__).resolve().parent
STACK_PHASES = ('pre-install', 'install', 'post-config', 'extra',
                'test-config')
WEIGHER = 'nova_shadow_filter.weigher.ShadowWeigher'


class Run:
    """What one devstack run of the plugin left behind."""

    def __init__(self, root, record):
        self.root = root
        self.calls = [shlex.split(line) for line in
                      record.read_text().splitlines()]
        self.nova_conf = root / 'etc/nova/nova.conf'
        self.conf_dir = root / 'etc/nova-shadow'
        self.service_conf = self.conf_dir / 'shadow-service.conf'
        self.watcher_conf = self.conf_dir / 'shadow-watcher.conf'
        self.data_dir = root / 'opt/stack/data/nova-shadow'
        self.files = root / 'devstack/files'

    def called(self, name):
        return [c[1:] for c in self.calls if c[0] == name]

    def processes(self):
        return {args[0]: args[1] for args in self.called('run_process')}

    def openstack(self):
        return self.called('openstack')


def _devstack(tmp_path, localrc=None, enabled=None, stop=True):
    """Run stack.sh's phases (and unstack, clean when ``stop``) with the
    plugin; ``localrc`` are local.conf's [[local|localrc]] variables."""
    root = tmp_path / 'root'
    root.mkdir()
    record = tmp_path / 'record'
    record.touch()
    env = {'PATH': os.environ['PATH'], 'HOME': str(tmp_path),
           'HARNESS_ROOT': str(root), 'HARNESS_RECORD': str(record),
           'HARNESS_PYTHON': sys.executable, 'HARNESS_DIR': str(HARNESS),
           'HARNESS_VENV': str(pathlib.Path(sys.executable).parent.parent)}
    if enabled is not None:
        env['ENABLED_SERVICES'] = enabled
    localrc = ''.join('%s=%s\n' % (k, shlex.quote(v))
                      for k, v in (localrc or {}).items())
    head = ('set -o errexit -o nounset\n'
            'source %s\n%s'
            % (shlex.quote(str(HARNESS / 'fake_devstack.sh')), localrc))
    plugin = shlex.quote(str(DEVSTACK / 'plugin.sh'))
    settings = 'source %s\n' % shlex.quote(str(DEVSTACK / 'settings'))
    stack = (
        head
        + 'source %s\n' % shlex.quote(str(DEVSTACK / 'override-defaults'))
        # lib/nova writes nova.conf before the post-config phase.
        + 'mkdir -p "$NOVA_CONF_DIR"\n'
        'iniset "$NOVA_CONF" notifications notification_format '
        '"${NOVA_NOTIFICATION_FORMAT:-unversioned}"\n'
        'iniset "$NOVA_CONF" filter_scheduler enabled_filters '
        'ComputeFilter,ImagePropertiesFilter\n'
        + settings
        + ''.join('source %s stack %s\n' % (plugin, phase)
                  for phase in STACK_PHASES))
    scripts = [stack]
    if stop:
        scripts += [head + settings + 'source %s unstack\n' % plugin,
                    head + settings + 'source %s clean\n' % plugin]
    for script in scripts:
        done = subprocess.run(['bash', '-c', script], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-4000:]
    return Run(root, record)


def _ini(path):
    parser = configparser.RawConfigParser(default_section='\0none',
                                          interpolation=None)
    parser.optionxform = str
    parser.read(path)
    return parser


def _load(path, groups):
    """Parse ``path`` with ``groups`` (``[(group, opts)]``) registered and
    read every option the file sets: an option nobody registered or a value
    its type refuses raises."""
    conf = cfg.ConfigOpts()
    for group, opts in groups:
        conf.register_opts(opts, group=None if group == 'DEFAULT' else group)
    conf([], project='harness', default_config_files=[str(path)])
    parser = _ini(path)
    values = {}
    for section in parser.sections():
        for option in parser.options(section):
            node = conf if section == 'DEFAULT' else conf[section]
            values[(section, option)] = node[option]
    return values


def _service_groups():
    groups = []
    for group, opts in service_opts.list_opts():
        # keystoneauth marks auth_url required; it is only when the
        # openstack driver loads the credentials.
        groups.append((group, [_optional(opt) for opt in opts]))
    groups += [(group or 'DEFAULT', opts)
               for group, opts in messaging_opts.list_opts()]
    # oslo.log's own generator entry point (``oslo.log`` namespace).
    groups += [(group or 'DEFAULT', opts)
               for group, opts in log_opts.list_opts()]
    return groups


def _optional(opt):
    if not opt.required:
        return opt
    opt = copy.copy(opt)
    opt.required = False
    return opt


def _nova_groups():
    from nova.conf import notifications
    from nova.conf import scheduler

    groups = [(group.name, opts)
              for group, opts in weigher_conf.generator_opts()]
    for module in (scheduler, notifications):
        groups += [(getattr(group, 'name', group), opts)
                   for group, opts in module.list_opts().items()]
    return groups


@pytest.fixture(scope='module')
def default_run(tmp_path_factory):
    """The plugin with its defaults (openstack driver, SQLite history)."""
    return _devstack(tmp_path_factory.mktemp('default'), stop=False)


def test_install_develops_this_checkout_into_devstacks_python(default_run):
    # With the daemons' dependencies (setup.cfg's ``service`` extra).
    assert default_run.called('setup_develop') == [[str(REPO), 'service']]
    setup = configparser.RawConfigParser()
    setup.read(REPO / 'setup.cfg')
    assert setup.get('extras', 'service').strip()
    assert default_run.called('install_package') == []


def test_nova_conf_enables_the_weigher_and_versioned_notifications(
        default_run):
    values = _load(default_run.nova_conf, _nova_groups())
    assert values[('filter_scheduler', 'weight_classes')] == [
        'nova.scheduler.weights.all_weighers', WEIGHER]
    assert values[('notifications', 'notification_format')] == 'both'
    assert values[('shadow_weigher', 'weight_multiplier')] == 10.0
    assert values[('shadow_weigher', 'default_budget')] == 30.0
    assert values[('shadow_weigher', 'max_budget')] == 120.0
    assert values[('shadow_weigher', 'mode')] == 'enforce'
    # Nova's own settings survive.
    assert values[('filter_scheduler', 'enabled_filters')] == [
        'ComputeFilter', 'ImagePropertiesFilter']


def test_service_conf_is_valid_and_points_at_this_devstack(default_run):
    values = _load(default_run.service_conf, _service_groups())
    rabbit = 'rabbit://stackrabbit:secretrabbit@192.0.2.10:5672/'
    assert values[('DEFAULT', 'transport_url')] == rabbit
    assert values[('nova_notifications', 'transport_url')] == rabbit
    assert values[('nova_notifications', 'topics')] == [
        'versioned_notifications']
    assert values[('shadow', 'cloud_driver')] == 'openstack'
    assert values[('history', 'store')] == 'sqlite'
    assert values[('history', 'sqlite_path')] == str(
        default_run.data_dir / 'history.sqlite')
    assert values[('openstack', 'auth_url')] == 'http://192.0.2.10/identity'
    assert values[('openstack', 'project_name')] == 'nova-shadow'
    assert values[('openstack', 'image')] == 'nova-shadow-ubuntu-24.04'
    assert values[('openstack', 'network')] == 'nova-shadow-net'
    assert values[('openstack', 'loadgen_preinstalled')] is False
    assert values[('collector', 'advertised_url')] == (
        'http://172.24.4.1:8787/v1/samples')
    assert values[('watcher', 'dry_run')] is True
    assert values[('watcher', 'policy')] == 'forecast'
    # The keystoneauth options are the password plugin's.
    password = {o.dest for o in
                ks_loading.get_auth_plugin_conf_options('password')}
    parser = _ini(default_run.service_conf)
    assert {'username', 'password', 'user_domain_name',
            'project_domain_name'} <= password
    assert parser.get('openstack', 'password') == 'secretservice'
    assert default_run.data_dir.is_dir()
    assert (default_run.conf_dir / 'profiles').is_dir()


def test_watcher_ranks_through_the_service_and_serves_no_collector(
        default_run):
    """Both daemons build the cloud driver from one config: the watcher's
    overlay keeps it off the collector's port and away from the service's
    shadows (the garbage collector deletes shadows of its own identity that
    it did not boot)."""
    files = [default_run.service_conf, default_run.watcher_conf]
    conf = cfg.ConfigOpts()
    for group, opts in _service_groups():
        conf.register_opts(opts,
                           group=None if group == 'DEFAULT' else group)
    conf([], project='harness', default_config_files=[str(f) for f in files])
    service = _load(default_run.service_conf, _service_groups())
    watcher = _load(default_run.watcher_conf, _service_groups())
    assert set(watcher) == {('watcher', 'ranker'),
                            ('collector', 'enabled'),
                            ('openstack', 'service_id')}
    assert conf.watcher.ranker == 'rpc'
    assert conf.collector.enabled is False
    assert conf.openstack.service_id.endswith('-watcher')
    assert conf.openstack.service_id != service.get(
        ('openstack', 'service_id'))
    # The rest is the service's.
    assert conf.shadow.cloud_driver == 'openstack'
    assert conf.history.sqlite_path == service[('history', 'sqlite_path')]


def test_shadow_project_user_role_and_quotas(default_run):
    # The member role in the demo project too: the watcher boots the
    # siblings of its VMs there ([openstack] sibling_project = owner).
    assert default_run.called('get_or_create_project') == [
        ['nova-shadow', 'default'], ['demo', 'default']]
    assert default_run.called('get_or_create_user') == [
        ['nova-shadow', 'secretservice', 'default']]
    assert default_run.called('get_or_add_user_project_role') == [
        ['admin', 'user-nova-shadow', 'project-nova-shadow'],
        ['member', 'user-nova-shadow', 'project-demo']]
    assert ['--os-cloud', 'devstack-admin', 'quota', 'set',
            '--instances', '32', '--cores', '32', '--ram', '65536',
            'nova-shadow'] in default_run.openstack()


@pytest.mark.parametrize('localrc, member_of', [
    ({'NOVA_SHADOW_SIBLING_PROJECTS': 'alt_demo team-a'},
     ['alt_demo', 'team-a']),
    ({'NOVA_SHADOW_SIBLING_PROJECTS': ''}, []),
    # No watcher (local.conf's disable_service), no siblings.
    ({'DISABLED_SERVICES': 'shadow-watcher'}, []),
])
def test_sibling_projects_get_the_member_role(tmp_path, localrc, member_of):
    run = _devstack(tmp_path, localrc=localrc, stop=False)
    assert run.called('get_or_add_user_project_role') == [
        ['admin', 'user-nova-shadow', 'project-nova-shadow']] + [
        ['member', 'user-nova-shadow', 'project-%s' % name]
        for name in member_of]


def test_shadow_image_and_network(default_run):
    image = default_run.files / 'nova-shadow-ubuntu-24.04.qcow2'
    assert default_run.called('upload_image') == [['file://%s' % image]]
    assert image.exists()
    (wget,) = default_run.called('wget')
    assert wget[-3:-1] == [
        'https://cloud-images.ubuntu.com/minimal/releases/noble/release/'
        'ubuntu-24.04-minimal-cloudimg-amd64.img', '-O']
    assert default_run.called('virt-customize') == []
    commands = [c[2:] for c in default_run.openstack()]
    assert ['network', 'create', '--project', 'nova-shadow',
            'nova-shadow-net'] in commands
    assert ['subnet', 'create', '--project', 'nova-shadow', '--network',
            'nova-shadow-net', '--subnet-range', '10.254.42.0/24',
            'nova-shadow-net-subnet'] in commands
    assert ['router', 'set', '--external-gateway', 'public',
            'nova-shadow-net-router'] in commands
    assert ['router', 'add', 'subnet', 'nova-shadow-net-router',
            'nova-shadow-net-subnet'] in commands


def test_starts_both_daemons_from_devstacks_python(default_run):
    processes = default_run.processes()
    assert set(processes) == {'shadow-service', 'shadow-watcher'}
    service_args = ['--config-file', str(default_run.service_conf)]
    assert shlex.split(processes['shadow-service'])[1:] == service_args
    assert shlex.split(processes['shadow-watcher'])[1:] == service_args + [
        '--config-file', str(default_run.watcher_conf)]
    for name, command in processes.items():
        argv = shlex.split(command)
        # The console script setup_develop installs, in devstack's venv.
        assert argv[0] == str(pathlib.Path(sys.executable).parent / name)
        assert os.access(argv[0], os.X_OK)


def test_restack_adds_the_weigher_once(tmp_path, default_run):
    # Run the post-config phase again over the same nova.conf.
    script = (
        'set -o errexit -o nounset\nsource %s\nsource %s\n'
        'source %s stack post-config\n'
        % (HARNESS / 'fake_devstack.sh', DEVSTACK / 'settings',
           DEVSTACK / 'plugin.sh'))
    root = default_run.root
    env = {'PATH': os.environ['PATH'], 'HARNESS_ROOT': str(root),
           'HARNESS_RECORD': str(tmp_path / 'record'),
           'HARNESS_PYTHON': sys.executable, 'HARNESS_DIR': str(HARNESS),
           'HARNESS_VENV': str(pathlib.Path(sys.executable).parent.parent)}
    subprocess.run(['bash', '-c', script], env=env, check=True,
                   capture_output=True, timeout=120)
    values = _load(default_run.nova_conf, _nova_groups())
    assert values[('filter_scheduler', 'weight_classes')] == [
        'nova.scheduler.weights.all_weighers', WEIGHER]


def test_unstack_stops_and_clean_removes(tmp_path):
    run = _devstack(tmp_path)
    assert run.called('stop_process') == [
        ['shadow-watcher'], ['shadow-service']]
    assert not run.conf_dir.exists()
    assert not run.data_dir.exists()


def test_keeps_an_operators_versioned_notifications(tmp_path):
    run = _devstack(tmp_path, {'NOVA_NOTIFICATION_FORMAT': 'versioned'},
                    stop=False)
    values = _load(run.nova_conf, _nova_groups())
    assert values[('notifications', 'notification_format')] == 'versioned'


def test_twin_driver_needs_no_cloud_resources(tmp_path):
    run = _devstack(tmp_path, {'NOVA_SHADOW_CLOUD_DRIVER': 'sim'},
                    stop=False)
    values = _load(run.service_conf, _service_groups())
    assert values[('shadow', 'cloud_driver')] == 'sim'
    # The daemons run the twin in real time.
    assert values[('sim', 'speedup')] == 1.0
    assert not _ini(run.service_conf).has_section('openstack')
    assert run.openstack() == []
    assert run.called('upload_image') == []
    assert set(run.processes()) == {'shadow-service', 'shadow-watcher'}


def test_disabled_watcher_is_not_started(tmp_path):
    run = _devstack(tmp_path, {'DISABLED_SERVICES': 'shadow-watcher'},
                    stop=False)
    assert set(run.processes()) == {'shadow-service'}


def test_loadgen_written_into_the_image(tmp_path):
    run = _devstack(tmp_path, {'NOVA_SHADOW_IMAGE_LOADGEN': 'True'},
                    stop=False)
    assert run.called('install_package') == [['libguestfs-tools']]
    image = run.files / 'nova-shadow-ubuntu-24.04.qcow2'
    pyz = run.files / 'loadgen.pyz'
    assert run.called('virt-customize') == [[
        '-a', str(image), '--mkdir', '/opt/shadow-loadgen',
        '--upload', '%s:/opt/shadow-loadgen/loadgen.pyz' % pyz,
        '--chmod', '0755:/opt/shadow-loadgen/loadgen.pyz']]
    # The guest zipapp really was built, and runs.
    done = subprocess.run([sys.executable, str(pyz), '--help'],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert _ini(run.service_conf).get(
        'openstack', 'loadgen_preinstalled') == 'True'


def test_no_network_and_an_existing_image(tmp_path):
    run = _devstack(tmp_path, {'NOVA_SHADOW_NETWORK': 'none',
                               'NOVA_SHADOW_IMAGE_URL': '',
                               'NOVA_SHADOW_IMAGE_NAME': 'my-image'},
                    stop=False)
    parser = _ini(run.service_conf)
    assert parser.get('openstack', 'image') == 'my-image'
    assert not parser.has_option('openstack', 'network')
    assert not parser.has_section('collector')
    assert run.called('upload_image') == []
    assert not [c for c in run.openstack() if 'network' in c]


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_influxdb_store_installs_and_runs_a_real_influxdb(tmp_path):
    influxd = influxdb_fixture.influxd_binary()
    if not influxd:
        if os.environ.get('NOVA_SHADOW_REQUIRE_SERVICES'):
            pytest.fail('influxd is required but not installed')
        pytest.skip('influxd not installed (apt-get install influxdb)')
    port, rpc_port = _free_port(), _free_port()
    run = _devstack(tmp_path, {'NOVA_SHADOW_HISTORY_STORE': 'influxdb',
                               'NOVA_SHADOW_INFLUXD': influxd,
                               'NOVA_SHADOW_INFLUXDB_PORT': str(port),
                               'NOVA_SHADOW_INFLUXDB_RPC_PORT':
                                   str(rpc_port)},
                    stop=False)
    assert run.called('install_package') == [['influxdb']]
    assert run.called('stop_service') == [['influxdb']]
    processes = run.processes()
    assert set(processes) == {'shadow-influxdb', 'shadow-service',
                              'shadow-watcher'}
    # InfluxDB answers before the daemons start.
    names = [c[1] for c in run.calls if c[0] == 'run_process']
    assert names[0] == 'shadow-influxdb'
    assert run.called('wait_for_service') == [
        ['60', 'http://127.0.0.1:%d/ping' % port]]
    values = _load(run.service_conf, _service_groups())
    assert values[('history', 'store')] == 'influxdb'
    assert values[('history', 'influx_url')] == 'http://127.0.0.1:%d' % port
    assert values[('history', 'influx_database')] == 'nova_shadow'
    # Start the recorded command: the influxdb.conf the plugin wrote runs a
    # real InfluxDB on loopback with its data under the plugin's data dir.
    argv = shlex.split(processes['shadow-influxdb'])
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        status = _wait_for_ping('http://127.0.0.1:%d/ping' % port, proc)
        assert status == 204
        assert (run.data_dir / 'influxdb/meta').is_dir()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def _wait_for_ping(url, proc, timeout=60.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail('influxd exited with %s' % proc.returncode)
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status
        except OSError:
            time.sleep(0.2)
    pytest.fail('influxd did not answer %s within %.0f s' % (url, timeout))


SCRIPTS = ['devstack/plugin.sh', 'devstack/settings',
           'devstack/override-defaults', 'devstack/lib/nova-shadow',
           'tests/unit/devstack/fake_devstack.sh']


def test_shellcheck():
    shellcheck = shutil.which('shellcheck')
    if not shellcheck:
        if os.environ.get('NOVA_SHADOW_REQUIRE_SERVICES'):
            pytest.fail('shellcheck is required but not installed')
        pytest.skip('shellcheck not installed (apt-get install shellcheck)')
    done = subprocess.run([shellcheck, '--external-sources'] + SCRIPTS,
                          cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_local_conf_sample_names_real_variables_and_options():
    text = (DEVSTACK / 'local.conf.sample').read_text()
    lib = (DEVSTACK / 'lib/nova-shadow').read_text()
    variables = set(re.findall(r'^#?(NOVA_SHADOW_\w+)=', text, re.M))
    variables.discard('NOVA_SHADOW_REPO')
    assert variables
    for name in variables:
        assert '\n%s=${%s' % (name, name) in lib, name
    blocks = re.split(r'^\[\[(.+?)\]\]\n', text, flags=re.M)[1:]
    files = dict(zip(blocks[::2], blocks[1::2]))
    nova = files['post-config|$NOVA_CONF']
    service = files['post-config|$NOVA_SHADOW_CONF']
    for body, groups in ((nova, _nova_groups()),
                         (service, _service_groups())):
        parser = configparser.RawConfigParser(interpolation=None)
        parser.read_string(body)
        conf = cfg.ConfigOpts()
        for group, opts in groups:
            conf.register_opts(
                opts, group=None if group == 'DEFAULT' else group)
        conf([], project='harness', default_config_files=[])
        for section in parser.sections():
            for option in parser.options(section):
                assert option in conf[section], (section, option)


def test_no_glance_no_image(tmp_path):
    run = _devstack(tmp_path, enabled='key,n-api,n-sch,n-cond,n-cpu,q-svc,'
                    'placement-api,rabbit,mysql', stop=False)
    assert run.called('upload_image') == []
    assert run.called('wget') == []
