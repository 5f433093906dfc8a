"""Peak headroom: a host that is quiet now but busy for hours of the day
ranks below an evenly loaded one once its busy hours leave no room."""

import numpy as np
import pytest

from shadow_service import hostfacts
from shadow_service.analysis import analyzer as analyzer_lib
from shadow_service.analysis import estimate as estimate_lib
from shadow_service.analysis import peak

BATCH = {"cpu": 1.0}
SCALE = {"load_ratio": 4.0, "shadow_vcpus": 2, "full_vcpus": 8,
         "shadow_ram_mb": 1024, "full_ram_mb": 16384}


def facts(now, p95, cores=24, steal_p95=0.0):
    return {hostfacts.CORES: cores,
            hostfacts.stat('cpu_util_pct', hostfacts.STAT_NOW): now,
            hostfacts.stat('cpu_util_pct', hostfacts.STAT_P95_24H): p95,
            hostfacts.stat('cpu_steal_pct', hostfacts.STAT_P95_24H):
                steal_p95}


def shadow(ops, steal=0.2, util=100.0, count=24, seed=0):
    """Samples of a CPU-bound shadow: its vCPUs busy (``util``)."""
    rng = np.random.default_rng(seed)
    return {"cpu_ops_per_s": list(ops * (1 + 0.01
                                         * rng.standard_normal(count))),
            "cpu_steal_pct": list(np.abs(steal + 0.05
                                         * rng.standard_normal(count))),
            "cpu_util_pct": [util] * count}


def test_processor_sharing_at_the_busy_level():
    # 99 % of 24 threads busy plus 8 busy vCPUs: demand 31.76, steal
    # 1 - 24 / 31.76.
    steal, demand, cores = peak.peak_steal_pct(facts(3.0, 99.0), 8.0)
    assert demand == pytest.approx(23.76)
    assert steal == pytest.approx(100.0 * (1.0 - 24.0 / 31.76))
    # Room to spare: no steal.
    assert peak.peak_steal_pct(facts(3.0, 40.0), 8.0)[0] == 0.0


def test_stolen_time_at_the_peak_counts_as_demand():
    # A saturated host shows 100 % busy; its steal says how much more was
    # wanted.
    without = peak.peak_steal_pct(facts(50.0, 100.0), 2.0)[0]
    with_steal = peak.peak_steal_pct(
        facts(50.0, 100.0, steal_p95=20.0), 2.0)[0]
    assert with_steal > without


def test_busy_vcpus_follow_the_shadows_utilisation():
    # A shadow of 2 vCPUs at a quarter of the load, 25 % busy: the full VM
    # keeps 2 x 4 x 0.25 = 2 vCPUs busy.
    assert peak.vm_busy_vcpus({"cpu_util_pct": [25.0, 25.0]},
                              SCALE) == pytest.approx(2.0)
    # Never more than the flavor has.
    assert peak.vm_busy_vcpus({"cpu_util_pct": [100.0]}, SCALE) == 8.0
    # No utilisation samples: every vCPU of the flavor counts as busy.
    assert peak.vm_busy_vcpus({}, SCALE) == 8.0
    assert peak.vm_busy_vcpus({}, {}) is None


def test_missing_facts_leave_the_estimate_alone():
    estimates = {"cpu_steal_pct": estimate_lib.MetricEstimate(
        0.5, 0.1, 20, [])}
    assert peak.apply(estimates, shadow(1000.0), {hostfacts.CORES: 24},
                      SCALE) == []
    assert estimates["cpu_steal_pct"].value == 0.5


def test_quiet_now_busy_later_host_ranks_below_an_even_one():
    # The bursty host is a little faster in the shadows' minutes (its
    # neighbour is quiet now), but its last day reached 99 % CPU; the even
    # host never passed 45 %.
    observations = {"bursty": shadow(1010.0, seed=1),
                    "even": shadow(1000.0, seed=2)}
    features = {"bursty": facts(3.0, 99.0), "even": facts(30.0, 45.0)}
    measured_only = analyzer_lib.Analyzer(peak_headroom=False).rank(
        BATCH, observations, host_features=features, scale=SCALE)
    assert measured_only.hosts[0].host == "bursty"

    ranking = analyzer_lib.Analyzer().rank(
        BATCH, observations, host_features=features, scale=SCALE)
    assert [h.host for h in ranking.hosts] == ["even", "bursty"]
    bursty = ranking.host("bursty")
    assert bursty.predicted["cpu_steal_pct"] == pytest.approx(
        100.0 * (1.0 - 24.0 / 31.76), rel=1e-3)
    assert any("busiest 5 %" in r and "3 % now" in r
               for r in bursty.reasons)
    # The even host keeps what its shadow measured.
    assert ranking.host("even").predicted["cpu_steal_pct"] < 1.0


