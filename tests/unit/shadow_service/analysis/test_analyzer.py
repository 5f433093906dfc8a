import json

import numpy as np
import pytest

from shadow_service.analysis import analyzer as analyzer_lib
from shadow_service.analysis import contention
from shadow_service.analysis import estimate as estimate_lib
from shadow_service.analysis import scaleup as scaleup_lib

CPU_LATENCY = {"cpu": 0.5, "latency": 0.5}


def host_samples(ops, rtt, *, count=30, noise=0.02, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "cpu_ops_per_s": list(ops * (1 + noise * rng.standard_normal(count))),
        "net_p95_rtt_ms": list(rtt * (1 + noise
                                      * rng.standard_normal(count))),
        "cpu_steal_pct": list(np.abs(0.5 * rng.standard_normal(count))),
    }


def make_analyzer(**kwargs):
    return analyzer_lib.Analyzer(**kwargs)


def test_scores_order_hosts_by_the_profiles_metrics():
    observations = {"fast": host_samples(1000, 1.0, seed=1),
                    "middle": host_samples(800, 1.5, seed=2),
                    "slow": host_samples(500, 3.0, seed=3)}
    ranking = make_analyzer().rank(CPU_LATENCY, observations)
    assert [h.host for h in ranking.hosts] == ["fast", "middle", "slow"]
    assert ranking.hosts[0].score == pytest.approx(100, abs=2)
    assert ranking.confidence > 0.95
    assert all(0 <= h.score <= 100 for h in ranking.hosts)


def test_sensitivity_changes_the_winner():
    observations = {"cpu_box": host_samples(1000, 3.0, seed=1),
                    "net_box": host_samples(600, 1.0, seed=2)}
    by_cpu = make_analyzer().rank({"cpu": 1.0}, observations)
    by_latency = make_analyzer().rank({"latency": 1.0}, observations)
    assert by_cpu.hosts[0].host == "cpu_box"
    assert by_latency.hosts[0].host == "net_box"


def test_operator_weights_can_silence_a_metric():
    observations = {"cpu_box": host_samples(1000, 3.0, seed=1),
                    "net_box": host_samples(600, 1.0, seed=2)}
    analyzer = make_analyzer(metric_weights={"net_p95_rtt_ms": 0})
    assert analyzer.rank(CPU_LATENCY, observations).hosts[0].host == \
        "cpu_box"


def test_explanations_name_the_top_metrics():
    observations = {"a": host_samples(1000, 1.0, seed=1),
                    "b": host_samples(500, 1.0, seed=2)}
    ranking = make_analyzer().rank({"cpu": 1.0}, observations)
    loser = ranking.host("b")
    assert any("cpu_ops_per_s" in r and "of best" in r
               for r in loser.reasons)
    assert any("best of 2" in r for r in ranking.host("a").reasons)


def confidence_of(count, noise, age_s=0.0):
    observations = {"a": host_samples(1000, 1.0, count=count, noise=noise,
                                      seed=1),
                    "b": host_samples(960, 1.0, count=count, noise=noise,
                                      seed=2)}
    ranking = make_analyzer().rank(
        {"cpu": 1.0}, observations,
        data_age_s={"a": age_s, "b": age_s})
    return ranking.confidence


def test_confidence_rises_with_samples_and_agreement():
    assert confidence_of(60, 0.05) > confidence_of(4, 0.05)
    assert confidence_of(30, 0.01) > confidence_of(30, 0.2)


def test_confidence_falls_with_data_age():
    fresh = confidence_of(60, 0.02)
    day_old = confidence_of(60, 0.02, age_s=86400)
    assert fresh > day_old


def test_degenerate_inputs():
    analyzer = make_analyzer()
    single = analyzer.rank(CPU_LATENCY, {"only": host_samples(900, 1.0)})
    assert [h.host for h in single.hosts] == ["only"]
    assert single.hosts[0].score == pytest.approx(100)
    same = {"x": {"cpu_ops_per_s": [5.0] * 10},
            "y": {"cpu_ops_per_s": [5.0] * 10}}
    twins = analyzer.rank({"cpu": 1}, same)
    assert twins.hosts[0].score == twins.hosts[1].score
    assert twins.confidence == pytest.approx(1.0)
    empty = analyzer.rank(CPU_LATENCY, {"a": {}, "b": {"cpu_ops_per_s": []}})
    assert all(h.score == 50.0 and h.confidence == 0 for h in empty.hosts)
    assert analyzer.rank(CPU_LATENCY, {}).to_dict() == {
        "confidence": 0.0, "hosts": []}
    garbage = analyzer.rank(None, {"a": {"cpu_ops_per_s": [np.nan, None,
                                                           "1"]}})
    assert garbage.hosts[0].host == "a"


