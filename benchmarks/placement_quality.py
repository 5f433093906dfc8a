"""Placement quality on the twin: Nova's weighers vs random vs nova-shadow.

Requests (a profile and a flavor) arrive at random times over five simulated
days.  For each, four policies pick a host among the hosts that pass a
capacity filter (``capacity_filter`` below: free RAM, free disk and vCPUs
within Nova's default allocation ratios, 4.0 CPU, 1.0 RAM and 1.0 disk, i.e.
what Nova's Placement service would allow):

nova     Nova 34's own ``HostWeightHandler`` with every default weigher
         (``nova.scheduler.weights.all_weighers``) and default multipliers,
         on real ``HostState`` objects built the way Nova's host manager
         builds them from a ComputeNode record: vCPUs used, free RAM and
         disk, and the ``num_instances`` and ``io_workload`` statistics of
         the resource tracker (allocations, not usage).
random   uniform among the filtered hosts.
shadow   nova-shadow as deployed: Nova's default weighers plus the project's
         real ``nova_shadow_filter.weigher.ShadowWeigher`` at its default
         multiplier (``[shadow_weigher] weight_multiplier``), fed with the
         ranking the shadow service returns: the service assembled by
         ``shadow_service.service.build`` (as the daemon assembles it) over
         the arm's twin, asked through its manager's ``evaluate`` (the RPC
         endpoint's request schema and checks) instead of over RabbitMQ.
         A shadow may run on every filtered host, for the budget on the
         twin's clock.
shadow_only  the same ranking alone: its top host.
nova_metrics, load_aware, contention_aware
         monitoring-based peers (``peer_policies.py``), when
         ``--policies`` names them: they see host monitoring only.
oracle   the host whose realised performance over the next 24 simulated
         hours is best, from the twin's hidden state (scoring only).  In
         arrivals mode it is greedy: it knows the background tenants'
         future and the VMs already placed, not the requests still to come.

Three modes (``--mode``, or ``all``):

arrivals     (default) a cloud in steady state: requests arrive as a
             Poisson process and every placed VM is deleted when its
             lifetime ends (lognormal, median 6 h, mean 18.5 h, clipped to
             [15 min, 30 days]: see ``LIFETIME_*``).  The arrival rate is
             set by Little's law so that requested VMs hold
             ``STEADY_STATE_RAM_SHARE`` (half) of the RAM the background
             tenants leave free.  Each policy gets its own copy of the
             twin built from the same seed and sees the same arrivals; a
             VM's realised performance covers its life (at most 24 h) with
             every VM that shares its host meanwhile, including those
             placed after it.
fill         the stress case (the former ``arrivals``): arrivals uniform
             over five days and VMs that never leave, so the cluster
             overfills and requests are turned away.
independent  the first version: every request sees the cluster with only
             its background tenants; nothing stays.

Two history modes for the nova-shadow policies (``--history``):

persistent   (default) as the service runs: one history store per policy
             for the whole run (``--store``: ``memory`` or ``sqlite`` in a
             temporary directory) and a ``ContentionLearner`` with the
             ``[shadow] contention_*`` defaults, so an evaluation's prior
             comes from the shadow samples earlier evaluations of the same
             profile left within ``prior_lookback`` (virtual seconds: the
             samples carry the twin's clock) and fitted contention models
             join the ranking.  Samples, evaluation records and the
             learner's lookback and refit interval all run on the twin's
             clock.
fresh        a new, empty store per evaluation and no learner: every
             evaluation starts blind (the benchmark's first versions).

The hosts' own monitoring: the shadow services' twins write
``MONITOR_BACKFILL_H`` hours of host metrics before the first request and
every ``MONITOR_INTERVAL_S`` through the run (what an operator's
Prometheus would hold); ``[metrics] source = history`` reads them back for
the lifetime ranking (``[analysis] lifetime_horizon``, ``--lifetime-horizon
0`` for the ablation).  The confidence calibration learner hears each
ranking's outcome (the ``confidence_calibration`` rule below) once the
VM's first day, or its life when shorter, is over on the twin's clock
(``--no-calibration`` for the ablation); ``confidence_calibration``
reports the stated (calibrated) and the raw confidence against it.

Every placement is scored by the oracle: realised performance over 24 h
(the VM's lifetime when shorter)
(``ratio_to_oracle`` is the policy's mean realised performance divided by
the oracle's) and whether the profile's QoS target held (``qos_met``).

Usage::

    python benchmarks/placement_quality.py --requests 200 --seed 1 \
        [--mode arrivals|fill|independent|all] [--traces DIR] \
        [--budget 60] \
        [--history persistent|fresh] [--store memory|sqlite] \
        [--lifetime-horizon S] [--no-calibration] \
        [--calibration-tails flat|identity] [--calibration-method M] \
        [--calibration-min-pairs N] \
        [--calibration-prior-map bundled|identity|FILE] \
        [--calibration-prior-map-pairs N] \
        [--no-peak-headroom] \
        [--no-peak-memory] \
        [--cluster FILE] [--policies nova,shadow,load_aware,...] \
        [--out FILE] [--rows ROWS] [--sample-error-out FILE]

``--sample-error-out FILE`` (a diagnostic; the placements are the same
without it) sets each measured host's per-metric estimate, as the ranking
stated it, against the day-mean the VM realised on that host, by the
number of samples behind it (``SampleErrors``); ``--pool-sample-errors``
summarises the records of several such runs together.

Results go to ``benchmarks/results/placement_quality-persistent.json``
(persistent history) or ``placement_quality.json`` (fresh) unless
``--out`` says otherwise.
"""

import argparse
import gzip
import importlib.metadata
import json
import logging
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import peer_policies  # noqa: E402
from oslo_config import cfg  # noqa: E402

from nova_shadow_filter import request as request_lib  # noqa: E402
from shadow_service import conf as shadow_conf  # noqa: E402
from shadow_service import hostfacts  # noqa: E402
from shadow_service import service  # noqa: E402
from shadow_service.analysis import analyzer as analyzer_mod  # noqa: E402
from shadow_service.analysis import calibration  # noqa: E402
from shadow_service.analysis import estimate as estimate_lib  # noqa: E402
from shadow_service.clouds.sim import driver as sim_driver  # noqa: E402
from shadow_service.clouds.sim import engine  # noqa: E402
from shadow_service.history import memory  # noqa: E402
from shadow_service.history import sqlite  # noqa: E402
from shadow_service.workloads import catalogue  # noqa: E402
from shadow_service.workloads import profiles  # noqa: E402
from shadow_service.workloads import qos  # noqa: E402

LOG = logging.getLogger('placement_quality')

PROFILES = ('web', 'db-oltp', 'batch-cpu', 'cache', 'analytics')
FLAVORS = (
    {'name': 'm1.small', 'vcpus': 1, 'ram_mb': 2048, 'disk_gb': 20},
    {'name': 'm1.medium', 'vcpus': 2, 'ram_mb': 4096, 'disk_gb': 40},
    {'name': 'm1.large', 'vcpus': 4, 'ram_mb': 8192, 'disk_gb': 80},
    {'name': 'm1.xlarge', 'vcpus': 8, 'ram_mb': 16384, 'disk_gb': 160},
)
# Nova's defaults: [DEFAULT] initial_cpu_allocation_ratio = 4.0,
# initial_ram_allocation_ratio = 1.0, initial_disk_allocation_ratio = 1.0.
CPU_ALLOCATION_RATIO = 4.0
ARRIVAL_WINDOW_S = 5 * 86400.0
# Lifetimes of requested VMs in ``arrivals`` mode: lognormal, median 6 h,
# log-sd 1.5 (mean 18.5 h), clipped to [15 min, 30 days].  An assumption
# shaped after what Cortez et al. (Resource Central, SOSP 2017) report for
# Azure's VMs: heavy-tailed lifetimes, many VMs living minutes to hours and
# a long tail living days; the parameters are ours, not fitted to their
# figures.  See doc/source/twin.rst.
LIFETIME_MEDIAN_S = 6 * 3600.0
LIFETIME_SIGMA = 1.5
LIFETIME_MIN_S = 900.0
LIFETIME_MAX_S = 30 * 86400.0
# Share of the RAM the background tenants leave free that requested VMs
# hold in steady state (Little's law sets the arrival rate).  With the
# default cluster's tenants (71 % of RAM) this puts the cluster at about
# 86 % of RAM allocated: a busy but not overcommitted private cloud.  An
# assumption; ``fill`` mode is the stress case where nothing leaves.
STEADY_STATE_RAM_SHARE = 0.5
BUDGET_S = 60.0
SHADOW_SAMPLE_S = 5.0
# Host monitoring the twin writes for the shadow services: hours of it
# before the first request, and its interval during the run.
MONITOR_BACKFILL_H = 72
MONITOR_INTERVAL_S = 900.0
# A ranking's outcome is judged over the VM's first day (or its life when
# shorter) and handed to the calibration learner once that is over.
OUTCOME_WINDOW_S = 86400.0
POLICIES = ('nova', 'random', 'shadow', 'shadow_only', 'oracle')
#: Every policy ``--policies`` may name: the default ones and the
#: monitoring-based peers (``peer_policies``); the oracle always runs.
ALL_POLICIES = POLICIES[:-1] + peer_policies.PEERS + ('oracle',)
SHADOW_POLICIES = ('shadow', 'shadow_only')
MODES = ('arrivals', 'fill', 'independent')
HISTORY_MODES = ('persistent', 'fresh')
STORES = ('memory', 'sqlite')


