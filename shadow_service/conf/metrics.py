"""Options of the ``[metrics]`` group and of each metrics source plugin.

``[metrics] source`` picks the plugin that reads per-host and per-instance
utilisation history from the monitoring the operator already runs
(``none``, ``history``, ``prometheus``, ``influxdb``; see
``doc/source/metrics.rst``).  The query limits (timeout, retries, range,
points) in ``[metrics]`` apply to every source.  Each plugin's own options
live in its own group, ``[metrics_<plugin name>]``, and are returned by the
plugin's ``get_config_opts()``; the built-in ones are defined here so the
help text stays with the other option modules.
"""

import logging

from oslo_config import cfg

from shadow_service.conf import utils as conf_utils

LOG = logging.getLogger(__name__)

#: Stevedore namespace of the metrics source plugins.
NAMESPACE = 'nova_shadow.metrics'

#: Whole disks, not partitions, device-mapper or loop devices (a partition
#: or an LVM volume would count the same I/O twice).
DEFAULT_DISK_DEVICES = r'(sd[a-z]+|vd[a-z]+|xvd[a-z]+|hd[a-z]+|nvme\d+n\d+)'

metrics_group = cfg.OptGroup(
    name='metrics',
    title='Metrics source options',
    help="""
Where nova-shadow reads the utilisation history of hosts and instances
(CPU, steal, memory, disk, network) that the operator's monitoring already
collects, and the limits every query of that source keeps.
""")

source_opts = [
    cfg.StrOpt(
        'source',
        default='none',
        choices=[
            ('none', 'No monitoring is read; every series is missing.'),
            ('history', 'The ``host_metric`` and ``instance_metric`` points '
                        'of the history store (what the digital twin '
                        'writes).'),
            ('prometheus', 'A Prometheus server scraping node_exporter '
                           '(hosts) and a libvirt exporter (instances).'),
            ('influxdb', 'An InfluxDB database written by Telegraf '
                         '(hosts).'),
        ],
        help="""
The metrics source plugin (``nova_shadow.metrics`` entry point).

Related options:

* ``[history] store`` for ``history``; the ``[metrics_prometheus]`` and
  ``[metrics_influxdb]`` groups for the other two.
"""),
    cfg.FloatOpt(
        'query_timeout_s',
        default=10.0,
        min=0.1,
        max=300.0,
        help="""
Seconds one request to the metrics backend may take, from connecting to
the last byte of its answer (a server that trickles its answer is cut off
too). A query that fails this way is retried.

Related options:

* ``query_retries``, ``query_retry_backoff_s``: a query gives up after
  about (1 + query_retries) * query_timeout_s plus the backoff waits.
"""),
    cfg.IntOpt(
        'query_retries',
        default=2,
        min=0,
        max=10,
        help="""
Further attempts after a query failed for a reason that may pass (server
unreachable, timeout, HTTP 5xx or 429). Rejected queries and refused
credentials are not retried.

Possible values:

* 0: try once.
* A positive number of further attempts.

Related options:

* ``query_retry_backoff_s``.
"""),
    cfg.FloatOpt(
        'query_retry_backoff_s',
        default=0.5,
        min=0.0,
        max=60.0,
        help="""
Seconds to wait before the first retry of a failed query; the wait doubles
for each further retry, up to ``query_retry_backoff_max_s``.
"""),
    cfg.FloatOpt(
        'query_retry_backoff_max_s',
        default=5.0,
        min=0.0,
        max=300.0,
        help='Longest wait between two attempts of one query.'),
    cfg.IntOpt(
        'max_range_days',
        default=400,
        min=1,
        max=3660,
        help="""
Longest time range, in days, one series query may cover. A longer range is
refused with an error that names this option.

Related options:

* ``max_points``.
"""),
    cfg.IntOpt(
        'max_points',
        default=50000,
        min=10,
        max=1000000,
        help="""
Most grid steps one series may have ((end - start) / step). A query asking
for more is refused with an error that names this option; ask for a coarser
step instead. Prometheus allows 11,000 points per request: longer series
are read in several requests.
"""),
    cfg.IntOpt(
        'hosts_per_query',
        default=50,
        min=1,
        max=1000,
        help="""
Most hosts read in one backend query by ``host_series_many``; more hosts
are split into several queries.
"""),
]

prometheus_group = cfg.OptGroup(
    name='metrics_prometheus',
    title='Prometheus metrics source options',
    help="""
Options of the ``prometheus`` metrics source: a Prometheus server (or any
server with the Prometheus HTTP query API) that scrapes node_exporter on
each compute host and a libvirt exporter for the instances.
""")