def test_missing_metric_is_skipped_and_said():
    observations = {"a": host_samples(1000, 1.0, seed=1),
                    "b": {"cpu_ops_per_s": [990.0] * 20}}
    ranking = make_analyzer().rank(CPU_LATENCY, observations)
    assert any("net_p95_rtt_ms: no samples" in r
               for r in ranking.host("b").reasons)


def test_to_dict_matches_the_ranking_contract():
    observations = {"a": host_samples(1000, 1.0, seed=1),
                    "b": host_samples(700, 2.0, seed=2)}
    result = make_analyzer().rank(CPU_LATENCY, observations,
                                  data_age_s={"a": 5.0, "b": 7.0}).to_dict()
    json.dumps(result)
    assert set(result) == {"confidence", "hosts"}
    assert set(result["hosts"][0]) == {"host", "score", "confidence",
                                       "data_age_s", "predicted", "reasons"}
    assert result["hosts"][0]["data_age_s"] == 5.0


def test_clearly_worse_hosts_can_be_dropped():
    observations = {"a": host_samples(1000, 1.0, seed=1),
                    "b": host_samples(980, 1.0, seed=2),
                    "c": host_samples(300, 5.0, seed=3)}
    ranking = make_analyzer().rank(CPU_LATENCY, observations)
    assert ranking.clearly_worse(margin=10) == ["c"]


def test_scale_raises_predicted_throughput_not_latency():
    observations = {"a": host_samples(1000, 1.0, seed=1)}
    scale = {"load_ratio": 4.0, "shadow_vcpus": 1, "full_vcpus": 4}
    plain = make_analyzer().rank(CPU_LATENCY, observations)
    scaled = make_analyzer().rank(CPU_LATENCY, observations, scale=scale)
    ratio = (scaled.hosts[0].predicted["cpu_ops_per_s"]
             / plain.hosts[0].predicted["cpu_ops_per_s"])
    assert ratio == pytest.approx(4.0)
    assert scaled.hosts[0].predicted["net_p95_rtt_ms"] == pytest.approx(
        plain.hosts[0].predicted["net_p95_rtt_ms"])


def test_the_shared_scale_up_uncertainty_does_not_lower_confidence():
    """One scale-up factor applies to every host of a request: its wide
    prior moves all predictions together and cannot reorder hosts."""
    observations = {"a": host_samples(1000, 1.0, seed=1),
                    "b": host_samples(950, 1.0, seed=2),
                    "c": host_samples(900, 1.0, seed=3)}
    scale = {"load_ratio": 4.0, "shadow_vcpus": 1, "full_vcpus": 4}
    plain = make_analyzer().rank({"cpu": 1}, observations)
    scaled = make_analyzer().rank({"cpu": 1}, observations, scale=scale)
    assert [h.host for h in scaled.hosts] == [h.host for h in plain.hosts]
    assert scaled.confidence == pytest.approx(plain.confidence, abs=0.01)
    for before, after in zip(plain.hosts, scaled.hosts):
        assert after.confidence == pytest.approx(before.confidence,
                                                 abs=0.01)
    # The value itself is four times as uncertain in absolute terms, and
    # the prior's own spread is kept apart from the between-host one.
    single = estimate_lib.from_samples(
        "cpu_ops_per_s", observations["a"]["cpu_ops_per_s"])
    adjusted, _ = estimate_lib.adjust(
        "cpu_ops_per_s", single, scale=scale,
        scaleup=scaleup_lib.ScaleUpModel())
    assert adjusted.sd == pytest.approx(4 * single.sd)
    assert adjusted.common_sd == pytest.approx(
        adjusted.value * scaleup_lib.PRIOR_EXPONENT_SD * np.log(4.0))
    assert adjusted.total_sd > adjusted.common_sd > adjusted.sd