# -- Nova's default weighers -------------------------------------------------
class NovaWeighers:
    """Nova's real HostWeightHandler over HostStates built from the twin."""

    def __init__(self):
        from nova import objects
        objects.register_all()
        import nova.conf
        from nova.scheduler import host_manager
        from nova.scheduler import weights

        from nova_shadow_filter import weigher  # noqa: F401 (its options)
        self._objects = objects
        self._host_manager = host_manager
        self.conf = nova.conf.CONF
        self.handler = weights.HostWeightHandler()
        classes = self.handler.get_matching_classes(
            self.conf.filter_scheduler.weight_classes)
        self.weighers = [cls() for cls in classes]
        self.names = [cls.__name__ for cls in classes]
        self._metrics_weigher = None

    def metrics_weigher(self):
        """Nova's real MetricsWeigher as an operator sets it for load-aware
        placement: ``[metrics] weight_setting = cpu.percent=-1.0`` and
        ``weight_multiplier`` = ``peer_policies.METRICS_MULTIPLIER``.  The
        default weighers' own MetricsWeigher was built with no setting and
        weighs every host alike; this one replaces it for the peer."""
        if self._metrics_weigher is None:
            from nova.scheduler.weights import metrics

            # The setting is read once, when the weigher is built; the
            # process-wide option is put back at once so that no other
            # Nova in this process (a test's scheduler) inherits it.
            self.conf.set_override('weight_setting', ['cpu.percent=-1.0'],
                                   group='metrics')
            try:
                weigher = metrics.MetricsWeigher()
            finally:
                self.conf.clear_override('weight_setting', group='metrics')
            multiplier = peer_policies.METRICS_MULTIPLIER
            weigher.weight_multiplier = lambda host_state: multiplier
            self._metrics_weigher = weigher
        return self._metrics_weigher

    def host_state(self, name, view, cpu_percent=None):
        """A HostState updated from the ComputeNode Nova would hold.

        ``stats`` carries what the resource tracker's ``Stats`` reports:
        ``num_instances`` (every instance on the host, tenants and placed
        VMs) and ``io_workload`` (instances building, resizing,
        snapshotting...: 0 here, the twin's VMs are active at once).
        """
        objects = self._objects
        metrics = '[]'
        if cpu_percent is not None:
            # As the compute service stores its monitors' metrics: a JSON
            # list, cpu.percent as a fraction (MonitorMetricList.from_json
            # turns it back into an integer percentage).
            metrics = json.dumps([{
                'name': 'cpu.percent', 'value': cpu_percent / 100.0,
                'timestamp': '2013-07-01T00:00:00.000000',
                'source': 'nova.compute.monitors.cpu.virt_driver'}])
        compute = objects.ComputeNode(
            host=name, hypervisor_hostname=name,
            uuid=str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
            vcpus=view['vcpus'], vcpus_used=view['vcpus_used'],
            memory_mb=view['memory_mb'],
            memory_mb_used=view['memory_mb_used'],
            local_gb=view['local_gb'], local_gb_used=view['local_gb_used'],
            free_ram_mb=view['free_ram_mb'],
            free_disk_gb=view['free_disk_gb'],
            disk_available_least=view['free_disk_gb'],
            running_vms=view['running_vms'], current_workload=0,
            hypervisor_type='QEMU', hypervisor_version=8002000,
            cpu_info='{}',
            stats={'num_instances': str(view['running_vms']),
                   'io_workload': '0'},
            numa_topology=None, pci_device_pools=None, metrics=metrics,
            cpu_allocation_ratio=CPU_ALLOCATION_RATIO,
            ram_allocation_ratio=1.0, disk_allocation_ratio=1.0,
            updated_at=None, host_ip='127.0.0.1',
            supported_hv_specs=[])
        state = self._host_manager.HostState(name, name, 'cell1')
        state.update(compute=compute, aggregates=[],
                     service={'disabled': False})
        return state

    def choose(self, views, flavor, ranking=None):
        """The top host of Nova's weighers; with ``ranking`` (an RPC
        ranking dict) the ShadowWeigher joins them, as deployed."""
        return self.ranked(views, flavor, ranking)[0]

    def choose_with_metrics(self, views, flavor, cpu_percent):
        """The top host of Nova's weighers with the MetricsWeigher on
        ``cpu.percent`` (``{host: percent}``) in place of the default
        one."""
        from nova.scheduler.weights import metrics
        weighers = [w for w in self.weighers
                    if not isinstance(w, metrics.MetricsWeigher)]
        weighers.append(self.metrics_weigher())
        return self.ranked(views, flavor, weighers=weighers,
                           cpu_percent=cpu_percent)[0]

    def ranked(self, views, flavor, ranking=None, weighers=None,
               cpu_percent=None):
        """Hosts in the order Nova's weighers put them."""
        objects = self._objects
        weighers = list(self.weighers if weighers is None else weighers)
        if ranking is not None:
            shadow_weigher = RankingWeigher()
            shadow_weigher.ranking = ranking
            weighers.append(shadow_weigher)
        cpu_percent = cpu_percent or {}
        states = [self.host_state(n, v, cpu_percent.get(n))
                  for n, v in sorted(views.items())]
        spec = objects.RequestSpec(
            scheduler_hints={}, instance_group=None,
            flavor=objects.Flavor(vcpus=flavor['vcpus'],
                                  memory_mb=flavor['ram_mb'],
                                  root_gb=flavor['disk_gb'],
                                  ephemeral_gb=0, swap=0, extra_specs={}),
            image=objects.ImageMeta.from_dict({'properties': {}}),
            num_instances=1)
        weighed = self.handler.get_weighed_objects(weighers, states, spec)
        return [w.obj.host for w in weighed]



#: Packages whose versions a results file records.
RECORDED_PACKAGES = ('nova-shadow', 'nova', 'numpy', 'scipy', 'statsmodels',
                     'oslo.messaging')


