"""Options of the ``[prometheus]`` group: the daemons' own ``/metrics``.

Not to be confused with ``[metrics_prometheus]``, the Prometheus server
the ``prometheus`` metrics source *reads*: these options make
``shadow-service`` and ``shadow-watcher`` *export* metrics for a
Prometheus server to scrape (see ``doc/source/observability.rst``).
"""

from oslo_config import cfg

from shadow_service.conf import utils as conf_utils

prometheus_group = cfg.OptGroup(
    name='prometheus',
    title='Prometheus exporter of the daemons',
    help="""
Whether and where ``shadow-service`` and ``shadow-watcher`` serve their
metrics in the Prometheus text format (``GET /metrics``): evaluations by
outcome, shadow-host-seconds, RPC latency, the history store's points
written and dropped, the watcher's decisions by action, policy and
outcome.
""")

prometheus_opts = [
    cfg.BoolOpt(
        'enabled',
        default=False,
        help="""
Serve ``/metrics`` over HTTP.

When the port cannot be bound the daemon logs an error and runs on
without it.

Related options:

* ``host``, ``port``, ``watcher_port``: where.
"""),
    cfg.HostAddressOpt(
        'host',
        default='127.0.0.1',
        help="""
Address ``/metrics`` listens on.

The metrics name compute hosts, profiles and server ids; the default keeps
them on the loopback interface. Set the address of the interface your
Prometheus server scrapes (or ``0.0.0.0``) to export them.
"""),
    cfg.PortOpt(
        'port',
        default=9750,
        help="""
Port of ``shadow-service``'s ``/metrics``.

Related options:

* ``watcher_port``: ``shadow-watcher``'s, which may run on the same host
  with the same configuration file.
"""),
    cfg.PortOpt(
        'watcher_port',
        default=9751,
        help="""
Port of ``shadow-watcher``'s ``/metrics``.
"""),
]


def register_opts(conf):
    conf_utils.register_group_opts(conf, prometheus_group, prometheus_opts)


def list_opts():
    return {prometheus_group: prometheus_opts}
