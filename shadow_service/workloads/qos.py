"""QoS targets of the workload profiles: what each VM's owner would put in
an SLO.

A target is ``(comparison, threshold)`` on one metric of the catalogue,
with ``comparison`` ``'<='`` (lower is fine) or ``'>='``.  The watcher acts
before a forecast crosses a target; the benchmarks score placements by the
share of time every target held.  Latency targets sit a few times above the
best hardware's unloaded value; 10 % steal is the level at which public
clouds' guidance calls a host noisy.

A profile that is not listed gets :data:`DEFAULT_TARGETS`.  Change a
profile's targets here (and in ``doc/source/loadgen.rst``).
"""

import numpy as np

LOWER_IS_FINE = '<='
HIGHER_IS_FINE = '>='

#: ``{profile: {metric: (comparison, threshold)}}``.
TARGETS = {
    'web': {'net_p95_rtt_ms': ('<=', 1.0), 'cpu_steal_pct': ('<=', 10.0)},
    'db-oltp': {'disk_p95_latency_ms': ('<=', 5.0),
                'cpu_steal_pct': ('<=', 10.0)},
    'batch-cpu': {'cpu_steal_pct': ('<=', 10.0)},
    'cache': {'net_p95_rtt_ms': ('<=', 1.0), 'mem_latency_ns': ('<=', 200.0)},
    'analytics': {'mem_latency_ns': ('<=', 200.0),
                  'disk_p95_latency_ms': ('<=', 50.0)},
    'idle': {'cpu_steal_pct': ('<=', 10.0)},
}
DEFAULT_TARGETS = {'cpu_steal_pct': ('<=', 10.0)}

#: Share of a period's steps that must meet every target for the period
#: to count as "QoS met".
QOS_SHARE = 0.95


def targets_for(profile_name):
    """``{metric: (comparison, threshold)}`` of ``profile_name``."""
    return dict(TARGETS.get(profile_name, DEFAULT_TARGETS))


def key_target(profile_name, metrics=None):
    """``(metric, (comparison, threshold))``: the first target of the
    profile whose metric is among ``metrics`` (any when None), or the
    default steal target when none is."""
    for metric, target in targets_for(profile_name).items():
        if metrics is None or metric in metrics:
            return metric, target
    return next(iter(DEFAULT_TARGETS.items()))


def meets(values, target):
    """Boolean array: where ``values`` meet ``target``."""
    comparison, threshold = target
    values = np.asarray(values, dtype=float)
    if comparison == LOWER_IS_FINE:
        return values <= threshold
    return values >= threshold


def breaches(values, target):
    """Boolean array: where ``values`` break ``target`` (the upper
    interval bound for a ``<=`` target, the lower one for ``>=``)."""
    return ~meets(values, target)


def share_met(profile_name, metrics):
    """Share of steps at which every target of the profile with a series
    in ``metrics`` (``{metric: array}``) holds."""
    steps = len(next(iter(metrics.values())))
    ok = np.ones(steps, dtype=bool)
    for metric, target in targets_for(profile_name).items():
        if metric in metrics:
            ok &= meets(metrics[metric], target)
    return float(ok.mean())
