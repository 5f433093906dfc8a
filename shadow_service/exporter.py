"""The daemons' Prometheus metrics, and the HTTP server that exports them.

The metrics are counted whether or not they are exported (a counter costs
a lock and an addition); ``[prometheus] enabled`` decides whether
:func:`serve` puts ``/metrics`` on ``[prometheus] host`` and ``port``
(``shadow-service``) or ``watcher_port`` (``shadow-watcher``).

What is counted where:

* the RPC endpoint (:mod:`shadow_service.manager`): evaluations by
  outcome, shadow-host-seconds, evaluation and RPC durations, the time of
  the last call of each method;
* the listener of Nova's notifications
  (:mod:`shadow_service.notifications`): the notifications it recorded,
  requeued and dropped;
* the history store: its own counters (written, retried, dropped,
  buffered), read at each scrape (:func:`watch_history`);
* the watcher loop (:mod:`shadow_service.watcher.loop`): its decision
  records by action, policy and outcome; its runs, failures and
  leadership, read at each scrape (:func:`watch_watcher`).

The weigher's circuit breaker lives in nova-scheduler, which serves no
``/metrics``: it logs each change of state there.  What the service sees
of it is the calls that arrive (``nova_shadow_rpc_last_call_timestamp_
seconds{method="rank_hosts"}`` stops moving while the breaker is open).
"""

import functools
import gzip
import logging
import re
import socket
import threading
import time

import prometheus_client
from prometheus_client import core
from prometheus_client import exposition

from shadow_service import httpbound

LOG = logging.getLogger(__name__)
#: The one path served.
PATH = '/metrics'

REGISTRY = prometheus_client.REGISTRY
# One series per counter, not two: the ``_created`` timestamps add
# nothing the dashboards use.
prometheus_client.disable_created_metrics()

#: Outcomes of an evaluation: how it ended, or why it never started.
OUTCOMES = ('finished', 'cancelled', 'error', 'rejected', 'busy')

EVALUATIONS = prometheus_client.Counter(
    'nova_shadow_evaluations',
    'Evaluations by outcome (finished, cancelled, error; rejected: a bad '
    'request; busy: over the concurrency limit; stopping: asked of a '
    'stopping service) and by what answered '
    '(shadows, history, none).',
    ['outcome', 'source'], registry=REGISTRY)
EVALUATIONS_RUNNING = prometheus_client.Gauge(
    'nova_shadow_evaluations_running', 'Evaluations running now.',
    registry=REGISTRY)
SHADOW_HOST_SECONDS = prometheus_client.Counter(
    'nova_shadow_shadow_host_seconds',
    'Seconds shadows ran, summed over shadows (the cost of measuring).',
    registry=REGISTRY)
EVALUATION_SECONDS = prometheus_client.Histogram(
    'nova_shadow_evaluation_duration_seconds',
    'Wall-clock seconds from the start to the answer of an evaluation.',
    ['source'], buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
    registry=REGISTRY)
RPC_SECONDS = prometheus_client.Histogram(
    'nova_shadow_rpc_duration_seconds',
    'Seconds the service took to answer an RPC call, by method and '
    'result (ok, or the typed error it answered with).',
    ['method', 'result'],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
             60, 120), registry=REGISTRY)
RPC_LAST_CALL = prometheus_client.Gauge(
    'nova_shadow_rpc_last_call_timestamp_seconds',
    'Unix time of the last call of each RPC method.', ['method'],
    registry=REGISTRY)
RECORDS_DROPPED = prometheus_client.Counter(
    'nova_shadow_records_dropped',
    'Records of requests the weigher answered from its cache that the '
    'service dropped: the records waiting for its records thread held '
    'as many records or candidate hosts as they may.',
    registry=REGISTRY)
WEIGHER_RECORDS_DROPPED = prometheus_client.Counter(
    'nova_shadow_weigher_records_dropped',
    'Records of requests answered from its cache that the weigher in '
    'nova-scheduler dropped before sending them: the records waiting '
    'for its records thread held as many records or candidate hosts as '
    'they may.  Each weigher reports its count with its next record.',
    registry=REGISTRY)
NOTIFICATIONS = prometheus_client.Counter(
    'nova_shadow_nova_notifications',
    "Nova's versioned notifications the listener handled, by result: "
    'recorded; requeued (the history store could not record it: the '
    'broker delivers it again); dropped (a payload that cannot be read).',
    ['result'], registry=REGISTRY)
