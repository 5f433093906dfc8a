"""``sim``: the CloudDriver of the digital twin.

Shadows boot instantly on any host name the caller gives (unknown names get
a class and tenants derived from the seed and the name), run their loadgen
profile against the host's replayed tenants, and write ``shadow_sample``
points to the history store while :meth:`SimDriver.wait` moves the virtual
clock.  :meth:`SimDriver.host_features` returns only what host monitoring
and an inventory could tell a real deployment; the twin's hidden state is
reachable through :attr:`SimDriver.oracle`, which exists for benchmarks and
must never feed a placement decision.

Configure it in the ``[sim]`` group (``shadow_service/conf/sim.py``).
"""

import logging
import math
import time
import uuid

import numpy as np

from loadgen import profiles as lg_profiles
from shadow_service.clouds import base
from shadow_service.clouds.sim import engine
from shadow_service.clouds.sim import oracle as oracle_mod
from shadow_service.conf import sim as sim_conf

LOG = logging.getLogger(__name__)

FEATURE_WINDOW_S = 86400.0
FEATURE_STEP_S = 300.0


def _host_name(host):
    return host['host'] if isinstance(host, dict) else str(host)


def _as_profile(profile):
    if isinstance(profile, lg_profiles.Profile):
        return profile
    return lg_profiles.load_profile(profile)


class SimDriver(base.CloudDriver):
    """Shadows and VMs in the twin.

    Parameters
    ----------
    conf : oslo_config.cfg.ConfigOpts
        Reads the ``[sim]`` group (registered here if missing).
    history : shadow_service.history.base.HistoryStore or None
    twin : shadow_service.clouds.sim.engine.Twin, optional
        An already built twin (tests, benchmarks); built from ``conf``
        otherwise.
    """

    def __init__(self, conf, history, twin=None):
        super().__init__(conf, history)
        sim_conf.register_opts(conf)
        opts = conf.sim
        self.speedup = opts.speedup
        self.backfill_s = opts.backfill_hours * 3600.0
        if twin is None:
            twin = engine.build_twin(
                cluster_file=opts.cluster_file, trace_dir=opts.trace_dir,
                seed=opts.seed, history=history,
                start_time=(engine.DEFAULT_START if opts.start_time is None
                            else opts.start_time),
                noise_pct=opts.noise_pct,
                sample_interval_s=opts.sample_interval,
                host_metric_interval_s=opts.host_metric_interval)
        self.twin = twin
        self._backfilled = set()

    # -- CloudDriver -----------------------------------------------------
    def boot_shadows(self, evaluation_id, request, hosts, profile):
        flavor = dict(request.get('flavor') or {})
        profile = _as_profile(profile)
        self.ensure_hosts([_host_name(h) for h in hosts])
        shadows = []
        for host in hosts:
            name = _host_name(host)
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

    def host_features(self, hosts):
        """Inventory and monitoring features of ``hosts``: hardware data
        sheet figures, what tenants have allocated, and statistics of the
        host's own monitoring (with measurement noise) over the last day.
        """
        names = [_host_name(h) for h in hosts]
        self.ensure_hosts(names)
        times = np.arange(self.twin.clock - FEATURE_WINDOW_S,
                          self.twin.clock + 1e-9, FEATURE_STEP_S)
        return {name: self._features(name, times) for name in names}

    # -- beyond the ABC: the twin's own API ------------------------------
    def host_names(self):
        """Hosts the cluster file declares (the CLI's default candidates)."""
        return list(self.twin.cluster.host_names)

    def ensure_hosts(self, names):
        """Make the twin know ``names``, backfilling monitoring history."""
        new = [n for n in names if n not in self._backfilled]
        for name in new:
            self.twin.host(name)
            self._backfilled.add(name)
        if new and self.backfill_s and self.history is not None:
            self.twin.backfill_host_metrics(self.backfill_s, hosts=new)

    def place_vm(self, request, host, instance_id=None, lifetime_s=None):
        """Start a full VM for ``request`` on ``host``; returns its id.

        With ``lifetime_s`` the VM is deleted by itself that many seconds
        later (the benchmark's departures); without, it stays.
        """
        from shadow_service import evaluation as evaluation_mod
        profile = evaluation_mod.resolve_profile(request)
        flavor = request['flavor']
        instance_id = instance_id or 'vm-%d' % len(self.twin.workloads)
        self.ensure_hosts([host])
        self.twin.start_workload(engine.Workload(
            workload_id=instance_id, kind='vm', host=host, profile=profile,
            vcpus=int(flavor['vcpus']), ram_mb=int(flavor['ram_mb']),
            disk_gb=int(flavor.get('disk_gb', 0)),
            started_at=self.twin.clock,
            stopped_at=(None if lifetime_s is None
                        else self.twin.clock + float(lifetime_s))))
        return instance_id

    def churn(self, host, window_s=FEATURE_WINDOW_S):
        """VMs created on and deleted from ``host`` in the last
        ``window_s`` (what Nova's instance actions or notifications tell a
        real deployment; the background tenants never change)."""
        now = self.twin.clock
        since = now - window_s
        arrived = departed = 0
        for work in self.twin.workloads_on(host, since, now + 1e-9):
            if work.kind != 'vm':
                continue
            arrived += since < work.started_at <= now
            departed += (work.stopped_at is not None
                         and since < work.stopped_at <= now)
        return {'vm_arrivals_24h': int(arrived),
                'vm_departures_24h': int(departed)}

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
        (``NUMERIC_FEATURES``) from the last ``recent`` monitoring steps."""
        hc = self.twin.host(name).host_class
        now = {m: float(np.mean(v[-recent:])) for m, v in observed.items()}
        return {
            'cpu_util_pct': now['cpu_util_pct'],
            'cpu_steal_pct': now['cpu_steal_pct'],
            'mem_bw_util': now['mem_bandwidth_gbps'] / hc.mem_bandwidth_gbps,
            'io_util': now['disk_iops'] / hc.disk_iops,
            'num_instances': self.nova_view(name)['running_vms'],
        }

    def _features(self, name, times):
        sim_host = self.twin.host(name)
        hc = sim_host.host_class
        observed = {metric: self.twin.noisy(values) for metric, values in
                    self.twin.host_observation(name, times).items()}
        recent = max(1, int(math.ceil(900.0 / FEATURE_STEP_S)))
        features = {
            'hardware_class': hc.name,
            'cores': hc.cores,
            'clock_ghz': hc.clock_ghz,
            'memory_mb': hc.memory_mb,
            'rated_mem_bandwidth_gbps': hc.mem_bandwidth_gbps,
            'rated_disk_iops': hc.disk_iops,
            'nic_mbps': hc.nic_mbps,
        }
        features.update({k: v for k, v in self.nova_view(name).items()
                         if k in ('vcpus_used', 'memory_mb_used',
                                  'running_vms')})
        features.update(self._contention_features(name, observed, recent))
        features.update(self.churn(name))
        for metric, values in observed.items():
            features['%s_now' % metric] = float(np.mean(values[-recent:]))
            features['%s_mean_24h' % metric] = float(np.mean(values))
            features['%s_p95_24h' % metric] = float(
                np.percentile(values, 95))
        return features
