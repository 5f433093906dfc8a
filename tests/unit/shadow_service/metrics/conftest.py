"""Helpers for the metrics source tests: private configurations, and a
real HTTP server that answers garbage."""

import http.server
import json
import threading
import time

from oslo_config import cfg

from shadow_service import conf as shadow_conf

#: Quick limits for tests: short timeout, one quick retry.
FAST = {'query_timeout_s': 2.0, 'query_retries': 1,
        'query_retry_backoff_s': 0.05}


def make_conf(config_file=None, **groups):
    """A private ConfigOpts with the service options registered, read from
    ``config_file`` if given, and ``{group: {option: value}}`` set as
    overrides."""
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf(['--config-file', str(config_file)] if config_file else [])
    groups.setdefault('metrics', {})
    for name, value in FAST.items():
        groups['metrics'].setdefault(name, value)
    for group, values in groups.items():
        for name, value in values.items():
            conf.set_override(name, value, group=group)
    return conf


class BadServer(http.server.ThreadingHTTPServer):
    """A real HTTP server on 127.0.0.1 that answers every POST with
    ``respond(handler)`` (see :func:`json_reply`, :func:`trickle`,
    :func:`endless`): the misbehaving backends a metrics source must
    survive.  Use as a context manager; ``requests`` counts the POSTs."""

    daemon_threads = True

    def __init__(self, respond):
        super().__init__(('127.0.0.1', 0), _BadHandler)
        self.respond = respond
        self.requests = 0
        self.url = 'http://127.0.0.1:%d' % self.server_port
        self._thread = threading.Thread(target=self.serve_forever,
                                        args=(0.05,), daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self.shutdown()
        self.server_close()


class _BadHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.server.requests += 1
        self.rfile.read(int(self.headers['Content-Length'] or 0))
        try:
            self.server.respond(self)
        except OSError:
            pass        # the client hung up, as it should

    def log_message(self, *args):
        pass


def json_reply(payload, status=200):
    """Answer ``payload`` (JSON text, or an object to encode) at once."""
    if not isinstance(payload, str):
        payload = json.dumps(payload)
    body = payload.encode()

    def respond(handler):
        handler.send_response(status)
        handler.send_header('Content-Type', 'application/json')
        handler.send_header('Content-Length', str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    return respond


def trickle(payload, every_s):
    """Send the headers at once, then ``payload`` one byte every
    ``every_s`` seconds."""
    body = payload.encode()

    def respond(handler):
        handler.send_response(200)
        handler.send_header('Content-Type', 'application/json')
        handler.send_header('Content-Length', str(len(body)))
        handler.end_headers()
        handler.wfile.flush()
        for position in range(len(body)):
            handler.wfile.write(body[position:position + 1])
            handler.wfile.flush()
            time.sleep(every_s)
    return respond


def endless(head, filler, tail, size, declare_length):
    """Valid JSON of ``size`` bytes or more, ``head`` + ``filler``
    repeated + ``tail``, sent as fast as the client reads; with
    ``declare_length`` its Content-Length is sent, else the end of the
    connection ends it."""
    repeat = max(1, (size - len(head) - len(tail)) // len(filler) + 1)
    total = len(head) + repeat * len(filler) + len(tail)
    block = filler * max(1, 65536 // len(filler))

    def respond(handler):
        handler.send_response(200)
        handler.send_header('Content-Type', 'application/json')
        if declare_length:
            handler.send_header('Content-Length', str(total))
        else:
            handler.send_header('Connection', 'close')
            handler.close_connection = True
        handler.end_headers()
        handler.wfile.write(head)
        left = repeat
        per_block = len(block) // len(filler)
        while left > 0:
            count = min(left, per_block)
            handler.wfile.write(block if count == per_block
                                else filler * count)
            left -= count
        handler.wfile.write(tail)
    return respond


def gives_up_on_a_trickled_reply(make_source, payload, query):
    """A ``payload`` trickled at 0.1 s per byte (every read well within
    the 0.5 s timeout, the whole reply several seconds) makes the source
    from ``make_source(server, **limits)`` give up after its two attempts
    within the deadline: ``query(source)`` raises MetricsUnavailable
    naming the option and the server."""
    import pytest

    from shadow_service.metrics import base

    with BadServer(trickle(payload, 0.1)) as server:
        source = make_source(server, query_timeout_s=0.5, query_retries=1,
                             query_retry_backoff_s=0.05)
        started = time.monotonic()
        with pytest.raises(base.MetricsUnavailable,
                           match=r'did not answer within 0.5s \(\[metrics\] '
                                 r'query_timeout_s\).*gave up after 2 '
                                 r'attempts') as caught:
            query(source)
        elapsed = time.monotonic() - started
        assert server.requests == 2
    assert elapsed < 2.0
    assert server.url in str(caught.value)


def refuses_a_reply_past_the_cap(monkeypatch, make_source, head, tail,
                                 declare_length, query):
    """32 MiB of valid JSON (``head``, filler, ``tail``) against a cap
    lowered to 1 MiB: ``query(source)`` raises MetricsError naming the
    cap after one request, holding at most a few MiB meanwhile."""
    import tracemalloc

    import pytest

    from shadow_service.metrics import base

    monkeypatch.setattr(base, 'MAX_REPLY_BYTES', 1024 * 1024, raising=False)
    respond = endless(head, b'x' * 64, tail, 32 * 1024 * 1024,
                      declare_length)
    with BadServer(respond) as server:
        source = make_source(server)
        tracemalloc.start()
        try:
            with pytest.raises(base.MetricsError,
                               match=r'larger than 1 MiB .*MAX_REPLY_BYTES'
                               ) as caught:
                query(source)
            _size, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert not isinstance(caught.value, base.MetricsUnavailable)
    assert server.requests == 1
    assert peak < 8 * 1024 * 1024


#: A server's error text with terminal escapes, a newline that forges a
#: log line and 2000 characters more.
HOSTILE = '\x1b[2J\x1b]0;owned\x07 down\nWARNING forged ' + 'y' * 2000


def error_text_of(make_source, reply, status, kind):
    """The text of the ``kind`` error a source built by
    ``make_source(server, query_retries=0)`` raises when its server
    answers ``reply`` with ``status``, checked quoted escaped (the
    escape shown, no control character) before it is returned."""
    import pytest

    with BadServer(json_reply(reply, status)) as server:
        source = make_source(server, query_retries=0)
        with pytest.raises(kind) as caught:
            source.host_series('cmp1', 'cpu_util_pct', 0, 60, 10)
    text = str(caught.value)
    assert '\\x1b[2J' in text, text
    assert not set(text) & {'\x1b', '\x07', '\n'}, text
    return text
