"""The prometheus metrics source against a real Prometheus scraping a real
node_exporter on this machine (``prometheus_server``, one per session)."""

import http.server
import json
import logging
import os
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
import yaml

from shadow_service import metrics
from shadow_service.metrics import base
from shadow_service.metrics import prometheus
from tests.fixtures import influxdb as influxdb_fixture
from tests.fixtures.prometheus import PrometheusServer
from tests.unit.shadow_service.metrics import conftest
from tests.unit.shadow_service.metrics.conftest import make_conf

#: The Nova host name this machine's node_exporter stands for in the tests;
#: the dot and dash make the multi-host selector escape a regex.
HOST = 'cmp-1.example'

#: What a plausible value of each metric is on any machine.
PLAUSIBLE = {
    'cpu_util_pct': (-1.0, 101.0),
    'cpu_steal_pct': (-1.0, 101.0),
    'mem_used_pct': (0.01, 100.0),
    'disk_iops': (0.0, 1e7),
    'disk_mean_latency_ms': (0.0, 1e4),
    'net_mbps': (0.0, 1e5),
}


def _source(server, auth=True, **options):
    settings = {'url': server.url, 'node_map': {HOST: server.node_instance},
                'rate_window_min_s': 3}
    if auth:
        settings.update(username=server.username, password=server.password)
    settings.update(options.pop('prometheus', {}))
    conf = make_conf(metrics_prometheus=settings, metrics=options)
    return prometheus.PrometheusSource(conf)


def _write_and_sync(directory, megabytes=4):
    """Make the disk counters of this machine move."""
    path = os.path.join(directory, 'io.bin')
    with open(path, 'wb') as f:
        for _ in range(megabytes):
            f.write(os.urandom(1 << 20))
            f.flush()
            os.fsync(f.fileno())
    os.unlink(path)


