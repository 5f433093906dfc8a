"""The embedded history store: one SQLite file (the default).

Same semantics as the InfluxDB store (see :func:`base.prepare_point`): a
point is identified by measurement, tag set and time, so writing the same
series at the same time again replaces those fields, as InfluxDB does.

Layout (WAL mode, safe to share between threads and processes)::

    series(id, measurement, tags JSON, last_us) one row per tag set
    points(series_id, field, time_us, value)    raw values (narrow table)
    rollups(series_id, field, time_us, count, sum, min, max, last, last_us)

:meth:`SQLiteStore.compact` moves raw ``value`` fields of the metric
measurements older than ``[history] raw_retention_days`` into ``rollups``
buckets of ``rollup_interval_s``, deletes the raw rows (all measurements)
and expires roll-ups after ``rollup_retention_days``. Queries read raw rows
and roll-ups together, so nothing is counted twice.  ``series.last_us`` is
the newest time written to the series (within five minutes): a read over
a window looks only at the series written since the window began (each
evaluation's shadows are series of their own, so the catalogue holds
every evaluation ever run).

The catalogue lives in the ``series`` table alone: reads find their
series there, by measurement (and ``last_us`` for a window) and by tag
(a substring of ``series.tags``), so several processes sharing the
file always see each other's series.  A process keeps only a bounded,
least-recently-used cache of the series it writes (measurement and tags
to id, and the ``last_us`` it last wrote), ``[history]
sqlite_series_cache_size`` series (:data:`SERIES_CACHE_SIZE` by
default): its memory does not grow with the series the file
holds.  A series that fell out of the cache is looked up by its unique
``(measurement, tags)`` index when next written.
Writes are synchronous (one transaction per ``write()`` call): nothing
waits in a buffer.  A call that finds the file locked longer than
``[history] sqlite_busy_timeout`` (or meets another operational error of
the database) raises :class:`~shadow_service.history.base.HistoryError`.
"""

import collections
import functools
import itertools
import json
import logging
import os
import sqlite3
import threading
import time

from shadow_service import measurements as names
from shadow_service.conf import history as history_conf
from shadow_service.history import base

LOG = logging.getLogger(__name__)

#: Measurements whose ``value`` field is rolled up when it gets old.
ROLLUP_MEASUREMENTS = names.ROLLUP_MEASUREMENTS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    measurement TEXT NOT NULL,
    tags TEXT NOT NULL,
    last_us INTEGER,
    UNIQUE (measurement, tags));
