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
would load to near its limit, the shadow measures the latency of a host
with room.  :func:`apply_memory` takes the host's bandwidth in use at its
busy level (the larger of ``mem_bandwidth_gbps_p95_24h`` and ``..._now``)
and adds the full VM's traffic (the shadow's ``mem_bandwidth_gbps``
samples times the load ratio, times the expected VMs).

Latency follows a loaded-latency curve of the utilisation ``u = demand /
rated_mem_bandwidth_gbps`` (:func:`loaded_latency_factor`, in units of
the idle latency): the queueing delay of an open single-server queue,
``q u / (1 - u)`` (M/M/1), near idle at moderate load and hyperbolic
near the limit, bounded by the delay of a closed queue at saturation,
``k - 1`` (``k = at_rated``): the host's cores keep a bounded number of
cache misses in flight, so by Little's law latency at saturation is that
number over the bandwidth, however many streams ask.  The delay is the
two combined as the smaller one rules, ``1 / (1 / open + 1 / closed)``,
so the curve ``1 + q (k - 1) u / (q u + (k - 1) (1 - u))`` is
monotone, reaches ``k`` at the rated bandwidth and stays there beyond
it; ``q`` is set so that the curve passes through ``at_half`` at half
the rated bandwidth.  Both anchors are what an Intel Memory Latency
Checker loaded-latency curve of the host's hardware reads (latency at
half and at full sustained bandwidth over the idle latency;
``[analysis] mem_latency_at_half_bandwidth`` and
``mem_latency_at_rated_bandwidth``, by default 1.1 and 3: published
curves stay within ~10 % of idle up to half the peak and reach 2-3x at
it).  The shadow measured the latency at the host's traffic now plus
its own, so the VM's predicted ``mem_latency_ns`` is multiplied by the
curve at the busy level with the full VM over the curve where the shadow
measured.

