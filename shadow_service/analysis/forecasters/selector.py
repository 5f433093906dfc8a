"""Automatic forecaster: per-series selection by rolling-origin backtest.

For each series the selector evaluates every cheap kernel
(:mod:`.kernels`: naive, exponential smoothing at several rates, rolling
and exponentially weighted medians, mean reversion, seasonal profiles over
1/3/7 days, seasonal blends) from every origin of the recent history,
ranks them by mean absolute error over the horizon, then compares the
best kernel with the mean of the best two and three and the median of the
best five, and keeps whichever of these backtests best. The prediction
interval is conformal: the empirical quantiles of that choice's backtest
errors at each step ahead, so its width is learned from the series rather
than assumed Gaussian.

The work grows with the history points times the horizon steps (every
kernel holds a forecast of every step from every origin). When that
product exceeds ``max_cells`` (a fine step with a long horizon: a day
ahead at one-minute steps), the history is first averaged into buckets of
the fewest consecutive steps that bring it within the budget, the
selection runs on the bucket means and its forecast and interval are
spread back to the original step (a note says so); the interval is then
the one of bucket means. Histories and horizons within the budget are
selected at their own step.

Behaviour is changed through the constructor: ``backtest_s`` (how much
recent history is replayed), ``max_history_s``, ``max_cells`` and
``level``.
"""

import logging
import math

import numpy as np

from shadow_service.analysis.forecasters import base
from shadow_service.analysis.forecasters import kernels

LOG = logging.getLogger(__name__)

MIN_ORIGINS = 8
BIAS_CORRECTION = False
HALF_LIFE = 72
COMBINATIONS = (("best", 1, np.mean), ("mean_top2", 2, np.mean),
                ("mean_top3", 3, np.mean), ("mean_top5", 5, np.mean),
                ("median_top5", 5, np.median))
#: Most history points x horizon steps one selection evaluates.
MAX_CELLS = 250000