def _proc_stat_busy():
    """(busy, total) jiffies of all CPUs from /proc/stat, busy = total -
    idle, as node_exporter's idle mode counts it."""
    with open('/proc/stat') as f:
        fields = [float(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest is in user)
    total = sum(fields[:8])
    return total - fields[3], total


def _mem_used_pct():
    values = {}
    with open('/proc/meminfo') as f:
        for line in f:
            name, _, rest = line.partition(':')
            values[name] = float(rest.split()[0])
    return 100.0 * (1 - values['MemAvailable'] / values['MemTotal'])


def _present(series):
    return [v for v in series.values if v is not None]


def test_every_metric_of_this_node_is_a_plausible_non_empty_series(
        prometheus_server, tmp_path):
    source = _source(prometheus_server)
    _write_and_sync(str(tmp_path))
    end = prometheus_server.wait_for_new_scrapes(2)

    assert set(source.metrics()) == set(PLAUSIBLE)
    for metric in source.metrics():
        series = source.host_series(HOST, metric, end - 8, end, 1.0)
        values = _present(series)
        low, high = PLAUSIBLE[metric]
        assert values, '%s has no value: %s' % (metric, series)
        assert all(low <= v <= high for v in values), (metric, values)
        assert len(series.values) == 8
        assert series.times[0] == end - 8

    memory = _present(source.host_series(HOST, 'mem_used_pct', end - 4,
                                         end, 1.0))
    assert abs(memory[-1] - _mem_used_pct()) < 10


def test_a_busy_loop_raises_cpu_util_pct_as_proc_stat_sees_it(
        prometheus_server):
    source = _source(prometheus_server)
    cpus = os.cpu_count()
    started = time.time()
    busy_from = started + 1.0
    stop = started + 4.0
    cpu_before = time.process_time()
    proc_before = None
    while time.time() < stop:
        if proc_before is None and time.time() >= busy_from:
            proc_before = _proc_stat_busy()
    proc_after = _proc_stat_busy()
    own_share = 100.0 * (time.process_time() - cpu_before) / (
        cpus * (stop - started))
    prometheus_server.wait_for_new_scrapes(2)

    # One bucket over the busy seconds [busy_from, stop).
    series = source.host_series(HOST, 'cpu_util_pct', busy_from, stop,
                                stop - busy_from)
    (measured,) = series.values
    busy = proc_after[0] - proc_before[0]
    total = proc_after[1] - proc_before[1]
    seen_by_proc_stat = 100.0 * busy / total

    # Other work on the machine may slow the loop (then the machine is
    # busy anyway); Prometheus must see at least what the loop used.
    assert own_share > 0
    assert measured >= own_share - 10, (measured, own_share)
    assert abs(measured - seen_by_proc_stat) < 15, (
        measured, seen_by_proc_stat)


def test_many_hosts_are_one_query_and_an_unknown_host_is_all_none(
        prometheus_server):
    source = _source(prometheus_server,
                     prometheus={'node_map': {
                         HOST: prometheus_server.node_instance,
                         'cmp-2': 'cmp-2.example:9100'}})
    end = time.time()

    found = source.host_series_many([HOST, 'cmp-2', 'cmp-3'],
                                    'cpu_util_pct', end - 6, end, 1.0)

    assert list(found) == [HOST, 'cmp-2', 'cmp-3']
    assert _present(found[HOST])
    for unknown in ('cmp-2', 'cmp-3'):
        assert found[unknown].values == [None] * 6
        assert found[unknown].times == found[HOST].times


def test_default_instance_queries_run_and_an_unknown_instance_is_all_none(
        prometheus_server):
    source = _source(prometheus_server)
    end = time.time()

    assert set(source.instance_metrics()) == {'cpu_util_pct', 'disk_iops',
                                              'net_mbps'}
    for metric in source.instance_metrics():
        series = source.instance_series(
            '8a3f5f0e-51a5-4bb1-9d2b-3a1d2c5a0f11', metric, end - 5, end,
            1.0)
        assert series.values == [None] * 5


def test_instance_queries_read_the_instance_label(prometheus_server,
                                                  tmp_path):
    # No libvirt exporter here: a metric map that reads node_exporter per
    # job shows the instance path end to end on a real server.
    map_file = tmp_path / 'map.yaml'
    map_file.write_text(
        'instance:\n'
        '  cpu_util_pct: >-\n'
        '    100 * (1 - avg by ($label) (rate(node_cpu_seconds_total'
        '{mode="idle", $selector}[$window])))\n'
        '  disk_iops: null\n')
    source = _source(prometheus_server, prometheus={
        'metric_map_file': str(map_file), 'instance_label': 'job'})
    end = time.time()

    series = source.instance_series('node', 'cpu_util_pct', end - 5, end,
                                    1.0)

    assert source.instance_metrics() == ('cpu_util_pct', 'net_mbps')
    assert _present(series)
    assert all(-1 <= v <= 101 for v in _present(series))


class _MemoryExporter(http.server.ThreadingHTTPServer):
    """A real HTTP exporter of node_exporter's two memory gauges whose
    ``available`` bytes the test sets (out of 1000 bytes)."""

    def __init__(self):
        super().__init__(('127.0.0.1', 0), _MemoryHandler)
        self.available = 800
        self.target = '127.0.0.1:%d' % self.server_port
        self._thread = threading.Thread(target=self.serve_forever,
                                        args=(0.05,), daemon=True)
        self._thread.start()

    def close(self):
        self.shutdown()
        self.server_close()


class _MemoryHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ('node_memory_MemTotal_bytes 1000\n'
                'node_memory_MemAvailable_bytes %d\n'
                % self.server.available).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain; version=0.0.4')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_gauge_is_the_mean_of_its_bucket_not_its_last_value():
    exporter = _MemoryExporter()
    server = None
    try:
        server = PrometheusServer(extra_targets=[exporter.target]).start()
        server.wait_for_samples(3)
        source = _source(server, prometheus={
            'node_map': {HOST: exporter.target}})
        # 20 % used for the first half of a 6 s bucket, 80 % for the
        # second half.
        switched = time.time()
        exporter.available = 200
        while time.time() < switched + 3.5:
            time.sleep(0.1)
        server.wait_for_new_scrapes(2)

        (mean,) = source.host_series(HOST, 'mem_used_pct', switched - 3,
                                     switched + 3, 6.0).values
    finally:
        if server is not None:
            server.cleanup()
        exporter.close()

    assert 35.0 <= mean <= 65.0, mean


def test_a_long_series_is_read_in_several_requests(prometheus_server):
    source = _source(prometheus_server)
    end = time.time()
    steps = prometheus.MAX_POINTS_PER_REQUEST + 500
    step = 0.001  # Prometheus's resolution: 11.5 s in 11,500 steps

    series = source.host_series(HOST, 'mem_used_pct', end - steps * step,
                                end, step)

    assert len(series.values) == steps
    first = next(i for i, v in enumerate(series.values) if v is not None)
    # A gauge has a value at every step after the first scrape: both
    # requests answered, and the second continues where the first ended.
    assert first < prometheus.MAX_POINTS_PER_REQUEST
    assert all(v is not None for v in series.values[first:])


@pytest.mark.parametrize('timeout_s', [2.5, 0.75])
def test_a_timeout_of_a_fraction_of_a_second_is_one_prometheus_accepts(
        prometheus_server, timeout_s):
    # The query's own timeout parameter is sent to Prometheus too, which
    # reads "2.5s" as no duration at all and rejects the query.
    source = _source(prometheus_server, query_timeout_s=timeout_s)
    end = time.time()

    series = source.host_series(HOST, 'mem_used_pct', end - 5, end, 1.0)

    assert _present(series)


def test_a_step_finer_than_a_millisecond_is_refused(prometheus_server):
    source = _source(prometheus_server)

    with pytest.raises(ValueError, match='step_s .* milliseconds'):
        source.host_series(HOST, 'mem_used_pct', 0, 1, 0.0005)


def test_wrong_password_is_a_clear_error_without_the_password(
        prometheus_server):
    source = _source(prometheus_server, prometheus={
        'password': 'not-the-password-4711'})
    end = time.time()
    started = time.monotonic()

    with pytest.raises(base.MetricsError, match='refused the credentials'
                       ) as caught:
        source.host_series(HOST, 'cpu_util_pct', end - 5, end, 1.0)

    assert not isinstance(caught.value, base.MetricsUnavailable)
    assert 'not-the-password-4711' not in str(caught.value)
    assert time.monotonic() - started < 2


def test_credentials_in_the_url_are_used_and_never_logged(
        prometheus_server, caplog):
    server = prometheus_server
    url = server.url.replace(
        'http://', 'http://%s:%s@' % (server.username, server.password))
    caplog.set_level(logging.DEBUG)
    source = _source(server, auth=False, prometheus={'url': url})
    end = time.time()

    series = source.host_series(HOST, 'cpu_util_pct', end - 5, end, 1.0)

    assert _present(series)
    assert server.password not in caplog.text
    assert '127.0.0.1:%d' % server.port in caplog.text


def test_unreachable_server_fails_within_the_timeout_and_hides_secrets():
    port = influxdb_fixture.free_port()
    conf = make_conf(
        metrics={'query_timeout_s': 0.5, 'query_retries': 1,
                 'query_retry_backoff_s': 0.05},
        metrics_prometheus={
            'url': 'http://user:url-secret-1@127.0.0.1:%d' % port,
            'bearer_token': 'token-secret-2'})
    source = prometheus.PrometheusSource(conf)
    started = time.monotonic()

    with pytest.raises(base.MetricsUnavailable,
                       match='cannot reach Prometheus.*gave up after 2 '
                             'attempts') as caught:
        source.host_series('cmp1', 'cpu_util_pct', 0, 60, 10)

    assert time.monotonic() - started < 3
    message = str(caught.value)
    assert 'url-secret-1' not in message
    assert 'token-secret-2' not in message


def test_a_server_that_never_answers_times_out():
    silent = socket.socket()
    silent.bind(('127.0.0.1', 0))
    silent.listen(8)
    try:
        conf = make_conf(
            metrics={'query_timeout_s': 0.3, 'query_retries': 1,
                     'query_retry_backoff_s': 0.05},
            metrics_prometheus={
                'url': 'http://127.0.0.1:%d' % silent.getsockname()[1]})
        source = prometheus.PrometheusSource(conf)
        started = time.monotonic()

        with pytest.raises(base.MetricsUnavailable,
                           match='did not answer within 0.3s'):
            source.host_series('cmp1', 'cpu_util_pct', 0, 60, 10)

        assert time.monotonic() - started < 2
    finally:
        silent.close()


def test_a_url_that_is_not_prometheus_is_a_clear_error(prometheus_server):
    source = _source(prometheus_server, prometheus={
        'url': 'http://%s' % prometheus_server.node_instance})

    with pytest.raises(base.MetricsError,
                       match='without a Prometheus API reply'):
        source.host_series(HOST, 'cpu_util_pct', 0, 60, 10)


@pytest.mark.parametrize('url', ['127.0.0.1:9090', 'ftp://host/',
                                 'http://', 'http://host:notaport'])
def test_a_malformed_url_is_refused_at_start(tmp_path, url):
    config = tmp_path / 'shadow.conf'
    config.write_text('[metrics_prometheus]\nurl = %s\n' % url)

    with pytest.raises(base.MetricsError,
                       match=r'\[metrics_prometheus\] url'):
        prometheus.PrometheusSource(make_conf(config))


def test_a_query_prometheus_rejects_names_the_metric_and_the_error(
        prometheus_server, tmp_path):
    map_file = tmp_path / 'map.yaml'
    map_file.write_text('host:\n  cpu_util_pct: "rate(node_cpu_seconds_total'
                        '{$selector}[$window]"\n')
    source = _source(prometheus_server, prometheus={
        'metric_map_file': str(map_file)})

    with pytest.raises(base.MetricsError,
                       match='rejected the host query of cpu_util_pct'
                             '.*bad_data'):
        source.host_series(HOST, 'cpu_util_pct', time.time() - 5,
                           time.time(), 1.0)


def test_a_template_without_the_label_is_a_clear_error(prometheus_server,
                                                       tmp_path):
    map_file = tmp_path / 'map.yaml'
    map_file.write_text('host:\n  cpu_util_pct: "sum(rate('
                        'node_cpu_seconds_total{$selector}[$window]))"\n')
    source = _source(prometheus_server, prometheus={
        'metric_map_file': str(map_file)})

    with pytest.raises(base.MetricsError, match='without the label '
                                                "'instance'"):
        source.host_series(HOST, 'cpu_util_pct', time.time() - 5,
                           time.time(), 1.0)


@pytest.mark.parametrize('content, message', [
    ('host:\n  gpu_pct: "x{$selector}"\n', 'not a canonical metric'),
    ('host:\n  cpu_util_pct: "up"\n', r'does not use \$selector'),
    ('host:\n  cpu_util_pct: "up{$selector, $job}"\n',
     r'unknown placeholder\(s\) \$job'),
    ('hosts: {}\n', 'unknown key'),
    ('host: [1, 2]\n', 'must map metric names'),
    ('host: {cpu_util_pct: "x{\n', 'not valid YAML'),
])
def test_a_bad_metric_map_is_refused_at_start(tmp_path, content, message):
    map_file = tmp_path / 'map.yaml'
    map_file.write_text(content)

    with pytest.raises(base.MetricsError, match=message) as caught:
        prometheus.PrometheusSource(make_conf(
            metrics_prometheus={'metric_map_file': str(map_file)}))
    assert 'metric_map_file' in str(caught.value)


def test_load_source_builds_the_configured_prometheus(prometheus_server):
    conf = make_conf(metrics={'source': 'prometheus'},
                     metrics_prometheus={'url': prometheus_server.url})

    source = metrics.load_source(conf)

    assert isinstance(source, prometheus.PrometheusSource)
    assert source.url == prometheus_server.url


class _Proxy(http.server.ThreadingHTTPServer):
    """A real reverse proxy in front of Prometheus that answers 503 to the
    first ``fail_first`` requests and, if ``bearer_token`` is set, only
    forwards requests bearing it (adding Prometheus's basic auth)."""

    def __init__(self, upstream, fail_first=0, bearer_token=None):
        super().__init__(('127.0.0.1', 0), _ProxyHandler)
        self.upstream = upstream
        self.fail_first = fail_first
        self.bearer_token = bearer_token
        self.requests = 0
        self.url = 'http://127.0.0.1:%d' % self.server_port
        self._thread = threading.Thread(target=self.serve_forever,
                                        daemon=True)
        self._thread.start()

    def close(self):
        self.shutdown()
        self.server_close()


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        proxy = self.server
        proxy.requests += 1
        body = self.rfile.read(int(self.headers['Content-Length'] or 0))
        if proxy.requests <= proxy.fail_first:
            return self._answer(503, b'upstream busy')
        if proxy.bearer_token is not None:
            if (self.headers.get('Authorization')
                    != 'Bearer %s' % proxy.bearer_token):
                return self._answer(401, b'bad token')
        upstream = proxy.upstream
        request = urllib.request.Request(
            upstream.url + self.path, data=body,
            headers={'Content-Type': self.headers['Content-Type'],
                     'Authorization': upstream.basic_auth_header()})
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return self._answer(reply.status, reply.read())
        except urllib.error.HTTPError as exc:
            return self._answer(exc.code, exc.read())

    def _answer(self, status, payload):
        self.send_response(status)
        self.send_header('Content-Length', str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_a_transient_failure_is_retried_until_it_passes(prometheus_server):
    proxy = _Proxy(prometheus_server, fail_first=2)
    try:
        source = _source(prometheus_server, auth=False,
                         prometheus={'url': proxy.url}, query_retries=2,
                         query_retry_backoff_s=0.01)
        end = time.time()

        series = source.host_series(HOST, 'cpu_util_pct', end - 5, end, 1.0)

        assert _present(series)
        assert proxy.requests == 3
    finally:
        proxy.close()


def test_retries_give_up_with_the_last_error(prometheus_server):
    proxy = _Proxy(prometheus_server, fail_first=5)
    try:
        source = _source(prometheus_server, auth=False,
                         prometheus={'url': proxy.url}, query_retries=1,
                         query_retry_backoff_s=0.01)

        with pytest.raises(base.MetricsUnavailable,
                           match='HTTP 503.*gave up after 2 attempts'):
            source.host_series(HOST, 'cpu_util_pct', 0, 60, 10)

        assert proxy.requests == 2
    finally:
        proxy.close()


def test_a_bearer_token_is_sent_and_never_shown(prometheus_server):
    proxy = _Proxy(prometheus_server, bearer_token='tok-7c1e')  # noqa: S106
    try:
        good = _source(prometheus_server, auth=False, prometheus={
            'url': proxy.url, 'bearer_token': 'tok-7c1e'})
        bad = _source(prometheus_server, auth=False, prometheus={
            'url': proxy.url, 'bearer_token': 'tok-wrong-99'})
        end = time.time()

        assert _present(good.host_series(HOST, 'cpu_util_pct', end - 5,
                                         end, 1.0))
        with pytest.raises(base.MetricsError,
                           match='refused the credentials') as caught:
            bad.host_series(HOST, 'cpu_util_pct', end - 5, end, 1.0)
        assert 'tok-wrong-99' not in str(caught.value)
    finally:
        proxy.close()


def _documented_default_map():
    path = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..',
                        'doc', 'source', 'metrics.rst')
    with open(path, encoding='utf-8') as f:
        text = f.read()
    block = text.split('Default metric map\n', 1)[1].split(
        '.. code-block:: yaml\n', 1)[1]
    lines = []
    for line in block.split('\n')[1:]:
        if line and not line.startswith('    '):
            break
        lines.append(line[4:])
    return yaml.safe_load('\n'.join(lines))


def test_the_documented_default_map_is_the_built_in_one(tmp_path):
    documented = _documented_default_map()

    assert documented == {'host': prometheus.HOST_QUERIES,
                          'instance': prometheus.INSTANCE_QUERIES}
    # And as a metric map file it changes nothing.
    map_file = tmp_path / 'map.yaml'
    map_file.write_text(yaml.safe_dump(documented))
    source = prometheus.PrometheusSource(make_conf(
        metrics_prometheus={'metric_map_file': str(map_file)}))
    for metric, template in prometheus.HOST_QUERIES.items():
        assert source.template('host', metric) == template


# -- a server that answers something else than the Prometheus API ---------

def _bad_source(server, **limits):
    """A source reading ``server`` (a BadServer), with the URL's user info
    holding a secret that must never show."""
    url = server.url.replace('http://', 'http://reader:url-secret-5@')
    return prometheus.PrometheusSource(make_conf(
        metrics_prometheus={'url': url, 'bearer_token': 'token-secret-6'},
        metrics=limits))


def _matrix(values, metric=None):
    return {'status': 'success', 'data': {'resultType': 'matrix', 'result': [
        {'metric': {'instance': 'cmp1:9100'} if metric is None else metric,
         'values': values}]}}


@pytest.mark.parametrize('reply, message', [
    ({'status': 'success', 'data': [1, 2]}, 'data is a list'),
    ({'status': 'success'}, 'data is missing'),
    ({'status': 'success', 'data': {'resultType': 'matrix', 'result': 'x'}},
     "data.result is 'x', not a list"),
    ({'status': 'success', 'data': {'resultType': 'matrix', 'result': [5]}},
     r'result\[0\] is 5 \(int\), not an object'),
    (_matrix([[10, '1']], metric=['instance']),
     r'result\[0\].metric is a list'),
    (_matrix([[10, '1']], metric={'instance': 7}),
     r'result\[0\].metric.instance is 7 \(int\), not a string'),
    (_matrix([[10, '1', 'extra']]),
     r'result\[0\].values\[0\] is a list, not a \[time, value\] pair'),
    (_matrix(['10']), r"values\[0\] is '10', not a \[time, value\] pair"),
    (_matrix(5), r'result\[0\].values is 5 \(int\), not a list'),
    (_matrix([[10, '1'], ['abc', '2']]),
     r"values\[1\] has the time 'abc', not a finite number"),
    (_matrix([['NaN', '1']]), "has the time 'NaN'"),
    (_matrix([['Infinity', '1']]), "has the time 'Infinity'"),
    ('{"status": "success", "data": {"resultType": "matrix", "result": '
     '[{"metric": {"instance": "cmp1:9100"}, "values": [[1e309, "1"]]}]}}',
     r'has the time inf \(float\)'),
    (_matrix([[None, '1']]), 'has the time missing'),
    (_matrix([[True, '1']]), r'has the time True \(bool\)'),
])
def test_a_reply_of_the_wrong_shape_is_a_metrics_error_naming_the_url(
        reply, message):
    with conftest.BadServer(conftest.json_reply(reply)) as server:
        source = _bad_source(server)

        with pytest.raises(base.MetricsError, match=message) as caught:
            source.host_series('cmp1', 'cpu_util_pct', 0, 60, 10)

        assert not isinstance(caught.value, base.MetricsUnavailable)
        assert server.requests == 1
    text = str(caught.value)
    assert ('Prometheus at %s/api/v1/query_range sent a reply that is not '
            'a Prometheus query_range result' % server.url) in text
    assert 'url-secret-5' not in text
    assert 'token-secret-6' not in text


def test_values_that_are_not_finite_numbers_still_read_as_missing():
    reply = _matrix([[10, '1.5'], [20, 'NaN'], [30, '+Inf'], [40, 'abc'],
                     [50, None], [60.0, '2.5']])
    with conftest.BadServer(conftest.json_reply(reply)) as server:
        series = _bad_source(server).host_series('cmp1', 'cpu_util_pct', 0,
                                                 60, 10)

    assert list(series.values) == [1.5, None, None, None, None, 2.5]


def test_a_reply_trickled_slower_than_the_timeout_gives_up_in_time():
    conftest.gives_up_on_a_trickled_reply(
        _bad_source, json.dumps(_matrix([[10, '1']])),
        lambda source: source.host_series('cmp1', 'cpu_util_pct', 0, 60, 10))


@pytest.mark.parametrize('declare_length', [True, False])
def test_a_reply_larger_than_the_cap_is_refused_without_reading_it(
        monkeypatch, declare_length):
    conftest.refuses_a_reply_past_the_cap(
        monkeypatch, _bad_source,
        b'{"status": "success", "warnings": ["',
        b'"], "data": {"resultType": "matrix", "result": []}}', declare_length,
        lambda source: source.host_series('cmp1', 'cpu_util_pct', 0, 60, 10))


class _LibvirtExporter(http.server.ThreadingHTTPServer):
    """A real HTTP exporter of a libvirt exporter's ``libvirt_domain_*``
    series for ``domains``: ``{uuid: (CPU seconds per second, I/O
    requests per second, network bytes per second)}``, the counters
    growing at those rates (one vCPU, one disk, one interface each)."""

    def __init__(self, domains):
        super().__init__(('127.0.0.1', 0), _LibvirtHandler)
        self.domains = domains
        self.started = time.time()
        self.target = '127.0.0.1:%d' % self.server_port
        self._thread = threading.Thread(target=self.serve_forever,
                                        args=(0.05,), daemon=True)
        self._thread.start()

    def body(self):
        elapsed = time.time() - self.started
        lines = []
        for number, (uuid, (cpu, iops, bytes_s)) in enumerate(
                sorted(self.domains.items())):
            domain = 'domain="instance-%08x",uuid="%s"' % (number, uuid)
            lines += [
                'libvirt_domain_info_virtual_cpus{%s} 1' % domain,
                'libvirt_domain_info_cpu_time_seconds_total{%s} %f'
                % (domain, cpu * elapsed),
                'libvirt_domain_block_stats_read_requests_total'
                '{%s,target_device="vda"} %f' % (domain, iops * elapsed),
                'libvirt_domain_block_stats_write_requests_total'
                '{%s,target_device="vda"} 0' % domain,
                'libvirt_domain_interface_stats_receive_bytes_total'
                '{%s,target_device="tap0"} %f' % (domain, bytes_s * elapsed),
                'libvirt_domain_interface_stats_transmit_bytes_total'
                '{%s,target_device="tap0"} 0' % domain]
        return ('\n'.join(lines) + '\n').encode()

    def close(self):
        self.shutdown()
        self.server_close()


class _LibvirtHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.server.body()
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain; version=0.0.4')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_an_instance_two_exporters_report_while_it_migrates_counts_once():
    # Live migrations under way: both the source's and the destination's
    # libvirt exporters report each VM.  One VM's destination already
    # counts what the source does (both running); the other's is paused,
    # receiving memory (no CPU time, one vCPU all the same).
    mirrored = '0f1e2d3c-4b5a-4697-8877-665544332211'
    paused = '11223344-5566-4788-99aa-bbccddeeff00'
    running = (0.5, 10.0, 1e6)     # 50 % of its vCPU, 10 IOPS, 1 MB/s
    source_exporter = _LibvirtExporter({mirrored: running,
                                        paused: running})
    destination = _LibvirtExporter({mirrored: running,
                                    paused: (0.0, 0.0, 0.0)})
    server = None
    try:
        server = PrometheusServer(extra_targets=[
            source_exporter.target, destination.target]).start()
        server.wait_for_samples(4)
        source = _source(server)
        end = time.time()
        figures = {(uuid, metric): _present(source.instance_series(
            uuid, metric, end - 2, end, 2.0))
            for uuid in (mirrored, paused)
            for metric in ('cpu_util_pct', 'disk_iops', 'net_mbps')}
    finally:
        if server is not None:
            server.cleanup()
        source_exporter.close()
        destination.close()

    expected = {'cpu_util_pct': 50.0, 'disk_iops': 10.0, 'net_mbps': 1.0}
    for (uuid, metric), values in figures.items():
        assert len(values) == 1, (uuid, metric, values)
        assert values[0] == pytest.approx(expected[metric], rel=0.05), (
            uuid, metric, values)


#: Nova host names holding what PromQL strings or RE2 treat specially.
ODD_HOSTS = ('new\nline', 'carriage\rreturn', 'nul\x00byte', 'tab\there',
             'quo"te', "single'quote", 'back\\slash', 'dot.*star|bar',
             'lone\ud800surrogate')


def test_odd_host_names_break_no_batch_and_match_nothing_else(
        prometheus_server, caplog):
    source = _source(prometheus_server)
    end = time.time()
    hosts = [HOST, *ODD_HOSTS]

    with caplog.at_level(logging.WARNING, logger=base.__name__):
        together = source.host_series_many(hosts, 'cpu_util_pct', end - 6,
                                           end, 1.0)
        alone = {host: source.host_series(host, 'cpu_util_pct', end - 6,
                                          end, 1.0)
                 for host in ODD_HOSTS}

    assert list(together) == hosts
    assert _present(together[HOST])
    for host in ODD_HOSTS:
        assert together[host].values == [None] * 6, repr(host)
        assert alone[host].values == [None] * 6, repr(host)
    # The one no query can carry is named in the log, once per query.
    skipped = [r.getMessage() for r in caplog.records
               if 'not valid UTF-8' in r.getMessage()]
    assert len(skipped) == 2
    assert all("'lone\\ud800surrogate'" in m for m in skipped)


def test_an_instance_uuid_no_query_can_carry_is_a_clear_value_error(
        prometheus_server):
    # It failed in requests, encoding the form, with a UnicodeEncodeError.
    source = _source(prometheus_server)
    end = time.time()

    with pytest.raises(ValueError, match=r"instance_uuid 'lone\\ud800x' "
                       r'is not valid UTF-8'):
        source.instance_series('lone\ud800x', 'cpu_util_pct', end - 5, end,
                               1.0)


_HOSTILE = conftest.HOSTILE


@pytest.mark.parametrize('reply, status, kind', [
    ({'status': 'error', 'errorType': 'unavailable', 'error': _HOSTILE},
     503, base.MetricsUnavailable),
    ('<html>%s</html>' % _HOSTILE, 502, base.MetricsUnavailable),
    ({'status': 'error', 'errorType': 'bad_data', 'error': _HOSTILE},
     400, base.MetricsError),
], ids=['503-error', '502-page', '400-error'])
def test_a_servers_error_text_is_quoted_escaped_and_bounded(reply, status,
                                                            kind):
    # The server's text went into the error (and the retry's warning)
    # as it came: terminal escapes, a newline that forges a log line.
    text = conftest.error_text_of(_bad_source, reply, status, kind)
    assert len(text) < 1200, len(text)


@pytest.mark.parametrize('token', ['abc\ndef', 'abc\r\n', 'ab\x00c',
                                   't\u00f6k\u20acn'])
def test_a_token_no_header_can_carry_is_named_at_construction(
        prometheus_server, token):
    with pytest.raises(base.MetricsError) as caught:
        _source(prometheus_server, auth=False,
                prometheus={'bearer_token': token})
    text = str(caught.value)
    assert '[metrics_prometheus] bearer_token' in text
    assert 'header' in text and 'reach' not in text
    assert 'abc' not in text and '\u20ac' not in text


def test_a_user_name_outside_latin1_is_sent_and_refused_by_the_server(
        prometheus_server):
    source = _source(prometheus_server, auth=False, prometheus={
        'username': 'b\u00f6\u20acb', 'password': 'p\u20ac'})
    end = time.time()
    with pytest.raises(base.MetricsError) as caught:
        source.host_series(HOST, 'cpu_util_pct', end - 60, end, 15.0)
    assert '401' in str(caught.value) or 'credential' in str(
        caught.value).lower(), caught.value
