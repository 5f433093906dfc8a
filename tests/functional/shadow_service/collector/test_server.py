"""The sample collector over real HTTP, in front of real history stores.

A guest is played by an HTTP client posting what loadgen's collector sink
posts; tokens come from :class:`Grants` as the openstack driver issues
them.  Nothing a refused request carries may reach the store.
"""

import http.client
import json
import logging
import ssl
import subprocess
import threading
import time

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from shadow_service.collector import ingest
from shadow_service.collector import server
from shadow_service.collector import tokens
from shadow_service.history import sqlite
from tests import http_support
from tests import service_support
from tests.unit.shadow_service.history import conftest as history_support

EVALUATION = '6b7a3c52-0b8f-4d0e-9a55-2f0d3f7d9a11'


def _conf(**collector):
    values = {'host': '127.0.0.1', 'port': 0}
    values.update(collector)
    return service_support.make_conf(collector=values)


class Running:
    """A collector on a free port with one running shadow's token."""

    def __init__(self, store, **collector):
        self.store = store
        self.conf = _conf(**collector)
        self.grants = tokens.Grants()
        self.token, self.grant = self.issue(EVALUATION, 'host-a')
        self.collector = server.Collector(
            self.conf.collector,
            ingest.Intake(store, self.conf.collector.max_clock_skew,
                          self.conf.collector.max_line_bytes),
            self.grants).start()

    def issue(self, evaluation, host, expires_in=600.0):
        token, grant = self.grants.issue(evaluation, host, 'web',
                                         time.time() + expires_in)
        grant.shadow_id = 'server-%s' % host
        return token, grant

    def post(self, body, token=None, headers=None, path=server.PATH,
             method='POST', context=None):
        if isinstance(body, list):
            body = ''.join(line + '\n' for line in body)
        if isinstance(body, str):
            body = body.encode('utf-8')
        if context is None:
            connection = http.client.HTTPConnection(
                '127.0.0.1', self.collector.port, timeout=10)
        else:
            connection = http.client.HTTPSConnection(
                '127.0.0.1', self.collector.port, timeout=10,
                context=context)
        sent = {'Content-Type': 'application/x-ndjson'}
        if token is not None:
            sent['Authorization'] = 'Bearer %s' % token
        sent.update(headers or {})
        try:
            connection.request(method, path, body=body, headers=sent)
            reply = connection.getresponse()
            return reply.status, dict(reply.getheaders()), json.loads(
                reply.read() or b'{}')
        finally:
            connection.close()

    def stored(self):
        self.store.flush(10)
        return self.store.query_points('shadow_sample')

    def stop(self):
        self.collector.stop()


def _line(metric='cpu_ops_per_s', value=100.0, moment=None, **tags):
    sample = {'measurement': 'shadow_sample',
              'time': time.time() if moment is None else moment,
              'tags': dict({'evaluation': 'forged', 'shadow': 'forged',
                            'host': 'forged', 'profile': 'idle',
                            'metric': metric}, **tags),
              'fields': {'value': value}}
    return json.dumps(sample)


@pytest.fixture
def running(tmp_path):
    store = sqlite.SQLiteStore(path=str(tmp_path / 'history.sqlite'))
    collector = Running(store)
    yield collector
    collector.stop()
    store.close()


def test_valid_samples_reach_sqlite_tagged_from_the_token(running):
    status, _, body = running.post(
        [_line(), _line('cpu_steal_pct', 2.5)], running.token)
    assert (status, body['accepted'], body['rejected']) == (200, 2, 0)
    points = running.stored()
    assert sorted(p.tags['metric'] for p in points) == \
        ['cpu_ops_per_s', 'cpu_steal_pct']
    for point in points:
        assert point.tags['evaluation'] == EVALUATION
        assert point.tags['host'] == 'host-a'
        assert point.tags['shadow'] == 'server-host-a'
        assert point.tags['profile'] == 'web'
    assert running.grant.accepted == 2
    assert running.collector.counters()['requests'] == {'200 ok': 1}