def package_versions(names=RECORDED_PACKAGES):
    """``{package: version}`` of what this run used (None: not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions

def _ranking_weigher_class():
    from nova_shadow_filter import weigher

    class _RankingWeigher(weigher.ShadowWeigher):
        """The real ShadowWeigher answered from a ranking in hand instead
        of an RPC: the same mapping from scores to weights, confidence
        shrink and multiplier as deployed."""

        ranking = None

        def _plan_call(self, spec_obj, states):
            ranking = self.ranking
            return weigher._Plan('benchmark ranking', lambda: ranking, 60.0)

    return _RankingWeigher


def RankingWeigher():
    global _RANKING_WEIGHER
    if _RANKING_WEIGHER is None:
        _RANKING_WEIGHER = _ranking_weigher_class()
    return _RANKING_WEIGHER()


_RANKING_WEIGHER = None


# -- requests and filters ---------------------------------------------------
def lifetime_mean_s():
    """Mean of the lognormal lifetime distribution (before clipping)."""
    return LIFETIME_MEDIAN_S * math.exp(LIFETIME_SIGMA ** 2 / 2.0)


def arrival_rate_per_s(free_ram_mb):
    """Poisson arrival rate that keeps, by Little's law, requested VMs
    holding ``STEADY_STATE_RAM_SHARE`` of the RAM the background tenants
    left free: ``rate = share x free RAM / mean flavor RAM / mean
    lifetime``."""
    mean_ram_mb = float(np.mean([f['ram_mb'] for f in FLAVORS]))
    vms = STEADY_STATE_RAM_SHARE * free_ram_mb / mean_ram_mb
    return vms / lifetime_mean_s()


def make_requests(count, seed, start, mode='independent',
                  free_ram_mb=None):
    """``count`` requests: a profile, a flavor, an arrival time and, in
    ``arrivals`` mode, a lifetime.

    ``arrivals``: Poisson arrivals at :func:`arrival_rate_per_s` and
    lognormal lifetimes; ``fill`` and ``independent``: arrivals uniform
    over ``ARRIVAL_WINDOW_S`` and VMs that never leave (the earlier
    versions; the draws of profile and flavor are the same in every mode).
    """
    rng = np.random.default_rng([seed, 6])
    arrivals = np.sort(rng.uniform(0, ARRIVAL_WINDOW_S, count))
    picks = [(dict(FLAVORS[rng.integers(len(FLAVORS))]),
              PROFILES[rng.integers(len(PROFILES))]) for _i in range(count)]
    lifetimes = [None] * count
    if mode == 'arrivals':
        life_rng = np.random.default_rng([seed, 8])
        rate = arrival_rate_per_s(free_ram_mb)
        arrivals = np.cumsum(life_rng.exponential(1.0 / rate, count))
        lifetimes = np.clip(
            LIFETIME_MEDIAN_S * np.exp(life_rng.normal(0.0, LIFETIME_SIGMA,
                                                       count)),
            LIFETIME_MIN_S, LIFETIME_MAX_S)
    requests = []
    for i, (offset, (flavor, profile)) in enumerate(zip(arrivals, picks)):
        # What the deployed weigher sends: the shared request builder.
        request = request_lib.build_request(flavor, profile,
                                            instance_uuid='req-%04d' % i)
        request['arrival'] = start + offset
        if lifetimes[i] is not None:
            request['lifetime_s'] = float(lifetimes[i])
        requests.append(request)
    return requests


def free_ram_mb(driver, hosts):
    """RAM Nova sees free on ``hosts`` (what the tenants left)."""
    return float(sum(driver.nova_view(h)['free_ram_mb'] for h in hosts))


def capacity_filter(driver, hosts, flavor):
    """Hosts with room for ``flavor``, as Nova's placement would decide.

    Free RAM and disk must hold the flavor (allocation ratio 1.0) and the
    vCPUs used plus the flavor's must stay within ``CPU_ALLOCATION_RATIO``
    times the host's threads.  This stands in for Nova's default
    ``enabled_filters`` (ComputeFilter, ImagePropertiesFilter, affinity
    filters... pass every twin host) plus the Placement allocation
    candidates query.  Returns ``{host: nova_view}``.
    """
    passing = {}
    for host in hosts:
        view = driver.nova_view(host)
        if view['free_ram_mb'] < flavor['ram_mb']:
            continue
        if view['free_disk_gb'] < flavor['disk_gb']:
            continue
        if view['vcpus_used'] + flavor['vcpus'] > \
                view['vcpus'] * CPU_ALLOCATION_RATIO:
            continue
        passing[host] = view
    return passing


# -- the service a shadow policy asks -----------------------------------------
def service_conf(args, persistent):
    """The shadow service's configuration for this run: the deployed
    defaults, except what the benchmark sets on purpose (recorded in the
    results' ``service_settings``)."""
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf([], project='nova-shadow-bench')
    for group, name, value in service_settings(args, persistent):
        conf.set_override(name, value, group=group)
    return conf


def service_settings(args, persistent):
    """``[(group, option, value)]`` the benchmark overrides."""
    settings = [
        # Every candidate may get a shadow; samples every 5 s of twin time.
        ('shadow', 'max_shadow_hosts', 64),
        ('shadow', 'sample_interval', SHADOW_SAMPLE_S),
        ('shadow', 'max_budget', args.budget),
        # The contention learner only with a history that persists; the
        # scale-up learner stays off: the twin's VMs report no
        # instance_uuid pairs the way a real cloud's monitoring would.
        ('shadow', 'contention_learning', bool(persistent)),
        ('shadow', 'scaleup_learning', False),
        ('shadow', 'cleanup_on_start', False),
        # The hosts' own monitoring, as an operator's Prometheus would
        # hold it: MONITOR_BACKFILL_H hours before the run, then every
        # MONITOR_INTERVAL_S through it (``Arm.monitor``), read back by
        # the ``history`` metrics source for the lifetime ranking.
        ('sim', 'backfill_hours', MONITOR_BACKFILL_H),
        ('metrics', 'source', 'history'),
    ]
    if args.lifetime_horizon is not None:
        settings.append(('analysis', 'lifetime_horizon',
                         args.lifetime_horizon))
    if args.no_calibration:
        settings.append(('analysis', 'confidence_calibration', False))
    if getattr(args, 'calibration_tails', None):
        settings.append(('analysis', 'calibration_tails',
                         args.calibration_tails))
    if getattr(args, 'calibration_method', None):
        settings.append(('analysis', 'calibration_method',
                         args.calibration_method))
    if getattr(args, 'calibration_share_margin', None) is not None:
        settings.append(('analysis', 'calibration_share_margin',
                         args.calibration_share_margin))
    if getattr(args, 'calibration_min_pairs', None) is not None:
        settings.append(('analysis', 'calibration_min_pairs',
                         args.calibration_min_pairs))
    if getattr(args, 'calibration_prior_map', None):
        settings.append(('analysis', 'calibration_prior_map',
                         args.calibration_prior_map))
    if getattr(args, 'calibration_prior_map_pairs', None) is not None:
        settings.append(('analysis', 'calibration_prior_map_pairs',
                         args.calibration_prior_map_pairs))
    if getattr(args, 'no_peak_headroom', False):
        settings.append(('analysis', 'peak_headroom', False))
    if getattr(args, 'no_peak_memory', False):
        settings.append(('analysis', 'peak_memory_headroom', False))
    if args.confidence_target is not None:
        settings.append(('shadow', 'confidence_target',
                         args.confidence_target))
    if args.cotenancy_horizon is not None:
        settings.append(('analysis', 'cotenancy_horizon',
                         args.cotenancy_horizon))
    return settings


class ShadowService:
    """The service one shadow arm asks, assembled by ``service.build`` over
    the arm's twin: for the whole run (``persistent`` history, with the
    contention learner on the twin's clock) or anew for every evaluation
    (``fresh``: an empty store each time)."""

    def __init__(self, args, twin):
        self.args = args
        self.twin = twin
        self.persistent = args.history == 'persistent'
        self.conf = service_conf(args, self.persistent)
        self.directory = None
        self.sources = {}
        self.parts = None
        if self.persistent:
            self.parts = self._build(self._store())

    def _store(self):
        if self.args.store == 'sqlite' and self.persistent:
            self.directory = tempfile.mkdtemp(prefix='pq-history-')
            return sqlite.SQLiteStore(
                path=os.path.join(self.directory, 'history.sqlite'))
        return memory.MemoryStore()

    def _build(self, store):
        driver = sim_driver.SimDriver(self.conf, store, twin=self.twin)
        # The budget is simulated seconds alone (``--budget``): on a
        # loaded machine the wall clock would cut the last wait short
        # (moving the twin's clock, so the placed VM's start and realised
        # performance, by a fraction of a second) or end an evaluation
        # early, and the same command would give other rows.
        driver.wall_budget = False
        return service.build(self.conf, history=store, driver=driver)

    def rank(self, request, hosts):
        """The ranking dict the service returns for ``request``."""
        parts = self.parts or self._build(self._store())
        try:
            ranking = parts.manager.evaluate(request, hosts, self.args.budget)
        finally:
            if parts is not self.parts:
                parts.close()
        source = ranking.get('source', 'unknown')
        self.sources[source] = self.sources.get(source, 0) + 1
        return ranking

    def summary(self):
        summary = {'evaluations_by_source': dict(sorted(
            self.sources.items())),
            'answered_from_history_alone': self.sources.get('history', 0)}
        learner = self.parts and self.parts.learners.contention
        if learner is not None:
            summary.update({
                'contention_refits': learner.fits,
                'contention_refit_failures': learner.failures,
                'last_refit_training_rows': learner.rows,
                'evaluations_given_contention_models':
                    learner.evaluations_with_models,
                'contention_models_handed_out_by_metric':
                    dict(sorted(learner.models_by_metric.items())),
                'workload_metrics_ever_fitted': sorted(
                    learner.fitted_keys)})
        calibrator = self.parts and self.parts.learners.calibration
        if calibrator is not None:
            state = calibrator.current_map()
            summary['calibration_map'] = dict(
                state.to_dict(), refits=calibrator.fits,
                outcomes_at_last_refit=calibrator.pairs,
                harvested_from_placed_vms=calibrator.harvested)
        forecaster = self.parts and self.parts.analyzer.load_forecaster
        if forecaster is not None:
            summary['host_load_forecasts'] = {
                'fitted': forecaster.forecasts,
                'failures': forecaster.failures,
                'forecaster': forecaster.forecaster,
                'horizon_s': forecaster.horizon_s}
        return summary

    def close(self):
        if self.parts is not None:
            self.parts.close()
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)


# -- one shadow sample's error against the VM's day (opt-in diagnostic) -----
#: Realised values below this (in the metric's unit) give no relative
#: error, stated sds below it no z score.
SAMPLE_ERROR_FLOOR = 1e-6
#: Median absolute value of a standard normal draw.
NORMAL_MEDIAN_ABS = 0.6745
#: Percent metrics (steal, mostly 0) are left out of the pooled figures:
#: a relative error of a figure near 0 says nothing.
SAMPLE_ERROR_POOLED_EXCLUDES = frozenset(catalogue.PERCENT_METRICS)


def _recording_policy(policies):
    """The policy whose rankings ``--sample-error-out`` records: ``shadow``
    when it runs, else ``shadow_only``."""
    for policy in ('shadow', 'shadow_only'):
        if policy in policies:
            return policy
    return None


def _sample_class(count):
    """The group an estimate's sample count falls in."""
    if count <= 0:
        return '0 (earlier ranking)'
    if count < estimate_lib.MIN_SAMPLES:
        return str(count)
    return '>=%d' % estimate_lib.MIN_SAMPLES