Bandwidth: beyond the usable part of the data sheet's bandwidth
(``USABLE_BANDWIDTH_SHARE`` of ``rated_mem_bandwidth_gbps``) streams
share it in proportion to demand, so the VM's predicted
``mem_bandwidth_gbps`` is divided by ``demand / usable``.  Below it, and
where the latency curve moves by 2 % or less, nothing changes.
"""

import math

import numpy as np

from shadow_service import hostfacts
from shadow_service.analysis import contention as contention_lib
from shadow_service.analysis import estimate as estimate_lib

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
#: Demand over the usable bandwidth, or a latency multiplier, this many
#: per cent or less above 1 is left as the shadow measured it.
MIN_OVERSUBSCRIPTION_PCT = 2.0
#: Loaded memory latency at half the rated bandwidth, in units of the idle
#: latency (``[analysis] mem_latency_at_half_bandwidth``).
MEM_LATENCY_AT_HALF = 1.1
#: Loaded memory latency at (and beyond) the rated bandwidth, in units of
#: the idle latency (``[analysis] mem_latency_at_rated_bandwidth``).
MEM_LATENCY_AT_RATED = 3.0


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
    values = values[np.isfinite(values)]
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


def load_ratio(scale):
    """The shadow's load ratio (the full VM's load over the shadow's), at
    least 1."""
    try:
        ratio = float((scale or {}).get('load_ratio') or 1.0)
    except (TypeError, ValueError):
        ratio = 1.0
    return max(ratio, 1.0) if math.isfinite(ratio) else 1.0


def vm_memory_gbps(samples, scale):
    """Memory traffic of the full VM, GB/s: the mean of the shadow's
    ``mem_bandwidth_gbps`` samples times the load ratio (the shadow runs
    ``1 / load_ratio`` of the profile's load; every component scales with
    it); None without such samples (a profile with no memory stream)."""
    values = np.asarray([v for v in (samples or {}).get(
        MEM_BANDWIDTH_METRIC, ()) if v is not None], dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    return max(float(np.mean(values)), 0.0) * load_ratio(scale)


def check_latency_curve(at_half, at_rated):
    """Raise ValueError unless ``1 <= at_half < at_rated``."""
    if not (math.isfinite(at_half) and math.isfinite(at_rated)
            and 1.0 <= at_half < at_rated):
        raise ValueError('the loaded memory latency at half the rated '
                         'bandwidth (%r) must be at least 1 and below the '
                         'latency at the rated bandwidth (%r)'
                         % (at_half, at_rated))


def loaded_latency_factor(utilisation, at_half=MEM_LATENCY_AT_HALF,
                          at_rated=MEM_LATENCY_AT_RATED):
    """Loaded memory latency over the idle latency at ``utilisation``
    (demand over the rated sustained bandwidth; a number or an array).

    ``1 + q (k - 1) u / (q u + (k - 1) (1 - u))`` below the rated
    bandwidth and ``k = at_rated`` at and beyond it: the open-queue
    (M/M/1) delay ``q u / (1 - u)`` bounded by the closed queue's
    ``k - 1`` (``1 / delay = 1 / open + 1 / closed``), with ``q`` chosen
    so that the curve passes through ``at_half`` at ``u = 1/2``.
    Monotone, 1 at no load, ``at_rated`` at most.
    """
    check_latency_curve(at_half, at_rated)
    closed = at_rated - 1.0
    half = at_half - 1.0
    q = half * closed / (closed - half)
    u = np.clip(np.asarray(utilisation, dtype=float), 0.0, 1.0)
    denominator = q * u + closed * (1.0 - u)
    with np.errstate(divide='ignore', invalid='ignore'):
        delay = np.where(denominator > 0.0,
                         q * closed * u / denominator, closed)
    delay = np.where(u >= 1.0, closed, delay)
    factor = 1.0 + delay
    return float(factor) if np.ndim(factor) == 0 else factor


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


def memory_latency_multiplier(features, vm_gbps, shadow_gbps,
                              at_half=MEM_LATENCY_AT_HALF,
                              at_rated=MEM_LATENCY_AT_RATED):
    """``(multiplier, utilisation_with_vm, utilisation_measured)``: the
    loaded-latency curve (:func:`loaded_latency_factor`) at the host's
    busy level plus ``vm_gbps`` over the curve where the shadow measured
    (the host's traffic now, else its mean of the last day, else none,
    plus the shadow's own ``shadow_gbps``); None without the host's rated
    bandwidth and busy level."""
    features = features or {}
    rated = _number(features, hostfacts.RATED_MEM_BANDWIDTH_GBPS)
    busy = busy_level(features, MEM_BANDWIDTH_METRIC)
    if busy is None:
        busy = _number(features, hostfacts.stat(MEM_BANDWIDTH_METRIC,
                                                hostfacts.STAT_NOW))
    if rated is None or rated <= 0 or busy is None or vm_gbps is None:
        return None
    now = _number(features, hostfacts.stat(MEM_BANDWIDTH_METRIC,
                                           hostfacts.STAT_NOW))
    if now is None:
        now = _number(features, hostfacts.stat(MEM_BANDWIDTH_METRIC,
                                               hostfacts.STAT_MEAN_24H))
    now = max(now or 0.0, 0.0)
    with_vm = (max(busy, 0.0) + max(float(vm_gbps), 0.0)) / rated
    measured = (now + max(float(shadow_gbps or 0.0), 0.0)) / rated
    multiplier = (loaded_latency_factor(with_vm, at_half, at_rated)
                  / loaded_latency_factor(measured, at_half, at_rated))
    return max(multiplier, 1.0), with_vm, measured


def apply_memory(estimates, samples, features, scale, horizon_s=86400.0,
                 outlook=None, at_half=MEM_LATENCY_AT_HALF,
                 at_rated=MEM_LATENCY_AT_RATED):
    """Divide ``estimates['mem_bandwidth_gbps']`` by the memory system's
    oversubscription and multiply ``estimates['mem_latency_ns']`` (where
    present) by the rise of its loaded-latency curve, at the host's busy
    level with the full VM and the VMs like it the host is expected to
    gain over ``horizon_s``, against where the shadow measured; return
    the reasons (empty when nothing changes)."""
    if not any(m in estimates for m in (MEM_BANDWIDTH_METRIC,
                                        MEM_LATENCY_METRIC)):
        return []
    vm_gbps = vm_memory_gbps(samples, scale)
    shadow_gbps = None if vm_gbps is None else vm_gbps / load_ratio(scale)
    return apply_memory_gbps(estimates, vm_gbps,
                             with_outlook(features, outlook), horizon_s,
                             shadow_gbps=shadow_gbps, at_half=at_half,
                             at_rated=at_rated)


def _scaled(current, change):
    value = current.value * change
    sd = math.hypot(current.sd * change,
                    PEAK_RELATIVE_SD * abs(value - current.value))
    return estimate_lib.MetricEstimate(
        value, sd, current.samples, list(current.notes),
        current.common_sd * change, current.measurable_sd * change)


def apply_memory_gbps(estimates, vm_gbps, features, horizon_s=86400.0,
                      shadow_gbps=None, at_half=MEM_LATENCY_AT_HALF,
                      at_rated=MEM_LATENCY_AT_RATED):
    """:func:`apply_memory` with the VM's memory traffic
    (:func:`vm_memory_gbps`) already known and the outlook already in
    ``features``; ``shadow_gbps`` is the shadow's own traffic (the full
    VM's when None)."""
    if vm_gbps is None:
        return []
    added = contention_lib.expected_added_instances(features, horizon_s)
    found = memory_oversubscription(features, vm_gbps * added)
    if found is None:
        return []
    factor, busy, usable = found
    if shadow_gbps is None:
        shadow_gbps = vm_gbps
    multiplier, with_vm, measured = memory_latency_multiplier(
        features, vm_gbps * added, shadow_gbps, at_half, at_rated)
    threshold = 1.0 + MIN_OVERSUBSCRIPTION_PCT / 100.0
    changes = []
    if factor > threshold and MEM_BANDWIDTH_METRIC in estimates:
        changes.append((MEM_BANDWIDTH_METRIC, 1.0 / factor))
    if multiplier > threshold and MEM_LATENCY_METRIC in estimates:
        changes.append((MEM_LATENCY_METRIC, multiplier))
    changes = [(m, c) for m, c in changes if estimates.get(m) is not None]
    if not changes:
        return []
    for metric, change in changes:
        estimates[metric] = _scaled(estimates[metric], change)
    more = ('' if added <= 1.0 else ' and %.1f more VMs like it expected '
            'over %.0f h' % (added - 1.0, horizon_s / 3600.0))
    reasons = []
    for metric, change in changes:
        if metric == MEM_BANDWIDTH_METRIC:
            reasons.append(
                'memory: %.0f GB/s in use at the host\'s busy level plus '
                'this VM\'s %.1f GB/s%s need %.2fx the %.0f GB/s it can '
                'carry; bandwidth divided by that'
                % (busy, vm_gbps, more, factor, usable))
        else:
            reasons.append(
                'memory: %.0f GB/s in use at the host\'s busy level plus '
                'this VM\'s %.1f GB/s%s load its memory system to %.0f %% '
                'of its rated bandwidth, against %.0f %% where the shadow '
                'measured; loaded latency %.2fx the shadow\'s'
                % (busy, vm_gbps, more, 100.0 * with_vm, 100.0 * measured,
                   change))
    return reasons
