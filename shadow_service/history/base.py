"""The HistoryStore interface: where every measurement and decision is kept.

A store keeps *points* (see ``doc/source/contributor/contracts.rst`` for the
schema) and answers the few bounded queries the analyzer and the watcher need.
Stores are stevedore plugins in the ``nova_shadow.history`` namespace; pick
one with ``[history] store``.

Writes are buffered: ``write()`` never blocks on the server, ``flush()`` waits
for the buffer to drain.  Every store counts what it ``written``, ``retried``
and ``dropped``; a store never loses a point silently.
"""

import abc
import dataclasses
import json
import math
import numbers
import threading
import time
import typing

from shadow_service import measurements as names

#: The schema's measurements (see :mod:`shadow_service.measurements`).
MEASUREMENTS = names.MEASUREMENTS


#: Aggregates every store computes in :meth:`HistoryStore.query_series`.
AGGREGATES = ('mean', 'max', 'min', 'last')

#: Names InfluxDB reserves; no tag or field may use them.
RESERVED_KEYS = frozenset(['time'])


class HistoryError(Exception):
    """A store could not be configured or reached."""


class PointsRejected(HistoryError):
    """A store refuses points for good (those older than it keeps):
    writing them again cannot help."""


@dataclasses.dataclass(frozen=True)
class Point:
    """One measurement at one time.

    ``time`` is Unix seconds.  Field values are floats, ints, bools or
    strings; NaN and infinities are rejected by :func:`prepare_point`.
    """

    measurement: str
    tags: typing.Mapping[str, str]
    fields: typing.Mapping[str, typing.Any]
    time: float

    def to_dict(self):
        return {
            'measurement': self.measurement,
            'tags': dict(self.tags),
            'fields': dict(self.fields),
            'time': self.time,
        }

    @classmethod
    def from_dict(cls, data):
        return cls(
            measurement=data['measurement'],
            tags=dict(data.get('tags') or {}),
            fields=dict(data['fields']),
            time=float(data['time']),
        )


def time_to_us(seconds):
    """Unix seconds (float) to whole microseconds, the stores' resolution."""
    return int(round(seconds * 1e6))


def us_to_time(micros):
    """Whole microseconds back to Unix seconds (float)."""
    return micros / 1e6


def _check_name(kind, name, point):
    if not isinstance(name, str) or not name:
        raise ValueError('%s name %r of %s must be a non-empty string'
                         % (kind, name, point.measurement))
    if '\n' in name or '\r' in name or '\\' in name:
        raise ValueError('%s name %r of %s holds a newline or backslash'
                         % (kind, name, point.measurement))
    _check_text('%s name' % kind, name, name, point)
    if name in RESERVED_KEYS:
        raise ValueError('%s name %r of %s is reserved'
                         % (kind, name, point.measurement))


def _check_text(kind, name, value, point):
    """Raise ValueError unless ``value`` can be encoded as UTF-8: a lone
    surrogate (what JSON's ``"\\ud800"`` escape decodes to) cannot be
    stored by any store, and InfluxDB would refuse the batch around it."""
    if value.isascii():
        return
    try:
        value.encode('utf-8')
    except UnicodeEncodeError:
        raise ValueError('%s %r of %s is not valid Unicode text (it holds '
                         'a lone surrogate): not stored'
                         % (kind, name, point.measurement)) from None


def _field_value(name, value, point):
    if isinstance(value, str):
        _check_text('field', name, value, point)
        return value
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(
                'field %r of %s is %r: NaN and infinities are not stored'
                % (name, point.measurement, value))
        return number
    raise ValueError('field %r of %s has unsupported type %s'
                     % (name, point.measurement, type(value).__name__))


def prepare_point(point):
    """Validate ``point`` and return it in the form every store keeps.

    The one write policy all stores share (so they answer alike):

    * NaN and infinities are rejected with ``ValueError`` (never mapped);
    * numbers (ints, numpy scalars) become ``float``; ``bool`` and ``str``
      stay as they are; other field types are rejected;
    * a tag whose value is the empty string is treated as absent (InfluxDB
      cannot store it);
    * ``time`` is rounded to whole microseconds;
    * measurement, tag and field names must be non-empty strings without
      newlines or backslashes, may not be ``time``, and a name may not be
      both a tag and a field.
    """
    tags, fields, time_s = normalise(point)
    return Point(point.measurement, dict(tags), dict(fields), time_s)


