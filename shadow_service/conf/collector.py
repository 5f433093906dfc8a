"""Options of the ``[collector]`` group: the sample collector.

The collector is the HTTP endpoint (``POST /v1/samples``) shadows on a
real cloud send their loadgen samples to, each with its own write-only
token.  ``shadow-service`` starts it when the cloud driver needs it (the
``openstack`` driver with a shadow network).  See
``doc/source/openstack.rst``.
"""

from oslo_config import cfg

from shadow_service.conf import utils as conf_utils

collector_group = cfg.OptGroup(
    name='collector',
    title='Sample collector options',
    help="""
The HTTP endpoint shadows post their samples to.  Guests on the shadow
network must be able to reach ``advertised_url``; nothing else is served
on that port.
""")

collector_opts = [
    cfg.BoolOpt(
        'enabled',
        default=True,
        help="""
Start the collector when the cloud driver's shadows can reach it (the
``openstack`` driver with ``[openstack] network`` set).  Off: samples come
back through the console log only.
"""),
    cfg.HostAddressOpt(
        'host',
        default='0.0.0.0',
        help="""
Address the collector listens on.
"""),
    cfg.PortOpt(
        'port',
        default=8787,
        help="""
TCP port the collector listens on.  0 picks a free port as the collector
starts; with ``advertised_url`` unset, the URL given to the shadows then
carries the port it got (the lab runs it so).

Related options:

* ``advertised_url`` must use the port guests reach it on.
"""),
    cfg.URIOpt(
        'advertised_url',
        schemes=['http', 'https'],
        help="""
URL guests post their samples to, ``http(s)://HOST:PORT/v1/samples``.

Possible values:

* Unset: ``http(s)://<host>:<port>/v1/samples`` built from ``host`` and
  ``port``, which is only possible when ``host`` is a specific address
  (not ``0.0.0.0``).
* The address of this service as the shadow network sees it (a floating
  IP, a provider network address or a load balancer).
"""),
    cfg.IntOpt(
        'max_body_bytes',
        default=1024 * 1024,
        min=1024,
        max=64 * 1024 * 1024,
        help="""
Largest request body accepted; larger ones are refused with 413 before
they are read.  loadgen sends at most 256 kB per request.
"""),
    cfg.IntOpt(
        'max_line_bytes',
        default=4096,
        min=256,
        max=1024 * 1024,
        help="""
Longest sample line accepted; a longer line is rejected on its own.
"""),
    cfg.FloatOpt(
        'rate_limit',
        default=5.0,
        min=0.1,
        help="""
Requests per second one token may make on average; more get 429 with a
``Retry-After`` header.

Related options:

* ``rate_burst``
"""),
    cfg.IntOpt(
        'rate_burst',
        default=20,
        min=1,
        help="""
Requests one token may make at once before ``rate_limit`` applies.
"""),
    cfg.FloatOpt(
        'max_clock_skew',
        default=60.0,
        min=0.0,
        help="""
Seconds a sample's time may differ from the time it arrives.  A sample
further off (a guest without a synchronised clock) is stamped with its
arrival time instead.
"""),
    cfg.FloatOpt(
        'token_retention',
        default=3600.0,
        min=0.0,
        help="""
Seconds a finished evaluation's tokens are remembered, so late posts get
410 (the loadgen in the guest then stops) instead of 404.
"""),
    cfg.StrOpt(
        'tls_cert_file',
        help="""
PEM certificate chain of the collector; with ``tls_key_file`` the
collector speaks HTTPS only, and ``advertised_url`` must be ``https://``.
"""),
    cfg.StrOpt(
        'tls_key_file',
        help="""
PEM private key of ``tls_cert_file``.
"""),
]


def register_opts(conf):
    conf_utils.register_group_opts(conf, collector_group, collector_opts)


def list_opts():
    return {collector_group: collector_opts}