prometheus_opts = [
    cfg.URIOpt(
        'url',
        default='http://127.0.0.1:9090',
        schemes=['http', 'https'],
        help="""
Base URL of the Prometheus HTTP API; ``/api/v1/query_range`` is appended.
Include a path prefix if Prometheus is served under one
(``https://monitor.example.com/prometheus``). Credentials in the URL are
used as basic auth and are never logged.
"""),
    cfg.StrOpt(
        'username',
        help="""
User name for HTTP basic auth (Prometheus ``web.config.file``
``basic_auth_users``, or a proxy in front of it).

Related options:

* ``password``; ``bearer_token`` takes precedence.
"""),
    cfg.StrOpt(
        'password',
        secret=True,
        help='Password for ``username``.'),
    cfg.StrOpt(
        'bearer_token',
        secret=True,
        help="""
Token sent as ``Authorization: Bearer <token>`` (a proxy in front of
Prometheus, or a hosted Prometheus API). Takes precedence over
``username`` and ``password``.
"""),
    cfg.StrOpt(
        'ca_file',
        help="""
CA bundle (PEM file) that signs the server certificate of an https URL.

Possible values:

* Unset: the system's CA bundle.
* A path to a PEM file.

Related options:

* ``verify_tls``.
"""),
    cfg.BoolOpt(
        'verify_tls',
        default=True,
        help='Verify the server certificate of an https URL.'),
    cfg.StrOpt(
        'node_label',
        default='instance',
        help="""
The Prometheus label that names a compute host's node_exporter target.

Related options:

* ``node_label_format``, ``node_map``: how a Nova host name becomes this
  label's value.
"""),
    cfg.StrOpt(
        'node_label_format',
        default='{host}:9100',
        help="""
How a Nova host name becomes the value of ``node_label``; ``{host}`` is
replaced by the Nova host name (``nova-manage`` / ``openstack hypervisor
list`` host).

Possible values:

* ``{host}:9100``: the default scrape target of node_exporter.
* ``{host}``: when relabelling already put the bare host name there.
* ``{host}.example.com:9100`` and the like.

Related options:

* ``node_map`` overrides it per host.
"""),
    cfg.DictOpt(
        'node_map',
        default={},
        help="""
Explicit ``node_label`` values for some Nova hosts, as
``nova-host:label-value`` pairs; everything after the first colon is the
value (``cmp1:10.0.0.11:9100``). Hosts not listed use
``node_label_format``.
"""),
    cfg.StrOpt(
        'instance_label',
        default='uuid',
        help="""
The Prometheus label that holds the Nova instance UUID on the libvirt
exporter's ``libvirt_domain_*`` series.

Possible values:

* ``uuid``: exporters that label every domain series with its UUID (the
  libvirt domain UUID is the Nova instance UUID).
* ``instanceId``: inovex's prometheus-libvirt-exporter.
* Any other label name.

Related options:

* ``metric_map_file``: for an exporter that only puts the UUID on an info
  series, override the instance queries with a join.
"""),
    cfg.StrOpt(
        'metric_map_file',
        help="""
YAML file that overrides or adds PromQL templates, per canonical metric
name, under the keys ``host`` and ``instance``. A null value removes a
default. Templates use ``$selector`` (the label matcher of the hosts or the
instance), ``$label`` (the label to aggregate by: ``node_label`` or
``instance_label``), ``$window`` (the window of ``rate()`` and of a
gauge's ``avg_over_time()``), ``$disk_devices`` and
``$net_devices_excluded``. See doc/source/metrics.rst for the defaults.

Possible values:

* Unset: the node_exporter and libvirt exporter defaults.
* A path to a YAML file.
"""),
    cfg.IntOpt(
        'rate_window_min_s',
        default=60,
        min=1,
        max=86400,
        help="""
Shortest window, in seconds, of ``rate()`` over counters and of
``avg_over_time()`` over gauges; the window is the query step or this,
whichever is longer. A rate needs at least two scrapes: keep it at four
times the scrape interval or more.
"""),
    cfg.StrOpt(
        'disk_devices',
        default=DEFAULT_DISK_DEVICES,
        help="""
Regular expression (RE2, matched whole) of the block devices whose I/O
counts (``$disk_devices``). The default counts whole disks only, so I/O is
not counted again for partitions, device-mapper or md devices.
"""),
    cfg.StrOpt(
        'net_devices_excluded',
        default='lo',
        help="""
Regular expression (RE2, matched whole) of the network interfaces whose
traffic does not count (``$net_devices_excluded``). On a compute host,
bridges and tap devices carry the same traffic as the physical interface:
exclude them, for example ``lo|tap.*|br.*|virbr.*|vnet.*|qbr.*|qvb.*|qvo.*``.
"""),
]

influxdb_group = cfg.OptGroup(
    name='metrics_influxdb',
    title='InfluxDB (Telegraf) metrics source options',
    help="""
Options of the ``influxdb`` metrics source: an InfluxDB database that
Telegraf's ``cpu``, ``mem``, ``diskio`` and ``net`` inputs write to, read
with InfluxQL over the 1.x HTTP API (InfluxDB 1.x; 2.x and 3.x through
their v1 compatibility API).
""")

