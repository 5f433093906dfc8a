"""Peak headroom: the host's busiest part of the last day, with this VM.

A shadow measures a host for a minute or two, and a forecast of the host's
load summarises the day by its mean.  A neighbour that is quiet now and
busy for hours later (a nightly batch job) shows in neither, yet while it
runs the VM's vCPUs wait for cores and its steal target breaks: a QoS
target that must hold for 95 % of the time breaks when it fails for a
little over an hour a day.

The cloud's monitoring already knows each host's busiest hours: the host
facts carry ``cpu_util_pct_p95_24h`` and ``cpu_steal_pct_p95_24h``
(:mod:`shadow_service.hostfacts`), the level the host's CPU reached or
passed for 5 % of the last 24 h (or its level now when that is higher:
VMs placed in the last hour are not yet in the day's percentile); where
a driver does not report them,
the same statistics of the host's history in the metrics source
(``[metrics] source``, read by the lifetime forecaster on its
``lifetime_step`` grid) stand in.  :func:`peak_steal_pct` puts the VM on
top of that level under processor sharing (every busy vCPU gets
``cores / demand`` of a core once demand exceeds the host's hardware
threads; the rest is steal) and :func:`apply` raises the VM's predicted
``cpu_steal_pct`` to it when it is higher than what the shadow measured:
the figure is then the steal the VM is expected to see during the host's
busiest 5 % of a day, the share of time at which a 95 % QoS target is
decided.  The host's reasons say so (for example ``cpu_steal_pct: 21 %
during the host's busiest 5 % of the last 24 h (CPU 99 % of 24 threads,
quiet now at 3 %) with this VM's 8 busy vCPUs``).

What it needs: the host's ``cores`` and the 24 h CPU statistics; a host
without them is left as the shadow measured it.  The VM's busy vCPUs come
from the shadow's own ``cpu_util_pct`` samples scaled up to the full VM's
load (all of the flavor's vCPUs when the shadow reported none), times the VMs
the host is expected to gain while the VM runs (its recent churn, as the
contention model counts co-tenancy: ``[analysis] cotenancy_horizon``).
Change the statistic with ``PEAK_STAT`` (for example the mean for a
gentler view), or turn the adjustment off with ``[analysis]
peak_headroom``.

Memory bandwidth (``[analysis] peak_memory_headroom``): a shadow streams
``1 / load_ratio`` of the VM's memory traffic, so on a host whose memory
system the full VM (and the VMs like it the host is expected to gain)
would saturate, the shadow measures the latency of a host with room.
:func:`apply_memory` takes the host's bandwidth in use at its busy level
(the larger of ``mem_bandwidth_gbps_p95_24h`` and ``..._now``), adds the
full VM's traffic (the shadow's ``mem_bandwidth_gbps`` samples times the
load ratio, times the expected VMs) and compares it with the usable part
of the data sheet's bandwidth (``USABLE_BANDWIDTH_SHARE`` of
``rated_mem_bandwidth_gbps``: loaded latency climbs steeply before the
sustained peak).  Beyond it the memory system is a closed queue: the
streams share the bandwidth in proportion to demand and, with the misses
each core keeps in flight fixed, each miss waits longer in the same
proportion (Little's law), so the VM's predicted ``mem_bandwidth_gbps`` is
divided and its ``mem_latency_ns`` multiplied by ``demand / usable``.
Below it nothing changes.
"""

import math

import numpy as np

from shadow_service import hostfacts
from shadow_service.analysis import contention as contention_lib
from shadow_service.analysis import estimate as estimate_lib
from shadow_service.analysis import series

#: Which statistic of the last day is the host's busy level.
PEAK_STAT = hostfacts.STAT_P95_24H
#: Share of the day the statistic stands for (in the reasons).
PEAK_SHARE_PCT = 5
STEAL_METRIC = 'cpu_steal_pct'
UTIL_METRIC = 'cpu_util_pct'
#: A peak steal this many points above the shadow's estimate replaces it
#: (below it the shadow's own figure is as good).
MIN_RISE_PCT = 1.0
#: Relative uncertainty of the peak figure (the busy hours of the last day
#: need not come back exactly).
PEAK_RELATIVE_SD = 0.25
MEM_BANDWIDTH_METRIC = 'mem_bandwidth_gbps'
MEM_LATENCY_METRIC = 'mem_latency_ns'
#: Share of the data sheet's sustained memory bandwidth a host can carry
#: before loaded latency climbs steeply (published loaded-latency curves
#: stay near idle up to about half the peak and rise sharply in its last
#: tenth); demand beyond it counts as oversubscribing the memory system.
USABLE_BANDWIDTH_SHARE = 0.9
#: Demand over the usable bandwidth this many per cent or less is left as
#: the shadow measured it.
MIN_OVERSUBSCRIPTION_PCT = 2.0


