"""Where samples go: JSON lines, the service's collector, the console,
or InfluxDB 1.x line protocol over HTTP.

A point is the contract's dict (``doc/source/contributor/contracts.rst``)::

    {"measurement": "shadow_sample", "time": 1700000000.0,
     "tags": {"evaluation": ..., "shadow": ..., "host": ...,
              "profile": ..., "metric": ...},
     "fields": {"value": 1.0}}

``make_sink(url, token=None)`` picks the sink:

``-`` or ``stdout``
    JSON lines to stdout.
``file:///path`` or a plain path
    JSON lines appended to a file.
``http(s)://host:port/v1/samples`` (a path ending in ``/v1/samples``)
    the shadow service's collector (``loadgen.collector``): batches of
    newline-delimited JSON, the same line the JSON-lines sink writes,
    ``POST``ed with a bearer ``token``.
``console:`` or ``console:/dev/ttyS0``
    one ``nova-shadow-sample <compact JSON>`` line per sample on the
    console (``/dev/console`` by default), for guests with no route to
    the service; falls back to stdout when the console cannot be opened.
any other ``http(s)://host:port[/write]?db=NAME``
    InfluxDB 1.x (:class:`InfluxDBSink`).

The HTTP sinks keep a bounded buffer (``max_buffer`` points; when it is
full the oldest waiting are dropped and counted, never the batch being
sent again, which keeps its place and goes first) and send from a
background thread, so a slow or absent receiver never slows the run;
``close()`` flushes what it can within ``close_timeout_s`` and counts the
rest as dropped. ``stats()`` reports sent/dropped/retries for the run
summary. They read at most 64 KiB of an answer (``wire.read_answer``)
and follow no redirect.
The InfluxDB sink retries a failed batch with exponential backoff, never
retries one InfluxDB refuses as malformed (HTTP 4xx) or sends elsewhere
(3xx): those are counted as rejected and dropped. An InfluxDB that
cannot be reached or says it is away or busy (502, 503, 504, 408, 429)
is waited for as long as the run lasts; one that fails on the batch
(500 or another 5xx) or answers over 64 KiB (no InfluxDB's answer) is
not: a batch answered so five times (``wire.MAX_FAILED_ANSWERS``, the
collector sink's rule, ``wire.FailedAnswers``) is dropped and counted
(``server_error``, ``answer_too_long``). It creates a missing database
(a 404 saying "database not found") and sends the batch again; any
other 404, or one for a database InfluxDB refuses to create, is a 4xx
as any other: rejected. A database still not found after
``MAX_DATABASE_CREATES`` successful ``CREATE DATABASE`` in a row (a
proxy sending writes to another InfluxDB than queries, say) is not
created again: that is said once, and each batch answered so is dropped
and counted (``database_not_found``) until a write succeeds.
What InfluxDB answers is logged only as an escaped, bounded excerpt
(``wire.excerpt``). An error the sending loop does not expect loses the
batch in hand (counted, ``unexpected``), not the run
(``wire.Unexpected``, shared with the collector sink).
"""

import base64
import collections
import errno
import http.client
import json
import logging
import math
import os
import select
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from loadgen import wire
from loadgen.wire import to_json  # noqa: F401  (re-exported)

LOG = logging.getLogger(__name__)


def _escape(text, specials):
    text = str(text)
    if text.endswith('\\'):
        text = text.rstrip('\\') or '_'
    text = text.replace('\r\n', ' ').replace('\n', ' ').replace('\r', ' ')
    for char in specials:
        text = text.replace(char, '\\' + char)
    return text


def escape_measurement(name):
    return _escape(name, ', ')


def escape_tag(text):
    """Escape a tag key or value for line protocol.

    Commas, equals signs and spaces are backslash-escaped; newlines (which
    line protocol cannot carry) become spaces; trailing backslashes (which
    InfluxDB 1.x rejects as an invalid tag) are removed, and a value of
    only backslashes becomes ``_``. Quotes and unicode pass unchanged.
    """
    return _escape(text, ',= ')


_IDENT = str.maketrans({'\\': '\\\\', '"': '\\"', '\n': '\\n'})


def quote_ident(name):
    """An InfluxQL identifier in double quotes: backslashes, quotes and
    newlines escaped, so the name created is the one written to."""
    return '"%s"' % str(name).translate(_IDENT)


def format_float(value):
    text = repr(float(value))
    return text if 'e' not in text and 'inf' not in text else '%.17g' % value


