"""Validating samples from guests and writing them to the history store.

Guests send what loadgen's JSON-lines sink writes, one JSON object per
line (``doc/source/contributor/contracts.rst``)::

    {"measurement": "shadow_sample", "time": 1700000000.0,
     "tags": {"evaluation": "...", "shadow": "...", "host": "...",
              "profile": "web", "metric": "cpu_ops_per_s"},
     "fields": {"value": 1234.5}}

either in the body of ``POST /v1/samples`` (:meth:`Intake.accept_body`)
or as ``nova-shadow-sample <json>`` lines in the console log
(:meth:`Intake.accept_console`).  Every line is checked on its own
(:func:`parse_sample`): a bad line is rejected with a reason code and
never stops the others.  The guest is trusted with nothing but the metric
name, the value and (within ``max_clock_skew``) the time: the
``evaluation``, ``shadow``, ``host`` and ``profile`` tags come from the
token's :class:`~shadow_service.collector.tokens.Grant`, and any other tag
is dropped.  A token writes at most ``MAX_METRICS_PER_SHADOW`` metric names
and ``MAX_SAMPLES_PER_S`` samples a second (after ``SAMPLE_BURST``).
"""

import collections
import json
import logging
import math
import re
import threading
import time

from shadow_service import measurements as names
from shadow_service.history import base as history_base

LOG = logging.getLogger(__name__)

#: What loadgen's console sink puts before each sample's JSON.
CONSOLE_PREFIX = 'nova-shadow-sample '
#: ``<component>_<quantity>``, the contract's metric names.
METRIC_NAME = re.compile(r'^(cpu|mem|disk|net)_[a-z0-9_]{1,60}\Z')
TAG_KEY = re.compile(r'^[a-z][a-z0-9_]{0,31}\Z')
MAX_TAGS = 16
MAX_TAG_VALUE = 255
#: Metric names one shadow may write (loadgen writes 14): each is a
#: series in the history store, so a guest may not create them at will.
MAX_METRICS_PER_SHADOW = 32
#: Samples one shadow may write a second (32 metrics every 0.05 s, the
#: shortest ``interval_s`` a profile may have), after a burst of
#: ``SAMPLE_BURST`` (loadgen's buffer, sent back after an outage); each is
#: a point the evaluation reads into memory, so the request rate alone
#: does not bound them.  Further lines are rejected (``too_many_samples``).
MAX_SAMPLES_PER_S = 640.0
SAMPLE_BURST = 20000
#: Console lines remembered per shadow to skip the ones read already.
MAX_SEEN_PER_SHADOW = 50000
SAMPLE_KEYS = frozenset(('measurement', 'time', 'tags', 'fields'))


class BadSample(ValueError):
    """One line that is not a valid sample; ``reason`` is a short code."""

    def __init__(self, reason, detail=''):
        super().__init__('%s%s' % (reason, ': ' + detail if detail else ''))
        self.reason = reason


#: Largest magnitude of a sample's value or time: every number within it
#: converts to a float (JSON allows integers, as 10**400, that do not).
MAX_NUMBER = 1e300


def _number(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and -MAX_NUMBER <= value <= MAX_NUMBER)


def parse_sample(line, grant, received_at, max_clock_skew):
    """One line as a history point tagged from ``grant``.

    Parameters
    ----------
    line : str or bytes
        One JSON object (no newline).
    grant : shadow_service.collector.tokens.Grant
    received_at : float
        Wall-clock time the line arrived.
    max_clock_skew : float
        A ``time`` further than this from ``received_at`` is replaced by
        ``received_at``.

    Returns
    -------
    (shadow_service.history.base.Point, bool)
        The point, and whether its time was replaced.

    Raises
    ------
    BadSample
    """
    if isinstance(line, bytes):
        try:
            line = line.decode('utf-8')
        except UnicodeDecodeError:
            raise BadSample('not_utf8') from None
    try:
        sample = json.loads(line)
    except (ValueError, RecursionError):
        raise BadSample('not_json') from None
    if not isinstance(sample, dict):
        raise BadSample('not_an_object')
    keys = set(sample)
    if keys != SAMPLE_KEYS:
        raise BadSample('bad_keys', 'missing %s, unexpected %s' % (
            sorted(SAMPLE_KEYS - keys), sorted(keys - SAMPLE_KEYS)[:5]))
    if sample['measurement'] != names.SHADOW_SAMPLE:
        raise BadSample('bad_measurement')
    moment = sample['time']
    if not _number(moment):
        raise BadSample('bad_time')
    tags = sample['tags']
    if not isinstance(tags, dict) or len(tags) > MAX_TAGS:
        raise BadSample('bad_tags')
    for key, value in tags.items():
        if (not TAG_KEY.match(key) or not isinstance(value, str)
                or len(value) > MAX_TAG_VALUE):
            raise BadSample('bad_tags')
    metric = tags.get(names.TAG_METRIC)
    if not isinstance(metric, str) or not METRIC_NAME.match(metric):
        raise BadSample('bad_metric')
    fields = sample['fields']
    if (not isinstance(fields, dict)
            or set(fields) != {names.FIELD_VALUE}
            or not _number(fields[names.FIELD_VALUE])):
        raise BadSample('bad_value')
    value = float(fields[names.FIELD_VALUE])
    if not math.isfinite(value):
        raise BadSample('bad_value')
    moment = float(moment)
    restamped = not abs(moment - received_at) <= max_clock_skew
    if restamped:
        moment = received_at
    point = history_base.Point(
        measurement=names.SHADOW_SAMPLE,
        tags={names.TAG_EVALUATION: grant.evaluation_id,
              names.TAG_SHADOW: grant.shadow_id,
              names.TAG_HOST: grant.host,
              names.TAG_PROFILE: grant.profile,
              names.TAG_METRIC: metric},
        fields={names.FIELD_VALUE: value}, time=moment)
    return point, restamped


