"""Confidence of a ranking, from the uncertainty of every estimate.

Each host's metric estimates carry a standard deviation (sample count,
autocorrelation, drift, data age, contention-model disagreement; see
:mod:`.estimate`). The scale-up's uncertainty is left out: one factor
scales every host of a request, so it cannot reorder them. Drawing every
estimate from a normal distribution and rescoring the draws gives:

* per host: the probability that its order against each other host is
  right, averaged over the other hosts, where "right" also includes the
  two hosts truly being within ``tie_margin`` score points (choosing
  either is then not a mistake);
* overall: the probability that the top-ranked host is within
  ``tie_margin`` of the truly best one;
* per host: the probability of being a contender (within ``tie_margin``
  of the best), used to drop clearly worse hosts early.

These are probabilities, so they can be checked for calibration
(:mod:`.calibration`). Change ``draws`` for precision against speed.
"""

import collections
import dataclasses
import threading

import numpy as np
from scipy import special

from shadow_service.analysis import score
from shadow_service.workloads import catalogue


@dataclasses.dataclass
class RankingConfidence:
    per_host: np.ndarray
    overall: float
    contender: np.ndarray
    #: The drawn scores (hosts, draws) the figures came from.
    drawn: np.ndarray = None


def rank_confidence(metrics, weights, values, sds, point_scores, *,
                    tie_margin=2.0, draws=400, seed=0):
    """Monte Carlo confidence for hosts with (hosts, metrics) estimates."""
    hosts = values.shape[0]
    if hosts == 0:
        return RankingConfidence(np.array([]), 0.0, np.array([]))
    draws = bounded_draws(draws, hosts)
    drawn_scores = score.scores(metrics, weights,
                                draw(metrics, values, sds, draws, seed))
    best = np.max(drawn_scores, axis=0)
    contender = np.mean(drawn_scores >= best - tie_margin, axis=1)
    if hosts == 1:
        return RankingConfidence(np.ones(1), 1.0, np.ones(1), drawn_scores)
    top = int(np.argmax(point_scores))
    overall = float(contender[top])
    agreement = (_pairwise_agreement if hosts <= PAIRWISE_DRAWN_HOSTS
                 else _pairwise_agreement_normal)
    return RankingConfidence(
        agreement(drawn_scores, point_scores, tie_margin),
        overall, contender, drawn_scores)


def draw(metrics, values, sds, draws, seed, relative=False):
    """``draws`` Monte Carlo draws (a trailing axis) of (hosts, metrics)
    ``values`` with normal uncertainties ``sds`` (NaN: none), percentages
    kept within 0..100 and every other metric at least 0.

    ``relative``: every positive value that is not a percentage is drawn
    from the lognormal with its mean and sd instead (the same standard
    normal draws), the distribution of a relative drift: the value never
    falls to 0, where a latency's goodness (``1 / value``) has no bound
    and a wide estimate would make its host the best in every draw that
    clips it."""
    # values + sds x noise, computed in the noise's own array (a thousand
    # hosts draw about a million values).
    drawn = standard_normal(seed, values.shape + (draws,))
    if relative:
        return _relative(metrics, values, sds, drawn)
    drawn *= np.nan_to_num(sds)[:, :, None]
    drawn += values[:, :, None]
    for column, metric in enumerate(metrics):
        upper = 100.0 if metric in catalogue.PERCENT_METRICS else None
        np.clip(drawn[:, column], 0.0, upper, out=drawn[:, column])
    return drawn


#: Standard normal noise kept for reuse: per seed and trailing shape
#: (metrics, draws), the array of the most hosts drawn so far, at most
#: this many such arrays ...
NOISE_KEPT = 4
#: ... of at most this many values in all (32 MB; 1,000 hosts' noise of
#: 9 metrics is 900,000), the least recently used dropped first.
NOISE_KEPT_VALUES = 2 ** 22
_noise = collections.OrderedDict()
_noise_lock = threading.Lock()


