"""Options of the ``[sim]`` group: the digital twin (the ``sim`` driver).

The twin is a trace-driven cluster on a virtual clock; see
``doc/source/twin.rst``.  Its hardware, hosts and tenants come from a cluster
YAML file, its background load from a directory of real traces.
"""

from oslo_config import cfg
from oslo_config import types

from shadow_service.clouds.sim import noise
from shadow_service.conf import utils as conf_utils

sim_group = cfg.OptGroup(
    name='sim',
    title='Digital twin options',
    help="""
Options of the ``sim`` cloud driver: the digital twin nova-shadow uses when
no cloud is at hand (demo, benchmarks, tests).
""")

sim_opts = [
    cfg.StrOpt(
        'cluster_file',
        help="""
YAML file describing the twin's hardware classes, hosts and tenants.

Possible values:

* Unset: the bundled 16-host, 3-class cluster
  (``shadow_service/clouds/sim/data/cluster.yaml``).
* A path to a file of the same format.

Related options:

* ``trace_dir``: where the tenants' traces are read from.
"""),
    cfg.StrOpt(
        'trace_dir',
        help="""
Directory of utilisation traces the background tenants replay.

Possible values:

* Unset: the small sample bundled with nova-shadow.
* A directory laid out like the sample: ``bitbrains_rnd/<month>/N.csv.gz``
  (GWA-T-12 Bitbrains) and/or ``planetlab/<date>/<vm>`` (PlanetLab CoMon).
"""),
    cfg.IntOpt(
        'seed',
        default=0,
        min=0,
        help="""
Seed of everything random in the twin (tenant placement, classes of hosts
not in the cluster file, measurement noise). The same seed, cluster file,
traces and calls give the same samples.
"""),
    cfg.FloatOpt(
        'speedup',
        default=0.0,
        min=0.0,
        help="""
How much faster than real time the twin's clock runs.

Possible values:

* 0: as fast as the machine can compute (no sleeping; the default).
* A positive number: ``wait(s)`` also sleeps ``s / speedup`` real seconds,
  e.g. 60 makes a simulated minute last a real second.
"""),
    cfg.FloatOpt(
        'noise_pct',
        default=noise.NOISE_PCT,
        min=0.0,
        max=50.0,
        help="""
Standard deviation, in percent of the value, of the multiplicative
measurement noise of every shadow and VM sample the twin writes (metrics
listed in ``metric_noise_scale`` get a multiple of it).

The default is what the lab measured (``doc/source/lab.rst``): loadgen's
CPU throughput varied by a median coefficient of variation of 0.11
between half-second samples of one run. With less noise a few samples
make any ranking look certain.

Possible values:

* 0: no noise at all (shadow samples and host monitoring), for tests.
* A percentage up to 50.

Related options:

* ``metric_noise_scale``, ``host_noise_pct``.
"""),
    cfg.Opt(
        'metric_noise_scale',
        type=types.Dict(types.Float(min=0.0, max=10.0)),
        default=dict(noise.METRIC_NOISE_SCALE),
        help="""
Per metric, its samples' noise as a multiple of ``noise_pct``, for the
metrics that are noisier (or quieter) than CPU throughput. Metrics not
listed use 1.

The default is the lab's ratio of each metric's coefficient of variation
to CPU throughput's (disk IOPS and MB/s about twice, disk p95 latency
about 1.3 times).

Possible values:

* ``metric:multiple`` pairs separated by commas, multiples 0-10, e.g.
  ``disk_iops:2,disk_p95_latency_ms:1.3``; empty: every metric gets
  ``noise_pct``.

Related options:

* ``noise_pct``.
"""),
    cfg.FloatOpt(
        'host_noise_pct',
        default=noise.HOST_NOISE_PCT,
        min=0.0,
        max=50.0,
        help="""
Standard deviation, in percent of the value, of the multiplicative noise
of the host monitoring the twin writes (``host_metric``: averages over a
minute or more, so quieter than a shadow's samples). An assumption, not a
measurement.

Related options:

* ``noise_pct``: 0 turns this noise off too.
"""),
    cfg.StrOpt(
        'noise_stream',
        default=noise.NOISE_SHARED,
        choices=[(noise.NOISE_SHARED,
                  'one generator seeded by ``seed``, drawn from in the '
                  'order the samples are written: what a sample gets '
                  'depends on every draw before it'),
                 (noise.NOISE_KEYED,
                  'each sample\'s noise a function of ``seed``, the '
                  'sampled VM, shadow or host, the metric and the '
                  'sample\'s time alone')],
        help="""
Where the measurement noise of the twin's samples comes from. The size of
the noise is the same either way (``noise_pct``, ``metric_noise_scale``,
``host_noise_pct``).

With ``shared`` (the default), anything that changes how many samples are
written, or in what order (one more VM booted, a scale-in a few minutes
earlier), gives every later sample of every other VM and host other
noise. With ``keyed`` a sample keeps its noise whatever else the run
does, so two runs that differ in one VM's actions can be compared VM by
VM: a difference elsewhere is the actions', not the noise's. Host
monitoring read twice at the same time gets the same noise.

Related options:

* ``seed``, ``noise_pct``.
"""),
    cfg.FloatOpt(
        'sample_interval',
        default=1.0,
        min=0.1,
        max=3600.0,
        help="""
Seconds of simulated time between two samples of a shadow or VM (loadgen's
``interval_s``).

Related options:

* ``[shadow] sample_interval``: how often the evaluation reads them.
"""),
    cfg.FloatOpt(
        'host_metric_interval',
        default=60.0,
        min=1.0,
        max=3600.0,
        help="""
Seconds of simulated time between two ``host_metric`` samples of each host
(what host monitoring would report).
"""),
    cfg.StrOpt(
        'unknown_hosts',
        default='refuse',
        choices=[('refuse', 'a host the cluster file does not declare '
                  'cannot run shadows: it is unmeasured'),
                 ('derive', 'make one up: a hardware class and tenants '
                  'drawn from the seed and the name')],
        help="""
What the twin does with a host name its cluster file does not declare.

``derive`` lets the twin stand in for any cloud (for example Nova's test
computes ``host1``, ``host2``...); ``refuse`` makes such hosts unmeasured,
as on a real cloud where the host does not exist.

Related options:

* ``max_derived_hosts``, ``cluster_file``
"""),
    cfg.IntOpt(
        'max_derived_hosts',
        default=100,
        min=0,
        max=10000,
        help="""
Most hosts the twin makes up with ``unknown_hosts = derive``; further
unknown names are refused (each derived host costs memory and a day of
backfilled monitoring).
"""),
    cfg.FloatOpt(
        'backfill_hours',
        default=24.0,
        min=0.0,
        max=720.0,
        help="""
Hours of host monitoring history the twin writes for a host when it first
sees it, as if monitoring had been running before (feeds the forecasts).
"""),
    cfg.FloatOpt(
        'start_time',
        help="""
Unix time the twin's clock starts at. Whatever it is, the tenants' traces
replay from a week into their own time at 09:00 (the bundled Bitbrains
traces start on 2013-07-01), so only the timestamps change.

The twin's clock is the time base of everything it writes to history, and
the history's retention and the learners' lookbacks run on it: starting
near the wall clock keeps the service's retention pass and InfluxDB's
retention policies from treating the twin's points as years old.

Possible values:

* Unset: the latest 09:00 UTC of the wall clock when the twin starts.
* Any Unix time; tenants' traces wrap around their length.
"""),
    cfg.FloatOpt(
        'resize_duration',
        default=180.0,
        min=0.0,
        max=7200.0,
        help="""
Seconds from a resize request to the VM running on its new flavor.

An assumption, not a measurement: a resize on the same host (Nova's
``allow_resize_to_same_host``) stops the guest, copies or converts its
disk and boots it on the new flavor; three minutes is a typical figure
for a small local disk.

Related options:

* ``resize_downtime``: the part of it the guest is down.
"""),
    cfg.FloatOpt(
        'resize_downtime',
        default=60.0,
        min=0.0,
        max=7200.0,
        help="""
Seconds at the end of a resize during which the guest is down (it has shut
down on the old flavor and not yet booted on the new one): it serves
nothing.

An assumption: Nova waits up to ``shutdown_timeout`` (60 s by default) for
a clean shutdown, and a cloud image boots in tens of seconds.

Related options:

* ``resize_duration``: at most that long.
"""),
    cfg.FloatOpt(
        'migration_bandwidth_mbps',
        default=1000.0,
        min=1.0,
        max=400000.0,
        help="""
Megabits per second a live migration copies memory at; both hosts carry a
network stream of this size while it runs.

An assumption: one 1 Gbit/s link.  Nova's own ``[libvirt]
live_migration_bandwidth`` is 0 (no limit) by default.

Related options:

* ``migration_dirty_ratio``, ``migration_setup``.
"""),
    cfg.FloatOpt(
        'migration_dirty_ratio',
        default=0.3,
        min=0.0,
        max=10.0,
        help="""
Share of the VM's memory dirtied again while it is copied (copied a second
time); the duration is ``setup + RAM x (1 + ratio) / bandwidth``.  An
assumption.
"""),
    cfg.FloatOpt(
        'migration_setup',
        default=5.0,
        min=0.0,
        max=600.0,
        help="""
Seconds a live migration spends before copying memory (pre-checks,
destination set-up).  An assumption.
"""),
    cfg.FloatOpt(
        'migration_pause',
        default=0.5,
        min=0.0,
        max=60.0,
        help="""
Seconds the guest is paused at the end of a live migration (the last
dirty pages are copied).  Nova's ``[libvirt] live_migration_downtime``
default is 500 ms.
"""),
    cfg.FloatOpt(
        'migration_cpu_vcpus',
        default=0.5,
        min=0.0,
        max=1.0,
        help="""
Busy vCPUs the copy costs each of the two hosts while a live migration
runs (the hypervisor's migration thread).  An assumption.
"""),
    cfg.FloatOpt(
        'boot_duration',
        default=45.0,
        min=0.0,
        max=3600.0,
        help="""
Seconds from booting a sibling to it serving its share of the group's
load.  An assumption: scheduling, a cached image and a guest boot.
"""),
]


def register_opts(conf):
    conf_utils.register_group_opts(conf, sim_group, sim_opts)


def list_opts():
    return {sim_group: sim_opts}
