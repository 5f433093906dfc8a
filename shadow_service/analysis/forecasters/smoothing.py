"""Exponential smoothing forecasters (statsmodels).

``ses``: simple exponential smoothing (ETS(A,N,N)). ``holt_winters``:
additive damped trend plus additive daily seasonality. Both intervals are
conformal: with the fitted parameters, the model's state after each past
origin gives the forecast it would have made there, and the quantiles of
those errors at each step ahead make the interval (the analytic Gaussian
one is kept only when the history has too few origins, with a note).
The parameters are estimated on the whole history, so these errors are
slightly optimistic. A daily season of 5-minute samples (288 points) costs
about a second per fit, so when the season is longer than
``max_season_points`` the series is averaged into buckets first (hourly
for 5-minute data), the model is fitted on the buckets and the forecast
is spread back to the original step; the interval adds the spread of the
samples around their bucket means.
"""

import logging
import warnings

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.tsa import holtwinters
from statsmodels.tsa.exponential_smoothing import ets

from shadow_service.analysis import series
from shadow_service.analysis.forecasters import base

LOG = logging.getLogger(__name__)


class SesForecaster(base.Forecaster):
    """Simple exponential smoothing, ETS(A,N,N)."""

    name = "ses"
    interval_method = ("conformal: per-step quantiles of the errors from "
                       "past origins with the fitted smoothing parameter")

    def __init__(self, *, max_history_s=7 * 86400.0, **kwargs):
        super().__init__(max_history_s=max_history_s, **kwargs)

    def min_history(self, step_s):
        return 10

    def _fit(self, data, *, step_s, season, notes):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted = ets.ETSModel(pd.Series(data),
                                   error="add").fit(disp=False)
        return EtsResults(fitted, data=data, step_s=step_s, model="ses",
                          notes=notes, level=self.level, bounds=self.bounds)


class EtsResults(base.FittedForecaster):
    def __init__(self, fitted, *, data, step_s, **kwargs):
        super().__init__(**kwargs)
        self.fitted = fitted
        self.data = data
        self.n = data.size
        self.step_s = step_s

    def _paths(self, steps):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = self.fitted.get_prediction(
                start=self.n, end=self.n + steps - 1).summary_frame(
                alpha=1 - self.level)
        mean = frame["mean"].to_numpy()
        fallback = (frame["pi_lower"].to_numpy(),
                    frame["pi_upper"].to_numpy())
        origins = base.calibration_origins(self.n, steps,
                                           step_s=self.step_s)
        # SES forecasts the level after the origin at every step.
        levels = np.asarray(self.fitted.level, dtype=float)
        predicted = np.repeat(levels[origins][:, None], steps, axis=1)
        lower, upper = base.conformal_interval(
            self.data, origins, predicted, mean, fallback,
            level=self.level, notes=self.notes)
        return mean, lower, upper


class HoltWintersForecaster(base.Forecaster):
    """Damped additive trend + additive season, bucketed if long."""

    name = "holt_winters"
    interval_method = ("conformal: per-step quantiles of the errors from "
                       "past bucket-end origins with the fitted parameters "
                       "(original-resolution actuals)")

    def __init__(self, *, max_season_points=48,
                 max_history_s=14 * 86400.0, **kwargs):
        super().__init__(max_history_s=max_history_s, **kwargs)
        self.max_season_points = max_season_points

    def _bucket(self, season):
        """Steps averaged into one fitted point (1 if the day is short)."""
        return max(int(np.ceil(season / self.max_season_points)), 1)

    def min_history(self, step_s):
        # Ten fitted points: the damped trend needs two to initialise and
        # more than its four parameters to estimate, so count buckets.
        return 10 * self._bucket(series.season_steps(step_s, self.season_s))

    def _fit(self, data, *, step_s, season, notes):
        bucket = self._bucket(season)
        usable = data.size - data.size % bucket
        buckets = data[data.size - usable:].reshape(-1, bucket)
        aggregated = buckets.mean(axis=1)
        within_sd = float(np.std(buckets - aggregated[:, None])) \
            if bucket > 1 else 0.0
        bucket_season = max(season // bucket, 1)
        seasonal = (bucket_season > 1
                    and aggregated.size >= 2 * bucket_season)
        if bucket > 1:
            notes.append("fitted on %d-step means" % bucket)
        if not seasonal:
            notes.append("less than two seasons: no seasonal component")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = holtwinters.ExponentialSmoothing(
                aggregated, trend="add", damped_trend=True,
                seasonal="add" if seasonal else None,
                seasonal_periods=bucket_season if seasonal else None,
                initialization_method="estimated")
            fitted = model.fit()
        residual_sd = float(np.std(fitted.resid))
        return BucketedResults(fitted, data=data[data.size - usable:],
                               bucket=bucket,
                               season=bucket_season if seasonal else None,
                               residual_sd=residual_sd, within_sd=within_sd,
                               step_s=step_s, model="holt_winters",
                               notes=notes, level=self.level,
                               bounds=self.bounds)


class BucketedResults(base.FittedForecaster):
    def __init__(self, fitted, *, data, bucket, season, residual_sd,
                 within_sd, step_s, **kwargs):
        super().__init__(**kwargs)
        self.fitted = fitted
        self.data = data
        self.bucket = bucket
        self.season = season
        self.residual_sd = residual_sd
        self.within_sd = within_sd
        self.step_s = step_s

    def bucket_forecasts(self, origins, bucket_steps):
        """Forecasts of ``bucket_steps`` buckets after each bucket origin,
        from the fitted states (equal to ``fitted.forecast`` at the last).
        """
        fitted = self.fitted
        ahead = np.arange(1, bucket_steps + 1)
        level = np.asarray(fitted.level, dtype=float)[origins]
        trend = np.asarray(fitted.trend, dtype=float)[origins]
        phi = float(fitted.params.get("damping_trend", 1.0))
        if not np.isfinite(phi):
            phi = 1.0
        paths = level[:, None] + np.cumsum(phi ** ahead)[None, :] \
            * trend[:, None]
        if self.season:
            season = np.asarray(fitted.season, dtype=float)
            source = (origins[:, None] + ahead[None, :]
                      - self.season * ((ahead[None, :] - 1) // self.season
                                       + 1))
            paths = paths + season[source]
        return paths

    def _paths(self, steps):
        bucket_steps = int(np.ceil(steps / self.bucket))
        path = np.asarray(self.fitted.forecast(bucket_steps))
        mean = np.repeat(path, self.bucket)[:steps]
        ahead = np.repeat(np.arange(1, bucket_steps + 1),
                          self.bucket)[:steps]
        sd = np.sqrt(self.residual_sd ** 2 * ahead + self.within_sd ** 2)
        z = stats.norm.ppf(0.5 + self.level / 2)
        fallback = (mean - z * sd, mean + z * sd)
        # Origins are bucket ends (the fitted data ends on one).
        n_buckets = self.data.size // self.bucket
        bucket_origins = base.calibration_origins(
            n_buckets, bucket_steps, step_s=self.step_s * self.bucket)
        origins = (bucket_origins + 1) * self.bucket - 1
        keep = origins + steps < self.data.size
        bucket_origins, origins = bucket_origins[keep], origins[keep]
        predicted = np.repeat(
            self.bucket_forecasts(bucket_origins, bucket_steps),
            self.bucket, axis=1)[:, :steps]
        lower, upper = base.conformal_interval(
            self.data, origins, predicted, mean, fallback,
            level=self.level, notes=self.notes)
        return mean, lower, upper
