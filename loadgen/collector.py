"""The client side of the shadow service's sample collector.

``CollectorSink(url, token)`` sends samples to ``http(s)://HOST:PORT/
v1/samples`` as newline-delimited JSON: one line per sample, the same
JSON object the JSON-lines sink writes (``loadgen.wire.to_json``), in
``POST`` requests with ``Content-Type: application/x-ndjson`` and
``Authorization: Bearer <token>``. The token comes from a file
(``--sink-token-file``), never from the command line or the URL.

Batches hold at most ``MAX_BATCH_BYTES`` (256 kB) and ``MAX_BATCH_LINES``
(1,000 lines); a background thread sends them, so the run never waits
for the network. What the collector's answer means:

* 2xx: sent. At most ``wire.MAX_ANSWER_BYTES`` (64 KiB) of its body
  are read; a longer one is no collector's (whose answers are a few
  hundred bytes) and counts as a failed attempt, as a broken connection
  does, but a batch answered so ``max_server_errors`` (5) times is
  dropped and counted (``rejected['answer_too_long']``).
* connection errors, timeouts, 408, 429 and 5xx: the same batch is sent
  again after a capped exponential backoff with jitter (``backoff_s``
  doubling with each failure in a row, of this batch or the ones before
  it, up to ``max_backoff_s``), or after ``Retry-After`` when the
  answer has one (at most ``MAX_RETRY_AFTER_S``; one shorter than
  ``backoff_s``, as ``0`` or a date this guest's clock has passed, is
  taken as none, so no answer makes the sink send in a tight loop).
  Meanwhile new samples
  wait in a buffer of ``max_buffer`` lines and ``max_buffer_bytes``
  (16 MiB); when it is full the oldest of them are dropped and counted,
  never the batch being sent again, which keeps its place and goes
  first. A collector that cannot be reached, or says
  it is unavailable or busy (502, 503, 504, 408, 429), is waited for as
  long as the run lasts. Any other 5xx (the collector failed on this
  request, 500) is not: after ``max_server_errors`` (5) such answers the
  batch is dropped and counted (``rejected['server_error']``), so a batch
  the collector cannot take does not keep every newer one waiting.
  Either trouble is said once on stderr.
* 410 Gone: the evaluation is finished. Everything buffered is dropped,
  nothing more is sent, and ``on_finished('evaluation_finished')`` is
  called (the runner stops the run cleanly).
* any other answer (400, 401, 403, 404, 413, other 4xx, a redirect): the
  batch is dropped and counted; each status is reported once on stderr.

What the collector answers is said only as an escaped, bounded
excerpt (``wire.excerpt``). A single line larger than a batch is dropped
and counted. ``close()``
sends what it can within ``close_timeout_s``; the rest is dropped and
counted. ``stats()`` gives sent, retries, dropped, batches, errors (failed
attempts) and rejected (lines dropped per HTTP status).
"""

import collections
import email.utils
import http.client
import logging
import random
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from loadgen import wire

LOG = logging.getLogger(__name__)

MAX_BATCH_BYTES = 256 * 1024
MAX_BATCH_LINES = 1000
MAX_RETRY_AFTER_S = 300.0
#: Answers that say the collector is unavailable (or a proxy's way to say
#: so): the batch waits for it, however long.
UNAVAILABLE_STATUSES = wire.UNAVAILABLE_STATUSES
#: 5xx answers of another kind, or 2xx answers too long to be the
#: collector's, after which a batch is dropped.
MAX_SERVER_ERRORS = wire.MAX_FAILED_ANSWERS
CONTENT_TYPE = 'application/x-ndjson'
RETRY_STATUSES = wire.RETRY_STATUSES
GONE = 410
FINISHED = 'evaluation_finished'


