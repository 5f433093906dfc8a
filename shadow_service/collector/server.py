"""The collector's HTTP server: ``POST /v1/samples`` and nothing else.

Shadows on a real cloud post their loadgen samples here (loadgen's
collector sink): newline-delimited JSON, one sample per line, with
``Authorization: Bearer <token>``.  In order, a request is answered:

* the HTTP library's own answers to a request it cannot read: 400
  ``malformed_request`` (a bad request line or version), 414
  ``request_line_too_long``, 431 ``headers_too_large`` (a header line
  over 64 KiB, more than 100 headers), 505
  ``http_version_not_supported`` (HTTP/2, or a request line with no
  version: HTTP/0.9), 501 ``unsupported_method`` (any method but those
  below); each, as every answer, with an HTTP/1.1 status line and
  headers (:mod:`shadow_service.httpbound`);
* 404 for any other path, 405 for GET, HEAD, PUT, DELETE and PATCH;
* 400 ``headers_truncated`` for a request whose headers end before their
  blank line (the client hung up, or its ``SOCKET_TIMEOUT_S`` ran out);
* 400 for a request with more than one Content-Length or any
  Transfer-Encoding (framing a proxy in front could read otherwise);
* 411 without ``Content-Length``, 413 when it exceeds
  ``[collector] max_body_bytes`` (nothing is read);
* 401 / 403 / 404 / 410 / 409 for its token
  (:mod:`shadow_service.collector.tokens`);
* 429 with ``Retry-After`` when the token exceeds ``rate_limit``;
* 503 ``busy`` with ``Retry-After`` when too many requests are in flight:
  ``MAX_IN_FLIGHT`` in all, ``MAX_IN_FLIGHT_PER_SHADOW`` of its token's,
  ``MAX_IN_FLIGHT_PER_EVALUATION`` of its evaluation's (loadgen sends the
  batch again); only an authenticated request takes a place, so a
  stranger is answered 401 while the collector is full;
* 400 when no line is a valid sample (or there is none), 200 otherwise,
  with
  ``{"accepted": n, "rejected": m, "reasons": {...}}``;
* 503 with ``Retry-After`` when the history store refuses the write
  (loadgen sends the batch again).

Before any of that, a connection past ``MAX_CONNECTIONS`` at once, or
``MAX_CONNECTIONS_PER_ADDRESS`` from one client address
(:mod:`shadow_service.httpbound`), is closed as it is accepted (loadgen
sends the batch again).

Nothing a client sends can raise out of a request thread.  A refused
request (the library's refusals too) is counted, and logged (status,
reason, client, shadow; never the body) when it is the first of its kind
(status, reason and shadow) in
``REFUSAL_LOG_INTERVAL_S``: the next such line says how many went
unlogged, so a client sending requests as fast as it can writes one line
a minute, not one per request.
A request has ``SOCKET_TIMEOUT_S`` as a whole, from the wait for its
first byte until its body is read (a client that trickles it is cut off:
400 ``truncated`` for a body); a client that hangs up gets no answer and
no log line beyond its request's.
:meth:`Collector.counters` reports what was accepted and refused.
The server is stdlib ``ThreadingHTTPServer``, optionally behind TLS
(``tls_cert_file`` / ``tls_key_file``).
"""

import collections
import json
import logging
import math
import re
import ssl
import threading
import time
import urllib.parse

from shadow_service import httpbound
from shadow_service.collector import tokens

LOG = logging.getLogger(__name__)

