import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

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


@pytest.mark.parametrize("method", ["ols", "wls", "quantile"])
def test_observations_without_a_finite_target_are_left_out(method):
    rows, ops = history()
    clean = contention.ContentionModel(method=method).fit(
        {k: v[3:] for k, v in rows.items()}, ops[3:],
        weights=np.ones(len(ops) - 3))
    ops = ops.copy()
    ops[:3] = [np.nan, np.inf, -np.inf]

    model = contention.ContentionModel(method=method).fit(
        rows, ops, weights=np.ones(len(ops)))

    assert model.params() == pytest.approx(clean.params())
    assert np.isfinite(model.predict(
        {"num_instances": 3, "cpu_util_pct": 20.0, "cpu_steal_pct": 1.0,
         "hardware_class": "gen1"}).mean).all()
    with pytest.raises(contention.NotFitted, match="finite"):
        contention.ContentionModel(method=method).fit(
            {k: v[:8] for k, v in rows.items()}, np.r_[ops[:3], ops[3:8]],
            weights=np.ones(8))


@pytest.mark.parametrize("bad", [np.nan, None, "x", np.inf, 1e300])
def test_a_minority_of_rows_without_a_regressor_are_left_out(bad):
    rows, ops = history()
    clean = contention.ContentionModel().fit(
        {k: v[3:] for k, v in rows.items()}, ops[3:])
    rows["num_instances"] = list(rows["num_instances"])
    rows["num_instances"][:3] = [bad] * 3

    model = contention.ContentionModel().fit(rows, ops)

    assert "num_instances" in model.columns
    assert model.dropped_rows == 3
    assert model.params() == pytest.approx(clean.params())


def test_a_regressor_missing_from_most_rows_is_left_out():
    rows, ops = history()
    half = len(ops) // 2
    rows["io_util"] = np.r_[np.full(half, np.nan),
                            np.linspace(0.1, 0.9, len(ops) - half)]
    model = contention.ContentionModel(
        features=("num_instances", "io_util")).fit(rows, ops)
    assert model.columns == ["num_instances"]
    assert model.dropped_rows == 0


def test_constant_features_are_left_out():
    rows, ops = history()
    rows["io_util"] = np.full(len(ops), 0.3)
    model = contention.ContentionModel(
        features=("num_instances", "io_util")).fit(rows, ops)
    assert "io_util" not in model.columns


# -- per hardware class, bounded ---------------------------------------------

# Steal per added VM on each class: fewer cores, steeper.
CLASS_SLOPES = {"legacy": 3.0, "general": 1.5, "compute": 0.5}


def steal_history(rows=300, seed=1, noise=1.0):
    rng = np.random.default_rng(seed)
    classes = rng.choice(sorted(CLASS_SLOPES), rows)
    instances = rng.integers(0, 20, rows)
    slope = np.array([CLASS_SLOPES[c] for c in classes])
    steal = 2.0 + slope * instances + noise * rng.standard_normal(rows)
    frame = {"num_instances": instances, "hardware_class": classes}
    return frame, np.clip(steal, 0.0, 100.0)


@pytest.mark.parametrize("method", ["ols", "quantile"])
def test_recovers_a_known_slope_per_hardware_class(method):
    rows, steal = steal_history()
    model = contention.ContentionModel(
        method=method, features=("num_instances",),
        bounds=contention.bounds_for("cpu_steal_pct")).fit(rows, steal)

    assert model.classes == sorted(CLASS_SLOPES)
    for name, slope in CLASS_SLOPES.items():
        assert model.slope("num_instances", name) == pytest.approx(
            slope, abs=0.15)
        change, change_se = model.degradation(
            {"num_instances": 5, "hardware_class": name}, 2)
        assert change == pytest.approx(2 * slope, abs=0.3)
        assert 0 < change_se < 0.2


def test_a_class_with_few_rows_uses_the_pooled_regression():
    rows, steal = steal_history()
    keep = np.array([c != "compute" for c in rows["hardware_class"]])
    keep[np.flatnonzero(~keep)[:5]] = True      # five compute rows only
    rows = {k: np.asarray(v)[keep] for k, v in rows.items()}
    model = contention.ContentionModel(features=("num_instances",)).fit(
        rows, steal[keep])

    assert model.classes == ["general", "legacy"]
    assert model.params("compute") == model.params()


def test_predictions_and_degradation_stay_within_the_bounds():
    # Steal falling with load (as a confounded fit can learn) would
    # extrapolate below zero for a host with many VMs.
    rng = np.random.default_rng(3)
    instances = rng.integers(0, 10, 100)
    steal = np.clip(8.0 - 0.8 * instances + rng.standard_normal(100),
                    0, None)
    model = contention.ContentionModel(
        features=("num_instances",), bounds=(0.0, 100.0)).fit(
            {"num_instances": instances}, steal)

    far = model.predict({"num_instances": 40})
    change, _se = model.degradation({"num_instances": 9}, 30)

    assert far.mean[0] == 0.0 and far.lower[0] == 0.0
    assert far.upper[0] >= 0.0
    assert model.predict({"num_instances": 9}).mean[0] + change >= 0.0


def test_bounds_must_be_ordered():
    with pytest.raises(ValueError, match="bounds"):
        contention.ContentionModel(bounds=(100.0, 0.0))


def test_bounds_follow_the_metric_catalogue():
    assert contention.bounds_for("cpu_steal_pct") == (0.0, 100.0)
    assert contention.bounds_for("disk_p95_latency_ms") == (0.0, None)


FITTED_STEAL = contention.ContentionModel(
    features=("num_instances", "cpu_util_pct"), bounds=(0.0, 100.0)).fit(
        {"num_instances": np.tile(np.arange(10), 10),
         "cpu_util_pct": np.repeat(np.linspace(0, 90, 10), 10),
         "hardware_class": np.tile(["a", "b"], 50)},
        np.clip(np.tile(np.arange(10), 10) * 6.0 - 5.0
                + np.repeat(np.linspace(0, 9, 10), 10), 0, 100))


@settings(max_examples=200, deadline=None)
@given(instances=st.floats(-1e4, 1e4, allow_nan=False),
       util=st.floats(-1e4, 1e4, allow_nan=False),
       added=st.integers(0, 1000),
       hardware_class=st.sampled_from(["a", "b", "unseen"]))
def test_property_predictions_never_leave_the_physical_range(
        instances, util, added, hardware_class):
    host = {"num_instances": instances, "cpu_util_pct": util,
            "hardware_class": hardware_class}
    prediction = FITTED_STEAL.predict(host)
    change, change_se = FITTED_STEAL.degradation(host, added)

    for values in (prediction.mean, prediction.lower, prediction.upper):
        assert 0.0 <= values[0] <= 100.0
    assert 0.0 <= prediction.mean[0] + change <= 100.0 + 1e-9
    assert change_se >= 0.0


@pytest.mark.parametrize("features, horizon_s, expected", [
    ({}, 86400.0, 1.0),
    ({"vm_arrivals_24h": 10, "vm_departures_24h": 2}, 86400.0, 5.0),
    ({"vm_arrivals_24h": 10, "vm_departures_24h": 2}, 0.0, 1.0),
    ({"vm_arrivals_24h": 2, "vm_departures_24h": 10}, 86400.0, 1.0),
    ({"vm_arrivals_24h": "garbage"}, 86400.0, 1.0),
    ({"vm_arrivals_24h": float("nan")}, 86400.0, 1.0),
])
def test_expected_added_instances_continue_the_hosts_net_growth(
        features, horizon_s, expected):
    assert contention.expected_added_instances(
        features, horizon_s) == pytest.approx(expected)