def to_line(point):
    """One line of InfluxDB line protocol (ns precision); None if the
    value is not finite (line protocol cannot hold NaN/inf)."""
    value = point['fields']['value']
    if not math.isfinite(value):
        return None
    tags = ''.join(
        ',%s=%s' % (escape_tag(key), escape_tag(val))
        for key, val in sorted(point['tags'].items()) if str(val) != '')
    return '%s%s value=%s %d' % (escape_measurement(point['measurement']),
                                 tags, format_float(value),
                                 round(point['time'] * 1e6) * 1000)


#: The most of an InfluxDB error answer kept to say what went wrong.
_DETAIL_BYTES = 300
#: ``CREATE DATABASE`` sent, each successful, while writes still answer
#: "database not found", after which it is sent no more and batches so
#: answered are dropped (``database_not_found``) until a write succeeds.
MAX_DATABASE_CREATES = 3
DATABASE_NOT_FOUND = 'database_not_found'


class _Rejected(Exception):
    """InfluxDB refused the batch's content (HTTP 4xx) or sent it
    elsewhere (3xx): do not retry."""


class _NoDatabase(_Rejected):
    """Writes answer "database not found" though the database was
    created ``MAX_DATABASE_CREATES`` times: the batch is dropped."""


class _Failed(OSError):
    """An attempt InfluxDB answered with an error to retry (5xx, 408,
    429, or 404 for a database just created); ``status`` is the
    answer's."""

    def __init__(self, status, detail):
        super().__init__('HTTP %s: %s' % (status, detail))
        self.status = status


def _said(exc):
    """What a failed attempt's log line says of ``exc``: its text as
    one escaped, bounded line (an HTTP error's is already)."""
    if isinstance(exc, (_Failed, _Rejected)):
        return str(exc)
    return wire.excerpt(str(exc) or type(exc).__name__)


def _failed_reason(exc):
    """Why a failed attempt counts against its batch (``wire``'s rule,
    the collector sink's), or None if it does not."""
    if isinstance(exc, wire.AnswerTooLong):
        return wire.ANSWER_TOO_LONG
    return wire.failed_reason(getattr(exc, 'status', None))


def _statement_error(body):
    """The error of a ``/query`` answer's first result (InfluxDB
    answers a statement it refuses, as ``CREATE DATABASE`` of a name it
    cannot hold, with HTTP 200), or None."""
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    results = answer.get('results') if isinstance(answer, dict) else None
    if isinstance(results, list) and results and \
            isinstance(results[0], dict) and results[0].get('error'):
        return str(results[0]['error'])
    return None


class JsonLinesSink:
    """Writes one JSON object per line to a stream or an appended file.

    A stream that fails (a closed pipe, a full disk) is said once on
    stderr and written no more: this and every later sample are dropped
    and counted, and the run and its other sinks go on.
    """

    def __init__(self, stream=None, path=None, stderr=None):
        self.path = path
        self._own = path is not None
        self._stream = open(path, 'a', encoding='utf-8') if path else (
            stream or sys.stdout)
        self._stderr = stderr
        self._failed = False
        self._pending = 0   # written since the last successful flush
        self.written = 0
        self.dropped = 0

    def emit(self, point):
        if not self._failed:
            try:
                self._stream.write(to_json(point) + '\n')
                self._pending += 1
                return
            except (OSError, ValueError) as exc:
                self._fail(exc)
        self.dropped += 1

    def _fail(self, exc):
        # What was written since the last flush may not have gone out.
        self._failed = True
        self.dropped += self._pending
        self._pending = 0
        stream = self._stderr or sys.stderr
        try:
            stream.write('shadow-loadgen: sink %s: %s; its samples are '
                         'dropped from now on\n'
                         % (self.path or 'stdout',
                            getattr(exc, 'strerror', None) or exc))
            stream.flush()
        except (OSError, ValueError):
            pass

    def flush(self):
        if self._failed:
            return
        try:
            self._stream.flush()
        except (OSError, ValueError) as exc:
            self._fail(exc)
            return
        self.written += self._pending
        self._pending = 0

    def close(self):
        self.flush()
        if self._own:
            try:
                self._stream.close()
            except OSError as exc:
                if not self._failed:
                    self._fail(exc)

    def stats(self):
        target = self.path or 'stdout'
        return {'sink': 'jsonl:%s' % target, 'sent': self.written,
                'dropped': self.dropped, 'failed': self._failed}