class Intake:
    """Validates samples and writes the good ones to ``history``.

    Counts what it accepted and rejected (by reason) in :attr:`counts`;
    safe to call from several threads.
    """

    def __init__(self, history, max_clock_skew=60.0, max_line_bytes=4096):
        self.history = history
        self.max_clock_skew = float(max_clock_skew)
        self.max_line_bytes = int(max_line_bytes)
        self.counts = collections.Counter()
        self._lock = threading.Lock()
        self._seen = {}

    def _count(self, **deltas):
        with self._lock:
            self.counts.update({k: v for k, v in deltas.items() if v})

    def _parse(self, lines, grant, received_at):
        points, rejected, restamped = [], collections.Counter(), 0
        for line in lines:
            if not line.strip():
                continue
            if len(line) > self.max_line_bytes:
                rejected['line_too_long'] += 1
                continue
            try:
                point, moved = parse_sample(line, grant, received_at,
                                            self.max_clock_skew)
            except BadSample as e:
                rejected[e.reason] += 1
                continue
            points.append((point, moved))
        kept = []
        with self._lock:
            allowance = self._allowance(grant)
            known = grant.metrics
            for point, moved in points:
                metric = point.tags[names.TAG_METRIC]
                if (metric not in known
                        and len(known) >= MAX_METRICS_PER_SHADOW):
                    rejected['too_many_metrics'] += 1
                    continue
                if allowance < 1.0:
                    rejected['too_many_samples'] += 1
                    continue
                allowance -= 1.0
                known.add(metric)
                kept.append(point)
                restamped += moved
            grant.sample_allowance = allowance
        return kept, rejected, restamped

    @staticmethod
    def _allowance(grant):
        """The samples ``grant``'s shadow may write now (a token bucket
        of ``MAX_SAMPLES_PER_S``, ``SAMPLE_BURST`` deep)."""
        now = time.monotonic()
        if grant.sample_allowance is None:
            allowance = float(SAMPLE_BURST)
        else:
            allowance = min(float(SAMPLE_BURST), grant.sample_allowance
                            + (now - grant.allowance_at) * MAX_SAMPLES_PER_S)
        grant.allowance_at = now
        return allowance

    def _write(self, grant, points, rejected, restamped, source):
        if points:
            # Raises (the store is down): nothing of this batch counts as
            # accepted, and the caller answers so that it is sent again.
            try:
                self.history.write(points)
            except Exception:
                with self._lock:
                    grant.sample_allowance += len(points)
                raise
            grant.accepted += len(points)
        self._count(accepted=len(points), restamped=restamped,
                    rejected=sum(rejected.values()))
        with self._lock:
            self.counts.update({'rejected_' + reason: count
                                for reason, count in rejected.items()})
        if rejected:
            LOG.warning('Rejected %d %s samples of shadow %s (evaluation '
                        '%s, host %s): %s', sum(rejected.values()), source,
                        grant.shadow_id, grant.evaluation_id, grant.host,
                        ', '.join('%s %d' % kv
                                  for kv in sorted(rejected.items())))
        return len(points), rejected

    def accept_body(self, grant, body, received_at):
        """Write the valid lines of a ``POST /v1/samples`` body.

        Returns ``(accepted, Counter of rejection reasons)``; raises what
        the history store raises.
        """
        points, rejected, restamped = self._parse(
            body.split(b'\n'), grant, received_at)
        return self._write(grant, points, rejected, restamped, 'collector')

    def accept_console(self, grant, text, received_at):
        """Write the samples of a console log not written already.

        Lines not starting with ``nova-shadow-sample `` are the guest's
        other output and are skipped silently; the others are validated
        as collector lines are.  Returns ``(accepted, rejections)``.
        """
        lines = []
        with self._lock:
            seen = self._seen.setdefault(grant.shadow_id, set())
            if len(seen) > MAX_SEEN_PER_SHADOW:
                seen.clear()
            for raw in text.splitlines():
                # Consoles add carriage returns and may prefix kernel time.
                start = raw.find(CONSOLE_PREFIX)
                if start < 0:
                    continue
                line = raw[start + len(CONSOLE_PREFIX):].strip()
                if line not in seen:
                    seen.add(line)
                    lines.append(line)
        points, rejected, restamped = self._parse(lines, grant, received_at)
        try:
            return self._write(grant, points, rejected, restamped,
                               'console')
        except Exception:
            # Read them again next time.
            with self._lock:
                self._seen.get(grant.shadow_id, set()).difference_update(
                    lines)
            raise

    def forget(self, shadow_id):
        """Drop what was remembered of ``shadow_id``'s console."""
        with self._lock:
            self._seen.pop(shadow_id, None)
