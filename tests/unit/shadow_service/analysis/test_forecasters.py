import numpy as np
import pytest
from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from shadow_service.analysis import forecasters
from shadow_service.analysis.forecasters import arima
from shadow_service.analysis.forecasters import base
from shadow_service.analysis.forecasters import kernels
from shadow_service.analysis.forecasters import selector
from tests.fixtures import benchmarks

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


def _assert_well_formed(name, values, steps):
    """Bounded forecasts of the right length: all finite or all NaN."""
    forecast = forecasters.load(name, bounds=(0, 100)).fit(
        values, step_s=STEP_S).forecast(steps)
    assert forecast.mean.shape == forecast.lower.shape == (steps,)
    assert forecast.upper.shape == (steps,)
    finite = np.isfinite(forecast.mean)
    assert finite.all() or not finite.any()
    if finite.all():
        assert (forecast.lower <= forecast.mean).all()
        assert (forecast.mean <= forecast.upper).all()
        assert (forecast.lower >= 0).all() and (forecast.upper <= 100).all()


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(CHEAP),
       values=st.lists(st.one_of(st.none(),
                                 st.floats(-1e6, 1e6, width=32),
                                 st.just(float("nan")),
                                 st.just(float("inf"))),
                       max_size=80),
       steps=st.integers(1, 15))
def test_degenerate_series_give_well_formed_forecasts(name, values, steps):
    _assert_well_formed(name, values, steps)


# --- weighted-median kernel ---------------------------------------------

def test_weighted_median_known_answers():
    # Equal weights (huge half-life): the median of the last ``span``.
    level = kernels.weighted_medians(np.array([50.0, 1.0, 100.0, 2.0]),
                                     1e9, span=3)
    assert level.tolist()[1:] == [1.0, 50.0, 2.0]
    # One spike does not move it; an exponentially smoothed mean jumps.
    spiky = np.r_[np.full(40, 10.0), 1000.0]
    assert kernels.weighted_medians(spiky, 6)[-1] == 10.0
    assert kernels.ses_levels(spiky, 0.35)[-1] > 300
    # Recent points dominate: weights 1, .5, .25 outweigh the older tail.
    shifted = np.r_[np.zeros(10), np.full(3, 5.0)]
    assert kernels.weighted_medians(shifted, 1)[-1] == 5.0
    # Rows before ``first`` are not computed.
    rows = kernels.weighted_medians(np.arange(20.0), 3, first=15)
    assert np.isnan(rows[:15]).all() and np.isfinite(rows[15:]).all()


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60),
       half_life=st.sampled_from(kernels.WMEDIAN_HALF_LIVES))
def test_weighted_median_is_a_recent_value_and_causal(values, half_life):
    y = np.array(values)
    level = kernels.weighted_medians(y, half_life)
    span = kernels.WMEDIAN_SPAN * half_life
    for t in range(y.size):
        window = y[max(t - span + 1, 0):t + 1]
        assert level[t] in window
    cut = y.size // 2
    poisoned = y.copy()
    poisoned[cut + 1:] = 1e300
    np.testing.assert_array_equal(
        kernels.weighted_medians(poisoned, half_life)[:cut + 1],
        level[:cut + 1])


# --- no look-ahead ---------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), cut=st.integers(30, 100),
       poison=st.sampled_from([np.nan, 1e12, -1e12]),
       horizon=st.sampled_from([12, 24, 30, 60]))
def test_kernels_never_read_past_their_origin(seed, cut, poison, horizon):
    # Row t of every kernel is the forecast made at origin t; it must not
    # change whatever follows t (the selector's backtest relies on it),
    # also for horizons longer than the season.
    rng = np.random.default_rng(seed)
    season = 24
    y = 50 + 10 * np.sin(np.arange(130) * 2 * np.pi / season) \
        + rng.standard_normal(130)
    poisoned = y.copy()
    poisoned[cut + 1:] = poison
    clean = kernels.all_kernels(y, horizon, season, first=20)
    dirty = kernels.all_kernels(poisoned, horizon, season, first=20)
    assert set(clean) == set(dirty)
    for name in clean:
        np.testing.assert_array_equal(dirty[name][:cut + 1],
                                      clean[name][:cut + 1], err_msg=name)


