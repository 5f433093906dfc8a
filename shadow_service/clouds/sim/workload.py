"""What a loadgen profile asks of a host, and what it gets back.

A shadow or a full VM in the twin runs a :class:`loadgen.profiles.Profile`.
:func:`demand` turns the profile's components and intensity pattern into
resource demand over time; :func:`achieved` turns the host's contention
(see :mod:`shadow_service.clouds.sim.contention`) into the metrics loadgen
would report (names from ``doc/source/contributor/contracts.rst``).

Conversions (change them in the cluster file's ``assumptions``):

* cpu: ``workers x duty_cycle x intensity`` busy vCPUs, at most the VM's
  vCPUs; ``ops_per_ghz`` work units per busy core and GHz.
* memory: ``target_gbps`` when set, else ``workers x duty_cycle x
  worker_stream_gbps``; the streaming workers also keep vCPUs busy.
* disk: ``target_iops`` when set, else closed loop: ``iodepth`` I/Os in
  flight each taking the device's unloaded service time (Little's law),
  at most the device's rated IOPS.  A closed loop's p95 latency is at most
  ``ln(20) x in-flight I/Os / achieved IOPS`` (Little's law gives its mean
  exactly; the p95 of an exponential is ln(20) means): it cannot see the
  open queue's divergence because it never has more than ``iodepth``
  I/Os waiting.
* network: request/response at ``target_rps`` (else ``connections`` in a
  closed loop over the base RTT), or a stream of
  ``stream_mbps_per_connection`` per connection.
* I/O's CPU cost: with ``io_cpu_ms_per_op`` > 0 every I/O keeps the VM's
  vCPUs busy that long (system calls, copies, the file system), so the
  disk part adds ``iops x io_cpu_ms_per_op / 1000`` busy vCPUs and gets
  I/Os done only as fast as its CPU share allows: on the lab's hosts,
  whose CPU is a small share of one machine, a closed-loop disk job is
  CPU-bound (its IOPS follow the host's CPU share). 0 (the default): I/O
  costs no CPU.
* disk latency floor: ``disk_p95_floor_ms`` (default 0) is added to every
  disk p95 latency: the wait of a rate-limited device (a cgroup blkio
  throttle admits a slice's worth of I/O at once and holds the rest to
  the next slice), which a lone closed loop meets too and queueing adds
  to.
* CPU waits of a closed-loop disk job: with ``disk_steal_wait_ms`` > 0
  every I/O of a closed loop (``iodepth``) waits that many milliseconds
  times the CPU steal the VM's co-tenants cause
  (:func:`shadow_service.clouds.sim.contention.steal_by_others`) before
  its thread issues the next one, so its IOPS fall with CPU contention
  (CPU and memory neighbours) while its p95 latency, the device's, stays
  (:func:`shadow_service.clouds.sim.contention.closed_loop_cpu_wait`).
  0 (the default): a disk job's IOPS react to disk contention only.
* CPU sharing overhead: with ``cpu_sharing_overhead`` > 0 the CPU work done
  per core share falls as the host is oversubscribed
  (:func:`shadow_service.clouds.sim.contention.cpu_sharing_efficiency`).
  0 (the default): pure processor sharing.
"""

import numpy as np

from shadow_service.clouds.sim import contention

RESOURCES = ('busy_vcpus', 'mem_gbps', 'disk_iops', 'net_mbps')


def _intensity(profile, component, elapsed_s, share=1.0):
    return share * np.array([profile.intensity(component, float(t))
                             for t in np.atleast_1d(elapsed_s)])