class AutoForecaster(base.Forecaster):
    """Backtest-selected kernel or combination with conformal intervals.

    Parameters
    ----------
    horizon_steps : int
        Horizon the selection is tuned for at fit time; a forecast for a
        different number of steps re-runs the selection.
    backtest_s : float
        History replayed for selection and intervals (3 days default).
    max_cells : int
        Most history points x horizon steps selected at the series' own
        step; beyond it the selection runs on bucket means (see the
        module docstring).
    """

    name = "auto"
    interval_method = ("conformal: per-step quantiles of the chosen "
                       "kernel or combination's rolling-origin backtest "
                       "errors")

    def __init__(self, *, horizon_steps=12, backtest_s=3 * 86400.0,
                 max_history_s=10 * 86400.0, max_cells=MAX_CELLS,
                 **kwargs):
        super().__init__(max_history_s=max_history_s, **kwargs)
        if int(max_cells) < 1:
            raise ValueError("max_cells must be at least 1")
        self.horizon_steps = int(horizon_steps)
        self.backtest_s = backtest_s
        self.max_cells = int(max_cells)

    def min_history(self, step_s):
        return self.horizon_steps + MIN_ORIGINS + 4

    def _fit(self, data, *, step_s, season, notes):
        backtest = max(int(self.backtest_s // step_s), MIN_ORIGINS)
        results = AutoResults(data, season=season, backtest=backtest,
                              max_cells=self.max_cells, notes=notes,
                              level=self.level, bounds=self.bounds)
        results.select(self.horizon_steps)
        return results


class AutoResults(base.FittedForecaster):
    """Selections per horizon, computed on demand and cached."""

    def __init__(self, data, *, season, backtest, max_cells=MAX_CELLS,
                 **kwargs):
        super().__init__(model="auto", **kwargs)
        self.data = data
        self.season = season
        self.backtest = backtest
        self.max_cells = max_cells
        self._selections = {}

    def select(self, steps):
        if steps not in self._selections:
            bucket = bucket_steps(self.data.size, steps, self.season,
                                  self.max_cells)
            if bucket == 1:
                selection = _select(self.data, steps, self.season,
                                    self.backtest, self.level)
            else:
                selection = _select_bucketed(self.data, steps, self.season,
                                             self.backtest, self.level,
                                             bucket)
            self._selections[steps] = selection
        selection = self._selections[steps]
        self.model = selection["model"]
        note = selection.get("note")
        if note and note not in self.notes:
            self.notes.append(note)
        return selection

    def _paths(self, steps):
        selection = self.select(steps)
        if selection.get("fallback"):
            self.notes.append(selection["fallback"])
            fallback = base.NaiveResults(self.data, season=None, notes=[],
                                         level=self.level, bounds=None)
            return fallback._paths(steps)
        mean = selection["forecast"]
        return (mean, mean + selection["lower"],
                mean + selection["upper"])


def bucket_steps(n, steps, season, max_cells):
    """Consecutive steps averaged into one point so that the selection's
    history points x horizon steps stay within ``max_cells`` (1: none).

    The fewest that fit, or a divisor of ``season`` up to twice that
    many, so the season stays a whole number of buckets.
    """
    if n * steps <= max_cells:
        return 1
    bucket = max(2, math.ceil(math.sqrt(n * steps / max_cells)))
    while math.ceil(n / bucket) * math.ceil(steps / bucket) > max_cells:
        bucket += 1
    if season and season > bucket:
        for candidate in range(bucket, min(2 * bucket, season) + 1):
            if season % candidate == 0:
                return candidate
    return bucket


def _select_bucketed(data, steps, season, backtest, level, bucket):
    """:func:`_select` on means of ``bucket`` consecutive steps (the
    newest bucket ends at the newest point), spread back to the step."""
    usable = data.size - data.size % bucket
    means = data[data.size - usable:].reshape(-1, bucket).mean(axis=1)
    coarse_season = (int(round(season / bucket))
                     if season and season > bucket else None)
    coarse_steps = math.ceil(steps / bucket)
    selection = _select(means, coarse_steps, coarse_season,
                        max(backtest // bucket, MIN_ORIGINS), level)
    note = ("history of %d points x %d steps ahead: selected on %d-step "
            "means (interval of bucket means)" % (data.size, steps, bucket))
    if selection.get("fallback"):
        return dict(selection, note=note)
    spread = {key: np.repeat(selection[key], bucket)[:steps]
              for key in ("forecast", "lower", "upper")}
    return dict(selection, note=note, bucket=bucket, **spread)


def _select(data, steps, season, backtest, level):
    """Choose a kernel or combination for ``steps`` ahead."""
    n = data.size
    last_origin = n - 1 - steps
    first_origin = max(last_origin - backtest + 1, 2)
    if last_origin - first_origin + 1 < MIN_ORIGINS:
        return {"model": "naive", "fallback": "too little history to "
                "backtest %d steps ahead: last-value naive" % steps}
    use_season = season if season and n > season + steps else None
    paths = kernels.all_kernels(data, steps, use_season,
                                 first=first_origin)
    rows = slice(first_origin, last_origin + 1)
    target_index = (np.arange(first_origin, last_origin + 1)[:, None]
                    + np.arange(1, steps + 1)[None, :])
    target = data[target_index]
    age = last_origin - np.arange(first_origin, last_origin + 1)
    recency = 0.5 ** (age / HALF_LIFE) if HALF_LIFE else np.ones(age.size)
    recency = recency / recency.sum()
    losses = {}
    for name, path in paths.items():
        window = path[rows]
        if np.isnan(window).any() or np.isnan(path[-1]).any():
            continue
        losses[name] = float(recency @ np.mean(np.abs(target - window),
                                               axis=1))
    ranked = sorted(losses, key=losses.get)
    best = None
    for label, size, reducer in COMBINATIONS:
        if len(ranked) < size:
            continue
        members = ranked[:size]
        window = reducer(np.stack([paths[m][rows] for m in members]),
                         axis=0)
        loss = float(recency @ np.mean(np.abs(target - window), axis=1))
        if best is None or loss < best[0] - 1e-12:
            best = (loss, label, members, reducer, window)
    loss, label, members, reducer, window = best
    forecast = reducer(np.stack([paths[m][-1] for m in members]), axis=0)
    per_step = _per_step_combination(paths, ranked, rows, target, recency)
    if per_step is not None and per_step[0] < loss - 1e-12:
        loss, window, forecast, members = per_step
        label = "per_step_top3"
    residuals = target - window
    if BIAS_CORRECTION:
        shift = np.median(residuals, axis=0)
        shifted = np.mean(np.abs(residuals - shift))
        if shifted < loss:
            forecast = forecast + shift
            residuals = residuals - shift
            loss = float(shifted)
    lower, upper = base.conformal_bounds(residuals, level)
    model = "auto:" + "+".join(members)
    return {"model": model, "forecast": forecast, "lower": lower,
            "upper": upper, "backtest_mae": loss, "combination": label,
            "members": members, "kernel_losses": losses}


def _per_step_combination(paths, ranked, rows, target, recency, size=3):
    """Mean of the best ``size`` kernels chosen separately per step."""
    if len(ranked) < size:
        return None
    stack = np.stack([paths[name][rows] for name in ranked])
    step_losses = np.einsum("o,kos->ks", recency,
                            np.abs(target[None] - stack))
    chosen = np.argsort(step_losses, axis=0)[:size]
    steps = np.arange(stack.shape[2])
    window = np.mean(stack[chosen, :, steps[None, :]], axis=0).T
    last = np.stack([paths[name][-1] for name in ranked])
    forecast = np.mean(last[chosen, steps[None, :]], axis=0)
    loss = float(recency @ np.mean(np.abs(target - window), axis=1))
    members = sorted({ranked[k] for k in chosen.ravel()})
    return loss, window, forecast, members
