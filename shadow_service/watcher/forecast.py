"""Will a watched VM's metric cross its QoS target, and when?

:func:`forecast_breach` forecasts one metric's series with the analyzer's
forecasters and compares the interval bound that matters with the
profile's target (:mod:`shadow_service.workloads.qos`): the upper bound
for a "lower is fine" target such as latency or steal, the lower bound
for a "higher is fine" one.  The watcher's policies decide on the result;
this module only forecasts and compares, it does no I/O.
"""

import dataclasses
import logging
import math

import numpy as np

from shadow_service.workloads import qos

LOG = logging.getLogger(__name__)

#: Forecaster used when the configured one cannot fit the series.
FALLBACK_FORECASTER = 'seasonal_naive'


@dataclasses.dataclass
class BreachForecast:
    """A metric's forecast and where it first breaks its target."""

    metric: str
    target: tuple               # (comparison, threshold)
    step_s: float
    mean: list
    lower: list
    upper: list
    model: str
    #: Index of the first forecast step whose bound breaks the target, or
    #: None if none does within the horizon.
    breach_step: int = None

    @property
    def horizon_s(self):
        return len(self.mean) * self.step_s

    @property
    def breach_in_s(self):
        """Seconds from the end of the series to the first breach."""
        if self.breach_step is None:
            return None
        return (self.breach_step + 1) * self.step_s

    def describe(self):
        comparison, threshold = self.target
        if self.breach_step is None:
            return ('%s stays within its target (%s %g) for the next '
                    '%.1f h' % (self.metric, comparison, threshold,
                                self.horizon_s / 3600.0))
        return ('%s may break its target (%s %g) in %.1f h (forecast '
                'interval bound %.3g)' % (
                    self.metric, comparison, threshold,
                    self.breach_in_s / 3600.0, self.bound()[
                        self.breach_step]))

    def bound(self):
        """The interval bound compared with the target."""
        if self.target[0] == qos.LOWER_IS_FINE:
            return self.upper
        return self.lower

    def to_dict(self):
        return dataclasses.asdict(self)


def forecast_breach(analyzer, values, *, metric, target, step_s,
                    horizon_steps, forecaster=None):
    """Forecast ``values`` (one metric, regular ``step_s`` grid; None
    where missing) ``horizon_steps`` ahead and find the first breach.

    Parameters
    ----------
    analyzer : shadow_service.analysis.analyzer.Analyzer
    values : sequence of float or None
    metric : str
    target : tuple
        ``(comparison, threshold)`` from :mod:`shadow_service.workloads.qos`.
    step_s : float
    horizon_steps : int
    forecaster : str, optional
        A forecaster plugin (the analyzer's default when None); when it
        fails, :data:`FALLBACK_FORECASTER` is used and logged.
    """
    # Missing steps keep their place: the forecasters fill gaps within
    # the series (by season where they can), and the forecast of a series
    # whose newest steps are missing starts at its last sample, so it is
    # made that much longer and its first steps (already past) dropped.
    # Dropping them instead shifted the season and the horizon: a breach
    # due in seven steps was stated in ten or eleven.
    series = [math.nan if v is None else float(v) for v in values]
    late = 0
    while late < len(series) and not math.isfinite(series[-1 - late]):
        late += 1
    series = series[:len(series) - late]
    options = {'step_s': step_s, 'horizon_steps': horizon_steps + late,
               'forecaster': forecaster}
    try:
        result = analyzer.forecast(series, **options)
    except Exception:
        LOG.exception('Forecasting %s failed; using %s', metric,
                      FALLBACK_FORECASTER)
        options['forecaster'] = FALLBACK_FORECASTER
        result = analyzer.forecast(series, **options)
    mean = [float(v) for v in result.mean[late:]]
    lower = [float(v) for v in result.lower[late:]]
    upper = [float(v) for v in result.upper[late:]]
    found = BreachForecast(metric=metric, target=tuple(target),
                           step_s=float(step_s), mean=mean, lower=lower,
                           upper=upper, model=str(result.model))
    broken = qos.breaches(np.asarray(found.bound(), float), target)
    if broken.any():
        found.breach_step = int(np.argmax(broken))
    return found
