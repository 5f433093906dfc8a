"""``sim``: the CloudDriver of the digital twin.

Shadows boot instantly on the cluster file's hosts (with ``[sim]
unknown_hosts = derive`` also on any other name, which gets a class and
tenants derived from the seed and the name), run their loadgen
profile against the host's replayed tenants, and write ``shadow_sample``
points to the history store while :meth:`SimDriver.wait` moves the virtual
clock.  :meth:`SimDriver.host_facts` returns only what host monitoring
and an inventory could tell a real deployment; the twin's hidden state is
reachable through :attr:`SimDriver.oracle`, which exists for benchmarks and
must never feed a placement decision.

Full VMs (:meth:`SimDriver.place_vm`) can be acted on as the watcher does
on a real cloud: resized, live-migrated, given a sibling, deleted.  A VM
that changes flavor or host continues as a new twin workload under the
same instance id, so its history is one series.

Configure it in the ``[sim]`` group (``shadow_service/conf/sim.py``).
"""

import logging
import math
import time
import uuid

import numpy as np

from shadow_service import hostfacts as facts
from shadow_service.clouds import base
from shadow_service.clouds.sim import engine
from shadow_service.clouds.sim import oracle as oracle_mod
from shadow_service.conf import sim as sim_conf
from shadow_service.workloads import profiles

LOG = logging.getLogger(__name__)

FEATURE_WINDOW_S = 86400.0
FEATURE_STEP_S = 300.0


def _host_name(host):
    return host['host'] if isinstance(host, dict) else str(host)


