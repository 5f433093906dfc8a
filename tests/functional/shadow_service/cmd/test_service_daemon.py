"""The ``shadow-service`` daemon as operators run it: a real process with a
config file, serving the RPC API over the real RabbitMQ."""

import os
import signal
import subprocess
import sys
import textwrap
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
