"""The collector sink against a real local HTTP server (stdlib).

The server records every request and answers each status code the sink
must handle; runs are real ``shadow-loadgen`` processes where the
behaviour concerns the run (410 stops it, several sinks at once).
"""

import io
import json
import os
import socket
import subprocess
import time
import tracemalloc

import pytest

from loadgen import collector as collector_module
from loadgen import sinks
from tests import http_support
from tests.functional.loadgen.conftest import TEST_BEARER as TOKEN
from tests.functional.loadgen.conftest import RecordingCollector
from tests.functional.loadgen.conftest import loadgen_command
from tests.functional.loadgen.conftest import loadgen_env
from tests.functional.loadgen.conftest import parse_output

_SHORT_RUN = {'name': 'short', 'duration_s': 1.5, 'warmup_s': 0.25,
              'interval_s': 0.25,
              'components': {'cpu': {'duty_cycle': 0.1}}}


def _point(index, **tags):
    base = {'evaluation': 'ev', 'shadow': 'sh', 'host': 'h',
            'profile': 'web', 'metric': 'cpu_ops_per_s'}
    base.update(tags)
    return {'measurement': 'shadow_sample', 'time': 1700000000.0 + index,
            'tags': base, 'fields': {'value': float(index)}}


def _sink(url, **options):
    options.setdefault('flush_interval_s', 0.05)
    options.setdefault('backoff_s', 0.05)
    options.setdefault('close_timeout_s', 5.0)
    options.setdefault('stderr', io.StringIO())
    return collector_module.CollectorSink(url, TOKEN, **options)


def _run(tmp_path, *args, profile=_SHORT_RUN, timeout=60):
    return subprocess.run(
        loadgen_command('run', json.dumps(profile), '--workdir', tmp_path,
                        *args),
        capture_output=True, text=True, timeout=timeout, env=loadgen_env())


def test_run_posts_ndjson_with_the_bearer_token_and_counts_it(
        collector, token_file, tmp_path):
    jsonl = tmp_path / 'samples.jsonl'
    result = _run(tmp_path, '--sink', collector.url, '--sink-token-file',
                  token_file, '--sink', 'file://%s' % jsonl)
    try:
        assert result.returncode == 0, result.stderr
        summary = parse_output(result.stdout)[1]
        stats = next(s for s in summary['sinks']
                     if s['sink'].startswith('collector:'))
        assert collector.requests
        for request in collector.requests:
            assert request['path'] == '/v1/samples'
            assert request['headers']['Content-Type'] == \
                'application/x-ndjson'
            assert request['headers']['Authorization'] == 'Bearer ' + TOKEN
        # The same lines, byte for byte, as the JSON-lines sink wrote.
        posted = b''.join(r['body'] for r in collector.requests)
        assert posted.decode() == jsonl.read_text()
        assert stats['sent'] == len(collector.lines()) > 0
        assert stats['dropped'] == stats['retries'] == 0
        assert TOKEN not in result.stdout + result.stderr
    finally:
        jsonl.unlink()


def test_batches_stay_within_256_kb_and_1000_lines(collector):
    sink = _sink(collector.url, flush_interval_s=60)
    padding = 'x' * 2000
    for index in range(1500):
        sink.emit(_point(index))
    for index in range(300):
        sink.emit(_point(index, shadow=padding))
    sink.close()
    bodies = [r['body'] for r in collector.requests]
    assert all(len(body) <= 256 * 1024 for body in bodies)
    assert all(body.count(b'\n') <= 1000 for body in bodies)
    assert max(body.count(b'\n') for body in bodies) == 1000
    assert max(len(body) for body in bodies) > 200 * 1024
    assert len(collector.lines()) == 1800 == sink.stats()['sent']


def test_5xx_and_429_are_retried_and_retry_after_is_honoured(collector):
    collector.answers = [(503, {}), (500, {}),
                         (429, {'Retry-After': '1'}), (200, {})]
    sink = _sink(collector.url)
    for index in range(10):
        sink.emit(_point(index))
    sink.flush()
    deadline = time.monotonic() + 10
    while len(collector.requests) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    sink.close()
    requests = collector.requests
    assert len(requests) == 4
    assert len({r['body'] for r in requests}) == 1      # the same batch
    assert requests[3]['at'] - requests[2]['at'] >= 0.95
    stats = sink.stats()
    assert stats['sent'] == 10 and stats['retries'] == 3
    assert stats['dropped'] == 0 and stats['errors'] == 3


