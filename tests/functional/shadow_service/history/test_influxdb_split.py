"""A batch the server refuses as too large is split; when a half then
fails to send, the halves already written are neither sent nor counted
again.  A real influxd with a small ``max-body-size`` refuses the batch
(413) and keeps the points; a relay in front of it fails one ``/write``
the way a server going away does (503), between two halves."""

import http.server
import threading
import time

import pytest
import requests

from shadow_service.history import base
from shadow_service.history import influxdb
from tests.fixtures import influxdb as influxdb_fixture

T0 = float(int(time.time()) - 3600)
POINTS = 64


class _Relay(http.server.ThreadingHTTPServer):
    """Forwards every request to ``target``; answers 503 with
    ``fail_body`` to the first ``/write`` after the first one the server
    accepted."""

    daemon_threads = True

    def __init__(self, target):
        super().__init__(('127.0.0.1', 0), _RelayHandler)
        self.target = target
        self.writes = []        # (lines sent, status answered)
        self.fail_next = True
        self.fail_body = b'{"error":"unavailable"}'
        #: (status, body) answered to every /query instead of the
        #: server's, when set.
        self.query_answer = None
        self.lock = threading.Lock()

    @property
    def url(self):
        return 'http://127.0.0.1:%d' % self.server_port


class _RelayHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def _relay(self):
        body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
        relay = self.server
        status = None
        if self.path.startswith('/write'):
            with relay.lock:
                if relay.fail_next and any(s == 204 for _, s in relay.writes):
                    relay.fail_next = False
                    status = 503
        if self.path.startswith('/query') and relay.query_answer:
            status, relay.fail_body = relay.query_answer
        if status is None:
            reply = requests.request(
                self.command, relay.target + self.path, data=body,
                headers={k: v for k, v in self.headers.items()
                         if k.lower() not in ('host', 'content-length')},
                timeout=30)
            status, content, headers = (reply.status_code, reply.content,
                                        reply.headers)
        else:
            content, headers = relay.fail_body, {}
        if self.path.startswith('/write'):
            with relay.lock:
                relay.writes.append((body.count(b'\n') + 1, status))
        self.send_response(status)
        for key in ('Content-Type', 'X-Influxdb-Version'):
            if key in headers:
                self.send_header(key, headers[key])
        self.send_header('Content-Length', str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = _relay

    def log_message(self, *args):
        pass


@pytest.fixture
def small_body_influxd(influxdb_server):
    # Depending on the session server skips (or fails) the same way when
    # influxd is not installed.
    server = influxdb_fixture.InfluxDBServer(
        http_options={'max-body-size': 2000}).start()
    yield server
    server.cleanup()


@pytest.fixture
def relay(small_body_influxd):
    made = _Relay(small_body_influxd.url)
    thread = threading.Thread(target=made.serve_forever, daemon=True)
    thread.start()
    yield made
    made.shutdown()
    made.server_close()


@pytest.mark.parametrize('fail_body', [
    b'{"error":"unavailable"}',
    # What a proxy in front of InfluxDB may answer: JSON, but no error
    # message the store can read; still a failure to retry.
    b'["unavailable"]'])
def test_a_split_batch_failing_halfway_counts_each_point_once(
        small_body_influxd, relay, fail_body):
    relay.fail_body = fail_body
    store = influxdb.InfluxDBStore(
        url=relay.url, database='split', batch_size=POINTS,
        flush_interval_s=0.05, retry_backoff_s=0.05, retry_backoff_max_s=0.1,
        startup_timeout_s=10, raw_retention_days=0)
    try:
        store.write([base.Point('host_metric',
                                {'host': 'compute-%02d' % i, 'metric': 'cpu'},
                                {'value': float(i)}, T0 + i)
                     for i in range(POINTS)])
        assert store.flush(timeout=30)
        counters = store.counters()
    finally:
        store.close()

    statuses = [status for _, status in relay.writes]
    assert statuses[0] == 413 and 503 in statuses   # split, then failed
    reply = small_body_influxd.query(
        'split', 'SELECT count(value) FROM host_metric')
    assert reply['results'][0]['series'][0]['values'][0][1] == POINTS
    assert counters['written'] == POINTS
    assert counters['dropped'] == 0
    # Each point went out (with 204) once: none was sent again.
    assert sum(lines for lines, status in relay.writes
               if status == 204) == POINTS


def test_a_point_alone_too_large_for_the_server_is_dropped_not_retried(
        small_body_influxd, caplog):
    store = influxdb.InfluxDBStore(
        url=small_body_influxd.url, database='too_large', batch_size=8,
        flush_interval_s=0.05, retry_backoff_s=0.05, retry_backoff_max_s=0.1,
        startup_timeout_s=10, raw_retention_days=0)
    small = [base.Point('instance_event', {'instance': 'vm-%d' % i},
                        {'record': '{}'}, T0 + i) for i in range(3)]
    large = base.Point('instance_event', {'instance': 'vm-large'},
                       {'record': 'x' * 3000}, T0 + 10)
    # Points already sent are waited for until written: a point retried
    # for ever would hold the call until this gives up.
    give_up = threading.Event()
    timer = threading.Timer(10, give_up.set)
    timer.start()
    try:
        with pytest.raises(base.HistoryError, match='may have dropped'):
            store.write_through(small + [large], cancel=give_up)
        # The writer goes on: later points are written.
        later = base.Point('instance_event', {'instance': 'vm-later'},
                           {'record': '{}'}, T0 + 20)
        store.write_through([later], timeout=10)
        counters = store.counters()
        found = store.query_points('instance_event')
    finally:
        timer.cancel()
        store.close()

    assert counters['dropped'] == 1 and counters['written'] == 4
    assert found == small + [later]
    assert any('HTTP 413' in r.getMessage() for r in caplog.records)


def test_a_dropped_point_is_logged_escaped_and_bounded(small_body_influxd,
                                                       caplog):
    # The warning quoted the point's line as written: a tenant's instance
    # name and a record's text went to the log with their terminal
    # escapes and newlines.
    store = influxdb.InfluxDBStore(
        url=small_body_influxd.url, database='too_large_odd', batch_size=8,
        flush_interval_s=0.05, retry_backoff_s=0.05, retry_backoff_max_s=0.1,
        startup_timeout_s=10, raw_retention_days=0)
    record = 'a\nWARNING forged\x1b]0;x\x07' + 'x' * 3000
    large = base.Point('instance_event', {'instance': 'vm-\x1b[2J'},
                       {'record': record}, T0 + 10)
    try:
        with caplog.at_level('DEBUG', logger=influxdb.__name__):
            with pytest.raises(base.HistoryError, match='may have dropped'):
                store.write_through([large], timeout=10)
    finally:
        store.close()

    (said,) = [r.getMessage() for r in caplog.records
               if 'rejected a point' in r.getMessage()]
    assert 'vm-\\x1b[2J' in said, said
    assert not set(said) & {'\x1b', '\x07', '\n'}, said
    assert len(said) < 600, said


@pytest.mark.parametrize('answer', [
    (502, b'<html><body>\x1b[2J502 Bad Gateway</body></html>\n'),
    (200, b'{"results": [{"statement_id": 0}]}\nnot json\n'),
], ids=['proxy-page', 'broken-chunk'])
def test_a_query_answer_that_is_not_influxdbs_is_a_history_error(
        small_body_influxd, relay, answer):
    # A proxy's page in InfluxDB's place raised the JSON decoder's
    # ValueError out of the store, which its callers (the history
    # metrics source, the service) do not take for an unavailable store.
    store = influxdb.InfluxDBStore(
        url=relay.url, database='proxied', flush_interval_s=0.05,
        startup_timeout_s=10, raw_retention_days=0)
    relay.query_answer = answer
    try:
        with pytest.raises(base.HistoryError,
                           match='HTTP %d .*not an InfluxDB' % answer[0]) \
                as raised:
            store.query_points('host_metric')
    finally:
        relay.query_answer = None
        store.close()
    assert '\x1b' not in str(raised.value)
