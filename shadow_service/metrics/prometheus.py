"""The ``prometheus`` metrics source: PromQL over the Prometheus HTTP API.

Hosts are read from node_exporter's series, instances from a libvirt
exporter's ``libvirt_domain_*`` series, with one ``/api/v1/query_range``
request (POST) per metric for up to ``[metrics] hosts_per_query`` hosts.
Each canonical metric has a PromQL *template* (:data:`HOST_QUERIES`,
:data:`INSTANCE_QUERIES`); ``[metrics_prometheus] metric_map_file`` (YAML,
keys ``host`` and ``instance``) overrides, adds or removes templates.  A
template must return one series per node (or instance), carrying the label
that names it; placeholders:

``$selector``
    the label matcher of the wanted nodes (``instance="cmp1:9100"`` or
    ``instance=~"cmp1:9100|cmp2:9100"``) or instance (``uuid="..."``);
``$label``
    the label that names them (``[metrics_prometheus] node_label`` or
    ``instance_label``), to aggregate by;
``$window``
    the ``rate()`` window, and the ``avg_over_time()`` window of a gauge:
    the step, or ``rate_window_min_s`` if longer;
``$disk_devices``, ``$net_devices_excluded``
    the device regular expressions of the options of the same name.

Grid: the value of bucket ``[t, t + step)`` is the query evaluated at
``t + step``, so a ``rate()`` over a window of one step covers exactly the
bucket, and a gauge is averaged over it with ``avg_over_time()`` (the
gauge itself would be its last sample, not the bucket's mean).  Nova
host names become label values through ``node_map`` or
``node_label_format`` (default ``{host}:9100``).  A node Prometheus does
not know reads as a series of ``None``.  Passwords and tokens (options or
URL user info) are masked in every log line and error.
"""

import logging
import math
import re
import string

import yaml

from shadow_service import logsafe
from shadow_service.conf import metrics as metrics_conf
from shadow_service.metrics import base

LOG = logging.getLogger(__name__)

#: Prometheus refuses a range query of more points per series than this.
MAX_POINTS_PER_REQUEST = 11000

_DISK = 'device=~"$disk_devices", $selector'
_NET = 'device!~"$net_devices_excluded", $selector'

#: node_exporter (>= 0.16 metric names) queries per canonical host metric.
HOST_QUERIES = {
    'cpu_util_pct':
        '100 * (1 - avg by ($label) '
        '(rate(node_cpu_seconds_total{mode="idle", $selector}[$window])))',
    'cpu_steal_pct':
        '100 * avg by ($label) '
        '(rate(node_cpu_seconds_total{mode="steal", $selector}[$window]))',
    'mem_used_pct':
        '100 * (1 - sum by ($label) '
        '(avg_over_time(node_memory_MemAvailable_bytes{$selector}[$window]))'
        ' / sum by ($label) '
        '(avg_over_time(node_memory_MemTotal_bytes{$selector}[$window])))',
    'disk_iops':
        'sum by ($label) ('
        'rate(node_disk_reads_completed_total{%(disk)s}[$window]) + '
        'rate(node_disk_writes_completed_total{%(disk)s}[$window]))'
        % {'disk': _DISK},
    'disk_mean_latency_ms':
        '1000 * sum by ($label) ('
        'rate(node_disk_read_time_seconds_total{%(disk)s}[$window]) + '
        'rate(node_disk_write_time_seconds_total{%(disk)s}[$window])) / '
        'sum by ($label) ('
        'rate(node_disk_reads_completed_total{%(disk)s}[$window]) + '
        'rate(node_disk_writes_completed_total{%(disk)s}[$window]))'
        % {'disk': _DISK},
    'net_mbps':
        'sum by ($label) ('
        'rate(node_network_receive_bytes_total{%(net)s}[$window]) + '
        'rate(node_network_transmit_bytes_total{%(net)s}[$window])) / 1e6'
        % {'net': _NET},
}

#: libvirt exporter queries per canonical instance metric (the domain UUID,
#: which is the Nova instance UUID, in ``instance_label``).  Each exporter's
#: series (by its scrape target, the ``instance`` label) are summed on
#: their own and the largest exporter's figure taken: during a live
#: migration the source's and the destination's exporters both report the
#: domain, and an instance counts once.
INSTANCE_QUERIES = {
    'cpu_util_pct':
        '100 * max by ($label) ('
        'sum by ($label, instance) '
        '(rate(libvirt_domain_info_cpu_time_seconds_total{$selector}'
        '[$window])) / sum by ($label, instance) '
        '(libvirt_domain_info_virtual_cpus{$selector}))',
    'disk_iops':
        'max by ($label) (sum by ($label, instance) ('
        'rate(libvirt_domain_block_stats_read_requests_total{$selector}'
        '[$window]) + '
        'rate(libvirt_domain_block_stats_write_requests_total{$selector}'
        '[$window])))',
    'net_mbps':
        'max by ($label) (sum by ($label, instance) ('
        'rate(libvirt_domain_interface_stats_receive_bytes_total{$selector}'
        '[$window]) + '
        'rate(libvirt_domain_interface_stats_transmit_bytes_total{$selector}'
        '[$window]))) / 1e6',
}

