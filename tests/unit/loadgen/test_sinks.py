"""Sinks: line-protocol escaping, JSON lines, bounded InfluxDB buffer."""

import io
import json
import socket
import threading
import time
import tracemalloc

import pytest

from loadgen import sinks
from tests import http_support


def _point(value=1.5, **tags):
    base = {'evaluation': 'e1', 'shadow': 's1', 'host': 'h1',
            'profile': 'web', 'metric': 'cpu_ops_per_s'}
    base.update(tags)
    return {'measurement': 'shadow_sample', 'time': 1700000000.25,
            'tags': base, 'fields': {'value': value}}


def test_line_protocol_escapes_tag_values():
    line = sinks.to_line(_point(host='rack 1,row=2', shadow='a\nb'))
    assert line == ('shadow_sample,evaluation=e1,host=rack\\ 1\\,row\\=2,'
                    'metric=cpu_ops_per_s,profile=web,shadow=a\\ b '
                    'value=1.5 1700000000250000000')


def test_trailing_backslashes_are_removed_not_left_to_break_the_line():
    assert sinks.escape_tag('dir\\') == 'dir'
    assert sinks.escape_tag('\\\\') == '_'
    assert sinks.escape_tag('a\\b c') == 'a\\b\\ c'


def test_line_protocol_skips_empty_tags_and_nonfinite_values():
    assert ',evaluation=' not in sinks.to_line(_point(evaluation=''))
    assert sinks.to_line(_point(value=float('nan'))) is None


def test_json_lines_sink_writes_the_contract_shape():
    stream = io.StringIO()
    sink = sinks.JsonLinesSink(stream=stream)
    sink.emit(_point())
    sink.close()
    decoded = json.loads(stream.getvalue())
    assert decoded == _point()
    assert sink.stats()['sent'] == 1


def test_make_sink_picks_by_url(tmp_path):
    assert isinstance(sinks.make_sink('-'), sinks.JsonLinesSink)
    path = tmp_path / 'out.jsonl'
    file_sink = sinks.make_sink('file://%s' % path)
    file_sink.emit(_point())
    file_sink.close()
    assert len(path.read_text().splitlines()) == 1
    with pytest.raises(ValueError):
        sinks.make_sink('ftp://x/y')


def _closed_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_unreachable_influxdb_drops_are_bounded_and_counted():
    sink = sinks.InfluxDBSink(
        'http://127.0.0.1:%d?db=x' % _closed_port(), batch_size=10,
        max_buffer=50, flush_interval_s=0.05, retries=1, backoff_s=0.01,
        timeout_s=0.5, close_timeout_s=0.3)
    for index in range(200):
        sink.emit(_point(value=index))
    time.sleep(0.2)
    sink.close()
    stats = sink.stats()
    assert stats['sent'] == 0
    assert stats['dropped'] == 200
    assert stats['errors'] >= 1


