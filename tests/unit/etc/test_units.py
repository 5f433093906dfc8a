"""The systemd units, sysusers.d and logrotate files under etc/.

Every test parses them and checks that they agree with each other and with
the package (console scripts, the config file, the log files the rotation
covers, the user).  Where the tools are installed, the real ones check them
too: ``systemd-analyze verify`` (any message fails: it reports unknown keys
and returns 0), ``systemd-sysusers --root`` creates the user in a scratch
root, and ``logrotate --force`` rotates a log a process keeps open.
"""

import configparser
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
ETC = REPO / 'etc'
UNITS = {'shadow-service': ETC / 'systemd/shadow-service.service',
         'shadow-watcher': ETC / 'systemd/shadow-watcher.service'}
LOGROTATE = ETC / 'logrotate.d/nova-shadow'
SYSUSERS = ETC / 'sysusers.d/nova-shadow.conf'
INSTALLED_BIN = '/usr/local/bin'
LOG_DIR = '/var/log/nova-shadow'


def _unit(path):
    parser = configparser.RawConfigParser(strict=True, interpolation=None)
    parser.optionxform = str
    parser.read(path)
    return parser


def _console_scripts():
    setup = configparser.RawConfigParser()
    setup.read(REPO / 'setup.cfg')
    scripts = {}
    for line in setup.get('entry_points', 'console_scripts').splitlines():
        if '=' in line:
            name, target = (part.strip() for part in line.split('=', 1))
            scripts[name] = target
    return scripts


@pytest.mark.parametrize('name', sorted(UNITS))
def test_unit_runs_the_daemon_with_its_config_and_log_file(name):
    unit = _unit(UNITS[name])
    argv = unit.get('Service', 'ExecStart').split()
    assert argv[0] == '%s/%s' % (INSTALLED_BIN, name)
    assert name in _console_scripts()
    overlay = (['--config-file', '/etc/nova-shadow/shadow-watcher.conf']
               if name == 'shadow-watcher' else [])
    assert argv[1:] == (['--config-file',
                         '/etc/nova-shadow/shadow-service.conf'] + overlay
                        + ['--log-file', '%s/%s.log' % (LOG_DIR, name)])
    assert unit.get('Service', 'User') == 'nova-shadow'
    assert unit.get('Service', 'LogsDirectory') == 'nova-shadow'
    # The SQLite history's default path is in the state directory.
    assert unit.get('Service', 'StateDirectory') == 'nova-shadow'
    assert unit.get('Service', 'ProtectSystem') == 'strict'
    assert unit.get('Service', 'Restart') == 'on-failure'
    assert unit.get('Install', 'WantedBy') == 'multi-user.target'


def test_watcher_overlay_sets_real_options():
    """etc/nova-shadow/shadow-watcher.conf parses with the service's
    options: the watcher ranks through the service, serves no collector and
    has an identity of its own."""
    from oslo_config import cfg

    from shadow_service.conf import opts

    conf = cfg.ConfigOpts()
    for group, group_opts in opts.list_opts():
        conf.register_opts([o for o in group_opts if not o.required],
                           group=group)
    overlay = ETC / 'nova-shadow/shadow-watcher.conf'
    conf([], project='harness', default_config_files=[str(overlay)])
    assert conf.watcher.ranker == 'rpc'
    assert conf.collector.enabled is False
    assert conf.openstack.service_id == 'shadow-watcher'
    parser = _unit(overlay)
    assert {(s, o) for s in parser.sections() for o in parser.options(s)} \
        == {('watcher', 'ranker'), ('collector', 'enabled'),
            ('openstack', 'service_id')}


def test_sqlite_default_is_in_the_state_directory():
    from shadow_service.conf import history

    (path,) = [o.default for o in history.sqlite_opts
               if o.name == 'sqlite_path']
    assert path.startswith('/var/lib/nova-shadow/')


def test_logrotate_covers_both_logs_as_the_daemons_user():
    text = LOGROTATE.read_text()
    assert '%s/*.log {' % LOG_DIR in text
    directives = {line.split()[0] for line in text.splitlines()
                  if line.startswith('    ')}
    # Renamed and created anew: the daemons' oslo.log reopens the file.
    assert 'copytruncate' not in directives
    assert '    create 0640 nova-shadow nova-shadow\n' in text
    assert '    su nova-shadow nova-shadow\n' in text


