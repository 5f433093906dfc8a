"""Names of the host facts a cloud driver reports: defined once.

:meth:`shadow_service.clouds.base.CloudDriver.host_facts` returns
``{host: {fact: value}}`` under these names; the contention model
(:mod:`shadow_service.analysis.contention`) regresses on them, the
evaluation record keeps them, and the watcher reads them.  A driver reports
what it can know and leaves the rest out: every consumer treats a missing
fact as unknown, never as zero.

Inventory (data sheet) facts:

``hardware_class``  str, the host's hardware generation or model
``cores``           int, hardware threads
``clock_ghz``       float
``memory_mb``       int
``rated_mem_bandwidth_gbps``, ``rated_disk_iops``, ``nic_mbps``: float

What the cloud's scheduler knows (allocations, not usage):

``vcpus_used``, ``memory_mb_used``: allocated; ``running_vms``,
``num_instances``: instances on the host (``num_instances`` is the name the
contention model and Nova's HostState use).

Monitoring over the last minutes (the contention regressors):

``cpu_util_pct``  %, ``cpu_steal_pct`` %,
``mem_bw_util``   memory bandwidth in use / rated (0-1),
``io_util``       disk IOPS in use / rated (0-1).

Churn (from Nova's instance actions or notifications):

``vm_arrivals_24h``, ``vm_departures_24h``: VMs created on / deleted from
the host in the last 24 h.

Monitoring statistics: ``<metric>_now``, ``<metric>_mean_24h`` and
``<metric>_p95_24h`` for every host metric (``cpu_util_pct``,
``cpu_steal_pct``, ``mem_bandwidth_gbps``, ``disk_iops``,
``disk_p95_latency_ms``, ``net_mbps``).
"""

import math

HARDWARE_CLASS = 'hardware_class'
CORES = 'cores'
CLOCK_GHZ = 'clock_ghz'
MEMORY_MB = 'memory_mb'
RATED_MEM_BANDWIDTH_GBPS = 'rated_mem_bandwidth_gbps'
RATED_DISK_IOPS = 'rated_disk_iops'
NIC_MBPS = 'nic_mbps'

VCPUS_USED = 'vcpus_used'
MEMORY_MB_USED = 'memory_mb_used'
RUNNING_VMS = 'running_vms'
NUM_INSTANCES = 'num_instances'

CPU_UTIL_PCT = 'cpu_util_pct'
CPU_STEAL_PCT = 'cpu_steal_pct'
MEM_BW_UTIL = 'mem_bw_util'
IO_UTIL = 'io_util'

VM_ARRIVALS_24H = 'vm_arrivals_24h'
VM_DEPARTURES_24H = 'vm_departures_24h'

#: Host metrics monitoring reports, whose statistics are facts too.
HOST_METRICS = ('cpu_util_pct', 'cpu_steal_pct', 'mem_bandwidth_gbps',
                'disk_iops', 'disk_p95_latency_ms', 'net_mbps')
#: Suffixes of the monitoring statistics of each host metric.
STAT_NOW = '_now'
STAT_MEAN_24H = '_mean_24h'
STAT_P95_24H = '_p95_24h'

#: The contention model's numeric regressors.
CONTENTION_FEATURES = (CPU_UTIL_PCT, CPU_STEAL_PCT, MEM_BW_UTIL, IO_UTIL,
                       NUM_INSTANCES)


def allocated_ram_share(host_features):
    """Share of the hosts' RAM allocated: ``memory_mb_used`` over
    ``memory_mb``, summed over the hosts of ``{host: {fact: value}}``
    that report both; None when none does."""
    used = total = 0.0
    for features in (host_features or {}).values():
        features = features or {}
        host_used = features.get(MEMORY_MB_USED)
        host_total = features.get(MEMORY_MB)
        if (isinstance(host_used, (int, float))
                and isinstance(host_total, (int, float))
                and not isinstance(host_used, bool) and host_total > 0
                and math.isfinite(host_used) and math.isfinite(host_total)):
            used += float(host_used)
            total += float(host_total)
    return used / total if total > 0 else None


def stat(metric, suffix):
    """The fact name of a monitoring statistic: ``stat('cpu_util_pct',
    STAT_NOW)`` is ``'cpu_util_pct_now'``."""
    return metric + suffix
