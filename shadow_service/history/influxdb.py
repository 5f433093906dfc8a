"""The InfluxDB history store: the InfluxDB 1.x HTTP API, losing nothing.

Speaks ``/write`` (line protocol, ``precision=u``) and ``/query`` (InfluxQL)
over HTTP with ``requests``; InfluxDB 1.x serves them natively, 2.x through
its v1 compatibility API (a DBRP mapping), 3.x natively.  Line protocol and
quoting live in :mod:`shadow_service.history.lineprotocol`.

Writes never block on the server: ``write()`` validates and serialises the
points, then appends them to a bounded buffer that one background thread
drains in batches of ``[history] influx_batch_size``.  A batch that fails
(server down, 5xx, timeout, auth) is retried with exponential backoff
(``influx_retry_backoff_s`` doubling to ``influx_retry_backoff_max_s``)
until it is written; every failed send adds the batch size to ``retried``.
When the buffer (``influx_buffer_size``) overflows, the *oldest* points are
dropped, counted in ``dropped`` and logged.  Points the server rejects as
invalid (a partial write) are counted as dropped and logged too.  An error
the writer does not know drops only the points of its batch not yet
written or counted; every point is counted once.

At start-up the store checks the URL, waits up to
``influx_startup_timeout_s`` for ``/ping``, checks (or creates) the
database and, with ``influx_manage_retention``, creates the retention
policies and roll-up continuous queries; records (evaluations, scaling
decisions and the other measurements that are not rolled up) are then
written to a policy of their own, ``nova_shadow_records``, kept for
``record_retention_days`` (or ``raw_retention_days`` where that is
longer), and read from it and from the raw policy
(where records written before it existed live on); any problem is a
:class:`~shadow_service.history.base.HistoryError` that says what to fix.
"""

import collections
import json
import logging
import re
import threading
import time
import urllib.parse

import requests

from shadow_service import logsafe
from shadow_service import measurements as names
from shadow_service.conf import history as history_conf
from shadow_service.history import base
from shadow_service.history import lineprotocol as lp

LOG = logging.getLogger(__name__)

RAW_RP = 'nova_shadow_raw'
ROLLUP_RP = 'nova_shadow_rollup'
#: Where records live when the store manages retention: kept for
#: ``[history] record_retention_days``, or the raw retention if longer.
RECORDS_RP = 'nova_shadow_records'
#: The continuous queries the store owns (and drops when the settings no
#: longer want them) are named this followed by the measurement.
CQ_PREFIX = 'nova_shadow_rollup_'
#: Measurements whose ``value`` field the continuous queries roll up.
ROLLUP_MEASUREMENTS = names.ROLLUP_MEASUREMENTS
#: Records (evaluations, decisions, events, outcomes, scores, forecasts):
#: every measurement that is not rolled up, as the SQLite store has it.
RECORD_MEASUREMENTS = frozenset(names.MEASUREMENTS) - frozenset(
    ROLLUP_MEASUREMENTS)
_ROLLUP_FIELDS = ('value_count', 'value_sum', 'value_min', 'value_max',
                  'value_last')
_DROP_LOG_INTERVAL_S = 10.0
#: How many points a partial write dropped: InfluxDB ends its message
#: with ``dropped=N``.
_DROPPED = re.compile(r'dropped=(\d+)')
_DAY_S = 86400
#: What no HTTP header value may hold.
_HEADER_BREAKS = re.compile('[\r\n\x00]')

# keyword argument -> [history] option
_KWARGS = {
    'url': 'influx_url', 'database': 'influx_database',
    'username': 'influx_username', 'password': 'influx_password',
    'token': 'influx_token', 'create_database': 'influx_create_database',
    'manage_retention': 'influx_manage_retention',
    'batch_size': 'influx_batch_size', 'buffer_size': 'influx_buffer_size',
    'flush_interval_s': 'influx_flush_interval_s',
    'retry_backoff_s': 'influx_retry_backoff_s',
    'retry_backoff_max_s': 'influx_retry_backoff_max_s',
    'timeout_s': 'influx_timeout_s',
    'startup_timeout_s': 'influx_startup_timeout_s',
    'verify_tls': 'influx_verify_tls',
    'close_timeout_s': 'influx_close_timeout_s',
    'raw_retention_days': 'raw_retention_days',
    'rollup_interval_s': 'rollup_interval_s',
    'rollup_retention_days': 'rollup_retention_days',
    'record_retention_days': 'record_retention_days',
}


class _WriteRejected(Exception):
    """The server refused a batch for a reason a retry cannot fix."""


class _WriteFailed(Exception):
    """The batch was not written; try again later."""


def _number(value):
    # JSON gives 1 for the float 1.0; every stored number is a float.
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _duration(days):
    return 'INF' if not days else '%dd' % days


def _records_days(opts):
    """Days the records policy keeps (0: forever): the record retention,
    or the raw one where that is longer.  InfluxDB expires on the wall
    clock, so records stamped with a clock far behind it (the twin's)
    are kept wherever raw points are (``check_clock``)."""
    raw, records = opts['raw_retention_days'], opts['record_retention_days']
    if not raw or not records:
        return 0
    return max(raw, records)