PATH = '/v1/samples'
#: Requests whose body is read (and written) at the same time; more get
#: 503.
MAX_IN_FLIGHT = 64
#: Of those, the most one shadow's token may hold, and the most the
#: shadows of one evaluation may hold together: a guest that sends its
#: bodies slowly keeps other shadows, and other evaluations, waiting no
#: longer than its own share.
MAX_IN_FLIGHT_PER_SHADOW = 2
MAX_IN_FLIGHT_PER_EVALUATION = 16
#: Seconds a client may take to send its request (request line, headers
#: and body together: a client that trickles it is cut off too).
SOCKET_TIMEOUT_S = 10.0
#: Seconds between two log lines of one kind of refused request (status,
#: reason and shadow); the count of those between goes in the next.
REFUSAL_LOG_INTERVAL_S = 60
#: Kinds of refusal remembered for that (then forgotten all at once).
MAX_REFUSAL_KINDS = 10000
#: A Content-Length the collector reads: digits only, short.
_LENGTH = re.compile(r'[0-9]{1,15}\Z')
WILDCARDS = ('0.0.0.0', '::', '')
#: The reasons counted for the answers the HTTP library gives itself.
LIBRARY_REFUSALS = {
    400: 'malformed_request',
    414: 'request_line_too_long',
    431: 'headers_too_large',
    501: 'unsupported_method',
    505: 'http_version_not_supported',
}
MAX_CONNECTIONS = httpbound.MAX_CONNECTIONS
MAX_CONNECTIONS_PER_ADDRESS = httpbound.MAX_CONNECTIONS_PER_ADDRESS


class CollectorError(Exception):
    """The collector cannot start as configured."""


class _TokenBuckets:
    """``rate`` requests per second per token, ``burst`` at once."""

    MAX_BUCKETS = 100000

    def __init__(self, rate, burst, clock=time.monotonic):
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets = {}

    def take(self, key):
        """0 if a request may go now, else the seconds to wait."""
        now = self._clock()
        with self._lock:
            if len(self._buckets) > self.MAX_BUCKETS:
                self._buckets.clear()
            level, at = self._buckets.get(key, (self.burst, now))
            level = min(self.burst, level + (now - at) * self.rate)
            if level >= 1.0:
                self._buckets[key] = (level - 1.0, now)
                return 0.0
            self._buckets[key] = (level, now)
            return (1.0 - level) / self.rate


class _Handler(httpbound.BoundedHandler):
    server_version = 'nova-shadow-collector'
    access_log = LOG

    def request_timeout(self):
        return SOCKET_TIMEOUT_S

    def _reply(self, status, body, headers=()):
        self.send(status,
                  (json.dumps(body, sort_keys=True) + '\n').encode('utf-8'),
                  'application/json', headers)

    def _refuse(self, status, reason, message, headers=(), grant=None):
        self.server.collector._count_status(status, reason)
        self.server.collector.log_refusal(self.client_address[0], status,
                                          reason, grant)
        self.close_connection = True
        self._reply(status, {'error': reason, 'message': message},
                    headers)

    def headers_cut_off(self):
        self._refuse(400, 'headers_truncated', 'the request ended before '
                     'its headers did')

    def send_error(self, code, message=None, explain=None):
        # Only the HTTP library answers through here (the collector's own
        # refusals go through _refuse): count and log them alike.
        reason = LIBRARY_REFUSALS.get(code, 'malformed_request')
        self.server.collector._count_status(code, reason)
        self.server.collector.log_refusal(self.client_address[0], code,
                                          reason)
        super().send_error(code, message, explain)

    def do_POST(self):
        collector = self.server.collector
        try:
            self._post(collector)
        except Exception:
            LOG.exception('Collector failed on a request from %s',
                          self.client_address[0])
            try:
                self._refuse(500, 'internal', 'internal error')
            except Exception:
                pass

    def _post(self, collector):
        if self.request_path() != PATH:
            self._refuse(404, 'no_such_path', 'POST %s only' % PATH)
            return
        if self.headers.get('Transfer-Encoding') is not None or len(
                self.headers.get_all('Content-Length') or ()) > 1:
            # Framing a proxy in front could read otherwise: refused.
            self._refuse(400, 'ambiguous_length', 'one Content-Length and '
                         'no Transfer-Encoding')
            return
        length = self.headers.get('Content-Length')
        if length is None or not _LENGTH.match(length.strip()):
            self._refuse(411, 'length_required',
                         'a Content-Length header of digits is required')
            return
        length = int(length)
        if length > collector.max_body_bytes:
            self._refuse(413, 'too_large', 'at most %d bytes per request'
                         % collector.max_body_bytes)
            return
        auth = self.headers.get('Authorization') or ''
        scheme, _, token = auth.partition(' ')
        try:
            if scheme.lower() != 'bearer':
                raise tokens.Rejection(401, 'unauthenticated',
                                       'Authorization: Bearer <token>')
            grant = collector.grants.check(token.strip())
        except tokens.Rejection as e:
            self._refuse(e.status, e.reason, str(e))
            return
        wait_s = collector.buckets.take(tokens.token_hash(token.strip()))
        if wait_s:
            self._refuse(429, 'rate_limited', 'slow down',
                         [('Retry-After', str(max(1, math.ceil(wait_s))))],
                         grant)
            return
        full = collector.enter(grant)
        if full is not None:
            self._refuse(503, 'busy', full, [('Retry-After', '1')], grant)
            return
        try:
            self._read_and_store(collector, grant, length)
        finally:
            collector.leave(grant)

    def _read_and_store(self, collector, grant, length):
        try:
            body = self.rfile.read(length)
        except (TimeoutError, OSError):
            body = b''
        self.request_read()
        if len(body) != length:
            self._refuse(400, 'truncated', 'the body ended early or too '
                         'late', (), grant)
            return
        try:
            accepted, rejected = collector.intake.accept_body(
                grant, body, collector.clock())
        except Exception:
            LOG.exception('Collector could not write samples of shadow %s',
                          grant.shadow_id)
            self._refuse(503, 'store_unavailable',
                         'the history store is unavailable',
                         [('Retry-After', '5')], grant)
            return
        grant.last_seen = collector.clock()
        result = {'accepted': accepted, 'rejected': sum(rejected.values()),
                  'reasons': dict(rejected)}
        if not accepted:
            collector._count_status(400, 'no_valid_sample')
            collector.log_refusal(self.client_address[0], 400,
                                  'no_valid_sample', grant)
            self._reply(400, dict(result, error='no_valid_sample'))
            return
        collector._count_status(200, 'ok')
        self._reply(200, result)

    def _not_allowed(self):
        self.server.collector._count_status(405, 'method_not_allowed')
        self.close_connection = True
        self._reply(405, {'error': 'method_not_allowed',
                          'message': 'POST %s only' % PATH},
                    [('Allow', 'POST')])

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = _not_allowed


