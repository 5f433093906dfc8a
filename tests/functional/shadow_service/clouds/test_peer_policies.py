"""The placement benchmark's monitoring-based peers on a two-host twin.

The peers live in ``benchmarks/`` (not a package): imported by path, as
the benchmark imports them.  The twin is real; ``nova_metrics`` runs
Nova's own weighers and MetricsWeigher.
"""

import os
import sys

import numpy as np
import pytest
import yaml

from shadow_service.clouds.sim import cluster as cluster_mod
from shadow_service.clouds.sim import engine

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))))
sys.path.insert(0, os.path.join(REPO, 'benchmarks'))

import peer_policies  # noqa: E402

STEADY = {'vcpus': 8, 'ram_mb': 16384, 'disk_iops': 10, 'net_mbps': 1}


@pytest.fixture
def twin(tmp_path):
    data = yaml.safe_load(open(cluster_mod.DEFAULT_CLUSTER_FILE))
    data['neighbours'] = {
        # Little CPU, most of the memory bandwidth.
        'streamer': dict(STEADY, busy_vcpus=2, mem_gbps=70),
        # More CPU, little memory traffic.
        'cruncher': dict(STEADY, busy_vcpus=4, mem_gbps=4)}
    data['hosts'] = [
        {'name': 'a', 'class': 'general', 'tenants': [],
         'neighbours': ['streamer']},
        {'name': 'b', 'class': 'general', 'tenants': [],
         'neighbours': ['cruncher']}]
    path = tmp_path / 'c.yaml'
    path.write_text(yaml.safe_dump(data))
    return engine.build_twin(cluster_file=str(path), seed=1, noise_pct=0)


def test_monitoring_sees_the_scrapes_up_to_the_delay(twin):
    monitoring = peer_policies.Monitoring(twin, seed=1)
    now = twin.clock + 1000.0
    end, observed = monitoring.window('a', now)
    assert end <= now - peer_policies.DELAY_S
    assert end > now - peer_policies.DELAY_S - peer_policies.SCRAPE_S
    assert end % peer_policies.SCRAPE_S == 0
    times = end - peer_policies.SCRAPE_S * np.arange(29, -1, -1)
    truth = twin.host_observation('a', times)
    np.testing.assert_allclose(observed['cpu_util_pct'],
                               truth['cpu_util_pct'])
    assert observed['mem_bandwidth_gbps'].mean() == pytest.approx(70.0,
                                                                  rel=0.05)


def test_in_flight_counts_the_part_of_the_window_a_vm_missed():
    flight = peer_policies.InFlight()
    flight.add(450.0, 'a', 4)
    flight.add(2000.0, 'a', 2)
    flight.add(100.0, 'b', 8)
    assert flight.busy_vcpus('a', 0.0, 900.0) == pytest.approx(2 + 2)
    assert flight.busy_vcpus('b', 0.0, 900.0) == pytest.approx(8 / 9)
    assert flight.busy_vcpus('b', 100.0, 1000.0) == 0


def test_load_aware_and_contention_aware_see_different_hosts(twin):
    views = {'a': {}, 'b': {}}
    order = type('Nova', (), {'ranked': lambda self, v, f: sorted(v)})()
    flavor = {'vcpus': 2}
    load = peer_policies.Peer('load_aware', twin, 1, order)
    contention = peer_policies.Peer('contention_aware', twin, 1, order)
    # CPU alone: the streamer's host looks quieter.
    assert load.choose(views, flavor) == 'a'
    # Memory bandwidth in use over the data sheet's: the cruncher's.
    assert contention.choose(views, flavor) == 'b'
    # Placing on b charges b until the metrics show the VM.
    for _ in range(4):
        contention.placed('b', {'vcpus': 8})
    assert contention.choose(views, flavor) == 'a'


def test_nova_metrics_runs_novas_metrics_weigher(twin):
    import placement_quality
    nova = placement_quality.NovaWeighers()
    peer = peer_policies.Peer('nova_metrics', twin, 1, nova)
    views = {}
    for host in ('a', 'b'):
        views[host] = {
            'vcpus': 24, 'vcpus_used': 8, 'memory_mb': 196608,
            'memory_mb_used': 16384, 'local_gb': 1900, 'local_gb_used': 80,
            'free_ram_mb': 196608 - 16384, 'free_disk_gb': 1820,
            'running_vms': 1}
    flavor = {'vcpus': 8, 'ram_mb': 16384, 'disk_gb': 80}
    # Hosts alike but for cpu.percent: 2 / 24 busy against 4 / 24.
    assert peer.choose(views, flavor) == 'a'
    from nova.scheduler.weights import metrics
    assert isinstance(nova.metrics_weigher(), metrics.MetricsWeigher)
    assert nova.metrics_weigher().setting == [('cpu.percent', -1.0)]
    # Two 8-vCPU VMs in flight on a make it the busier host.
    peer.placed('a', flavor)
    peer.placed('a', flavor)
    assert peer.choose(views, flavor) == 'b'
