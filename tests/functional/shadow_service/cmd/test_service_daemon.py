"""The ``shadow-service`` daemon as operators run it: a real process with a
config file, serving the RPC API over the real RabbitMQ."""

import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest

from shadow_service import rpcapi
from tests import service_support

pytestmark = pytest.mark.rabbit

DAEMON = [sys.executable, '-c',
          'import sys; from shadow_service.cmd import service; '
          'sys.exit(service.main())']


def _write_conf(path, rabbit_url, topic, history_dir):
    with open(path, 'w') as f:
        f.write(textwrap.dedent("""\
            [DEFAULT]
            transport_url = %s
            [shadow]
            topic = %s
            min_run_time = 1
            [history]
            store = sqlite
            sqlite_path = %s/history.sqlite
            """ % (rabbit_url, topic, history_dir)))


def _env():
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
    env['PYTHONPATH'] = root + os.pathsep + env.get('PYTHONPATH', '')
    return env


def test_daemon_serves_rankings_and_stops_on_sigterm(tmp_path, rabbit_url):
    topic = service_support.unique_topic()
    conf_path = tmp_path / 'shadow-service.conf'
    _write_conf(conf_path, rabbit_url, topic, tmp_path)
    log = open(tmp_path / 'daemon.log', 'wb')
    proc = subprocess.Popen(DAEMON + ['--config-file', str(conf_path)],
                            stdout=log, stderr=subprocess.STDOUT,
                            env=_env(), start_new_session=True)
    try:
        api = rpcapi.ShadowAPI(service_support.make_conf(), topic=topic,
                               transport_url=rabbit_url)
        deadline = time.monotonic() + 90
        while True:
            try:
                api.get_evaluation({}, str(uuid.uuid4()), timeout=2)
            except Exception as e:
                if service_support.typed_error(e, 'EvaluationNotFound'):
                    break
                assert proc.poll() is None, (
                    tmp_path / 'daemon.log').read_text()
                assert time.monotonic() < deadline, (
                    'daemon never answered (%s: %s); its log:\n%s' % (
                        type(e).__name__, e,
                        (tmp_path / 'daemon.log').read_text()[-5000:]))
        ranking = api.rank_hosts(
            {}, {'flavor': {'vcpus': 2, 'ram_mb': 2048}, 'profile': 'web'},
            [{'host': 'a'}, {'host': 'b'}], 5.0, timeout=120)
        assert {h['host'] for h in ranking['hosts']} == {'a', 'b'}
        assert (tmp_path / 'history.sqlite').exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        rc = proc.wait(30)
        log.close()
    assert rc == 0, (tmp_path / 'daemon.log').read_text()


def test_daemon_refuses_a_bad_config_with_a_clear_error(tmp_path,
                                                        rabbit_url):
    conf_path = tmp_path / 'shadow-service.conf'
    _write_conf(conf_path, rabbit_url, 'unused', tmp_path / 'missing')
    result = subprocess.run(DAEMON + ['--config-file', str(conf_path)],
                            capture_output=True, text=True, env=_env(),
                            timeout=60)
    assert result.returncode == 2
    assert 'sqlite_path' in result.stderr
    assert 'does not exist' in result.stderr


def test_daemon_refuses_the_openstack_driver_without_credentials(tmp_path,
                                                                 rabbit_url):
    conf_path = tmp_path / 'shadow-service.conf'
    _write_conf(conf_path, rabbit_url, 'unused', tmp_path)
    with open(conf_path, 'a') as f:
        f.write('[shadow]\ncloud_driver = openstack\n')
    result = subprocess.run(DAEMON + ['--config-file', str(conf_path)],
                            capture_output=True, text=True, env=_env(),
                            timeout=60)
    assert result.returncode == 2
    assert "[openstack] needs either cloud" in result.stderr


class _Keystone(http.server.BaseHTTPRequestHandler):
    """Keystone's version document, and 401 for every token request: a
    cloud that refuses the credentials."""

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send(200, {'version': {
            'id': 'v3.14', 'status': 'stable', 'media-types': [],
            'links': [{'rel': 'self', 'href': 'http://127.0.0.1:%d/v3/'
                       % self.server.server_address[1]}]}})

    def do_POST(self):
        self.rfile.read(int(self.headers.get('Content-Length') or 0))
        self._send(401, {'error': {
            'code': 401, 'title': 'Unauthorized',
            'message': 'The request you have made requires '
                       'authentication.'}})

    def log_message(self, format, *args):
        pass


def _openstack_conf(tmp_path, rabbit_url, auth_url):
    conf_path = tmp_path / 'shadow-service.conf'
    _write_conf(conf_path, rabbit_url, service_support.unique_topic(),
                tmp_path)
    clouds = tmp_path / 'clouds.yaml'
    clouds.write_text(textwrap.dedent("""\
        clouds:
          probe:
            auth:
              auth_url: %s
              username: shadow
              password: secret
              project_name: service
              user_domain_name: Default
              project_domain_name: Default
        """ % auth_url))
    with open(conf_path, 'a') as f:
        f.write('[shadow]\ncloud_driver = openstack\n'
                '[openstack]\ncloud = probe\ngc_interval = 0\n'
                'api_timeout = 2\n')
    return conf_path, dict(_env(), OS_CLIENT_CONFIG_FILE=str(clouds))