def demand(profile, vcpus, host_class, assumptions, elapsed_s, share=1.0):
    """Demand of one workload at ``elapsed_s`` (array of seconds since it
    started) on a host of ``host_class``; ``share`` (a number or an array
    like ``elapsed_s``) is the part of the profile's load this workload
    carries (a member of a load-balanced group of n carries 1/n).

    Returns a dict with the :data:`RESOURCES` arrays plus ``cpu_vcpus``
    (busy vCPUs of the cpu component alone), ``net_rps`` and the static
    ``block_kb`` and ``bytes_per_request``.
    """
    elapsed_s = np.atleast_1d(np.asarray(elapsed_s, dtype=float))
    zeros = np.zeros_like(elapsed_s)
    parts = profile.components
    out = {name: zeros.copy() for name in RESOURCES}
    out.update(cpu_vcpus=zeros.copy(), net_rps=zeros.copy(),
               disk_in_flight=zeros.copy(), block_kb=4.0,
               bytes_per_request=0.0)
    mem_vcpus = zeros
    if 'cpu' in parts:
        spec = parts['cpu']
        out['cpu_vcpus'] = (spec['workers'] * spec['duty_cycle']
                            * _intensity(profile, 'cpu', elapsed_s, share))
    if 'memory' in parts:
        spec = parts['memory']
        level = _intensity(profile, 'memory', elapsed_s, share)
        if spec.get('target_gbps'):
            out['mem_gbps'] = spec['target_gbps'] * level
            mem_vcpus = out['mem_gbps'] / assumptions['worker_stream_gbps']
        else:
            mem_vcpus = spec['workers'] * spec['duty_cycle'] * level
            out['mem_gbps'] = mem_vcpus * assumptions['worker_stream_gbps']
    out['mem_vcpus'] = mem_vcpus + zeros
    out['cpu_vcpus'] = np.minimum(out['cpu_vcpus'], vcpus)
    # Background memory traffic of the CPU work itself.
    out['mem_gbps'] = out['mem_gbps'] + (
        out['cpu_vcpus'] * assumptions['mem_gbps_per_busy_core'])
    if 'disk' in parts:
        spec = parts['disk']
        level = _intensity(profile, 'disk', elapsed_s, share)
        if spec.get('target_iops'):
            iops = spec['target_iops'] * level
        else:
            out['disk_in_flight'] = spec['iodepth'] * spec['duty_cycle'] \
                * level
            iops = (out['disk_in_flight'] * 1000.0
                    / host_class.disk_service_ms)
        out['disk_iops'] = np.minimum(iops, host_class.disk_iops)
        out['block_kb'] = float(spec['block_size_kb'])
    out['disk_vcpus'] = (out['disk_iops']
                         * assumptions.get('io_cpu_ms_per_op', 0.0) / 1000.0)
    wanted_vcpus = out['cpu_vcpus'] + out['mem_vcpus'] + out['disk_vcpus']
    out['busy_vcpus'] = np.minimum(wanted_vcpus, vcpus)
    with np.errstate(divide='ignore', invalid='ignore'):
        # The part of what its threads want that the VM's vCPUs can run.
        out['inner_share'] = np.where(wanted_vcpus > vcpus,
                                      vcpus / wanted_vcpus, 1.0)
    if 'network' in parts:
        spec = parts['network']
        level = _intensity(profile, 'network', elapsed_s, share)
        if spec['mode'] == 'rr':
            if spec.get('target_rps'):
                rps = spec['target_rps'] * level
            else:
                rps = (spec['connections'] * spec['duty_cycle'] * level
                       * 1000.0 / host_class.net_base_rtt_ms)
            request_bytes = spec['payload_bytes'] + (
                spec.get('response_bytes') or spec['payload_bytes'])
            out['net_rps'] = rps
            out['bytes_per_request'] = float(request_bytes)
            out['net_mbps'] = rps * request_bytes / 1e6
        else:
            out['net_mbps'] = (spec['connections'] * spec['duty_cycle']
                               * level
                               * assumptions['stream_mbps_per_connection'])
    return out


