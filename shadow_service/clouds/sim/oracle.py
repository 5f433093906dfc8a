"""Ground truth of the twin, for scoring placements only.

The oracle answers "how would this VM really have done on that host over the
next day?" from the twin's hidden state (tenants' future demand, exact
contention).  Benchmarks use it to find the best possible host and to score
the hosts other policies chose; nothing that ranks hosts may call it.

Realised performance
    Every 300 s of the horizon each metric the VM reports is turned into a
    goodness in [0, 1]: achieved / reference for higher-is-better metrics,
    reference / achieved for lower-is-better ones, where the reference is
    the best value the VM reaches alone on an idle host of any class of the
    cluster.  The goodnesses are averaged with the weights the profile's
    ``sensitivity`` gives each metric (the analyzer's catalogue), and the
    mean over the horizon, times 100, is the realised performance.
QoS target
    The profile's targets (:mod:`shadow_service.workloads.qos`); a
    placement meets its QoS when at least ``qos.QOS_SHARE`` of the
    horizon's steps meet every target.
Horizon
    24 simulated hours, or the VM's lifetime when it departs sooner (the
    twin knows when a VM with a lifetime will be deleted).
"""

import dataclasses

import numpy as np

from shadow_service.clouds.sim import engine
from shadow_service.clouds.sim import workload as workload_mod
from shadow_service.workloads import catalogue
from shadow_service.workloads import qos

HORIZON_S = 86400.0
STEP_S = 300.0
QOS_SHARE = qos.QOS_SHARE



@dataclasses.dataclass
class Realised:
    """What a VM really achieved on one host over the horizon."""

    host: str
    performance: float              # 0..100
    qos_met: bool
    qos_share: float                # share of steps meeting every target
    metrics: dict                   # {metric: array over the horizon}


def scored_horizon(lifetime_s, horizon_s=HORIZON_S, step_s=STEP_S):
    """Seconds a VM living ``lifetime_s`` is scored over: its life, at
    most ``horizon_s`` and at least one step."""
    if lifetime_s is None:
        return horizon_s
    return max(step_s, min(horizon_s, float(lifetime_s)))


def metric_weights(profile, metrics):
    """Sensitivity weights restricted to the metrics the VM reports."""
    weights = catalogue.metric_weights_from_sensitivity(profile.sensitivity)
    weights = {m: w for m, w in weights.items() if m in metrics}
    if not weights:
        weights = {m: 1.0 for m in metrics
                   if m in catalogue.METRIC_DIRECTIONS}
    total = sum(weights.values()) or 1.0
    return {m: w / total for m, w in weights.items()}


def goodness(metric, values, reference):
    values = np.asarray(values, dtype=float)
    if metric in catalogue.PERCENT_METRICS:
        return np.clip((100.0 - values) / 100.0, 0.0, 1.0)
    if catalogue.METRIC_DIRECTIONS.get(metric) == catalogue.LOWER:
        return np.clip(reference / np.maximum(values, 1e-12), 0.0, 1.0)
    if reference <= 0:
        return np.ones_like(values)
    return np.clip(values / reference, 0.0, 1.0)


class Oracle:
    """Scores hypothetical placements against the twin's hidden future."""

    def __init__(self, twin):
        self.twin = twin
        self._references = {}

    def _vm(self, profile, flavor, host, start):
        return engine.Workload(
            workload_id='oracle-vm', kind='vm', host=host, profile=profile,
            vcpus=int(flavor['vcpus']), ram_mb=int(flavor['ram_mb']),
            disk_gb=int(flavor.get('disk_gb', 0)), started_at=start)

    def reference(self, profile, vcpus):
        """Best unloaded value of each metric over the cluster's classes."""
        key = (profile.name, repr(profile.to_dict()), vcpus)
        if key in self._references:
            return self._references[key]
        assumptions = self.twin.cluster.assumptions
        best = {}
        for host_class in self.twin.cluster.classes.values():
            elapsed = np.arange(0.0, HORIZON_S, STEP_S)
            need = workload_mod.demand(profile, vcpus, host_class,
                                       assumptions, elapsed)
            factors = workload_mod.host_factors(
                {r: need[r] for r in workload_mod.RESOURCES}, host_class,
                assumptions)
            achieved = workload_mod.achieved(profile, vcpus, need, factors,
                                             host_class, assumptions)
            for metric, values in achieved.items():
                direction = catalogue.METRIC_DIRECTIONS.get(metric)
                value = float(np.mean(values))
                if metric not in best:
                    best[metric] = value
                elif direction == catalogue.LOWER:
                    best[metric] = min(best[metric], value)
                else:
                    best[metric] = max(best[metric], value)
        self._references[key] = best
        return best

    def realised(self, profile, flavor, host, start=None,
                 horizon_s=HORIZON_S, step_s=STEP_S):
        """:class:`Realised` of a VM (``profile``, ``flavor``) started on
        ``host`` at ``start`` (now by default)."""
        start = self.twin.clock if start is None else start
        vm = self._vm(profile, flavor, host, start)
        times = start + np.arange(step_s, horizon_s + 1e-9, step_s)
        _factors, _total, results = self.twin.evaluate(host, times,
                                                       extra=[vm])
        metrics, _active = results[vm.workload_id]
        return self._score(vm, metrics)

    def placed(self, workload_id, horizon_s=HORIZON_S, step_s=STEP_S):
        """:class:`Realised` of a VM the twin already runs, over the
        ``horizon_s`` after its start (its lifetime when shorter), with
        every workload that shares its host at each step (including those
        placed after it)."""
        vm = self.twin.workloads[workload_id]
        if vm.stopped_at is not None:
            horizon_s = scored_horizon(vm.stopped_at - vm.started_at,
                                       horizon_s, step_s)
        times = vm.started_at + np.arange(step_s, horizon_s + 1e-9, step_s)
        _factors, _total, results = self.twin.evaluate(vm.host, times)
        metrics, _active = results[workload_id]
        return self._score(vm, metrics)

    def _score(self, vm, metrics):
        reference = self.reference(vm.profile, vm.vcpus)
        weights = metric_weights(vm.profile, metrics)
        score = sum(w * goodness(m, metrics[m], reference.get(m, 0.0))
                    for m, w in weights.items())
        share = qos.share_met(vm.profile.name, metrics)
        return Realised(host=vm.host,
                        performance=100.0 * float(np.mean(score)),
                        qos_met=share >= QOS_SHARE, qos_share=share,
                        metrics=metrics)

    def best(self, profile, flavor, hosts, start=None, lifetime_s=None):
        """``(best Realised, {host: Realised})`` over ``hosts`` for a VM
        living ``lifetime_s`` (None: the whole horizon)."""
        horizon_s = scored_horizon(lifetime_s)
        results = {h: self.realised(profile, flavor, h, start, horizon_s)
                   for h in hosts}
        top = max(results.values(), key=lambda r: (r.performance, r.host))
        return top, results