class InfluxDBSink:
    """Batches points to InfluxDB 1.x ``/write`` over HTTP (urllib)."""

    def __init__(self, url, batch_size=500, max_buffer=20000,
                 flush_interval_s=1.0, retries=5, backoff_s=0.2,
                 timeout_s=5.0, close_timeout_s=10.0, create_db=True):
        parsed = urllib.parse.urlsplit(url)
        try:
            _ = parsed.port
        except ValueError:
            raise ValueError('the InfluxDB URL has a bad port: %r'
                             % urllib.parse.urlunsplit(parsed._replace(
                                 netloc=parsed.netloc.rpartition('@')[2])))
        if parsed.scheme not in ('http', 'https') or not parsed.hostname:
            raise ValueError('the InfluxDB URL must be http(s)://HOST'
                             '[:PORT][/write]?db=NAME')
        query = urllib.parse.parse_qs(parsed.query)
        self.database = (query.get('db') or ['shadow'])[0]
        path = parsed.path.rstrip('/') or ''
        if not path.endswith('/write'):
            path += '/write'
        # The host and port as written (an IPv6 address keeps its
        # brackets), without the user info, which goes in a header.
        self._base = '%s://%s%s' % (parsed.scheme,
                                    parsed.netloc.rpartition('@')[2],
                                    path[:-len('/write')])
        self._write_url = '%s/write?%s' % (self._base, urllib.parse.urlencode(
            {'db': self.database, 'precision': 'ns'}))
        self._headers = {'Content-Type': 'text/plain; charset=utf-8'}
        if parsed.username:
            token = '%s:%s' % (urllib.parse.unquote(parsed.username),
                               urllib.parse.unquote(parsed.password or ''))
            self._headers['Authorization'] = 'Basic ' + base64.b64encode(
                token.encode()).decode()
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.close_timeout_s = close_timeout_s
        self._create_db = create_db
        # CREATE DATABASE sent since the last successful write, and
        # whether giving up on it was said.
        self._creates = 0
        self._said_no_database = False
        self._opener = urllib.request.build_opener(wire.NoRedirect())
        self._buffer = collections.deque()
        # The batch being sent again (outside the buffer, so newer points
        # overflowing it never push it out) and its failed answers.
        self._retrying = []
        self._failed = wire.FailedAnswers()
        self._max_buffer = max_buffer
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._deadline = None
        self.counts = collections.Counter()
        self._unexpected = wire.Unexpected(
            lambda text: LOG.warning('InfluxDB sink: %s', text))
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='loadgen-influx')
        self._thread.start()

    def emit(self, point):
        line = to_line(point)
        with self._lock:
            if line is None:
                self.counts['skipped_nonfinite'] += 1
                return
            if len(self._buffer) >= self._max_buffer:
                self._buffer.popleft()
                self.counts['dropped'] += 1
            self._buffer.append(line)
            full = len(self._buffer) >= self.batch_size
        if full:
            self._wake.set()

    def flush(self):
        self._wake.set()

    def _take_batch(self):
        """The batch being sent again, else the oldest waiting points."""
        with self._lock:
            if self._retrying:
                batch, self._retrying = self._retrying, []
                return batch
            self._failed = wire.FailedAnswers()
            count = min(self.batch_size, len(self._buffer))
            return [self._buffer.popleft() for _ in range(count)]

    def _keep_for_retry(self, batch):
        with self._lock:
            self._retrying = batch

    def _run(self):
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            while True:
                batch = self._take_batch()
                if not batch:
                    break
                sent, wait_s = self._unexpected.send(
                    self._send_with_retry, batch)
                if sent is None:
                    with self._lock:
                        self.counts[wire.UNEXPECTED] += len(batch)
                        self.counts['dropped'] += len(batch)
                    if not self._pause(wait_s):
                        break
                elif not sent:
                    self._keep_for_retry(batch)
                    break
            if self._closing.is_set():
                return

    def _pause(self, wait_s):
        """Wait ``wait_s`` or until the close deadline; False if that
        leaves no time to send."""
        end = time.monotonic() + wait_s
        while not self._out_of_time():
            left = end - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, 0.1))
        return False

    def _out_of_time(self):
        return self._deadline is not None and \
            time.monotonic() >= self._deadline

    def _send_with_retry(self, batch):
        # A lone surrogate (a command-line byte that is not UTF-8) is
        # written as its escape: failing here killed the sender thread.
        body = ('\n'.join(batch) + '\n').encode('utf-8', 'backslashreplace')
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            if attempt:
                self.counts['retries'] += 1
                if self._out_of_time():
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            try:
                self._post(body)
            except _NoDatabase as exc:
                if not self._said_no_database:
                    self._said_no_database = True
                    LOG.warning(
                        'InfluxDB still answers %s after CREATE DATABASE '
                        'succeeded %d times; not creating it again, '
                        'dropping every batch so answered until a write '
                        'succeeds (is the write URL the same InfluxDB as '
                        'its /query?)', exc, MAX_DATABASE_CREATES)
                self.counts[DATABASE_NOT_FOUND] += len(batch)
                self.counts['dropped'] += len(batch)
                return True
            except _Rejected as exc:
                LOG.warning('InfluxDB rejected %d points: %s', len(batch),
                            _said(exc))
                self.counts['rejected'] += len(batch)
                self.counts['dropped'] += len(batch)
                return True
            except (OSError, urllib.error.URLError,
                    http.client.HTTPException) as exc:
                # HTTPException: an answer no HTTP server sends (a bad
                # status line), which the HTTP library raises as is.
                self.counts['errors'] += 1
                reason = _failed_reason(exc)
                if not self._failed.add(reason):
                    LOG.debug('InfluxDB write failed (attempt %d): %s',
                              attempt + 1, _said(exc))
                    continue
                LOG.warning('InfluxDB answered %s %d times for one batch; '
                            'dropped its %d points', _said(exc),
                            self._failed.limit,
                            len(batch))
                self.counts[reason] += len(batch)
                self.counts['dropped'] += len(batch)
                return True
            self._creates = 0
            self._said_no_database = False
            self.counts['sent'] += len(batch)
            self.counts['batches'] += 1
            return True
        return False

    def _post(self, body):
        request = urllib.request.Request(self._write_url, data=body,
                                         headers=self._headers)
        try:
            with self._opener.open(request, timeout=self.timeout_s) as reply:
                wire.read_answer(reply)
        except urllib.error.HTTPError as exc:
            try:
                raw = exc.read(_DETAIL_BYTES)
            finally:
                exc.close()
            detail = wire.excerpt(raw, _DETAIL_BYTES)
            if exc.code == 404 and b'database not found' in raw and \
                    self._create_db:
                if self._creates >= MAX_DATABASE_CREATES:
                    raise _NoDatabase('HTTP 404: %s' % detail) from None
                # Sent again once the database is created.
                self._creates += 1
                self._create_missing_database(detail)
            elif 300 <= exc.code < 500 and exc.code not in wire.RETRY_STATUSES:
                raise _Rejected('HTTP %s: %s' % (exc.code, detail)) \
                    from None
            raise _Failed(exc.code, detail) from None

    def _create_missing_database(self, detail):
        """Create the database a write was answered 404 ``detail`` for;
        :class:`_Rejected` when InfluxDB refuses to (a 3xx or 4xx
        answer, or a 200 whose result holds an error, as "invalid name":
        no write can succeed until someone else creates it)."""
        try:
            refused = self._create_database()
            if refused:
                raise _Rejected('HTTP 404: %s; creating the database: %s'
                                % (detail, wire.excerpt(refused)))
        except urllib.error.HTTPError as exc:
            try:
                refused = wire.excerpt(exc.read(_DETAIL_BYTES),
                                       _DETAIL_BYTES)
            finally:
                exc.close()
            if 300 <= exc.code < 500 and \
                    exc.code not in wire.RETRY_STATUSES:
                raise _Rejected('HTTP 404: %s; creating the database: '
                                'HTTP %s: %s' % (detail, exc.code, refused)) \
                    from None
            raise _Failed(exc.code, refused) from None

    def _create_database(self):
        data = urllib.parse.urlencode(
            {'q': 'CREATE DATABASE %s' % quote_ident(self.database)})
        headers = dict(self._headers)
        headers['Content-Type'] = 'application/x-www-form-urlencoded'
        request = urllib.request.Request(self._base + '/query',
                                         data=data.encode(), headers=headers)
        with self._opener.open(request, timeout=self.timeout_s) as reply:
            body = wire.read_answer(reply)
        return _statement_error(body)

    def close(self):
        """Flush within ``close_timeout_s``; count the rest as dropped."""
        self._deadline = time.monotonic() + self.close_timeout_s
        self._closing.set()
        self._wake.set()
        self._thread.join(self.close_timeout_s + self.timeout_s + 1)
        with self._lock:
            self.counts['dropped'] += len(self._buffer) + len(self._retrying)
            self._buffer.clear()
            self._retrying = []

    def stats(self):
        return {'sink': 'influxdb:%s/%s' % (self._base, self.database),
                'sent': self.counts['sent'],
                'dropped': self.counts['dropped'],
                'retries': self.counts['retries'],
                'errors': self.counts['errors'],
                'rejected': self.counts['rejected'],
                'server_error': self.counts[wire.SERVER_ERROR],
                'answer_too_long': self.counts[wire.ANSWER_TOO_LONG],
                DATABASE_NOT_FOUND: self.counts[DATABASE_NOT_FOUND],
                'skipped_nonfinite': self.counts['skipped_nonfinite'],
                wire.UNEXPECTED: self.counts[wire.UNEXPECTED]}