def test_valid_samples_reach_influxdb_alike(influxdb_server):
    store = history_support.make_influx_store(influxdb_server)
    collector = Running(store)
    try:
        status, _, body = collector.post([_line(), _line(value=7.0)],
                                         collector.token)
        assert (status, body['accepted']) == (200, 2)
        points = collector.stored()
        assert sorted(p.fields['value'] for p in points) == [7.0, 100.0]
        assert {p.tags['host'] for p in points} == {'host-a'}
        assert {p.tags['evaluation'] for p in points} == {EVALUATION}
    finally:
        collector.stop()
        store.close()


def test_forged_expired_finished_and_foreign_tokens_write_nothing(running):
    prefix, evaluation, secret = running.token.split('.')
    expired, _ = running.issue(EVALUATION, 'host-b', expires_in=-1.0)
    other_token, other_grant = running.issue(
        '0c9e0f43-7d6b-4f6c-8d5e-9f3a1b2c4d5e', 'host-c')
    finished_token, finished_grant = running.issue(
        '1d8e7f65-3c2b-4a19-8e7d-6c5b4a392817', 'host-d')
    running.grants.revoke(finished_grant)
    cases = [
        (None, 401),
        ('not-a-token', 401),
        ('.'.join([prefix, evaluation, 'B' * 43]), 403),
        # Another evaluation's secret under this evaluation's id.
        ('.'.join([prefix, evaluation, other_token.split('.')[2]]), 403),
        # This evaluation's secret under another (running) evaluation.
        ('.'.join([prefix, other_grant.evaluation_id, secret]), 403),
        ('.'.join([prefix, 'f' * 36, secret]), 404),
        (expired, 410),
        (finished_token, 410),
    ]
    for token, expected in cases:
        status, _, body = running.post([_line()], token)
        assert (token, status) == (token, expected)
        assert body['error']
    assert running.stored() == []
    requests = running.collector.counters()['requests']
    assert sum(requests.values()) == len(cases)
    assert running.collector.intake.counts['accepted'] == 0


def test_size_length_method_path_and_rate_are_bounded(tmp_path):
    store = sqlite.SQLiteStore(path=str(tmp_path / 'h.sqlite'))
    collector = Running(store, max_body_bytes=2048, rate_limit=0.5,
                        rate_burst=2)
    try:
        status, _, _ = collector.post('x' * 4096, collector.token)
        assert status == 413
        connection = http.client.HTTPConnection('127.0.0.1',
                                                collector.collector.port)
        connection.putrequest('POST', server.PATH)
        connection.putheader('Authorization', 'Bearer ' + collector.token)
        connection.endheaders()
        assert connection.getresponse().status == 411
        connection.close()
        assert collector.post('', collector.token, method='GET')[0] == 405
        assert collector.post([_line()], collector.token,
                              path='/v1/other')[0] == 404
        answers = [collector.post([_line()], collector.token)
                   for _ in range(3)]
        assert [a[0] for a in answers] == [200, 200, 429]
        assert int(answers[2][1]['Retry-After']) >= 1
        assert len(collector.stored()) == 2
    finally:
        collector.stop()
        store.close()


def test_a_body_of_bad_lines_is_refused_and_good_lines_are_kept(running):
    status, _, body = running.post(['{', _line(metric='gpu_x')],
                                   running.token)
    assert status == 400
    assert body['reasons'] == {'not_json': 1, 'bad_metric': 1}
    status, _, body = running.post(['{', _line()], running.token)
    assert (status, body['accepted'], body['rejected']) == (200, 1, 1)
    assert len(running.stored()) == 1


_junk = st.one_of(
    st.binary(max_size=300),
    st.lists(st.text(max_size=80), max_size=5).map('\n'.join),
    st.builds(lambda metric, value: _line(metric=metric, value=value),
              st.text(max_size=12), st.floats(allow_nan=True)),
    st.recursive(st.integers() | st.floats() | st.text(max_size=5),
                 lambda c: st.lists(c, max_size=3)
                 | st.dictionaries(st.text(max_size=5), c, max_size=3),
                 max_leaves=8).map(json.dumps))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(body=_junk, forged=st.booleans())
