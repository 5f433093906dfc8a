import numpy as np
import pytest

from shadow_service.analysis import contention

SLOPE = -40.0


def history(rows=200, seed=0, noise=10.0):
    rng = np.random.default_rng(seed)
    frame = {
        "num_instances": rng.integers(0, 12, rows),
        "cpu_util_pct": rng.uniform(0, 90, rows),
        "cpu_steal_pct": rng.uniform(0, 5, rows),
        "hardware_class": rng.choice(["gen1", "gen2"], rows),
    }
    ops = (1000 + SLOPE * frame["num_instances"]
           - 2.0 * frame["cpu_util_pct"]
           + np.where(frame["hardware_class"] == "gen2", 150.0, 0.0)
           + noise * rng.standard_normal(rows))
    return frame, ops


@pytest.mark.parametrize("method", ["ols", "quantile"])
def test_recovers_known_degradation_slope(method):
    rows, ops = history()
    model = contention.ContentionModel(method=method).fit(rows, ops)
    assert model.slope("num_instances") == pytest.approx(SLOPE, abs=2.0)
    assert model.params()["hardware_class[gen2]"] == pytest.approx(
        150.0, abs=10.0)


def test_wls_needs_weights_and_recovers_slope_with_them():
    rows, ops = history()
    with pytest.raises(ValueError, match="weights"):
        contention.ContentionModel(method="wls").fit(rows, ops)
    model = contention.ContentionModel(method="wls").fit(
        rows, ops, weights=np.ones(len(ops)))
    assert model.slope() == pytest.approx(SLOPE, abs=2.0)


def test_predicts_degradation_as_vms_are_added_with_interval():
    rows, ops = history()
    model = contention.ContentionModel().fit(rows, ops)
    host = {"num_instances": 2, "cpu_util_pct": 30.0, "cpu_steal_pct": 1.0,
            "hardware_class": "gen1"}
    now = model.predict(host)
    busier = model.predict(dict(host, num_instances=6))
    assert busier.mean[0] == pytest.approx(now.mean[0] + 4 * SLOPE, abs=10)
    assert now.lower[0] < now.mean[0] < now.upper[0]
    # The 90 % interval of noise sd 10 is roughly +-16.
    assert 25 < now.upper[0] - now.lower[0] < 45
    delta, delta_sd = model.degradation(host, added_instances=3)
    assert delta == pytest.approx(3 * SLOPE, abs=6)
    assert 0 < delta_sd < 3


def test_too_few_rows_and_unfitted_use_are_errors():
    rows, ops = history(rows=4)
    with pytest.raises(contention.NotFitted):
        contention.ContentionModel().fit(rows, ops)
    with pytest.raises(contention.NotFitted):
        contention.ContentionModel().slope()


def test_constant_features_are_left_out():
    rows, ops = history()
    rows["io_util"] = np.full(len(ops), 0.3)
    model = contention.ContentionModel(
        features=("num_instances", "io_util")).fit(rows, ops)
    assert "io_util" not in model.columns