def test_daemon_refuses_credentials_the_cloud_refuses(tmp_path, rabbit_url):
    keystone = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Keystone)
    threading.Thread(target=keystone.serve_forever, daemon=True).start()
    try:
        conf_path, env = _openstack_conf(
            tmp_path, rabbit_url,
            'http://127.0.0.1:%d/v3' % keystone.server_address[1])
        result = subprocess.run(DAEMON + ['--config-file', str(conf_path)],
                                capture_output=True, text=True, env=env,
                                timeout=120)
    finally:
        keystone.shutdown()
        keystone.server_close()
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines()
             if 'cannot start' in line]
    assert lines == [
        'shadow-service: cannot start: the cloud refused the credentials '
        'of [openstack]: Authenticating to the cloud failed: '
        'Unauthorized: The request you have made requires authentication. '
        '(HTTP 401)'], result.stderr[-3000:]
    assert 'secret' not in result.stderr


def test_daemon_runs_on_when_the_cloud_does_not_answer(tmp_path, rabbit_url):
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        closed = probe.getsockname()[1]
    conf_path, env = _openstack_conf(tmp_path, rabbit_url,
                                     'http://127.0.0.1:%d/v3' % closed)
    log = open(tmp_path / 'daemon.log', 'wb')
    proc = subprocess.Popen(DAEMON + ['--config-file', str(conf_path)],
                            stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        text = ''
        while 'Could not reach the cloud at start' not in text:
            assert proc.poll() is None, text[-3000:]
            assert time.monotonic() < deadline, text[-3000:]
            time.sleep(0.5)
            text = (tmp_path / 'daemon.log').read_text()
        time.sleep(2.0)
        assert proc.poll() is None, (tmp_path / 'daemon.log').read_text()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()


CLI = [sys.executable, '-c',
       'import sys; from shadow_service.cmd import cli; sys.exit(cli.main())']


class Daemon:
    """A shadow-service process on a config file and a history directory
    of the test's own."""

    def __init__(self, tmp_path, rabbit_url, topic):
        self.tmp_path = tmp_path
        self.conf_path = tmp_path / 'shadow-service.conf'
        _write_conf(self.conf_path, rabbit_url, topic, tmp_path)
        self.api = rpcapi.ShadowAPI(service_support.make_conf(), topic=topic,
                                    transport_url=rabbit_url)
        self.proc = None

    def start(self):
        self.log = open(self.tmp_path / 'daemon.log', 'ab')
        self.proc = subprocess.Popen(
            DAEMON + ['--config-file', str(self.conf_path)],
            stdout=self.log, stderr=subprocess.STDOUT, env=_env(),
            start_new_session=True)
        deadline = time.monotonic() + 90
        while True:
            try:
                self.api.get_evaluation({}, str(uuid.uuid4()), timeout=2)
            except Exception as e:
                if service_support.typed_error(e, 'EvaluationNotFound'):
                    return self
                assert self.proc.poll() is None, self.read_log()
                assert time.monotonic() < deadline, self.read_log()

    def read_log(self):
        return (self.tmp_path / 'daemon.log').read_text()[-5000:]

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGTERM)
        rc = self.proc.wait(30)
        self.log.close()
        return rc

    def cli(self, *args):
        return subprocess.run(
            CLI + ['--config-file', str(self.conf_path)] + list(args),
            capture_output=True, text=True, env=_env(), timeout=120)


@pytest.fixture
def daemon(tmp_path, rabbit_url):
    running = Daemon(tmp_path, rabbit_url,
                     service_support.unique_topic()).start()
    yield running
    if running.proc.poll() is None:
        running.stop()


def test_preflight_evaluation_and_show_through_the_cli(daemon):
    started = daemon.cli('evaluate', '--remote', '--hosts',
                         'node-01,node-16', '--budget', '4', '--wait',
                         '--json')
    assert started.returncode == 0, started.stderr
    assert 'NoSuchOptError' not in started.stderr
    # Standard output is the ranking's JSON alone (before, the "started"
    # line came first and no JSON parser could read it); the line goes
    # to standard error.
    ranking = json.loads(started.stdout)
    evaluation_id = ranking['evaluation_id']
    assert ('evaluation %s started; boot with --hint shadow_evaluation=%s'
            % (evaluation_id, evaluation_id)) in started.stderr
    assert {h['host'] for h in ranking['hosts']} == {'node-01', 'node-16'}

    detached = daemon.cli('evaluate', '--remote', '--hosts', 'node-01',
                          '--budget', '2', '--format', 'json')
    assert detached.returncode == 0, detached.stderr
    started_id = json.loads(detached.stdout)['evaluation_id']
    assert json.loads(detached.stdout)['hint'] == (
        'shadow_evaluation=%s' % started_id)

    shown = daemon.cli('show', evaluation_id)
    assert shown.returncode == 0, shown.stderr
    state = json.loads(shown.stdout)
    assert state['status'] == 'finished'
    assert state['ranking']['evaluation_id'] == evaluation_id

    missing = daemon.cli('show', str(uuid.uuid4()))
    assert missing.returncode == 1
    assert 'not found' in missing.stderr


def test_a_restart_keeps_every_evaluation_record(daemon):
    ids = []
    for _ in range(3):
        ranking = daemon.api.rank_hosts(
            {}, {'flavor': {'vcpus': 2, 'ram_mb': 2048}, 'profile': 'web'},
            [{'host': 'node-01'}, {'host': 'node-02'}], 3.0, timeout=120)
        ids.append(ranking['evaluation_id'])
    assert daemon.stop() == 0
    daemon.start()
    for evaluation_id in ids:
        state = daemon.api.get_evaluation({}, evaluation_id, timeout=30)
        assert state['status'] == 'finished'
        assert state['ranking']['evaluation_id'] == evaluation_id
    # The retention pass at start-up ran and removed nothing.
    expired = re.findall(r'rolled up or expired (\d+) raw values',
                         daemon.read_log())
    assert expired and set(expired) == {'0'}