def test_fuzzed_bodies_never_break_the_collector(running, body, forged):
    before = len(running.stored())
    token = ('nss1.%s.%s' % (EVALUATION, 'C' * 43) if forged
             else running.token)
    if isinstance(body, str):
        body = body.encode('utf-8', 'surrogatepass')
    status, _, answer = running.post(body, token)
    after = running.stored()
    if forged:
        assert status == 403
    else:
        assert status in (200, 400, 429)
    if status == 200:
        assert answer['accepted'] >= 1
        assert len(after) > before
    else:
        assert len(after) == before
    for point in after:
        assert point.tags['host'] == 'host-a'
        assert ingest.METRIC_NAME.match(point.tags['metric'])


def _self_signed(directory):
    cert, key = directory / 'cert.pem', directory / 'key.pem'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048',
                    '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
                    '-addext', 'subjectAltName=IP:127.0.0.1',
                    '-keyout', str(key), '-out', str(cert)],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


def test_tls_serves_https_with_the_configured_certificate(tmp_path):
    cert, key = _self_signed(tmp_path)
    store = sqlite.SQLiteStore(path=str(tmp_path / 'h.sqlite'))
    collector = Running(store, tls_cert_file=cert, tls_key_file=key)
    try:
        assert collector.collector.advertised_url.startswith('https://')
        context = ssl.create_default_context(cafile=cert)
        status, _, body = collector.post([_line()], collector.token,
                                         context=context)
        assert (status, body['accepted']) == (200, 1)
    finally:
        collector.stop()
        store.close()


def test_a_wildcard_address_needs_an_advertised_url(tmp_path):
    store = sqlite.SQLiteStore(path=str(tmp_path / 'h.sqlite'))
    conf = _conf(host='0.0.0.0')
    collector = server.Collector(conf.collector, ingest.Intake(store),
                                 tokens.Grants())
    with pytest.raises(server.CollectorError, match='advertised_url'):
        collector.start()
    store.close()


def test_tls_with_an_http_advertised_url_is_refused(tmp_path):
    # Guests would post in the clear to a port that speaks only TLS.
    cert, key = _self_signed(tmp_path)
    store = sqlite.SQLiteStore(path=str(tmp_path / 'h.sqlite'))
    conf = _conf(tls_cert_file=cert, tls_key_file=key,
                 advertised_url='http://192.0.2.1:8793/v1/samples')
    collector = server.Collector(conf.collector, ingest.Intake(store),
                                 tokens.Grants())
    with pytest.raises(server.CollectorError,
                       match='advertised_url must be https://'):
        collector.start()
    store.close()


def _raw(running, data, read_for=5.0):
    return http_support.exchange(running.collector.port, data, read_for)


def _request(running, body, headers):
    lines = ['POST %s HTTP/1.1' % server.PATH, 'Host: x',
             'Authorization: Bearer %s' % running.token] + headers
    return ('\r\n'.join(lines) + '\r\n\r\n').encode() + body


def test_a_value_or_time_no_float_holds_is_a_bad_line_not_an_outage(
        running):
    # JSON allows 10**400; it gave 503 store_unavailable (which loadgen
    # retries for ever) and lost the good line sent with it.
    big = json.loads(_line())
    big['fields']['value'] = 10 ** 400
    late = json.loads(_line())
    late['time'] = 10 ** 400
    status, _, body = running.post(
        [json.dumps(big), json.dumps(late), _line()], running.token)
    assert (status, body['accepted'], body['rejected']) == (200, 1, 2)
    assert len(running.stored()) == 1


@pytest.mark.parametrize('headers', [
    ['Content-Length: 1', 'Content-Length: %d'],
    ['Transfer-Encoding: chunked', 'Content-Length: %d'],
])
def test_an_ambiguous_length_is_refused_and_the_connection_closed(
        running, headers):
    body = (_line() + '\n').encode()
    sent = [h % len(body) if '%d' in h else h for h in headers]
    got = _raw(running, _request(running, body, sent))
    # One answer: nothing after the first length was read as a request.
    assert got.count(b'HTTP/1.1 ') == 1
    assert got.startswith(b'HTTP/1.1 400 ')
    assert b'ambiguous_length' in got
    assert running.stored() == []


@pytest.mark.parametrize('length', ['\u00b2', '9' * 5000, '-1', '1 2'])
def test_a_length_that_is_not_plain_digits_is_refused(running, length):
    got = _raw(running, _request(running, b'',
                                 ['Content-Length: ' + length]))
    assert got.startswith(b'HTTP/1.1 411 '), got[:200]
    assert '500 internal' not in running.collector.counters()['requests']