class SampleErrors:
    """How far each host's per-metric estimate lay from what a VM then
    realised there over its first day (``--sample-error-out``).

    While installed, the analyzer's per-host estimation
    (``Analyzer._host_estimates``) is wrapped so that every estimate it
    makes is noted with the shadow samples behind it; nothing it returns
    changes.  For each ranking the shadow arm scores, the estimates whose
    value is the one the ranking states (``predicted``) are set against
    the day-mean of that metric on that host, as the oracle realised it
    for the ranking's outcome (``Arm.score_confidence``: the VM alone
    added at placement, over its first day or life), and for the host the
    arm placed the VM on also as the placed VM realised it (with every
    later co-tenant: ``Oracle.placed``)."""

    def __init__(self):
        self.latest = {}
        self.records = []
        # Indices into ``records`` by (request, host), for ``placed``.
        self._by_request_host = {}
        self._original = None

    def install(self):
        original = analyzer_mod.Analyzer._host_estimates
        recorder = self

        def host_estimates(analyzer, host, metrics, samples, *args,
                           **kwargs):
            found = original(analyzer, host, metrics, samples, *args,
                             **kwargs)
            recorder.note(analyzer, host, samples, found[0], *args,
                          **kwargs)
            return found

        self._original = original
        analyzer_mod.Analyzer._host_estimates = host_estimates
        return self

    def uninstall(self):
        if self._original is not None:
            analyzer_mod.Analyzer._host_estimates = self._original
            self._original = None

    def start(self):
        """A new evaluation: forget the estimates of the last."""
        self.latest = {}

    def note(self, analyzer, host, samples, estimates, features=None,
             scale=None, age_s=None, prior=None, outlook=None,
             earlier=None, earlier_age_s=None):
        """Keep ``host``'s estimates with the samples of this run behind
        them (the last made for the host in this evaluation win)."""
        samples = samples or {}
        noted = {}
        for metric, final in estimates.items():
            raw = samples.get(metric)
            sampled = (estimate_lib.from_samples(metric, raw, age_drift=0.0)
                       if raw is not None else None)
            factor = 1.0
            if analyzer.scaleup is not None and scale:
                factor = analyzer.scaleup.factor(metric, scale).factor
            spread = None
            if raw is not None and len(raw) >= 2:
                spread = float(np.std(np.asarray(raw, dtype=float),
                                      ddof=1))
            noted[metric] = {
                'value': float(final.value), 'sd': float(final.sd),
                'measured_sd': float(final.measurable_sd),
                'common_sd': float(final.common_sd),
                'samples': int(final.samples),
                'samples_now': 0 if sampled is None else sampled.samples,
                'with_earlier': bool(earlier and
                                     earlier.get(metric) is not None),
                'sample_value': (None if sampled is None
                                 else float(sampled.value)),
                'sample_sd': (None if sampled is None
                              else float(sampled.sd)),
                'sample_spread': spread, 'scale_factor': float(factor)}
        self.latest[host] = noted

    def observe(self, request, ranking, realised):
        """Set the ranking's estimates against ``realised`` (``{host:
        Realised}`` of the ranking's outcome)."""
        top = None
        for entry in ranking.get('hosts', ()):
            host, predicted = entry['host'], entry.get('predicted') or {}
            if not predicted or host not in realised:
                continue
            top = host if top is None else top
            noted = self.latest.get(host, {})
            for metric, value in sorted(predicted.items()):
                found = noted.get(metric)
                day = realised[host].metrics.get(metric)
                # Only an estimate the ranking states (the last made for
                # the host may belong to a ranking not kept).
                if found is None or day is None or not math.isclose(
                        found['value'], value, rel_tol=1e-9,
                        abs_tol=1e-12):
                    continue
                self._by_request_host.setdefault(
                    (request['instance_uuid'], host),
                    []).append(len(self.records))
                self.records.append(dict(
                    found, request=request['instance_uuid'],
                    profile=request['profile'], host=host, metric=metric,
                    top=host == top, source=ranking.get('source'),
                    realised=float(np.mean(day))))

    def placed(self, instance_uuid, host, realised):
        """The placed VM's own day on ``host`` (the request's records on
        that host, found by index: scanning every record per placement
        made a long run quadratic)."""
        for index in self._by_request_host.get((instance_uuid, host), ()):
            record = self.records[index]
            day = realised.metrics.get(record['metric'])
            if day is not None:
                record['placed_on'] = True
                record['realised_placed'] = float(np.mean(day))

    def summary(self):
        return sample_error_summary(self.records)


def _centred(records, key='realised'):
    """Each record's relative error less the mean of its request's
    hosts' for the metric (what all hosts of a request share: the
    scale-up, the day's course), scaled by sqrt(k / (k - 1)) so that
    equal independent errors keep their size; None alone."""
    groups = {}
    for index, record in enumerate(records):
        if record.get(key) is None or abs(record[key]) < SAMPLE_ERROR_FLOOR:
            continue
        groups.setdefault((record['request'], record['metric']),
                          []).append(index)
    centred = [None] * len(records)
    for members in groups.values():
        if len(members) < 2:
            continue
        errors = [records[i]['value'] / records[i][key] - 1.0
                  for i in members]
        mean = float(np.mean(errors))
        stretch = math.sqrt(len(members) / (len(members) - 1.0))
        for i, error in zip(members, errors):
            centred[i] = (error - mean) * stretch
    return centred


def _implied_relative_sd(rows, robust=False):
    """The fixed relative sd that, put in place of the sampling part of
    each estimate's stated sd (the rest of the sd kept), makes the
    centred errors' z scores' mean square 1 (``robust``: their median
    absolute value 0.674, a normal's); None when no figure in [0.001, 2]
    does."""
    if not rows:
        return None

    def spread_of_z(figure):
        squares = []
        for error, rest_sq, base, spread in rows:
            sampling = max(figure * base, spread)
            squares.append(error ** 2 / max(rest_sq + sampling ** 2,
                                            1e-300))
        if robust:
            return float(np.median(squares)) / NORMAL_MEDIAN_ABS ** 2
        return float(np.mean(squares))

    low, high = 0.001, 2.0
    if spread_of_z(low) < 1.0 or spread_of_z(high) > 1.0:
        return None
    for _step in range(60):
        middle = math.sqrt(low * high)
        if spread_of_z(middle) > 1.0:
            low = middle
        else:
            high = middle
    return round(math.sqrt(low * high), 4)


def _error_stats(records, centred, key='realised'):
    relative, z, relative_c, z_c, implied = [], [], [], [], []
    for record, c in zip(records, centred):
        real = record.get(key)
        if real is None or abs(real) < SAMPLE_ERROR_FLOOR:
            continue
        error = record['value'] - real
        relative.append(error / real)
        if record['sd'] > SAMPLE_ERROR_FLOOR:
            z.append(error / record['sd'])
        if c is None:
            continue
        relative_c.append(c)
        if record['sd'] > SAMPLE_ERROR_FLOOR:
            z_c.append(c * real / record['sd'])
        if record['sample_value'] is not None and \
                record['samples'] < estimate_lib.MIN_SAMPLES and \
                not record['with_earlier']:
            factor = record['scale_factor']
            sampling_sd = factor * record['sample_sd']
            rest_sq = max(record['sd'] ** 2 - sampling_sd ** 2, 0.0)
            spread = factor * (record['sample_spread'] or 0.0)
            implied.append((c * real, rest_sq,
                            factor * abs(record['sample_value']), spread))

    def rms(values):
        return (round(float(np.sqrt(np.mean(np.square(values)))), 4)
                if values else None)

    def p68(values):
        # The half-width holding 68 % of them: a normal's sd.
        return (round(float(np.percentile(np.abs(values), 68.27)), 4)
                if values else None)

    return {
        'count': len(relative),
        'relative_error_mean': (round(float(np.mean(relative)), 4)
                                if relative else None),
        'relative_error_rms': rms(relative),
        'relative_error_p68_abs': p68(relative),
        'z_rms': rms(z), 'z_p68_abs': p68(z),
        'centred_count': len(relative_c),
        'centred_relative_error_rms': rms(relative_c),
        'centred_relative_error_p68_abs': p68(relative_c),
        'centred_z_rms': rms(z_c), 'centred_z_p68_abs': p68(z_c),
        'stated_relative_sd_median': (round(float(np.median(
            [r['sd'] / max(abs(r['value']), 1e-12) for r in records])), 4)
            if records else None),
        'implied_few_samples_relative_sd': _implied_relative_sd(implied),
        'implied_few_samples_relative_sd_robust': _implied_relative_sd(
            implied, robust=True)}


def sample_error_summary(records):
    """Per metric and per sample count (and all metrics pooled): the
    estimates' relative error against the realised day, its z score
    against the stated sd (root mean square ~1 when the sd is right),
    both also centred per request, and the fixed relative sd for one or
    two samples that the centred errors imply."""
    summary = {}
    for key, label in (('realised', 'every measured host'),
                       ('realised_placed', 'placed host, its own day')):
        centred = _centred(records, key)
        table = {}
        metrics = sorted({r['metric'] for r in records}) + ['all']
        for metric in metrics:
            for group in ('1', '2', '>=%d' % estimate_lib.MIN_SAMPLES,
                          '0 (earlier ranking)'):
                chosen = [(r, c) for r, c in zip(records, centred)
                          if (r['metric'] == metric if metric != 'all'
                              else r['metric']
                              not in SAMPLE_ERROR_POOLED_EXCLUDES)
                          and _sample_class(r['samples']) == group
                          and r.get(key) is not None]
                if not chosen:
                    continue
                table.setdefault(metric, {})[group] = _error_stats(
                    [r for r, _c in chosen], [c for _r, c in chosen], key)
        summary[label] = table
    return summary