class InfluxDBStore(base.HistoryStore):
    """History in an InfluxDB server (1.x HTTP API).

    Parameters
    ----------
    conf : oslo_config.cfg.ConfigOpts, optional
        Read the ``[history] influx_*`` and retention options from it.
    **kwargs
        Override options by short name: ``url``, ``database``,
        ``username``, ``password``, ``token``, ``create_database``,
        ``manage_retention``, ``batch_size``, ``buffer_size``,
        ``flush_interval_s``, ``retry_backoff_s``, ``retry_backoff_max_s``,
        ``timeout_s``, ``startup_timeout_s``, ``verify_tls``,
        ``close_timeout_s``, ``raw_retention_days``, ``rollup_interval_s``,
        ``rollup_retention_days``.

    Raises
    ------
    HistoryError
        If the URL is malformed, the server does not answer within the
        start-up timeout, is not InfluxDB, refuses the credentials, or the
        database is missing and may not be created.
    """

    config_group = history_conf.history_group

    @classmethod
    def get_config_opts(cls):
        return history_conf.influx_opts

    def __init__(self, conf=None, **kwargs):
        unknown = set(kwargs) - set(_KWARGS)
        if unknown:
            raise TypeError('unknown InfluxDBStore argument(s): %s'
                            % ', '.join(sorted(unknown)))
        opts = history_conf.settings(
            conf, **{_KWARGS[k]: v for k, v in kwargs.items()})
        self.url = self._check_url(opts['influx_url'])
        # What logs and errors show: never the URL's password.
        self.where = logsafe.mask_url(self.url)
        self.database = opts['influx_database']
        if not lp.literal_safe(self.database or ''):
            raise base.HistoryError(
                '[history] influx_database %r holds a carriage return or '
                'NUL, which no InfluxQL name can hold' % (self.database,))
        self._opts = opts
        self._session = self._make_session(opts)
        self._timeout = opts['influx_timeout_s']
        self._batch_size = opts['influx_batch_size']
        self._buffer_size = opts['influx_buffer_size']
        self._clock = base.MonotonicClock()
        self._raw_retention_s = opts['raw_retention_days'] * _DAY_S
        self._rollups = bool(opts['influx_manage_retention']
                             and self._raw_retention_s)
        self._records_rp = (RECORDS_RP if opts['influx_manage_retention']
                            else None)

        self._cond = threading.Condition()
        self._buffer = collections.deque()
        self._inflight = 0
        self._enqueued_seq = 0   # sequence number of the newest point
        self._taken_seq = 0      # points that left the buffer
        self._inflight_from = 0  # first sequence number in flight
        self._flush_wanted = 0
        self._closing = False
        self._stop = threading.Event()
        self._counts = collections.Counter()
        self._last_drop_log = None
        self._pending_evaluations = {}
        #: The sequence numbers ``[first, last, lost]`` of the points each
        #: ``write_through`` waits for; ``lost`` once one of them (not
        #: any other point) was dropped.
        self._watched = []
        # True while the writer's last attempt failed.
        self._failing = False

        self._wait_for_server(opts['influx_startup_timeout_s'])
        self._check_database(opts['influx_create_database'])
        if opts['influx_manage_retention']:
            self._setup_retention(opts)
        self._writer = threading.Thread(
            target=self._run_writer, name='influxdb-history-writer',
            daemon=True)
        self._writer.start()

    # -- start-up ---------------------------------------------------------

    @staticmethod
    def _check_url(url):
        parsed = urllib.parse.urlparse(url or '')
        if parsed.scheme not in ('http', 'https') or not parsed.hostname:
            raise base.HistoryError(
                '[history] influx_url %r is not an http(s) URL such as '
                'http://127.0.0.1:8086' % (logsafe.mask_url(url),))
        try:
            _ = parsed.port
        except ValueError:
            raise base.HistoryError(
                '[history] influx_url %r has an invalid port'
                % (logsafe.mask_url(url),))
        return url.rstrip('/')

    def _masked(self, error):
        """``error``'s text without the URL's password."""
        return logsafe.mask_urls_in(str(error), [self.url])

    @staticmethod
    def _make_session(opts):
        session = requests.Session()
        session.verify = opts['influx_verify_tls']
        if opts['influx_token']:
            token = opts['influx_token']
            # The token travels as it is in a header: a line break or NUL
            # would end (or smuggle) a header, and HTTP carries only
            # Latin-1 there.  Said here, naming the option and never its
            # value, rather than as a server that cannot be reached.
            if _HEADER_BREAKS.search(token):
                raise base.HistoryError(
                    '[history] influx_token holds a line break or NUL, '
                    'which no HTTP header can carry; set it to the token '
                    'alone')
            try:
                token.encode('latin-1')
            except UnicodeEncodeError:
                raise base.HistoryError(
                    '[history] influx_token holds a character outside '
                    'Latin-1, which no HTTP header can carry')
            session.headers['Authorization'] = 'Token %s' % token
        elif opts['influx_username']:
            # Basic authentication carries bytes (base64): sent as UTF-8,
            # the encoding InfluxDB compares user names and passwords in,
            # any name or password can be sent.
            session.auth = (opts['influx_username'].encode('utf-8'),
                            (opts['influx_password'] or '').encode('utf-8'))
        return session

    def _wait_for_server(self, timeout_s):
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                reply = self._session.get(self.url + '/ping',
                                          timeout=self._timeout)
            except requests.RequestException as exc:
                if time.monotonic() >= deadline:
                    raise base.HistoryError(
                        'cannot reach InfluxDB at %s ([history] influx_url) '
                        'within %ss: %s; is the server running?'
                        % (self.where, timeout_s, self._masked(exc)))
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
                continue
            break
        if reply.status_code in (401, 403):
            # The server is up: it refused who we said we are.
            raise base.HistoryError(
                'InfluxDB at %s refused the credentials (HTTP %s to GET '
                '/ping); check [history] influx_username/password/token'
                % (self.where, reply.status_code))
        if 'X-Influxdb-Version' not in reply.headers:
            raise base.HistoryError(
                '%s ([history] influx_url) does not look like InfluxDB: '
                'GET /ping answered %s without an X-Influxdb-Version header'
                % (self.where, reply.status_code))
        LOG.info('History store: InfluxDB %s at %s, database %s',
                 reply.headers['X-Influxdb-Version'], self.where,
                 self.database)

    def _check_database(self, create):
        try:
            found = self._query_rows('SHOW DATABASES', db=None)
        except base.HistoryError as exc:
            if 'authoriz' in str(exc) or 'auth' in str(exc).lower():
                raise
            LOG.warning('Could not list InfluxDB databases (%s); assuming '
                        '%s exists (InfluxDB 2.x/3.x)', exc, self.database)
            return
        names = {row[1][0] for row in found}
        if self.database in names:
            return
        if not create:
            raise base.HistoryError(
                'InfluxDB database %r does not exist on %s; create it or set '
                '[history] influx_create_database = True'
                % (self.database, self.where))
        LOG.info('Creating InfluxDB database %s', self.database)
        self._query('CREATE DATABASE %s' % lp.quote_ident(self.database),
                    db=None)

    def _setup_retention(self, opts):
        db = lp.quote_ident(self.database)
        existing = {row[1][0] for row in self._query_rows(
            'SHOW RETENTION POLICIES ON %s' % db, db=None)}
        policies = [(RAW_RP, opts['raw_retention_days'], ' DEFAULT'),
                    (RECORDS_RP, _records_days(opts), '')]
        if self._rollups:
            policies.append((ROLLUP_RP, opts['rollup_retention_days'], ''))
        for name, days, default in policies:
            verb = 'ALTER' if name in existing else 'CREATE'
            self._query('%s RETENTION POLICY %s ON %s DURATION %s '
                        'REPLICATION 1%s' % (verb, lp.quote_ident(name), db,
                                             _duration(days), default))
        self._setup_continuous_queries(
            opts['rollup_interval_s'] if self._rollups else None)

    def _setup_continuous_queries(self, interval_s):
        """Make the database's continuous queries named
        ``nova_shadow_rollup_*`` exactly those the settings want: one per
        rolled-up measurement every ``interval_s`` (None: none, roll-ups
        are off).  One left by earlier settings (roll-ups on, another
        interval, a measurement no longer rolled up) is dropped or
        replaced, and logged; other continuous queries are left alone."""
        db = lp.quote_ident(self.database)
        existing = {row[1][0] for row in self._query_rows(
            'SHOW CONTINUOUS QUERIES', db=None)
            if row[0] == self.database
            and row[1][0].startswith(CQ_PREFIX)}
        wanted = {} if interval_s is None else {
            CQ_PREFIX + measurement: self._rollup_query(
                CQ_PREFIX + measurement, measurement, interval_s)
            for measurement in ROLLUP_MEASUREMENTS}
        for name in sorted(existing - set(wanted)):
            self._query('DROP CONTINUOUS QUERY %s ON %s'
                        % (lp.quote_ident(name), db))
            LOG.warning(
                'Dropped the continuous query %s on InfluxDB database %s: '
                '%s', name, self.database,
                'roll-ups are off ([history] raw_retention_days = 0)'
                if interval_s is None
                else 'it rolls up no measurement any more')
        for name, statement in sorted(wanted.items()):
            try:
                # A no-op when the same query exists; InfluxDB refuses
                # one that differs (another interval) under its name.
                self._query(statement)
            except base.HistoryError as exc:
                if name not in existing or 'already exists' not in str(exc):
                    raise
                self._query('DROP CONTINUOUS QUERY %s ON %s'
                            % (lp.quote_ident(name), db))
                self._query(statement)
                LOG.info('Replaced the continuous query %s on InfluxDB '
                         'database %s: [history] rollup_interval_s is now '
                         '%ss', name, self.database, interval_s)

    def _rollup_query(self, name, measurement, interval_s):
        db = lp.quote_ident(self.database)
        return (
            'CREATE CONTINUOUS QUERY {name} ON {db} '
            'RESAMPLE EVERY {every}s FOR {window}s BEGIN '
            'SELECT count(value) AS value_count, sum(value) AS value_sum,'
            ' min(value) AS value_min, max(value) AS value_max, '
            'last(value) AS value_last '
            'INTO {db}.{rollup}.{m} FROM {db}.{raw}.{m} '
            'GROUP BY time({every}s), {tags} END'.format(
                name=lp.quote_ident(name), db=db, every=interval_s,
                tags=', '.join(lp.quote_ident(t) for t in
                               names.ROLLUP_TAGS[measurement])
                if measurement in names.ROLLUP_TAGS else '*',
                window=2 * interval_s, rollup=lp.quote_ident(ROLLUP_RP),
                raw=lp.quote_ident(RAW_RP),
                m=lp.quote_ident(measurement)))

    # -- queries ----------------------------------------------------------

    def _read_own_writes(self):
        """Reads see every point written before them: send what is
        buffered first (waiting at most ``influx_timeout_s``)."""
        if self._failing:
            # Writes are failing: waiting would only delay the read (and
            # the evaluation behind it) until the timeout.
            return
        if self._buffer or self._inflight:
            self.flush(timeout=self._timeout, until_failing=True)

    def _query(self, q, db=''):
        """Run InfluxQL; return the merged series of all statements as
        ``[(name, tags, columns, values)]``."""
        params = {'q': q, 'epoch': 'u', 'chunked': 'true',
                  'chunk_size': '10000'}
        if db is not None:
            params['db'] = db or self.database
        try:
            reply = self._session.post(self.url + '/query', data=params,
                                       timeout=self._timeout)
        except requests.RequestException as exc:
            raise base.HistoryError('InfluxDB at %s is unreachable: %s'
                                    % (self.where, self._masked(exc)))
        if reply.status_code in (401, 403):
            raise base.HistoryError(
                'InfluxDB at %s refused the credentials (HTTP %s, not '
                'authorized); check [history] influx_username/password/token'
                % (self.where, reply.status_code))
        merged = collections.OrderedDict()
        for line in reply.text.split('\n'):
            if not line.strip():
                continue
            try:
                chunk = json.loads(line)
            except ValueError:
                chunk = None
            if not isinstance(chunk, dict):
                # A proxy's page, or a reply cut short, in InfluxDB's
                # place: the store cannot answer now.
                raise base.HistoryError(
                    'InfluxDB at %s answered HTTP %s to %r with a reply '
                    'that is not an InfluxDB query result: %s'
                    % (self.where, reply.status_code, q,
                       logsafe.clip(line, 200)))
            if chunk.get('error'):
                raise base.HistoryError('InfluxDB rejected %r: %s'
                                        % (q, logsafe.clip(chunk['error'],
                                                           300)))
            for result in chunk.get('results', []):
                if result.get('error'):
                    raise base.HistoryError('InfluxDB rejected %r: %s'
                                            % (q, logsafe.clip(
                                                result['error'], 300)))
                for series in result.get('series', []):
                    key = (series.get('name'),
                           tuple(sorted((series.get('tags') or {}).items())))
                    entry = merged.setdefault(
                        key, [series.get('columns', []), []])
                    entry[1].extend(series.get('values', []))
        if reply.status_code >= 400 and not merged:
            raise base.HistoryError('InfluxDB answered HTTP %s to %r: %s'
                                    % (reply.status_code, q,
                                       logsafe.clip(reply.text, 200)))
        return [(name, dict(tags), columns, values)
                for (name, tags), (columns, values) in merged.items()]

    def _query_rows(self, q, db=''):
        """``[(series name, row)]`` of every row of every series."""
        return [(name, row) for name, _tags, _cols, values
                in self._query(q, db=db) for row in values]

    @staticmethod
    def _where(tags, start_us=None, end_us=None):
        conditions = []
        tag_part = lp.tag_condition(tags)
        if tag_part:
            conditions.append(tag_part)
        if start_us is not None:
            conditions.append('time >= %du' % start_us)
        if end_us is not None:
            conditions.append('time < %du' % end_us)
        return ' WHERE ' + ' AND '.join(conditions) if conditions else ''

    def _source(self, measurement, rp=None):
        if rp is None and self._records_rp and (
                measurement in RECORD_MEASUREMENTS):
            # Records written before their policy existed are in the raw
            # (default) one until it expires them.
            return '%s, %s' % (self._source(measurement, RAW_RP),
                               self._source(measurement, self._records_rp))
        if rp is None:
            return lp.quote_ident(measurement)
        return '%s.%s.%s' % (lp.quote_ident(self.database),
                             lp.quote_ident(rp), lp.quote_ident(measurement))

    def _policy_of(self, measurement):
        """The retention policy ``measurement`` is written to (None: the
        database's default)."""
        if self._records_rp and measurement in RECORD_MEASUREMENTS:
            return self._records_rp
        return None

    def query_points(self, measurement, tags=None, start=None, end=None,
                     limit=None):
        base.check_limit(limit)
        if any(not base.tag_values(value) for value in (tags or {}).values()):
            return []
        self._read_own_writes()
        start_us = None if start is None else base.time_to_us(start)
        end_us = None if end is None else base.time_to_us(end)
        if limit is not None:
            # The time of the limit-th newest point (one row comes back);
            # the points from then on are read as any others, so they
            # come in the same order.
            rows = self._query_rows('SELECT * FROM %s%s ORDER BY time DESC '
                                    'LIMIT 1 OFFSET %d' % (
                                        self._source(measurement),
                                        self._where(tags, start_us, end_us),
                                        limit - 1))
            if rows:
                found = self._points(measurement, tags, rows[0][1][0],
                                     end_us)
                if len(found) >= limit:
                    return found[-limit:]
        found = self._points(measurement, tags, start_us, end_us)
        return found if limit is None else found[-limit:]

    def _points(self, measurement, tags, start_us, end_us):
        found = []
        for _name, series_tags, columns, values in self._query(
                'SELECT * FROM %s%s GROUP BY *' % (
                    self._source(measurement),
                    self._where(tags, start_us, end_us))):
            point_tags = {k: lp.decode_tag_value(v)
                          for k, v in series_tags.items() if v}
            for row in values:
                fields = {col: _number(value)
                          for col, value in zip(columns[1:], row[1:])
                          if value is not None}
                if fields:
                    found.append(base.Point(
                        measurement, point_tags, fields,
                        base.us_to_time(row[0])))
        found.sort(key=lambda p: p.time)
        return found

    def query_series(self, measurement, field, tags, start, end, step_s,
                     agg='mean'):
        base.check_window(start, end, step_s, agg)
        self._read_own_writes()
        start_us, end_us = base.time_to_us(start), base.time_to_us(end)
        cutoff_us = None
        if (self._rollups and field == 'value'
                and measurement in ROLLUP_MEASUREMENTS):
            cutoff_us = base.time_to_us(time.time() - self._raw_retention_s)
        if cutoff_us is None or start_us >= cutoff_us:
            return self._raw_series(measurement, field, tags, start, end,
                                    step_s, agg)
        buckets = base.Buckets(start, end, step_s)
        self._add_grid(buckets, measurement, _ROLLUP_FIELDS, tags,
                       start_us, min(end_us, cutoff_us), step_s,
                       rp=ROLLUP_RP, rollup=True)
        if cutoff_us < end_us:
            self._add_grid(buckets, measurement, (field,) * 5, tags,
                           cutoff_us, end_us, step_s)
        return buckets.series(agg)

    def _raw_series(self, measurement, field, tags, start, end, step_s, agg):
        """One aggregate per bucket, computed by the server (the common
        case: the whole window is within the raw retention)."""
        start_us, step_us = base.time_to_us(start), base.time_to_us(step_s)
        source = self._source(measurement)
        where = self._where(tags, start_us, base.time_to_us(end))
        q = (f'SELECT {agg}({lp.quote_ident(field)}) FROM {source}{where} '
             f'GROUP BY time({step_us}u, {start_us % step_us}u) fill(none)')
        by_index = {}
        for _name, _tags, _columns, values in self._query(q):
            for time_us, value in values:
                if value is not None:
                    by_index[(time_us - start_us) // step_us] = value
        return base.grid_series(start, end, step_s, by_index)

    def _add_grid(self, buckets, measurement, fields, tags, start_us,
                  end_us, step_s, rp=None, rollup=False):
        """Fold one bounded ``GROUP BY time() fill(none)`` query into
        ``buckets``: count, sum, min, max, last per bucket."""
        step_us = base.time_to_us(step_s)
        offset_us = base.time_to_us(buckets.start) % step_us
        q = ('SELECT {c}({f0}), sum({f1}), min({f2}), max({f3}), '
             'last({f4}) FROM {src}{where} GROUP BY time({step}u, '
             '{offset}u) fill(none)').format(
            c='sum' if rollup else 'count',
            f0=lp.quote_ident(fields[0]), f1=lp.quote_ident(fields[1]),
            f2=lp.quote_ident(fields[2]), f3=lp.quote_ident(fields[3]),
            f4=lp.quote_ident(fields[4]), src=self._source(measurement, rp),
            where=self._where(tags, start_us, end_us), step=step_us,
            offset=offset_us)
        for _name, _tags, _columns, values in self._query(q):
            for time_us, count, total, low, high, last in values:
                if count:
                    buckets.add(time_us, count, total, low, high, last,
                                last_us=end_us)

    def latest(self, measurement, field, tags=None, group_by='host'):
        self._read_own_writes()
        newest = {}
        for _name, series_tags, _columns, values in self._query(
                'SELECT last(%s) FROM %s%s GROUP BY %s' % (
                    lp.quote_ident(field), self._source(measurement),
                    self._where(tags), lp.quote_ident(group_by))):
            key = series_tags.get(group_by)
            if not key or not values:
                continue
            time_us, value = values[-1][0], values[-1][1]
            newest[lp.decode_tag_value(key)] = (base.us_to_time(time_us),
                                                _number(value))
        return newest

    def put_evaluation(self, record, when=None, encoded=None):
        with self._cond:
            point = super().put_evaluation(record, when, encoded)
            self._pending_evaluations[point.tags[names.TAG_EVALUATION]] = (
                self._enqueued_seq, json.loads(point.fields['record']))
        return point

    def get_evaluation(self, evaluation_id):
        evaluation_id = str(evaluation_id)
        with self._cond:
            pending = self._pending_evaluations.get(evaluation_id)
            if pending is not None:
                if self._still_queued(pending[0]):
                    return pending[1]
                del self._pending_evaluations[evaluation_id]
        self._read_own_writes()
        rows = self._query_rows(
            "SELECT last(record) FROM %s%s"
            % (self._source(names.EVALUATION),
               self._where({names.TAG_EVALUATION: evaluation_id})))
        return json.loads(rows[-1][1][1]) if rows else None

    def _still_queued(self, seq):
        in_buffer = seq > self._taken_seq
        in_flight = self._inflight and seq >= self._inflight_from
        return in_buffer or in_flight

    def check_clock(self, now):
        """InfluxDB drops, on arrival, every point older than the raw
        retention policy's duration on the *server's* clock."""
        if not (self._opts['influx_manage_retention']
                and self._raw_retention_s):
            return
        behind_s = time.time() - float(now)
        if behind_s > self._raw_retention_s:
            raise base.HistoryError(
                "the cloud driver's clock is %.0f days behind the wall "
                'clock, beyond [history] raw_retention_days = %d: InfluxDB '
                'at %s would drop every point stamped with it; start the '
                'clock later ([sim] start_time) or set raw_retention_days '
                '= 0' % (behind_s / _DAY_S, self._raw_retention_s / _DAY_S,
                         self.where))

    def counters(self):
        with self._cond:
            counts = {name: self._counts[name]
                      for name in ('written', 'retried', 'dropped')}
            counts['buffered'] = len(self._buffer) + self._inflight
        return counts

    # -- writing ----------------------------------------------------------

    def write(self, points):
        lines = self._lines(points)
        if not lines:
            return
        with self._cond:
            self._enqueue(lines)

    def _lines(self, points):
        return [(self._policy_of(p.measurement),
                 lp.line_for(p, base.normalise)) for p in points]

    def _enqueue(self, lines):
        """Buffer ``lines`` (holding ``_cond``); the sequence number of
        the last one."""
        if self._closing:
            raise base.HistoryError('the history store is closed')
        self._buffer.extend(lines)
        self._enqueued_seq += len(lines)
        excess = len(self._buffer) - self._buffer_size
        if excess > 0:
            lost = sum(self._buffer.popleft()[1] is not None
                       for _ in range(excess))
            self._mark_lost(range(self._taken_seq + 1,
                                  self._taken_seq + excess + 1))
            self._taken_seq += excess
            if lost:
                self._counts['dropped'] += lost
                self._log_overflow(lost)
        if len(self._buffer) >= self._batch_size:
            self._cond.notify_all()
        return self._enqueued_seq

    def write_through(self, points, timeout=None, cancel=None):
        """Buffer ``points`` and wait until InfluxDB accepted them.

        While the server fails (or the wait outlasts ``timeout``, or
        ``cancel`` is set) points still in the buffer are taken back out
        and :class:`~shadow_service.history.base.HistoryError` is raised:
        they are not written later.  Points already sent are retried
        until written, so the wait goes on for them; only ``cancel`` or
        closing the store ends it then (and they may still be written).
        While the server is known to fail nothing is buffered at all.
        When one of these points was dropped (the buffer overflowed
        before it was sent, or the server refused it) the error says so,
        and the caller writes them again (InfluxDB keeps one point per
        series and time); points of other writers dropped meanwhile do
        not fail this call.  When the server drops part of a batch that
        holds these points without saying which, these alone are sent
        again to learn whether they are kept.  A point older
        than its retention policy keeps (by this host's clock), which
        InfluxDB would drop as it arrives, is
        :class:`~shadow_service.history.base.PointsRejected` and nothing
        is written.
        """
        points = list(points)
        lines = self._lines(points)     # checks them first
        self._check_retention(points)
        if not lines:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._failing:
                raise base.HistoryError(
                    'InfluxDB at %s is failing: not written' % self.where)
            first = self._enqueued_seq + 1
            watched = [first, first + len(lines) - 1, False]
            self._watched.append(watched)
            try:
                last = self._enqueue(lines)
            except BaseException:
                self._watched.remove(watched)
                raise
            self._flush_wanted += 1
            self._cond.notify_all()
            try:
                while self._still_queued(last):
                    buffered = first > self._taken_seq
                    late = (deadline is not None
                            and time.monotonic() >= deadline)
                    stop = (self._closing
                            or (cancel is not None and cancel.is_set()))
                    if buffered and (self._failing or late or stop):
                        self._withdraw(first, last)
                        raise base.HistoryError(
                            'InfluxDB at %s is failing: not written'
                            % self.where if self._failing else
                            'not written to InfluxDB at %s in time'
                            % self.where)
                    if stop:
                        raise base.HistoryError(
                            'stopped waiting for InfluxDB at %s to accept '
                            'points it is sending' % self.where)
                    self._cond.wait(0.1)
            finally:
                self._flush_wanted -= 1
                self._watched.remove(watched)
            if watched[2]:
                raise base.HistoryError(
                    'InfluxDB at %s may have dropped these points (see '
                    'the log)' % self.where)

    def _retention_s(self, measurement):
        """Seconds the policy ``measurement`` is written to keeps a point
        (None: forever, or not known when the store does not manage
        retention)."""
        if not self._opts['influx_manage_retention']:
            return None
        if self._policy_of(measurement) == RECORDS_RP:
            days = _records_days(self._opts)
        else:
            days = self._opts['raw_retention_days']
        return days * _DAY_S or None

    def _check_retention(self, points):
        now = time.time()
        for point in points:
            kept_s = self._retention_s(point.measurement)
            if kept_s is not None and point.time < now - kept_s:
                raise base.PointsRejected(
                    'a %s point of %.0f days ago is older than the %d days '
                    'its retention policy on InfluxDB at %s keeps: not '
                    'written' % (point.measurement,
                                 (now - point.time) / _DAY_S,
                                 kept_s // _DAY_S, self.where))

    def _withdraw(self, first, last):
        """Take the buffered lines ``first..last`` back out of the
        buffer (holding ``_cond``): the writer skips them."""
        for seq in range(first, last + 1):
            index = seq - self._taken_seq - 1
            self._buffer[index] = (self._buffer[index][0], None)

    def _mark_lost(self, seqs):
        """Tell the ``write_through`` calls waiting for any of the points
        ``seqs`` (sequence numbers, ascending) that it was dropped
        (holding ``_cond``)."""
        if not self._watched or not seqs:
            return
        for watched in self._watched:
            if isinstance(seqs, range):
                hit = seqs[0] <= watched[1] and watched[0] <= seqs[-1]
            else:
                hit = any(watched[0] <= seq <= watched[1] for seq in seqs)
            if hit:
                watched[2] = True

    def _watched_in(self, seqs):
        """``[[seq, ...], ...]``: the sequence numbers among ``seqs``
        that each waiting ``write_through`` call waits for."""
        with self._cond:
            groups = [[seq for seq in seqs if watched[0] <= seq <= watched[1]]
                      for watched in self._watched]
        return [group for group in groups if group]

    def _log_overflow(self, excess):
        now = time.monotonic()
        if (self._last_drop_log is not None
                and now - self._last_drop_log < _DROP_LOG_INTERVAL_S):
            return
        self._last_drop_log = now
        LOG.warning(
            'History buffer full ([history] influx_buffer_size = %d): '
            'dropped the %d oldest points, %d dropped in total; is InfluxDB '
            'at %s down or too slow?', self._buffer_size, excess,
            self._counts['dropped'], self.where)

    def flush(self, timeout=None, until_failing=False):
        """Wait until every buffered point is written (True), at most
        ``timeout`` seconds; with ``until_failing``, only until a write
        fails (a read then does not wait out an outage)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flush_wanted += 1
            self._cond.notify_all()
            try:
                while self._buffer or self._inflight:
                    if until_failing and self._failing:
                        return False
                    left = (None if deadline is None
                            else deadline - time.monotonic())
                    if left is not None and left <= 0:
                        return False
                    self._cond.wait(left)
                return True
            finally:
                self._flush_wanted -= 1

    def close(self):
        timeout = self._opts['influx_close_timeout_s']
        drained = self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._stop.set()
        self._writer.join()
        with self._cond:
            left = sum(line is not None for _, line in self._buffer)
            self._mark_lost(range(self._taken_seq + 1,
                                  self._taken_seq + len(self._buffer) + 1))
            self._buffer.clear()
            self._counts['dropped'] += left
        if not drained or left:
            LOG.error('Closed the history store with %d points not written '
                      'to InfluxDB at %s within %ss; they are counted as '
                      'dropped', left, self.where, timeout)
        self._session.close()

    def _take_batch(self):
        """Wait for a full batch, a flush, the flush interval or close;
        return the oldest lines to send (possibly none) as ``[(policy,
        lines)]``, one entry per retention policy they go to (one
        ``/write`` each), in the order each policy first comes; with
        each line its sequence number: ``[(policy, (lines, seqs))]``."""
        with self._cond:
            if (len(self._buffer) < self._batch_size
                    and not self._flush_wanted and not self._closing):
                self._cond.wait(self._opts['influx_flush_interval_s'])
            count = min(self._batch_size, len(self._buffer))
            groups = {}
            for seq in range(self._taken_seq + 1,
                             self._taken_seq + count + 1):
                policy, line = self._buffer.popleft()
                if line is not None:    # None: taken back (_withdraw)
                    lines, seqs = groups.setdefault(policy, ([], []))
                    lines.append(line)
                    seqs.append(seq)
            self._inflight_from = self._taken_seq + 1
            self._taken_seq += count
            self._inflight = count
            return list(groups.items())

    def _finish_batch(self):
        with self._cond:
            self._inflight = 0
            self._cond.notify_all()

    def _run_writer(self):
        while not (self._closing and not self._buffer):
            groups = self._take_batch()
            try:
                for policy, (batch, seqs) in groups:
                    pending = collections.deque([(batch, seqs)])
                    try:
                        self._deliver(pending, policy)
                    except Exception:
                        # Only the lines still pending are lost: those
                        # written, or dropped by the server, were taken
                        # off and counted.
                        self._drop_unexpected(pending, len(batch))
            finally:
                self._finish_batch()
            if self._stop.is_set() and self._closing:
                break

    def _drop_unexpected(self, pending, sent):
        """Count the lines left in ``pending`` as dropped after an error
        the writer does not know (it goes on with the next batch)."""
        left = sum(len(lines) for lines, _ in pending)
        LOG.exception('History writer failed with %d of %d points not '
                      'settled; those %d are counted as dropped', left,
                      sent, left)
        with self._cond:
            self._counts['dropped'] += left
            for _, lost in pending:
                self._mark_lost(lost)
        pending.clear()

    def _deliver(self, pending, policy=None):
        """Send ``pending``, a deque of ``(lines, seqs)`` (``seqs``: the
        lines' sequence numbers), to retention ``policy`` (the default
        when None) until every line is settled (written, or dropped by
        the server) or the store is closing.  A retry sends only the
        lines not yet settled: after a split (``_post_lines``) part of
        the batch may be.  If it raises, what is left in ``pending`` is
        not settled and not counted."""
        backoff = self._opts['influx_retry_backoff_s']
        failures = 0
        while True:
            try:
                self._post_lines(pending, policy)
                self._failing = False
                if failures:
                    LOG.info('InfluxDB at %s accepts writes again after %d '
                             'failed attempts', self.where, failures)
                return
            except _WriteFailed as exc:
                failures += 1
                left = sum(len(lines) for lines, _ in pending)
                with self._cond:
                    self._failing = True
                    self._cond.notify_all()
                with self._cond:
                    self._counts['retried'] += left
                log = LOG.warning if failures == 1 else LOG.debug
                log('Writing %d points to InfluxDB at %s failed (%s); '
                    'retrying in %.2fs', left, self.where, exc, backoff)
            if self._stop.wait(backoff):
                with self._cond:
                    self._counts['dropped'] += left
                    for _, lost in pending:
                        self._mark_lost(lost)
                pending.clear()
                LOG.error('Dropped %d points: the store closed while InfluxDB '
                          'at %s was failing', left, self.where)
                return
            backoff = min(backoff * 2,
                          self._opts['influx_retry_backoff_max_s'])

    def _post(self, batch, policy):
        """POST ``batch`` to ``/write``; the reply."""
        params = {'db': self.database, 'precision': 'u'}
        if policy:
            params['rp'] = policy
        return self._session.post(
            self.url + '/write', params=params,
            data='\n'.join(batch).encode('utf-8'), timeout=self._timeout)

    def _post_lines(self, pending, policy=None):
        """Send ``pending``, a deque of ``(lines, seqs)`` (``seqs``: the
        lines' sequence numbers, to tell a ``write_through`` waiting for
        a dropped one), one ``/write`` each, taking each off once it is
        settled (written, or dropped by the server); splits lines the
        server rejects as invalid or too large so that only the bad
        points are dropped.  Raises ``_WriteFailed`` with what is not
        settled left in ``pending``, to send again later.  An entry is
        taken off ``pending`` before it is counted, so whatever is left
        there after any error was neither written nor counted."""
        while pending:
            batch, seqs = pending[0]
            try:
                reply = self._post(batch, policy)
            except requests.RequestException as exc:
                raise _WriteFailed(self._masked(exc))
            if reply.status_code == 204:
                pending.popleft()
                with self._cond:
                    self._counts['written'] += len(batch)
                continue
            error = self._error_text(reply)
            if reply.status_code == 400 and 'partial write' in error:
                pending.popleft()
                self._count_partial_write(len(batch), error)
                self._check_kept(batch, policy, seqs)
            elif reply.status_code in (400, 413) and len(batch) > 1:
                half = len(batch) // 2
                pending.popleft()
                pending.extendleft([(batch[half:], seqs[half:]),
                                    (batch[:half], seqs[:half])])
            elif reply.status_code in (400, 413):
                # One point: invalid, or alone larger than the server
                # takes (its [http] max-body-size); sending it again
                # cannot help.
                pending.popleft()
                with self._cond:
                    self._counts['dropped'] += 1
                    self._mark_lost(seqs)
                # Its line holds what callers wrote (a tenant's names):
                # escaped, as the server's text.
                LOG.warning('InfluxDB rejected a point, dropped: HTTP %s: %s '
                            '(%s)', reply.status_code,
                            logsafe.clip(error, 200),
                            logsafe.clip(batch[0], 200))
            else:
                raise _WriteFailed('HTTP %s: %s' % (reply.status_code,
                                                   logsafe.clip(error, 200)))

    def _count_partial_write(self, sent, error):
        dropped = sent
        found = _DROPPED.findall(error)
        if found:
            dropped = min(sent, int(found[-1]))
        with self._cond:
            self._counts['dropped'] += dropped
            self._counts['written'] += sent - dropped
        LOG.warning('InfluxDB dropped %d of %d points: %s', dropped, sent,
                    logsafe.clip(error, 300))

    def _check_kept(self, batch, policy, seqs):
        """After a partial write of ``batch``, which names no line it
        dropped: send the lines a ``write_through`` waits for again, each
        waiter's alone, and tell it whether they were dropped (a point
        written again replaces itself; one the server refused is refused
        again).  The counters are not touched: these lines were counted
        with the batch."""
        line_of = dict(zip(seqs, batch))
        for group in self._watched_in(seqs):
            try:
                kept = self._post([line_of[seq] for seq in group],
                                  policy).status_code == 204
            except requests.RequestException:
                kept = False
            if not kept:
                with self._cond:
                    self._mark_lost(group)

    @staticmethod
    def _error_text(reply):
        """The server's error message: the ``error`` of a JSON object,
        else the start of the body (always a string)."""
        try:
            body = reply.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get('error'), str):
            return body['error']
        return reply.text[:500]
