import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from shadow_service.analysis import forecasters

STEP_S = 300.0
DAY = 288
CHEAP = ("naive", "seasonal_naive", "auto")


def seasonal_series(days, *, trend=0.0, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(days * DAY)
    return (50 + 20 * np.sin(2 * np.pi * t / DAY) + trend * t
            + noise * rng.standard_normal(t.size))


def truth(days, steps, *, trend=0.0):
    t = np.arange(days * DAY, days * DAY + steps)
    return 50 + 20 * np.sin(2 * np.pi * t / DAY) + trend * t


def test_every_builtin_loads_by_name_and_unknown_names_fail():
    for name in forecasters.BUILTIN:
        assert isinstance(forecasters.load(name), forecasters.BUILTIN[name])
    with pytest.raises(ValueError, match="unknown forecaster"):
        forecasters.load("crystal_ball")


def test_seasonal_naive_repeats_yesterday_exactly():
    forecast = forecasters.load("seasonal_naive").fit(
        seasonal_series(3), step_s=STEP_S).forecast(24)
    np.testing.assert_allclose(forecast.mean, truth(3, 24), atol=1e-9)
    assert forecast.model == "seasonal_naive"


def test_seasonal_naive_without_two_days_falls_back_and_says_so():
    forecast = forecasters.load("seasonal_naive").fit(
        seasonal_series(1), step_s=STEP_S).forecast(5)
    assert forecast.model == "naive"
    assert any("last-value naive" in note for note in forecast.notes)


def test_auto_recovers_seasonality_and_trend_with_calibrated_interval():
    trend = 0.002
    history = seasonal_series(8, trend=trend, noise=1.0)
    forecast = forecasters.load("auto", horizon_steps=12).fit(
        history, step_s=STEP_S).forecast(12)
    error = np.abs(forecast.mean - truth(8, 12, trend=trend))
    assert error.mean() < 2.0
    assert forecast.model.startswith("auto:")
    width = forecast.upper - forecast.lower
    # 90 % of N(0, 1) noise is +-1.645: the conformal width is near 3.3.
    assert 2.0 < width.mean() < 6.0


def test_auto_beats_naive_on_noisy_level():
    rng = np.random.default_rng(3)
    history = 30 + 5 * rng.standard_normal(600)
    auto = forecasters.load("auto").fit(history, step_s=STEP_S)
    forecast = auto.forecast(12)
    assert abs(forecast.mean.mean() - 30) < 1.5


@pytest.mark.parametrize("name", ["ses", "holt_winters", "arima",
                                  "stl_arima"])
def test_statsmodels_forecasters_follow_a_seasonal_series(name):
    history = seasonal_series(3, noise=0.5)
    forecast = forecasters.load(name).fit(history, step_s=STEP_S
                                          ).forecast(12)
    assert forecast.mean.shape == (12,)
    assert (forecast.lower <= forecast.mean).all()
    assert (forecast.mean <= forecast.upper).all()
    assert np.abs(forecast.mean - truth(3, 12)).mean() < 15


def test_stl_arima_tracks_the_season():
    history = seasonal_series(3, noise=0.5)
    forecast = forecasters.load("stl_arima").fit(
        history, step_s=STEP_S).forecast(12)
    assert np.abs(forecast.mean - truth(3, 12)).mean() < 2.0


def test_constant_and_empty_series_are_flat_and_noted():
    constant = forecasters.load("auto").fit([7.0] * 50, step_s=STEP_S)
    forecast = constant.forecast(4)
    assert forecast.mean.tolist() == [7.0] * 4
    assert forecast.upper.tolist() == [7.0] * 4
    assert "constant series" in forecast.notes
    empty = forecasters.load("auto").fit([], step_s=STEP_S).forecast(3)
    assert np.isnan(empty.mean).all()
    assert any("no data" in note for note in empty.notes)


def test_bounds_clip_forecasts_of_a_percentage():
    history = np.linspace(50, 99, 60)
    forecast = forecasters.load("naive", bounds=(0, 100)).fit(
        history, step_s=STEP_S).forecast(12)
    assert forecast.upper.max() <= 100


def test_short_history_falls_back_with_a_note():
    forecast = forecasters.load("arima").fit(
        [1.0, 2.0, 3.0], step_s=STEP_S).forecast(2)
    assert forecast.model == "naive"
    assert any("short history" in note for note in forecast.notes)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(CHEAP),
       values=st.lists(st.one_of(st.none(),
                                 st.floats(-1e6, 1e6, width=32),
                                 st.just(float("nan")),
                                 st.just(float("inf"))),
                       max_size=80),
       steps=st.integers(1, 15))
def test_degenerate_series_give_well_formed_forecasts(name, values, steps):
    forecast = forecasters.load(name, bounds=(0, 100)).fit(
        values, step_s=STEP_S).forecast(steps)
    assert forecast.mean.shape == forecast.lower.shape == (steps,)
    finite = np.isfinite(forecast.mean)
    assert finite.all() or not finite.any()
    if finite.all():
        assert (forecast.lower <= forecast.mean).all()
        assert (forecast.mean <= forecast.upper).all()
        assert (forecast.lower >= 0).all() and (forecast.upper <= 100).all()