def _cut_off_in_headers(running, data, hang_up):
    """Send ``data`` (a request line and part of its headers); end the
    stream (``hang_up``) or wait to be cut off; what came back."""
    import socket

    sock = socket.create_connection(('127.0.0.1', running.collector.port),
                                    timeout=5)
    try:
        sock.sendall(data)
        if hang_up:
            sock.shutdown(socket.SHUT_WR)
        got = b''
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return got
            got += chunk
    finally:
        sock.close()


@pytest.mark.parametrize('hang_up', [True, False],
                         ids=['client-hangs-up', 'cut-off-by-deadline'])
def test_a_request_cut_off_in_its_headers_is_400_not_411(
        running, monkeypatch, caplog, hang_up):
    # The stdlib reads the end of the stream as the end of the headers:
    # a cut-off request was served without them, 411 Length Required
    # (or, with its Content-Length already sent, checked and answered as
    # a whole one).
    monkeypatch.setattr(server, 'SOCKET_TIMEOUT_S', 0.5)
    caplog.set_level(logging.WARNING, logger='shadow_service.collector')
    head = 'POST %s HTTP/1.1\r\nHost: x\r\n' % server.PATH
    cut = [head, head + 'Content-Le',
           head + 'Content-Length: 0\r\nAuthorization: Bearer %s\r\nX-'
           % running.token]
    for data in cut:
        got = _cut_off_in_headers(running, data.encode(), hang_up)
        assert got.startswith(b'HTTP/1.1 400 '), got[:200]
        assert b'"headers_truncated"' in got
    # A whole header block without a length is still 411.
    got = _raw(running, (head + '\r\n').encode())
    assert got.startswith(b'HTTP/1.1 411 ')
    requests = running.collector.counters()['requests']
    assert requests == {'400 headers_truncated': 3,
                        '411 length_required': 1}, requests
    refused = [r.getMessage() for r in caplog.records
               if 'headers_truncated' in r.getMessage()]
    assert len(refused) == 1, refused
    assert running.stored() == []


def test_a_request_is_bounded_as_a_whole_not_per_read(
        running, monkeypatch):
    # One byte every 0.3 s: every read succeeds within the socket
    # timeout, the request as a whole does not.
    monkeypatch.setattr(server, 'SOCKET_TIMEOUT_S', 1.0)
    closed_after, answer = http_support.trickle(
        running.collector.port,
        _request(running, b'', ['Content-Length: 0']))
    assert (closed_after < 4.5, answer) == (True, b'')
    assert running.stored() == []


def test_a_body_that_stops_or_a_client_that_hangs_up_is_one_400(
        running, monkeypatch, caplog):
    monkeypatch.setattr(server, 'SOCKET_TIMEOUT_S', 1.0)
    body = (_line() + '\n').encode()
    caplog.set_level(logging.WARNING, logger='shadow_service.collector')
    stops = _raw(running, _request(running, body[:10], [
        'Content-Length: %d' % len(body)]), read_for=5.0)
    assert stops.startswith(b'HTTP/1.1 400 ')
    assert b'truncated' in stops
    import socket

    sock = socket.create_connection(('127.0.0.1', running.collector.port))
    sock.sendall(_request(running, body[:10],
                          ['Content-Length: %d' % len(body)]))
    sock.close()
    time.sleep(2.0)
    counters = running.collector.counters()['requests']
    assert counters.get('400 truncated') == 2, counters
    assert counters.get('500 internal') is None, counters
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize('data, counted', [
    (b'POST /v1/samples HTTP/1.1 x\r\n\r\n', '400 malformed_request'),
    (b'POST /v1/samples\x00 HTXP/1.1\r\n\r\n', '400 malformed_request'),
    (b'POST /v1/samples HTTP/1.1\r\nX-Long: ' + b'a' * 70000 + b'\r\n\r\n',
     '431 headers_too_large'),
    (b'POST /' + b'a' * 70000 + b' HTTP/1.1\r\n\r\n',
     '414 request_line_too_long'),
    (b'POST /v1/samples HTTP/2.0\r\n\r\n', '505 http_version_not_supported'),
    (b'OPTIONS /v1/samples HTTP/1.1\r\n\r\n', '501 unsupported_method'),
], ids=['request-version', 'request-line', 'header-line', 'long-line',
        'http-2', 'method'])