def _ops_model(slope, most_instances, rows):
    """A contention model of CPU ops/s fitted on data made with a known
    slope per co-located VM."""
    rng = np.random.default_rng(0)
    data = {"num_instances": rng.integers(0, most_instances, rows)}
    ops = 1000 - slope * data["num_instances"] + rng.normal(0, 5, rows)
    return contention.ContentionModel(
        features=("num_instances",)).fit(data, ops)


def test_contention_model_predicts_the_cost_of_one_more_vm():
    model = _ops_model(50, 10, 100)
    analyzer = make_analyzer(contention={"cpu_ops_per_s": model})
    observations = {"a": {"cpu_ops_per_s": [800.0] * 20},
                    "b": {"cpu_ops_per_s": [800.0] * 20}}
    ranking = analyzer.rank({"cpu": 1}, observations, host_features={
        "a": {"num_instances": 4}, "b": {"num_instances": 4}})
    assert ranking.host("a").predicted["cpu_ops_per_s"] == pytest.approx(
        750, abs=5)
    assert any("one more VM" in r for r in ranking.host("a").reasons)


def test_a_host_that_keeps_gaining_vms_is_predicted_to_crowd():
    # Same shadow figures and instance count now; "busy" received 12 VMs
    # and lost 4 in the last day, so over the next day it is expected to
    # gain 4 more on average on top of the new VM.
    model = _ops_model(20, 20, 200)
    analyzer = make_analyzer(contention={"cpu_ops_per_s": model})
    observations = {"busy": {"cpu_ops_per_s": [800.0] * 20},
                    "calm": {"cpu_ops_per_s": [800.0] * 20}}
    features = {"busy": {"num_instances": 8, "vm_arrivals_24h": 12,
                         "vm_departures_24h": 4},
                "calm": {"num_instances": 8, "vm_arrivals_24h": 3,
                         "vm_departures_24h": 3}}

    ranking = analyzer.rank({"cpu": 1}, observations,
                            host_features=features)
    now_only = make_analyzer(contention={"cpu_ops_per_s": model},
                             cotenancy_horizon_s=0).rank(
        {"cpu": 1}, observations, host_features=features)

    assert [h.host for h in ranking.hosts] == ["calm", "busy"]
    assert ranking.host("calm").predicted["cpu_ops_per_s"] == \
        pytest.approx(780, abs=3)
    assert ranking.host("busy").predicted["cpu_ops_per_s"] == \
        pytest.approx(700, abs=5)
    assert any("4.0 more expected over 24 h" in r
               for r in ranking.host("busy").reasons)
    assert now_only.host("busy").predicted["cpu_ops_per_s"] == \
        pytest.approx(780, abs=3)


def test_prior_ranking_serves_hosts_without_new_samples():
    analyzer = make_analyzer()
    first = analyzer.rank({"cpu": 1}, {"a": host_samples(1000, 1.0),
                                       "b": host_samples(500, 1.0)})
    second = analyzer.rank({"cpu": 1}, {"a": host_samples(1000, 1.0)},
                           prior=first, data_age_s={"b": 7200})
    assert second.host("b").predicted
    assert any("previous ranking" in r for r in second.host("b").reasons)
    assert second.hosts[0].host == "a"


def test_forecast_uses_the_configured_default():
    values = 10 + np.sin(np.arange(300) / 5.0)
    forecast = make_analyzer().forecast(values, step_s=60, horizon_steps=5)
    assert forecast.mean.shape == (5,)
    assert forecast.model.startswith("auto")
    ses = make_analyzer(forecaster="naive").forecast(
        values, step_s=60, horizon_steps=5)
    assert ses.model == "naive"