@pytest.mark.parametrize('retry_after', [
    '0', 'Thu, 01 Jan 1970 00:00:00 GMT'])
def test_a_retry_after_of_no_time_backs_off_and_does_not_hammer(
        collector, retry_after):
    # "0", or a date already past (a proxy's, on a guest whose clock is
    # ahead), made every shadow send the batch about 1,000 times a
    # second for as long as the answer lasted.
    collector.default = (503, {'Retry-After': retry_after})
    sink = _sink(collector.url, max_backoff_s=10.0)
    sink.emit(_point(0))
    sink.flush()
    time.sleep(1.5)
    sink.close()
    # Backoff from 0.05 s doubling: about 6 attempts in 1.5 s.
    assert 2 <= len(collector.requests) <= 12
    assert sink.stats()['sent'] == 0


def test_a_batch_the_collector_fails_on_is_dropped_and_newer_ones_go(
        collector):
    # The collector answered 500 to one batch however often it came: the
    # sink sent it for ever and every sample after it waited behind it
    # (and was dropped from the full buffer), nothing said on stderr.
    poison = sinks.to_json(_point(0)).encode()
    collector.answer_for = lambda body: (500, {}) if poison in body else None
    stderr = io.StringIO()
    sink = _sink(collector.url, max_backoff_s=0.4, stderr=stderr)
    sink.emit(_point(0))
    sink.flush()
    deadline = time.monotonic() + 10
    while not sink.stats()['dropped'] and time.monotonic() < deadline:
        time.sleep(0.02)
    for index in range(1, 21):
        sink.emit(_point(index))
    sink.flush()
    deadline = time.monotonic() + 10
    while sink.stats()['sent'] < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    sink.close()
    failed = [r for r in collector.requests if poison in r['body']]
    assert len(failed) == 5
    stats = sink.stats()
    assert (stats['sent'], stats['dropped']) == (20, 1)
    assert stats['rejected'] == {'server_error': 1}
    assert [p['fields']['value'] for p in collector.lines()
            if p['fields']['value']] == [float(i) for i in range(1, 21)]
    # The next batch still waited its backoff after the last failure.
    following = collector.requests[len(failed)]
    assert following['at'] - failed[-1]['at'] >= 0.15
    said = stderr.getvalue()
    assert said.count('HTTP 500 5 times for one batch') == 1, said


def test_an_unavailable_collector_is_waited_for_and_gets_everything(
        collector):
    # Unreachable, 502/503/504: not the batch's fault; the batch waits.
    collector.answers = [(503, {}), (502, {}), (504, {})] * 3
    stderr = io.StringIO()
    sink = _sink(collector.url, max_backoff_s=0.1, stderr=stderr)
    for index in range(10):
        sink.emit(_point(index))
    sink.flush()
    deadline = time.monotonic() + 10
    while sink.stats()['sent'] < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    sink.close()
    stats = sink.stats()
    assert (stats['sent'], stats['dropped'], stats['errors']) == (10, 0, 9)
    assert len({r['body'] for r in collector.requests}) == 1
    assert stderr.getvalue().count('5 times in a row') == 1


def _answering(size, then=None):
    """A raw HTTP server that answers each request 200 with ``size``
    bytes of body (as much as the client reads of it), or, once
    ``then`` requests were answered so, 200 with an empty body; returns
    (url, the server, close)."""
    server = http_support.RawAnswers(lambda path, body: (
        200, size if then is None or len(server.requests) <= then else 0))
    return server.url('/v1/samples'), server, server.close


def test_a_huge_answer_is_not_read_and_counts_as_a_failed_attempt():
    # A 2xx answer was read whole: 64 MiB from a broken or hostile
    # endpoint were 64 MiB in the guest's memory.
    url, server, stop = _answering(64 * 2 ** 20, then=2)
    stderr = io.StringIO()
    sink = _sink(url, stderr=stderr)
    tracemalloc.start()
    try:
        for index in range(3):
            sink.emit(_point(index))
        sink.flush()
        deadline = time.monotonic() + 20
        while not sink.stats()['sent'] and time.monotonic() < deadline:
            time.sleep(0.02)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        sink.close()
        stop()
    assert peak < 4 * 2 ** 20, peak
    stats = sink.stats()
    assert (stats['sent'], stats['errors'], stats['dropped']) == (3, 2, 0)
    received = [body for _, body in server.requests]
    assert len(set(received)) == 1 and len(received) == 3
    assert stderr.getvalue().count('answer over 65536 bytes') == 1