def test_requests_the_http_library_refuses_are_counted_and_logged(
        running, caplog, data, counted):
    # The HTTP library answers these itself (400 for a malformed request
    # line, 431 for a header over its limit...): they went uncounted and
    # unlogged, unlike the collector's own 400s.
    caplog.set_level(logging.WARNING, logger='shadow_service.collector')
    status = counted.split()[0].encode()
    for _ in range(2):
        # The library's own page (after no status line at all when the
        # request line cannot be read).
        got = _raw(running, data)
        assert b'Error code: %s' % status in got, got[:300]
    requests = running.collector.counters()['requests']
    assert requests == {counted: 2}, requests
    refused = [r.getMessage() for r in caplog.records
               if 'refused' in r.getMessage()]
    assert len(refused) == 1 and counted in refused[0], refused
    assert running.stored() == []


def test_the_access_log_keeps_no_query_and_no_control_character(
        running, caplog):
    caplog.set_level(logging.DEBUG, logger='shadow_service.collector')
    _raw(running, b'POST /v1/samples?token=nss1.secret-in-query HTTP/1.1\r\n'
         b'Host: x\r\nContent-Length: 0\r\n\r\n')
    _raw(running, b'POST /v1/\x1b]0;x\x07 HTTP/1.1\r\nHost: x\r\n'
         b'Content-Length: 0\r\n\r\n')
    logged = '\n'.join(r.getMessage() for r in caplog.records)
    assert 'secret-in-query' not in logged
    assert '\x1b' not in logged and '\x07' not in logged


def _held(running, token):
    """A connection whose request's headers are sent and whose body is
    not: it holds a place until it is closed (or cut off)."""
    import socket

    sock = socket.create_connection(('127.0.0.1', running.collector.port),
                                    timeout=5)
    lines = ['POST %s HTTP/1.1' % server.PATH, 'Host: x',
             'Authorization: Bearer %s' % token, 'Content-Length: 100']
    sock.sendall(('\r\n'.join(lines) + '\r\n\r\n').encode())
    return sock


def test_a_slow_shadow_holds_its_own_share_of_places_not_all(
        running, monkeypatch):
    monkeypatch.setattr(server, 'MAX_IN_FLIGHT', 4)
    monkeypatch.setattr(server, 'MAX_IN_FLIGHT_PER_SHADOW', 2, raising=False)
    monkeypatch.setattr(server, 'MAX_IN_FLIGHT_PER_EVALUATION', 3,
                        raising=False)
    other = '0f5d7c1e-3a4b-4c2d-8e9f-1a2b3c4d5e6f'
    same_b, _ = running.issue(EVALUATION, 'host-b')
    other_c, _ = running.issue(other, 'host-c')
    other_d, _ = running.issue(other, 'host-d')
    held = []

    def hold(token, count):
        held.extend(_held(running, token) for _ in range(count))
        # The server's thread takes the place when it has read the
        # headers: on a busy machine (four test processes beside other
        # work) that once took more than 5 s.
        deadline = time.monotonic() + 30
        while (running.collector._in_flight < len(held)
               and time.monotonic() < deadline):
            time.sleep(0.02)
        assert running.collector._in_flight == len(held)

    try:
        hold(running.token, 2)
        status, headers, body = running.post([_line()], running.token)
        assert (status, body['error'], headers['Retry-After']) == (
            503, 'busy', '1')
        assert 'this shadow' in body['message']
        # Another shadow of the evaluation still gets through.
        assert running.post([_line()], same_b)[0] == 200
        hold(same_b, 1)
        status, _, body = running.post([_line()], same_b)
        assert (status, 'this evaluation' in body['message']) == (503, True)
        # Another evaluation still gets through, up to the whole.
        assert running.post([_line()], other_c)[0] == 200
        hold(other_c, 1)
        status, _, body = running.post([_line()], other_d)
        assert (status, body['message']) == (
            503, 'too many requests in flight')
        # Full, a request without a valid token is still told why.
        assert running.post([_line()], 'nope')[0] == 401
        assert running.post([_line()])[0] == 401
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 30
    while running.collector._in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    assert running.collector._in_flight == 0
    assert running.post([_line()], other_d)[0] == 200