def normalise(point):
    """:func:`prepare_point` without building a new :class:`Point`:
    ``(tags, fields, time)`` as the store keeps them.  The mappings
    returned may be the point's own: copy them before keeping them."""
    _check_shape(point)
    tags = point.tags
    for key, value in tags.items():
        if type(value) is not str and not isinstance(value, str):
            raise ValueError('tag %r must be a string, got %r'
                             % (key, value))
        if not value.isascii():
            _check_text('tag', key, value, point)
    if '' in tags.values():
        tags = {k: v for k, v in tags.items() if v != ''}
    fields = point.fields
    for value in fields.values():
        if type(value) is not float or not math.isfinite(value):
            fields = {name: _field_value(name, value, point)
                      for name, value in point.fields.items()}
            break
    moment = point.time
    if type(moment) is not float and (
            isinstance(moment, bool) or not isinstance(moment, numbers.Real)):
        moment = math.nan
    if not math.isfinite(moment):
        raise ValueError('time of %s must be finite Unix seconds, got %r'
                         % (point.measurement, point.time))
    return tags, fields, round(moment * 1e6) / 1e6


# Shapes (measurement, tag names, field names) already checked; the names
# come from a small schema, so the cache stays small (and is bounded).
_CHECKED_SHAPES = set()
_MAX_CHECKED_SHAPES = 10000


def _check_shape(point):
    measurement = point.measurement
    if not isinstance(measurement, str):
        raise ValueError('measurement %r must be a string' % (measurement,))
    shape = (measurement, tuple(point.tags), tuple(point.fields))
    if shape in _CHECKED_SHAPES:
        return
    if not measurement:
        raise ValueError('point has an empty measurement')
    if not point.fields:
        raise ValueError('point %s has no fields' % measurement)
    _check_name('measurement', measurement, point)
    for key in point.tags:
        _check_name('tag', key, point)
    for key in point.fields:
        _check_name('field', key, point)
        if key in point.tags:
            raise ValueError('%r of %s is both a tag and a field'
                             % (key, measurement))
    if len(_CHECKED_SHAPES) < _MAX_CHECKED_SHAPES:
        _CHECKED_SHAPES.add(shape)


def prepare_points(points):
    """:func:`prepare_point` over an iterable, all or nothing: the first
    bad point raises ``ValueError`` before anything is queued."""
    return [prepare_point(point) for point in points]


def check_window(start, end, step_s, agg):
    """Raise ValueError unless ``[start, end)`` and ``step_s`` (at least
    one microsecond) make a bounded grid and ``agg`` is one of
    :data:`AGGREGATES`."""
    if start is None or end is None:
        raise ValueError('query_series needs a bounded window')
    if not step_s or step_s <= 0:
        raise ValueError('step_s must be positive, got %r' % (step_s,))
    check_step_resolution(step_s)
    if agg not in AGGREGATES:
        raise ValueError('unknown aggregate %r; use one of %s'
                         % (agg, ', '.join(AGGREGATES)))


def check_step_resolution(step_s):
    """Raise ValueError when ``step_s`` rounds to no whole microsecond,
    the resolution the stores keep time in (no bucket could hold a
    point)."""
    if time_to_us(step_s) < 1:
        raise ValueError('step_s %r is less than one microsecond, the '
                         'resolution of the history' % (step_s,))


def grid_series(start, end, step_s, values_by_index):
    """Build the regular :class:`Series` over ``[start, end)`` from
    ``{bucket index: value}``; buckets without a value are ``None``."""
    steps = grid_steps(start, end, step_s)
    return Series(
        times=[start + i * step_s for i in range(steps)],
        values=[values_by_index.get(i) for i in range(steps)],
        step_s=step_s)


