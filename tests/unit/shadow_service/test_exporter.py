"""Where ``/metrics`` is served, and what happens when it cannot be."""

import gzip
import logging
import socket
import urllib.request

import pytest

from shadow_service import exporter
from shadow_service import httpbound
from tests import http_support
from tests import service_support
from tests.fixtures import influxdb as influxdb_fixture


def _conf(port, enabled=True):
    return service_support.make_conf(prometheus={
        'enabled': enabled, 'host': '127.0.0.1', 'port': port,
        'watcher_port': port})


def test_disabled_by_default_and_then_nothing_listens():
    conf = service_support.make_conf()
    assert conf.prometheus.enabled is False
    assert exporter.serve(conf, 'service') is None


def test_enabled_it_serves_the_text_format_until_stopped():
    port = influxdb_fixture.free_port()
    served = exporter.serve(_conf(port), 'watcher')
    try:
        with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % port,
                                    timeout=10) as reply:
            text = reply.read().decode()
        assert '# TYPE nova_shadow_evaluations_total counter' in text
        assert '_created' not in text
    finally:
        served.stop()
    # Nothing listens any more (the scrape's connection may linger in
    # TIME_WAIT, which SO_REUSEADDR allows; a listener would not be).
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(('127.0.0.1', port))


def test_a_port_in_use_is_logged_and_the_daemon_runs_on(caplog):
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger=exporter.__name__):
            assert exporter.serve(_conf(port), 'service') is None
    assert 'Cannot serve Prometheus metrics on 127.0.0.1:%d' % port in \
        caplog.text


def test_only_get_metrics_is_served():
    port = influxdb_fixture.free_port()
    served = exporter.serve(_conf(port), 'service')
    try:
        for path, status in (('/metrics', 200), ('/metrics?x=1', 200),
                             ('/', 404), ('/other', 404)):
            got = http_support.exchange(port, (
                'GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
                % path).encode())
            assert got.startswith(b'HTTP/1.1 %d ' % status), (path, got[:80])
        got = http_support.exchange(
            port, b'POST /metrics HTTP/1.1\r\nHost: x\r\n'
                  b'Content-Length: 0\r\n\r\n')
        assert got.startswith(b'HTTP/1.1 405 ') and b'Allow: GET' in got
        with urllib.request.urlopen(urllib.request.Request(
                'http://127.0.0.1:%d/metrics' % port,
                headers={'Accept-Encoding': 'gzip'}), timeout=10) as reply:
            assert reply.headers['Content-Encoding'] == 'gzip'
            assert b'nova_shadow_evaluations_total' in gzip.decompress(
                reply.read())
    finally:
        served.stop()


def test_a_request_target_that_is_no_url_is_a_404():
    # urlsplit raised ValueError ("Invalid IPv6 URL") in the handler: the
    # connection was closed with no answer at all.
    port = influxdb_fixture.free_port()
    served = exporter.serve(_conf(port), 'service')
    try:
        for target in ('http://[::1/metrics', 'http://[/metrics'):
            got = http_support.exchange(port, (
                'GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
                % target).encode())
            assert got.startswith(b'HTTP/1.1 404 '), (target, got[:80])
    finally:
        served.stop()


@pytest.mark.parametrize('accept_encoding', [None, 'gzip', 'gzip;q=0'])
def test_every_answer_says_it_varies_with_the_negotiated_headers(
        accept_encoding):
    # Before: no Vary header, so a cache between the scraper and the
    # exporter could hand a gzipped body to a client that did not ask
    # for one (or OpenMetrics to one that asked for the text format).
    port = influxdb_fixture.free_port()
    served = exporter.serve(_conf(port), 'service')
    headers = {} if accept_encoding is None else {
        'Accept-Encoding': accept_encoding}
    try:
        for method in ('GET', 'HEAD'):
            with urllib.request.urlopen(urllib.request.Request(
                    'http://127.0.0.1:%d/metrics' % port, headers=headers,
                    method=method), timeout=10) as reply:
                varies = {name.strip().lower() for name in
                          reply.headers.get('Vary', '').split(',')}
                assert {'accept', 'accept-encoding'} <= varies, (
                    method, reply.headers.items())
    finally:
        served.stop()


def test_a_request_trickled_a_byte_at_a_time_is_cut_off(monkeypatch):
    # One byte every 0.3 s: every read succeeds within the socket
    # timeout, the request as a whole does not; it held a thread for
    # ever.
    monkeypatch.setattr(httpbound, 'REQUEST_TIMEOUT_S', 1.0)
    port = influxdb_fixture.free_port()
    served = exporter.serve(_conf(port), 'service')
    try:
        closed_after, answer = http_support.trickle(
            port, b'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n')
    finally:
        served.stop()
    assert closed_after < 4.5
    assert not answer.startswith(b'HTTP/1.1 200')


@pytest.mark.parametrize('accept_encoding, compressed', [
    ('gzip', True),
    ('GZIP;Q=0.5', True),
    ('x-gzip', True),
    ('deflate, gzip, br', True),
    ('*', True),
    ('identity;q=0.5, gzip;q=0.8', True),
    ('gzip;q=0', False),
    ('gzip; q=0.000, identity', False),
    ('identity, gzip;q=0', False),
    ('*;q=0', False),
    ('gzip;q=0, *', False),
    ('identity, gzip;q=0.5', False),
    ('notgzip', False),
    ('gzip;q=bad', False),
    ('', False),
], ids=lambda value: repr(value))
def test_gzip_only_when_the_scraper_accepts_it(accept_encoding, compressed):
    # Before, any Accept-Encoding holding the letters "gzip" was answered
    # compressed, "gzip;q=0" (not acceptable) and "notgzip" too.
    port = influxdb_fixture.free_port()
    served = exporter.serve(_conf(port), 'service')
    try:
        with urllib.request.urlopen(urllib.request.Request(
                'http://127.0.0.1:%d/metrics' % port,
                headers={'Accept-Encoding': accept_encoding}),
                timeout=10) as reply:
            body = reply.read()
            encoding = reply.headers['Content-Encoding']
    finally:
        served.stop()
    if compressed:
        assert encoding == 'gzip'
        body = gzip.decompress(body)
    else:
        assert encoding is None
    assert b'nova_shadow_evaluations_total' in body