def _idle(running, source, count):
    """``count`` connections from ``source`` that send half a request
    line and then nothing."""
    import socket

    socks = []
    for _ in range(count):
        sock = socket.create_connection(
            ('127.0.0.1', running.collector.port), timeout=5,
            source_address=(source, 0))
        sock.sendall(b'POST /v1/samples HTTP/1.1\r\n')
        socks.append(sock)
    return socks


def _served(socks, wait_s=1.0):
    """How many of ``socks`` the server keeps open (the others it closed
    as it accepted them)."""
    deadline = time.monotonic() + wait_s
    open_ = 0
    for sock in socks:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            open_ += sock.recv(1) != b''
        except TimeoutError:
            open_ += 1
        except ConnectionError:
            pass
    return open_


def test_connections_are_bounded_in_all_and_per_address(
        running, monkeypatch):
    # Each connection holds a thread (and a timer's) for up to
    # SOCKET_TIMEOUT_S before it sends a byte of a token: without a
    # bound, a stranger's idle connections ran the daemon out of threads.
    monkeypatch.setattr(server._Server, 'max_connections', 6,
                        raising=False)
    monkeypatch.setattr(server._Server, 'max_connections_per_address', 4,
                        raising=False)
    running.collector.stop()
    running.collector.start()
    threads_before = threading.active_count()
    flood = _idle(running, '127.0.0.2', 20)
    try:
        assert _served(flood) == 4
        assert threading.active_count() - threads_before <= 2 * 4
        # Another address still gets through, up to the whole.
        more = _idle(running, '127.0.0.3', 2)
        flood += more
        assert _served(more, 0.3) == 2
        late = _idle(running, '127.0.0.4', 1)
        flood += late
        assert _served(late) == 0
        # The shadows' own posts wait for a place, as when busy.
        assert running.collector.counters()['connections'] == {
            'refused': 17}
    finally:
        for sock in flood:
            sock.close()
    deadline = time.monotonic() + 5
    while True:
        try:
            assert running.post([_line()], running.token)[0] == 200
            break
        except ConnectionError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_refusals_of_one_kind_are_logged_once_a_while_and_all_counted(
        running, caplog):
    # Every refused request was a WARNING line: a client with no token
    # wrote about 470 lines (50 kB) a second into the service's log.
    caplog.set_level(logging.WARNING, logger='shadow_service.collector')
    for _ in range(30):
        assert running.post([_line()], 'nss1.x.forged')[0] == 404
        assert running.post([_line()])[0] == 401
    assert running.post([_line()], running.token)[0] == 200
    refused = [r.getMessage() for r in caplog.records
               if 'refused' in r.getMessage()]
    assert len(refused) == 2, refused
    requests = running.collector.counters()['requests']
    assert requests['401 unauthenticated'] == 30
    assert requests['404 unknown_evaluation'] == 30


def _distinct(count, start=0):
    moment = time.time()
    return [_line(value=float(index), moment=moment + index * 1e-3)
            for index in range(start, start + count)]


def test_samples_per_token_are_bounded_in_rate_not_only_requests(
        running, monkeypatch):
    # Within its request rate a token wrote about 63,000 distinct samples
    # a second (1 MiB bodies), each of which the evaluation reads into
    # memory: a minute of that from one guest is millions of points.
    monkeypatch.setattr(ingest, 'MAX_SAMPLES_PER_S', 20.0, raising=False)
    monkeypatch.setattr(ingest, 'SAMPLE_BURST', 50, raising=False)
    status, _, body = running.post(_distinct(200), running.token)
    assert (status, body['accepted'], body['reasons']) == (
        200, 50, {'too_many_samples': 150})
    assert len(running.stored()) == 50
    time.sleep(1.0)
    status, _, body = running.post(_distinct(100, 200), running.token)
    assert 18 <= body['accepted'] <= 30
    # Another shadow's allowance is its own.
    other, _ = running.issue(EVALUATION, 'host-b')
    assert running.post(_distinct(50), other)[2]['accepted'] == 50


