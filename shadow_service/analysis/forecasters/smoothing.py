"""Exponential smoothing forecasters (statsmodels).

``ses``: simple exponential smoothing (ETS(A,N,N)) with its analytic
prediction interval. ``holt_winters``: additive damped trend plus additive
daily seasonality. A daily season of 5-minute samples (288 points) costs
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

from shadow_service.analysis.forecasters import base

LOG = logging.getLogger(__name__)


class SesForecaster(base.Forecaster):
    """Simple exponential smoothing, ETS(A,N,N)."""

    name = "ses"

    def __init__(self, *, max_history_s=7 * 86400.0, **kwargs):
        super().__init__(max_history_s=max_history_s, **kwargs)

    def min_history(self, step_s):
        return 10

    def _fit(self, data, *, step_s, season, notes):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted = ets.ETSModel(pd.Series(data),
                                   error="add").fit(disp=False)
        return EtsResults(fitted, n=data.size, model="ses", notes=notes,
                          level=self.level, bounds=self.bounds)


class EtsResults(base.FittedForecaster):
    def __init__(self, fitted, *, n, **kwargs):
        super().__init__(**kwargs)
        self.fitted = fitted
        self.n = n

    def _paths(self, steps):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = self.fitted.get_prediction(
                start=self.n, end=self.n + steps - 1).summary_frame(
                alpha=1 - self.level)
        return (frame["mean"].to_numpy(), frame["pi_lower"].to_numpy(),
                frame["pi_upper"].to_numpy())


class HoltWintersForecaster(base.Forecaster):
    """Damped additive trend + additive season, bucketed if long."""

    name = "holt_winters"

    def __init__(self, *, max_season_points=48,
                 max_history_s=14 * 86400.0, **kwargs):
        super().__init__(max_history_s=max_history_s, **kwargs)
        self.max_season_points = max_season_points

    def min_history(self, step_s):
        return 10

    def _fit(self, data, *, step_s, season, notes):
        bucket = max(int(np.ceil(season / self.max_season_points)), 1)
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
        return BucketedResults(fitted, bucket=bucket,
                               residual_sd=residual_sd, within_sd=within_sd,
                               model="holt_winters", notes=notes,
                               level=self.level, bounds=self.bounds)


class BucketedResults(base.FittedForecaster):
    def __init__(self, fitted, *, bucket, residual_sd, within_sd, **kwargs):
        super().__init__(**kwargs)
        self.fitted = fitted
        self.bucket = bucket
        self.residual_sd = residual_sd
        self.within_sd = within_sd

    def _paths(self, steps):
        bucket_steps = int(np.ceil(steps / self.bucket))
        path = np.asarray(self.fitted.forecast(bucket_steps))
        mean = np.repeat(path, self.bucket)[:steps]
        ahead = np.repeat(np.arange(1, bucket_steps + 1),
                          self.bucket)[:steps]
        sd = np.sqrt(self.residual_sd ** 2 * ahead + self.within_sd ** 2)
        z = stats.norm.ppf(0.5 + self.level / 2)
        return mean, mean - z * sd, mean + z * sd