def grid_steps(start, end, step_s):
    """Number of buckets of ``step_s`` needed to cover ``[start, end)``."""
    span_us = time_to_us(end) - time_to_us(start)
    step_us = time_to_us(step_s)
    return max(0, -(-span_us // step_us))


def bucket_index(time_s, start, step_s):
    """Index of the grid bucket that ``time_s`` falls in."""
    return ((time_to_us(time_s) - time_to_us(start))
            // time_to_us(step_s))


class Buckets:
    """Running count/sum/min/max/last per grid bucket.

    Stores feed raw values (:meth:`add_value`) or pre-aggregated roll-ups
    (:meth:`add`) and read the grid with :meth:`series`, so every store
    computes the aggregates of :data:`AGGREGATES` the same way.
    """

    def __init__(self, start, end, step_s):
        self.start, self.end, self.step_s = start, end, step_s
        self._start_us = time_to_us(start)
        self._step_us = time_to_us(step_s)
        self._steps = grid_steps(start, end, step_s)
        self._acc = {}

    def index_of(self, time_us):
        return (time_us - self._start_us) // self._step_us

    def add(self, time_us, count, total, low, high, last, last_us=None):
        index = self.index_of(time_us)
        if not 0 <= index < self._steps or not count:
            return
        last_us = time_us if last_us is None else last_us
        acc = self._acc.get(index)
        if acc is None:
            self._acc[index] = [count, total, low, high, last, last_us]
            return
        acc[0] += count
        acc[1] += total
        acc[2] = min(acc[2], low)
        acc[3] = max(acc[3], high)
        if last_us >= acc[5]:
            acc[4], acc[5] = last, last_us

    def add_value(self, time_us, value):
        self.add(time_us, 1, value, value, value, value)

    def series(self, agg):
        pick = {
            'mean': lambda a: a[1] / a[0],
            'min': lambda a: a[2],
            'max': lambda a: a[3],
            'last': lambda a: a[4],
        }[agg]
        return grid_series(self.start, self.end, self.step_s,
                           {i: pick(a) for i, a in self._acc.items()})


def tag_values(wanted):
    """The values a wanted tag value (:meth:`HistoryStore.query_points`)
    accepts, as a tuple: one string, or those of a collection."""
    if isinstance(wanted, str):
        return (wanted,)
    return tuple(wanted)


def tags_match(tags, wanted):
    """True when ``tags`` (a point's or series') hold every wanted tag
    value; an absent tag is the empty string."""
    return all(tags.get(key, '') in tag_values(value)
               for key, value in (wanted or {}).items())


def check_limit(limit):
    """Raise ValueError unless ``limit`` is None or a positive int."""
    if limit is not None and (isinstance(limit, bool)
                              or not isinstance(limit, int) or limit < 1):
        raise ValueError('limit must be a positive integer, got %r'
                         % (limit,))


def is_number(value):
    """True for the numeric field values a series aggregates."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def encode_record(record, hosts_json=None):
    """``record`` as JSON (keys sorted); ``hosts_json``: its ``hosts``
    already encoded so (the same text as encoding them again)."""
    if hosts_json is None or 'hosts' not in record:
        return json.dumps(record, sort_keys=True)
    return '{%s}' % ', '.join(
        '%s: %s' % (json.dumps(key), hosts_json if key == 'hosts'
                    else json.dumps(record[key], sort_keys=True))
        for key in sorted(record))


def evaluation_point(record, time_s, encoded=None):
    """The ``evaluation`` point that keeps ``record`` (contracts.rst);
    ``encoded``: the record as :func:`encode_record` gives it."""
    if 'evaluation_id' not in record:
        raise ValueError('an evaluation record needs an evaluation_id')
    fields = {names.FIELD_RECORD: (encoded if encoded is not None
                                   else encode_record(record))}
    for name in ('confidence', 'duration_s'):
        if is_number(record.get(name)):
            fields[name] = float(record[name])
    return Point(
        measurement=names.EVALUATION,
        tags={names.TAG_EVALUATION: str(record['evaluation_id']),
              names.TAG_STATUS: str(record.get('status') or 'unknown')},
        fields=fields,
        time=time_s)


class MonotonicClock:
    """Wall-clock microseconds that never repeat or go backwards within
    one store, so the newest evaluation record is always the last put."""

    def __init__(self):
        self._last_us = 0
        self._lock = threading.Lock()

    def now(self):
        with self._lock:
            self._last_us = max(self._last_us + 1, time_to_us(time.time()))
            return us_to_time(self._last_us)


@dataclasses.dataclass
class Series:
    """A regular grid: ``values[i]`` is the aggregate over
    ``[times[i], times[i] + step_s)``; ``None`` where no point fell."""

    times: list
    values: list
    step_s: float


class HistoryStore(metaclass=abc.ABCMeta):
    """Interface every history store implements."""

    @abc.abstractmethod
    def write(self, points):
        """Queue ``points`` (an iterable of :class:`Point`) for writing."""

    def write_through(self, points, timeout=None, cancel=None):
        """Write ``points`` and return only once the store holds them.

        Raises :class:`HistoryError` when they could not be stored;
        then they will not be written later either, except by a store
        that had already sent them when it gave up (see the InfluxDB
        store).  ``timeout``
        (seconds) and ``cancel`` (a ``threading.Event``) bound the wait
        of a store that buffers its writes.  A store whose ``write`` is
        synchronous (SQLite, memory) just writes.  :class:`PointsRejected`
        (nothing written) when the store would never keep them.
        """
        self.write(points)

    @abc.abstractmethod
    def flush(self, timeout=None):
        """Wait until queued points are written; True if the buffer drained."""

    @abc.abstractmethod
    def query_points(self, measurement, tags=None, start=None, end=None,
                     limit=None):
        """Raw points of ``measurement`` whose tags match ``tags``, in time
        order, with ``start <= time < end``.

        A tag's wanted value is a string, or a list, tuple or set of
        strings (any of them matches; an empty one matches nothing).
        ``limit``: only the newest ``limit`` points: exactly the last
        ``limit`` of the answer without it, in the same order (points at
        the same time too).  The stores return only those: the SQLite
        store reads the series written last (each series' points in the
        window, for the cut), InfluxDB finds the cut with one query.
        """

    @abc.abstractmethod
    def query_series(self, measurement, field, tags, start, end, step_s,
                     agg='mean'):
        """A :class:`Series` on a regular grid over the bounded window."""

    @abc.abstractmethod
    def latest(self, measurement, field, tags=None, group_by='host'):
        """``{group value: (time, value)}`` for the newest point per group."""

    def put_evaluation(self, record, when=None, encoded=None):
        """Keep an evaluation record (a JSON-serialisable dict with an
        ``evaluation_id`` key), stamped ``when`` (Unix seconds; the
        store's clock when None).  Callers whose samples carry another
        clock (the twin's virtual one) pass that clock's time so records
        and samples share one time base.  ``encoded``: the record as
        :func:`encode_record` gives it, when the caller has it.

        Returns the :class:`Point` written.  Every store keeps records the
        same way: as one ``evaluation`` point (:func:`evaluation_point`).
        """
        point = evaluation_point(
            record, self._clock.now() if when is None else when, encoded)
        self.write([point])
        return point

    @abc.abstractmethod
    def get_evaluation(self, evaluation_id):
        """The newest record for ``evaluation_id`` or None."""

    @abc.abstractmethod
    def counters(self):
        """``{'written': n, 'retried': n, 'dropped': n, 'buffered': n}``."""

    def check_clock(self, now):
        """Raise :class:`HistoryError` when points stamped with the clock
        reading ``now`` (the cloud driver's) would be dropped on arrival
        (a server-side retention that runs on the wall clock).  Stores
        whose retention runs on the driver's clock accept any."""
        return None

    def compact(self, now=None):
        """Apply retention and downsampling up to ``now`` (Unix seconds).

        Returns how many raw points were rolled up or expired.  Stores
        whose server does this by itself (InfluxDB continuous queries and
        retention policies) return 0.
        """
        return 0

    def close(self):
        """Flush and release resources."""
        self.flush()