def test_a_horizon_longer_than_the_season_is_forecast():
    # The lifetime ranking forecasts a day ahead plus the hours its
    # monitoring lags, past the daily season: each step beyond a season
    # reads the newest whole seasons before it known at the origin.
    season = 24
    y = 50 + 10 * np.sin(np.arange(96) * 2 * np.pi / season)
    profile = kernels.seasonal_profile(y, 36, season, 1)
    # From the last origin, 30 steps ahead is 6 steps past a season: the
    # value at that phase two seasons before it, one season before it
    # is after the origin.
    assert profile[-1, 29] == y[95 + 30 - 2 * season]
    assert profile[-1, 5] == y[95 + 6 - season]
    forecast = forecasters.load("auto", horizon_steps=36).fit(
        y, step_s=3600.0).forecast(36)
    assert np.isfinite(forecast.mean).all()


def _benchmark_module():
    return benchmarks.load('forecast_accuracy')


@pytest.mark.parametrize("poison", [np.nan, 1e9])
def test_benchmark_origin_scores_ignore_everything_after_the_window(poison):
    # The rolling-origin evaluation gives ``auto`` only the history before
    # each origin: poisoning what follows the scored window changes
    # nothing, and its selection is the same as a fit on the history alone.
    bench = _benchmark_module()
    values = np.clip(seasonal_series(3, noise=3.0, seed=5), 0, 100)
    missing = np.zeros(values.size, dtype=bool)
    origin, horizon = 700, 12
    job = ("s", values, missing, ["auto", "ses"], horizon, [origin])
    poisoned = values.copy()
    poisoned[origin + 1 + horizon:] = poison
    clean_rows = bench.evaluate_series(job)[1]
    dirty_rows = bench.evaluate_series(
        ("s", poisoned, missing, ["auto", "ses"], horizon, [origin]))[1]
    for name in clean_rows:
        for key in ("mase", "smape", "covered", "under"):
            assert clean_rows[name][0][key] == dirty_rows[name][0][key]
    alone = forecasters.load("auto", bounds=(0, 100), horizon_steps=horizon
                             ).fit(values[:origin + 1], step_s=STEP_S)
    from_poisoned = forecasters.load(
        "auto", bounds=(0, 100), horizon_steps=horizon).fit(
        poisoned[:origin + 1], step_s=STEP_S)
    np.testing.assert_array_equal(alone.forecast(horizon).mean,
                                  from_poisoned.forecast(horizon).mean)


# --- conformal intervals ---------------------------------------------------

def test_conformal_bounds_known_answer():
    residuals = np.tile(np.arange(1.0, 21.0)[:, None], (1, 3))
    residuals[:, 1] *= 0.5      # a narrower step 2 is widened to step 1's
    lower, upper = base.conformal_bounds(residuals, 0.9)
    # 20 origins: rank ceil(21 * 0.95) / 20 = 1 -> the extremes.
    assert upper.tolist() == [20.0, 20.0, 20.0]
    assert lower.tolist() == [1.0, 0.5, 0.5]


@pytest.mark.parametrize("name", ["ses", "holt_winters", "arima"])
def test_conformal_interval_matches_known_noise(name):
    # White noise of sd 2 around 40: a calibrated 90 % interval is about
    # 2 * 1.645 * 2 = 6.6 wide (a little wider: the level is estimated).
    rng = np.random.default_rng(11)
    history = 40 + 2 * rng.standard_normal(3 * DAY)
    forecast = forecasters.load(name).fit(history, step_s=STEP_S
                                          ).forecast(12)
    width = forecast.upper - forecast.lower
    assert 5.0 < width.mean() < 9.5
    assert not any("model-based" in note for note in forecast.notes)
    assert forecasters.forecaster_class(name).interval_method.startswith(
        "conformal")


def test_too_short_to_calibrate_keeps_the_model_interval_and_says_so():
    rng = np.random.default_rng(2)
    forecast = forecasters.load("ses").fit(
        40 + rng.standard_normal(25), step_s=STEP_S).forecast(12)
    assert any("model-based" in note for note in forecast.notes)
    assert (forecast.lower <= forecast.mean).all()


