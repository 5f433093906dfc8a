"""The influxdb metrics source against a real InfluxDB holding points in
Telegraf's schema (``influxdb_server``)."""

import http.server
import itertools
import json
import threading
import time

import pytest
import requests

from shadow_service.metrics import base
from shadow_service.metrics import influxdb
from tests.fixtures import influxdb as influxdb_fixture
from tests.unit.shadow_service.metrics import conftest
from tests.unit.shadow_service.metrics.conftest import make_conf

_databases = itertools.count()

#: Start of the query grid; deliberately not a multiple of the step, so
#: InfluxDB's buckets must be shifted onto it.
START = 1700000007.0
STEP = 60.0
STEPS = 5
END = START + STEP * STEPS
#: Telegraf's interval in these points.
EVERY = 10


def _counter_lines(host, measurement, device_tag, device, rates, t,
                   offset=0.0):
    """One counter point at ``t``: each field is rate * elapsed seconds."""
    fields = ','.join('%s=%di' % (name, round(rate * (t - START + 600)
                                              + offset))
                      for name, rate in rates.items())
    return '%s,host=%s,%s=%s %s %d' % (measurement, host, device_tag,
                                       device, fields, t)


def _telegraf_points(host, reset_disk_in_bucket=None, mem_gap_bucket=None):
    """Telegraf-schema lines for ``host`` from one bucket before START to
    END, every EVERY seconds."""
    lines = []
    for t in range(int(START - STEP), int(END), EVERY):
        bucket = int((t - START) // STEP)
        idle = 80.0 - 10 * max(bucket, 0)
        lines.append('cpu,host=%s,cpu=cpu-total usage_idle=%s,'
                     'usage_steal=%s %d' % (host, idle, max(bucket, 0), t))
        lines.append('cpu,host=%s,cpu=cpu0 usage_idle=0,usage_steal=99 %d'
                     % (host, t))
        if bucket != mem_gap_bucket:
            # Telegraf's used_percent leaves out shared memory and
            # unreclaimable slab: 3 points less than 100 - available.
            lines.append('mem,host=%s used_percent=%s,available_percent=%s '
                         '%d' % (host, 50.0 + bucket, 47.0 - bucket, t))
        reset = (reset_disk_in_bucket is not None
                 and bucket >= reset_disk_in_bucket)
        offset = -1e6 if reset else 0.0
        disk = {'reads': 10, 'writes': 5, 'read_time': 20, 'write_time': 10}
        for device in ('vda', 'vda1', 'loop0'):
            lines.append(_counter_lines(host, 'diskio', 'name', device, disk,
                                        t, offset=offset + 1e6))
        lines.append(_counter_lines(
            host, 'diskio', 'name', 'sdb',
            {'reads': 1, 'writes': 0, 'read_time': 8, 'write_time': 0}, t))
        lines.append(_counter_lines(
            host, 'net', 'interface', 'eth0',
            {'bytes_recv': 1e6, 'bytes_sent': 0.5e6}, t))
        lines.append(_counter_lines(
            host, 'net', 'interface', 'lo',
            {'bytes_recv': 1e9, 'bytes_sent': 1e9}, t))
        lines.append('net,host=%s,interface=all tcp_activeopens=%di %d'
                     % (host, t - START + 600, t))
    return lines


@pytest.fixture
def telegraf_db(influxdb_server):
    """A fresh database with Telegraf points of ``cmp1.lab`` and
    ``cmp2.lab`` (whose disk counters reset in bucket 3 and whose memory
    has no points in bucket 2)."""
    database = 'telegraf_%d' % next(_databases)
    influxdb_server.create_database(database)
    lines = (_telegraf_points('cmp1.lab')
             + _telegraf_points('cmp2.lab', reset_disk_in_bucket=3,
                                mem_gap_bucket=2))
    reply = requests.post(influxdb_server.url + '/write',
                          params={'db': database, 'precision': 's'},
                          data='\n'.join(lines).encode(), timeout=30)
    assert reply.status_code == 204, reply.text
    return database


def _source(server, database, **options):
    settings = {'url': server.url, 'database': database,
                'host_format': '{host}.lab'}
    settings.update(options)
    return influxdb.InfluxDBSource(make_conf(metrics_influxdb=settings))


def _approx(values):
    return [None if v is None else pytest.approx(v) for v in values]


@pytest.mark.parametrize('retention_policy', [None, 'autogen'])
def test_gauges_are_bucket_means_aligned_on_the_query_grid(
        influxdb_server, telegraf_db, retention_policy):
    source = _source(influxdb_server, telegraf_db,
                     retention_policy=retention_policy)

    found = {m: source.host_series_many(['cmp1', 'cmp2'], m, START, END,
                                        STEP)
             for m in ('cpu_util_pct', 'cpu_steal_pct', 'mem_used_pct')}

    # cpu-total only: cpu0 (idle 0, steal 99) never counts.
    assert found['cpu_util_pct']['cmp1'].values == _approx(
        [20.0, 30.0, 40.0, 50.0, 60.0])
    assert found['cpu_steal_pct']['cmp1'].values == _approx(
        [0.0, 1.0, 2.0, 3.0, 4.0])
    # 100 * (1 - available / total), as node_exporter's is read.
    assert found['mem_used_pct']['cmp1'].values == _approx(
        [53.0, 54.0, 55.0, 56.0, 57.0])
    assert found['mem_used_pct']['cmp2'].values == _approx(
        [53.0, 54.0, None, 56.0, 57.0])
    assert found['cpu_util_pct']['cmp1'].times == [
        START + i * STEP for i in range(STEPS)]


def test_counters_become_rates_summed_over_the_counted_devices(
        influxdb_server, telegraf_db):
    source = _source(influxdb_server, telegraf_db)

    iops = source.host_series('cmp1', 'disk_iops', START, END, STEP)
    latency = source.host_series('cmp1', 'disk_mean_latency_ms', START, END,
                                 STEP)
    net = source.host_series('cmp1', 'net_mbps', START, END, STEP)

    # vda (10 + 5 /s) and sdb (1 + 0 /s); the partition vda1 and loop0 do
    # not count. Time: vda 20 + 10 ms/s, sdb 8 ms/s.
    assert iops.values == _approx([16.0] * STEPS)
    assert latency.values == _approx([38.0 / 16.0] * STEPS)
    # eth0 1.0 + 0.5 MB/s; lo does not count.
    assert net.values == _approx([1.5] * STEPS)


def test_a_counter_reset_leaves_its_bucket_empty(influxdb_server,
                                                 telegraf_db):
    source = _source(influxdb_server, telegraf_db)

    iops = source.host_series('cmp2', 'disk_iops', START, END, STEP)

    # vda reset in bucket 3: only sdb's rate is left there.
    assert iops.values == _approx([16.0, 16.0, 16.0, 1.0, 16.0])


def test_an_unknown_host_is_all_none(influxdb_server, telegraf_db):
    source = _source(influxdb_server, telegraf_db)

    found = source.host_series_many(['cmp1', 'cmp9'], 'disk_iops', START,
                                    END, STEP)

    assert found['cmp9'].values == [None] * STEPS
    assert found['cmp9'].times == found['cmp1'].times


def test_host_map_names_the_telegraf_host(influxdb_server, telegraf_db):
    source = _source(influxdb_server, telegraf_db,
                     host_map={'compute-a': 'cmp2.lab'})

    series = source.host_series('compute-a', 'cpu_util_pct', START, END,
                                STEP)

    assert series.values == _approx([20.0, 30.0, 40.0, 50.0, 60.0])


def test_the_metrics_telegraf_cannot_give_are_refused(influxdb_server,
                                                      telegraf_db):
    source = _source(influxdb_server, telegraf_db)

    assert set(source.metrics()) == {
        'cpu_util_pct', 'cpu_steal_pct', 'mem_used_pct', 'disk_iops',
        'disk_mean_latency_ms', 'net_mbps'}
    with pytest.raises(base.UnsupportedMetric, match='disk_p95_latency_ms'):
        source.host_series('cmp1', 'disk_p95_latency_ms', START, END, STEP)
    with pytest.raises(base.UnsupportedMetric,
                       match='cannot read instance metric'):
        source.instance_series('8a3f5f0e-51a5-4bb1-9d2b-3a1d2c5a0f11',
                               'cpu_util_pct', START, END, STEP)


def test_a_missing_database_is_a_clear_error(influxdb_server):
    source = _source(influxdb_server, 'no_such_db_%d' % next(_databases))

    with pytest.raises(base.MetricsError, match=r'no database .*'
                       r'\[metrics_influxdb\] database'):
        source.host_series('cmp1', 'cpu_util_pct', START, END, STEP)


def test_unreachable_server_fails_within_the_timeout_and_hides_secrets():
    port = influxdb_fixture.free_port()
    source = influxdb.InfluxDBSource(make_conf(
        metrics={'query_timeout_s': 0.5, 'query_retries': 1,
                 'query_retry_backoff_s': 0.05},
        metrics_influxdb={
            'url': 'http://reader:url-secret-3@127.0.0.1:%d' % port,
            'token': 'token-secret-4'}))
    started = time.monotonic()

    with pytest.raises(base.MetricsUnavailable,
                       match='cannot reach InfluxDB.*gave up after 2'
                       ) as caught:
        source.host_series('cmp1', 'cpu_util_pct', START, END, STEP)

    assert time.monotonic() - started < 3
    assert 'url-secret-3' not in str(caught.value)
    assert 'token-secret-4' not in str(caught.value)


class _NotInflux(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        payload = b'<html>not here</html>'
        self.send_response(404)
        self.send_header('Content-Length', str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_a_server_that_is_not_influxdb_is_a_clear_error():
    server = http.server.HTTPServer(('127.0.0.1', 0), _NotInflux)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        source = influxdb.InfluxDBSource(make_conf(metrics_influxdb={
            'url': 'http://127.0.0.1:%d' % server.server_port}))

        with pytest.raises(base.MetricsError,
                           match='without an InfluxDB reply'):
            source.host_series('cmp1', 'cpu_util_pct', START, END, STEP)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize('option, value, message', [
    ('host_format', '{hostname}', 'host_format'),
    ('host_format', 'fixed', 'host_format'),
    ('disk_devices', '(sd', 'disk_devices'),
    ('database', '', 'database'),
    # No InfluxQL identifier can hold a carriage return or NUL.
    ('host_tag', 'ho\rst', r'\[metrics_influxdb\] host_tag'),
    ('retention_policy', 'auto\x00gen',
     r'\[metrics_influxdb\] retention_policy'),
])
def test_bad_options_are_refused_at_start(option, value, message):
    with pytest.raises(base.MetricsError, match=message):
        influxdb.InfluxDBSource(make_conf(metrics_influxdb={option: value}))


# -- a server that answers something else than the InfluxDB API -----------

def _bad_source(server, **limits):
    """A source reading ``server`` (a BadServer), with the URL's user info
    holding a secret that must never show."""
    url = server.url.replace('http://', 'http://reader:url-secret-7@')
    return influxdb.InfluxDBSource(make_conf(
        metrics_influxdb={'url': url, 'token': 'token-secret-8'},
        metrics=limits))


START_US = int(START * 1e6)


def _series(values, columns=('time', 'mean'), tags=None):
    return {'results': [{'statement_id': 0, 'series': [
        {'name': 'cpu', 'tags': {'host': 'cmp1'} if tags is None else tags,
         'columns': list(columns), 'values': values}]}]}


@pytest.mark.parametrize('metric, reply, message', [
    ('cpu_util_pct', {'results': 'x'}, "results is 'x', not a list"),
    ('cpu_util_pct', {'results': [5]},
     r'results\[0\] is 5 \(int\), not an object'),
    ('cpu_util_pct', {'results': [{'series': {'a': 1}}]},
     r'results\[0\].series is an object, not a list'),
    ('cpu_util_pct', {'results': [{'series': ['x']}]},
     r"results\[0\].series\[0\] is 'x', not an object"),
    ('cpu_util_pct', _series([[START_US, 1.0]], tags={'host': ['cmp1']}),
     r'series\[0\].tags is an object, not an object of strings'),
    ('cpu_util_pct', _series([[START_US]], columns=['time']),
     r"series\[0\].columns is \['time'\], not the time and the selected"),
    ('cpu_util_pct', _series([[START_US, 1.0, 2.0]]),
     r'series\[0\].values\[0\] is a list, not a row of 2 cells'),
    ('cpu_util_pct', _series(7), r'series\[0\].values is 7 \(int\)'),
    ('cpu_util_pct', _series([['2023-11-14T22:13:27Z', 1.0]]),
     r"values\[0\] has the time '2023-11-14T22:13:27Z', not a whole number "
     r'of microseconds'),
    ('disk_iops', _series([[None, 1.0, 2.0]],
                          columns=['time', 'reads', 'writes'],
                          tags={'host': 'cmp1', 'name': 'sda'}),
     r'values\[0\] has the time missing'),
    ('cpu_util_pct', _series([[float(START_US) + 0.5, 1.0]]),
     r'has the time 1700000007000000.5 \(float\)'),
])
def test_a_reply_of_the_wrong_shape_is_a_metrics_error_naming_the_url(
        metric, reply, message):
    with conftest.BadServer(conftest.json_reply(reply)) as server:
        source = _bad_source(server)

        with pytest.raises(base.MetricsError, match=message) as caught:
            source.host_series('cmp1', metric, START, END, STEP)

        assert not isinstance(caught.value, base.MetricsUnavailable)
        assert server.requests == 1
    text = str(caught.value)
    assert ('InfluxDB at %s/query sent a reply that is not an InfluxDB '
            'query result' % server.url) in text
    assert 'url-secret-7' not in text
    assert 'token-secret-8' not in text


def test_values_that_are_not_numbers_read_as_missing():
    step_us = int(STEP * 1e6)
    reply = _series([[START_US, 90.0], [START_US + step_us, 'abc'],
                     [START_US + 2 * step_us, None],
                     [START_US + 3 * step_us, True],
                     [START_US + 4 * step_us, 75.0]])
    with conftest.BadServer(conftest.json_reply(reply)) as server:
        series = _bad_source(server).host_series('cmp1', 'cpu_util_pct',
                                                 START, END, STEP)

    assert _approx(series.values) == [10.0, None, None, None, 25.0]


def _one_query(source):
    return source.host_series('cmp1', 'cpu_util_pct', START, END, STEP)


def test_a_reply_trickled_slower_than_the_timeout_gives_up_in_time():
    conftest.gives_up_on_a_trickled_reply(
        _bad_source, json.dumps(_series([[START_US, 90.0]])),
        _one_query)


@pytest.mark.parametrize('declare_length', [True, False])
def test_a_reply_larger_than_the_cap_is_refused_without_reading_it(
        monkeypatch, declare_length):
    conftest.refuses_a_reply_past_the_cap(
        monkeypatch, _bad_source,
        b'{"results": [{"statement_id": 0, "messages": [{"text": "',
        b'"}]}]}', declare_length,
        _one_query)


#: Nova host names holding what InfluxQL or line protocol treat specially;
#: ``"carriage\rreturn"`` and ``"nul\x00byte"`` cannot be written in an
#: InfluxQL string literal at all, ``"new\nline"`` only escaped.
ODD_HOSTS = ("quo'te", 'double"quote', 'back\\slash', 'sp ace,comma=eq',
             'tab\there', 'slash/bar|dot.*', 'carriage\rreturn',
             'nul\x00byte', 'new\nline')
#: The odd names Telegraf can have written (line protocol ends a line at
#: a newline, so no tag value holds one).
WRITTEN_ODD_HOSTS = ODD_HOSTS[:-1]


def _line_protocol_tag(value):
    return value.replace(',', '\\,').replace(' ', '\\ ').replace('=', '\\=')


@pytest.mark.parametrize('metric, expected', [
    ('cpu_util_pct', [20.0, 30.0, 40.0, 50.0, 60.0]),
    ('disk_iops', [16.0] * STEPS),
])
def test_odd_host_names_are_read_exactly_and_break_no_batch(
        influxdb_server, telegraf_db, metric, expected):
    lines = []
    for host in WRITTEN_ODD_HOSTS:
        lines += _telegraf_points(_line_protocol_tag(host + '.lab'))
    reply = requests.post(influxdb_server.url + '/write',
                          params={'db': telegraf_db, 'precision': 's'},
                          data='\n'.join(lines).encode(), timeout=30)
    assert reply.status_code == 204, reply.text
    source = _source(influxdb_server, telegraf_db)
    hosts = ['cmp1', *ODD_HOSTS, 'cmp2']

    found = source.host_series_many(hosts, metric, START, END, STEP)

    assert list(found) == hosts
    assert found['cmp1'].values == _approx(expected)
    for host in WRITTEN_ODD_HOSTS:
        assert found[host].values == _approx(expected), repr(host)
    assert found['new\nline'].values == [None] * STEPS


def test_a_host_name_no_query_can_carry_is_skipped_by_name(
        influxdb_server, telegraf_db, caplog):
    source = _source(influxdb_server, telegraf_db)
    unencodable = 'lone\ud800surrogate'

    with caplog.at_level('WARNING', logger=base.__name__):
        found = source.host_series_many(['cmp1', unencodable],
                                         'cpu_util_pct', START, END, STEP)

    assert found['cmp1'].values == _approx([20.0, 30.0, 40.0, 50.0, 60.0])
    assert found[unencodable].values == [None] * STEPS
    (record,) = [r for r in caplog.records
                 if "'lone\\ud800surrogate'" in r.getMessage()]
    assert 'not valid UTF-8' in record.getMessage()


def test_a_host_tag_with_a_newline_is_queried_not_a_parse_error(
        influxdb_server, telegraf_db):
    # The newline went into the query raw and ended the quoted
    # identifier: InfluxDB refused the query ("error parsing query").
    source = _source(influxdb_server, telegraf_db, host_tag='ho\nst')

    found = source.host_series('cmp1', 'cpu_util_pct', START, END, STEP)

    assert found.values == [None] * STEPS


def test_the_query_debug_line_shows_host_names_escaped(
        influxdb_server, telegraf_db, caplog):
    # The query went to the debug log as sent, a tenant's host name with
    # its terminal escape and all.
    source = _source(influxdb_server, telegraf_db)
    host = 'evil\x1b]0;owned\x07\u202ecmp'

    with caplog.at_level('DEBUG', logger=influxdb.__name__):
        found = source.host_series_many(['cmp1', host], 'cpu_util_pct',
                                         START, END, STEP)

    assert found[host].values == [None] * STEPS
    (record,) = [r for r in caplog.records if 'SELECT' in r.getMessage()]
    message = record.getMessage()
    assert 'evil\\x1b]0;owned\\x07\\u202ecmp' in message, message
    assert not set(message) & {'\x1b', '\x07', '\u202e', '\n'}


_HOSTILE = conftest.HOSTILE


@pytest.mark.parametrize('reply, status, kind', [
    ('<html>%s</html>' % _HOSTILE, 502, base.MetricsUnavailable),
    ({'results': [{'statement_id': 0, 'error': _HOSTILE}]}, 400,
     base.MetricsError),
    ({'error': 'database not found: ' + _HOSTILE}, 404, base.MetricsError),
], ids=['502-page', 'query-error', 'no-database'])
def test_a_servers_error_text_is_quoted_escaped_and_bounded(reply, status,
                                                            kind):
    # The server's text went into the error (and the retry's warning)
    # as it came: terminal escapes, a newline that forges a log line.
    text = conftest.error_text_of(_bad_source, reply, status, kind)
    assert len(text) < 2000, len(text)
