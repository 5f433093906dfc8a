"""The ``influxdb`` metrics source: Telegraf's points, read with InfluxQL.

Speaks the InfluxDB 1.x HTTP API (``/query``, POST) with ``requests``;
InfluxDB 1.x natively, 2.x and 3.x through their v1 compatibility API.  It
reads Telegraf's schema (tag ``host``, or ``[metrics_influxdb] host_tag``):

================  =========================================================
metric            Telegraf measurement and fields
================  =========================================================
cpu_util_pct      ``cpu`` ``cpu=cpu-total``: 100 - mean(``usage_idle``)
cpu_steal_pct     ``cpu`` ``cpu=cpu-total``: mean(``usage_steal``)
mem_used_pct      ``mem``: 100 - mean(``available_percent``)
disk_iops         ``diskio`` counters ``reads`` + ``writes``, per second,
                  summed over the devices (``name``) of ``disk_devices``
disk_mean_latency ``diskio`` counters (``read_time`` + ``write_time``, ms)
_ms               / (``reads`` + ``writes``) over the same devices
net_mbps          ``net`` counters ``bytes_recv`` + ``bytes_sent`` per
                  second / 1e6, summed over the interfaces not matching
                  ``net_devices_excluded``
================  =========================================================

Every query is bounded in time and grouped with ``GROUP BY time(step,
offset) fill(none)``, the offset aligning InfluxDB's buckets with the
query's grid (an unbounded ``GROUP BY time()`` fills years of nulls).  A
counter becomes a rate with ``non_negative_derivative(max(field), 1s)``
per device and bucket: the bucket before ``start`` is read too, so the
first bucket has a rate, and a counter reset leaves that bucket empty.
Telegraf reports no percentile latency and no memory bandwidth, and no
per-instance metrics are read.  Each query is logged at DEBUG with
control and non-ASCII characters escaped (``\\x1b``), so a host name
cannot drive a terminal or forge a log line.
"""

import logging

from shadow_service import logsafe
from shadow_service.conf import metrics as metrics_conf
from shadow_service.history import base as history_base
from shadow_service.history import lineprotocol as lp
from shadow_service.metrics import base

LOG = logging.getLogger(__name__)

#: The most of a query put in its debug line.
QUERY_LOG_CHARS = 4000

#: metric -> (measurement, field, extra condition, transform of the mean)
GAUGES = {
    'cpu_util_pct': ('cpu', 'usage_idle', '"cpu" = \'cpu-total\'',
                     lambda idle: 100.0 - idle),
    'cpu_steal_pct': ('cpu', 'usage_steal', '"cpu" = \'cpu-total\'', None),
    # Not used_percent: Telegraf counts used as total - free - buffers -
    # cached, which leaves out shared memory and the slab the kernel
    # cannot reclaim; the canonical figure is 100 * (1 - available/total).
    'mem_used_pct': ('mem', 'available_percent', None,
                     lambda available: 100.0 - available),
}

#: metric -> (measurement, device tag, counter fields)
COUNTERS = {
    'disk_iops': ('diskio', 'name', ('reads', 'writes')),
    'disk_mean_latency_ms': ('diskio', 'name',
                             ('reads', 'writes', 'read_time', 'write_time')),
    'net_mbps': ('net', 'interface', ('bytes_recv', 'bytes_sent')),
}


def influx_regex(pattern):
    """``pattern`` as an InfluxQL regex literal matching whole values."""
    return '/^(?:%s)$/' % pattern.replace('/', '\\/')


def _disk_iops(rates):
    return rates['reads'] + rates['writes']


def _net_mbps(rates):
    return (rates['bytes_recv'] + rates['bytes_sent']) / 1e6