class _WriteRecorder:
    """A real HTTP server on ``::1`` answering ``/write`` as InfluxDB 1.x
    does (204) and keeping the bodies."""

    def __init__(self):
        import http.server
        import threading
        recorder = self
        self.bodies = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get('Content-Length', 0))
                recorder.bodies.append((self.path, self.rfile.read(length)))
                self.send_response(204)
                self.send_header('Content-Length', '0')
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6

        self.server = Server(('::1', 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={'poll_interval': 0.05},
                                        daemon=True)
        self._thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_influxdb_at_an_ipv6_address_receives_the_points():
    try:
        server = _WriteRecorder()
    except OSError:
        pytest.skip('no IPv6 loopback')
    try:
        sink = sinks.make_sink('http://[::1]:%d?db=v6' % server.port,
                               flush_interval_s=0.05, retries=1,
                               backoff_s=0.01, timeout_s=2,
                               close_timeout_s=5)
        for index in range(3):
            sink.emit(_point(value=index))
        sink.close()
    finally:
        server.stop()
    assert sink.stats()['sent'] == 3, sink.stats()
    assert sink.stats()['dropped'] == 0
    path, body = server.bodies[0]
    assert path.startswith('/write?db=v6')
    assert len(body.decode().splitlines()) == 3


@pytest.mark.parametrize('url', ['http://:8086?db=x', 'http://?db=x'])
def test_influxdb_url_without_a_host_is_refused_with_a_value_error(url):
    with pytest.raises(ValueError, match='HOST'):
        sinks.make_sink(url)


def test_json_lines_to_a_closed_pipe_drops_counts_and_says_once():
    import os
    read_end, write_end = os.pipe()
    os.close(read_end)
    stream = os.fdopen(write_end, 'w')
    stderr = io.StringIO()
    sink = sinks.JsonLinesSink(stream=stream, stderr=stderr)
    for _ in range(3):
        sink.emit(_point())
        sink.flush()
    sink.close()
    stats = sink.stats()
    assert (stats['sent'], stats['dropped'], stats['failed']) == (0, 3, True)
    assert stderr.getvalue().count('sink stdout:') == 1
    try:
        stream.close()
    except OSError:
        pass


def _wait_for(condition, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def _values(bodies):
    """The values of the line-protocol lines in ``bodies``, in order."""
    return [float(line.split(b' value=')[1].split()[0])
            for body in bodies for line in body.splitlines()]


_HUGE = 16 * 2 ** 20


def _sink_on(server, path='?db=x', **options):
    """An InfluxDB sink writing to ``server`` (a RawAnswers), quick to
    retry and patient to close."""
    settings = dict(flush_interval_s=0.05, retries=1, backoff_s=0.01,
                    timeout_s=5, close_timeout_s=5)
    settings.update(options)
    return sinks.InfluxDBSink(server.url(path), **settings)


def _write_and_query(write_answer, query_answer):
    """A server answering ``write_answer`` to writes, ``query_answer``
    to queries (CREATE DATABASE)."""
    return http_support.RawAnswers(
        lambda path, body: write_answer if path.startswith('/write')
        else query_answer)


@pytest.mark.parametrize('write_answer, query_answer', [
    ((200, _HUGE), None),
    ((400, _HUGE, b'{"error":"partial write: field type conflict"}'), None),
    ((404, 100, b'{"error":"database not found: \\"x\\""}'), (200, _HUGE)),
    ((302, _HUGE, b'', {'Location': '/elsewhere'}), (200, 0)),
], ids=['2xx', '4xx', 'creating-the-database', 'redirect'])
def test_influxdb_answers_are_read_at_most_64_kib(write_answer,
                                                  query_answer):
    # Every answer was read whole (a 4xx's to cut 300 bytes of it, a
    # redirect's before it was followed as a GET that lost the points):
    # what answered in InfluxDB's place set the guest's memory.
    server = _write_and_query(write_answer, query_answer)
    sink = _sink_on(server, '/write?db=x')
    tracemalloc.start()
    try:
        sink.emit(_point())
        sink.flush()
        _wait_for(lambda: sink.stats()['sent'] or sink.stats()['dropped'])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        sink.close()
        server.close()
    assert peak < 4 * 2 ** 20, peak
    stats = sink.stats()
    assert (stats['sent'], stats['dropped']) == (0, 1), stats
    assert all(path.startswith(('/write?', '/query'))
               for path, _ in server.requests), server.requests


@pytest.mark.parametrize('answer, counted', [
    # An answer over 64 KiB is no InfluxDB's and counts as a failed
    # attempt.
    ((200, 2 ** 20), 'answer_too_long'),
    # A batch InfluxDB failed on (500: it cannot take it) was sent again
    # for the whole run and every newer point waited behind it; the
    # collector sink drops such a batch after five answers, and so does
    # this one now, counting it.
    ((500, 40, b'{"error":"engine: cannot"}'), 'server_error'),
    ((507, 40, b'{"error":"engine: cannot"}'), 'server_error'),
], ids=['too-long', '500', '507'])
def test_influxdb_batch_always_failed_on_is_dropped_after_five(answer,
                                                              counted):
    # The batch the answer always comes to is dropped after the fifth
    # (over several rounds of retries) and newer batches go on.
    poison = b' value=0.0 '
    server = http_support.RawAnswers(
        lambda path, body: answer if poison in body else (204, 0))
    sink = _sink_on(server)
    try:
        sink.emit(_point(value=0.0))
        sink.flush()
        _wait_for(lambda: sink.stats()['dropped'])
        for index in range(1, 21):
            sink.emit(_point(value=float(index)))
        sink.flush()
        _wait_for(lambda: sink.stats()['sent'] >= 20)
    finally:
        sink.close()
        server.close()
    stats = sink.stats()
    assert len([1 for _, body in server.requests if poison in body]) == 5
    assert (stats['sent'], stats['dropped'], stats['errors']) == (20, 1, 5)
    expected = {'server_error': 0, 'answer_too_long': 0, 'rejected': 0}
    expected[counted] = 1
    assert {key: stats[key] for key in expected} == expected
    assert _values(body for _, body in server.requests
                   if poison not in body) == [float(i) for i in range(1, 21)]


def test_influxdb_batch_sent_again_keeps_its_place_when_the_buffer_is_full():
    # A failed batch went back to the head of the buffer, where newer
    # samples overflowing the buffer pushed it out: they were sent and
    # the batch being sent again never was.
    up = threading.Event()
    delivered = []

    def answer(path, body):
        if not up.is_set():
            return 503, 0
        delivered.append(body)
        return 204, 0

    server = http_support.RawAnswers(answer)
    sink = _sink_on(server, batch_size=5, max_buffer=10, retries=0)
    try:
        for index in range(5):
            sink.emit(_point(value=float(index)))
        sink.flush()
        _wait_for(lambda: sink.stats()['errors'] >= 2)
        for index in range(5, 25):
            sink.emit(_point(value=float(index)))
            time.sleep(0.005)
        up.set()
        sink.flush()
        _wait_for(lambda: sink.stats()['sent'] >= 15)
    finally:
        sink.close()
        server.close()
    assert _values(delivered) == [float(i) for i in range(5)] + \
        [float(i) for i in range(15, 25)]
    assert sink.stats()['dropped'] == 10


@pytest.mark.parametrize('status', [502, 503, 504, 408, 429])
def test_influxdb_unavailable_is_waited_for_past_five_answers(status):
    # An InfluxDB that is away or busy is not failing on the batch: it is
    # waited for as long as the run lasts, as the collector is.
    answers = []

    def answer(path, body):
        answers.append(status)
        return (status, 0) if len(answers) <= 8 else (204, 0)

    server = http_support.RawAnswers(answer)
    sink = _sink_on(server)
    try:
        sink.emit(_point(value=1.0))
        sink.flush()
        _wait_for(lambda: sink.stats()['sent'] or sink.stats()['dropped'])
    finally:
        sink.close()
        server.close()
    stats = sink.stats()
    assert (stats['sent'], stats['dropped'], stats['errors']) == (1, 0, 8)
    assert stats['server_error'] == 0


@pytest.mark.parametrize('write_answer, query_answer, requests', [
    ((404, 19, b'404 page not found\n'), None, 1),
    ((404, 100, b'{"error":"database not found: \\"x\\""}'),
     (403, 60, b'{"error":"error authorizing query: x not authorized"}'), 2),
], ids=['no-such-path', 'database-not-creatable'])
def test_influxdb_404_is_dropped_as_other_4xx(write_answer, query_answer,
                                              requests):
    # A 404 was sent again for the whole run unless it said "database
    # not found" (and then, when InfluxDB refused to create the
    # database, the same): a wrong path (a proxy's) or a database that
    # cannot be created holds every newer point behind it.  It is a
    # 4xx as any other: the batch is dropped and counted.
    server = _write_and_query(write_answer, query_answer)
    sink = _sink_on(server, '/write?db=x', retries=3)
    try:
        sink.emit(_point(value=1.0))
        sink.flush()
        _wait_for(lambda: sink.stats()['dropped'], timeout_s=3.0)
        sink.emit(_point(value=2.0))
        sink.flush()
        _wait_for(lambda: sink.stats()['dropped'] >= 2, timeout_s=3.0)
    finally:
        sink.close()
        server.close()
    stats = sink.stats()
    assert (stats['sent'], stats['dropped'], stats['rejected'],
            stats['errors']) == (0, 2, 2, 0), stats
    assert len(server.requests) == 2 * requests, server.requests


def test_influxdb_database_created_but_never_found_is_given_up(caplog):
    # CREATE DATABASE succeeded but every write still answered 404
    # "database not found" (a proxy sending writes to another InfluxDB,
    # say): the sink created it again and sent the batch again for the
    # whole run.  It creates it a few times, then drops and counts the
    # batches, and says so once.
    caplog.set_level('DEBUG', logger='loadgen.sinks')
    server = _write_and_query(
        (404, 100, b'{"error":"database not found: \\"x\\""}'), (200, 0))
    sink = _sink_on(server, '/write?db=x', retries=2)
    try:
        for value in (1.0, 2.0, 3.0):
            sink.emit(_point(value=value))
            sink.flush()
            _wait_for(lambda v=value: sink.stats()['dropped'] >= v,
                      timeout_s=3.0)
    finally:
        sink.close()
        server.close()
    stats = sink.stats()
    creates = [path for path, _ in server.requests
               if path.startswith('/query')]
    assert (stats['sent'], stats['dropped'],
            stats.get('database_not_found')) == (0, 3, 3), stats
    assert len(creates) == sinks.MAX_DATABASE_CREATES, server.requests
    said = [r for r in caplog.records
            if r.levelname == 'WARNING' and 'not found' in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in said]
    assert 'CREATE DATABASE' in said[0].getMessage()


_HOSTILE = (b'{"error":"\x1b[2J\x1b]0;owned\x07 bad\nWARNING forged line\r'
            b'\xff' + b'y' * 5000 + b'"}')


@pytest.mark.parametrize('status', [400, 500], ids=['rejected', 'failed'])
def test_influxdb_error_bodies_are_logged_escaped_and_bounded(caplog,
                                                              status):
    # The answer's body went to the log as it came: a terminal escape
    # cleared the operator's screen and a newline forged a log line.
    caplog.set_level('DEBUG', logger='loadgen.sinks')
    server = http_support.RawAnswers(
        lambda path, body: (status, len(_HOSTILE), _HOSTILE))
    sink = _sink_on(server, retries=0)
    try:
        sink.emit(_point())
        sink.flush()
        _wait_for(lambda: sink.stats()['errors'] or sink.stats()['dropped'])
    finally:
        sink.close()
        server.close()
    messages = [r.getMessage() for r in caplog.records
                if r.name == 'loadgen.sinks']
    assert any('\\x1b[2J' in m for m in messages), messages
    for message in messages:
        assert not set(message) & {'\x1b', '\x07', '\n', '\r'}, message
        assert len(message) < 600, message


def test_influxdb_status_line_no_server_sends_is_retried_not_fatal(caplog):
    # The HTTP library raises an unreadable status line as is (no
    # OSError): it ended the sending thread, and every later point of
    # the run waited in the buffer and was dropped at the end.
    caplog.set_level('DEBUG', logger='loadgen.sinks')
    answers = []

    def answer(path, body):
        answers.append(path)
        if len(answers) <= 2:
            return b'HTTP/1.1 2\x1b[2J0 ' + b'z' * 3000, 0
        return 204, 0

    server = http_support.RawAnswers(answer)
    sink = _sink_on(server, retries=0)
    try:
        sink.emit(_point(value=1.0))
        sink.flush()
        _wait_for(lambda: sink.stats()['sent'])
    finally:
        sink.close()
        server.close()
    stats = sink.stats()
    assert (stats['sent'], stats['dropped'], stats['errors']) == (1, 0, 2)
    for record in caplog.records:
        assert '\x1b' not in record.getMessage()
        assert len(record.getMessage()) < 600


def test_influxdb_answer_no_parser_expected_loses_one_batch_not_the_run(
        caplog):
    # CREATE DATABASE answered with JSON nested deeper than the parser
    # goes raised RecursionError, which no handler of the sink expected:
    # the sending thread ended without a word, the batch in hand was
    # lost uncounted and every later point waited to be dropped at the
    # end.  It is now said once, counted, and the sink goes on.
    caplog.set_level('DEBUG', logger='loadgen.sinks')
    created = []

    def answer(path, body):
        if path.startswith('/query'):
            created.append(path)
            return 200, 50000, b'[' * 50000
        if len(created) < 2:
            return 404, 100, b'{"error":"database not found: \\"x\\""}'
        return 204, 0

    server = http_support.RawAnswers(answer)
    sink = _sink_on(server, '/write?db=x')
    sink._unexpected._wait_s = 0.01
    try:
        for value in (1.0, 2.0):
            sink.emit(_point(value=value))
            sink.flush()
            _wait_for(lambda v=value: sink.stats()['dropped'] >= v)
        sink.emit(_point(value=3.0))
        sink.flush()
        _wait_for(lambda: sink.stats()['sent'])
    finally:
        sink.close()
        server.close()
    stats = sink.stats()
    assert (stats['sent'], stats['dropped'], stats.get('unexpected')) == \
        (1, 2, 2), stats
    said = [r.getMessage() for r in caplog.records
            if 'RecursionError' in r.getMessage()]
    assert len(said) == 1, said
    assert len(said[0]) < 600