DEFAULT_CONSOLE = '/dev/console'
CONSOLE_PREFIX = 'nova-shadow-sample '
CONSOLE_WRITE_S = 0.5


class ConsoleSink:
    """One ``nova-shadow-sample <compact JSON>`` line per sample on a
    console, so samples can be read back with Nova's console log.

    The console is opened non-blocking: a line the console cannot take
    right now is dropped and counted (a serial console carries about
    11 kB/s), so a slow console never stalls the run; a line already
    started gets ``CONSOLE_WRITE_S`` to finish. If the console cannot be
    opened, lines go to ``fallback`` (stdout) and that is said once on
    stderr.
    """

    def __init__(self, path=DEFAULT_CONSOLE, fallback=None):
        self.path = path
        self._fd = None
        self._fallback = None
        self.counts = collections.Counter()
        flags = os.O_WRONLY | os.O_APPEND | getattr(os, 'O_NOCTTY', 0) | \
            getattr(os, 'O_NONBLOCK', 0)
        try:
            self._fd = os.open(path, flags)
        except OSError as exc:
            self._fallback = fallback or sys.stdout
            sys.stderr.write('shadow-loadgen: console %s: %s; writing '
                             'console lines to stdout\n'
                             % (path, exc.strerror or exc))

    @staticmethod
    def line(point):
        """The console line of a point (with its newline)."""
        return CONSOLE_PREFIX + json.dumps(
            point, sort_keys=True, separators=(',', ':')) + '\n'

    def emit(self, point):
        text = self.line(point)
        if self._fd is None:
            self._fallback.write(text)
            self.counts['sent'] += 1
            return
        if self._write(text.encode('utf-8')):
            self.counts['sent'] += 1
        else:
            self.counts['dropped'] += 1

    def _write(self, data):
        view = memoryview(data)
        deadline = None
        while view:
            try:
                view = view[os.write(self._fd, view):]
            except BlockingIOError:
                if deadline is None and len(view) == len(data):
                    return False            # nothing written: drop it
                deadline = deadline or time.monotonic() + CONSOLE_WRITE_S
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                select.select([], [self._fd], [], left)
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                return False
        return True

    def flush(self):
        if self._fallback is not None:
            self._fallback.flush()

    def close(self):
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def stats(self):
        target = 'stdout' if self._fallback is not None else self.path
        return {'sink': 'console:%s' % target,
                'sent': self.counts['sent'],
                'dropped': self.counts['dropped']}