class InfluxDBSource(base.MetricsSource):
    """Host metrics that Telegraf wrote to InfluxDB.

    Raises
    ------
    MetricsError
        At construction, naming the option: a URL that is not http(s), a
        missing CA file, a bad host format or device expression.
    """

    name = 'influxdb'

    @classmethod
    def get_config_opts(cls):
        return metrics_conf.influxdb_opts

    def __init__(self, conf=None, history=None):
        super().__init__(conf, history=history)
        opts = self.options
        self.url, self._scrub, self._session = base.http_session(
            opts, 'metrics_influxdb', 'token', 'Token')
        self.database = opts.database
        if not self.database:
            raise base.MetricsError('[metrics_influxdb] database is empty')
        base.check_regex_options(opts, 'metrics_influxdb',
                                 ('disk_devices', 'net_devices_excluded'))
        if not opts.host_tag:
            raise base.MetricsError('[metrics_influxdb] host_tag is empty')
        for name in ('database', 'retention_policy', 'host_tag'):
            if opts[name] and not lp.literal_safe(opts[name]):
                raise base.MetricsError(
                    '[metrics_influxdb] %s %r holds a carriage return or '
                    'NUL, which no InfluxQL name can hold'
                    % (name, opts[name]))
        self._host_tag = opts.host_tag
        self._tag_of = base.label_formatter(
            '[metrics_influxdb] host_format', opts.host_format,
            opts.host_map)
        self._timeout = self.limits['query_timeout_s']
        LOG.info('Metrics source: InfluxDB at %s, database %s',
                 base.mask_url(self.url), self.database)

    def metrics(self):
        return tuple(m for m in base.METRICS if m in GAUGES or m in COUNTERS)

    # -- queries ---------------------------------------------------------

    def query_hosts(self, hosts, metric, window):
        hosts_of = base.hosts_by_label(hosts, self._tag_of,
                                       'tag %s' % self._host_tag)
        if not hosts_of:
            return {}
        if metric in GAUGES:
            by_tag = self._gauge(metric, list(hosts_of), window)
        else:
            by_tag = self._counter(metric, list(hosts_of), window)
        answer = {}
        for tag, points in by_tag.items():
            for host in hosts_of.get(tag, ()):
                answer[host] = points
        return answer

    def _source(self, measurement):
        rp = self.options.retention_policy
        if not rp:
            return lp.quote_ident(measurement)
        return '%s.%s.%s' % (lp.quote_ident(self.database),
                             lp.quote_ident(rp), lp.quote_ident(measurement))

    def _where(self, tags, start_us, end_us, *conditions):
        hosts = ' OR '.join(lp.tag_equals(self._host_tag, tag)
                            for tag in tags)
        parts = [c for c in conditions if c]
        parts += ['(%s)' % hosts, 'time >= %du' % start_us,
                  'time < %du' % end_us]
        return ' WHERE ' + ' AND '.join(parts)

    def _gauge(self, metric, tags, window):
        measurement, field, condition, transform = GAUGES[metric]
        start_us = history_base.time_to_us(window.start)
        step_us = history_base.time_to_us(window.step_s)
        query = ('SELECT mean(%s) FROM %s%s GROUP BY time(%du, %du), %s '
                 'fill(none)' % (
                     lp.quote_ident(field), self._source(measurement),
                     self._where(tags, start_us,
                                 history_base.time_to_us(window.end),
                                 condition),
                     step_us, start_us % step_us,
                     lp.quote_ident(self._host_tag)))
        found = {}
        for series_tags, _columns, rows in self._query(metric, query):
            points = found.setdefault(series_tags.get(self._host_tag), {})
            for row in rows:
                time_us, value = row[0], row[1]
                if value is None:
                    continue
                index = (time_us - start_us) // step_us
                points[index] = transform(value) if transform else value
        return found

    def _counter(self, metric, tags, window):
        measurement, device_tag, fields = COUNTERS[metric]
        opts = self.options
        if measurement == 'net':
            devices = '%s !~ %s' % (lp.quote_ident(device_tag),
                                    influx_regex(opts.net_devices_excluded))
        else:
            devices = '%s =~ %s' % (lp.quote_ident(device_tag),
                                    influx_regex(opts.disk_devices))
        start_us = history_base.time_to_us(window.start)
        step_us = history_base.time_to_us(window.step_s)
        rates = ', '.join(
            'non_negative_derivative(max(%s), 1s) AS %s'
            % (lp.quote_ident(f), lp.quote_ident(f)) for f in fields)
        # One bucket before start, so bucket 0 has a previous value.
        query = ('SELECT %s FROM %s%s GROUP BY time(%du, %du), %s, %s '
                 'fill(none)' % (
                     rates, self._source(measurement),
                     self._where(tags, start_us - step_us,
                                 history_base.time_to_us(window.end),
                                 devices),
                     step_us, start_us % step_us,
                     lp.quote_ident(self._host_tag),
                     lp.quote_ident(device_tag)))
        # {host tag: {index: {field: rate summed over devices}}}
        sums = {}
        for series_tags, columns, rows in self._query(metric, query):
            per_host = sums.setdefault(series_tags.get(self._host_tag), {})
            for row in rows:
                values = dict(zip(columns[1:], row[1:]))
                if any(values.get(f) is None for f in fields):
                    continue
                index = (row[0] - start_us) // step_us
                totals = per_host.setdefault(index, dict.fromkeys(fields,
                                                                  0.0))
                for f in fields:
                    totals[f] += values[f]
        found = {}
        for tag, per_index in sums.items():
            points = found.setdefault(tag, {})
            for index, totals in per_index.items():
                value = self._combine(metric, totals)
                if value is not None:
                    points[index] = value
        return found

    @staticmethod
    def _combine(metric, totals):
        if metric == 'disk_iops':
            return _disk_iops(totals)
        if metric == 'net_mbps':
            return _net_mbps(totals)
        operations = totals['reads'] + totals['writes']
        if operations <= 0:
            return None
        return (totals['read_time'] + totals['write_time']) / operations

    def _query(self, metric, query):
        """``[(tags, columns, rows)]`` of the query's series; each row a
        list as long as ``columns`` whose first cell is the time (an int)
        and whose other cells are numbers or ``None``."""
        where = '%s/query' % base.mask_url(self.url)
        # The query holds tenants' host names: escaped, bounded.
        LOG.debug('InfluxDB %s (database %s): %s', where,
                  logsafe.clip(self.database), logsafe.clip(
                      query, QUERY_LOG_CHARS))
        params = {'q': query, 'db': self.database, 'epoch': 'u'}
        reply = base.post_bounded(
            self._session, self.url + '/query', params, self._timeout,
            'InfluxDB', where, '[metrics_influxdb] url', self._scrub)
        status = reply.status_code
        body = reply.json()
        if status in (401, 403):
            raise base.MetricsError(self._scrub(
                'InfluxDB at %s refused the credentials (HTTP %d); check '
                '[metrics_influxdb] username, password or token'
                % (where, status)))
        if status == 429 or status >= 500:
            raise base.MetricsUnavailable(self._scrub(
                'InfluxDB at %s answered HTTP %d: %s'
                % (where, status, logsafe.clip(reply.text, 200))))
        if not isinstance(body, dict) or not (
                'results' in body or 'error' in body):
            raise base.MetricsError(self._scrub(
                '%s answered HTTP %d without an InfluxDB reply; is '
                '[metrics_influxdb] url the InfluxDB HTTP API?'
                % (where, status)))
        results = self._list(where, 'results', body.get('results'))
        for position, result in enumerate(results):
            if not isinstance(result, dict):
                raise self._not_api(where, 'results[%d] is %s, not an '
                                    'object' % (position,
                                                base.describe_json(result)))
        errors = [body.get('error')] + [result.get('error')
                                        for result in results]
        # The server's text, and the query's host names: escaped.
        errors = [logsafe.clip(str(e), 300) for e in errors if e]
        if errors:
            if any('database not found' in e for e in errors):
                raise base.MetricsError(
                    'InfluxDB at %s has no database %r ([metrics_influxdb] '
                    'database): %s' % (base.mask_url(self.url),
                                       self.database, errors[0]))
            raise base.MetricsError(self._scrub(
                'InfluxDB at %s rejected the query of %s (HTTP %d): %s; '
                'query: %s' % (where, metric, status, errors[0],
                                logsafe.clip(query, QUERY_LOG_CHARS))))
        found = []
        for r, result in enumerate(results):
            what = 'results[%d].series' % r
            for s, series in enumerate(self._list(where, what,
                                                  result.get('series'))):
                found.append(self._series(where, '%s[%d]' % (what, s),
                                          series))
        return found

    def _series(self, where, what, series):
        """``(tags, columns, rows)`` of one checked series."""
        if not isinstance(series, dict):
            raise self._not_api(where, '%s is %s, not an object'
                                % (what, base.describe_json(series)))
        tags = series.get('tags') or {}
        if not isinstance(tags, dict) or not all(
                isinstance(v, str) for v in tags.values()):
            raise self._not_api(where, '%s.tags is %s, not an object of '
                                'strings' % (what, base.describe_json(tags)))
        columns = self._list(where, what + '.columns', series.get('columns'))
        if len(columns) < 2 or not all(isinstance(c, str) for c in columns):
            raise self._not_api(where, '%s.columns is %r, not the time and '
                                'the selected fields' % (what, columns[:8]))
        rows = []
        for position, row in enumerate(self._list(
                where, what + '.values', series.get('values'))):
            cell = '%s.values[%d]' % (what, position)
            if not isinstance(row, list) or len(row) != len(columns):
                raise self._not_api(where, '%s is %s, not a row of %d cells'
                                    % (cell, base.describe_json(row),
                                       len(columns)))
            stamp = row[0]
            if not base.finite(stamp) or stamp != int(stamp):
                raise self._not_api(
                    where, '%s has the time %s, not a whole number of '
                    'microseconds' % (cell, base.describe_json(stamp)))
            # A value that is not a number reads as missing, as NaN does.
            rows.append([int(stamp)] + [
                v if history_base.is_number(v) else None for v in row[1:]])
        return tags, columns, rows

    def _list(self, where, what, value):
        """``value`` if it is a list, ``[]`` for a missing one."""
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._not_api(where, '%s is %s, not a list'
                                % (what, base.describe_json(value)))
        return value

    def _not_api(self, where, what):
        """MetricsError for an answer that is not an InfluxDB query
        result."""
        return base.MetricsError(self._scrub(
            'InfluxDB at %s sent a reply that is not an InfluxDB query '
            'result: %s' % (where, what)))

    def close(self):
        self._session.close()