PLACEHOLDERS = frozenset(['selector', 'label', 'window', 'disk_devices',
                          'net_devices_excluded'])

_LABEL_NAME = re.compile(r'^[a-zA-Z_][a-zA-Z0-9_]*\Z')
_MAP_OPTION = '[metrics_prometheus] metric_map_file'


def promql_string(text):
    """``text`` as the body of a double-quoted PromQL string."""
    return text.replace('\\', '\\\\').replace('"', '\\"').replace(
        '\n', '\\n')


def check_template(kind, metric, template, where):
    """Raise MetricsError unless ``template`` is a usable PromQL template
    (a string with ``$selector`` and only known placeholders)."""
    if not isinstance(template, str) or not template.strip():
        raise base.MetricsError('%s: the %s query of %s must be a PromQL '
                                'string' % (where, kind, metric))
    parsed = string.Template(template)
    if not parsed.is_valid():
        raise base.MetricsError(
            '%s: the %s query of %s has a malformed $ placeholder (write $$ '
            'for a literal dollar)' % (where, kind, metric))
    names = set(parsed.get_identifiers())
    unknown = names - PLACEHOLDERS
    if unknown:
        raise base.MetricsError(
            '%s: the %s query of %s uses unknown placeholder(s) %s; known: '
            '%s' % (where, kind, metric,
                    ', '.join('$' + n for n in sorted(unknown)),
                    ', '.join('$' + n for n in sorted(PLACEHOLDERS))))
    if 'selector' not in names:
        raise base.MetricsError(
            '%s: the %s query of %s does not use $selector, so it cannot '
            'pick the %s' % (where, kind, metric,
                             'nodes' if kind == 'host' else 'instance'))
    return template


def load_metric_map(path):
    """The ``{'host': {...}, 'instance': {...}}`` overrides of a metric map
    file; ``None`` values remove a default."""
    try:
        with open(path, encoding='utf-8') as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise base.MetricsError('%s %s cannot be read: %s'
                                % (_MAP_OPTION, path, exc))
    except yaml.YAMLError as exc:
        raise base.MetricsError('%s %s is not valid YAML: %s'
                                % (_MAP_OPTION, path, exc))
    data = data or {}
    if not isinstance(data, dict):
        raise base.MetricsError('%s %s must map host and instance to '
                                'templates' % (_MAP_OPTION, path))
    unknown = set(data) - {'host', 'instance'}
    if unknown:
        raise base.MetricsError(
            '%s %s: unknown key(s) %s; use host and instance'
            % (_MAP_OPTION, path, ', '.join(sorted(map(str, unknown)))))
    overrides = {}
    for kind in ('host', 'instance'):
        section = data.get(kind) or {}
        if not isinstance(section, dict):
            raise base.MetricsError('%s %s: %s must map metric names to '
                                    'PromQL templates'
                                    % (_MAP_OPTION, path, kind))
        for metric in section:
            if metric not in base.METRICS:
                raise base.MetricsError(
                    '%s %s: %s metric %r is not a canonical metric name '
                    '(%s)' % (_MAP_OPTION, path, kind, metric,
                              ', '.join(base.METRICS)))
        overrides[kind] = dict(section)
    return overrides


