"""The twin's engine: hosts, background tenants, workloads and a clock.

:class:`Twin` keeps a virtual clock that only moves when :meth:`Twin.advance`
is called, so a day passes in about a second.  While it moves, every running
workload (shadow or full VM) is evaluated on a regular sample grid against
its host's background tenants and the other workloads there, and what it
achieves is written to the history store with measurement noise, the way
loadgen inside a real guest would write it:

* ``shadow_sample`` (tags evaluation, shadow, host, profile, metric) for
  shadows, ``instance_metric`` (instance, host, metric) for full VMs;
* ``host_metric`` (host, metric) for what host monitoring could see.

Hidden state (tenants, traces, contention factors) stays in here; the
driver only exposes measurable things and :mod:`.oracle` reads the rest for
benchmarks.  Everything random comes from the seed, so a run repeats.
"""

import dataclasses
import hashlib
import logging
import math
import time

import numpy as np

from shadow_service import hostfacts
from shadow_service import measurements as names
from shadow_service.clouds.sim import cluster as cluster_mod
from shadow_service.clouds.sim import noise as noise_mod
from shadow_service.clouds.sim import traces
from shadow_service.clouds.sim import workload as workload_mod
from shadow_service.history import base as history_base

LOG = logging.getLogger(__name__)

#: 2013-07-01 00:00 UTC: time zero of the Bitbrains July 2013 traces.
TRACE_EPOCH = 1372636800.0
#: Where in the traces the clock starts: a week in, 09:00 (trace time).
TRACE_START_OFFSET_S = 7 * 86400 + 9 * 3600
#: The start of the traces' first run (kept for callers that start the
#: clock in the traces' own time).
DEFAULT_START = TRACE_EPOCH + TRACE_START_OFFSET_S


def default_start(now=None):
    """The clock's default start: the latest 09:00 UTC not after ``now``
    (the wall clock).  The twin's clock then reads like the wall clock
    (history stores, retention and lookbacks all see current times) while
    the traces replay from a week in, at the same time of day."""
    now = time.time() if now is None else float(now)
    start = math.floor(now / 86400.0) * 86400.0 + 9 * 3600.0
    return start - 86400.0 if start > now else start

HOST_METRICS = hostfacts.HOST_METRICS

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(state):
    """splitmix64's output for each ``state`` (uint64 arrays, wrapping):
    the next value of a generator whose state is ``state``."""
    z = state + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def _key_hash(seed, key):
    """64 bits of the seed and a key (a tuple of names)."""
    text = '\x1f'.join(str(part) for part in (seed,) + tuple(key))
    digest = hashlib.blake2b(text.encode('utf-8'), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, 'little'))


def keyed_normal(seed, key, times):
    """Standard normal deviates, one per time in ``times``, each a function
    of ``seed``, ``key`` (a tuple of names, e.g. the sampled object and the
    metric) and the time (to the millisecond) alone: no state, so the same
    sample gets the same deviate whatever else is drawn, in any order.

    A counter-based generator: the time is hashed with splitmix64, mixed
    with a hash of the seed and key, and two more splitmix64 outputs from
    there are two uniforms that Box-Muller turns into a normal deviate.
    """
    times = np.asarray(times, dtype=float)
    shape = times.shape
    millis = np.rint(np.atleast_1d(times).ravel() * 1000.0).astype(
        np.int64).view(np.uint64)
    state = _splitmix64(_splitmix64(millis) ^ _key_hash(seed, key))
    first = _splitmix64(state)
    second = _splitmix64(state + _GOLDEN)
    # 53-bit uniforms: (0, 1] for the logarithm, [0, 1) for the angle.
    u1 = ((first >> np.uint64(11)).astype(float) + 1.0) * 2.0 ** -53
    u2 = (second >> np.uint64(11)).astype(float) * 2.0 ** -53
    normal = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    return normal.reshape(shape)


def grid_times(start, end, step):
    """Multiples of ``step`` in ``(start, end]`` (a grid anchored at time
    zero, so samples fall at the same instants however the clock is
    advanced)."""
    first = math.floor(start / step + 1e-9) + 1
    last = math.floor(end / step + 1e-9)
    return np.arange(first, last + 1, dtype=float) * step