def test_an_answer_within_the_bound_is_read_as_sent():
    url, _, stop = _answering(64 * 1024)     # the bound itself
    sink = _sink(url)
    try:
        sink.emit(_point(0))
    finally:
        sink.close()
        stop()
    assert sink.stats()['sent'] == 1 and sink.stats()['errors'] == 0


def test_retry_after_as_an_http_date_is_understood():
    date = 'Wed, 21 Oct 2015 07:28:00 GMT'
    now = 1445412480.0 - 2.0        # two seconds before that date
    assert collector_module.retry_after_s(date, now=now) == \
        pytest.approx(2.0)
    assert collector_module.retry_after_s('7') == 7.0
    assert collector_module.retry_after_s('99999') == \
        collector_module.MAX_RETRY_AFTER_S
    assert collector_module.retry_after_s('soon') is None


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_connection_errors_are_retried_until_the_collector_is_up():
    port = _free_port()                     # nothing listens there yet
    sink = _sink('http://127.0.0.1:%d/v1/samples' % port)
    for index in range(5):
        sink.emit(_point(index))
    sink.flush()
    time.sleep(0.5)
    late = RecordingCollector(port=port).start()
    try:
        deadline = time.monotonic() + 10
        while not late.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        sink.close()
        assert len(late.lines()) == 5
        stats = sink.stats()
        assert stats['sent'] == 5 and stats['retries'] >= 1
        assert stats['errors'] >= 1 and stats['dropped'] == 0
    finally:
        late.stop()


@pytest.mark.parametrize('status', [400, 401, 403, 404, 413, 307])
def test_refused_batches_are_dropped_counted_and_said_once(collector,
                                                           status):
    collector.default = (status, {'Location': '/elsewhere'})
    stderr = io.StringIO()
    sink = _sink(collector.url, stderr=stderr)
    for batch in range(3):
        for index in range(4):
            sink.emit(_point(batch * 4 + index))
        sink.flush()
        deadline = time.monotonic() + 5
        while len(collector.requests) <= batch and \
                time.monotonic() < deadline:
            time.sleep(0.02)
    sink.close()
    stats = sink.stats()
    assert len(collector.requests) == 3         # never retried
    assert stats['sent'] == 0 and stats['retries'] == 0
    assert stats['dropped'] == 12
    assert stats['rejected'] == {str(status): 12}
    said = stderr.getvalue()
    assert said.count('HTTP %d' % status) == 1, said
    assert 'dropped 4 samples' in said
    assert TOKEN not in said


def test_410_stops_the_run_cleanly(collector, token_file, tmp_path):
    collector.default = (410, {})
    long_run = dict(_SHORT_RUN, duration_s=60)
    started = time.monotonic()
    result = _run(tmp_path, '--sink', collector.url, '--sink-token-file',
                  token_file, profile=long_run)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 15
    summary = parse_output(result.stdout)[1]
    assert summary['status'] == 'evaluation_finished'
    stats = summary['sinks'][0]
    assert stats['evaluation_finished'] is True
    assert stats['sent'] == 0 and stats['dropped'] >= 1
    assert result.stderr.count('HTTP 410') == 1
    assert len(collector.requests) == 1


def test_a_full_buffer_drops_the_oldest_and_counts_them(collector):
    collector.default = (503, {})
    sink = _sink(collector.url, max_buffer=50, close_timeout_s=0.3)
    for index in range(200):
        sink.emit(_point(index))
    sink.close()
    stats = sink.stats()
    assert stats['sent'] == 0
    assert stats['dropped'] == 200
    assert stats['retries'] >= 1