class PrometheusSource(base.MetricsSource):
    """Host (node_exporter) and instance (libvirt exporter) metrics from
    Prometheus.

    Raises
    ------
    MetricsError
        At construction, naming the option: a URL that is not http(s), a
        missing CA file, a bad label name, label format or metric map.
    """

    name = 'prometheus'

    @classmethod
    def get_config_opts(cls):
        return metrics_conf.prometheus_opts

    def __init__(self, conf=None, history=None):
        super().__init__(conf, history=history)
        opts = self.options
        self.url, self._scrub, self._session = base.http_session(
            opts, 'metrics_prometheus', 'bearer_token', 'Bearer')
        for option in ('node_label', 'instance_label'):
            if not _LABEL_NAME.match(opts[option] or ''):
                raise base.MetricsError(
                    '[metrics_prometheus] %s %r is not a Prometheus label '
                    'name' % (option, opts[option]))
        base.check_regex_options(opts, 'metrics_prometheus',
                                 ('disk_devices', 'net_devices_excluded'))
        self._node_label_of = base.label_formatter(
            '[metrics_prometheus] node_label_format',
            opts.node_label_format, opts.node_map)
        self._templates = self._build_templates(opts.metric_map_file)
        self._timeout = self.limits['query_timeout_s']
        LOG.info('Metrics source: Prometheus at %s (host metrics: %s; '
                 'instance metrics: %s)', base.mask_url(self.url),
                 ', '.join(self.metrics()),
                 ', '.join(self.instance_metrics()) or 'none')

    def _build_templates(self, map_file):
        templates = {'host': dict(HOST_QUERIES),
                     'instance': dict(INSTANCE_QUERIES)}
        where = 'default metric map'
        if map_file:
            where = '%s %s' % (_MAP_OPTION, map_file)
            for kind, section in load_metric_map(map_file).items():
                for metric, template in section.items():
                    if template is None:
                        templates[kind].pop(metric, None)
                    else:
                        templates[kind][metric] = template
        for kind, section in templates.items():
            for metric, template in section.items():
                check_template(kind, metric, template, where)
        return templates

    # -- what it knows ---------------------------------------------------

    def metrics(self):
        return tuple(m for m in base.METRICS if m in self._templates['host'])

    def instance_metrics(self):
        return tuple(m for m in base.METRICS
                     if m in self._templates['instance'])

    def template(self, kind, metric):
        """The PromQL template used for ``metric`` (``host`` or
        ``instance``)."""
        return self._templates[kind][metric]

    # -- queries ---------------------------------------------------------

    def query_hosts(self, hosts, metric, window):
        label = self.options.node_label
        hosts_of = base.hosts_by_label(hosts, self._node_label_of,
                                       'label %s' % label)
        if not hosts_of:
            return {}
        values = list(hosts_of)
        if len(values) == 1:
            selector = '%s="%s"' % (label, promql_string(values[0]))
        else:
            selector = '%s=~"%s"' % (label, promql_string(
                '|'.join(re.escape(v) for v in values)))
        found = self._query_range('host', metric, label, selector, window)
        answer = {}
        for value, points in found.items():
            for host in hosts_of.get(value, ()):
                answer[host] = points
        return answer

    def query_instance(self, instance_uuid, metric, window):
        label = self.options.instance_label
        selector = '%s="%s"' % (label, promql_string(instance_uuid))
        found = self._query_range('instance', metric, label, selector,
                                  window)
        return found.get(instance_uuid, {})

    def render(self, kind, metric, label, selector, window):
        """The PromQL query of ``metric`` for ``selector``."""
        opts = self.options
        rate_window = max(int(math.ceil(window.step_s)),
                          opts.rate_window_min_s)
        return string.Template(self._templates[kind][metric]).substitute(
            selector=selector, label=label, window='%ds' % rate_window,
            disk_devices=promql_string(opts.disk_devices),
            net_devices_excluded=promql_string(opts.net_devices_excluded))

    def _query_range(self, kind, metric, label, selector, window):
        """``{label value: {bucket index: value}}``, in requests of at most
        :data:`MAX_POINTS_PER_REQUEST` evaluation steps."""
        step_ms = window.step_s * 1000.0
        if step_ms < 1 or abs(step_ms - round(step_ms)) > 1e-6:
            raise ValueError(
                'step_s %r is not a whole number of milliseconds, the '
                'resolution of Prometheus' % window.step_s)
        query = self.render(kind, metric, label, selector, window)
        found = {}
        for first in range(0, window.steps, MAX_POINTS_PER_REQUEST):
            last = min(window.steps, first + MAX_POINTS_PER_REQUEST)
            result = self._request(kind, metric, query, {
                'query': query,
                # Bucket i is evaluated at its end, start + (i + 1) * step.
                'start': '%.3f' % window.time_of(first + 1),
                'end': '%.3f' % window.time_of(last),
                'step': '%.3f' % window.step_s,
                # Whole milliseconds: Prometheus refuses a fraction in a
                # duration ("2.5s").  No longer than the caller waits.
                'timeout': '%dms' % max(1, round(
                    base.attempt_timeout(self._timeout)[0] * 1000)),
            })
            seen = set()
            for position, item in enumerate(result):
                what = 'result[%d]' % position
                if not isinstance(item, dict):
                    raise self._not_api(
                        '%s is %s, not an object'
                        % (what, base.describe_json(item)))
                labels = item.get('metric') or {}
                if not isinstance(labels, dict):
                    raise self._not_api(
                        '%s.metric is %s, not an object of labels'
                        % (what, base.describe_json(labels)))
                name = labels.get(label)
                if name is None:
                    raise base.MetricsError(
                        'the %s query of %s returned a series without the '
                        'label %r (%s); the template must aggregate by '
                        '$label: %s' % (kind, metric, label, labels, query))
                if not isinstance(name, str):
                    raise self._not_api(
                        '%s.metric.%s is %s, not a string'
                        % (what, label, base.describe_json(name)))
                if name in seen:
                    raise base.MetricsError(
                        'the %s query of %s returned several series for '
                        '%s=%r; the template must give one series per '
                        '%s: %s' % (kind, metric, label, name, kind, query))
                seen.add(name)
                points = found.setdefault(name, {})
                for stamp, text in self._pairs(item, what):
                    index = round((stamp - window.start)
                                  / window.step_s) - 1
                    try:
                        points[index] = float(text)
                    except (TypeError, ValueError):
                        continue
        return found

    def _pairs(self, item, what):
        """The ``(time, value)`` pairs of a result ``item``, the times as
        finite floats; MetricsError for anything else."""
        values = item.get('values')
        if values is None:
            return []
        if not isinstance(values, list):
            raise self._not_api('%s.values is %s, not a list'
                                % (what, base.describe_json(values)))
        pairs = []
        for position, pair in enumerate(values):
            if not isinstance(pair, list) or len(pair) != 2:
                raise self._not_api(
                    '%s.values[%d] is %s, not a [time, value] pair'
                    % (what, position, base.describe_json(pair)))
            stamp = pair[0]
            try:
                seconds = float(stamp)
            except (TypeError, ValueError):
                seconds = math.nan
            if isinstance(stamp, bool) or not math.isfinite(seconds):
                raise self._not_api(
                    '%s.values[%d] has the time %s, not a finite number of '
                    'seconds' % (what, position, base.describe_json(stamp)))
            pairs.append((seconds, pair[1]))
        return pairs

    def _where(self):
        return '%s/api/v1/query_range' % base.mask_url(self.url)

    def _not_api(self, what):
        """MetricsError for an answer that is not a query_range result."""
        return base.MetricsError(self._scrub(
            'Prometheus at %s sent a reply that is not a Prometheus '
            'query_range result: %s' % (self._where(), what)))

    def _request(self, kind, metric, query, params):
        where = self._where()
        LOG.debug('Prometheus %s: %s metric %s from %s to %s step %s',
                  where, kind, metric, params['start'], params['end'],
                  params['step'])
        reply = base.post_bounded(
            self._session, self.url + '/api/v1/query_range', params,
            self._timeout, 'Prometheus', where, '[metrics_prometheus] url',
            self._scrub)
        body = reply.json()
        status = reply.status_code
        error = ''
        if isinstance(body, dict) and body.get('error'):
            # The server's text: escaped and bounded.
            error = ': %s %s' % (logsafe.clip(str(body.get('errorType', '')),
                                              40),
                                 logsafe.clip(str(body['error']), 300))
        if status in (401, 403):
            raise base.MetricsError(self._scrub(
                'Prometheus at %s refused the credentials (HTTP %d); check '
                '[metrics_prometheus] username, password or bearer_token'
                % (where, status)))
        if status == 429 or status >= 500:
            raise base.MetricsUnavailable(self._scrub(
                'Prometheus at %s answered HTTP %d%s'
                % (where, status,
                   error or ' ' + logsafe.clip(reply.text, 200))))
        if not isinstance(body, dict) or 'status' not in body:
            raise base.MetricsError(self._scrub(
                '%s answered HTTP %d without a Prometheus API reply; is '
                '[metrics_prometheus] url the base URL of Prometheus?'
                % (where, status)))
        if body['status'] != 'success':
            raise base.MetricsError(self._scrub(
                'Prometheus at %s rejected the %s query of %s (HTTP %d%s); '
                'check the metric map: %s'
                % (where, kind, metric, status, error,
                   logsafe.clip(query, 4000))))
        data = body.get('data')
        if not isinstance(data, dict):
            raise self._not_api('data is %s, not an object'
                                % base.describe_json(data))
        if data.get('resultType') != 'matrix':
            raise base.MetricsError(
                'the %s query of %s gave a %s, not a range vector; the '
                'template must be an instant-vector expression: %s'
                % (kind, metric, data.get('resultType'), query))
        result = data.get('result')
        if result is None:
            return []
        if not isinstance(result, list):
            raise self._not_api('data.result is %s, not a list'
                                % base.describe_json(result))
        return result

    def close(self):
        self._session.close()