@dataclasses.dataclass
class Workload:
    """A shadow or a full VM running a loadgen profile on one host."""

    workload_id: str
    kind: str               # 'shadow' or 'vm'
    host: str
    profile: object         # loadgen.profiles.Profile
    vcpus: int
    ram_mb: int
    disk_gb: int
    started_at: float
    evaluation_id: str = ''
    # When it stops: set by stop_workload, or in advance for a VM with a
    # known lifetime (it departs by itself when the clock passes it).
    stopped_at: float = None
    # The instance a VM's samples are reported for.  A resized or migrated
    # VM continues as a new workload (new flavor or host) under the same
    # instance id; None: the workload id.
    instance_id: str = None
    # Where the profile's own clock starts (its elapsed time is measured
    # from here): a resized or migrated VM keeps its first segment's, so
    # a trace it replays goes on where it was; None: ``started_at``.
    profile_start: float = None
    # Server group of a VM: the members of a group share the profile's
    # load evenly among those running (a load-balanced scale-out group).
    group: str = None
    # The name keyed measurement noise knows the VM by; None: the
    # reported id (a sibling gets one numbered within its group, as its
    # instance id is numbered across the whole twin).
    noise_name: str = None

    @property
    def profile_origin(self):
        return (self.started_at if self.profile_start is None
                else self.profile_start)

    @property
    def reported_id(self):
        return self.instance_id or self.workload_id

    @property
    def noise_key(self):
        """What keyed noise draws this workload's samples by."""
        return (self.kind, self.noise_name or self.reported_id)

    def running_at(self, when):
        """Started and not yet stopped at ``when``."""
        return self.started_at <= when and (
            self.stopped_at is None or self.stopped_at > when)

    def active_at(self, times):
        times = np.asarray(times, dtype=float)
        active = times >= self.started_at
        if self.stopped_at is not None:
            active &= times < self.stopped_at
        return active


def _interpolate(series, index, following, weight):
    return series[index] * (1 - weight) + series[following] * weight


class SimHost:
    """One host: hardware class and background tenants' demand."""

    def __init__(self, spec, library, assumptions, trace_epoch=TRACE_EPOCH):
        self.name = spec.name
        # Clock time at which the traces' time zero is replayed.
        self.trace_epoch = float(trace_epoch)
        self.host_class = spec.host_class
        self.spec = spec
        self.assumptions = assumptions
        self.tenants = []
        for tenant in spec.tenants:
            trace = (None if tenant.neighbour is not None
                     else library.load(tenant.kind, tenant.path))
            self.tenants.append((tenant, trace))

    @property
    def allocated_vcpus(self):
        return sum(t.vcpus or tr.vcpus for t, tr in self.tenants)

    @property
    def allocated_ram_mb(self):
        return sum(t.ram_mb or tr.ram_mb for t, tr in self.tenants)

    def background(self, times):
        """Background demand (``workload.RESOURCES`` arrays) at ``times``,
        linearly interpolated between the traces' 300 s steps."""
        position = (np.asarray(times, dtype=float) - self.trace_epoch) / \
            traces.STEP_S
        low = np.floor(position).astype(np.int64)
        weight = position - low
        total = {name: np.zeros_like(position)
                 for name in workload_mod.RESOURCES}
        per_core = self.assumptions['mem_gbps_per_busy_core']
        io_kb = self.assumptions['io_size_kb']
        for tenant, trace in self.tenants:
            if tenant.neighbour is not None:
                kind = tenant.neighbour
                level = kind.level(np.asarray(times, dtype=float)
                                   - self.trace_epoch, tenant.phase_s)
                total['busy_vcpus'] += kind.busy_vcpus * level
                total['mem_gbps'] += kind.mem_gbps * level
                total['disk_iops'] += kind.disk_iops * level
                total['net_mbps'] += kind.net_mbps * level
                continue
            vcpus = tenant.vcpus or trace.vcpus
            index = (low + tenant.offset_steps) % trace.steps
            following = (index + 1) % trace.steps
            busy = _interpolate(trace.cpu_util, index, following,
                                weight) * vcpus
            total['busy_vcpus'] += busy
            total['mem_gbps'] += busy * per_core
            total['disk_iops'] += _interpolate(
                trace.disk_kbps, index, following, weight) / io_kb
            total['net_mbps'] += _interpolate(
                trace.net_kbps, index, following, weight) / 1024.0
        return total