def test_estimates_kept_per_samples_are_the_estimates_computed_afresh():
    """``from_samples`` keeps what the samples alone give; the age is
    applied on every call, and a kept estimate is not shared."""
    from shadow_service.analysis import estimate

    samples = [100.0, 104.0, None, 98.0, 101.0, 250.0, 99.0]
    estimate._KEPT.clear()
    first = estimate.from_samples('cpu_ops_per_s', samples,
                                  data_age_s=3600.0)
    assert len(estimate._KEPT) == 1
    again = estimate.from_samples('cpu_ops_per_s', list(samples),
                                  data_age_s=3600.0)
    assert again == first and again.notes is not first.notes
    young = estimate.from_samples('cpu_ops_per_s', samples)
    assert young.value == first.value and young.sd < first.sd
    estimate._KEPT.clear()
    assert estimate.from_samples('cpu_ops_per_s', samples,
                                 data_age_s=3600.0) == first
    # Not numbers: estimated without being kept (nothing usable).
    assert estimate.from_samples('cpu_ops_per_s', ['x', 'y']) is None


def _kept_case(seed, hosts):
    """``(analyzer, observations, features, scale, sensitivity)``: a
    contention model, CPU samples of ``hosts``, peak headroom facts of the
    first 20 of them and a scale-up, drawn from ``seed``."""
    model = _ops_model(20, 20, 200)
    analyzer = make_analyzer(contention={"cpu_ops_per_s": model})
    rng = np.random.default_rng(seed)
    observations = {h: {"cpu_ops_per_s": list(rng.normal(800, 30, 8)),
                        "cpu_steal_pct": list(rng.uniform(0, 3, 8)),
                        "cpu_util_pct": list(rng.uniform(20, 90, 8))}
                    for h in hosts}
    features = {h: {"num_instances": int(rng.integers(0, 15)),
                    "cores": 16, "cpu_util_pct_p95_24h": float(
                        rng.uniform(30, 100)),
                    "cpu_util_pct_now": 10.0} for h in hosts[:20]}
    scale = scaleup_lib.scale_keys({"vcpus": 4, "ram_mb": 8192}, 0.25)
    return analyzer, observations, features, scale, {"cpu": 0.6,
                                                      "latency": 0.4}


def test_kept_estimates_rank_as_fresh_ones_with_every_adjustment():
    """With a contention model, peak headroom facts, a scale-up and data
    ages, a ranking from kept estimates is the one fresh estimates give;
    a host whose token changes is estimated again, the others are not."""
    hosts = ["h%d" % i for i in range(30)]
    analyzer, observations, features, scale, sensitivity = _kept_case(
        3, hosts)
    tokens = {h: 1 for h in hosts}
    kept = analyzer_lib.KeptEstimates()
    for round_ in range(3):
        ages = {h: 3600.0 * (round_ + 1) + i for i, h in enumerate(hosts)}
        fresh = analyzer.rank(sensitivity, observations,
                              host_features=features, scale=scale,
                              data_age_s=ages)
        from_kept = analyzer.rank(sensitivity, observations,
                                  host_features=features, scale=scale,
                                  data_age_s=ages, kept=kept, tokens=tokens)
        assert from_kept.to_dict() == fresh.to_dict()
        for ours, theirs in zip(from_kept.hosts, fresh.hosts):
            assert ours.uncertainty == pytest.approx(theirs.uncertainty,
                                                     rel=1e-12)
        assert any("one more VM" in r for h in fresh.hosts
                   for r in h.reasons)
        assert any("busiest" in r for h in fresh.hosts for r in h.reasons)
        # One host's samples change.
        observations["h3"] = {"cpu_ops_per_s": [900.0 + round_] * 8}
        tokens["h3"] += 1
    assert kept.computed == len(hosts) + 2