# -- one policy's copy of the twin ------------------------------------------
class Arm:
    """A policy with its own twin, driver and (shadow policies) the
    shadow service it asks."""

    def __init__(self, policy, args, nova):
        self.policy = policy
        self.twin = engine.build_twin(cluster_file=args.cluster,
                                      trace_dir=args.traces, seed=args.seed,
                                      sample_interval_s=SHADOW_SAMPLE_S,
                                      host_metric_interval_s=3600.0)
        self.driver = sim_driver.SimDriver(service_conf(args, False), None,
                                           twin=self.twin)
        self.hosts = self.twin.cluster.host_names
        self.oracle = self.driver.oracle
        self.nova = nova
        self.rng = np.random.default_rng([args.seed, 7])
        self.placed = []
        self.ram_shares = []
        self.service = None
        self.peer = None
        if policy in peer_policies.PEERS:
            self.peer = peer_policies.Peer(policy, self.twin, args.seed,
                                           nova)
        # request instance_uuid -> (stated confidence, top host right?,
        # raw confidence, the candidates' allocated RAM share)
        self.confidence_outcomes = {}
        # request instance_uuid -> the ranking's source and measured hosts
        self.ranking_sources = {}
        # Outcomes not yet over: (when known, evaluation id, raw
        # confidence, right, top host).
        self.pending_outcomes = []
        self.outcomes_fed = 0
        # ``--sample-error-out``: the recorder, on the arm that ranks
        # alone (``_recording_policy``).
        self.sample_errors = None
        if policy == _recording_policy(getattr(args, 'policies', ())):
            self.sample_errors = getattr(args, 'sample_errors', None)
        if policy in SHADOW_POLICIES:
            self.service = ShadowService(args, self.twin)
            self.tie_margin = self.service.conf.analysis.tie_margin

    def choose(self, request, views, profile):
        """``(host, shadow_host_seconds)`` for ``request``."""
        flavor = request['flavor']
        if self.policy == 'nova':
            return self.nova.choose(views, flavor), 0.0
        if self.policy == 'random':
            return sorted(views)[self.rng.integers(len(views))], 0.0
        if self.peer is not None:
            return self.peer.choose(views, flavor), 0.0
        if self.policy in SHADOW_POLICIES:
            ranking = self.evaluate(request, views)
            self.score_confidence(request, ranking, views, profile)
            return (self.shadow_pick(self.policy, ranking, views, flavor),
                    ranking.get('shadow_host_seconds', 0.0))
        best, _realised = self.oracle.best(
            profile, flavor, sorted(views), start=self.twin.clock,
            lifetime_s=request.get('lifetime_s'))
        return best.host, 0.0

    def score_confidence(self, request, ranking, views, profile):
        """Was the ranking's top host within the tie margin of the best
        candidate, as the oracle realises them from this arm's state?

        The ranking's confidence claims exactly that probability, so the
        pairs measure its calibration on the twin (a score is performance
        relative to the best host, so the margin is relative here too).
        """
        top = [h['host'] for h in ranking.get('hosts', ())
               if h['host'] in views and h.get('predicted')]
        if not top:
            return
        _best, realised = self.oracle.best(
            profile, request['flavor'], sorted(views),
            start=self.twin.clock, lifetime_s=request.get('lifetime_s'))
        best = max(r.performance for r in realised.values())
        right = realised[top[0]].performance >= best * (
            1.0 - self.tie_margin / 100.0)
        stated = float(ranking.get('confidence', 0.0))
        raw = float(ranking.get('raw_confidence', stated))
        if self.sample_errors is not None:
            self.sample_errors.observe(request, ranking, realised)
        share = hostfacts.allocated_ram_share(views)
        self.confidence_outcomes[request['instance_uuid']] = (
            stated, bool(right), raw,
            None if share is None else round(share, 4))
        # Where the answer came from and how much of it was measured.
        self.ranking_sources[request['instance_uuid']] = {
            'source': ranking.get('source'),
            'measured': len(top), 'candidates': len(views),
            'history_verdict': ranking.get('history_verdict')}
        # Known once the VM's first day (or life) is over: only then does
        # the calibration learner hear of it.
        window = min(OUTCOME_WINDOW_S,
                     request.get('lifetime_s') or OUTCOME_WINDOW_S)
        self.pending_outcomes.append((self.twin.clock + window,
                                      ranking.get('evaluation_id'), raw,
                                      bool(right), top[0]))

    def feed_outcomes(self):
        """Hand the calibration learner the outcomes that are over."""
        learner = (self.service.parts.learners.calibration
                   if self.service and self.service.parts else None)
        due = [o for o in self.pending_outcomes if o[0] <= self.twin.clock]
        self.pending_outcomes = [o for o in self.pending_outcomes
                                 if o[0] > self.twin.clock]
        if learner is None:
            return
        for when, evaluation_id, raw, right, host in due:
            learner.record_outcome(evaluation_id, raw, right, host=host,
                                   when=when)
            self.outcomes_fed += 1

    def monitor(self, since):
        """Host monitoring over a jump of the twin's clock (``jump_to``
        writes nothing): what the operator's monitoring would hold."""
        gap = self.twin.clock - since
        if self.service is None or self.twin.history is None \
                or gap < MONITOR_INTERVAL_S:
            return
        self.twin.backfill_host_metrics(gap, interval_s=MONITOR_INTERVAL_S)

    def record_allocation(self):
        """Share of the cluster's RAM Nova sees allocated now."""
        views = [self.driver.nova_view(h) for h in self.hosts]
        self.ram_shares.append(sum(v['memory_mb_used'] for v in views)
                               / sum(v['memory_mb'] for v in views))

    def shadow_pick(self, policy, ranking, views, flavor):
        """The host ``policy`` picks given the Evaluator's ``ranking``."""
        if policy == 'shadow':
            return self.nova.choose(views, flavor, ranking=ranking)
        ranked = [h['host'] for h in ranking['hosts'] if h['host'] in views]
        return ranked[0] if ranked else sorted(views)[0]

    def evaluate(self, request, views):
        """The service's ranking dict of ``views``' hosts."""
        self.feed_outcomes()
        if self.sample_errors is not None:
            self.sample_errors.start()
        wire_request = {k: v for k, v in request.items()
                        if k not in ('arrival', 'lifetime_s')}
        hosts = [dict(host=h, **{k: v for k, v in view.items()
                                 if k in ('vcpus', 'vcpus_used',
                                          'free_ram_mb')})
                 for h, view in sorted(views.items())]
        return self.service.rank(wire_request, hosts)

    def place(self, request, host, shadow_seconds):
        """Start the VM on ``host`` (it stays) and remember it."""
        vm_id = self.driver.place_vm(request, host,
                                     instance_id=request['instance_uuid'],
                                     lifetime_s=request.get('lifetime_s'))
        if self.peer is not None:
            self.peer.placed(host, request['flavor'])
        self.placed.append((request, host, vm_id, shadow_seconds))

    def realised(self):
        """``{instance_uuid: (host, Realised, shadow_seconds)}`` once
        every request is placed."""
        return {request['instance_uuid']:
                (host, self.oracle.placed(vm_id), seconds)
                for request, host, vm_id, seconds in self.placed}


# -- the runs ---------------------------------------------------------------
def run_arrivals(args, nova, mode='arrivals'):
    """Every policy on its own twin; placed VMs stay for their lifetime
    (``arrivals``) or for ever (``fill``)."""
    policies = args.policies
    arms = {p: Arm(p, args, nova) for p in policies}
    # The requests are sized on the oracle's twin, whatever else runs:
    # reading a twin's hosts makes them known to it, and a shadow arm's
    # twin that knew them before its first jump would write monitoring
    # (and draw noise) the other arms' twins do not, so a policy's
    # figures would depend on which policy came first.  The oracle's twin
    # draws no noise.
    source = arms['oracle']
    requests = make_requests(args.requests, args.seed, source.twin.clock,
                             mode=mode,
                             free_ram_mb=free_ram_mb(source.driver,
                                                     source.hosts))
    timings = dict.fromkeys(policies, 0.0)
    rejected = dict.fromkeys(policies, 0)
    first_rejection = None
    for number, request in enumerate(requests):
        profile = profiles.resolve_profile(request)
        for policy, arm in arms.items():
            started = time.monotonic()
            since = arm.twin.clock
            arm.twin.jump_to(max(arm.twin.clock, request['arrival']))
            arm.monitor(since)
            arm.record_allocation()
            views = capacity_filter(arm.driver, arm.hosts,
                                    request['flavor'])
            if not views:
                rejected[policy] += 1
                if first_rejection is None:
                    first_rejection = number
                continue
            host, seconds = arm.choose(request, views, profile)
            arm.place(request, host, seconds)
            timings[policy] += time.monotonic() - started
        if args.verbose and number % 20 == 0:
            LOG.info('request %d placed', number)
    outcomes = {p: arm.realised() for p, arm in arms.items()}
    for arm in arms.values():
        if arm.sample_errors is not None:
            for key, (host, realised, _s) in outcomes[arm.policy].items():
                arm.sample_errors.placed(key, host, realised)
    rows = []
    for number, request in enumerate(requests):
        key = request['instance_uuid']
        if not all(key in outcomes[p] for p in policies):
            continue
        rows.append(_row(number, request, len(arms['oracle'].hosts),
                         {p: outcomes[p][key] for p in policies}))
        ranked_alone = arms.get('shadow_only') or arms.get('shadow')
        if ranked_alone is not None:
            rows[-1]['confidence'] = ranked_alone.confidence_outcomes.get(
                key)
            if key in ranked_alone.ranking_sources:
                rows[-1]['ranking'] = ranked_alone.ranking_sources[key]
    extra = {'requests_drawn': len(requests),
             'workload': _workload_summary(requests, arms),
             'rejected_by_capacity_filter': rejected,
             'first_rejected_request': first_rejection,
             'decision_wall_s': {p: round(t, 1)
                                 for p, t in timings.items()},
             'final_instances_per_host': {
                 p: _instances_per_host(arm) for p, arm in arms.items()}}
    extra.update(_history_summary(arms.values()))
    return rows, extra


