"""Contention models of the twin: what a workload achieves on a shared host.

Every function is pure and works element-wise on floats or numpy arrays, so
the engine can evaluate one host or a whole cluster over a day in one call.
Each model states its assumptions and where its constants come from; change
a model here and its closed-form test in
``tests/unit/shadow_service/clouds/sim/test_contention.py`` together.

Models
------
CPU: processor sharing (Kleinrock, *Queueing Systems* vol. 2, 1976, ch. 4).
    While the busy vCPUs wanted on a host stay within its cores, everyone
    runs at full speed; beyond that every busy vCPU gets ``cores / demand``
    of a core and the rest of the time is *steal* as the guest's
    ``/proc/stat`` reports it.  An optional empirical sharing overhead
    (:func:`cpu_sharing_efficiency`, off by default) lowers the work done
    per share when a host is oversubscribed.
Memory bandwidth: a saturating shared resource.  Below the host's sustained
    (STREAM) bandwidth every stream gets what it asks; above it the
    bandwidth is shared in proportion to demand.  Loaded latency is
    ``idle * min(1 + MEM_QUEUE_WEIGHT * rho / (1 - rho), MEM_LATENCY_MAX)``:
    nearly flat at moderate load, a sharp rise near saturation and a
    ceiling, the shape of Intel Memory Latency Checker "loaded latency"
    curves.  The ceiling is physical: cores can only keep a bounded number
    of cache misses in flight, so the memory system is a closed queue and
    by Little's law its latency at saturation is bounded (outstanding
    misses / bandwidth), not divergent as in an open M/M/1 queue (which
    this model used before and which put a stream at half the bandwidth at
    twice the idle latency).  ``MEM_QUEUE_WEIGHT`` and ``MEM_LATENCY_MAX``
    are assumptions read off the shape of those curves (latency within
    ~15 % of idle up to half the peak bandwidth, 2-3x idle at the peak),
    not fitted to a published data set.
Disk: the device is an M/M/1 server whose service time is its unloaded
    latency and whose capacity is its rated IOPS.  The response time of
    M/M/1 is exponential with mean ``S / (1 - rho)`` so its p95 is
    ``ln(20) * S / (1 - rho)``; beyond saturation IOPS are shared in
    proportion to demand and latency stays at the ``RHO_CAP`` value.
Disk and CPU: a closed-loop disk job issues its next I/O only when the
    thread that waits for the last one runs again; on a host whose CPU is
    oversubscribed by other workloads that thread waits too
    (:func:`closed_loop_cpu_wait`, off by default), so the loop's IOPS
    fall with CPU contention though the device is no busier.
Network: the NIC is shared like the disk (throughput in proportion beyond
    line rate) and the round trip is the base RTT plus an M/M/1 queueing
    term on the NIC plus the scheduling delay a request waits when its vCPU
    is stolen (half a CFS scheduling period, 6 ms by default in Linux,
    times the steal fraction).
"""

import math

import numpy as np

#: Utilisation at which queueing terms stop growing (a queue this full is
#: the saturated state; beyond it only throughput shares change).
RHO_CAP = 0.98

#: Weight of the queueing term of loaded memory latency (assumption, see
#: the module docstring).
MEM_QUEUE_WEIGHT = 0.1
#: Loaded memory latency at saturation, in units of the idle latency
#: (assumption: 2-3x in published MLC loaded-latency curves).
MEM_LATENCY_MAX = 3.0

#: ln(20): the p95 of an exponential distribution in units of its mean.
P95_FACTOR = math.log(20.0)

#: Linux CFS ``sched_latency_ns`` default (6 ms): a runnable task that loses
#: its core waits on average half of that period.
CFS_PERIOD_MS = 6.0


def _clip_rho(rho):
    return np.minimum(np.asarray(rho, dtype=float), RHO_CAP)


def share(demand, capacity):
    """Fraction of its demand every consumer of a shared resource gets.

    Proportional (processor-sharing) split: 1 while total ``demand`` fits
    ``capacity``, ``capacity / demand`` beyond it.  Zero demand gets 1.
    """
    demand = np.asarray(demand, dtype=float)
    capacity = np.asarray(capacity, dtype=float)
    with np.errstate(divide='ignore', invalid='ignore'):
        ratio = np.where(demand > capacity, capacity / demand, 1.0)
    return np.clip(ratio, 0.0, 1.0)


def cpu_processor_sharing(total_busy_vcpus, cores):
    """CPU share and steal under processor sharing.

    Parameters
    ----------
    total_busy_vcpus : float or array
        Sum over every guest on the host of the vCPUs that want to run.
    cores : float or array
        Hardware threads of the host.

    Returns
    -------
    tuple
        ``(share, steal_fraction)``: the fraction of a core each busy vCPU
        gets and the fraction of its runnable time it is stolen
        (``1 - share``).
    """
    cpu_share = share(total_busy_vcpus, cores)
    return cpu_share, 1.0 - cpu_share