def test_a_full_loadgen_batch_after_an_outage_is_taken_whole(running):
    # The bound leaves room for what loadgen buffers while the collector
    # is away, sent back in batches of 1,000 lines.
    for start in range(0, 5000, 1000):
        status, _, body = running.post(_distinct(1000, start),
                                       running.token)
        assert (status, body['accepted']) == (200, 1000)


def test_loadgen_delivers_to_a_collector_that_comes_back(tmp_path):
    # The collector restarts: loadgen's sink keeps the samples, backs off
    # and gives them to the real collector once it listens again.
    import io
    import socket

    from loadgen import collector as collector_sink

    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    store = sqlite.SQLiteStore(path=str(tmp_path / 'history.sqlite'))
    grants = tokens.Grants()
    token, grant = grants.issue(EVALUATION, 'host-a', 'web',
                                time.time() + 600)
    grant.shadow_id = 'server-host-a'
    sink = collector_sink.CollectorSink(
        'http://127.0.0.1:%d%s' % (port, server.PATH), token,
        flush_interval_s=0.05, backoff_s=0.05, max_backoff_s=0.2,
        stderr=io.StringIO())
    for line in _distinct(30):
        sink.emit(json.loads(line))
    sink.flush()
    time.sleep(0.5)                    # refused meanwhile
    conf = _conf(port=port)
    running = server.Collector(
        conf.collector, ingest.Intake(store, conf.collector.max_clock_skew,
                                      conf.collector.max_line_bytes),
        grants).start()
    try:
        deadline = time.monotonic() + 10
        while sink.stats()['sent'] < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        sink.close()
        stats = sink.stats()
        assert (stats['sent'], stats['dropped']) == (30, 0)
        assert stats['errors'] >= 1
        store.flush(10)
        assert len(store.query_points('shadow_sample')) == 30
    finally:
        running.stop()
        store.close()


@pytest.mark.parametrize('data, counted', [
    (b'POST /v1/samples\r\n\r\n', '505 http_version_not_supported'),
    (b'GET /v1/samples\r\n\r\n', '505 http_version_not_supported'),
    (b'GARBAGE\r\n\r\n', '400 malformed_request'),
    (b'POST /v1/samples HTTP/x\r\n\r\n', '400 malformed_request'),
    (b'POST /v1/samples HTTP/2.0\r\n\r\n', '505 http_version_not_supported'),
    (b'POST /v1/samples HTTP/1.1 x\r\n\r\n', '400 malformed_request'),
], ids=['http-0.9-post', 'http-0.9-get', 'one-word', 'bad-version',
        'http-2', 'four-words'])
def test_every_refusal_of_a_bad_request_line_has_a_status_line(
        running, data, counted):
    # The HTTP library answers a request line without a readable version
    # as HTTP/0.9: the page alone, no status line and no header, which
    # an HTTP/1.x client cannot read (it waits or reports a broken
    # server).  An HTTP/0.9 GET was even served, with a 405 page and no
    # status line.
    got = _raw(running, data)
    status = counted.split()[0].encode()
    assert got.startswith(b'HTTP/1.1 %s ' % status), got[:200]
    head, _, body = got.partition(b'\r\n\r\n')
    assert b'\r\nContent-Length: %d' % len(body) in head, head
    assert b'\r\nConnection: close' in head, head
    assert running.collector.counters()['requests'] == {counted: 1}


@pytest.mark.parametrize('target', [b'http://[::1/v1/samples',
                                    b'http://[/v1/samples'],
                         ids=['open-address', 'empty-address'])
def test_a_request_target_that_is_no_url_is_a_404_not_a_failure(
        running, caplog, target):
    # urlsplit raised ValueError ("Invalid IPv6 URL") inside the handler:
    # a 500 "internal" with a traceback in the log, for what a client
    # sent.
    caplog.set_level(logging.WARNING, logger='shadow_service.collector')
    got = _raw(running, b'POST %s HTTP/1.1\r\nHost: x\r\n'
               b'Content-Length: 0\r\n\r\n' % target)
    assert got.startswith(b'HTTP/1.1 404 '), got[:200]
    assert running.collector.counters()['requests'] == {
        '404 no_such_path': 1}
    assert not [r for r in caplog.records if r.exc_info]
