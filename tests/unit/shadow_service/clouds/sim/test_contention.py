"""Each contention model against its closed form (and M/M/1 against a
simulated queue)."""

import math

import numpy as np
import pytest

from shadow_service.clouds.sim import contention


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


def test_memory_latency_follows_single_server_queue():
    share, latency = contention.memory_bandwidth(np.array([0.0, 50.0, 200.0]),
                                                 100.0, 80.0)
    np.testing.assert_allclose(share, [1.0, 1.0, 0.5])
    assert latency[0] == pytest.approx(80.0)
    assert latency[1] == pytest.approx(160.0)


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