WATCHER_DECISIONS = prometheus_client.Counter(
    'nova_shadow_watcher_decisions',
    'Decision records of the watcher by action, policy and outcome '
    '(dry_run, suppressed, started, done, failed).',
    ['action', 'policy', 'outcome'], registry=REGISTRY)


def evaluation_admitted():
    EVALUATIONS_RUNNING.inc()


def evaluation_released():
    EVALUATIONS_RUNNING.dec()


def record_dropped(count=1):
    RECORDS_DROPPED.inc(count)


def weigher_records_dropped(count):
    """Records a weigher reports it dropped since its last report."""
    WEIGHER_RECORDS_DROPPED.inc(count)


def notification_handled(result):
    """A Nova notification ``recorded``, ``requeued`` or ``dropped``."""
    NOTIFICATIONS.labels(result).inc()


def evaluation_refused(outcome):
    """An evaluation that never started (``rejected``, ``busy`` or
    ``stopping``)."""
    EVALUATIONS.labels(outcome, 'none').inc()


def evaluation_ended(evaluation, wall_s):
    """Count an evaluation that ran (whatever its status)."""
    ranking = evaluation.ranking or {}
    source = ranking.get('source') or 'none'
    status = evaluation.status if evaluation.status in OUTCOMES else 'error'
    EVALUATIONS.labels(status, source).inc()
    EVALUATION_SECONDS.labels(source).observe(wall_s)
    seconds = ranking.get('shadow_host_seconds') or 0.0
    if seconds > 0:
        SHADOW_HOST_SECONDS.inc(seconds)


def timed_rpc(method):
    """Time an RPC endpoint method; the result label is ``ok`` or the
    class name of the error it raised (the typed errors callers see)."""
    name = method.__name__

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        started = time.monotonic()
        result = 'ok'
        try:
            return method(*args, **kwargs)
        except Exception as e:
            result = type(e).__name__
            raise
        finally:
            RPC_SECONDS.labels(name, result).observe(
                time.monotonic() - started)
            RPC_LAST_CALL.labels(name).set(time.time())

    return wrapper


def decision_recorded(record, policy):
    """Count one decision record of the watcher."""
    WATCHER_DECISIONS.labels(str(record.get('action')), str(policy),
                             str(record.get('outcome'))).inc()


class _Watched:
    """Collects, at each scrape, from the objects handed to
    :func:`watch_history` and :func:`watch_watcher`."""

    def __init__(self):
        self.stores = {}
        self.watchers = []
        self.lock = threading.Lock()

    def collect(self):
        with self.lock:
            stores = list(self.stores.items())
            watchers = list(self.watchers)
        if stores:
            points = core.CounterMetricFamily(
                'nova_shadow_history_points',
                'Points of the history store by what became of them '
                '(written, retried, dropped).', labels=['store', 'state'])
            buffered = core.GaugeMetricFamily(
                'nova_shadow_history_points_buffered',
                'Points waiting in the history store\'s write buffer.',
                labels=['store'])
            for name, store in stores:
                try:
                    counters = store.counters()
                except Exception:
                    LOG.exception('Reading the counters of history store '
                                  '%s failed', name)
                    continue
                for state in ('written', 'retried', 'dropped'):
                    points.add_metric([name, state],
                                      float(counters.get(state, 0)))
                buffered.add_metric([name],
                                    float(counters.get('buffered', 0)))
            yield points
            yield buffered
        for watcher in watchers:
            counters = watcher.counters
            runs = core.CounterMetricFamily(
                'nova_shadow_watcher_runs',
                'Runs of the watcher loop (as the leader).')
            runs.add_metric([], float(counters.get('runs', 0)))
            yield runs
            failures = core.CounterMetricFamily(
                'nova_shadow_watcher_vm_failures',
                'Watched VMs whose run failed (see the log).')
            failures.add_metric([], float(counters.get('errors', 0)))
            yield failures
            leading = core.GaugeMetricFamily(
                'nova_shadow_watcher_leader',
                '1 while this watcher acts (the leader, or no leader '
                'election configured), else 0.')
            leader = watcher.leader
            leading.add_metric([], 1.0 if leader is None
                               or getattr(leader, 'leading', False)
                               else 0.0)
            yield leading


_WATCHED = _Watched()
REGISTRY.register(_WATCHED)


def watch_history(store, name):
    """Export ``store``'s counters under ``store=name`` until
    :func:`forget`."""
    with _WATCHED.lock:
        _WATCHED.stores[name] = store