def _workload_summary(requests, arms):
    """Arrival span, lifetimes and how full the cluster was."""
    span = requests[-1]['arrival'] - requests[0]['arrival'] \
        if requests else 0.0
    lifetimes = [r['lifetime_s'] for r in requests if 'lifetime_s' in r]
    summary = {'arrival_span_h': round(span / 3600.0, 1)}
    if lifetimes:
        summary.update({
            'lifetime_model': 'lognormal median %.1f h, log-sd %.2f, '
                              'clipped to [%.2f h, %.0f d]' % (
                                  LIFETIME_MEDIAN_S / 3600, LIFETIME_SIGMA,
                                  LIFETIME_MIN_S / 3600,
                                  LIFETIME_MAX_S / 86400),
            'lifetime_median_h': round(float(np.median(lifetimes))
                                       / 3600, 2),
            'lifetime_mean_h': round(float(np.mean(lifetimes)) / 3600, 2),
            'arrivals_per_h': round(len(requests) / max(span, 1.0)
                                    * 3600.0, 2),
            'steady_state_ram_share_target': STEADY_STATE_RAM_SHARE})
    summary['ram_allocated_share_at_arrivals'] = {
        p: _ram_share_stats(arm) for p, arm in arms.items()}
    return summary


def _ram_share_stats(arm):
    shares = arm.ram_shares
    if not shares:
        return {}
    return {'mean': round(float(np.mean(shares)), 3),
            'p95': round(float(np.percentile(shares, 95)), 3),
            'max': round(float(np.max(shares)), 3)}


def _history_summary(arms):
    """What the shadow services did with their history (and close
    them)."""
    used = {arm.policy: arm.service for arm in arms
            if arm.service is not None}
    summary = {p: svc.summary() for p, svc in used.items()}
    for svc in used.values():
        svc.close()
    return {'history_use': summary} if summary else {}


def _instances_per_host(arm):
    counts = {}
    for _request, host, _vm, _seconds in arm.placed:
        counts[host] = counts.get(host, 0) + 1
    return dict(sorted(counts.items()))


def run_independent(args, nova):
    """The first version: one twin, nothing stays."""
    arm = Arm('shadow', args, nova)
    nova_arm = Arm('nova', args, nova)
    random_arm = Arm('random', args, nova)
    rows = []
    for number, request in enumerate(make_requests(args.requests, args.seed,
                                                   arm.twin.clock)):
        since = arm.twin.clock
        arm.twin.jump_to(max(arm.twin.clock, request['arrival']))
        arm.monitor(since)
        flavor = request['flavor']
        views = capacity_filter(arm.driver, arm.hosts, flavor)
        if not views:
            continue
        profile = profiles.resolve_profile(request)
        ranking = arm.evaluate(request, views)
        arm.score_confidence(request, ranking, views, profile)
        seconds = ranking.get('shadow_host_seconds', 0.0)
        choice = {'nova': nova_arm.choose(request, views, profile),
                  'random': random_arm.choose(request, views, profile)}
        for policy in SHADOW_POLICIES:
            choice[policy] = (arm.shadow_pick(policy, ranking, views,
                                              flavor), seconds)
        # The oracle scores from the moment of placement, after the
        # evaluation: every policy's VM starts at the same time.
        best, realised = arm.oracle.best(profile, flavor, sorted(views),
                                         start=arm.twin.clock)
        choice['oracle'] = (best.host, 0.0)
        rows.append(_row(number, request, len(views), {
            p: (host, realised[host], seconds)
            for p, (host, seconds) in choice.items()}))
        rows[-1]['confidence'] = arm.confidence_outcomes.get(
            request['instance_uuid'])
    return rows, _history_summary([arm])


def _row(number, request, candidates, outcome):
    return {
        'request': number, 'profile': request['profile'],
        'flavor': request['flavor']['name'], 'candidates': candidates,
        'hosts': {p: o[0] for p, o in outcome.items()},
        'performance': {p: o[1].performance for p, o in outcome.items()},
        'qos_met': {p: o[1].qos_met for p, o in outcome.items()},
        'qos_share': {p: round(o[1].qos_share, 3)
                      for p, o in outcome.items()},
        'qos_broken': {p: _broken_targets(request['profile'], o[1])
                       for p, o in outcome.items()},
        'shadow_host_seconds': {p: o[2] for p, o in outcome.items()},
    }


def _broken_targets(profile_name, realised):
    """``{metric: share of steps meeting its target}`` of the profile's
    QoS targets that held for less than ``qos.QOS_SHARE`` of the VM's
    scored steps (empty when its QoS was met)."""
    metrics = getattr(realised, 'metrics', None) or {}
    broken = {}
    for metric, target in qos.targets_for(profile_name).items():
        if metric not in metrics:
            continue
        share = float(np.mean(qos.meets(metrics[metric], target)))
        if share < qos.QOS_SHARE:
            broken[metric] = round(share, 3)
    return broken


# -- summaries --------------------------------------------------------------
def _policy_summary(rows, policy):
    mine = [r['performance'][policy] for r in rows]
    oracle = [r['performance']['oracle'] for r in rows]
    ratios = [m / o for m, o in zip(mine, oracle) if o > 0]
    return {
        'ratio_to_oracle': round(float(np.mean(mine) / np.mean(oracle)), 4),
        'request_ratio_p10': round(float(np.percentile(ratios, 10)), 4),
        'qos_met': round(float(np.mean([r['qos_met'][policy]
                                        for r in rows])), 4),
        'qos_met_when_oracle_met': _share(
            [r['qos_met'][policy] for r in rows if r['qos_met']['oracle']]),
        'same_host_as_oracle': round(float(np.mean(
            [r['hosts'][policy] == r['hosts']['oracle'] for r in rows])), 4),
        'mean_performance': round(float(np.mean(mine)), 3),
        'shadow_host_seconds': round(float(sum(
            r['shadow_host_seconds'].get(policy, 0.0) for r in rows)), 1),
    }


def _share(flags):
    return round(float(np.mean(flags)), 4) if flags else None


def _policies(rows):
    """The policies the rows compare, in ``ALL_POLICIES`` order."""
    present = set(rows[0]['performance']) if rows else set(POLICIES)
    return [p for p in ALL_POLICIES if p in present]


def _compact(rows):
    return {p: {k: v for k, v in _policy_summary(rows, p).items()
                if k in ('ratio_to_oracle', 'qos_met')}
            for p in _policies(rows)}


def _phases(rows, first_rejected):
    """Requests while every twin had room for every request, and after
    (when hosts are full and some requests are turned away)."""
    cut = len(rows) if first_rejected is None else first_rejected
    early = [r for r in rows if r['request'] < cut]
    late = [r for r in rows if r['request'] >= cut]
    phases = {}
    for name, subset in (('before_first_rejection', early),
                         ('after_first_rejection', late)):
        if subset:
            phases[name] = dict(_compact(subset), requests=len(subset))
    return phases


def _quarters(rows, drawn):
    """Summaries by arrival order: the cluster fills as requests come."""
    quarters = {}
    edges = np.linspace(0, drawn, 5).round().astype(int)
    for low, high in zip(edges[:-1], edges[1:]):
        subset = [r for r in rows if low <= r['request'] < high]
        if subset:
            quarters['requests %d-%d' % (low, high - 1)] = dict(
                _compact(subset), requests=len(subset))
    return quarters


def _calibration(rows):
    """Reliability of the rankings' overall confidence: the share of
    requests whose top-ranked host was within the tie margin of the best
    candidate the oracle knew of when the VM was placed."""
    pairs = [r['confidence'] for r in rows if r.get('confidence')]
    if not pairs:
        return None
    confidences = [p[0] for p in pairs]
    outcomes = [p[1] for p in pairs]
    table = calibration.reliability(confidences, outcomes)
    raw = [p[2] if len(p) > 2 else p[0] for p in pairs]
    raw_table = calibration.reliability(raw, outcomes)
    table['raw'] = {'ece': raw_table['ece'],
                    'mean_confidence': round(float(np.mean(raw)), 4),
                    'rows': raw_table['rows']}
    table['mean_confidence'] = round(float(np.mean(confidences)), 4)
    table['observed_accuracy'] = round(float(np.mean(outcomes)), 4)
    table['rule'] = ('top-ranked host realised within tie_margin % of the '
                     'best candidate over the VM\'s first day (or life '
                     'when shorter; oracle at placement time, the '
                     'shadow_only arm); confidence as stated (through the '
                     'calibration map learned from earlier outcomes once '
                     'their day was over), raw: before the map')
    return table


