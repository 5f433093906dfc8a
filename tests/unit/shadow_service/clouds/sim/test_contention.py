"""Each contention model against its closed form (and M/M/1 against a
simulated queue)."""

import math

import numpy as np
import pytest

from loadgen import profiles
from shadow_service.clouds.sim import cluster
from shadow_service.clouds.sim import contention
from shadow_service.clouds.sim import workload


def test_share_is_one_within_capacity_and_proportional_beyond():
    assert contention.share(8.0, 16.0) == 1.0
    assert contention.share(32.0, 16.0) == pytest.approx(0.5)
    assert contention.share(0.0, 16.0) == 1.0
    np.testing.assert_allclose(contention.share(np.array([4, 20, 40]), 10),
                               [1.0, 0.5, 0.25])


def test_processor_sharing_steals_the_excess_over_cores():
    share, steal = contention.cpu_processor_sharing(np.array([8, 16, 24,
                                                              64]), 16)
    np.testing.assert_allclose(share, [1, 1, 16 / 24, 0.25])
    np.testing.assert_allclose(steal, 1 - share)


def _ssd_host(name, cores):
    """A host class with a 50k IOPS SATA SSD (0.15 ms unloaded)."""
    return cluster.HostClass(
        name=name, cores=cores, clock_ghz=2.2, memory_mb=196608,
        disk_gb=1900, mem_bandwidth_gbps=86, mem_idle_latency_ns=90,
        disk_iops=50000, disk_service_ms=0.15, nic_mbps=1250,
        net_base_rtt_ms=0.08)


def test_sharing_efficiency_is_one_until_oversubscribed():
    demand = np.array([0.25, 0.5, 1.0, 2.0])
    np.testing.assert_allclose(
        contention.cpu_sharing_efficiency(demand, 0.5, 0.0), 1.0)
    # 0.5 cores: demand 1.0 is 1 unit of oversubscription, 2.0 is 3.
    np.testing.assert_allclose(
        contention.cpu_sharing_efficiency(demand, 0.5, 0.1),
        [1.0, 1.0, 1 / 1.1, 1 / 1.3])


def test_sharing_overhead_slows_cpu_work_on_an_oversubscribed_host():
    small = _ssd_host(name='quota', cores=0.5)
    profile = profiles.load_profile('batch-cpu')

    def ops(overhead, others):
        assumptions = dict(cluster.DEFAULT_ASSUMPTIONS,
                           cpu_sharing_overhead=overhead)
        need = workload.demand(profile, 1, small, assumptions, [0.0])
        total = {r: need[r] * (1 + others) for r in workload.RESOURCES}
        factors = workload.host_factors(total, small, assumptions)
        return workload.achieved(profile, 1, need, factors, small,
                                 assumptions)['cpu_ops_per_s'][0]

    # Off by default: the bundled twin is pure processor sharing.
    assert cluster.DEFAULT_ASSUMPTIONS['cpu_sharing_overhead'] == 0.0
    assert ops(0.0, 2) == pytest.approx(ops(0.0, 0) / 3)
    # With three busy vCPUs on half a core (5 units over), 0.04 costs 1/1.2.
    assert ops(0.04, 2) == pytest.approx(ops(0.0, 2) / 1.2)


def test_mm1_p95_is_the_exponential_quantile():
    service, rho = 2.0, 0.6
    p95 = contention.mm1_p95_response(service, rho)
    # Response time of M/M/1 is exponential with rate (1 - rho) / S.
    assert math.exp(-(1 - rho) / service * p95) == pytest.approx(0.05)
    assert contention.mm1_mean_response(service, rho) == pytest.approx(5.0)


def test_mm1_matches_a_simulated_queue():
    rng = np.random.default_rng(6)
    service_mean, rho, customers = 1.0, 0.7, 200_000
    arrivals = rng.exponential(service_mean / rho, customers)
    services = rng.exponential(service_mean, customers)
    wait = np.zeros(customers)
    for i in range(1, customers):     # Lindley's recursion
        wait[i] = max(0.0, wait[i - 1] + services[i - 1] - arrivals[i])
    response = wait + services
    assert np.mean(response) == pytest.approx(
        contention.mm1_mean_response(service_mean, rho), rel=0.05)
    assert np.percentile(response, 95) == pytest.approx(
        contention.mm1_p95_response(service_mean, rho), rel=0.05)


def test_queueing_terms_stop_growing_at_the_cap():
    capped = contention.mm1_p95_response(1.0, contention.RHO_CAP)
    assert contention.mm1_p95_response(1.0, 5.0) == pytest.approx(capped)


def test_disk_queue_shares_iops_and_grows_latency():
    share, p95 = contention.disk_queue(np.array([300.0, 1200.0]), 600.0,
                                       6.0)
    np.testing.assert_allclose(share, [1.0, 0.5])
    assert p95[0] == pytest.approx(math.log(20) * 6.0 / 0.5)
    assert p95[1] == pytest.approx(math.log(20) * 6.0
                                   / (1 - contention.RHO_CAP))


