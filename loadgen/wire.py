"""What loadgen's sinks put on the wire and take from it.

The JSON-lines form of a sample: what the JSON-lines sink writes, the
collector sink sends and the shadow service's collector reads (one JSON
object per line, see ``doc/source/contributor/contracts.rst``).

The answers of the HTTP sinks' receivers (the collector, InfluxDB) are
read through :func:`read_answer`: at most ``MAX_ANSWER_BYTES``, so what
answers in a receiver's place cannot fill the guest's memory; a redirect
is never followed (:class:`NoRedirect`).
"""

import json
import urllib.request

#: The most of an HTTP answer's body read: the collector's answers (counts
#: per rejection reason) are at most a few hundred bytes, InfluxDB's
#: ``/write`` and ``/query`` answers to loadgen about as long.
MAX_ANSWER_BYTES = 64 * 1024
#: Answers of one kind that say a request failed (not that its receiver
#: is away) after which its batch is dropped instead of sent again.
MAX_FAILED_ANSWERS = 5


class AnswerTooLong(OSError):
    """An answer's body is longer than ``MAX_ANSWER_BYTES``: no
    receiver's answer, taken as a failed attempt."""


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a GET (and its body would be
    read whole before it is followed): it is reported as an HTTPError
    instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


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