def _number(features, name):
    try:
        value = float(features.get(name))
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def vm_busy_vcpus(samples, scale):
    """Busy vCPUs of the full VM, from the shadow's CPU utilisation
    (percent of its own vCPUs) scaled up as the shadow's load is: a shadow
    runs ``1 / load_ratio`` of the profile's load on ``shadow_vcpus``, so
    the full VM keeps ``util x load_ratio x shadow_vcpus`` vCPUs busy, at
    most its flavor's.  All of the flavor's vCPUs without samples; None
    without a flavor size in ``scale``."""
    scale = scale or {}
    try:
        full = float(scale.get('full_vcpus') or 0.0)
        ratio = float(scale.get('load_ratio') or 1.0)
        shadow_vcpus = float(scale.get('shadow_vcpus') or full)
    except (TypeError, ValueError):
        return None
    if full <= 0:
        return None
    values = np.asarray([v for v in (samples or {}).get(UTIL_METRIC, ())
                         if v is not None], dtype=float)
    values = values[np.abs(values) <= series.MAX_MAGNITUDE]
    if values.size == 0:
        return full
    util = float(np.clip(np.mean(values), 0.0, 100.0)) / 100.0
    return min(full, util * max(ratio, 0.0) * max(shadow_vcpus, 0.0))


def busy_level(features, metric):
    """The host's busy level of ``metric``: its ``PEAK_STAT`` over the
    last day, or what it carries now (the last 15 minutes) when that is
    higher: VMs placed in the last hour are in the host's load now but
    not yet in the day's 95th percentile.  None without the statistic."""
    peak = _number(features, hostfacts.stat(metric, PEAK_STAT))
    if peak is None:
        return None
    now = _number(features, hostfacts.stat(metric, hostfacts.STAT_NOW))
    return peak if now is None else max(peak, now)


def peak_steal_pct(features, busy_vcpus):
    """``(steal_pct, host_busy_vcpus, cores)`` the VM would see at the
    host's busy level of the last day, or None without the facts.

    The host's demand at that level is its busy cores divided by the share
    of time they were not stolen; adding ``busy_vcpus`` and sharing the
    ``cores`` gives the steal ``1 - cores / demand`` (0 while demand fits).
    """
    features = features or {}
    cores = _number(features, hostfacts.CORES)
    util = busy_level(features, UTIL_METRIC)
    if cores is None or cores <= 0 or util is None or busy_vcpus is None:
        return None
    steal = busy_level(features, STEAL_METRIC) or 0.0
    busy = min(max(util, 0.0), 100.0) / 100.0 * cores
    demand = busy / max(1.0 - min(max(steal, 0.0), 90.0) / 100.0, 0.1)
    total = demand + max(float(busy_vcpus), 0.0)
    if total <= cores:
        return 0.0, demand, cores
    return 100.0 * (1.0 - cores / total), demand, cores


def with_outlook(features, outlook):
    """``features`` with the CPU statistics the host facts lack taken from
    the host's load outlook (:class:`~.lifetime.HostOutlook`: the last
    day of the metrics source's history, on its ``lifetime_step`` grid)."""
    merged = dict(features or {})
    loads = getattr(outlook, 'loads', None) or {}
    for metric in (UTIL_METRIC, STEAL_METRIC, MEM_BANDWIDTH_METRIC):
        load = loads.get(metric)
        if load is None:
            continue
        busy = hostfacts.stat(metric, PEAK_STAT)
        if _number(merged, busy) is None and load.recent_p95 is not None:
            merged[busy] = load.recent_p95
        now = hostfacts.stat(metric, hostfacts.STAT_NOW)
        if _number(merged, now) is None:
            merged[now] = load.now
    return merged


def apply(estimates, samples, features, scale, horizon_s=86400.0,
          outlook=None):
    """Raise ``estimates[STEAL_METRIC]`` (a
    :class:`~shadow_service.analysis.estimate.MetricEstimate`, replaced in
    place of the dict) to the peak steal when that is higher; return the
    reasons (empty when nothing changed).

    The VM counts with the VMs the host is expected to gain over
    ``horizon_s`` from its recent churn
    (:func:`~shadow_service.analysis.contention.expected_added_instances`,
    each as busy as this one): a host a scheduler keeps choosing fills its
    busy hours too.  Statistics the host facts lack come from ``outlook``
    (:func:`with_outlook`)."""
    if estimates.get(STEAL_METRIC) is None:
        return []
    return apply_busy(estimates, vm_busy_vcpus(samples, scale),
                      with_outlook(features, outlook), horizon_s)


