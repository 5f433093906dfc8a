"""The daemons' ``/metrics``, scraped over HTTP from real processes (and
by a real Prometheus), before and after they did something."""

import os
import signal
import subprocess
import time
import urllib.request

import pytest
from prometheus_client import parser

from shadow_service import exception
from shadow_service import exporter
from shadow_service.watcher import records
from tests import service_support
from tests import watcher_support
from tests.fixtures import influxdb as influxdb_fixture
from tests.fixtures import prometheus as prometheus_fixture
from tests.functional.shadow_service.cmd import test_service_daemon
from tests.functional.shadow_service.cmd import test_watcher_daemon

REQUEST = {'flavor': {'vcpus': 2, 'ram_mb': 2048}, 'profile': 'web'}
HOSTS = [{'host': 'node-01'}, {'host': 'node-02'}]


def scrape(port, timeout=60.0):
    """``{(name, frozenset(labels)): value}`` of ``/metrics`` (polling
    until it answers)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(
                    'http://127.0.0.1:%d/metrics' % port,
                    timeout=10) as reply:
                assert reply.headers['Content-Type'].startswith(
                    'text/plain')
                text = reply.read().decode()
                break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    values = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, frozenset(sample.labels.items()))] = \
                sample.value
    return values


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def _prometheus_section(port):
    return ('[prometheus]\nenabled = true\nhost = 127.0.0.1\n'
            'port = %d\n' % port)


@pytest.mark.rabbit
def test_the_service_exports_what_evaluations_and_calls_moved(tmp_path,
                                                              rabbit_url):
    port = influxdb_fixture.free_port()
    daemon = test_service_daemon.Daemon(tmp_path, rabbit_url,
                                        service_support.unique_topic())
    with open(daemon.conf_path, 'a') as f:
        f.write(_prometheus_section(port))
    daemon.start()
    try:
        before = scrape(port)
        ranking = daemon.api.rank_hosts({}, REQUEST, HOSTS, 5.0,
                                        timeout=120)
        with pytest.raises(exception.InvalidRequest):
            daemon.api.rank_hosts({}, dict(REQUEST, profile='no-such'),
                                  HOSTS, 5.0, timeout=60)
        after = scrape(port)
    finally:
        assert daemon.stop() == 0, daemon.read_log()

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    source = ranking['source']
    assert moved('nova_shadow_evaluations_total', outcome='finished',
                 source=source) == 1
    assert moved('nova_shadow_evaluations_total', outcome='rejected',
                 source='none') == 1
    assert moved('nova_shadow_shadow_host_seconds_total') == pytest.approx(
        ranking['shadow_host_seconds'], abs=0.01)
    assert moved('nova_shadow_evaluation_duration_seconds_count',
                 source=source) == 1
    assert moved('nova_shadow_rpc_duration_seconds_count',
                 method='rank_hosts', result='ok') == 1
    assert moved('nova_shadow_rpc_duration_seconds_count',
                 method='rank_hosts', result='ProfileNotFound') == 1
    assert value(after, 'nova_shadow_rpc_last_call_timestamp_seconds',
                 method='rank_hosts') > time.time() - 600
    # The evaluation's record and its samples reached the SQLite store.
    assert moved('nova_shadow_history_points_total', store='sqlite',
                 state='written') >= 1
    assert value(after, 'nova_shadow_history_points_total', store='sqlite',
                 state='dropped') == 0
    assert value(after, 'nova_shadow_evaluations_running') == 0


@pytest.mark.rabbit
def test_a_real_prometheus_scrapes_the_service(tmp_path, rabbit_url):
    if not (prometheus_fixture.prometheus_binary()
            and prometheus_fixture.node_exporter_binary()):
        pytest.fail('prometheus and prometheus-node-exporter are required')
    port = influxdb_fixture.free_port()
    daemon = test_service_daemon.Daemon(tmp_path, rabbit_url,
                                        service_support.unique_topic())
    with open(daemon.conf_path, 'a') as f:
        f.write(_prometheus_section(port))
    daemon.start()
    server = prometheus_fixture.PrometheusServer(
        extra_targets=['127.0.0.1:%d' % port]).start()
    try:
        daemon.api.rank_hosts({}, REQUEST, HOSTS, 5.0, timeout=120)
        deadline = time.monotonic() + 60
        while True:
            found = server.query(
                'sum(nova_shadow_evaluations_total{job="nova_shadow",'
                'outcome="finished"})')['result']
            if found and float(found[0]['value'][1]) >= 1:
                break
            assert time.monotonic() < deadline, found
            time.sleep(0.5)
        up = server.query('up{job="nova_shadow"}')['result']
        assert [float(r['value'][1]) for r in up] == [1.0]
    finally:
        server.cleanup()
        assert daemon.stop() == 0, daemon.read_log()


def test_the_watcher_exports_its_runs_leadership_and_history(tmp_path):
    port = influxdb_fixture.free_port()
    conf = test_watcher_daemon._conf(tmp_path)
    with open(conf, 'a') as f:
        f.write('[prometheus]\nenabled = true\nhost = 127.0.0.1\n'
                'watcher_port = %d\n' % port)
    proc = subprocess.Popen(
        test_watcher_daemon.DAEMON + ['--config-file', conf],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=test_watcher_daemon._env(), start_new_session=True)
    log = tmp_path / 'watcher.log'
    try:
        deadline = time.monotonic() + 120
        while 'Run 2:' not in (log.read_text() if log.exists() else ''):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        samples = scrape(port)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        rc = proc.wait(30)
    assert rc == 0
    assert value(samples, 'nova_shadow_watcher_runs_total') >= 2
    assert value(samples, 'nova_shadow_watcher_leader') == 1
    assert ('nova_shadow_history_points_total', frozenset(
        {'store': 'sqlite', 'state': 'written'}.items())) in samples
    assert 'Serving Prometheus metrics on http://127.0.0.1:%d/metrics' \
        % port in log.read_text()


def test_decisions_are_counted_by_action_policy_and_outcome(tmp_path):
    conf = watcher_support.make_conf(
        tmp_path, watcher={'policy': 'reactive', 'dry_run': True})
    driver, history = watcher_support.twin(conf)
    day = int(86400 / watcher_support.STEP_S)
    watcher_support.place(driver, 'vm-1', [1.0] * day + [6.0] * 200)
    assembled = watcher_support.build(conf, driver, history)
    driver.fast_forward(day * watcher_support.STEP_S)

    def counted():
        return {(s.labels['action'], s.labels['policy'],
                 s.labels['outcome']): s.value
                for family in exporter.REGISTRY.collect()
                if family.name == 'nova_shadow_watcher_decisions'
                for s in family.samples if s.name.endswith('_total')}

    before = counted()
    watcher_support.run(assembled, driver, 12)
    after = counted()
    written = records.read(history, 0, driver.now() + 1)
    assembled.close()
    assert written
    expected = {}
    for record in written:
        key = (record['action'], 'ReactivePolicy', record['outcome'])
        expected[key] = expected.get(key, 0) + 1
    assert {k: after[k] - before.get(k, 0.0) for k in after
            if after[k] != before.get(k, 0.0)} == expected