influxdb_opts = [
    cfg.URIOpt(
        'url',
        default='http://127.0.0.1:8086',
        schemes=['http', 'https'],
        help="""
Base URL of the InfluxDB HTTP API; ``/query`` is appended. Credentials in
the URL are used as basic auth and are never logged.
"""),
    cfg.StrOpt(
        'database',
        default='telegraf',
        help='Database Telegraf writes to (on 2.x: a DBRP-mapped database).'),
    cfg.StrOpt(
        'retention_policy',
        help="""
Retention policy to read.

Possible values:

* Unset: the database's default retention policy.
* A retention policy name.
"""),
    cfg.StrOpt(
        'username',
        help='User name for InfluxDB basic auth.'),
    cfg.StrOpt(
        'password',
        secret=True,
        help='Password for ``username``.'),
    cfg.StrOpt(
        'token',
        secret=True,
        help="""
API token sent as ``Authorization: Token <token>`` (InfluxDB 2.x and 3.x).
Takes precedence over ``username`` and ``password``.
"""),
    cfg.StrOpt(
        'ca_file',
        help="""
CA bundle (PEM file) that signs the server certificate of an https URL;
unset uses the system's bundle.
"""),
    cfg.BoolOpt(
        'verify_tls',
        default=True,
        help='Verify the server certificate of an https URL.'),
    cfg.StrOpt(
        'host_tag',
        default='host',
        help="""
The tag that names the host in Telegraf's points (Telegraf's default is
``host``).

Related options:

* ``host_format``, ``host_map``.
"""),
    cfg.StrOpt(
        'host_format',
        default='{host}',
        help="""
How a Nova host name becomes the value of ``host_tag``; ``{host}`` is
replaced by the Nova host name.

Possible values:

* ``{host}``: Telegraf's hostname is the Nova host name.
* ``{host}.example.com`` and the like.

Related options:

* ``host_map`` overrides it per host.
"""),
    cfg.DictOpt(
        'host_map',
        default={},
        help="""
Explicit ``host_tag`` values for some Nova hosts, as ``nova-host:tag-value``
pairs. Hosts not listed use ``host_format``.
"""),
    cfg.StrOpt(
        'disk_devices',
        default=DEFAULT_DISK_DEVICES,
        help="""
Regular expression (matched whole) of the ``diskio`` ``name`` tags whose
I/O counts. The default counts whole disks only: Telegraf reports
partitions too, and their I/O is already in the disk's.
"""),
    cfg.StrOpt(
        'net_devices_excluded',
        default='lo',
        help="""
Regular expression (matched whole) of the ``net`` ``interface`` tags whose
traffic does not count. On a compute host, also exclude bridges and tap
devices, for example ``lo|tap.*|br.*|virbr.*|vnet.*|qbr.*|qvb.*|qvo.*``.
"""),
]

#: Built-in plugins' option groups, by entry point name.
BUILTIN_PLUGIN_OPTS = {
    'prometheus': (prometheus_group, prometheus_opts),
    'influxdb': (influxdb_group, influxdb_opts),
}


def plugin_group_name(plugin_name):
    """The option group of the metrics plugin called ``plugin_name``."""
    return 'metrics_%s' % plugin_name


def plugin_group(plugin_name):
    """The ``OptGroup`` of a plugin (a generic one for other plugins)."""
    if plugin_name in BUILTIN_PLUGIN_OPTS:
        return BUILTIN_PLUGIN_OPTS[plugin_name][0]
    return cfg.OptGroup(
        name=plugin_group_name(plugin_name),
        title='Options of the %s metrics source' % plugin_name)


def register_opts(conf):
    conf_utils.register_group_opts(conf, metrics_group, source_opts)
    for group, opts in BUILTIN_PLUGIN_OPTS.values():
        conf_utils.register_group_opts(conf, group, opts)


def register_plugin_opts(conf, plugin_name, opts):
    """Register a plugin's ``get_config_opts()`` in its own group."""
    if opts:
        conf_utils.register_group_opts(conf, plugin_group(plugin_name), opts)


def _plugin_opts():
    """``{plugin name: opts}`` from every installed plugin's
    ``get_config_opts()``."""
    from stevedore import extension

    def _failed(manager, entrypoint, exc):
        LOG.warning('Cannot load metrics source plugin %s: %s',
                    entrypoint.name, exc)

    manager = extension.ExtensionManager(
        NAMESPACE, invoke_on_load=False,
        on_load_failure_callback=_failed)
    return {ext.name: list(ext.plugin.get_config_opts())
            for ext in manager}


def list_opts():
    """``{group: opts}``: ``[metrics]`` and the group of every installed
    plugin that has options (each plugin's ``get_config_opts()``)."""
    by_plugin = {name: opts for name, (_group, opts)
                 in BUILTIN_PLUGIN_OPTS.items()}
    by_plugin.update(_plugin_opts())
    listed = {metrics_group: source_opts}
    for name in sorted(by_plugin):
        if by_plugin[name]:
            listed[plugin_group(name)] = by_plugin[name]
    return listed


def settings(conf):
    """The ``[metrics]`` values of ``conf`` as a dict (registering the
    options on it if needed)."""
    register_opts(conf)
    group = conf[metrics_group.name]
    return {opt.dest: group[opt.dest] for opt in source_opts}