def apply_busy(estimates, busy_vcpus, features, horizon_s=86400.0):
    """:func:`apply` with the VM's busy vCPUs (:func:`vm_busy_vcpus`)
    already known and the outlook already in ``features``."""
    current = estimates.get(STEAL_METRIC)
    if current is None or busy_vcpus is None:
        return []
    added = contention_lib.expected_added_instances(features, horizon_s)
    found = peak_steal_pct(features, busy_vcpus * added)
    if found is None:
        return []
    steal, demand, cores = found
    if steal < current.value + MIN_RISE_PCT:
        return []
    sd = math.hypot(current.sd, PEAK_RELATIVE_SD * (steal - current.value))
    estimates[STEAL_METRIC] = estimate_lib.MetricEstimate(
        steal, sd, current.samples, list(current.notes),
        current.common_sd, current.measurable_sd)
    now = _number(features, hostfacts.stat(UTIL_METRIC, hostfacts.STAT_NOW))
    quiet = '' if now is None else ', %.0f %% now' % now
    more = ('' if added <= 1.0 else ' and %.1f more VMs like it expected '
            'over %.0f h' % (added - 1.0, horizon_s / 3600.0))
    return ['%s: %.0f %% during the host\'s busiest %d %% of the last 24 h '
            '(CPU demand %.1f of %.0f threads%s) with this VM\'s %.1f busy '
            'vCPUs%s; the shadow saw %.1f %%' % (
                STEAL_METRIC, steal, PEAK_SHARE_PCT, demand, cores, quiet,
                busy_vcpus, more, current.value)]


def vm_memory_gbps(samples, scale):
    """Memory traffic of the full VM, GB/s: the mean of the shadow's
    ``mem_bandwidth_gbps`` samples times the load ratio (the shadow runs
    ``1 / load_ratio`` of the profile's load; every component scales with
    it); None without such samples (a profile with no memory stream)."""
    values = np.asarray([v for v in (samples or {}).get(
        MEM_BANDWIDTH_METRIC, ()) if v is not None], dtype=float)
    values = values[np.abs(values) <= series.MAX_MAGNITUDE]
    if values.size == 0:
        return None
    try:
        ratio = float((scale or {}).get('load_ratio') or 1.0)
    except (TypeError, ValueError):
        ratio = 1.0
    return max(float(np.mean(values)), 0.0) * max(ratio, 1.0)


def memory_oversubscription(features, vm_gbps):
    """``(demand / usable, host_busy_gbps, usable_gbps)`` at the host's
    busy level with ``vm_gbps`` more traffic, or None without the host's
    rated bandwidth and monitoring statistics."""
    features = features or {}
    rated = _number(features, hostfacts.RATED_MEM_BANDWIDTH_GBPS)
    levels = [_number(features, hostfacts.stat(MEM_BANDWIDTH_METRIC, suffix))
              for suffix in (PEAK_STAT, hostfacts.STAT_NOW)]
    levels = [v for v in levels if v is not None]
    if rated is None or rated <= 0 or not levels or vm_gbps is None:
        return None
    busy = max(max(levels), 0.0)
    usable = USABLE_BANDWIDTH_SHARE * rated
    return (busy + max(float(vm_gbps), 0.0)) / usable, busy, usable


def apply_memory(estimates, samples, features, scale, horizon_s=86400.0,
                 outlook=None):
    """Divide ``estimates['mem_bandwidth_gbps']`` and multiply
    ``estimates['mem_latency_ns']`` (where present) by the memory
    system's oversubscription at the host's busy level with the full VM
    and the VMs like it the host is expected to gain over ``horizon_s``;
    return the reasons (empty when the demand fits)."""
    if not any(m in estimates for m in (MEM_BANDWIDTH_METRIC,
                                        MEM_LATENCY_METRIC)):
        return []
    return apply_memory_gbps(estimates, vm_memory_gbps(samples, scale),
                             with_outlook(features, outlook), horizon_s)


def apply_memory_gbps(estimates, vm_gbps, features, horizon_s=86400.0):
    """:func:`apply_memory` with the VM's memory traffic
    (:func:`vm_memory_gbps`) already known and the outlook already in
    ``features``."""
    if vm_gbps is None:
        return []
    added = contention_lib.expected_added_instances(features, horizon_s)
    found = memory_oversubscription(features, vm_gbps * added)
    if found is None:
        return []
    factor, busy, usable = found
    if factor <= 1.0 + MIN_OVERSUBSCRIPTION_PCT / 100.0:
        return []
    for metric, change in ((MEM_BANDWIDTH_METRIC, 1.0 / factor),
                           (MEM_LATENCY_METRIC, factor)):
        current = estimates.get(metric)
        if current is None:
            continue
        value = current.value * change
        sd = math.hypot(current.sd * change,
                        PEAK_RELATIVE_SD * abs(value - current.value))
        estimates[metric] = estimate_lib.MetricEstimate(
            value, sd, current.samples, list(current.notes),
            current.common_sd * change, current.measurable_sd * change)
    more = ('' if added <= 1.0 else ' and %.1f more VMs like it expected '
            'over %.0f h' % (added - 1.0, horizon_s / 3600.0))
    return ['memory: %.0f GB/s in use at the host\'s busy level plus this '
            'VM\'s %.1f GB/s%s need %.2fx the %.0f GB/s it can carry '
            'before latency climbs; bandwidth divided and latency '
            'multiplied by that' % (busy, vm_gbps, more, factor, usable)]