def test_memory_latency_rises_near_saturation_up_to_a_ceiling():
    share, latency = contention.memory_bandwidth(
        np.array([0.0, 50.0, 90.0, 200.0]), 100.0, 80.0)
    np.testing.assert_allclose(share, [1.0, 1.0, 0.9 / 0.9, 0.5])
    weight = contention.MEM_QUEUE_WEIGHT
    assert latency[0] == pytest.approx(80.0)
    assert latency[1] == pytest.approx(80.0 * (1 + weight * 0.5 / 0.5))
    assert latency[2] == pytest.approx(80.0 * (1 + weight * 0.9 / 0.1))
    # Saturated: a closed queue's bounded latency, not M/M/1's divergence.
    assert latency[3] == pytest.approx(80.0 * contention.MEM_LATENCY_MAX)


def test_network_rtt_adds_queueing_and_steal_delay():
    share, rtt = contention.network(625.0, 1250.0, 0.1, 0.02, 0.5)
    assert share == 1.0
    expected = (0.1 + math.log(20) * 0.02 / 0.5
                + 0.5 * contention.CFS_PERIOD_MS / 2)
    assert rtt == pytest.approx(expected)
    share, _rtt = contention.network(2500.0, 1250.0, 0.1, 0.02, 0.0)
    assert share == pytest.approx(0.5)


@pytest.mark.parametrize('fraction,bandwidth_share,expected', [
    (0.0, 0.25, 1.0), (0.3, 1.0, 1.0), (1.0, 0.25, 0.25),
    (0.5, 0.5, 1 / 1.5)])
def test_memory_bound_slowdown_is_amdahl(fraction, bandwidth_share,
                                         expected):
    assert contention.memory_bound_slowdown(
        fraction, bandwidth_share) == pytest.approx(expected)


def test_a_closed_loop_disk_sees_littles_law_not_an_open_queue():
    # iodepth 16 on a 50k IOPS SATA SSD (0.15 ms unloaded) offers 107k
    # IOPS: the device saturates, the loop gets its 50k and each I/O waits
    # behind the loop's own 15 others: mean 16 / 50k s = 0.32 ms.
    ssd = _ssd_host(name='ssd', cores=24)
    profile = profiles.load_profile('db-oltp').scaled(4.0)
    assumptions = dict(cluster.DEFAULT_ASSUMPTIONS)
    need = workload.demand(profile, 8, ssd, assumptions, [0.0])
    factors = workload.host_factors(
        {r: need[r] for r in workload.RESOURCES}, ssd, assumptions)
    metrics = workload.achieved(profile, 8, need, factors, ssd, assumptions)

    assert need['disk_in_flight'][0] == pytest.approx(16.0)
    assert metrics['disk_iops'][0] == pytest.approx(50000.0)
    assert metrics['disk_p95_latency_ms'][0] == pytest.approx(
        math.log(20) * 16 / 50000 * 1000)
    # The open M/M/1 term alone would have put it at its 0.98 cap.
    assert factors['disk_p95_latency_ms'][0] == pytest.approx(
        math.log(20) * 0.15 / 0.02)


def test_steal_by_others_is_the_steal_beyond_the_workloads_own():
    # Half a core: a workload of 0.8 busy vCPUs gets 0.625 by itself;
    # with 1.0 more from others the host gives 0.5 / 1.8.
    assert contention.steal_by_others(0.8, 0.5 / 1.8, 0.5) == \
        pytest.approx(0.625 - 0.5 / 1.8)
    # A workload that fits the cores: its steal, all others'.
    assert contention.steal_by_others(0.5, 0.25, 1.0) == pytest.approx(0.75)
    # Alone on the host: none.
    assert contention.steal_by_others(0.8, 0.625, 0.5) == pytest.approx(0.0)


def test_a_closed_loop_waits_for_the_cpu_once_per_io():
    # 4 I/Os in flight at 200 IOPS: 20 ms each; a 30 ms wait at steal 0.5
    # adds 15 ms, so 4 / 35 ms.
    assert contention.closed_loop_cpu_wait(200.0, 4.0, 30.0, 0.5) == \
        pytest.approx(4 / 0.035)
    np.testing.assert_allclose(
        contention.closed_loop_cpu_wait(np.array([200.0, 200.0, 50.0]),
                                        np.array([4.0, 0.0, 4.0]), 30.0,
                                        np.array([0.0, 0.5, 0.5])),
        [200.0, 200.0, 4 / (0.08 + 0.015)])
    # No wait (the default): the IOPS as given.
    assert contention.closed_loop_cpu_wait(200.0, 4.0, 0.0, 0.9) == 200.0