def test_another_candidate_list_takes_the_kept_rows_and_ranks_as_afresh():
    """A candidate list other than the one the kept rows were made for
    (fewer hosts, a host with other features or data age, a host not
    seen before) takes the rows kept for its other hosts and states what
    fresh estimates of that list state."""
    hosts = ["h%02d" % i for i in range(31)]
    analyzer, observations, features, scale, sensitivity = _kept_case(
        5, hosts)
    ages = {h: 3600.0 + i for i, h in enumerate(hosts)}
    tokens = dict.fromkeys(hosts, 1)
    kept = analyzer_lib.KeptEstimates()

    def ranked(names, features=features, ages=ages, kept=None):
        return analyzer.rank(
            sensitivity, {h: observations[h] for h in names},
            host_features={h: features[h] for h in names if h in features},
            scale=scale, data_age_s={h: ages[h] for h in names},
            kept=kept, tokens=tokens if kept is not None else None)

    ranked(hosts[:30], kept=kept)
    assert (kept.computed, kept.rows_reused) == (30, 0)
    other_features = dict(features, h04=dict(features["h04"],
                                             num_instances=14))
    other_ages = dict(ages, h07=ages["h07"] + 600.0)
    # (list, what differs, rows reused): a host's row is the one last
    # made for it (h04's with other features, then again with its own;
    # h07's at another age; h30 never seen).
    cases = [(hosts[1:30], {}, 29), (hosts[10:20], {}, 10),
             (hosts[:29], {"features": other_features}, 28),
             (hosts[:29], {"ages": other_ages}, 27),
             (hosts[2:], {}, 27)]
    for names, changed, reused in cases:
        rows = kept.rows_reused
        from_kept = ranked(names, kept=kept, **changed)
        fresh = ranked(names, **changed)
        assert kept.rows_reused - rows == reused
        assert from_kept.to_dict() == fresh.to_dict()
        assert from_kept.raw_confidence == fresh.raw_confidence
        for ours, theirs in zip(from_kept.hosts, fresh.hosts):
            assert ours.uncertainty == pytest.approx(theirs.uncertainty,
                                                     rel=1e-12)
            assert ours.contender == theirs.contender
        np.testing.assert_allclose(from_kept.measurable_sds,
                                   fresh.measurable_sds, rtol=1e-12)
    assert any("busiest" in r for h in fresh.hosts for r in h.reasons)


def _close_hosts():
    """Hosts close enough that the Monte Carlo confidence is neither 0
    nor 1: which host gets which draws shows in its figures."""
    rng = np.random.default_rng(11)
    return {"h%02d" % i: {"cpu_ops_per_s": list(rng.normal(900 + 5 * i, 40,
                                                          6)),
                          "cpu_steal_pct": list(rng.uniform(0, 2, 6))}
            for i in range(8)}


@pytest.mark.parametrize("kept", [False, True])
def test_confidence_does_not_depend_on_the_order_hosts_arrive_in(kept):
    """The same measurements in another order (a history store hands
    them back in the order its series were catalogued) state the same
    confidence, overall and per host: the seeded draws go to the same
    host whatever its row."""
    observations = _close_hosts()
    names = list(observations)
    orders = [names, names[::-1], names[3:] + names[:3]]
    figures = []
    for order in orders:
        shuffled = {h: observations[h] for h in order}
        extra = ({"kept": analyzer_lib.KeptEstimates(),
                  "tokens": dict.fromkeys(order, 1)} if kept else {})
        ranking = make_analyzer().rank({"cpu": 1.0}, shuffled, **extra)
        assert 0.05 < ranking.confidence < 0.95
        figures.append((ranking.confidence,
                        [(h.host, h.score, h.confidence)
                         for h in ranking.hosts]))
    assert figures[1] == figures[0]
    assert figures[2] == figures[0]


# The largest value the collector accepts in a shadow sample.
HUGE = 1e300


@pytest.mark.parametrize("kept", [False, True])
def test_a_host_whose_samples_are_too_large_degrades_alone(kept):
    observations = {"a": host_samples(1000, 1.0, seed=1),
                    "b": host_samples(800, 1.5, seed=2),
                    "odd": host_samples(900, 1.2, seed=3)}
    observations["odd"]["cpu_ops_per_s"] = [HUGE] * 30
    observations["odd"]["net_p95_rtt_ms"] = [HUGE, 1e-300] * 15
    options = ({"kept": analyzer_lib.KeptEstimates(),
                "tokens": {h: 1 for h in observations}} if kept else {})
    ranking = make_analyzer().rank(
        CPU_LATENCY, observations, data_age_s={"odd": 600.0},
        scale={"load_ratio": 0.5, "shadow_vcpus": 1, "full_vcpus": 4},
        **options)
    json.dumps(ranking.to_dict(), allow_nan=False)
    odd = ranking.host("odd")
    assert "cpu_ops_per_s" not in odd.predicted
    assert "cpu_ops_per_s: none of 30 samples usable, left out" in \
        odd.reasons
    assert any("left out 15 values beyond" in r for r in odd.reasons)
    assert "net_p95_rtt_ms" in odd.predicted
    assert all(np.isfinite(h.score) for h in ranking.hosts)
