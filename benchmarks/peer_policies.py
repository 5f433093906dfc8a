"""Peers of nova-shadow for the placement benchmark: monitoring-based
placement an operator could deploy instead.

Every peer sees only what a monitoring system sees when the request
arrives: the host metrics the twin's host monitoring reports (CPU
utilisation and steal, memory bandwidth, disk IOPS and p95 latency), on a
scrape grid, up to a scrape delay before now, with the twin's measurement
noise; the data-sheet figures of the host's hardware; and the VMs the
peer itself placed (in-flight accounting).  Never the oracle, the twin's
tenants or any shadow sample.

nova_metrics      Nova's own weighers (``all_weighers``, default
                  multipliers) with Nova's real ``MetricsWeigher`` set to
                  ``[metrics] weight_setting = cpu.percent=-1.0`` and
                  ``weight_multiplier = METRICS_MULTIPLIER``, on HostStates
                  whose ComputeNode carries the ``cpu.percent`` metric the
                  compute service's ``virt_driver`` CPU monitor reports:
                  host CPU busy over its last ``NOVA_REPORT_S`` polling
                  period (``update_resources_interval``).
load_aware        least CPU load: mean CPU utilisation plus steal over the
                  last ``WINDOW_S`` (what a Prometheus-fed external
                  scheduler in the style of Cortex would query); ties go
                  to Nova's default order.
contention_aware  least pressure: CPU (utilisation plus steal) + memory
                  bandwidth in use over the data-sheet bandwidth + disk
                  (the larger of IOPS over rated IOPS and the p95
                  latency's excess over the device's unloaded p95), each
                  a mean over ``WINDOW_S``: the best a monitoring-only
                  scheduler can see of contention.

In-flight accounting: a VM the peer placed is not in its metrics until the
scrapes cover it, so each peer adds the flavor's vCPUs, fully busy, to its
host's CPU for the part of the metrics window before the VM started (as
Nova's HostState charges a placed flavor before the resource tracker
reports it).
"""

import math

import numpy as np

#: Scrape interval of host monitoring (Prometheus' common default: 30 s).
SCRAPE_S = 30.0
#: Age of the newest sample a query sees: a scrape interval plus the
#: recording rule's evaluation (an assumption).
DELAY_S = 60.0
#: Window of the load-aware and contention-aware peers.
WINDOW_S = 900.0
#: Nova's ``update_resources_interval`` default: the compute service
#: reports its metrics (and ``cpu.percent`` over the period) every 60 s.
NOVA_REPORT_S = 60.0
#: ``[metrics] weight_multiplier`` of the nova_metrics peer: the same as
#: the ShadowWeigher's default, so both weighers weigh alike against
#: Nova's defaults.
METRICS_MULTIPLIER = 10.0
#: ln(20): p95 of an exponential service time in units of its mean.
P95_FACTOR = math.log(20.0)

PEERS = ('nova_metrics', 'load_aware', 'contention_aware')