def check_url(url):
    """Raise ValueError unless ``url`` is a usable collector URL."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ('http', 'https') or not parsed.hostname:
        raise ValueError('the collector URL must be http(s)://HOST[:PORT]'
                         '/v1/samples, got %r' % url)
    if parsed.username is not None or parsed.password is not None:
        raise ValueError('the collector URL may not carry credentials; '
                         'put the token in --sink-token-file')
    if parsed.query or parsed.fragment:
        raise ValueError('the collector URL takes no query or fragment '
                         '(the token goes in --sink-token-file)')
    try:
        _ = parsed.port
    except ValueError:
        raise ValueError('the collector URL has a bad port: %r' % url) \
            from None


def check_token(token):
    """Raise ValueError unless ``token`` can go in an HTTP header: one
    run of printable ASCII, no spaces (the token is never quoted)."""
    if not isinstance(token, str) or not token or \
            any(not 33 <= ord(char) <= 126 for char in token):
        raise ValueError('the collector token must be printable ASCII '
                         'with no spaces')


def retry_after_s(value, now=None):
    """Seconds a ``Retry-After`` header asks to wait (capped), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        # ASCII digits only: str.isdigit() also takes "²", which float()
        # does not.
        if not value.isascii():
            return None
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when is None or when.tzinfo is None:
            return None
        wait = when.timestamp() - (time.time() if now is None else now)
    except (TypeError, ValueError, IndexError, OverflowError):
        # OverflowError: a year, hour or zone no datetime holds.
        return None
    return min(max(0.0, wait), MAX_RETRY_AFTER_S)


class _Answer:
    """What one attempt achieved.

    ``failed`` names an answer that says this request failed (not that
    the collector is away): the ``rejected`` reason its batch is dropped
    for after ``max_server_errors`` such answers.
    """

    SENT, RETRY, DROP, GONE = 'sent', 'retry', 'drop', 'gone'

    def __init__(self, kind, status=None, wait_s=None, detail='',
                 failed=None):
        self.kind = kind
        self.status = status
        self.wait_s = wait_s
        self.detail = detail
        self.failed = failed


