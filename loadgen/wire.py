"""What loadgen's sinks put on the wire and take from it.

The JSON-lines form of a sample: what the JSON-lines sink writes, the
collector sink sends and the shadow service's collector reads (one JSON
object per line, see ``doc/source/contributor/contracts.rst``).

The answers of the HTTP sinks' receivers (the collector, InfluxDB) are
read through :func:`read_answer`: at most ``MAX_ANSWER_BYTES``, so what
answers in a receiver's place cannot fill the guest's memory; a redirect
is never followed (:class:`NoRedirect`).

Both sinks send a batch again after an answer that says the receiver is
away or busy (502, 503, 504, 408, 429, no connection), however long that
lasts; an answer that says it failed on this request (any other 5xx, see
:func:`failed_reason`) or one too long to be a receiver's counts against
the batch (:class:`FailedAnswers`), which is dropped after
``MAX_FAILED_ANSWERS`` answers of one such kind.

What a receiver sends back (an error answer's body, a status line no
HTTP server sends) is logged or said on stderr only through
:func:`excerpt`: one line, control and non-ASCII characters escaped
(``\\x1b``, ``\\n``), at most ``EXCERPT_CHARS`` characters, so an answer
can neither drive the operator's terminal nor forge a log line.
"""

import collections
import json
import urllib.request

#: The most of an HTTP answer's body read: the collector's answers (counts
#: per rejection reason) are at most a few hundred bytes, InfluxDB's
#: ``/write`` and ``/query`` answers to loadgen about as long.
MAX_ANSWER_BYTES = 64 * 1024
#: Answers of one kind that say a request failed (not that its receiver
#: is away) after which its batch is dropped instead of sent again.
MAX_FAILED_ANSWERS = 5
#: Answers that say the receiver is unavailable (or a proxy's way to say
#: so): the batch waits for it, however long.
UNAVAILABLE_STATUSES = (502, 503, 504)
#: Answers that say the receiver is busy or the request was too slow:
#: the batch waits too.
RETRY_STATUSES = (408, 429)
#: The most of a receiver's text put in one log line or stderr message.
EXCERPT_CHARS = 200
#: Why a batch was dropped after ``MAX_FAILED_ANSWERS`` failed answers.
SERVER_ERROR = 'server_error'
ANSWER_TOO_LONG = 'answer_too_long'


class AnswerTooLong(OSError):
    """An answer's body is longer than ``MAX_ANSWER_BYTES``: no
    receiver's answer, taken as a failed attempt."""


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a GET (and its body would be
    read whole before it is followed): it is reported as an HTTPError
    instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def failed_reason(status):
    """``SERVER_ERROR`` if an HTTP ``status`` says the receiver failed on
    this request (a 5xx other than ``UNAVAILABLE_STATUSES``: 500, 501,
    505...), so sending the batch again may never succeed; else None."""
    if status is not None and status >= 500 and \
            status not in UNAVAILABLE_STATUSES:
        return SERVER_ERROR
    return None


class FailedAnswers:
    """One batch's failed answers, counted per reason (``SERVER_ERROR``,
    ``ANSWER_TOO_LONG``): ``add`` says when the batch is to be dropped,
    after ``limit`` answers of one reason (answers of another kind in
    between, as a 503, neither count nor reset them)."""

    def __init__(self, limit=MAX_FAILED_ANSWERS):
        self.limit = limit
        self._counts = collections.Counter()

    def add(self, reason):
        """Count one answer failed for ``reason`` (None: not one of
        those); True once the batch is to be dropped."""
        if reason is None:
            return False
        self._counts[reason] += 1
        return self._counts[reason] >= self.limit


def to_json(point):
    """The JSON-lines form of a point (one line, no newline)."""
    return json.dumps(point, sort_keys=True)


def read_answer(reply, limit=MAX_ANSWER_BYTES):
    """The body of ``reply`` (a response object), read to at most
    ``limit`` bytes; AnswerTooLong if it holds more."""
    body = reply.read(limit + 1)
    if len(body) > limit:
        raise AnswerTooLong('HTTP %s with an answer over %d bytes'
                            % (reply.status, limit))
    return body


def excerpt(text, limit=EXCERPT_CHARS):
    """``text`` (bytes, read as UTF-8, or str) from a receiver as one
    log-safe line: control and non-ASCII characters escaped as Python
    writes them in a string (``\\n``, ``\\x1b``, ``\\xff``), at most
    ``limit`` characters, then how long it was."""
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'replace')
    elif not isinstance(text, str):
        text = str(text)
    escaped = text[:limit].encode('unicode_escape').decode('ascii')
    if len(escaped) > limit or len(text) > limit:
        return '%s...(%d chars)' % (escaped[:limit], len(text))
    return escaped


#: First wait after an exception no handler of a sink expected, doubled
#: with each such exception in a row up to ``UNEXPECTED_MAX_WAIT_S``.
UNEXPECTED_WAIT_S = 0.5
UNEXPECTED_MAX_WAIT_S = 30.0
#: What a batch dropped for such an exception is counted as.
UNEXPECTED = 'unexpected'


class Unexpected:
    """The HTTP sinks' last line of defence around sending one batch.

    ``send(deliver, batch)`` calls ``deliver(batch)`` and returns
    ``(result, 0.0)``; an exception no handler of the sink expected (a
    fault of the sink or of a library on an answer nobody foresaw)
    returns ``(None, wait_s)`` instead: the batch is lost (the sink
    counts it dropped, ``UNEXPECTED``), the exception is said once per
    kind through ``say(text)`` as one escaped, bounded line
    (:func:`excerpt`), and the sending thread goes on after ``wait_s``,
    which doubles with each such exception in a row, so a fault that
    stays does not spin."""

    def __init__(self, say, wait_s=UNEXPECTED_WAIT_S,
                 max_wait_s=UNEXPECTED_MAX_WAIT_S):
        self._say = say
        self._wait_s = wait_s
        self._max_wait_s = max_wait_s
        self._in_a_row = 0
        self._said = set()

    def send(self, deliver, batch):
        try:
            result = deliver(batch)
        except Exception as exc:  # noqa: BLE001 - the catch-all
            return None, self._failed(exc, len(batch))
        self._in_a_row = 0
        return result, 0.0

    def _failed(self, exc, count):
        kind = type(exc).__qualname__
        if kind not in self._said:
            self._said.add(kind)
            self._say('unexpected error sending a batch: %s: %s; dropped '
                      'its %d samples and going on (said once per kind of '
                      'error, each batch so lost is counted as dropped)'
                      % (excerpt(kind, 80), excerpt(str(exc)), count))
        self._in_a_row += 1
        return min(self._max_wait_s,
                   self._wait_s * 2 ** min(self._in_a_row - 1, 30))