def test_sysusers_declares_the_units_user():
    fields = [line.split() for line in SYSUSERS.read_text().splitlines()
              if line and not line.startswith('#')]
    assert fields[0][:2] == ['u', 'nova-shadow']


def _tool(name):
    path = shutil.which(name) or (
        '/usr/sbin/%s' % name if os.path.exists('/usr/sbin/%s' % name)
        else None)
    if not path:
        pytest.skip('%s is not installed' % name)
    return path


@pytest.mark.parametrize('name', sorted(UNITS))
def test_systemd_analyze_verify(name, tmp_path):
    tool = _tool('systemd-analyze')
    # verify checks that ExecStart's binary exists: use this checkout's.
    bin_dir = str(pathlib.Path(sys.executable).parent)
    unit = tmp_path / UNITS[name].name
    unit.write_text(UNITS[name].read_text().replace(INSTALLED_BIN, bin_dir))
    assert os.access(os.path.join(bin_dir, name), os.X_OK)
    done = subprocess.run([tool, 'verify', '--man=no', str(unit)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    messages = [line for line in (done.stdout + done.stderr).splitlines()
                if unit.name in line or 'Unknown' in line]
    assert messages == []


def test_systemd_sysusers_creates_the_user(tmp_path):
    tool = _tool('systemd-sysusers')
    (tmp_path / 'etc').mkdir()
    done = subprocess.run([tool, '--root', str(tmp_path), str(SYSUSERS)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    passwd = (tmp_path / 'etc/passwd').read_text().splitlines()
    (entry,) = [line.split(':') for line in passwd
                if line.startswith('nova-shadow:')]
    assert entry[5] == '/var/lib/nova-shadow'
    assert entry[6].endswith('nologin')


#: A daemon's logging: oslo.log set up from ``--log-file`` as the
#: daemons set it up, logging numbered lines until stdin closes.
LOGGING_DAEMON = """
import sys
from oslo_config import cfg
from oslo_log import log
conf = cfg.ConfigOpts()
log.register_options(conf)
conf(sys.argv[1:], project='nova-shadow')
log.setup(conf, 'nova-shadow')
logger = log.getLogger('daemon')
print('ready', flush=True)
sent = 0
import select
while not select.select([sys.stdin], [], [], 0)[0]:
    logger.info('line %d', sent)
    sent += 1
print(sent, flush=True)
"""


def test_logrotate_loses_no_line_of_a_daemon_writing(tmp_path):
    """Rotation while a daemon logs as fast as it can: every line is in
    the rotated file or the new one.  oslo.log reopens a log file that
    was moved (its WatchedFileHandler), so the file is renamed and a new
    one created; copying then truncating lost 200-750 of 50,000 lines."""
    tool = _tool('logrotate')
    logs = tmp_path / 'logs'
    logs.mkdir()
    user = subprocess.run(['id', '-un'], capture_output=True, text=True,
                          check=True).stdout.strip()
    group = subprocess.run(['id', '-gn'], capture_output=True, text=True,
                           check=True).stdout.strip()
    conf = tmp_path / 'nova-shadow'
    conf.write_text(LOGROTATE.read_text()
                    .replace(LOG_DIR, str(logs))
                    .replace('nova-shadow nova-shadow',
                             '%s %s' % (user, group)))
    log_file = logs / 'shadow-service.log'
    daemon = subprocess.Popen(
        [sys.executable, '-c', LOGGING_DAEMON, '--log-file', str(log_file)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert daemon.stdout.readline() == 'ready\n'
        written_to = log_file.stat().st_ino
        done = subprocess.run(
            [tool, '--force', '--verbose', '--state',
             str(tmp_path / 'state'), str(conf)],
            capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert 'error' not in done.stderr.lower(), done.stderr
        # Lines after the rotation.
        time.sleep(0.2)
        daemon.stdin.close()
        sent = int(daemon.stdout.readline())
    finally:
        daemon.kill()
        daemon.wait(10)
    rotated = logs / 'shadow-service.log.1'
    # The daemon's own file, renamed: nothing was copied.
    assert rotated.stat().st_ino == written_to
    lines = [rotated.read_bytes(), log_file.read_bytes()]
    assert all(lines), 'a file is empty'
    numbers = [int(line.rsplit(None, 1)[-1])
               for text in lines for line in text.splitlines()]
    assert numbers == list(range(sent))
    assert oct(log_file.stat().st_mode & 0o777) == '0o640'
