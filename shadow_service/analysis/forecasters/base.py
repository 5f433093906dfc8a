"""The forecaster plugin interface.

A :class:`Forecaster` is configured at construction (keyword-only
options), ``fit(y, step_s=...)`` cleans the series and returns a
:class:`FittedForecaster` whose ``forecast(steps)`` gives a
:class:`Forecast`: mean path plus lower/upper bounds of a central
prediction interval (90 % by default) and notes on anything that was
repaired or fallen back on. Degenerate input is handled here once for all
plugins: empty series, constant series and histories shorter than the
plugin's ``min_history`` get a naive forecast whose notes say so.

Prediction intervals are conformal wherever the history allows: the
empirical quantiles, at each step ahead, of the errors the model would have
made from earlier origins of the same history (:func:`conformal_interval`).
Each plugin states how its interval is made in ``interval_method``.

To add a forecaster, subclass :class:`Forecaster`, implement ``_fit`` and
register it in setup.cfg under the ``nova_shadow.forecasters`` namespace.
"""

import abc
import dataclasses
import logging
import math

import numpy as np
from scipy import stats

from shadow_service.analysis import series

LOG = logging.getLogger(__name__)

#: Fewest backtest origins a conformal interval is computed from; with
#: fewer the model's own (Gaussian) interval is kept and a note says so.
MIN_CALIBRATION_ORIGINS = 8
#: How far back (seconds) origins are replayed to calibrate intervals.
CALIBRATION_S = 3 * 86400.0


@dataclasses.dataclass
class Forecast:
    """A forecast path with a central prediction interval."""

    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    model: str
    notes: list
    level: float = 0.9

    def to_dict(self):
        return {"mean": self.mean.tolist(), "lower": self.lower.tolist(),
                "upper": self.upper.tolist(), "model": self.model,
                "notes": list(self.notes), "level": self.level}


class FittedForecaster(abc.ABC):
    """A fitted model; ``forecast(steps)`` returns a :class:`Forecast`."""

    def __init__(self, *, model, notes, level, bounds):
        self.model = model
        self.notes = list(notes)
        self.level = level
        self.bounds = bounds

    def forecast(self, steps):
        steps = int(steps)
        if steps < 1:
            raise ValueError("steps must be at least 1, got %s" % steps)
        mean, lower, upper = self._paths(steps)
        mean, lower, upper = (np.asarray(p, dtype=float)[:steps]
                              for p in (mean, lower, upper))
        lower = np.minimum(lower, mean)
        upper = np.maximum(upper, mean)
        if self.bounds is not None:
            low, high = self.bounds
            mean, lower, upper = (np.clip(p, low, high)
                                  for p in (mean, lower, upper))
        return Forecast(mean, lower, upper, self.model, list(self.notes),
                        self.level)

    @abc.abstractmethod
    def _paths(self, steps):
        """Return (mean, lower, upper) arrays of length ``steps``."""