def standard_normal(seed, shape):
    """``np.random.default_rng(seed).standard_normal(shape)``, a new array
    the caller may change.

    The generator fills an array in order, so the draw of fewer hosts
    (the first axis) is the first rows of the draw of more: a ranking of
    another candidate list, or the race's draws of the same hosts, takes
    the rows of the noise kept from a larger draw instead of drawing
    again (the same figures: a host's noise is still that of its row)."""
    if not isinstance(seed, (int, np.integer)) or not shape:
        return np.random.default_rng(seed).standard_normal(shape)
    hosts, key = shape[0], (int(seed), tuple(shape[1:]))
    with _noise_lock:
        kept = _noise.get(key)
        if kept is not None and kept.shape[0] >= hosts:
            _noise.move_to_end(key)
            return kept[:hosts].copy()
    drawn = np.random.default_rng(seed).standard_normal(shape)
    if 0 < drawn.size <= NOISE_KEPT_VALUES and NOISE_KEPT > 0:
        kept = drawn.copy()
        kept.setflags(write=False)
        with _noise_lock:
            other = _noise.get(key)
            if other is None or other.shape[0] < hosts:
                _noise[key] = kept
            _noise.move_to_end(key)
            while len(_noise) > NOISE_KEPT or sum(
                    a.size for a in _noise.values()) > NOISE_KEPT_VALUES:
                _noise.popitem(last=False)
    return drawn


def forget_noise():
    """Drop the kept noise (tests)."""
    with _noise_lock:
        _noise.clear()


def _relative(metrics, values, sds, noise):
    """:func:`draw` with ``relative`` from its standard normal ``noise``
    (hosts, metrics, draws), in place."""
    for column, metric in enumerate(metrics):
        value = values[:, column][:, None]
        sd = np.nan_to_num(sds[:, column])[:, None]
        normal = noise[:, column] * sd + value
        if metric in catalogue.PERCENT_METRICS:
            noise[:, column] = np.clip(normal, 0.0, 100.0)
            continue
        positive = value > 0
        with np.errstate(invalid='ignore', divide='ignore'):
            # The lognormal's sigma for a mean and sd: ln(1 + cv^2).
            sigma = np.sqrt(np.log1p(np.where(
                positive, (sd / np.where(positive, value, 1.0)) ** 2,
                0.0)))
            lognormal = value * np.exp(
                sigma * noise[:, column] - 0.5 * sigma ** 2)
        noise[:, column] = np.where(positive, lognormal,
                                    np.clip(normal, 0.0, None))
    return noise


#: Host-draws one confidence computes at most: beyond
#: ``DRAW_BUDGET / draws`` hosts the draws shrink in proportion (never
#: below ``MIN_DRAWS``), so a ranking of a thousand hosts costs what one
#: of a hundred does, at a wider Monte Carlo error (about 0.05 on a
#: probability at ``MIN_DRAWS``).
DRAW_BUDGET = 400 * 128
MIN_DRAWS = 100