def test_backtest_paths_reproduce_the_statsmodels_forecast():
    # The replayed forecast from the last origin is the real forecast, so
    # the replayed errors are those of the model that forecasts.
    history = seasonal_series(3, noise=1.0, seed=4)
    fitted = forecasters.load("arima").fit(history, step_s=STEP_S)
    last = np.array([fitted.data.size - 1])
    np.testing.assert_allclose(
        arima.backtest_paths(fitted.fitted, last, 12)[0],
        fitted.forecast(12).mean, atol=1e-8)
    hw = forecasters.load("holt_winters").fit(history, step_s=STEP_S)
    buckets = hw.data.size // hw.bucket
    np.testing.assert_allclose(
        hw.bucket_forecasts(np.array([buckets - 1]), 4)[0],
        hw.fitted.forecast(4), atol=1e-8)


@settings(max_examples=15, deadline=None)
@given(name=st.sampled_from(["ses", "holt_winters", "arima"]),
       values=st.lists(st.one_of(st.none(),
                                 st.floats(-1e6, 1e6, width=32),
                                 st.just(float("nan"))),
                       max_size=80),
       steps=st.integers(1, 15))
# Found by hypothesis in CI: ten points with a gap between them are one
# 6-step bucket, and Holt-Winters cannot initialise a trend from one point.
@example(name="holt_winters", values=[1.0] + [None] * 8 + [0.0], steps=1)
def test_degenerate_series_statsmodels_forecasters(name, values, steps):
    _assert_well_formed(name, values, steps)


@pytest.mark.parametrize("name", ["arima", "stl_arima", "holt_winters"])
def test_a_value_too_large_to_be_a_measurement_is_a_gap(name):
    y = seasonal_series(3, noise=1.0)
    y[DAY] = 1e300
    result = forecasters.load(name, bounds=(0.0, None)).fit(
        y, step_s=STEP_S).forecast(12)
    assert np.isfinite(result.mean).all()
    assert np.isfinite(result.lower).all() and np.isfinite(
        result.upper).all()
    assert np.abs(result.mean - truth(3, 12)).max() < 10.0


def test_auto_work_is_bounded_at_a_fine_step(monkeypatch):
    # A day ahead at one-minute steps from 2,000 points: 2.9 million
    # cells per kernel (23 MB each, ~30 kernels) selected at the step.
    cells = []
    real = kernels.all_kernels

    def counting(y, horizon, season, first=0):
        cells.append(y.size * horizon)
        return real(y, horizon, season, first=first)

    monkeypatch.setattr(kernels, "all_kernels", counting)
    step_s, points, steps = 60.0, 2000, 1440
    t = np.arange(points + steps) * step_s
    values = 50 + 20 * np.sin(2 * np.pi * t / 86400.0)
    forecast = forecasters.load("auto", horizon_steps=steps).fit(
        values[:points], step_s=step_s).forecast(steps)
    assert cells and max(cells) <= selector.MAX_CELLS
    assert forecast.mean.shape == forecast.lower.shape == (steps,)
    assert np.all(np.isfinite(forecast.mean))
    assert np.all(forecast.lower <= forecast.mean)
    assert np.all(forecast.mean <= forecast.upper)
    assert any("-step means" in note for note in forecast.notes)
    # Within the range the history covered (30-70).
    assert 30.0 <= forecast.mean.min() <= forecast.mean.max() <= 70.0


def test_auto_within_its_budget_selects_at_the_step():
    history = seasonal_series(3, noise=1.0)
    at_step = forecasters.load("auto", horizon_steps=12).fit(
        history, step_s=STEP_S).forecast(12)
    exact = forecasters.load(
        "auto", horizon_steps=12, max_cells=history.size * 12).fit(
        history, step_s=STEP_S).forecast(12)
    assert at_step.to_dict() == exact.to_dict()
    assert not any("-step means" in note for note in exact.notes)


@pytest.mark.parametrize("n, steps, season, expected", [
    (72, 24, 24, 1),        # the lifetime outlook's defaults
    (4320, 1440, 1440, 5),  # 864 x 288 cells, a day is 288 buckets
    (14400, 1440, 1440, 10),
    (1000, 1000, 7, 2),     # no divisor of the season near: fewest
])
def test_bucket_steps_known_answers(n, steps, season, expected):
    bucket = selector.bucket_steps(n, steps, season, selector.MAX_CELLS)
    assert bucket == expected
    assert -(-n // bucket) * -(-steps // bucket) <= selector.MAX_CELLS