class SimDriver(base.CloudDriver):
    """Shadows and VMs in the twin.

    Parameters
    ----------
    conf : oslo_config.cfg.ConfigOpts
        With the ``[sim]`` group registered
        (``shadow_service.conf.register_opts``).
    history : shadow_service.history.base.HistoryStore or None
        Where the twin writes what it measures (the driver gives its twin
        this store).
    twin : shadow_service.clouds.sim.engine.Twin, optional
        An already built twin (benchmarks running several stores over one
        twin); built from ``conf`` otherwise.
    """

    config_group = sim_conf.sim_group

    @classmethod
    def get_config_opts(cls):
        return sim_conf.sim_opts

    def __init__(self, conf, history, twin=None):
        super().__init__(conf, history)
        opts = conf.sim
        self.speedup = opts.speedup
        self.backfill_s = opts.backfill_hours * 3600.0
        if twin is None:
            twin = engine.build_twin(
                cluster_file=opts.cluster_file, trace_dir=opts.trace_dir,
                seed=opts.seed, history=history,
                start_time=opts.start_time,
                noise_pct=opts.noise_pct,
                sample_interval_s=opts.sample_interval,
                host_metric_interval_s=opts.host_metric_interval)
        twin.history = history
        self.twin = twin
        self._backfilled = set()
        self._declared = set(twin.cluster.host_names)
        self._unknown_hosts = opts.unknown_hosts
        self._max_derived = opts.max_derived_hosts
        self._derived = 0
        # instance id -> the twin workload it currently runs as
        self._instances = {}
        self._segments = 0
        # Workloads that end or start a resize on the same host.
        self._not_departed = set()
        self._not_arrived = set()

    # -- CloudDriver -----------------------------------------------------
    def boot_shadows(self, evaluation_id, request, hosts, profile):
        flavor = dict(request.get('flavor') or {})
        names = [_host_name(h) for h in hosts]
        known = self.ensure_hosts(names)
        shadows = []
        for name in names:
            if name not in known:
                LOG.warning('Twin: no host %s (not in the cluster file); '
                            'no shadow for evaluation %s', name,
                            evaluation_id)
                continue
            shadow_id = 'shadow-%s' % uuid.uuid5(
                uuid.NAMESPACE_URL, 'sim/%s/%s/%d' % (
                    evaluation_id, name, len(self.twin.workloads)))
            vcpus = max(1, int(flavor.get('vcpus') or 1))
            self.twin.start_workload(engine.Workload(
                workload_id=shadow_id, kind='shadow', host=name,
                profile=profile, vcpus=vcpus,
                ram_mb=int(flavor.get('ram_mb') or 512),
                disk_gb=int(flavor.get('disk_gb') or 1),
                started_at=self.twin.clock, evaluation_id=evaluation_id))
            shadows.append(base.Shadow(
                shadow_id=shadow_id, host=name,
                evaluation_id=evaluation_id, created_at=self.twin.clock,
                flavor=flavor))
        LOG.info('Twin booted %d shadows for evaluation %s',
                 len(shadows), evaluation_id)
        return shadows

    def delete_shadows(self, shadows):
        for shadow in shadows:
            self.twin.stop_workload(shadow.shadow_id)

    def list_shadows(self):
        return [base.Shadow(shadow_id=w.workload_id, host=w.host,
                            evaluation_id=w.evaluation_id,
                            created_at=w.started_at,
                            flavor={'vcpus': w.vcpus, 'ram_mb': w.ram_mb,
                                    'disk_gb': w.disk_gb})
                for w in self.twin.running(kind='shadow')]

    def now(self):
        return self.twin.clock

    def wait(self, seconds, sample_interval_s=None):
        if self.speedup > 0:
            time.sleep(seconds / self.speedup)
        self.twin.advance(seconds, sample_interval_s=sample_interval_s)

    def fast_forward(self, seconds, sample_interval_s=None,
                     host_metric_interval_s=None):
        """Move the twin's clock ``seconds`` on at once (no real-time
        pacing), writing what every workload and host reports on the way:
        the demo's and the benchmarks' simulated hours."""
        self.twin.advance(seconds, sample_interval_s=sample_interval_s,
                          host_metric_interval_s=host_metric_interval_s)

    def list_hosts(self):
        """The cluster file's hosts, all up and enabled, in zone nova."""
        return [base.HostInfo(host=name, availability_zone='nova')
                for name in self.host_names()]

    def host_facts(self, hosts, hosts_info=None):
        """Inventory and monitoring facts of ``hosts``: hardware data
        sheet figures, what tenants have allocated, and statistics of the
        host's own monitoring (with measurement noise) over the last day.
        ``hosts_info`` is ignored: the twin knows its hosts better.
        """
        names = [_host_name(h) for h in hosts]
        known = self.ensure_hosts(names)
        times = np.arange(self.twin.clock - FEATURE_WINDOW_S,
                          self.twin.clock + 1e-9, FEATURE_STEP_S)
        return {name: self._features(name, times) for name in names
                if name in known}

    # -- beyond the ABC: the twin's own API ------------------------------
    def host_names(self):
        """Hosts the cluster file declares (the CLI's default candidates)."""
        return list(self.twin.cluster.host_names)

    def ensure_hosts(self, names):
        """Make the twin know ``names`` (backfilling their monitoring
        history); returns the set of them it knows.  A name the cluster
        file does not declare is made up only with ``[sim] unknown_hosts
        = derive``, and at most ``[sim] max_derived_hosts`` of them."""
        declared = self._declared
        new = []
        for name in dict.fromkeys(names):
            if name in self._backfilled:
                continue
            if name not in declared:
                if (self._unknown_hosts != 'derive'
                        or self._derived >= self._max_derived):
                    continue
                self._derived += 1
            self.twin.host(name)
            self._backfilled.add(name)
            new.append(name)
        if new and self.backfill_s and self.history is not None:
            self.twin.backfill_host_metrics(self.backfill_s, hosts=new)
        return {n for n in names if n in self._backfilled}

    def place_vm(self, request, host, instance_id=None, lifetime_s=None,
                 profile=None):
        """Start a full VM for ``request`` on ``host``; returns its id.

        With ``lifetime_s`` the VM is deleted by itself that many seconds
        later (the benchmark's departures); without, it stays.
        ``profile`` defaults to the one the request names.
        """
        if profile is None:
            profile = profiles.resolve_profile(request)
        flavor = request['flavor']
        instance_id = instance_id or 'vm-%d' % len(self.twin.workloads)
        if host not in self.ensure_hosts([host]):
            raise base.CloudError('the twin has no host %s' % host,
                                  host=host)
        self.twin.start_workload(engine.Workload(
            workload_id=instance_id, kind='vm', host=host, profile=profile,
            vcpus=int(flavor['vcpus']), ram_mb=int(flavor['ram_mb']),
            disk_gb=int(flavor.get('disk_gb', 0)),
            started_at=self.twin.clock,
            stopped_at=(None if lifetime_s is None
                        else self.twin.clock + float(lifetime_s))))
        self._instances[instance_id] = instance_id
        return instance_id

    # -- instance actions (CloudDriver) ------------------------------------
    def _workload(self, instance_id):
        workload = self.twin.workloads.get(
            self._instances.get(instance_id, instance_id))
        if (workload is None or workload.kind != 'vm'
                or not workload.running_at(self.twin.clock)):
            raise base.CloudError('no running instance %s in the twin'
                                  % instance_id)
        return workload

    def get_instance(self, instance_id):
        work = self._workload(instance_id)
        return base.Instance(
            instance_id=instance_id, host=work.host,
            flavor={'vcpus': work.vcpus, 'ram_mb': work.ram_mb,
                    'disk_gb': work.disk_gb},
            metadata={'profile': work.profile.name})

    def _continue(self, instance_id, **changes):
        """Stop the instance's current workload now and start it again
        with ``changes`` (flavor or host) under the same instance id."""
        work = self._workload(instance_id)
        fields = {'vcpus': work.vcpus, 'ram_mb': work.ram_mb,
                  'disk_gb': work.disk_gb, 'host': work.host}
        fields.update(changes)
        if fields['host'] not in self.ensure_hosts([fields['host']]):
            raise base.CloudError('the twin has no host %s'
                                  % fields['host'], host=fields['host'])
        departs_at = work.stopped_at
        self.twin.stop_workload(work.workload_id)
        self._segments += 1
        new = engine.Workload(
            workload_id='%s#%d' % (instance_id, self._segments), kind='vm',
            profile=work.profile, started_at=self.twin.clock,
            stopped_at=departs_at, instance_id=instance_id, **fields)
        if new.host == work.host:
            # A resize in place is neither a departure nor an arrival.
            self._not_departed.add(work.workload_id)
            self._not_arrived.add(new.workload_id)
        self.twin.start_workload(new)
        self._instances[instance_id] = new.workload_id
        return new

    def resize(self, instance_id, flavor):
        """Run the instance with ``flavor`` from now on (instantly)."""
        self._continue(instance_id, vcpus=int(flavor['vcpus']),
                       ram_mb=int(flavor['ram_mb']),
                       disk_gb=int(flavor.get('disk_gb', 0)))

    def confirm_resize(self, instance_id):
        """Nothing to free in the twin: the old flavor stopped at once."""
        self._workload(instance_id)

    def live_migrate(self, instance_id, host):
        """Run the instance on ``host`` from now on (instantly)."""
        self._continue(instance_id, host=host)

    def boot_sibling(self, instance_id, name=None, host=None):
        """Another VM like ``instance_id`` on ``host`` (default: the host
        with the most free RAM, the twin's stand-in for Nova's
        scheduler)."""
        work = self._workload(instance_id)
        if host is None:
            host = max(self.host_names(),
                       key=lambda h: (self.nova_view(h)['free_ram_mb'], h))
        sibling = name or '%s-sibling-%d' % (instance_id,
                                             len(self.twin.workloads))
        request = {'flavor': {'vcpus': work.vcpus, 'ram_mb': work.ram_mb,
                              'disk_gb': work.disk_gb}}
        self.place_vm(request, host, instance_id=sibling,
                      profile=work.profile)
        return self.get_instance(sibling)

    def delete_instance(self, instance_id):
        current = self._instances.get(instance_id, instance_id)
        self.twin.stop_workload(current)

    def churn(self, host, window_s=FEATURE_WINDOW_S):
        """VMs created on and deleted from ``host`` in the last
        ``window_s`` (what Nova's instance actions or notifications tell a
        real deployment; the background tenants never change)."""
        now = self.twin.clock
        since = now - window_s
        arrived = departed = 0
        # (1 ms past now: the twin's clock is Unix seconds, where 1e-9
        # is below a float's resolution.)
        for work in self.twin.workloads_on(host, since, now + 1e-3):
            if work.kind != 'vm':
                continue
            arrived += (since < work.started_at <= now
                        and work.workload_id not in self._not_arrived)
            departed += (work.stopped_at is not None
                         and since < work.stopped_at <= now
                         and work.workload_id not in self._not_departed)
        return {facts.VM_ARRIVALS_24H: int(arrived),
                facts.VM_DEPARTURES_24H: int(departed)}

    def nova_view(self, host):
        """What Nova's resource tracker knows of ``host`` (allocations,
        not usage), as ComputeNode fields."""
        sim_host = self.twin.host(host)
        hc = sim_host.host_class
        per_vcpu_gb = self.twin.cluster.assumptions['tenant_disk_gb_per_vcpu']
        vms = self.twin.running(kind='vm', host=host)
        vcpus_used = sim_host.allocated_vcpus + sum(w.vcpus for w in vms)
        ram_used = sim_host.allocated_ram_mb + sum(w.ram_mb for w in vms)
        disk_used = int(sim_host.allocated_vcpus * per_vcpu_gb
                        + sum(w.disk_gb for w in vms))
        return {'vcpus': hc.cores, 'vcpus_used': vcpus_used,
                'memory_mb': hc.memory_mb, 'memory_mb_used': ram_used,
                'local_gb': hc.disk_gb, 'local_gb_used': disk_used,
                'free_ram_mb': hc.memory_mb - ram_used,
                'free_disk_gb': hc.disk_gb - disk_used,
                'running_vms': len(sim_host.tenants) + len(vms)}

    @property
    def oracle(self):
        """Hidden-state access for benchmarks only (never for ranking)."""
        return oracle_mod.Oracle(self.twin)

    def _contention_features(self, name, observed, recent):
        """The regressors of ``shadow_service.analysis.contention``
        (``hostfacts.CONTENTION_FEATURES``) from the last ``recent``
        monitoring steps."""
        hc = self.twin.host(name).host_class
        now = {m: float(np.mean(v[-recent:])) for m, v in observed.items()}
        return {
            facts.CPU_UTIL_PCT: now['cpu_util_pct'],
            facts.CPU_STEAL_PCT: now['cpu_steal_pct'],
            facts.MEM_BW_UTIL: (now['mem_bandwidth_gbps']
                                / hc.mem_bandwidth_gbps),
            facts.IO_UTIL: now['disk_iops'] / hc.disk_iops,
            facts.NUM_INSTANCES: self.nova_view(name)['running_vms'],
        }

    def _features(self, name, times):
        sim_host = self.twin.host(name)
        hc = sim_host.host_class
        observed = {metric: self.twin.noisy(values) for metric, values in
                    self.twin.host_observation(name, times).items()}
        recent = max(1, int(math.ceil(900.0 / FEATURE_STEP_S)))
        features = {
            facts.HARDWARE_CLASS: hc.name,
            facts.CORES: hc.cores,
            facts.CLOCK_GHZ: hc.clock_ghz,
            facts.MEMORY_MB: hc.memory_mb,
            facts.RATED_MEM_BANDWIDTH_GBPS: hc.mem_bandwidth_gbps,
            facts.RATED_DISK_IOPS: hc.disk_iops,
            facts.NIC_MBPS: hc.nic_mbps,
        }
        features.update({k: v for k, v in self.nova_view(name).items()
                         if k in (facts.VCPUS_USED, facts.MEMORY_MB_USED,
                                  facts.RUNNING_VMS)})
        features.update(self._contention_features(name, observed, recent))
        features.update(self.churn(name))
        for metric, values in observed.items():
            features[facts.stat(metric, facts.STAT_NOW)] = float(
                np.mean(values[-recent:]))
            features[facts.stat(metric, facts.STAT_MEAN_24H)] = float(
                np.mean(values))
            features[facts.stat(metric, facts.STAT_P95_24H)] = float(
                np.percentile(values, 95))
        return features