def summarise_mode(rows, mode, extra):
    policies = _policies(rows)
    result = {'mode': mode, 'requests': len(rows),
              'policies': {p: _policy_summary(rows, p) for p in policies},
              'per_profile': {}, 'per_flavor': {}}
    for key, names, field in (('per_profile', PROFILES, 'profile'),
                              ('per_flavor', [f['name'] for f in FLAVORS],
                               'flavor')):
        for name in names:
            subset = [r for r in rows if r[field] == name]
            if not subset:
                continue
            result[key][name] = {
                p: {k: v for k, v in _policy_summary(subset, p).items()
                    if k in ('ratio_to_oracle', 'qos_met')}
                for p in policies}
            result[key][name]['requests'] = len(subset)
    result['confidence_calibration'] = _calibration(rows)
    result.update(extra)
    if mode in ('arrivals', 'fill'):
        result['phases'] = _phases(rows, extra.get('first_rejected_request'))
        result['by_arrival_quarter'] = _quarters(rows,
                                                 extra['requests_drawn'])
    if not {'shadow', 'shadow_only', 'nova'} <= set(policies):
        return result
    shadow = result['policies']['shadow']
    nova = result['policies']['nova']
    result['margin_over_nova'] = {
        'ratio_to_oracle': round(shadow['ratio_to_oracle']
                                 - nova['ratio_to_oracle'], 4),
        'qos_met': round(shadow['qos_met'] - nova['qos_met'], 4)}
    only = result['policies']['shadow_only']
    result['margin_of_shadow_only_over_nova'] = {
        'ratio_to_oracle': round(only['ratio_to_oracle']
                                 - nova['ratio_to_oracle'], 4),
        'qos_met': round(only['qos_met'] - nova['qos_met'], 4)}
    result['aims'] = {
        'shadow_ratio_to_oracle>=0.95': shadow['ratio_to_oracle'] >= 0.95,
        'shadow_qos_met>=0.95': shadow['qos_met'] >= 0.95,
        'shadow_ahead_of_nova': (shadow['ratio_to_oracle']
                                 > nova['ratio_to_oracle'])}
    return result


def run(args):
    nova = NovaWeighers()
    if args.no_confidence_weighting:
        nova.conf.set_override('confidence_weighting', False,
                               group='shadow_weigher')
    modes = MODES if args.mode == 'all' else (args.mode,)
    settings = service_settings(args, args.history == 'persistent')
    conf = service_conf(args, args.history == 'persistent')
    result = {
        'benchmark': 'placement_quality', 'seed': args.seed,
        'requests_drawn': args.requests,
        'traces': args.traces or 'bundled sample',
        'cluster': args.cluster or 'bundled cluster.yaml',
        'policies': args.policies,
        'peer_settings': {
            'scrape_s': peer_policies.SCRAPE_S,
            'delay_s': peer_policies.DELAY_S,
            'window_s': peer_policies.WINDOW_S,
            'nova_report_s': peer_policies.NOVA_REPORT_S,
            '[metrics] weight_setting': 'cpu.percent=-1.0',
            '[metrics] weight_multiplier':
                peer_policies.METRICS_MULTIPLIER,
            'in_flight': 'flavor vCPUs fully busy for the part of the '
                         'metrics window before the VM started'},
        'ranker': '%s.%s' % (analyzer_mod.Analyzer.__module__,
                             analyzer_mod.Analyzer.__qualname__),
        'assembled_by': 'shadow_service.service.build',
        'service_settings': {'[%s] %s' % (g, n): v
                             for g, n, v in settings},
        'nova_weighers': nova.names,
        'weigher_settings': {
            '[shadow_weigher] %s' % name: getattr(
                nova.conf.shadow_weigher, name)
            for name in ('weight_multiplier', 'tie_margin', 'score_range',
                         'confidence_weighting')},
        'shadow_budget_s': args.budget,
        'cotenancy_horizon_s': conf.analysis.cotenancy_horizon,
        'lifetime_horizon_s': conf.analysis.lifetime_horizon,
        'confidence_calibration': conf.analysis.confidence_calibration,
        'calibration_prior_map': conf.analysis.calibration_prior_map,
        'calibration_prior_map_pairs':
            conf.analysis.calibration_prior_map_pairs,
        'host_monitoring': {'backfill_h': MONITOR_BACKFILL_H,
                            'interval_s': MONITOR_INTERVAL_S},
        'confidence_target': conf.shadow.confidence_target,
        'history': args.history,
        'history_store': (args.store if args.history == 'persistent'
                          else 'memory, new per evaluation'),
        'capacity_filter': 'free RAM and disk hold the flavor; vCPUs used '
                           '+ flavor <= %.1f x threads' %
                           CPU_ALLOCATION_RATIO,
        'qos_rule': 'share of 300 s steps over 24 h meeting every target '
                    '>= 0.95 (oracle.QOS_TARGETS)',
        'ratio_to_oracle_rule': 'mean realised performance of the policy '
                                '/ mean realised performance of the oracle',
        'modes': {},
        'machine': platform.platform(),
        'package_versions': package_versions(),
    }
    sample_errors = {}
    for mode in modes:
        wall = time.monotonic()
        if getattr(args, 'sample_error_out', None):
            args.sample_errors = SampleErrors().install()
        try:
            if mode == 'independent':
                rows, extra = run_independent(args, nova)
            else:
                rows, extra = run_arrivals(args, nova, mode)
        finally:
            recorder = getattr(args, 'sample_errors', None)
            args.sample_errors = None
            if recorder is not None:
                recorder.uninstall()
        if recorder is not None:
            sample_errors[mode] = recorder
        summary = summarise_mode(rows, mode, extra)
        summary['wall_s'] = round(time.monotonic() - wall, 1)
        result['modes'][mode] = summary
        if args.rows:
            with open('%s.%s.json' % (args.rows, mode), 'w') as handle:
                json.dump(rows, handle, indent=1, sort_keys=True)
    if sample_errors:
        write_sample_errors(args.sample_error_out, result, sample_errors)
    return result


def write_sample_errors(path, result, recorders):
    """``--sample-error-out``: per mode, the summary, to ``path``; every
    record to its ``.records.json.gz`` (columns and rows, figures to six
    significant digits)."""
    found = sample_error_header(result['seed'], _recording_policy(
        result['policies']))
    found['records'] = records_path(path)
    found['modes'] = {mode: {'summary': recorder.summary(),
                             'records': len(recorder.records)}
                      for mode, recorder in recorders.items()}
    write_sample_error_records(found['records'], {
        mode: recorder.records for mode, recorder in recorders.items()})
    with open(path, 'w') as handle:
        json.dump(found, handle, indent=1, sort_keys=True)
        handle.write('\n')


def sample_error_header(seed, policy):
    return {
        'benchmark': 'placement_quality --sample-error-out',
        'seed': seed, 'policy': policy,
        'few_samples_relative_sd': estimate_lib.FEW_SAMPLES_RELATIVE_SD,
        'min_samples': estimate_lib.MIN_SAMPLES,
        'rule': 'per ranking the recording policy scored: each measured '
                'host\'s per-metric estimate as the ranking stated it '
                '(value, sd, samples behind it) against the day-mean of '
                'that metric the VM realised there (the oracle of the '
                'ranking\'s outcome: the VM alone added at placement, '
                'over its first day or life), and on the host it was '
                'placed on also its own day (every later co-tenant); '
                'relative error = value / realised - 1, z = (value - '
                'realised) / sd; p68_abs: the 68.27th percentile of the '
                'absolute values (a normal\'s sd); centred: less the mean '
                'relative error of the request\'s hosts for the metric, '
                'times sqrt(k / (k - 1)); implied_few_samples_relative_sd: '
                'the fixed figure that makes the centred z scores of the '
                'estimates of one or two samples (no earlier samples) mean '
                'square 1 with the rest of their sd kept (_robust: median '
                'absolute z 0.674); percent metrics (steal) are left out '
                'of "all"'}


def records_path(path):
    base = path[:-len('.json')] if path.endswith('.json') else path
    return base + '.records.json.gz'


def _six_digits(value):
    return float('%.6g' % value) if isinstance(value, float) else value


def write_sample_error_records(path, by_mode):
    """``{mode: records}`` to ``path`` (gzip JSON, columns and rows)."""
    table = {}
    for mode, records in by_mode.items():
        columns = sorted({k for r in records for k in r})
        table[mode] = {'columns': columns, 'rows': [
            [_six_digits(r.get(c)) for c in columns] for r in records]}
    with gzip.open(path, 'wt') as handle:
        json.dump(table, handle, separators=(',', ':'), sort_keys=True)


def read_sample_error_records(path):
    """``{mode: records}`` of :func:`write_sample_error_records`."""
    with gzip.open(path, 'rt') as handle:
        table = json.load(handle)
    return {mode: [dict(zip(t['columns'], row)) for row in t['rows']]
            for mode, t in table.items()}