class CollectorSink:
    """Batches samples to the collector over HTTP(S) (see module doc)."""

    def __init__(self, url, token, ca_file=None, max_buffer=20000,
                 max_buffer_bytes=16 * 2 ** 20,
                 flush_interval_s=1.0, timeout_s=10.0, backoff_s=0.5,
                 max_backoff_s=30.0, close_timeout_s=10.0,
                 max_batch_bytes=MAX_BATCH_BYTES,
                 max_batch_lines=MAX_BATCH_LINES, on_finished=None,
                 stderr=None, max_server_errors=MAX_SERVER_ERRORS):
        check_url(url)
        check_token(token)
        self.url = url
        self._headers = {'Content-Type': CONTENT_TYPE,
                         'Authorization': 'Bearer %s' % token}
        handlers = [wire.NoRedirect()]
        if url.startswith('https:'):
            import ssl
            context = ssl.create_default_context(cafile=ca_file)
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)
        self.flush_interval_s = flush_interval_s
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_server_errors = max_server_errors
        self._failures = 0      # failed attempts in a row, any batch
        self.close_timeout_s = close_timeout_s
        self.max_batch_bytes = max_batch_bytes
        self.max_batch_lines = max_batch_lines
        self.on_finished = on_finished
        self._stderr = stderr
        self._max_buffer = max_buffer
        self._max_buffer_bytes = max_buffer_bytes
        self._buffered_bytes = 0
        self._buffer = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._gone = False
        self._deadline = None
        self._said = set()
        self.counts = collections.Counter()
        self.rejected = collections.Counter()
        self._unexpected = wire.Unexpected(
            lambda text: self._say(wire.UNEXPECTED, text))
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='loadgen-collector')
        self._thread.start()

    # -- the run's side ---------------------------------------------------
    def emit(self, point):
        line = (wire.to_json(point) + '\n').encode('utf-8')
        with self._lock:
            if self._gone:
                self.counts['dropped'] += 1
                return
            if len(line) > self.max_batch_bytes:
                self.counts['dropped'] += 1
                self.rejected['oversize'] += 1
                oversize = True
            else:
                oversize = False
                while self._buffer and (
                        len(self._buffer) >= self._max_buffer or
                        self._buffered_bytes + len(line) >
                        self._max_buffer_bytes):
                    self._buffered_bytes -= len(self._buffer.popleft())
                    self.counts['dropped'] += 1
                self._buffer.append(line)
                self._buffered_bytes += len(line)
                full = len(self._buffer) >= self.max_batch_lines
        if oversize:
            self._say('oversize', 'a sample of %d bytes is larger than a '
                      'batch (%d bytes); dropped' % (len(line),
                                                     self.max_batch_bytes))
        elif full:
            self._wake.set()

    def flush(self):
        self._wake.set()

    def close(self):
        """Send what can be sent within ``close_timeout_s``."""
        self._deadline = time.monotonic() + self.close_timeout_s
        self._closing.set()
        self._wake.set()
        self._thread.join(self.close_timeout_s + self.timeout_s + 1)
        with self._lock:
            self.counts['dropped'] += len(self._buffer)
            self._buffer.clear()
            self._buffered_bytes = 0

    def stats(self):
        return {'sink': 'collector:%s' % self.url,
                'sent': self.counts['sent'],
                'retries': self.counts['retries'],
                'dropped': self.counts['dropped'],
                'batches': self.counts['batches'],
                'errors': self.counts['errors'],
                'rejected': dict(self.rejected),
                'evaluation_finished': self._gone}

    # -- the sending thread ---------------------------------------------
    def _say(self, key, text):
        """Tell the operator once per kind of trouble."""
        if key in self._said:
            return
        self._said.add(key)
        stream = self._stderr or sys.stderr
        try:
            stream.write('shadow-loadgen: collector %s: %s\n'
                         % (self.url, text))
            stream.flush()
        except (OSError, ValueError):
            pass

    def _take_batch(self):
        with self._lock:
            batch, size = [], 0
            while self._buffer and len(batch) < self.max_batch_lines and \
                    size + len(self._buffer[0]) <= self.max_batch_bytes:
                line = self._buffer.popleft()
                batch.append(line)
                size += len(line)
            self._buffered_bytes -= size
            return batch

    def _give_back(self, batch):
        """Put an unsent batch back in front; the oldest of it goes if
        newer samples have filled the buffer meanwhile."""
        with self._lock:
            room = self._max_buffer - len(self._buffer)
            room_bytes = self._max_buffer_bytes - self._buffered_bytes
            keep = []
            for line in reversed(batch):
                if len(keep) >= room or len(line) > room_bytes:
                    break
                keep.append(line)
                room_bytes -= len(line)
            self.counts['dropped'] += len(batch) - len(keep)
            self._buffer.extendleft(keep)
            self._buffered_bytes += sum(len(line) for line in keep)

    def _run(self):
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            while not self._gone:
                batch = self._take_batch()
                if not batch:
                    break
                sent, wait_s = self._unexpected.send(self._deliver, batch)
                if sent is None:
                    with self._lock:
                        self.counts['dropped'] += len(batch)
                        self.rejected[wire.UNEXPECTED] += len(batch)
                    if self._out_of_time(wait_s):
                        break
                    self._sleep(wait_s)
                elif not sent:
                    self._give_back(batch)
                    break
            if self._closing.is_set() or self._gone:
                return

    def _out_of_time(self, wait_s=0.0):
        return self._deadline is not None and \
            time.monotonic() + wait_s >= self._deadline

    def _deliver(self, batch):
        """Send ``batch`` until it is sent or dropped (True), or until
        the close deadline leaves no time (False: give it back)."""
        body = b''.join(batch)
        failed = wire.FailedAnswers(self.max_server_errors)
        while True:
            answer = self._post(body)
            if answer.kind != _Answer.RETRY:
                self._failures = 0
            if answer.kind == _Answer.SENT:
                self.counts['sent'] += len(batch)
                self.counts['batches'] += 1
                return True
            if answer.kind == _Answer.GONE:
                self._finished(len(batch))
                return True
            if answer.kind == _Answer.DROP:
                self.counts['dropped'] += len(batch)
                self.rejected[str(answer.status)] += len(batch)
                self._say(str(answer.status), '%s; dropped %d samples (and '
                          'will drop any later batch refused the same way)'
                          % (answer.detail, len(batch)))
                return True
            self.counts['errors'] += 1
            self._failures += 1
            wait_s = answer.wait_s
            if wait_s is None or wait_s < self.backoff_s:
                # No Retry-After, or one of no time ("0", a date past on
                # this guest's clock): back off, never send at once.
                ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** min(
                    self._failures - 1, 30))
                wait_s = random.uniform(ceiling / 2, ceiling)
            LOG.debug('collector attempt failed (%s); retrying in %.2f s',
                      answer.detail, wait_s)
            if failed.add(answer.failed):
                self._give_up(batch, answer)
                # The next batch waits too: no answer makes it send at
                # once.
                self._sleep(wait_s)
                return True
            if self._failures == self.max_server_errors:
                self._say('failing', '%s, %d times in a row; sending again '
                          'with backoff, new samples wait in the buffer'
                          % (answer.detail, self._failures))
            if self._out_of_time(wait_s):
                return False
            self._sleep(wait_s)
            self.counts['retries'] += 1

    def _give_up(self, batch, answer):
        self.counts['dropped'] += len(batch)
        self.rejected[answer.failed] += len(batch)
        self._say(answer.failed, '%s %d times for one batch; dropped its '
                  '%d samples and going on with newer ones (and will drop '
                  'any later batch failing so)'
                  % (answer.detail, self.max_server_errors, len(batch)))

    def _sleep(self, wait_s):
        """Sleep, waking early only to notice the close deadline (once
        ``close()`` has set the closing event, waiting on it returns at
        once: then sleep in short steps, never spin)."""
        end = time.monotonic() + wait_s
        while True:
            left = end - time.monotonic()
            if left <= 0 or self._out_of_time():
                return
            if self._closing.is_set():
                time.sleep(min(left, 0.1))
            else:
                self._closing.wait(min(left, 0.5))

    def _finished(self, count):
        with self._lock:
            self._gone = True
            dropped = count + len(self._buffer)
            self._buffer.clear()
            self._buffered_bytes = 0
            self.counts['dropped'] += dropped
            self.rejected[str(GONE)] += dropped
        self._say(str(GONE), 'HTTP 410: the evaluation is finished; '
                  'stopping the run')
        if self.on_finished is not None:
            self.on_finished(FINISHED)

    def _post(self, body):
        request = urllib.request.Request(self.url, data=body,
                                         headers=self._headers,
                                         method='POST')
        try:
            with self._opener.open(request, timeout=self.timeout_s) as reply:
                wire.read_answer(reply)
        except wire.AnswerTooLong as exc:
            # Not the collector's answer: as if the connection broke.
            self._say('answer_size', '%s; sending again' % exc)
            return _Answer(_Answer.RETRY, detail=str(exc),
                           failed=wire.ANSWER_TOO_LONG)
        except urllib.error.HTTPError as exc:
            status = exc.code
            wait_s = retry_after_s(exc.headers.get('Retry-After')) \
                if exc.headers else None
            exc.close()
            detail = 'HTTP %d' % status
            if status == GONE:
                return _Answer(_Answer.GONE, status)
            if status in RETRY_STATUSES or status >= 500:
                return _Answer(_Answer.RETRY, status, wait_s, detail,
                               failed=wire.failed_reason(status))
            return _Answer(_Answer.DROP, status, detail=detail)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # The text may hold what answered (a bad status line): said
            # only escaped and bounded.
            return _Answer(_Answer.RETRY, detail=wire.excerpt(
                str(exc) or type(exc).__name__))
        return _Answer(_Answer.SENT)
