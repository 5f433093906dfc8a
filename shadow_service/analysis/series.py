"""Turn raw samples into a clean, regular series a model can fit.

Real traces and live measurements have duplicates, gaps, NaN, infinities
and values outside their physical range. :func:`regularise` puts
timestamped samples on a regular grid (duplicates averaged, empty slots
NaN); :func:`clean` then clips to bounds and fills holes: short gaps by
linear interpolation, long gaps by copying the value one season earlier
when that exists. A value beyond ``MAX_MAGNITUDE`` (no measurement is that
large; its square would overflow a float) counts as missing too. Every
repair is counted in ``notes`` so callers can say what was done. Change the
thresholds through the keyword arguments.
"""

import dataclasses
import logging

import numpy as np

LOG = logging.getLogger(__name__)

#: Largest magnitude a value may have: beyond it a value is missing.  The
#: square of a value this large, and of a hundred such summed, is still
#: a float, so estimates and models of the values cannot overflow.
MAX_MAGNITUDE = 1e100


@dataclasses.dataclass
class CleanSeries:
    """A regular series ready for fitting and what was repaired."""

    values: np.ndarray
    notes: list
    filled: int = 0
    clipped: int = 0

    @property
    def is_constant(self):
        return self.values.size > 0 and np.ptp(self.values) == 0


def regularise(timestamps, values, *, step_s):
    """Place timestamped samples on a regular grid.

    Parameters
    ----------
    timestamps : array-like of float
        Unix seconds, in any order, duplicates allowed.
    values : array-like of float
        One value per timestamp; NaN allowed.
    step_s : float
        Grid step in seconds.

    Returns
    -------
    tuple of (numpy.ndarray, numpy.ndarray, dict)
        Grid start times, the values (mean of the samples in each slot,
        NaN where empty) and counts of ``duplicates`` and ``empty_slots``.
    """
    times = np.asarray(timestamps, dtype=float)
    data = np.asarray(values, dtype=float)
    keep = np.isfinite(times)
    times, data = times[keep], data[keep]
    if times.size == 0:
        return np.array([]), np.array([]), {"duplicates": 0,
                                            "empty_slots": 0}
    start = times.min()
    slot = np.rint((times - start) / step_s).astype(np.int64)
    n_slots = int(slot.max()) + 1
    finite = np.isfinite(data)
    sums = np.bincount(slot[finite], weights=data[finite],
                       minlength=n_slots)
    counts = np.bincount(slot[finite], minlength=n_slots)
    grid = np.full(n_slots, np.nan)
    occupied = counts > 0
    grid[occupied] = sums[occupied] / counts[occupied]
    stats = {"duplicates": int(np.sum(np.bincount(slot) > 1)),
             "empty_slots": int(np.sum(~occupied))}
    return start + np.arange(n_slots) * step_s, grid, stats


def clean(values, *, bounds=None, season=None, max_interp_steps=6,
          max_magnitude=MAX_MAGNITUDE):
    """Clip, fill and trim a regular series.

    Parameters
    ----------
    values : array-like
        Regular samples; ``None``, NaN and infinities count as missing.
    bounds : tuple of (float or None, float or None), optional
        Physical range; values outside it are clipped.
    season : int, optional
        Season length in steps, used to fill long gaps.
    max_interp_steps : int
        Longest gap filled by linear interpolation when a seasonal copy
        is available.
    max_magnitude : float
        Values larger than this in magnitude count as missing.

    Returns
    -------
    CleanSeries
        Leading and trailing missing values are dropped, not invented.
    """
    data = (values.astype(float, copy=True)
            if isinstance(values, np.ndarray) and values.dtype.kind in "fiu"
            else np.array([_as_float(v) for v in values], dtype=float))
    data[~np.isfinite(data)] = np.nan
    notes = []
    with np.errstate(invalid="ignore"):
        huge = np.abs(data) > max_magnitude
    if huge.any():
        data[huge] = np.nan
        notes.append("left out %d values beyond %g in magnitude"
                     % (int(np.sum(huge)), max_magnitude))
    clipped = 0
    if bounds is not None:
        low, high = bounds
        low = -np.inf if low is None else low
        high = np.inf if high is None else high
        outside = (data < low) | (data > high)
        clipped = int(np.sum(outside))
        if clipped:
            data = np.clip(data, low, high)
            notes.append("clipped %d values to [%s, %s]"
                         % (clipped, bounds[0], bounds[1]))
    valid = np.flatnonzero(np.isfinite(data))
    if valid.size == 0:
        if data.size:
            notes.append("no finite values")
        return CleanSeries(np.array([]), notes, 0, clipped)
    if valid[0] > 0 or valid[-1] < data.size - 1:
        notes.append("trimmed %d missing values at the ends"
                     % (valid[0] + data.size - 1 - valid[-1]))
    data = data[valid[0]:valid[-1] + 1]
    missing = ~np.isfinite(data)
    filled = int(np.sum(missing))
    if filled:
        data = _fill_gaps(data, season, max_interp_steps)
        notes.append("filled %d missing values" % filled)
    return CleanSeries(data, notes, filled, clipped)


def _as_float(value):
    """A float, or NaN for None and anything that is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def _fill_gaps(data, season, max_interp_steps):
    """Fill NaN runs: seasonal copy for long runs, else interpolation."""
    missing = ~np.isfinite(data)
    index = np.arange(data.size)
    interpolated = np.interp(index, index[~missing], data[~missing])
    result = np.where(missing, interpolated, data)
    if not season:
        return result
    for start, stop in _runs(missing):
        if stop - start <= max_interp_steps:
            continue
        for position in range(start, stop):
            source = position - season
            while source >= 0 and missing[source] and source >= start:
                source -= season
            if source >= 0:
                result[position] = result[source]
    return result


def _runs(mask):
    """Yield (start, stop) of each run of True in a boolean array."""
    padded = np.concatenate(([False], mask, [False])).astype(int)
    edges = np.flatnonzero(np.diff(padded))
    return zip(edges[::2], edges[1::2])


def season_steps(step_s, season_s=86400.0):
    """Number of steps in one season (a day by default), at least 1."""
    return max(int(round(season_s / float(step_s))), 1)