class Monitoring:
    """What host monitoring of one twin lets a peer query.

    Values come from the twin's host observation (the same function
    behind its ``host_metric`` points) on the scrape grid, with the
    twin's host monitoring noise drawn from an own generator
    (so a peer's queries leave the twin's draws alone).
    """

    def __init__(self, twin, seed, delay_s=DELAY_S, scrape_s=SCRAPE_S):
        self.twin = twin
        self.delay_s = float(delay_s)
        self.scrape_s = float(scrape_s)
        self.rng = np.random.default_rng([int(seed), 11])

    def _noisy(self, values):
        pct = self.twin.host_noise_pct
        values = np.asarray(values, dtype=float)
        if not pct:
            return values
        return np.maximum(values * (1.0 + self.rng.normal(
            0.0, pct / 100.0, values.shape)), 0.0)

    def window(self, host, now, span_s=WINDOW_S, delay_s=None):
        """``(end, {metric: noisy array})`` of the scrapes of ``host`` in
        ``(end - span_s, end]``, ``end`` the last scrape ``delay_s``
        before ``now``."""
        delay_s = self.delay_s if delay_s is None else delay_s
        end = math.floor((now - delay_s) / self.scrape_s) * self.scrape_s
        count = max(1, int(round(span_s / self.scrape_s)))
        times = end - self.scrape_s * np.arange(count - 1, -1, -1)
        observed = self.twin.host_observation(host, times)
        return end, {m: self._noisy(v) for m, v in observed.items()}

    def means(self, host, now, span_s=WINDOW_S):
        end, observed = self.window(host, now, span_s)
        return end, {m: float(np.mean(v)) for m, v in observed.items()}

    def nova_cpu_percent(self, host, now):
        """``(report time, cpu.percent)`` of Nova's virt_driver CPU
        monitor in the compute node's last report: host CPU busy over
        the polling period before it (no scrape delay: Nova reads its
        own database)."""
        report = math.floor(now / NOVA_REPORT_S) * NOVA_REPORT_S
        count = max(1, int(NOVA_REPORT_S // 5.0))
        times = report - 5.0 * np.arange(count - 1, -1, -1)
        util = self.twin.host_observation(host, times)['cpu_util_pct']
        return report, float(np.mean(self._noisy(util)))


class InFlight:
    """The VMs a peer placed, charged to their host until its metrics
    cover them."""

    def __init__(self):
        self.placed = []        # (start, host, vcpus)

    def add(self, start, host, vcpus):
        self.placed.append((float(start), host, int(vcpus)))

    def busy_vcpus(self, host, start, end):
        """vCPUs, fully busy, that the metrics window ``(start, end]``
        misses: each VM on ``host`` counts for the share of the window
        before it started (all of it when it started after ``end``)."""
        span = max(end - start, 1e-9)
        total = 0.0
        for placed_at, where, vcpus in self.placed:
            if where != host or placed_at <= start:
                continue
            missing = min(1.0, (placed_at - start) / span)
            total += vcpus * missing
        return total


class Peer:
    """One peer policy over one arm's twin."""

    def __init__(self, name, twin, seed, nova):
        if name not in PEERS:
            raise ValueError('unknown peer %r' % name)
        self.name = name
        self.twin = twin
        self.nova = nova
        self.monitoring = Monitoring(twin, seed)
        self.in_flight = InFlight()

    def placed(self, host, flavor):
        self.in_flight.add(self.twin.clock, host, flavor['vcpus'])

    def choose(self, views, flavor):
        now = self.twin.clock
        if self.name == 'nova_metrics':
            metrics = {}
            for host in views:
                report, percent = self.monitoring.nova_cpu_percent(host,
                                                                   now)
                cores = self.twin.host(host).host_class.cores
                extra = self.in_flight.busy_vcpus(
                    host, report - NOVA_REPORT_S, report)
                metrics[host] = min(100.0, percent + 100.0 * extra / cores)
            return self.nova.choose_with_metrics(views, flavor, metrics)
        pressure = {h: self.pressure(h, now) for h in views}
        order = self.nova.ranked(views, flavor)
        rank = {h: i for i, h in enumerate(order)}
        return min(views, key=lambda h: (round(pressure[h], 6), rank[h]))

    def pressure(self, host, now):
        """The peer's score of ``host`` (lower is better)."""
        hc = self.twin.host(host).host_class
        end, means = self.monitoring.means(host, now)
        extra = self.in_flight.busy_vcpus(host, end - WINDOW_S, end)
        cpu = (means['cpu_util_pct'] + means['cpu_steal_pct']) / 100.0 \
            + extra / hc.cores
        if self.name == 'load_aware':
            return cpu
        memory = means['mem_bandwidth_gbps'] / hc.mem_bandwidth_gbps
        unloaded_p95 = P95_FACTOR * hc.disk_service_ms
        latency = max(0.0, 1.0 - unloaded_p95 / max(
            means['disk_p95_latency_ms'], 1e-9))
        disk = max(means['disk_iops'] / hc.disk_iops, latency)
        return cpu + memory + disk
