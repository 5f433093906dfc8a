"""Seasonal naive: the baseline every other forecaster is measured against.

With at least two seasons of history (a day by default) the forecast
repeats the value one season earlier; otherwise it repeats the last
value. Intervals are empirical quantiles of the historical changes, which
are exactly the errors these forecasters would have made from every past
origin: a conformal interval with no fitted parameter.
"""

from shadow_service.analysis.forecasters import base


class SeasonalNaiveForecaster(base.Forecaster):
    """Seasonal naive, falling back to last-value naive."""

    name = "seasonal_naive"
    interval_method = ("conformal: quantiles of the one-season "
                       "differences (its own backtest errors); last-value "
                       "naive's when under two seasons")

    def min_history(self, step_s):
        return 1

    def _fit(self, data, *, step_s, season, notes):
        results = base.NaiveResults(data, season=season, notes=notes,
                                    level=self.level, bounds=self.bounds)
        if results.season is None and season > 1:
            results.notes.append("less than two seasons of history: "
                                 "last-value naive")
        return results


class NaiveForecaster(base.Forecaster):
    """Last-value naive."""

    name = "naive"
    interval_method = ("conformal: quantiles of the h-step changes (its "
                       "own backtest errors at each step)")

    def min_history(self, step_s):
        return 1

    def _fit(self, data, *, step_s, season, notes):
        return base.NaiveResults(data, season=None, notes=notes,
                                 level=self.level, bounds=self.bounds)