def test_the_option_reaches_the_analyzer():
    from oslo_config import cfg

    from shadow_service.conf import analysis as analysis_conf

    conf = cfg.ConfigOpts()
    analysis_conf.register_opts(conf)
    conf([])
    assert analyzer_lib.Analyzer.from_conf(conf).peak_headroom is True
    conf.set_override('peak_headroom', False, group='analysis')
    assert analyzer_lib.Analyzer.from_conf(conf).peak_headroom is False


def test_a_host_that_keeps_gaining_vms_fills_its_busy_hours_too():
    # 70 % of 24 threads at its busiest leaves room for one 4-vCPU VM, not
    # for the four more the host gained in the last day if they continue.
    observations = {"growing": shadow(1000.0, seed=1),
                    "steady": shadow(1000.0, seed=2)}
    half = dict(SCALE, full_vcpus=4)
    features = {
        "growing": dict(facts(30.0, 70.0), **{
            hostfacts.VM_ARRIVALS_24H: 4, hostfacts.VM_DEPARTURES_24H: 0}),
        "steady": dict(facts(30.0, 70.0), **{
            hostfacts.VM_ARRIVALS_24H: 2, hostfacts.VM_DEPARTURES_24H: 2})}
    ranking = analyzer_lib.Analyzer().rank(
        BATCH, observations, host_features=features, scale=half)
    assert ranking.hosts[0].host == "steady"
    growing = ranking.host("growing")
    # 16.8 busy + 4 x 3 expected = 28.8 on 24 threads.
    assert growing.predicted["cpu_steal_pct"] == pytest.approx(
        100.0 * (1.0 - 24.0 / 28.8), rel=1e-3)
    assert any("2.0 more VMs like it" in r for r in growing.reasons)
    assert ranking.host("steady").predicted["cpu_steal_pct"] < 1.0


def test_without_host_facts_the_history_outlook_stands_in():
    from shadow_service.analysis import lifetime

    def outlook(host, now, busy):
        load = lifetime.LoadOutlook(
            metric="cpu_util_pct", now=now, mean=now, lower=now,
            upper=now, peak=now, peak_at=0.0, model="naive",
            history_points=72, recent_p95=busy)
        return lifetime.HostOutlook(host, 86400.0, 0.0,
                                    loads={"cpu_util_pct": load})

    class Outlooks:
        horizon_s = 86400.0

        def outlook(self, hosts, deadline=None):
            return {"bursty": outlook("bursty", 3.0, 99.0),
                    "even": outlook("even", 30.0, 45.0)}

        def shift(self, *args):
            return 0.0, 0.0

    observations = {"bursty": shadow(1010.0, seed=1),
                    "even": shadow(1000.0, seed=2)}
    # The driver reports the inventory only; the busy level comes from the
    # metrics source's history.
    features = {h: {hostfacts.CORES: 24} for h in observations}
    ranking = analyzer_lib.Analyzer(load_forecaster=Outlooks()).rank(
        BATCH, observations, host_features=features, scale=SCALE)
    assert [h.host for h in ranking.hosts] == ["even", "bursty"]
    assert ranking.host("bursty").predicted["cpu_steal_pct"] == \
        pytest.approx(100.0 * (1.0 - 24.0 / 31.76), rel=1e-3)


def test_the_outlook_keeps_the_last_days_busy_level():
    from shadow_service.analysis import lifetime

    class Source:
        name = "test"

        def supports(self, metric):
            return metric == "cpu_util_pct"

    forecaster = lifetime.LoadForecaster(Source(), lambda: 0.0,
                                         forecaster="naive", min_points=3)
    # Three quiet days, then a day with a three-hour burst at 95 %.
    values = np.full(96, 5.0)
    values[80:83] = 95.0
    load = forecaster._one("cpu_util_pct", values, 0.0, 24)
    assert load.now == 5.0
    assert load.recent_p95 == pytest.approx(
        np.percentile(values[-24:], 95))
    assert load.recent_p95 > 80.0


# -- memory bandwidth ---------------------------------------------------
MEMORY = {"memory": 1.0}


def memory_facts(now, p95, rated=86.0):
    return {hostfacts.RATED_MEM_BANDWIDTH_GBPS: rated,
            hostfacts.stat('mem_bandwidth_gbps', hostfacts.STAT_NOW): now,
            hostfacts.stat('mem_bandwidth_gbps', hostfacts.STAT_P95_24H):
                p95}