def bounded_draws(draws, hosts):
    """The draws for ``hosts`` hosts (see ``DRAW_BUDGET``)."""
    return int(max(min(draws, MIN_DRAWS),
                   min(draws, DRAW_BUDGET // max(1, hosts))))


#: Up to this many hosts the pairwise agreement compares the draws of
#: every pair; above, each pair's drawn difference is taken as normal
#: (the comparison of every pair's draws grows with the square of the
#: hosts times the draws: seconds for a thousand hosts).
PAIRWISE_DRAWN_HOSTS = 128


#: A pair whose drawn mean difference beyond the tie margin is at least
#: this many standard deviations agrees with probability 1.0 exactly in
#: float64 (``ndtr(8.5)`` rounds to 1): it is counted, not computed.
FAR_SD = 8.5


def _pairwise_agreement_normal(drawn_scores, point_scores, tie_margin,
                               skip_far=True):
    """:func:`_pairwise_agreement` with each pair's drawn score
    difference taken as normal, from each host's drawn mean and variance
    (covariance between hosts left out).

    A pair's agreement is the same seen from either host (ahead: P(d >=
    -tie), behind: P(-d >= -tie) of the same ``d``), so each pair is
    computed once: hosts in point-score order, each against the hosts
    after it.  With ``skip_far``, pairs of hosts whose point scores
    differ and whose drawn means are at least ``FAR_SD`` standard
    deviations apart beyond the tie margin (agreement 1.0 exactly) are
    counted instead of computed: at 1,000 hosts most pairs are."""
    hosts = drawn_scores.shape[0]
    order = np.argsort(-np.asarray(point_scores, dtype=float),
                       kind='stable')
    point = np.asarray(point_scores, dtype=float)[order]
    mean = np.nanmean(drawn_scores, axis=1)[order]
    var = np.nanvar(drawn_scores, axis=1)[order]
    totals = np.zeros(hosts)
    block = max(1, _BLOCK_ELEMENTS // max(1, hosts))
    for first in range(0, hosts - 1, block):
        last = min(hosts - 1, first + block)
        # Rows first..last-1 against every later host (columns from
        # first + 1; a row's own and earlier columns are masked out).
        rows = slice(first, last)
        cols = np.arange(first + 1, hosts)
        if skip_far:
            # Far behind every row of the block (a bound over the
            # block's rows) and tied with none of them on point score.
            with np.errstate(invalid='ignore'):
                far = ((np.min(mean[rows]) - mean[cols] + tie_margin)
                       >= FAR_SD * np.sqrt(np.max(var[rows]) + var[cols]))
            far &= ~np.isin(point[cols], point[rows])
            far_cols = cols[far]
            if far_cols.size:
                # Each far pair (row before column) agrees: 1.0 to both.
                row_index = np.arange(first, last)
                totals[rows] += far_cols.size - np.searchsorted(
                    far_cols, row_index, side='right')
                totals[far_cols] += np.clip(far_cols - first, 0,
                                            last - first)
                cols = cols[~far]
            if not cols.size:
                continue
        # Ahead (point score at least the other's): d = row - column.
        difference = mean[rows, None] - mean[None, cols]
        spread = np.sqrt(var[rows, None] + var[None, cols])
        with np.errstate(divide='ignore', invalid='ignore'):
            rates = np.where(spread > 0,
                             special.ndtr((difference + tie_margin)
                                          / spread),
                             (difference >= -tie_margin).astype(float))
            tied = point[rows, None] == point[None, cols]
            if tied.any():
                # Both bounds: P(-tie <= d <= tie), for the tied pairs
                # only (element by element, the same figures).
                both, apart = difference[tied], spread[tied]
                within = np.where(
                    apart > 0,
                    special.ndtr((tie_margin - both) / apart)
                    - special.ndtr((-tie_margin - both) / apart),
                    (np.abs(both) <= tie_margin).astype(float))
                rates[tied] = np.clip(within, 0.0, 1.0)
        row_index = np.arange(first, last)[:, None]
        col_index = cols[None, :]
        rates = np.where(col_index > row_index, rates, 0.0)
        totals[rows] += rates.sum(axis=1)
        totals[cols] += rates.sum(axis=0)
    per_host = np.empty(hosts)
    per_host[order] = totals / max(1, hosts - 1)
    return per_host


# Elements of one block of the pairwise comparison (small enough to stay
# in the CPU caches: larger blocks measured slower).
_BLOCK_ELEMENTS = 2 ** 16


def _pairwise_agreement(drawn_scores, point_scores, tie_margin):
    """Per host: the share of draws in which its order against each other
    host agrees with the point scores (or the two are within
    ``tie_margin``), averaged over the other hosts.

    Agreeing is a bound on the drawn difference ``d`` of the two scores:
    ``d >= -tie_margin`` when the point scores put the host ahead,
    ``d <= tie_margin`` when behind, both when they tie.  Compared in
    blocks of hosts against all hosts at once: the figures of a loop over
    pairs, without a Python step per pair."""
    hosts, draws = drawn_scores.shape
    per_host = np.empty(hosts)
    block = max(1, _BLOCK_ELEMENTS // max(1, hosts * draws))
    for first in range(0, hosts, block):
        rows = slice(first, min(hosts, first + block))
        expected = np.sign(point_scores[rows, None] - point_scores[None, :])
        lower = np.where(expected >= 0, -tie_margin, -np.inf)[:, :, None]
        upper = np.where(expected <= 0, tie_margin, np.inf)[:, :, None]
        difference = drawn_scores[rows, None, :] - drawn_scores[None, :, :]
        agrees = (difference >= lower) & (difference <= upper)
        rates = agrees.mean(axis=2)
        # A host always agrees with itself (rate 1): leave it out.
        per_host[rows] = (rates.sum(axis=1) - 1.0) / (hosts - 1)
    return per_host
