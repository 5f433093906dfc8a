"""Cheap forecasting kernels evaluated from every origin at once.

Each kernel returns an ``(n, horizon)`` array whose row ``t`` is the
forecast of ``y[t+1 .. t+horizon]`` made with ``y[:t+1]`` only, so a
rolling-origin backtest over thousands of origins costs one vectorised
pass instead of thousands of fits. NaN marks origins a kernel cannot serve
(e.g. a seasonal kernel before one season of history). The selector in
:mod:`.selector` chooses and combines these per series.

To add a kernel, add a function here and a line to :func:`all_kernels`.
"""

import numpy as np
import pandas as pd
from numpy.lib import stride_tricks
from scipy import signal

SES_ALPHAS = (0.05, 0.1, 0.2, 0.35, 0.6)
MEDIAN_WINDOWS = (3, 6, 12, 36, 72)
MEAN_WINDOWS = (12, 36)
REVERSION_PHIS = (0.85, 0.95)
SEASON_DEPTHS = (1, 3, 7)
WMEDIAN_HALF_LIVES = (3, 6, 12, 24, 48)
WMEDIAN_SPAN = 4


def ses_levels(y, alpha):
    """Simple exponential smoothing level after each observation."""
    levels, _ = signal.lfilter([alpha], [1.0, alpha - 1.0], y,
                               zi=[(1.0 - alpha) * y[0]])
    return levels


def weighted_medians(y, half_life, *, first=0, span=None):
    """Exponentially weighted median of ``y[:t+1]`` for each ``t``.

    A robust level: the weight of ``y[t-j]`` is ``0.5 ** (j /
    half_life)`` and only the last ``span`` points (``WMEDIAN_SPAN``
    half-lives by default) count, so one spike cannot move it the way it
    moves an exponentially smoothed mean. Rows before ``first`` are NaN
    (not computed; the selector only replays recent origins).
    """
    y = np.asarray(y, dtype=float)
    n = y.size
    result = np.full(n, np.nan)
    first = min(max(int(first), 0), n)
    if first >= n:
        return result
    span = int(span or WMEDIAN_SPAN * half_life)
    span = max(min(span, n), 1)
    padded = np.concatenate((np.full(span - 1, np.nan), y))
    windows = stride_tricks.sliding_window_view(padded, span)[first:]
    weights = np.broadcast_to(0.5 ** (np.arange(span)[::-1] / half_life),
                              windows.shape)
    missing = np.isnan(windows)
    weights = np.where(missing, 0.0, weights)
    order = np.argsort(np.where(missing, np.inf, windows), axis=1,
                       kind="stable")
    ordered = np.take_along_axis(windows, order, axis=1)
    cumulative = np.cumsum(np.take_along_axis(weights, order, axis=1),
                           axis=1)
    position = np.argmax(cumulative >= cumulative[:, -1:] / 2, axis=1)
    result[first:] = ordered[np.arange(ordered.shape[0]), position]
    return result


def _flat(level, horizon):
    return np.repeat(level[:, None], horizon, axis=1)


def _mean_of_lags(values, target, season, depth):
    """Mean of ``values[target - j*season]`` for j = 1..depth, for every
    index in the array ``target`` (NaN where none is in range)."""
    total = np.zeros(target.shape)
    count = np.zeros(target.shape)
    for j in range(1, depth + 1):
        source = target - j * season
        ok = source >= 0
        total[ok] += values[source[ok]]
        count[ok] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def seasonal_profile(y, horizon, season, depth):
    """Mean of the ``depth`` values at each target step's phase of the
    season that are known at its origin: 1..depth seasons before it for
    the steps within one season of the origin, 2..depth+1 for those
    within two, and so on (a horizon longer than the season reads no
    value after its origin)."""
    steps = np.arange(1, horizon + 1)
    # Seasons back to the newest value at the step's phase known at the
    # origin, less one: 0 for steps 1..season.
    skipped = (steps - 1) // season
    target = (np.arange(y.size)[:, None]
              + (steps - skipped * season)[None, :])
    return _mean_of_lags(y, target, season, depth)


def all_kernels(y, horizon, season, first=0):
    """Every kernel's forecasts from every origin.

    Parameters
    ----------
    y : numpy.ndarray
        Clean, regular series.
    horizon : int
        Steps ahead.
    season : int or None
        Season length in steps; seasonal kernels need it.
    first : int
        Earliest origin the caller needs; the costlier kernels (weighted
        medians) leave earlier rows NaN.

    Returns
    -------
    dict
        ``{kernel name: (n, horizon) array}``.
    """
    n = y.size
    history = pd.Series(y)
    kernels = {"naive": _flat(y, horizon)}
    levels = {}
    for alpha in SES_ALPHAS:
        levels[alpha] = ses_levels(y, alpha)
        kernels["ses_%g" % alpha] = _flat(levels[alpha], horizon)
    for window in MEDIAN_WINDOWS:
        rolling = history.rolling(window, min_periods=1).median()
        kernels["median_%d" % window] = _flat(rolling.to_numpy(), horizon)
    for window in MEAN_WINDOWS:
        rolling = history.rolling(window, min_periods=1).mean()
        kernels["mean_%d" % window] = _flat(rolling.to_numpy(), horizon)
    for half_life in WMEDIAN_HALF_LIVES:
        kernels["wmedian_%d" % half_life] = _flat(
            weighted_medians(y, half_life, first=first), horizon)
    long_window = season if season and season > 1 else max(n // 4, 1)
    long_mean = history.rolling(long_window, min_periods=1).mean()
    long_mean = long_mean.to_numpy()
    kernels["mean_long"] = _flat(long_mean, horizon)
    long_median = history.rolling(long_window, min_periods=1).median()
    kernels["median_long"] = _flat(long_median.to_numpy(), horizon)
    steps = np.arange(1, horizon + 1)[None, :]
    recent = levels[0.35][:, None]
    for phi in REVERSION_PHIS:
        kernels["revert_%g" % phi] = (long_mean[:, None]
                                      + phi ** steps
                                      * (recent - long_mean[:, None]))
    if season and season > 1 and n > season:
        smooth = levels[0.2]
        for depth in SEASON_DEPTHS:
            profile = seasonal_profile(y, horizon, season, depth)
            kernels["seasonal_%dd" % depth] = profile
            kernels["blend_seasonal_%dd" % depth] = (
                0.5 * profile + 0.5 * smooth[:, None])
            past_level = _lagged_mean(smooth, season, depth)
            kernels["shifted_seasonal_%dd" % depth] = (
                profile + (smooth - past_level)[:, None])
    return kernels


def _lagged_mean(values, season, depth):
    """Mean of ``values[t - j*season]`` for j = 1..depth (NaN if none)."""
    return _mean_of_lags(values, np.arange(values.size), season, depth)
