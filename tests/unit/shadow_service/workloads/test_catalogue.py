import pytest

from shadow_service.workloads import catalogue


def test_sensitivity_spreads_over_metrics_and_sums_to_one():
    weights = catalogue.metric_weights_from_sensitivity(
        {"cpu": 0.5, "latency": 0.5})
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["cpu_ops_per_s"] == pytest.approx(0.25)
    assert weights["net_p95_rtt_ms"] == pytest.approx(0.5 / 3)


def test_garbage_sensitivity_gives_no_weights():
    assert catalogue.metric_weights_from_sensitivity(
        {"cpu": "x", "bogus": 1, "io": -1}) == {}
