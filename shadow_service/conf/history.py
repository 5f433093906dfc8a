"""Options of the ``[history]`` group: where measurements and decisions live.

``store`` picks the plugin (``sqlite`` embedded default, ``influxdb`` for a
real InfluxDB server, ``memory`` for tests and throw-away tools).  The
``sqlite_*`` and ``influx_*`` options only matter for their store; the
retention options apply to both persistent stores.
"""

from oslo_config import cfg

from shadow_service.conf import utils as conf_utils

#: Default of ``sqlite_series_cache_size``.
SQLITE_SERIES_CACHE_SIZE = 10000

history_group = cfg.OptGroup(
    name='history',
    title='History store options',
    help="""
Where nova-shadow keeps host, shadow and instance metrics, evaluation
records and scaling decisions, and how long it keeps them.
""")

store_opts = [
    cfg.StrOpt(
        'store',
        default='sqlite',
        choices=[
            ('sqlite', 'An SQLite file on this node (the embedded default).'),
            ('influxdb', 'An InfluxDB server speaking the 1.x HTTP API '
                         '(InfluxDB 1.x, 2.x through DBRP mappings, 3.x).'),
            ('memory', 'A Python list; lost when the process exits. For '
                       'tests only.'),
        ],
        help="""
The history store plugin (``nova_shadow.history`` entry point).

Related options:

* ``sqlite_path`` for ``sqlite``; the ``influx_*`` options for ``influxdb``.
"""),
    cfg.IntOpt(
        'raw_retention_days',
        default=30,
        min=0,
        help="""
Days raw points are kept before they are rolled up and removed.

Possible values:

* 0: keep raw points forever (no roll-up).
* A positive number of days.

Related options:

* ``rollup_interval_s``, ``rollup_retention_days``.
"""),
    cfg.IntOpt(
        'rollup_interval_s',
        default=3600,
        min=60,
        help="""
Width in seconds of one roll-up bucket (mean, min, max, count and last of
the ``value`` field of the metric measurements).

Related options:

* ``raw_retention_days``.
"""),
    cfg.IntOpt(
        'rollup_retention_days',
        default=365,
        min=0,
        help="""
Days roll-ups are kept.

Possible values:

* 0: keep roll-ups forever.
* A positive number of days (should exceed ``raw_retention_days``).
"""),
    cfg.IntOpt(
        'record_retention_days',
        default=365,
        min=0,
        help="""
Days evaluation records and scaling decisions are kept. Retention never
removes a younger record, whatever ``raw_retention_days`` says: a finished
evaluation can be looked up (``shadow_evaluation`` hint, ``nova-shadow
show``) and learned from for this long. Their age is measured on the cloud
driver's clock, the time base of everything written to history.

Possible values:

* 0: keep records forever.
* A positive number of days.
"""),
    cfg.IntOpt(
        'compact_interval_s',
        default=3600,
        min=0,
        help="""
Seconds between two retention passes of ``shadow-service`` over the
history store: raw points older than ``raw_retention_days`` are rolled up
and removed, roll-ups older than ``rollup_retention_days`` are removed. The
first pass runs when the service starts. Stores whose server applies
retention itself (InfluxDB retention policies) do nothing on a pass.

Possible values:

* 0: never compact from the service (run retention some other way).
* A positive number of seconds.

Related options:

* ``raw_retention_days``, ``rollup_interval_s``, ``rollup_retention_days``.
"""),
]

sqlite_opts = [
    cfg.StrOpt(
        'sqlite_path',
        default='/var/lib/nova-shadow/history.sqlite',
        help="""
Path of the SQLite database file of the ``sqlite`` store. The directory
must exist and be writable; the file is created on first use.

Possible values:

* An absolute path, or ``:memory:`` for a private in-memory database.
"""),
    cfg.IntOpt(
        'sqlite_series_cache_size',
        default=SQLITE_SERIES_CACHE_SIZE,
        min=1,
        help="""
Most series (a measurement and its tags: one per shadow and metric, per
host and metric, per instance and metric) whose row id each process of the
``sqlite`` store keeps in memory for writing, least recently written
dropped first; about 1 kB each. A write to a series not in the cache looks
its id up in the database's index instead. The catalogue itself lives in
the database, so this bounds memory, not what can be stored or read.

Possible values:

* A positive number of series. Raise it when more series than this are
  written in turn (for example many hosts' and instances' metrics every
  interval), so each write finds its id in memory.
"""),
    cfg.FloatOpt(
        'sqlite_busy_timeout',
        default=30.0,
        min=0.0,
        max=3600.0,
        help="""
Seconds a read or write of the ``sqlite`` store waits for a database file
another connection holds locked (another process writing, a backup)
before it fails (``database is locked``). The store serves one call at a
time meanwhile, so a long wait holds up its other callers too.

Possible values:

* 0 to 3600 seconds; 0 fails at once on a locked file.
"""),
]

