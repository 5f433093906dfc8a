"""The daemons the devstack plugin starts, started the way it starts them.

The plugin runs through stack.sh's phases against the recording devstack
of ``tests/unit/devstack`` (the twin as cloud driver, SQLite history); a
``[[post-config|$NOVA_SHADOW_CONF]]`` block as an operator's local.conf
would hold points the service at this machine's RabbitMQ on a topic of its
own (and keeps it off the shared broker's notification pool).  Then the
exact commands the plugin gave ``run_process`` are started: shadow-service
must rank two of the twin's hosts over RPC with shadows measured there,
shadow-watcher (with its overlay) must run its first pass, and both must
stop cleanly on SIGTERM.
"""

import os
import shlex
import signal
import subprocess
import sys
import time
import uuid

import pytest

from shadow_service import rpcapi
from tests import service_support
from tests.unit.devstack.test_plugin import HARNESS
from tests.unit.devstack.test_plugin import _devstack

pytestmark = pytest.mark.rabbit


def _post_config(path, section, option, value):
    subprocess.run([sys.executable, str(HARNESS / 'ini.py'), 'set',
                    str(path), section, option, value], check=True)


def _start(command, log_path):
    log = open(log_path, 'wb')
    proc = subprocess.Popen(shlex.split(command), stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=True)
    log.close()
    return proc


def _stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        return None


def test_devstack_started_daemons_serve_and_stop(tmp_path, rabbit_url):
    run = _devstack(tmp_path, {'NOVA_SHADOW_CLOUD_DRIVER': 'sim'},
                    stop=False)
    topic = service_support.unique_topic()
    conf = run.service_conf
    _post_config(conf, 'DEFAULT', 'transport_url', rabbit_url)
    _post_config(conf, 'shadow', 'topic', topic)
    _post_config(conf, 'shadow', 'min_run_time', '1')
    _post_config(conf, 'nova_notifications', 'listen', 'False')
    processes = run.processes()

    service_log = tmp_path / 'shadow-service.log'
    watcher_log = tmp_path / 'shadow-watcher.log'
    # Both at once, as run_process starts them (their imports take a while
    # on a loaded machine).
    service = _start(processes['shadow-service'], service_log)
    watcher = _start(processes['shadow-watcher'], watcher_log)
    try:
        api = rpcapi.ShadowAPI(service_support.make_conf(), topic=topic,
                               transport_url=rabbit_url)
        deadline = time.monotonic() + 180
        while True:
            try:
                api.get_evaluation({}, str(uuid.uuid4()), timeout=2)
            except Exception as e:
                if service_support.typed_error(e, 'EvaluationNotFound'):
                    break
                assert service.poll() is None, service_log.read_text()
                assert time.monotonic() < deadline, (
                    'shadow-service never answered (%s); its log:\n%s'
                    % (e, service_log.read_text()[-5000:]))
        # Two hosts of the twin: shadows boot and are measured there.
        hosts = [{'host': 'node-01'}, {'host': 'node-02'}]
        ranking = api.rank_hosts(
            {}, {'flavor': {'vcpus': 2, 'ram_mb': 2048}, 'profile': 'web'},
            hosts, 5.0, timeout=120)
        assert {h['host'] for h in ranking['hosts']} == {'node-01',
                                                        'node-02'}
        assert max(h['confidence'] for h in ranking['hosts']) > 0
        assert (run.data_dir / 'history.sqlite').exists()

        while 'Run 1:' not in watcher_log.read_text():
            assert watcher.poll() is None, watcher_log.read_text()[-5000:]
            assert time.monotonic() < deadline, (
                watcher_log.read_text()[-5000:])
            time.sleep(0.5)
        assert 'dry-run' in watcher_log.read_text()
    finally:
        for proc in (watcher, service):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        watcher_rc = _stop(watcher)
        service_rc = _stop(service)
    assert watcher_rc == 0, watcher_log.read_text()[-5000:]
    assert service_rc == 0, service_log.read_text()[-5000:]