COLLECTOR_PATH = '/v1/samples'


def is_collector_url(url):
    """True for an ``http(s)`` URL whose path ends in ``/v1/samples``."""
    parsed = urllib.parse.urlsplit(url)
    return parsed.scheme in ('http', 'https') and \
        parsed.path.rstrip('/').endswith(COLLECTOR_PATH)


def make_sink(url, stream=None, token=None, ca_file=None, **options):
    """Build the sink a URL names (see the module docstring).

    ``token`` and ``ca_file`` are for the collector sink only.
    """
    if url in ('-', 'stdout', 'jsonl:-'):
        return JsonLinesSink(stream=stream)
    if url == 'console:' or url.startswith('console:/'):
        return ConsoleSink(url[len('console:'):] or DEFAULT_CONSOLE,
                           fallback=stream)
    if is_collector_url(url):
        from loadgen import collector
        return collector.CollectorSink(url, token, ca_file=ca_file,
                                       **options)
    if url.startswith(('http://', 'https://')):
        return InfluxDBSink(url, **options)
    if url.startswith('file://'):
        return JsonLinesSink(path=urllib.parse.urlsplit(url).path)
    if url.startswith('jsonl:'):
        return JsonLinesSink(path=url[len('jsonl:'):])
    if '://' in url or url.startswith('console:'):
        raise ValueError('unsupported sink URL %r' % url)
    return JsonLinesSink(path=url)