class Forecaster(abc.ABC):
    """Base class of forecaster plugins.

    Parameters
    ----------
    level : float
        Coverage of the central prediction interval (0.5-0.99).
    bounds : tuple, optional
        Physical range ``(low, high)`` of the series (e.g. ``(0, 100)``
        for a percentage); inputs are clipped to it and so are forecasts.
    season_s : float
        Length of the main season in seconds (a day by default).
    max_history_s : float, optional
        Only the most recent part of the history is fitted.
    """

    name = None
    #: How the prediction interval is made (reported by the benchmark).
    interval_method = None

    def __init__(self, *, level=0.9, bounds=None, season_s=86400.0,
                 max_history_s=None):
        if not 0.5 <= level <= 0.99:
            raise ValueError("level must be within [0.5, 0.99]")
        self.level = level
        self.bounds = bounds
        self.season_s = season_s
        self.max_history_s = max_history_s

    def min_history(self, step_s):
        """Fewest points this model fits; shorter series fall back."""
        return 3

    def fit(self, y, *, step_s):
        """Clean ``y`` (regular samples every ``step_s`` s) and fit.

        Returns
        -------
        FittedForecaster
        """
        season = series.season_steps(step_s, self.season_s)
        values = y if isinstance(y, np.ndarray) else list(y)
        if self.max_history_s:
            keep = max(int(self.max_history_s // step_s), 1)
            values = values[-keep:]
        cleaned = series.clean(values, bounds=self.bounds, season=season)
        notes = list(cleaned.notes)
        data = cleaned.values
        if data.size == 0:
            notes.append("no data: forecast is NaN")
            return ConstantResults(np.nan, model="none", notes=notes,
                                   level=self.level, bounds=self.bounds)
        if cleaned.is_constant:
            notes.append("constant series")
            return ConstantResults(float(data[-1]), model="constant",
                                   notes=notes, level=self.level,
                                   bounds=self.bounds)
        needed = self.min_history(step_s)
        if data.size < needed:
            notes.append("short history (%d < %d points): fell back to "
                         "last-value naive" % (data.size, needed))
            return NaiveResults(data, season=None, notes=notes,
                                level=self.level, bounds=self.bounds)
        return self._fit(data, step_s=step_s, season=season, notes=notes)

    @abc.abstractmethod
    def _fit(self, data, *, step_s, season, notes):
        """Fit clean, non-constant data; return a FittedForecaster."""


class ConstantResults(FittedForecaster):
    """A flat forecast with a zero-width interval."""

    def __init__(self, value, **kwargs):
        super().__init__(**kwargs)
        self.value = value

    def _paths(self, steps):
        path = np.full(steps, self.value)
        return path, path.copy(), path.copy()


class NaiveResults(FittedForecaster):
    """Last-value (or seasonal) naive with empirical intervals.

    The interval for step h holds the empirical quantiles of the
    historical h-step changes; where fewer than 8 such changes exist the
    one-step spread is scaled by sqrt(h) under a normal assumption.
    """

    def __init__(self, data, *, season, notes, level, bounds):
        seasonal = bool(season) and data.size >= 2 * season
        model = "seasonal_naive" if seasonal else "naive"
        super().__init__(model=model, notes=notes, level=level,
                         bounds=bounds)
        self.data = data
        self.season = season if seasonal else None

    def _paths(self, steps):
        data = self.data
        if self.season:
            m = self.season
            offsets = np.arange(steps) % m
            mean = data[data.size - m + offsets]
            errors = data[m:] - data[:-m]
            low, high = _quantiles(errors, self.level)
            return mean, mean + low, mean + high
        mean = np.full(steps, data[-1])
        lower, upper = np.empty(steps), np.empty(steps)
        one_step = np.diff(data)
        spread = np.std(one_step) if one_step.size > 1 else \
            0.25 * abs(data[-1])
        z = stats.norm.ppf(0.5 + self.level / 2)
        for h in range(1, steps + 1):
            changes = data[h:] - data[:-h] if data.size > h else []
            if len(changes) >= 8:
                lower[h - 1], upper[h - 1] = _quantiles(changes, self.level)
            else:
                lower[h - 1] = -z * spread * np.sqrt(h)
                upper[h - 1] = z * spread * np.sqrt(h)
        lower = np.minimum.accumulate(lower)
        upper = np.maximum.accumulate(upper)
        return mean, mean + lower, mean + upper


def conformal_bounds(residuals, level):
    """Per-step residual quantiles, widening monotonically with the step.

    Parameters
    ----------
    residuals : numpy.ndarray
        ``(origins, steps)`` errors (actual minus forecast) of forecasts
        made from past origins.
    level : float
        Central coverage wanted.

    Returns
    -------
    tuple of numpy.ndarray
        Offsets to add to the mean path: lower (<= 0 where the errors
        straddle zero) and upper, each of length ``steps``. The quantile
        ranks carry the split-conformal ``(count + 1) / count`` correction.
    """
    count = residuals.shape[0]
    alpha = (1.0 - level) / 2
    high_q = min(1.0, math.ceil((count + 1) * (1 - alpha)) / count)
    low_q = max(0.0, 1.0 - high_q)
    lower = np.quantile(residuals, low_q, axis=0)
    upper = np.quantile(residuals, high_q, axis=0)
    return np.minimum.accumulate(lower), np.maximum.accumulate(upper)


def calibration_origins(n, steps, *, step_s=None):
    """Origins whose ``steps`` next values are inside a history of ``n``.

    The first quarter of the history is skipped (model states are still
    settling there) and at most ``CALIBRATION_S`` of origins are used.
    """
    last = n - 1 - steps
    first = n // 4
    if step_s:
        first = max(first, last - int(CALIBRATION_S // step_s) + 1)
    if last < first:
        return np.array([], dtype=int)
    return np.arange(first, last + 1)


def conformal_interval(data, origins, predicted, mean, fallback, *, level,
                       notes):
    """A conformal interval around ``mean`` from backtest forecasts.

    Parameters
    ----------
    data : numpy.ndarray
        The fitted history.
    origins : numpy.ndarray
        Origin indices into ``data``; ``predicted[i]`` is the forecast of
        ``data[origins[i] + 1 : origins[i] + 1 + steps]`` made with the
        fitted model from that origin.
    predicted : numpy.ndarray
        ``(len(origins), steps)`` backtest forecasts.
    mean : numpy.ndarray
        The forecast path the interval is put around.
    fallback : tuple of numpy.ndarray
        The model's own ``(lower, upper)``, used (and noted) when fewer
        than ``MIN_CALIBRATION_ORIGINS`` origins exist.
    """
    steps = len(mean)
    if len(origins) < MIN_CALIBRATION_ORIGINS:
        note = ("interval: model-based (fewer than %d origins to "
                "calibrate)" % MIN_CALIBRATION_ORIGINS)
        if note not in notes:
            notes.append(note)
        return fallback
    index = np.asarray(origins)[:, None] + np.arange(1, steps + 1)[None, :]
    residuals = data[index] - np.asarray(predicted)[:, :steps]
    low, high = conformal_bounds(residuals, level)
    return mean + low, mean + high


def _quantiles(errors, level):
    """Lower and upper empirical quantiles for a central interval."""
    alpha = (1.0 - level) / 2
    return (float(np.quantile(errors, alpha)),
            float(np.quantile(errors, 1 - alpha)))


class GaussianResults(FittedForecaster):
    """Precomputed paths (for statsmodels results computed at fit time)."""

    def __init__(self, mean, lower, upper, **kwargs):
        super().__init__(**kwargs)
        self._mean, self._lower, self._upper = mean, lower, upper

    def _paths(self, steps):
        if steps > len(self._mean):
            raise ValueError("fitted for %d steps, asked for %d"
                             % (len(self._mean), steps))
        return self._mean, self._lower, self._upper