def host_factors(total, host_class, assumptions):
    """Contention on one host given the summed demand ``total`` (a dict
    of :data:`RESOURCES` arrays)."""
    cpu_share, steal = contention.cpu_processor_sharing(
        total['busy_vcpus'], host_class.cores)
    cpu_efficiency = contention.cpu_sharing_efficiency(
        total['busy_vcpus'], host_class.cores,
        assumptions.get('cpu_sharing_overhead', 0.0))
    mem_share, mem_latency_ns = contention.memory_bandwidth(
        total['mem_gbps'], host_class.mem_bandwidth_gbps,
        host_class.mem_idle_latency_ns)
    disk_share, disk_p95_ms = contention.disk_queue(
        total['disk_iops'], host_class.disk_iops,
        host_class.disk_service_ms)
    net_share, rtt_p95_ms = contention.network(
        total['net_mbps'], host_class.nic_mbps, host_class.net_base_rtt_ms,
        assumptions['nic_service_ms'], steal)
    return {'cpu_share': cpu_share, 'steal': steal,
            'cpu_efficiency': cpu_efficiency, 'mem_share': mem_share,
            'mem_latency_ns': mem_latency_ns, 'disk_share': disk_share,
            'disk_p95_latency_ms': disk_p95_ms, 'net_share': net_share,
            'net_p95_rtt_ms': rtt_p95_ms}


def achieved(profile, vcpus, wanted, factors, host_class, assumptions):
    """Metrics (``{metric: array}``) a workload that ``wanted`` the demand
    from :func:`demand` achieves under ``factors``."""
    parts = profile.components
    cpu_share = factors['cpu_share']
    busy_fraction = wanted['busy_vcpus'] / max(vcpus, 1)
    metrics = {
        'cpu_util_pct': 100.0 * busy_fraction * cpu_share,
        'cpu_steal_pct': 100.0 * busy_fraction * factors['steal'],
    }
    if 'cpu' in parts:
        speed = contention.memory_bound_slowdown(
            assumptions['cpu_memory_fraction'], factors['mem_share'])
        metrics['cpu_ops_per_s'] = (
            wanted['cpu_vcpus'] * cpu_share * host_class.clock_ghz
            * assumptions['ops_per_ghz'] * speed
            * factors.get('cpu_efficiency', 1.0))
    if 'memory' in parts:
        metrics['mem_bandwidth_gbps'] = (
            wanted['mem_gbps'] * factors['mem_share'] * cpu_share)
        metrics['mem_latency_ns'] = factors['mem_latency_ns'] + 0 * cpu_share
    if 'disk' in parts:
        iops = wanted['disk_iops'] * factors['disk_share']
        if assumptions.get('io_cpu_ms_per_op', 0.0) > 0:
            iops = iops * cpu_share * wanted['inner_share']
        in_flight = np.asarray(wanted['disk_in_flight'], dtype=float)
        wait_ms = assumptions.get('disk_steal_wait_ms', 0.0)
        done = iops
        if wait_ms:
            done = contention.closed_loop_cpu_wait(
                iops, in_flight, wait_ms, contention.steal_by_others(
                    wanted['busy_vcpus'], cpu_share, host_class.cores))
        metrics['disk_iops'] = done
        metrics['disk_mbps'] = done * wanted['block_kb'] / 1024.0
        p95_ms = factors['disk_p95_latency_ms'] + 0 * done
        # The closed-loop bound is the device's: ``iops`` (before the
        # threads' wait for the CPU, which is not part of an I/O's
        # latency).
        with np.errstate(divide='ignore', invalid='ignore'):
            closed_ms = np.where(
                (in_flight > 0) & (iops > 0),
                contention.P95_FACTOR * in_flight * 1000.0
                / np.maximum(iops, 1e-12), np.inf)
        metrics['disk_p95_latency_ms'] = np.minimum(p95_ms, closed_ms) + \
            assumptions.get('disk_p95_floor_ms', 0.0)
    if 'network' in parts:
        share = np.minimum(factors['net_share'], cpu_share)
        if parts['network']['mode'] == 'rr':
            rps = wanted['net_rps'] * share
            metrics['net_rps'] = rps
            metrics['net_p95_rtt_ms'] = factors['net_p95_rtt_ms'] + 0 * rps
            metrics['net_mbps'] = rps * wanted['bytes_per_request'] / 1e6
        else:
            metrics['net_mbps'] = wanted['net_mbps'] * share
    return metrics