CREATE TABLE IF NOT EXISTS points (
    series_id INTEGER NOT NULL,
    field TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    value,
    PRIMARY KEY (series_id, field, time_us)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollups (
    series_id INTEGER NOT NULL,
    field TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    count INTEGER NOT NULL,
    sum REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    last REAL NOT NULL,
    last_us INTEGER NOT NULL,
    PRIMARY KEY (series_id, field, time_us)) WITHOUT ROWID;
"""

_ROLLUP = """
INSERT INTO rollups (series_id, field, time_us, count, sum, min, max, last,
                     last_us)
SELECT series_id, field, time_us - time_us % :interval, count(*), sum(value),
       min(value), max(value), 0.0, max(time_us)
FROM points
WHERE time_us < :cutoff AND field = 'value' AND typeof(value) = 'real'
  AND series_id IN (
      SELECT id FROM series WHERE measurement IN ({measurements}))
GROUP BY series_id, field, time_us - time_us % :interval
ON CONFLICT (series_id, field, time_us) DO UPDATE SET
    count = count + excluded.count, sum = sum + excluded.sum,
    min = min(min, excluded.min), max = max(max, excluded.max),
    last_us = max(last_us, excluded.last_us)
"""

_ROLLUP_LAST = """
UPDATE rollups SET last = (
    SELECT p.value FROM points p
    WHERE p.series_id = rollups.series_id AND p.field = rollups.field
      AND p.time_us = rollups.last_us)
WHERE EXISTS (
    SELECT 1 FROM points p
    WHERE p.series_id = rollups.series_id AND p.field = rollups.field
      AND p.time_us = rollups.last_us AND p.time_us < :cutoff)
"""

_DAY_US = 86400 * 10 ** 6
#: The series of a read, as one parameter: a JSON array of their ids.
#: SQLite limits the variables a statement binds (999 before SQLite
#: 3.32, and a build may set any limit); a read over a busy window
#: covers thousands of series (each evaluation's shadows are series of
#: their own), so it binds their ids as one JSON text, not one variable
#: each.  The look-ups still go by each id through the primary keys.
_IN_SERIES = 'series_id IN (SELECT value FROM json_each(?))'
#: How many series a store remembers for its writes (measurement and tags
#: to series id, and the ``last_us`` it last wrote to each); least
#: recently written first out (about 1 kB each); a write to a series not
#: remembered costs an indexed look-up.
SERIES_CACHE_SIZE = history_conf.SQLITE_SERIES_CACHE_SIZE
#: How far ``series.last_us`` may lag behind the newest point of a series
#: (a series' row is updated at most once per this much of its time, and
#: windowed reads reach back this much further).
_LAST_WRITTEN_SLACK_US = 300 * 10 ** 6


def _add_last_written(db):
    """Give a database made before ``series.last_us`` the column, filled
    from the newest raw point or roll-up of each series (once: a series
    with neither gets 0), and the index windowed reads use."""
    columns = {row[1] for row in db.execute('PRAGMA table_info(series)')}
    if 'last_us' not in columns:
        try:
            db.execute('ALTER TABLE series ADD COLUMN last_us INTEGER')
        except sqlite3.OperationalError:
            # Another process added it first.
            columns = {row[1] for row in db.execute(
                'PRAGMA table_info(series)')}
            if 'last_us' not in columns:
                raise
        else:
            db.execute(
                'UPDATE series SET last_us = max('
                'coalesce((SELECT max(time_us) FROM points '
                'WHERE series_id = series.id), 0), '
                'coalesce((SELECT max(last_us) FROM rollups '
                'WHERE series_id = series.id), 0)) WHERE last_us IS NULL')
            LOG.info('History: series.last_us added to %d series',
                     db.execute('SELECT count(*) FROM series').fetchone()[0])
    db.execute('CREATE INDEX IF NOT EXISTS series_written ON series '
               '(measurement, last_us)')


def _after_prefix(prefix):
    """The least string above every string that starts with ``prefix``
    (compared as SQLite compares TEXT: by code point)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _series_ids(series_ids):
    """``series_ids`` as the parameter of :data:`_IN_SERIES`."""
    return json.dumps(list(series_ids))


def _check_json(db):
    """Refuse a SQLite built without its JSON functions, which every
    read of more than one series needs (:data:`_IN_SERIES`)."""
    try:
        db.execute("SELECT value FROM json_each('[]')").fetchall()
    except sqlite3.OperationalError as exc:
        raise sqlite3.OperationalError(
            'this SQLite %s has no JSON functions (json_each: %s); the '
            'store needs a build with them (the default since SQLite '
            '3.38)' % (sqlite3.sqlite_version, exc))


def _store_errors(method):
    """Raise the database's operational errors of ``method`` (``database
    is locked`` once ``[history] sqlite_busy_timeout`` ran out, a full
    disk, an unreadable file) as :class:`~base.HistoryError`, the error
    callers of every store handle."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            raise base.HistoryError(
                'the SQLite history store %s failed: %s' % (self.path, exc)
            ) from exc
    return wrapper


def _value_from_db(value):
    # Numbers are stored as REAL, so an INTEGER can only be a bool.
    if isinstance(value, int):
        return bool(value)
    return value


class SQLiteStore(base.HistoryStore):
    """History in one SQLite file.

    Parameters
    ----------
    conf : oslo_config.cfg.ConfigOpts, optional
        Read ``[history] sqlite_path`` and the retention options from it.
    path, raw_retention_days, rollup_interval_s, rollup_retention_days,
    record_retention_days
        Override the matching ``[history]`` options.
    series_cache_size : int, optional
        How many series to remember for writing; overrides
        ``[history] sqlite_series_cache_size`` (default
        :data:`SERIES_CACHE_SIZE`).
    """

    config_group = history_conf.history_group

    @classmethod
    def get_config_opts(cls):
        return history_conf.sqlite_opts

    def __init__(self, conf=None, *, path=None, raw_retention_days=None,
                 rollup_interval_s=None, rollup_retention_days=None,
                 record_retention_days=None, series_cache_size=None,
                 busy_timeout=None):
        opts = history_conf.settings(
            conf, sqlite_path=path, raw_retention_days=raw_retention_days,
            rollup_interval_s=rollup_interval_s,
            rollup_retention_days=rollup_retention_days,
            record_retention_days=record_retention_days,
            sqlite_series_cache_size=series_cache_size,
            sqlite_busy_timeout=busy_timeout)
        self.path = opts['sqlite_path']
        self._raw_retention_us = opts['raw_retention_days'] * _DAY_US
        self._rollup_interval_us = opts['rollup_interval_s'] * 10 ** 6
        self._rollup_retention_us = opts['rollup_retention_days'] * _DAY_US
        self._record_retention_us = (opts['record_retention_days']
                                     * _DAY_US)
        self._lock = threading.RLock()
        self._db = self._connect(self.path, opts['sqlite_busy_timeout'])
        self._series_cache_size = max(
            1, int(opts['sqlite_series_cache_size']))
        #: (measurement, tuple of the tags' items) -> series id, least
        #: recently written first
        self._series_ids = collections.OrderedDict()
        #: series id -> the last_us this process wrote to its row, least
        #: recently written first
        self._last_written = collections.OrderedDict()
        self._clock = base.MonotonicClock()
        self._written = 0

    @staticmethod
    def _connect(path, busy_timeout=30.0):
        directory = os.path.dirname(os.path.abspath(path))
        if path != ':memory:' and not os.path.isdir(directory):
            raise base.HistoryError(
                '[history] sqlite_path %s: directory %s does not exist'
                % (path, directory))
        try:
            db = sqlite3.connect(path, timeout=busy_timeout,
                                 check_same_thread=False,
                                 isolation_level=None)
            db.execute('PRAGMA journal_mode=WAL')
            db.execute('PRAGMA synchronous=NORMAL')
            _check_json(db)
            db.executescript(_SCHEMA)
            _add_last_written(db)
        except sqlite3.Error as exc:
            raise base.HistoryError(
                '[history] sqlite_path %s cannot be used: %s' % (path, exc))
        return db

    # -- series catalogue -------------------------------------------------

    def _remember(self, fast_key, series_id):
        cache = self._series_ids
        cache[fast_key] = series_id
        cache.move_to_end(fast_key)
        if len(cache) > self._series_cache_size:
            cache.popitem(last=False)

    def _series_id(self, measurement, tags):
        fast_key = (measurement, tuple(tags.items()))
        series_id = self._series_ids.get(fast_key)
        if series_id is None:
            key = (measurement, json.dumps(tags, sort_keys=True))
            series_id = self._lookup_series(key)
            if series_id is None:
                self._db.execute(
                    'INSERT OR IGNORE INTO series (measurement, tags) '
                    'VALUES (?, ?)', key)
                series_id = self._lookup_series(key)
        self._remember(fast_key, series_id)
        return series_id

    def _lookup_series(self, key):
        row = self._db.execute(
            'SELECT id FROM series WHERE measurement = ? AND tags = ?',
            key).fetchone()
        return None if row is None else row[0]

    def _add_series(self, prepared):
        """Catalogue the series of ``prepared`` points not in the cache:
        look them up, and insert the missing ones in one statement (a
        write of points that each open a series, such as one
        evaluation's host scores, would otherwise ask the database twice
        per point).  Called inside the write's transaction."""
        new = {}
        for measurement, tags, _, _ in prepared:
            fast_key = (measurement, tuple(tags.items()))
            if fast_key not in self._series_ids and fast_key not in new:
                new[fast_key] = (measurement,
                                 json.dumps(tags, sort_keys=True))
        if len(new) <= 1:
            return
        # In the order of the points (not a set's, which follows the
        # process's hash seed), so the same writes number their series
        # the same in every process.
        ids = {key: self._lookup_series(key)
               for key in dict.fromkeys(new.values())}
        missing = [key for key, series_id in ids.items() if series_id is None]
        if missing:
            # The write holds the database's write lock (BEGIN IMMEDIATE),
            # so the rows past the largest id are the ones inserted here.
            newest = self._db.execute(
                'SELECT coalesce(max(id), 0) FROM series').fetchone()[0]
            self._db.executemany(
                'INSERT OR IGNORE INTO series (measurement, tags) '
                'VALUES (?, ?)', missing)
            ids.update(((measurement, tags_json), series_id)
                       for series_id, measurement, tags_json
                       in self._db.execute(
                           'SELECT id, measurement, tags FROM series '
                           'WHERE id > ?', (newest,)))
        for fast_key, key in new.items():
            self._remember(fast_key, ids[key])

    def _matching_series(self, measurement, tags, since_us=None):
        """``{series id: tags}`` of the series of ``measurement`` whose
        tags hold ``tags``; with ``since_us``, only those written at or
        after it (or not known to have been written before it)."""
        return self._series_written(
            measurement, tags,
            None if since_us is None else since_us - _LAST_WRITTEN_SLACK_US)

    def _series_written(self, measurement, tags, from_us):
        """:meth:`_matching_series` of the series whose ``last_us`` is at
        least ``from_us`` (or unknown); every one when ``from_us`` is
        None.  Read from the ``series`` table, which holds each series'
        tags as ``json.dumps(tags, sort_keys=True)``; in id order."""
        wanted = dict(tags or {})
        leading = self._leading_tag(measurement, wanted)
        if leading is not None:
            rows = self._series_by_leading_tag(
                measurement, leading, wanted[leading], from_us)
        else:
            rows = self._series_by_scan(measurement, wanted, from_us)
        found = {}
        for series_id, tags_json in sorted(rows):
            series_tags = json.loads(tags_json)
            if base.tags_match(series_tags, wanted):
                found[series_id] = series_tags
        return found

    def _leading_tag(self, measurement, wanted):
        """A wanted tag every series of ``measurement`` has as its first
        (sorted) tag, or None.  Such a tag's series are found by ranges
        of the unique ``(measurement, tags)`` index: their ``tags`` start
        with ``{"tag": "value"``.  Two index probes per wanted tag."""
        for key in sorted(wanted):
            prefix = '{%s: ' % json.dumps(key)
            outside = self._db.execute(
                'SELECT 1 FROM series WHERE measurement = ? AND tags < ? '
                'UNION ALL SELECT 1 FROM series WHERE measurement = ? AND '
                'tags >= ? LIMIT 1',
                (measurement, prefix, measurement,
                 _after_prefix(prefix))).fetchone()
            if outside is None:
                return key
        return None

    def _series_by_leading_tag(self, measurement, key, wanted, from_us):
        """``[(id, tags JSON)]`` of the series whose first tag is ``key``
        with one of the ``wanted`` values (an index range each)."""
        sql = ('SELECT id, tags FROM series WHERE measurement = ? AND '
               'tags >= ? AND tags < ?')
        if from_us is not None:
            sql += ' AND (last_us >= ? OR last_us IS NULL)'
        rows = []
        for value in sorted(set(base.tag_values(wanted))):
            prefix = '{%s: %s' % (json.dumps(key), json.dumps(value))
            args = [measurement, prefix, _after_prefix(prefix)]
            if from_us is not None:
                args.append(from_us)
            rows += self._db.execute(sql, args).fetchall()
        return rows

    def _series_by_scan(self, measurement, wanted, from_us):
        """``[(id, tags JSON)]`` of the series of ``measurement`` (written
        since ``from_us``), narrowed by a cheap filter on the wanted
        single values (checked exactly by the caller)."""
        where, args = ['measurement = ?'], [measurement]
        for key, value in wanted.items():
            if isinstance(value, str) and value:
                # The pair as json.dumps(tags, sort_keys=True) wrote it.
                where.append('instr(tags, ?) > 0')
                args.append('%s: %s' % (json.dumps(key), json.dumps(value)))
        condition = ' AND '.join(where)
        if from_us is None:
            sql = 'SELECT id, tags FROM series WHERE %s' % condition
        else:
            # Two index look-ups (measurement, last_us): an OR would scan.
            sql = ('SELECT id, tags FROM series WHERE last_us >= ? AND '
                   '%s UNION ALL SELECT id, tags FROM series WHERE '
                   'last_us IS NULL AND %s' % (condition, condition))
            args = [from_us] + args + args
        return self._db.execute(sql, args).fetchall()

    # -- writing ----------------------------------------------------------

    @_store_errors
    def write(self, points):
        prepared = [(p.measurement,) + base.normalise(p) for p in points]
        if not prepared:
            return
        with self._lock:
            self._db.execute('BEGIN IMMEDIATE')
            try:
                self._add_series(prepared)
                rows, newest = [], {}
                for measurement, tags, fields, time_s in prepared:
                    series_id = self._series_id(measurement, tags)
                    time_us = round(time_s * 1e6)
                    rows.extend([(series_id, name, time_us, value)
                                 for name, value in fields.items()])
                    if newest.get(series_id, time_us - 1) < time_us:
                        newest[series_id] = time_us
                self._db.executemany(
                    'INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?)', rows)
                last_written = self._last_written
                moved = [(t, i, t) for i, t in newest.items()
                         if t > last_written.get(i, -2 ** 62)
                         + _LAST_WRITTEN_SLACK_US]
                if moved:
                    self._db.executemany(
                        'UPDATE series SET last_us = ? WHERE id = ? AND '
                        '(last_us IS NULL OR last_us < ?)', moved)
                self._db.execute('COMMIT')
                self._wrote(moved)
            except BaseException:
                self._db.execute('ROLLBACK')
                # Ids of series inserted by this write are void.
                self._series_ids.clear()
                raise
            self._written += len(prepared)

    def _wrote(self, moved):
        last_written = self._last_written
        for time_us, series_id, _ in moved:
            last_written[series_id] = time_us
            last_written.move_to_end(series_id)
        # Forgetting one only costs a redundant UPDATE of its row.
        while len(last_written) > self._series_cache_size:
            last_written.popitem(last=False)

    def flush(self, timeout=None):
        return True

    # -- reading ----------------------------------------------------------

    @staticmethod
    def _range(start, end):
        lo = -2 ** 62 if start is None else base.time_to_us(start)
        hi = 2 ** 62 if end is None else base.time_to_us(end)
        return lo, hi

    def _select_points(self, series_ids, lo, hi, field=None):
        sql = ('SELECT series_id, time_us, field, value FROM points '
               'WHERE %s AND time_us >= ? AND time_us < ?' % _IN_SERIES)
        args = [_series_ids(series_ids), lo, hi]
        if field is not None:
            sql += ' AND field = ?'
            args.append(field)
        return self._db.execute(sql + ' ORDER BY time_us, series_id',
                                args).fetchall()

    @_store_errors
    def query_points(self, measurement, tags=None, start=None, end=None,
                     limit=None):
        base.check_limit(limit)
        lo, hi = self._range(start, end)
        with self._lock:
            if limit is None:
                series = self._matching_series(
                    measurement, tags, None if start is None else lo)
                rows = self._select_points(series, lo, hi) if series else []
            else:
                series, rows = self._newest_rows(
                    measurement, tags, None if start is None else lo, hi,
                    limit)
        return self._points(measurement, series, rows)

    @staticmethod
    def _points(measurement, series, rows):
        """Points from ``_select_points`` rows, in their order."""
        found = []
        for (series_id, time_us), group in itertools.groupby(
                rows, key=lambda row: (row[0], row[1])):
            found.append(base.Point(
                measurement=measurement, tags=dict(series[series_id]),
                fields={row[2]: _value_from_db(row[3]) for row in group},
                time=base.us_to_time(time_us)))
        return found

    def _newest_rows(self, measurement, tags, since_us, hi, limit):
        """``(series, rows)`` of the newest ``limit`` points (by time,
        then series id, as :meth:`query_points` orders them) at or after
        ``since_us`` (None: any) and before ``hi``.

        Only the series written last are read: those whose ``last_us``
        is at least that of the ``reach``-th newest series, less the
        five minutes ``last_us`` may lag (no point of an older series
        is later than that).  When the ``limit`` newest points of those
        series are all at least that late, no other series holds a
        newer one; otherwise ``reach`` grows, up to every series.
        """
        lo = -2 ** 62 if since_us is None else since_us
        floor = (None if since_us is None
                 else since_us - _LAST_WRITTEN_SLACK_US)
        reach = limit
        while True:
            sql = 'SELECT last_us FROM series WHERE measurement = ?'
            args = [measurement]
            if floor is not None:
                sql += ' AND last_us >= ?'
                args.append(floor)
            marker = self._db.execute(
                sql + ' ORDER BY last_us DESC LIMIT 1 OFFSET ?',
                args + [reach - 1]).fetchone()
            from_us = (floor if marker is None
                       else marker[0] - _LAST_WRITTEN_SLACK_US)
            series = self._series_written(measurement, tags, from_us)
            rows = self._select_newest(series, lo, hi, limit)
            if marker is None:
                return series, rows
            oldest = [row[1] for row in rows[:1]]
            if (oldest and oldest[0] >= marker[0]
                    and self._count_points(rows) == limit):
                return series, rows
            reach *= 4

    def _select_newest(self, series_ids, lo, hi, limit):
        """``_select_points`` rows of the newest ``limit`` points of
        ``series_ids`` in ``[lo, hi)``."""
        if not series_ids:
            return []
        cut = self._db.execute(
            'SELECT DISTINCT time_us, series_id FROM points WHERE '
            '%s AND time_us >= ? AND time_us < ? '
            'ORDER BY time_us DESC, series_id DESC LIMIT 1 OFFSET ?'
            % _IN_SERIES,
            (_series_ids(series_ids), lo, hi, limit - 1)).fetchone()
        if cut is None:
            return self._select_points(series_ids, lo, hi)
        return [row for row in self._select_points(series_ids, cut[0], hi)
                if (row[1], row[0]) >= cut]

    @staticmethod
    def _count_points(rows):
        return sum(1 for _ in itertools.groupby(
            rows, key=lambda row: (row[0], row[1])))

    @_store_errors
    def query_series(self, measurement, field, tags, start, end, step_s,
                     agg='mean'):
        base.check_window(start, end, step_s, agg)
        buckets = base.Buckets(start, end, step_s)
        lo, hi = self._range(start, end)
        with self._lock:
            series = self._matching_series(measurement, tags, lo)
            if series:
                args = (_series_ids(series), field, lo, hi)
                raw = self._db.execute(
                    'SELECT time_us, value FROM points WHERE %s '
                    'AND field = ? AND time_us >= ? AND time_us < ? '
                    "AND typeof(value) = 'real' ORDER BY time_us"
                    % _IN_SERIES, args).fetchall()
                rolled = self._db.execute(
                    'SELECT time_us, count, sum, min, max, last, last_us '
                    'FROM rollups WHERE %s AND field = ? '
                    'AND time_us >= ? AND time_us < ?' % _IN_SERIES,
                    args).fetchall()
        for time_us, value in raw if series else ():
            buckets.add_value(time_us, value)
        for row in rolled if series else ():
            buckets.add(*row)
        return buckets.series(agg)

    @_store_errors
    def latest(self, measurement, field, tags=None, group_by='host'):
        newest = {}
        with self._lock:
            series = self._matching_series(measurement, tags)
            for series_id, series_tags in series.items():
                key = series_tags.get(group_by)
                if key is None:
                    continue
                row = self._db.execute(
                    'SELECT time_us, value FROM points WHERE series_id = ? '
                    'AND field = ? ORDER BY time_us DESC LIMIT 1',
                    (series_id, field)).fetchone()
                if row is None:
                    continue
                found = (base.us_to_time(row[0]), _value_from_db(row[1]))
                if key not in newest or found[0] >= newest[key][0]:
                    newest[key] = found
        return newest

    @_store_errors
    def get_evaluation(self, evaluation_id):
        with self._lock:
            series = self._matching_series(
                names.EVALUATION, {names.TAG_EVALUATION: str(evaluation_id)})
            if not series:
                return None
            row = self._db.execute(
                "SELECT value FROM points WHERE %s AND "
                "field = 'record' ORDER BY time_us DESC LIMIT 1"
                % _IN_SERIES, (_series_ids(series),)).fetchone()
        return None if row is None else json.loads(row[0])

    def counters(self):
        return {'written': self._written, 'retried': 0, 'dropped': 0,
                'buffered': 0}

    # -- retention --------------------------------------------------------

    @_store_errors
    def compact(self, now=None):
        """Roll up and expire metric points older than the raw retention;
        expire records (evaluations, decisions) older than the record
        retention.  ``now`` is on the clock the points were written with
        (the cloud driver's); the wall clock when None."""
        now_us = base.time_to_us(time.time() if now is None else now)
        removed = 0
        if self._record_retention_us:
            removed += self._expire_records(
                now_us - self._record_retention_us)
        if not self._raw_retention_us:
            return removed
        cutoff = now_us - self._raw_retention_us
        args = {'cutoff': cutoff, 'interval': self._rollup_interval_us}
        marks = ','.join("'%s'" % m for m in ROLLUP_MEASUREMENTS)
        with self._lock:
            self._db.execute('BEGIN IMMEDIATE')
            try:
                self._db.execute(
                    _ROLLUP.replace('{measurements}', marks), args)
                self._db.execute(_ROLLUP_LAST, args)
                removed += self._db.execute(
                    'DELETE FROM points WHERE time_us < :cutoff AND '
                    'series_id IN (SELECT id FROM series WHERE measurement '
                    'IN (%s))' % marks, args).rowcount
                if self._rollup_retention_us:
                    self._db.execute(
                        'DELETE FROM rollups WHERE time_us < ?',
                        (now_us - self._rollup_retention_us,))
                self._db.execute('COMMIT')
            except BaseException:
                self._db.execute('ROLLBACK')
                raise
        LOG.info('History compaction rolled up or expired %d raw values '
                 'older than %s', removed, base.us_to_time(cutoff))
        return removed

    def _expire_records(self, cutoff_us):
        marks = ','.join("'%s'" % m for m in names.MEASUREMENTS
                         if m not in ROLLUP_MEASUREMENTS)
        with self._lock:
            return self._db.execute(
                'DELETE FROM points WHERE time_us < ? AND series_id IN '
                '(SELECT id FROM series WHERE measurement IN (%s))' % marks,
                (cutoff_us,)).rowcount

    def close(self):
        with self._lock:
            self._db.close()