class Twin:
    """A trace-driven cluster on a virtual clock.

    Parameters
    ----------
    cluster : shadow_service.clouds.sim.cluster.Cluster
    history : shadow_service.history.base.HistoryStore or None
        Where samples go; None keeps nothing (benchmarks).
    seed : int
        Seeds the measurement noise.
    start_time : float, optional
        Unix time the clock starts at (default: :func:`default_start`, the
        latest 09:00 UTC of the wall clock).  The traces replay from
        :data:`TRACE_START_OFFSET_S` into their time at that moment.
    noise_pct : float
        Standard deviation of the multiplicative noise of shadow and VM
        samples, % (default :data:`.noise.NOISE_PCT`); 0: no noise at
        all, host monitoring included.
    metric_noise_scale : dict, optional
        ``{metric: multiple of noise_pct}`` for the samples of metrics
        noisier than the rest (default :data:`.noise.METRIC_NOISE_SCALE`).
    host_noise_pct : float, optional
        Standard deviation of host monitoring's noise, % (default
        :data:`.noise.HOST_NOISE_PCT`; always 0 when ``noise_pct`` is 0).
    noise_stream : str, optional
        ``'shared'`` (default): the noise is drawn in sequence from one
        generator seeded by ``seed``, so what one sample gets depends on
        every draw before it; ``'keyed'``: each sample's deviate is
        :func:`keyed_normal` of the seed, the sampled object, the metric
        and the sample's time.
    sample_interval_s, host_metric_interval_s : float
        Sample grids of workloads and of host monitoring.
    """

    def __init__(self, cluster, history=None, seed=0,
                 start_time=None, noise_pct=noise_mod.NOISE_PCT,
                 sample_interval_s=5.0, host_metric_interval_s=60.0,
                 metric_noise_scale=None,
                 host_noise_pct=noise_mod.HOST_NOISE_PCT,
                 noise_stream=noise_mod.NOISE_SHARED):
        if noise_stream not in noise_mod.NOISE_STREAMS:
            raise ValueError('noise_stream %r: not one of %s' % (
                noise_stream, ', '.join(noise_mod.NOISE_STREAMS)))
        self.cluster = cluster
        self.history = history
        self.seed = seed
        if start_time is None:
            start_time = default_start()
        self.clock = float(start_time)
        self.trace_epoch = self.clock - TRACE_START_OFFSET_S
        self.noise_pct = float(noise_pct)
        self.metric_noise_scale = dict(
            noise_mod.METRIC_NOISE_SCALE if metric_noise_scale is None
            else metric_noise_scale)
        self.host_noise_pct = (float(host_noise_pct) if self.noise_pct
                               else 0.0)
        self.noise_stream = noise_stream
        self.sample_interval_s = sample_interval_s
        self.host_metric_interval_s = host_metric_interval_s
        self._hosts = {}
        self.workloads = {}
        self._by_host = {}
        self._groups = {}
        self._rng = np.random.default_rng(seed)
        self._last_host_metric = self.clock

    # -- hosts and workloads -------------------------------------------
    def host(self, name):
        """The :class:`SimHost` called ``name`` (made on first use)."""
        if name not in self._hosts:
            spec = self.cluster.host_spec(name)
            self._hosts[name] = SimHost(
                spec, self.cluster.library, self.cluster.assumptions,
                trace_epoch=self.trace_epoch)
            LOG.debug('twin host %s: class %s, %d tenants', name,
                      spec.host_class.name, len(spec.tenants))
        return self._hosts[name]

    @property
    def known_hosts(self):
        return list(self._hosts)

    def start_workload(self, workload):
        self.host(workload.host)
        self.workloads[workload.workload_id] = workload
        self._by_host.setdefault(workload.host, {})[
            workload.workload_id] = workload
        if workload.group is not None:
            self._groups.setdefault(workload.group, []).append(workload)
        return workload

    def group_share(self, workload, times):
        """The share of its group's load ``workload`` carries at ``times``
        (1 for a VM in no group)."""
        if workload.group is None:
            return 1.0
        members = sum(m.active_at(times).astype(float)
                      for m in self._groups.get(workload.group, ()))
        return 1.0 / np.maximum(members, 1.0)

    def stop_workload(self, workload_id):
        workload = self.workloads.get(workload_id)
        if workload is not None and workload.running_at(self.clock):
            workload.stopped_at = self.clock
        return workload

    def running(self, kind=None, host=None):
        pool = (self.workloads if host is None
                else self._by_host.get(host, {}))
        return [w for w in pool.values()
                if w.running_at(self.clock)
                and (kind is None or w.kind == kind)]

    def claimed(self, kind=None, host=None):
        """Workloads holding resources now: running, or booting (placed
        but not yet up, as a sibling during its boot or the new flavor
        of a resize), and not yet stopped.  What Nova's placement counts:
        an instance's allocation is claimed when it is scheduled, not
        when its guest comes up."""
        pool = (self.workloads if host is None
                else self._by_host.get(host, {}))
        return [w for w in pool.values()
                if (w.stopped_at is None or w.stopped_at > self.clock)
                and (kind is None or w.kind == kind)]

    def workloads_on(self, host, start, end):
        return [w for w in self._by_host.get(host, {}).values()
                if w.started_at < end
                and (w.stopped_at is None or w.stopped_at > start)]

    # -- the model ------------------------------------------------------
    def evaluate(self, host_name, times, extra=()):
        """True (noise-free) state of ``host_name`` at ``times``.

        ``extra`` are hypothetical workloads added on top of the ones the
        twin runs (the oracle uses this).  Returns
        ``(factors, total_demand, {workload_id: metrics})``.
        """
        host = self.host(host_name)
        times = np.atleast_1d(np.asarray(times, dtype=float))
        total = host.background(times)
        candidates = self.workloads_on(host_name, times[0],
                                       times[-1] + 1) + list(extra)
        wanted = {}
        for work in candidates:
            active = work.active_at(times).astype(float)
            need = workload_mod.demand(
                work.profile, work.vcpus, host.host_class,
                self.cluster.assumptions, times - work.profile_origin,
                share=self.group_share(work, times))
            for name in workload_mod.RESOURCES:
                need[name] = need[name] * active
            need['cpu_vcpus'] = need['cpu_vcpus'] * active
            need['net_rps'] = need['net_rps'] * active
            need['disk_in_flight'] = need['disk_in_flight'] * active
            wanted[work.workload_id] = (work, need, active)
            for name in workload_mod.RESOURCES:
                total[name] = total[name] + need[name]
        factors = workload_mod.host_factors(total, host.host_class,
                                            self.cluster.assumptions)
        metrics = {}
        for workload_id, (work, need, active) in wanted.items():
            achieved = workload_mod.achieved(
                work.profile, work.vcpus, need, factors, host.host_class,
                self.cluster.assumptions)
            metrics[workload_id] = (achieved, active)
        return factors, total, metrics

    def host_observation(self, host_name, times):
        """``{metric: array}`` that host monitoring sees (no noise)."""
        host = self.host(host_name)
        factors, total, metrics = self.evaluate(host_name, times)
        hc = host.host_class
        busy = np.minimum(total['busy_vcpus'], hc.cores)
        return {
            'cpu_util_pct': 100.0 * busy / hc.cores,
            'cpu_steal_pct': 100.0 * factors['steal'],
            'mem_bandwidth_gbps': total['mem_gbps'] * factors['mem_share'],
            'disk_iops': total['disk_iops'] * factors['disk_share'],
            'disk_p95_latency_ms': factors['disk_p95_latency_ms'],
            'net_mbps': total['net_mbps'] * factors['net_share'],
        }

    # -- the clock ------------------------------------------------------
    def sample_noise_pct(self, metric):
        """Noise (%) of a shadow's or VM's samples of ``metric``."""
        return noise_mod.metric_noise_pct(metric, self.noise_pct,
                                          self.metric_noise_scale)

    def noisy(self, values, pct=None, key=None, times=None):
        """``values`` with multiplicative normal noise of ``pct`` %
        (default ``noise_pct``), never below 0.

        ``key`` (a tuple of names: the sampled object's kind and name, and
        the metric) and ``times`` (each value's sample time) are what a
        ``keyed`` noise stream draws by; a ``shared`` one ignores them.
        """
        pct = self.noise_pct if pct is None else pct
        if not pct:
            return np.asarray(values, dtype=float)
        if self.noise_stream == noise_mod.NOISE_KEYED:
            if key is None or times is None:
                raise ValueError('keyed noise needs the sampled object '
                                 'and the sample times')
            # Keyed by the time into the traces, not the Unix time: the
            # clock's default start follows the wall clock (the latest
            # 09:00 UTC), and twins built on either side of 09:00 UTC
            # must draw the same noise for the same sample.
            deviate = keyed_normal(
                self.seed, key, np.broadcast_to(
                    np.asarray(times, dtype=float) - self.trace_epoch,
                    np.shape(values)))
            factor = 1.0 + (pct / 100.0) * deviate
        else:
            factor = 1.0 + self._rng.normal(0.0, pct / 100.0,
                                            np.shape(values))
        return np.maximum(np.asarray(values, dtype=float) * factor, 0.0)

    def advance(self, seconds, sample_interval_s=None,
                host_metric_interval_s=None):
        """Move the clock ``seconds`` forward, writing the samples taken on
        the way to the history store.  Returns the number of points."""
        if seconds < 0:
            raise ValueError('the twin cannot go back in time')
        start, end = self.clock, self.clock + seconds
        points = []
        sample_times = grid_times(start, end,
                                  sample_interval_s or self.sample_interval_s)
        if len(sample_times):
            for host_name in sorted({w.host for w in self.workloads_on_any(
                    start, end)}):
                points.extend(self._workload_points(host_name,
                                                    sample_times))
        host_times = grid_times(
            max(start, self._last_host_metric), end,
            host_metric_interval_s or self.host_metric_interval_s)
        if len(host_times):
            self._last_host_metric = float(host_times[-1])
            for host_name in sorted(self._hosts):
                points.extend(self._host_points(host_name, host_times))
        self.clock = end
        if self.history is not None and points:
            self.history.write(points)
        return len(points)

    def jump_to(self, when):
        """Move the clock to ``when`` without sampling on the way (the
        benchmark's idle time between requests)."""
        if when < self.clock:
            raise ValueError('the twin cannot go back in time')
        self.clock = float(when)
        self._last_host_metric = self.clock

    def workloads_on_any(self, start, end):
        return [w for w in self.workloads.values() if w.started_at < end
                and (w.stopped_at is None or w.stopped_at > start)]

    def backfill_host_metrics(self, seconds, interval_s=300.0, hosts=None):
        """Write ``seconds`` of host monitoring history of ``hosts`` (all
        known hosts by default) ending now, as if monitoring had run before
        the twin started."""
        times = grid_times(self.clock - seconds, self.clock, interval_s)
        points = []
        for host_name in sorted(hosts or self._hosts):
            points.extend(self._host_points(host_name, times))
        if self.history is not None:
            self.history.write(points)
        return len(points)

    def _workload_points(self, host_name, times):
        _factors, _total, metrics = self.evaluate(host_name, times)
        points = []
        for workload_id, (achieved, active) in sorted(metrics.items()):
            work = self.workloads.get(workload_id)
            if work.kind not in ('shadow', 'vm'):
                continue        # e.g. a live migration's copy traffic
            for metric in sorted(achieved):
                values = self.noisy(achieved[metric],
                                    self.sample_noise_pct(metric),
                                    key=work.noise_key + (metric,),
                                    times=times)
                for t, value, on in zip(times, values, active):
                    if on:
                        points.append(self._point(work, metric, t, value))
        return points

    def _point(self, work, metric, t, value):
        if work.kind == 'shadow':
            return history_base.Point(
                names.SHADOW_SAMPLE,
                {names.TAG_EVALUATION: work.evaluation_id,
                 names.TAG_SHADOW: work.workload_id,
                 names.TAG_HOST: work.host,
                 names.TAG_PROFILE: work.profile.name,
                 names.TAG_METRIC: metric},
                {names.FIELD_VALUE: float(value)}, float(t))
        return history_base.Point(
            names.INSTANCE_METRIC,
            {names.TAG_INSTANCE: work.reported_id, names.TAG_HOST: work.host,
             names.TAG_METRIC: metric}, {names.FIELD_VALUE: float(value)},
            float(t))

    def _host_points(self, host_name, times):
        observed = self.host_observation(host_name, times)
        points = []
        for metric in HOST_METRICS:
            values = self.noisy(observed[metric], self.host_noise_pct,
                                key=('host', host_name, metric),
                                times=times)
            for t, value in zip(times, values):
                points.append(history_base.Point(
                    names.HOST_METRIC,
                    {names.TAG_HOST: host_name, names.TAG_METRIC: metric},
                    {names.FIELD_VALUE: float(value)}, float(t)))
        return points


def build_twin(cluster_file=None, trace_dir=None, seed=0, history=None,
               **options):
    """A :class:`Twin` over a cluster file and trace directory (the
    bundled ones by default)."""
    library = traces.TraceLibrary(trace_dir)
    cluster = cluster_mod.load_cluster(cluster_file, library, seed=seed)
    return Twin(cluster, history=history, seed=seed, **options)
