"""ARIMA with small-order selection (statsmodels).

Fits each order in ``orders`` to the most recent ``max_history_s`` of the
series and keeps the lowest AIC. Seasonal ARIMA with a daily period of
5-minute samples is unusable (minutes per optimiser step, see FACTS.md),
so seasonality is left to the ``stl_arima`` forecaster.
"""

import logging
import warnings

from statsmodels.tsa.arima import model as arima_model

from shadow_service.analysis.forecasters import base

LOG = logging.getLogger(__name__)

DEFAULT_ORDERS = ((1, 0, 0), (2, 0, 0), (1, 0, 1), (0, 1, 1))


class ArimaForecaster(base.Forecaster):
    """Lowest-AIC ARIMA among a few small orders."""

    name = "arima"

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
        return ArimaResults(fitted, model="arima%s" % (order,),
                            notes=notes, level=self.level,
                            bounds=self.bounds)


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


class ArimaResults(base.FittedForecaster):
    def __init__(self, fitted, **kwargs):
        super().__init__(**kwargs)
        self.fitted = fitted

    def _paths(self, steps):
        return forecast_paths(self.fitted, steps, self.level)