influx_opts = [
    cfg.URIOpt(
        'influx_url',
        default='http://127.0.0.1:8086',
        schemes=['http', 'https'],
        help="""
Base URL of the InfluxDB HTTP API (the 1.x ``/write`` and ``/query``
endpoints; for InfluxDB 2.x the same port serves them through DBRP
mappings, for 3.x through its v1 compatibility API).
"""),
    cfg.StrOpt(
        'influx_database',
        default='nova_shadow',
        help="""
Database to write to (on InfluxDB 2.x: the database name of a DBRP mapping).

Related options:

* ``influx_create_database``.
"""),
    cfg.StrOpt('influx_username', help='User name for InfluxDB 1.x auth '
               '(2.x/3.x: any name, with the token as password).'),
    cfg.StrOpt('influx_password', secret=True,
               help='Password for ``influx_username``.'),
    cfg.StrOpt('influx_token', secret=True, help="""
API token sent as ``Authorization: Token <token>`` (InfluxDB 2.x and 3.x).
Takes precedence over user name and password.
"""),
    cfg.BoolOpt('influx_create_database', default=True, help="""
Create ``influx_database`` at start-up if it does not exist. If False, a
missing database is an error at start-up.
"""),
    cfg.BoolOpt('influx_manage_retention', default=True, help="""
Create the ``nova_shadow_raw`` (default), ``nova_shadow_rollup`` and
``nova_shadow_records`` retention policies and the roll-up continuous
queries at start-up (InfluxDB 1.x); records (evaluations, scaling
decisions, instance events, ranking outcomes, host scores, demand
forecasts) are then written to ``nova_shadow_records``. Set to False on
2.x/3.x, where the bucket or database retention is managed on the server
(everything is then written to the database's default policy).

Related options:

* ``raw_retention_days``, ``rollup_interval_s``, ``rollup_retention_days``,
  ``record_retention_days``.
"""),
    cfg.IntOpt('influx_batch_size', default=5000, min=1, max=100000, help="""
Points sent in one ``/write`` request.
"""),
    cfg.IntOpt('influx_buffer_size', default=500000, min=1, help="""
Most points held in memory while waiting to be written (for example while
the server is down). When it is full the oldest points are dropped, counted
in the ``dropped`` counter and logged.

Related options:

* ``influx_batch_size``, ``influx_retry_backoff_max_s``.
"""),
    cfg.FloatOpt('influx_flush_interval_s', default=1.0, min=0.01, help="""
Longest time a point waits in the buffer before a (partial) batch is sent.
"""),
    cfg.FloatOpt('influx_retry_backoff_s', default=0.5, min=0.01, help="""
First wait after a failed write; doubles on each further failure.

Related options:

* ``influx_retry_backoff_max_s``.
"""),
    cfg.FloatOpt('influx_retry_backoff_max_s', default=30.0, min=0.01,
                 help='Longest wait between two write attempts.'),
    cfg.FloatOpt('influx_timeout_s', default=10.0, min=0.1,
                 help='HTTP timeout of one request to InfluxDB.'),
    cfg.FloatOpt('influx_startup_timeout_s', default=10.0, min=0, help="""
How long start-up waits for the server to answer ``/ping`` before it fails
with a clear error.
"""),
    cfg.BoolOpt('influx_verify_tls', default=True,
                help='Verify the server certificate for https URLs.'),
    cfg.FloatOpt('influx_close_timeout_s', default=30.0, min=0, help="""
How long closing the store waits for buffered points to be written;
points still buffered then are counted as dropped and logged.
"""),
]

ALL_OPTS = store_opts + sqlite_opts + influx_opts


def register_opts(conf):
    conf_utils.register_group_opts(conf, history_group, ALL_OPTS)


def list_opts():
    return {history_group: ALL_OPTS}


def settings(conf=None, **overrides):
    """The ``[history]`` values as a dict: from ``conf`` (registering the
    options on it if needed) or the defaults, then ``overrides`` that are
    not None. Unknown override names raise TypeError."""
    names = {opt.dest for opt in ALL_OPTS}
    unknown = set(overrides) - names
    if unknown:
        raise TypeError('unknown history option(s): %s'
                        % ', '.join(sorted(unknown)))
    if conf is None:
        values = {opt.dest: opt.default for opt in ALL_OPTS}
    else:
        register_opts(conf)
        group = conf[history_group.name]
        values = {name: group[name] for name in names}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return values