def watch_watcher(watcher):
    """Export the loop's runs, failures and leadership until
    :func:`forget`."""
    with _WATCHED.lock:
        _WATCHED.watchers = [watcher]


def forget():
    """Stop exporting the stores and the watcher handed over."""
    with _WATCHED.lock:
        _WATCHED.stores.clear()
        _WATCHED.watchers = []


def _codings(header):
    """``{coding: weight}`` of an ``Accept-Encoding`` header (RFC 9110
    12.5.3): codings lower-cased, ``x-gzip`` as ``gzip``; an entry whose
    weight is not a qvalue (0 to 1, at most three decimals) is left
    out."""
    found = {}
    for entry in (header or '').split(','):
        coding, *params = [part.strip() for part in entry.split(';')]
        coding = coding.lower()
        if not coding:
            continue
        weight = 1.0
        for param in params:
            name, _sep, value = param.partition('=')
            if name.strip().lower() == 'q':
                value = value.strip()
                weight = (float(value) if re.fullmatch(
                    r'0(\.\d{0,3})?|1(\.0{0,3})?', value) else None)
        if weight is not None:
            found['gzip' if coding == 'x-gzip' else coding] = weight
    return found


def gzip_accepted(header):
    """Whether a response to a request with ``Accept-Encoding: header``
    is gzipped: gzip (by name, else through ``*``) has a weight above 0
    and no lower than identity's, when the header weighs identity
    (``gzip;q=0`` means "not gzip"; ``identity, gzip;q=0.5`` prefers the
    plain text)."""
    codings = _codings(header)
    gzip_weight = codings.get('gzip', codings.get('*', 0.0))
    identity_weight = codings.get('identity', codings.get('*'))
    return gzip_weight > 0 and (identity_weight is None
                                or gzip_weight >= identity_weight)


class _MetricsHandler(httpbound.BoundedHandler):
    """``GET /metrics`` (and HEAD), 404 for any other path, 405 for any
    other method; each request bounded as a whole."""

    server_version = 'nova-shadow-metrics'
    access_log = LOG

    def do_GET(self, head=False):
        self.request_read()
        if self.request_path() != PATH:
            self.send(404, b'Not found: GET %s\n' % PATH.encode(),
                       'text/plain; charset=utf-8', head=head)
            return
        encoder, content_type = exposition.choose_encoder(
            self.headers.get('Accept'))
        body = encoder(REGISTRY)
        # The body depends on both request headers: a cache between
        # scraper and exporter must not hand one client's variant (gzip,
        # OpenMetrics) to another.  Sent with every variant.
        headers = [('Vary', 'Accept, Accept-Encoding')]
        if gzip_accepted(self.headers.get('Accept-Encoding')):
            body = gzip.compress(body)
            headers.append(('Content-Encoding', 'gzip'))
        self.send(200, body, content_type, headers, head=head)

    def do_HEAD(self):
        self.do_GET(head=True)

    def _not_allowed(self):
        self.request_read()
        self.close_connection = True
        self.send(405, b'GET %s only\n' % PATH.encode(),
                   'text/plain; charset=utf-8', [('Allow', 'GET, HEAD')])

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed


class Exporter:
    """``/metrics`` served on ``host:port`` in a thread of its own."""

    def __init__(self, host, port):
        self.host = host
        self.port = port
        self._server = None
        self._thread = None

    def start(self):
        server_class = httpbound.BoundedServer
        if ':' in self.host:
            class server_class(httpbound.BoundedServer):
                address_family = socket.AF_INET6
        self._server = server_class((self.host, self.port), _MetricsHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={'poll_interval': 0.2}, name='prometheus-exporter',
            daemon=True)
        self._thread.start()
        self.port = self._server.server_address[1]
        LOG.info('Serving Prometheus metrics on http://%s:%d%s',
                 self.host, self.port, PATH)
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None


def serve(conf, daemon):
    """Start the exporter of ``daemon`` (``service`` or ``watcher``) if
    ``[prometheus] enabled``; None when disabled or the port cannot be
    bound (logged: the daemon runs on without metrics)."""
    opts = conf.prometheus
    if not opts.enabled:
        return None
    port = opts.port if daemon == 'service' else opts.watcher_port
    try:
        return Exporter(opts.host, port).start()
    except OSError as e:
        LOG.error('Cannot serve Prometheus metrics on %s:%d: %s; running '
                  'without them', opts.host, port, e)
        return None