class _Server(httpbound.BoundedServer):
    pass


class Collector:
    """The running collector.

    Parameters
    ----------
    opts : the ``[collector]`` group of a ConfigOpts (``conf.collector``)
    intake : shadow_service.collector.ingest.Intake
        Validates and writes what arrives (shared with the console
        reader).
    grants : shadow_service.collector.tokens.Grants
        The tokens the cloud driver issued.
    clock : callable
        Wall-clock time of arrival (``time.time``).
    """

    def __init__(self, opts, intake, grants, clock=time.time):
        self.opts = opts
        self.grants = grants
        self.clock = clock
        self.max_body_bytes = opts.max_body_bytes
        self.intake = intake
        self.buckets = _TokenBuckets(opts.rate_limit, opts.rate_burst)
        self._statuses = collections.Counter()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._by_shadow = collections.Counter()
        self._by_evaluation = collections.Counter()
        self._refusals_logged = {}
        self._refused_connections = 0
        self._server = None
        self._thread = None
        self.tls = bool(opts.tls_cert_file or opts.tls_key_file)
        if self.tls and not (opts.tls_cert_file and opts.tls_key_file):
            raise CollectorError('[collector] tls_cert_file and '
                                 'tls_key_file go together')

    # -- lifecycle -------------------------------------------------------
    def start(self):
        opts = self.opts
        if not opts.advertised_url and opts.host in WILDCARDS:
            raise CollectorError(
                '[collector] advertised_url is required when host is %r: '
                'guests need an address they can reach' % (opts.host,))
        if (self.tls and opts.advertised_url and urllib.parse.urlsplit(
                opts.advertised_url).scheme.lower() != 'https'):
            raise CollectorError(
                '[collector] advertised_url must be https:// when '
                'tls_cert_file is set: the collector speaks only TLS')
        try:
            server = _Server((opts.host, opts.port), _Handler)
        except OSError as e:
            raise CollectorError('[collector] cannot listen on %s:%s: %s'
                                 % (opts.host, opts.port, e)) from None
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                context.load_cert_chain(opts.tls_cert_file,
                                        opts.tls_key_file)
            except (OSError, ssl.SSLError) as e:
                server.server_close()
                raise CollectorError('[collector] tls_cert_file / '
                                     'tls_key_file: %s' % e) from None
            # The handshake runs in the request's thread, not in accept.
            server.socket = context.wrap_socket(
                server.socket, server_side=True,
                do_handshake_on_connect=False)
        server.collector = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={'poll_interval': 0.2},
            name='sample-collector', daemon=True)
        self._thread.start()
        LOG.info('Sample collector listening on %s, guests post to %s',
                 self.bound_url, self.advertised_url)
        return self

    def stop(self):
        if self._server is not None:
            self._refused_connections += self._server.refused_connections
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    # -- where it is -----------------------------------------------------
    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def bound_url(self):
        host = self._server.server_address[0]
        if ':' in host:
            host = '[%s]' % host
        return '%s://%s:%d%s' % ('https' if self.tls else 'http', host,
                                 self.port, PATH)

    @property
    def advertised_url(self):
        """The URL guests use (``advertised_url``, else the bound one,
        which :meth:`start` allows only for a specific address)."""
        return self.opts.advertised_url or self.bound_url

    # -- bookkeeping -----------------------------------------------------
    def enter(self, grant):
        """Take a place for a request of ``grant``'s shadow; None, or
        why there is none."""
        shadow = id(grant)     # one grant per token, held while valid
        with self._lock:
            if self._in_flight >= MAX_IN_FLIGHT:
                return 'too many requests in flight'
            if self._by_shadow[shadow] >= MAX_IN_FLIGHT_PER_SHADOW:
                return 'too many requests of this shadow in flight'
            if (self._by_evaluation[grant.evaluation_id]
                    >= MAX_IN_FLIGHT_PER_EVALUATION):
                return 'too many requests of this evaluation in flight'
            self._in_flight += 1
            self._by_shadow[shadow] += 1
            self._by_evaluation[grant.evaluation_id] += 1
            return None

    def leave(self, grant):
        shadow = id(grant)
        with self._lock:
            self._in_flight -= 1
            for counts, key in ((self._by_shadow, shadow),
                                (self._by_evaluation, grant.evaluation_id)):
                counts[key] -= 1
                if counts[key] <= 0:
                    del counts[key]

    def _count_status(self, status, reason):
        with self._lock:
            self._statuses['%d %s' % (status, reason)] += 1

    def log_refusal(self, client, status, reason, grant=None):
        """Log a refused request: the first of its kind (status, reason
        and shadow) in ``REFUSAL_LOG_INTERVAL_S``, with how many like it
        went unlogged since; :meth:`counters` counts them all."""
        key = (status, reason, None if grant is None else id(grant))
        now = time.monotonic()
        with self._lock:
            logged_at, unlogged = self._refusals_logged.get(
                key, (float('-inf'), 0))
            if now - logged_at < REFUSAL_LOG_INTERVAL_S:
                self._refusals_logged[key] = (logged_at, unlogged + 1)
                return
            if len(self._refusals_logged) >= MAX_REFUSAL_KINDS:
                self._refusals_logged.clear()
            self._refusals_logged[key] = (now, 0)
        LOG.warning('Collector refused a request from %s: %d %s%s%s',
                    client, status, reason,
                    '' if grant is None else ' (shadow %s, evaluation %s)'
                    % (grant.shadow_id, grant.evaluation_id),
                    ' (and %d more like it since its last line)'
                    % unlogged if unlogged else '')

    def counters(self):
        """Samples accepted and rejected (by reason), requests by answer
        and connections closed unserved."""
        with self._lock:
            statuses = dict(self._statuses)
        counts = dict(self.intake.counts)
        refused = self._refused_connections + (
            0 if self._server is None
            else self._server.refused_connections)
        return {'samples': counts, 'requests': statuses,
                'connections': {'refused': refused}}