def test_the_buffer_is_bounded_in_bytes_keeping_the_newest(collector):
    line_bytes = len(sinks.to_json(_point(99))) + 1     # 80..99 alike
    sink = _sink(collector.url, flush_interval_s=60,
                 max_buffer_bytes=20 * line_bytes)
    for index in range(100):
        sink.emit(_point(index))
    sink.close()
    stats = sink.stats()
    assert stats['sent'] == 20 and stats['dropped'] == 80
    assert [p['fields']['value'] for p in collector.lines()] == \
        [float(index) for index in range(80, 100)]


def _self_signed_cert(directory):
    key, cert = directory / 'key.pem', directory / 'cert.pem'
    subprocess.run(
        ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
         'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
         '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
         '-keyout', str(key), '-out', str(cert)],
        check=True, capture_output=True, timeout=30)
    return key, cert


def test_https_collector_is_verified_with_the_given_ca(collector,
                                                       tmp_path_factory):
    import ssl
    directory = tmp_path_factory.mktemp('tls')
    key, cert = _self_signed_cert(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    collector.server.socket = context.wrap_socket(collector.server.socket,
                                                  server_side=True)
    url = 'https://127.0.0.1:%d/v1/samples' % collector.port
    trusted = _sink(url, ca_file=str(cert))
    trusted.emit(_point(1))
    trusted.close()
    assert trusted.stats()['sent'] == 1
    untrusted = _sink(url, close_timeout_s=0.3)     # system CAs only
    untrusted.emit(_point(2))
    untrusted.close()
    assert untrusted.stats()['sent'] == 0
    assert untrusted.stats()['errors'] >= 1
    assert len(collector.lines()) == 1


@pytest.mark.parametrize('url, option', [
    ('http://user:pw@127.0.0.1:9/v1/samples', '--sink'),
    ('http://127.0.0.1:9/v1/samples?token=abc', '--sink'),
])
def test_credentials_in_the_url_are_refused(url, option, token_file,
                                            tmp_path):
    result = _run(tmp_path, '--sink', url, '--sink-token-file', token_file)
    assert result.returncode == 2
    assert option in result.stderr and 'token' in result.stderr


def test_collector_without_a_token_file_exits_2(tmp_path):
    result = _run(tmp_path, '--sink', 'http://127.0.0.1:9/v1/samples')
    assert result.returncode == 2
    assert '--sink-token-file' in result.stderr


def test_a_bad_token_file_is_named_and_never_echoed(tmp_path_factory,
                                                    tmp_path):
    bad = tmp_path_factory.mktemp('bad') / 'token'
    bad.write_text('two words\n')
    result = _run(tmp_path, '--sink', 'http://127.0.0.1:9/v1/samples',
                  '--sink-token-file', bad)
    assert result.returncode == 2
    assert '--sink-token-file' in result.stderr
    assert 'two words' not in result.stderr


def test_collector_urls_are_told_from_influxdb_urls():
    assert sinks.is_collector_url('http://10.0.0.5:8080/v1/samples')
    assert sinks.is_collector_url('https://svc/shadow/v1/samples/')
    assert not sinks.is_collector_url('http://influx:8086/write?db=x')
    assert not sinks.is_collector_url('http://influx:8086?db=x')
    influx = sinks.make_sink('http://influx:8086?db=x')
    influx.close()
    assert isinstance(influx, sinks.InfluxDBSink)


def test_a_closed_stdout_never_stops_the_run_or_loses_the_collector(
        collector, token_file, tmp_path):
    read_end, write_end = os.pipe()
    os.close(read_end)     # whoever read stdout has gone (``| head -1``)
    process = subprocess.Popen(
        loadgen_command('run', 'idle', '--duration', 3, '--warmup', 0,
                        '--interval', 0.5, '--workdir', tmp_path,
                        '--sink', '-', '--sink', collector.url,
                        '--sink-token-file', token_file),
        stdout=write_end, stderr=subprocess.PIPE, env=loadgen_env())
    os.close(write_end)
    stderr = process.communicate(timeout=60)[1].decode()
    assert 'Traceback' not in stderr, stderr
    assert process.returncode == 1      # the summary could not be written
    assert stderr.count('sink stdout: Broken pipe') == 1, stderr
    assert 'cannot write the summary to stdout' in stderr
    # The run went on to its end and the collector got every interval.
    cpu = [line for line in collector.lines()
           if line['tags']['metric'] == 'cpu_util_pct']
    assert len(cpu) >= 4, collector.lines()
    assert os.listdir(tmp_path) == []
