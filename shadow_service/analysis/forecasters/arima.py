"""ARIMA with small-order selection (statsmodels).

Fits each order in ``orders`` to the most recent ``max_history_s`` of the
series and keeps the lowest AIC. Seasonal ARIMA with a daily period of
5-minute samples is unusable (minutes per optimiser step, see FACTS.md),
so seasonality is left to the ``stl_arima`` forecaster.

The interval is conformal: the Kalman filter's predicted state after each
past origin, run forward with the fitted system matrices, gives the
forecast the fitted model would have made there (exactly what
``forecast`` gives at the last origin); the per-step quantiles of those
errors make the interval. Parameters are estimated on the whole history,
so these errors are slightly optimistic.
"""

import logging
import warnings

import numpy as np
from statsmodels.tsa.arima import model as arima_model

from shadow_service.analysis.forecasters import base

LOG = logging.getLogger(__name__)

DEFAULT_ORDERS = ((1, 0, 0), (2, 0, 0), (1, 0, 1), (0, 1, 1))


class ArimaForecaster(base.Forecaster):
    """Lowest-AIC ARIMA among a few small orders."""

    name = "arima"
    interval_method = ("conformal: per-step quantiles of the errors from "
                       "past origins of the fitted state-space model")

    def __init__(self, *, orders=DEFAULT_ORDERS,
                 max_history_s=2 * 86400.0, **kwargs):
        super().__init__(max_history_s=max_history_s, **kwargs)
        self.orders = tuple(tuple(order) for order in orders)

    def min_history(self, step_s):
        return 20

    def _fit(self, data, *, step_s, season, notes):
        best = None
        for order in self.orders:
            fitted = fit_arima(data, order)
            if fitted is None:
                continue
            if best is None or fitted.aic < best[1].aic:
                best = (order, fitted)
        if best is None:
            notes.append("no ARIMA order converged: last-value naive")
            return base.NaiveResults(data, season=None, notes=notes,
                                     level=self.level, bounds=self.bounds)
        order, fitted = best
        return ArimaResults(fitted, data=data, step_s=step_s,
                            model="arima%s" % (order,), notes=notes,
                            level=self.level, bounds=self.bounds)


def fit_arima(data, order):
    """Fit one ARIMA order; None when statsmodels fails."""
    trend = "c" if order[1] == 0 else "n"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return arima_model.ARIMA(data, order=order, trend=trend).fit()
    except (ValueError, ArithmeticError, IndexError) as error:
        LOG.debug("ARIMA%s failed: %s", order, error)
        return None


def forecast_paths(fitted, steps, level):
    """``(mean, lower, upper)`` of a fitted statsmodels state-space model
    ``steps`` ahead at interval ``level``, its warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prediction = fitted.get_forecast(steps)
        interval = prediction.conf_int(alpha=1 - level)
    return prediction.predicted_mean, interval[:, 0], interval[:, 1]


def backtest_paths(fitted, origins, steps):
    """Forecasts ``steps`` ahead from each past origin of a fitted
    statsmodels state-space model, with its fitted parameters.

    Row ``i`` forecasts ``endog[origins[i] + 1 : origins[i] + 1 + steps]``
    from the filter's predicted state ``a[origins[i] + 1 | origins[i]]``
    (the system matrices are time-invariant for these models).
    """
    results = fitted.filter_results
    transition = results.transition[:, :, -1]
    design = results.design[:, :, -1]
    state_intercept = results.state_intercept[:, -1]
    obs_intercept = results.obs_intercept[:, -1]
    state = results.predicted_state[:, np.asarray(origins) + 1]
    paths = np.empty((len(origins), steps))
    for step in range(steps):
        paths[:, step] = (design @ state)[0] + obs_intercept[0]
        state = transition @ state + state_intercept[:, None]
    return paths


class ArimaResults(base.FittedForecaster):
    def __init__(self, fitted, *, data, step_s, **kwargs):
        super().__init__(**kwargs)
        self.fitted = fitted
        self.data = data
        self.step_s = step_s

    def _paths(self, steps):
        mean, lower, upper = forecast_paths(self.fitted, steps, self.level)
        origins = base.calibration_origins(self.data.size, steps,
                                           step_s=self.step_s)
        lower, upper = base.conformal_interval(
            self.data, origins, backtest_paths(self.fitted, origins, steps),
            np.asarray(mean), (lower, upper), level=self.level,
            notes=self.notes)
        return mean, lower, upper
