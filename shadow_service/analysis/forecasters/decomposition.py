"""STL/MSTL decomposition with ARIMA on the deseasonalised series.

MSTL removes the daily season (and the weekly one when at least two weeks
of history are fitted); the seasonal components are forecast by repeating
their last season and the rest (trend + remainder) by ARIMA(1,0,1). The
interval is ARIMA's, as statsmodels' ``STLForecast`` does. Less than two
seasons of history falls back to plain ARIMA and says so.
"""

import logging
import warnings

import numpy as np
from statsmodels.tsa import seasonal as sm_seasonal

from shadow_service.analysis.forecasters import arima
from shadow_service.analysis.forecasters import base

LOG = logging.getLogger(__name__)

WEEK_S = 7 * 86400.0


class StlArimaForecaster(base.Forecaster):
    """MSTL + ARIMA on the seasonally adjusted series."""

    name = "stl_arima"

    def __init__(self, *, order=(1, 0, 1), max_history_s=4 * 86400.0,
                 **kwargs):
        super().__init__(max_history_s=max_history_s, **kwargs)
        self.order = tuple(order)

    def min_history(self, step_s):
        return 20

    def _fit(self, data, *, step_s, season, notes):
        periods = [season] if season > 1 else []
        week = int(round(WEEK_S / step_s))
        if week > season and data.size >= 2 * week:
            periods.append(week)
        periods = [p for p in periods if data.size >= 2 * p]
        if not periods:
            notes.append("less than two seasons: ARIMA without "
                         "decomposition")
            return arima.ArimaForecaster(
                orders=(self.order,), level=self.level,
                bounds=self.bounds)._fit(data, step_s=step_s,
                                         season=season, notes=notes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            decomposition = sm_seasonal.MSTL(
                data, periods=periods if len(periods) > 1 else periods[0]
            ).fit()
        seasonal = np.asarray(decomposition.seasonal)
        if seasonal.ndim == 1:
            seasonal = seasonal[:, None]
        adjusted = data - seasonal.sum(axis=1)
        fitted = arima.fit_arima(adjusted, self.order)
        if fitted is None:
            notes.append("ARIMA on the adjusted series failed: seasonal "
                         "naive")
            return base.NaiveResults(data, season=season, notes=notes,
                                     level=self.level, bounds=self.bounds)
        return StlResults(fitted, seasonal=seasonal, periods=periods,
                          model="stl_arima", notes=notes, level=self.level,
                          bounds=self.bounds)


class StlResults(base.FittedForecaster):
    def __init__(self, fitted, *, seasonal, periods, **kwargs):
        super().__init__(**kwargs)
        self.fitted = fitted
        self.seasonal = seasonal
        self.periods = periods

    def _paths(self, steps):
        remainder, lower, upper = arima.forecast_paths(
            self.fitted, steps, self.level)
        seasonal_path = np.zeros(steps)
        n = self.seasonal.shape[0]
        for column, period in enumerate(self.periods):
            offsets = n - period + np.arange(steps) % period
            seasonal_path += self.seasonal[offsets, column]
        return (np.asarray(remainder) + seasonal_path, lower + seasonal_path,
                upper + seasonal_path)