def cpu_sharing_efficiency(total_busy_vcpus, cores, overhead):
    """Work a busy vCPU does per unit of its core share when oversubscribed.

    ``1 / (1 + overhead * max(0, demand / cores - 1))``: 1 while the
    demand fits the cores; beyond that every extra unit of
    oversubscription costs ``overhead`` of the work done (context
    switches, cold caches, the slices a CPU quota cuts each period into).
    An empirical term: ``overhead`` is 0 (no loss, pure processor sharing)
    unless a cluster file sets the ``cpu_sharing_overhead`` assumption
    fitted to measurements (``benchmarks/twin_fidelity.py`` fits it on the
    lab, whose hosts are CPU quotas of one machine).  Without overhead
    it is the number 1.0 (no array work on the twin's hot path).
    """
    if not overhead:
        return 1.0
    excess = np.maximum(np.asarray(total_busy_vcpus, dtype=float)
                        / cores - 1.0, 0.0)
    return 1.0 / (1.0 + overhead * excess)


def memory_bandwidth(total_demand_gbps, capacity_gbps, idle_latency_ns):
    """Bandwidth share and loaded latency of a host's memory system.

    Returns ``(share, latency_ns)`` where ``latency_ns`` is
    ``idle * min(1 + MEM_QUEUE_WEIGHT * r / (1 - r), MEM_LATENCY_MAX)``
    with ``r = min(demand / capacity, RHO_CAP)``.
    """
    rho = _clip_rho(np.asarray(total_demand_gbps, dtype=float)
                    / capacity_gbps)
    factor = np.minimum(1.0 + MEM_QUEUE_WEIGHT * rho / (1.0 - rho),
                        MEM_LATENCY_MAX)
    latency_ns = idle_latency_ns * factor
    return share(total_demand_gbps, capacity_gbps), latency_ns


def mm1_p95_response(service_time, utilisation):
    """p95 response time of an M/M/1 queue: ``ln(20) S / (1 - rho)``."""
    return P95_FACTOR * service_time / (1.0 - _clip_rho(utilisation))


def mm1_mean_response(service_time, utilisation):
    """Mean response time of an M/M/1 queue: ``S / (1 - rho)``."""
    return service_time / (1.0 - _clip_rho(utilisation))


def disk_queue(total_iops_demand, rated_iops, service_time_ms):
    """IOPS share and p95 latency (ms) of a shared disk (M/M/1)."""
    rho = np.asarray(total_iops_demand, dtype=float) / rated_iops
    return (share(total_iops_demand, rated_iops),
            mm1_p95_response(service_time_ms, rho))


def steal_by_others(own_busy_vcpus, cpu_share, cores):
    """Steal a workload suffers beyond what its own busy vCPUs cause.

    ``share(own, cores) - cpu_share``: the share of a core per busy vCPU
    it would get on the host by itself (processor sharing) less the share
    it gets with everything the host runs: all its steal when it fits
    the host's cores by itself, 0 when it has the host to itself.
    """
    own = share(own_busy_vcpus, cores)
    return np.maximum(own - np.asarray(cpu_share, dtype=float), 0.0)


def closed_loop_cpu_wait(iops, in_flight, wait_ms, steal_fraction):
    """IOPS of a closed loop whose I/O threads wait for the CPU.

    ``in_flight`` I/Os at ``iops`` take ``in_flight / iops`` each (Little's
    law); every one of them then waits ``wait_ms * steal`` ms for its
    thread to run again before the next is issued, so the loop achieves
    ``in_flight / (in_flight / iops + wait_ms * steal / 1000)``. The wait
    is not the device's: its latency is unchanged. ``steal_fraction`` is
    the steal other workloads cause (:func:`steal_by_others`). An
    empirical term: ``wait_ms`` is 0 (no wait) unless a cluster file sets
    the ``disk_steal_wait_ms`` assumption fitted to measurements
    (``benchmarks/twin_fidelity.py`` fits it on the lab, whose hosts are
    CPU quotas: a thread whose host's quota is spent waits for its next
    period). Without a wait it returns ``iops`` as given.
    """
    if not wait_ms:
        return iops
    iops = np.asarray(iops, dtype=float)
    in_flight = np.asarray(in_flight, dtype=float)
    delay_s = wait_ms * np.asarray(steal_fraction, dtype=float) / 1000.0
    with np.errstate(divide='ignore', invalid='ignore'):
        slowed = np.where((in_flight > 0) & (iops > 0),
                          iops / (1.0 + iops * delay_s
                                  / np.maximum(in_flight, 1e-12)), iops)
    return slowed


def network(total_mbps_demand, nic_mbps, base_rtt_ms, nic_service_ms,
            steal_fraction):
    """Throughput share and p95 round trip (ms) through a shared NIC.

    ``rtt_p95 = base_rtt + ln(20) s_nic / (1 - rho_nic)
    + steal * CFS_PERIOD_MS / 2``.
    """
    rho = np.asarray(total_mbps_demand, dtype=float) / nic_mbps
    rtt_ms = (base_rtt_ms + mm1_p95_response(nic_service_ms, rho)
              + np.asarray(steal_fraction, dtype=float) * CFS_PERIOD_MS / 2)
    return share(total_mbps_demand, nic_mbps), rtt_ms


def memory_bound_slowdown(memory_fraction, bandwidth_share):
    """Speed of work of which ``memory_fraction`` waits on memory.

    Amdahl-style: the memory-bound part runs at ``bandwidth_share`` of its
    speed, the rest at full speed, so speed is
    ``1 / ((1 - f) + f / share)``.
    """
    bandwidth_share = np.maximum(np.asarray(bandwidth_share, dtype=float),
                                 1e-6)
    return 1.0 / ((1.0 - memory_fraction) + memory_fraction
                  / bandwidth_share)
