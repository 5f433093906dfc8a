"""Will a watched VM's metric cross its QoS target, and when?

:func:`forecast_breach` forecasts one metric's series with the analyzer's
forecasters and compares the interval bound that matters with the
profile's target (:mod:`shadow_service.workloads.qos`): the upper bound
for a "lower is fine" target such as latency or steal, the lower bound
for a "higher is fine" one.  The watcher's policies decide on the result;
this module only forecasts and compares, it does no I/O.

:func:`forecast_from_now` is the forecast both this and the watcher's
demand forecast are made with: missing samples keep their place and the
forecast starts now, however many of the newest samples are missing.
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


def missing_newest(values):
    """How many of the newest ``values`` are missing (None, NaN or
    infinite): the steps by which the last sample is older than now."""
    late = 0
    for value in reversed(values):
        if value is not None and math.isfinite(value):
            break
        late += 1
    return late


def forecast_from_now(analyzer, values, *, step_s, horizon_steps,
                      **options):
    """Forecast ``values`` (a regular ``step_s`` grid ending now; None or
    NaN where missing) the ``horizon_steps`` after now.

    Missing steps keep their place: the analyzer's forecasters fill gaps
    within the series (by season where they can), so a gap shifts
    neither the season nor the trend.  The forecast of a series whose
    newest steps are missing starts at its last sample: it is made that
    much longer and its first steps (already past) are dropped.  Dropping
    the missing samples instead shifted the season and the horizon: a
    daily peak was forecast as many steps late as were missing.

    ``options`` go to the analyzer's ``forecast`` (``forecaster``,
    ``bounds``).

    Returns
    -------
    shadow_service.analysis.forecasters.base.Forecast
        Its ``mean``, ``lower`` and ``upper`` hold ``horizon_steps``
        steps, the first one ending one step after now.
    """
    series = [math.nan if v is None else float(v) for v in values]
    late = missing_newest(series)
    result = analyzer.forecast(series[:len(series) - late], step_s=step_s,
                               horizon_steps=horizon_steps + late,
                               **options)
    return dataclasses.replace(result, mean=result.mean[late:],
                               lower=result.lower[late:],
                               upper=result.upper[late:])


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
    options = {'step_s': step_s, 'horizon_steps': horizon_steps,
               'forecaster': forecaster}
    try:
        result = forecast_from_now(analyzer, values, **options)
    except Exception:
        LOG.exception('Forecasting %s failed; using %s', metric,
                      FALLBACK_FORECASTER)
        options['forecaster'] = FALLBACK_FORECASTER
        result = forecast_from_now(analyzer, values, **options)
    mean = [float(v) for v in result.mean]
    lower = [float(v) for v in result.lower]
    upper = [float(v) for v in result.upper]
    found = BreachForecast(metric=metric, target=tuple(target),
                           step_s=float(step_s), mean=mean, lower=lower,
                           upper=upper, model=str(result.model))
    broken = qos.breaches(np.asarray(found.bound(), float), target)
    if broken.any():
        found.breach_step = int(np.argmax(broken))
    return found