def pool_sample_errors(paths, out):
    """The summary of several runs' records (``--pool-sample-errors``);
    requests are told apart by the file they come from."""
    pooled = {}
    for index, path in enumerate(paths):
        for mode, records in read_sample_error_records(path).items():
            for record in records:
                record['request'] = '%d:%s' % (index, record['request'])
            pooled.setdefault(mode, []).extend(records)
    found = sample_error_header(None, None)
    found['pooled'] = list(paths)
    found['modes'] = {mode: {'summary': sample_error_summary(records),
                             'records': len(records)}
                      for mode, records in pooled.items()}
    with open(out, 'w') as handle:
        json.dump(found, handle, indent=1, sort_keys=True)
        handle.write('\n')


def print_table(result):
    print('placement quality: seed %d, traces: %s, ranker: %s, shadow '
          'budget %.0f s, history %s' % (
              result['seed'], result['traces'], result['ranker'],
              result['shadow_budget_s'], result['history']))
    for mode, summary in result['modes'].items():
        print('\nmode %s: %d requests, %.0f s wall'
              % (mode, summary['requests'], summary['wall_s']))
        print('%-17s %15s %8s %10s %14s' % ('policy', 'ratio_to_oracle',
                                           'qos_met', 'same_host',
                                           'shadow_host_s'))
        for policy, row in summary['policies'].items():
            print('%-17s %15.3f %8.3f %10.3f %14.0f' % (
                policy, row['ratio_to_oracle'], row['qos_met'],
                row['same_host_as_oracle'], row['shadow_host_seconds']))
        present = list(summary['policies'])
        print('per profile (ratio_to_oracle / qos_met):')
        for name, row in summary['per_profile'].items():
            print('  %-10s n=%-3d %s' % (name, row['requests'], '  '.join(
                '%s %.3f/%.2f' % (p, row[p]['ratio_to_oracle'],
                                  row[p]['qos_met']) for p in present)))
        if 'margin_over_nova' in summary:
            print('margin of nova-shadow over Nova defaults: %s'
                  % summary['margin_over_nova'])
        calib = summary.get('confidence_calibration')
        if calib:
            print('ranking confidence: mean %.3f, top host right %.3f, '
                  'ECE %.3f (%d rankings); raw mean %.3f, ECE %.3f'
                  % (calib['mean_confidence'], calib['observed_accuracy'],
                     calib['ece'], calib['count'],
                     calib['raw']['mean_confidence'], calib['raw']['ece']))
        if 'rejected_by_capacity_filter' in summary:
            print('requests no host could take: %s (first: request %s)'
                  % (summary['rejected_by_capacity_filter'],
                     summary['first_rejected_request']))
        phases = dict(summary.get('phases', {}))
        phases.update(summary.get('by_arrival_quarter', {}))
        for phase, row in phases.items():
            print('  %-24s n=%-3d %s' % (phase, row['requests'], '  '.join(
                '%s %.3f/%.2f' % (p, row[p]['ratio_to_oracle'],
                                  row[p]['qos_met']) for p in present)))
        if 'aims' in summary:
            print('aims: %s' % summary['aims'])
        for policy, use in summary.get('history_use', {}).items():
            line = 'history of %s: %d answered from history alone' % (
                policy, use['answered_from_history_alone'])
            if 'contention_refits' in use:
                # Only where the contention learner ran (persistent
                # history).
                line += (', %d contention refits, %d evaluations given '
                         'models %s' % (
                             use['contention_refits'],
                             use['evaluations_given_contention_models'],
                             use['contention_models_handed_out_by_metric']))
            print(line)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--requests', type=int, default=200)
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--mode', choices=MODES + ('all',),
                        default='arrivals')
    parser.add_argument('--budget', type=float, default=BUDGET_S,
                        help='shadow budget per request, simulated s')
    parser.add_argument('--history', choices=HISTORY_MODES,
                        default='persistent',
                        help='persistent: one history store and contention '
                        'learner per policy for the run (as the service); '
                        'fresh: an empty store per evaluation')
    parser.add_argument('--store', choices=STORES, default='sqlite',
                        help='the persistent history store')
    parser.add_argument('--confidence-target', type=float,
                        help='confidence at which an evaluation stops '
                        '(default: the Evaluator\'s, as [shadow] '
                        'confidence_target)')
    parser.add_argument('--cotenancy-horizon', type=float,
                        help='seconds of future co-tenancy the analyzer '
                        'predicts (default: the Analyzer\'s, 24 h; 0 '
                        'counts only the new VM, the ablation)')
    parser.add_argument('--lifetime-horizon', type=float,
                        help='seconds of the VM\'s life the ranking '
                        'predicts from host load forecasts (default: '
                        '[analysis] lifetime_horizon, 24 h; 0: the '
                        'shadow measurements now, the ablation)')
    parser.add_argument('--no-peak-headroom', action='store_true',
                        help='ablation: [analysis] peak_headroom = false')
    parser.add_argument('--no-peak-memory', action='store_true',
                        help='ablation: [analysis] peak_memory_headroom = '
                        'false')
    parser.add_argument('--no-calibration', action='store_true',
                        help='state the raw confidence ([analysis] '
                        'confidence_calibration = False, the ablation)')
    parser.add_argument('--calibration-tails', choices=('flat', 'identity'),
                        help='[analysis] calibration_tails (default: the '
                        'option\'s default; identity is the map before '
                        'flat tails)')
    parser.add_argument('--calibration-method', choices=('logistic', 'bins'),
                        help='[analysis] calibration_method (default: the '
                        'option\'s; bins is the map before the option)')
    parser.add_argument('--calibration-share-margin', type=float,
                        help='[analysis] calibration_share_margin (default: '
                        'the option\'s; 1 reads the map at any allocated '
                        'share, as before the option)')
    parser.add_argument('--calibration-min-pairs', type=int,
                        help='[analysis] calibration_min_pairs (default: '
                        'the option\'s)')
    parser.add_argument('--calibration-prior-map',
                        help='[analysis] calibration_prior_map (default: '
                        'the option\'s, bundled; identity is the map '
                        'before the option)')
    parser.add_argument('--calibration-prior-map-pairs', type=float,
                        help='[analysis] calibration_prior_map_pairs '
                        '(default: the option\'s)')
    parser.add_argument('--no-confidence-weighting', action='store_true',
                        help='the weigher with [shadow_weigher] '
                        'confidence_weighting = False (the ablation)')
    parser.add_argument('--cluster', help='the twin\'s cluster file '
                        '(default: the bundled 16-host, three-class one)')
    parser.add_argument('--policies', default=','.join(POLICIES),
                        help='comma-separated policies to compare, of %s '
                        '(default: %%(default)s; the oracle always runs; '
                        'arrivals and fill modes only when it differs)'
                        % ', '.join(ALL_POLICIES))
    parser.add_argument('--traces', help='trace directory (default: the '
                        'bundled sample)')
    parser.add_argument('--out', help='results file (default: '
                        'results/placement_quality.json with --history '
                        'fresh, results/placement_quality-persistent.json '
                        'with persistent)')
    parser.add_argument('--rows', help='also write every request\'s row '
                        'to ROWS.<mode>.json (arrivals and fill: with the '
                        'ranking\'s confidence, its source, hosts with an '
                        'estimate and history verdict)')
    parser.add_argument('--sample-error-out', metavar='FILE',
                        help='diagnostic: also write to FILE how far each '
                        'measured host\'s per-metric estimate (its value, '
                        'sd and sample count) lay from what the VM '
                        'realised there over its first day, by sample '
                        'count, and every record to FILE\'s '
                        '.records.json.gz (the placements are the same as '
                        'without)')
    parser.add_argument('--pool-sample-errors', nargs='+', metavar='GZ',
                        help='write to --sample-error-out the summary of '
                        'these runs\' .records.json.gz together, and run '
                        'nothing')
    parser.add_argument('--verbose', action='store_true')
    args = parser.parse_args(argv)
    if args.pool_sample_errors:
        if not args.sample_error_out:
            parser.error('--pool-sample-errors needs --sample-error-out')
        pool_sample_errors(args.pool_sample_errors, args.sample_error_out)
        return 0
    chosen = [p.strip() for p in args.policies.split(',') if p.strip()]
    unknown = sorted(set(chosen) - set(ALL_POLICIES))
    if unknown:
        parser.error('--policies: unknown policy %s (known: %s)'
                     % (', '.join(unknown), ', '.join(ALL_POLICIES)))
    args.policies = [p for p in ALL_POLICIES
                     if p in chosen or p == 'oracle']
    if args.policies != list(POLICIES) and args.mode in ('independent',
                                                         'all'):
        parser.error('--policies: only the default policies run in '
                     'independent mode; choose --mode arrivals or fill')
    logging.basicConfig(level=logging.INFO if args.verbose
                        else logging.WARNING)
    if args.out is None:
        args.out = os.path.join(
            os.path.dirname(os.path.abspath(__file__)), 'results',
            'placement_quality%s.json' % (
                '-persistent' if args.history == 'persistent' else ''))
    result = run(args)
    # Written before the table is printed: a run is never lost to how it
    # is shown.
    with open(args.out, 'w') as handle:
        json.dump(result, handle, indent=2, sort_keys=True)
        handle.write('\n')
    print_table(result)
    print('results written to %s' % args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