def streaming_shadow(gbps, latency_ns, count=24, seed=0):
    """Samples of a memory-streaming shadow."""
    rng = np.random.default_rng(seed)
    return {"mem_bandwidth_gbps": list(
                gbps * (1 + 0.01 * rng.standard_normal(count))),
            "mem_latency_ns": list(latency_ns * (1 + 0.01
                                                 * rng.standard_normal(
                                                     count)))}


def test_full_vm_traffic_beyond_the_usable_bandwidth():
    # A shadow at a quarter of the load streams 10 GB/s: the VM 40. With
    # 45 GB/s in use at the host's busy level, 85 of the usable 77.4
    # (90 % of 86).
    assert peak.vm_memory_gbps({"mem_bandwidth_gbps": [10.0, 10.0]},
                               SCALE) == pytest.approx(40.0)
    assert peak.vm_memory_gbps({}, SCALE) is None
    factor, busy, usable = peak.memory_oversubscription(
        memory_facts(20.0, 45.0), 40.0)
    assert busy == 45.0
    assert usable == pytest.approx(77.4)
    assert factor == pytest.approx(85.0 / 77.4)
    # The busy level is at least what the host carries now (VMs placed
    # in the last hour are not yet in the day's 95th percentile).
    assert peak.memory_oversubscription(
        memory_facts(60.0, 45.0), 40.0)[1] == 60.0
    assert peak.memory_oversubscription({}, 40.0) is None


def test_room_to_spare_leaves_memory_as_measured():
    estimates = {m: estimate_lib.MetricEstimate(v, 1.0, 24, [])
                 for m, v in (("mem_bandwidth_gbps", 40.0),
                              ("mem_latency_ns", 95.0))}
    assert peak.apply_memory(estimates, streaming_shadow(10.0, 95.0),
                             memory_facts(5.0, 10.0), SCALE) == []
    assert estimates["mem_latency_ns"].value == 95.0


def test_a_host_the_full_vm_would_saturate_ranks_below_one_with_room():
    # The shadow on "busy" sees a little less latency (its own quarter of
    # the traffic fits), but with the full VM the host needs 1.4x what
    # its memory system can carry; "roomy" keeps its measurement.
    observations = {"busy": streaming_shadow(10.0, 120.0, seed=1),
                    "roomy": streaming_shadow(10.0, 125.0, seed=2)}
    features = {"busy": memory_facts(68.0, 70.0),
                "roomy": memory_facts(10.0, 15.0)}
    measured_only = analyzer_lib.Analyzer(
        peak_memory_headroom=False).rank(
            MEMORY, observations, host_features=features, scale=SCALE)
    assert measured_only.hosts[0].host == "busy"

    ranking = analyzer_lib.Analyzer().rank(
        MEMORY, observations, host_features=features, scale=SCALE)
    assert [h.host for h in ranking.hosts] == ["roomy", "busy"]
    busy = ranking.host("busy")
    vm_gbps = 4.0 * np.mean(observations["busy"]["mem_bandwidth_gbps"])
    factor = (70.0 + vm_gbps) / 77.4
    assert factor == pytest.approx(110.0 / 77.4, rel=0.01)
    assert busy.predicted["mem_latency_ns"] == pytest.approx(
        measured_only.host("busy").predicted["mem_latency_ns"] * factor,
        rel=1e-6)
    assert busy.predicted["mem_bandwidth_gbps"] == pytest.approx(
        measured_only.host("busy").predicted["mem_bandwidth_gbps"]
        / factor, rel=1e-6)
    assert any("before latency climbs" in r for r in busy.reasons)
    roomy = ranking.host("roomy")
    assert roomy.predicted == measured_only.host("roomy").predicted


def test_the_memory_option_reaches_the_analyzer():
    from oslo_config import cfg

    from shadow_service.conf import analysis as analysis_conf

    conf = cfg.ConfigOpts()
    analysis_conf.register_opts(conf)
    conf([])
    assert analyzer_lib.Analyzer.from_conf(conf).peak_memory_headroom
    conf.set_override('peak_memory_headroom', False, group='analysis')
    assert not analyzer_lib.Analyzer.from_conf(conf).peak_memory_headroom


def test_a_host_busier_now_than_its_last_day_counts_at_its_level_now():
    # VMs placed in the last hour keep 90 % of the threads busy now; the
    # day's 95th percentile (40 %) has not caught up.
    steal, demand, _cores = peak.peak_steal_pct(facts(90.0, 40.0), 8.0)
    assert demand == pytest.approx(21.6)
    assert steal == pytest.approx(100.0 * (1.0 - 24.0 / 29.6))
    # Quiet now: the day's busy level stands.
    assert peak.busy_level(facts(3.0, 99.0), "cpu_util_pct") == 99.0
    assert peak.busy_level({}, "cpu_util_pct") is None
