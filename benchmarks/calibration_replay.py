#!/usr/bin/env python3
"""Replay the confidence calibration's online learning on stored rows.

The placement benchmark's ``--rows`` file holds, per request in arrival
order, ``confidence: [stated, top host right, raw, share]`` (``share``:
the candidates' allocated RAM share, in rows written since the map is
read at it; older rows lack it, and the replay stands in the cluster's:
its RAM allocated at the start plus what the arm placed and still runs,
over its RAM).  The calibration
learner only knows a ranking's outcome once the VM's first day (or its
life, when shorter) is over, and refits at most hourly on the twin's
clock.  This script replays that: at each request, a map fitted only on
the outcomes known by then (``placed at + min(day, lifetime)`` at or
before the request's arrival), refitted at most every
``REFIT_S`` seconds and ``REFIT_REQUESTS`` requests, applied to the
request's raw confidence.  The arrival times and lifetimes come from the
benchmark's own ``make_requests`` (same seed, count and mode).  Every
method is scored on the same replay: the ECE (the benchmark's bins), the
Brier score and the log loss (proper scores: a method that only squeezes
every confidence toward the mean accuracy lowers the binned ECE but not
these).

Besides the binned map (``bins``) and the logistic map (``logistic``,
the service's default), the table replays variants: other bins, priors
and tails, the logistic map with other ``min_pairs`` and ``prior_pairs``
(``--only`` picks methods by name), the logistic map with each outcome
weighted against the selection of the outcomes known first (by the
share of the day its window covers, by one over the Kaplan-Meier share
of rankings as old whose outcome is known, only outcomes of rankings a
day old, by recency) or with a term in the judged window's length,
Platt and beta calibration, and
the bundled prior map worth other counts of outcomes, fitted on a
shorter lookback (``lookback``, seconds of rankings), refitted at
another cadence (``refit``), with outcomes weighted by recency, or with
a new ranking's raw figure read by its rank among the last N rankings'
(``rank``: mapped at the same quantile of the raw figures the map was
fitted on, so a drift of the raw figure's level alone does not move the
stated one),
maps per group of rankings (by the answer's source, ``history`` or
``shadows``, by profile, or both: a binned map per group shrunk toward
the map of every outcome, a shift of it in log-odds per group, or a
logistic map with a term per group).  ``--breakdown`` first prints each
run's own stated and raw confidence against the share right by half of
the run, source and profile, and of the first 5, 10 and 20 outcomes the
learner knows (those of the shortest-lived early VMs) and the rankings
made before 20 are known, both also by the window each outcome is
judged over; with several runs, also all of them pooled.

Usage::

    python benchmarks/calibration_replay.py \\
        ROWS.arrivals.json:arrivals:SEED:REQUESTS [...] [--json OUT] \\
        [--breakdown] [--only TEXT ...]

The replay of the method in use reproduced the runs' own stated ECE to
within about 0.01 in ``arrivals`` and 0.015 in ``fill`` (the learner's
refits are counted in uses, not requests); on the rows of the ranking
with answers from history for candidates without history, less closely
(the binned map: 0.072 / 0.102 replayed against the runs' 0.080 / 0.084,
``calibration_replay-logistic-before-arrivals.txt``).
"""

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from shadow_service.analysis import calibration as cal  # noqa: E402
from shadow_service.learners import calibration as learning  # noqa: E402

WINDOW_S = 86400.0
REFIT_S = 3600.0
REFIT_REQUESTS = 7
MIN_PAIRS = 20


class _Drawn(Exception):
    pass


def request_times(mode, seed, count):
    """``([(arrival offset s, lifetime s or None)], cluster)`` of the
    benchmark's requests (its twin is built to size the arrival rate);
    ``cluster``: ``(RAM MB allocated at the start, RAM MB)``."""
    import placement_quality as pq
    drawn = {}
    original, original_free = pq.make_requests, pq.free_ram_mb

    def free(driver, hosts):
        drawn['total'] = float(sum(driver.nova_view(h)['memory_mb']
                                   for h in hosts))
        return original_free(driver, hosts)

    def grab(count, seed, start, mode='independent', free_ram_mb=None):
        requests = original(count, seed, start, mode=mode,
                            free_ram_mb=free_ram_mb)
        drawn['times'] = [(r['arrival'] - start, r.get('lifetime_s'))
                          for r in requests]
        drawn['used'] = drawn['total'] - free_ram_mb
        raise _Drawn()

    pq.make_requests, pq.free_ram_mb = grab, free
    try:
        pq.main(['--mode', mode, '--seed', str(seed), '--requests',
                 str(count), '--policies', 'nova', '--out', os.devnull])
    except _Drawn:
        pass
    finally:
        pq.make_requests, pq.free_ram_mb = original, original_free
    return drawn['times'], (drawn['used'], drawn['total'])


def cluster_shares(rows, times, cluster):
    """``{request: allocated RAM share of the cluster}`` when each was
    ranked: the start's allocation plus the arm's VMs still running."""
    import placement_quality as pq
    ram = {f['name']: f['ram_mb'] for f in pq.FLAVORS}
    used, total = cluster
    running, shares = [], {}
    for row in rows:
        arrival, lifetime = times[row['request']]
        running = [(end, mb) for end, mb in running if end > arrival]
        shares[row['request']] = (used + sum(mb for _e, mb in running)) \
            / total
        running.append((arrival + lifetime if lifetime else np.inf,
                         ram[row['flavor']]))
    return shares


def _logit(p):
    p = np.clip(p, 1e-3, 1 - 1e-3)
    return np.log(p / (1 - p))


def _platt(x, y, prior, beta=False):
    """Logistic map on logit(raw) (or beta calibration's log(c),
    -log(1-c)), with a Gaussian prior of ``prior`` pseudo-pairs toward
    the identity."""
    def feats(c):
        c = np.clip(np.asarray(c, float), 1e-3, 1 - 1e-3)
        if beta:
            return np.stack([np.ones_like(c), np.log(c), -np.log(1 - c)], 1)
        return np.stack([np.ones_like(c), _logit(c)], 1)
    center = np.array([0.0, 1.0, 1.0] if beta else [0.0, 1.0])
    theta = cal.fit_logistic(feats(x), np.asarray(y, float), center,
                             max(prior * 0.25, 1e-3))
    return lambda c: float(1 / (1 + np.exp(-(feats([c]) @ theta)[0])))


def row_source(row):
    """``history`` or ``shadows``: the answer's source, from the row (or,
    in rows written before it was kept, from whether shadows ran)."""
    ranking = row.get('ranking') or {}
    if ranking.get('source'):
        return ranking['source']
    seconds = (row.get('shadow_host_seconds') or {})
    return 'history' if not seconds.get('shadow_only',
                                        seconds.get('shadow')) else 'shadows'


GROUPS = {'source': row_source, 'profile': lambda row: row['profile'],
          'source and profile': lambda row: (row_source(row),
                                             row['profile'])}


def _grouped(group_min=20, base_identity=False, **kw):
    """A map per group leaning on the map of every outcome: each group's
    bins are shrunk by ``prior_pairs`` toward the pooled map instead of
    the identity (toward the identity with ``base_identity``: separate
    maps); a group with fewer than ``group_min`` outcomes states the
    pooled map."""
    def fit(x, y, s, g):
        pooled = cal.CalibrationMap(**kw).fit(x, y, s)
        maps = {}
        for key in set(g):
            inside = [i for i, k in enumerate(g) if k == key]
            if len(inside) >= group_min:
                maps[key] = cal.CalibrationMap(
                    **dict(kw, min_pairs=group_min)).fit(
                        [x[i] for i in inside], [y[i] for i in inside],
                        [s[i] for i in inside],
                        base=None if base_identity else pooled)
        return lambda c, share, key: (maps.get(key) or pooled)(c, share)
    return fit


def _shifted(prior=5.0, group_min=10, **kw):
    """The pooled map, shifted per group in log-odds by the group's own
    departure from it (one figure per group, shrunk toward no shift by a
    Gaussian prior worth ``prior`` pseudo-outcomes)."""
    def fit(x, y, s, g):
        pooled = cal.CalibrationMap(**kw).fit(x, y, s)
        shifts = {}
        for key in set(g):
            inside = [i for i, k in enumerate(g) if k == key]
            if len(inside) < group_min:
                continue
            base = _logit(np.array([pooled(x[i], s[i]) for i in inside]))
            outcome = np.array([y[i] for i in inside], float)
            shift, ridge = 0.0, prior * 0.25
            for _ in range(30):
                p = 1 / (1 + np.exp(-(base + shift)))
                step = (np.sum(p - outcome) + ridge * shift) / (
                    np.sum(p * (1 - p)) + ridge)
                shift -= step
                if abs(step) < 1e-9:
                    break
            shifts[key] = shift
        def mapping(c, share, key):
            value = pooled(c, share)
            if key not in shifts:
                return value
            return float(1 / (1 + np.exp(-(_logit(value) + shifts[key]))))
        return mapping
    return fit


def _platt_by(prior=5.0, slope=False):
    """Platt scaling with a log-odds term per group beyond the first
    (``slope``: and a slope term per group), all with a Gaussian prior of
    ``prior`` pseudo-pairs toward the identity."""
    def fit(x, y, _s, g):
        keys = sorted(set(g), key=str)[1:]

        def feats(c, groups):
            c = np.clip(np.asarray(c, float), 1e-3, 1 - 1e-3)
            z = _logit(c)
            columns = [np.ones_like(c), z]
            for key in keys:
                inside = np.array([k == key for k in groups], float)
                columns.append(inside)
                if slope:
                    columns.append(inside * z)
            return np.stack(columns, 1)
        features = feats(x, g)
        center = np.zeros(features.shape[1])
        center[1] = 1.0
        theta = cal.fit_logistic(features, np.asarray(y, float), center,
                                 max(prior * 0.25, 1e-3))
        return lambda c, _share, key: float(
            1 / (1 + np.exp(-(feats([c], [key]) @ theta)[0])))
    return fit


class _WeightedLogistic(cal.LogisticCalibrationMap):
    """The logistic map with a weight per outcome (``min_weight``: the
    summed weight it waits for besides ``min_pairs`` outcomes)."""

    def __init__(self, min_weight=0.0, **kw):
        # Not held until a fit finds too little weight.
        self.held = False
        super().__init__(**kw)
        self.min_weight = float(min_weight)

    @property
    def fitted(self):
        return super().fitted and not self.held

    def fit(self, confidences, outcomes, shares=None, weights=None):
        cal.CalibrationMap.fit(self, confidences, outcomes, shares)
        self.coefficients = self._center()
        weights = np.asarray(weights, float)
        self.held = float(np.sum(weights)) < self.min_weight
        if not self.fitted:
            return self
        features = np.stack([np.ones(len(confidences)),
                             self._logit(confidences)], 1)
        outcomes = np.clip(np.asarray(outcomes, float), 0, 1)
        ridge = self._ridge()
        center = np.array(self._center())
        theta = cal.fit_logistic(features, outcomes, center,
                                 ridge, weights=weights)
        if theta[1] < 0:
            theta = np.array([cal.fit_logistic(
                features[:, :1], outcomes, center[:1], ridge,
                weights=weights)[0], 0.0])
        if np.all(np.isfinite(theta)):
            self.coefficients = (float(theta[0]), float(theta[1]))
        return self


def _known_share(windows, ages):
    """Kaplan-Meier ``G(a)``: the share of rankings whose outcome is known
    within ``a`` seconds, from the judged windows of the outcomes known
    (``windows``, None where not yet known) and every ranking's age."""
    events = sorted(w for w in windows if w is not None)
    at_risk_of = np.array([w if w is not None else a
                           for w, a in zip(windows, ages)])

    def share(age):
        survive = 1.0
        for w in sorted(set(events)):
            if w > age:
                break
            risk = np.sum(at_risk_of >= w)
            if risk:
                survive *= 1 - events.count(w) / risk
        return 1 - survive
    return share


def weights_for(scheme, windows, ages, cap=10.0):
    """Weight of each known outcome (``windows``: its judged window, None
    for a ranking whose outcome is not known yet; ``ages``: every
    ranking's age) under ``scheme``: ``window`` (its share of the day),
    ``ipw`` (one over the Kaplan-Meier share of rankings as old known by
    now, at most ``cap``; 1 from a day old), ``cohort`` (1 for rankings a
    day old, else 0), ``recency H`` (halved every ``H`` seconds of the
    ranking's age) or ``window and ipw`` (``(window, ipw weight)``
    pairs, for :class:`_WindowKeyed`)."""
    known = [i for i, w in enumerate(windows) if w is not None]
    if scheme == 'window':
        return [min(windows[i] / WINDOW_S, 1.0) for i in known]
    if scheme == 'cohort':
        return [1.0 if ages[i] >= WINDOW_S else 0.0 for i in known]
    if scheme.startswith('recency '):
        half_life = float(scheme.split()[1])
        return [0.5 ** (ages[i] / half_life) for i in known]
    if scheme == 'window and ipw':
        return list(zip([windows[i] for i in known],
                        weights_for('ipw', windows, ages, cap)))
    if scheme == 'ipw':
        share = _known_share(windows, ages)
        return [1.0 if ages[i] >= WINDOW_S
                else min(1.0 / max(share(ages[i]), 1e-9), cap)
                for i in known]
    raise ValueError(scheme)


class _WindowKeyed(cal.LogisticCalibrationMap):
    """The logistic map with a term in the judged window's log share of
    the day, ``a + b * logit(raw) + c * log(window / day)`` (``c``'s
    prior at 0, like ``a``'s), read for a new ranking, whose window is
    not known yet, as the mean over the windows of the outcomes known,
    each weighted by one over the Kaplan-Meier share of rankings as old
    known by then (the windows a new ranking's outcome will be judged
    over)."""

    def fit(self, confidences, outcomes, shares=None, extra=None):
        cal.CalibrationMap.fit(self, confidences, outcomes, shares)
        self.coefficients = (0.0, 1.0)
        self.theta = None
        if not self.fitted:
            return self
        windows = np.array([w for w, _weight in extra], float)
        terms = np.log(np.clip(windows / WINDOW_S, 1e-3, 1.0))
        features = np.stack([np.ones(len(confidences)),
                             self._logit(confidences), terms], 1)
        theta = cal.fit_logistic(
            features, np.clip(np.asarray(outcomes, float), 0, 1),
            np.array([0.0, 1.0, 0.0]), max(self.prior_pairs * 0.25, 1e-3))
        if theta[1] < 0 or not np.all(np.isfinite(theta)):
            return self
        weights = np.array([weight for _w, weight in extra], float)
        self.theta = theta
        self.terms, self.term_weights = terms, weights / np.sum(weights)
        return self

    def __call__(self, confidence, share=None):
        if self.theta is None or not self.covers(share):
            return min(max(float(confidence), 0.0), 1.0)
        a, b, c = self.theta
        z = a + b * float(self._logit(confidence)) + c * self.terms
        return float(np.sum(self.term_weights / (1 + np.exp(-z))))


def methods():
    """``{name: (fit(confidences, outcomes, shares) -> map(raw, share),
    replay options)}``."""
    def binned(**kw):
        return lambda x, y, _s: cal.CalibrationMap(**kw).fit(x, y)
    # The binned maps by name: the learner's default is the logistic map.

    def at_shares(**kw):
        return lambda x, y, s: cal.CalibrationMap(**kw).fit(x, y, s)
    found = {'raw (no map)': (None, {}),
             'identity tails, any share': (binned(tails='identity'), {}),
             'flat tails, any share (before)': (binned(), {}),
             'flat tails, covered shares (bins)': (at_shares(), {}),
             'logistic, covered shares, no prior map': (
                 lambda x, y, s: cal.LogisticCalibrationMap().fit(x, y, s),
                 {})}
    for margin in (0.0, 0.01, 0.05):
        found['covered shares, margin %g' % margin] = (
            at_shares(share_margin=margin), {})
    for prior in (0, 2, 10, 20):
        found['flat tails, prior_pairs %g' % prior] = (
            binned(prior_pairs=prior), {})
    found['flat tails, bins 5'] = (binned(bins=5), {})
    found['flat tails, min_pairs 10'] = (binned(min_pairs=10),
                                         {'min_pairs': 10})
    found['flat tails, newest 40 outcomes'] = (binned(), {'recent': 40})
    for prior in (2, 5):
        found['Platt on logit(raw), prior %g' % prior] = (
            lambda x, y, _s, p=prior: _platt(x, y, p), {})
    found['beta calibration, prior 5'] = (
        lambda x, y, _s: _platt(x, y, 5, beta=True), {})
    for name in GROUPS:
        for group_min in (10, 20):
            found['by %s, group_min %d' % (name, group_min)] = (
                _grouped(group_min), {'group': name})
        found['by %s, shift' % name] = (_shifted(), {'group': name})
        found['Platt by %s, prior 5' % name] = (_platt_by(), {'group': name})
        found['Platt by %s, slopes, prior 5' % name] = (
            _platt_by(slope=True), {'group': name})
        found['by %s, prior toward identity' % name] = (
            _grouped(20, base_identity=True), {'group': name})
    for min_pairs in (5, 10, 20):
        for prior in (2, 5, 10):
            found['logistic, min_pairs %d, prior_pairs %g' % (
                min_pairs, prior)] = (
                    lambda x, y, s, m=min_pairs, p=prior:
                    cal.LogisticCalibrationMap(
                        min_pairs=m, prior_pairs=p).fit(x, y, s),
                    {'min_pairs': min_pairs})
    # The selection of the outcomes known first (short-lived VMs'):
    # weighted by the share of the day each covers, by one over the share
    # of rankings as old whose outcome is known (Kaplan-Meier), held back
    # until a day old, or keyed on the window with a term of its own.
    for label, scheme, min_weight, min_pairs in (
            ('window share', 'window', 0, 20),
            ('window share, weight 20', 'window', 20, 20),
            ('window share, min_pairs 10', 'window', 0, 10),
            ('window share, weight 5', 'window', 5, 5),
            ('1 / share known', 'ipw', 0, 20),
            ('1 / share known, min_pairs 10', 'ipw', 0, 10),
            ('1 / share known, min_pairs 5', 'ipw', 0, 5),
            ('a day old only, weight 20', 'cohort', 20, 20),
            ('recency, half-life 24 h', 'recency 86400', 0, 20),
            ('recency, half-life 48 h', 'recency 172800', 0, 20)):
        found['logistic, weights: %s' % label] = (
            lambda x, y, s, w, m=min_weight, n=min_pairs: _WeightedLogistic(
                min_weight=m, min_pairs=n).fit(x, y, s, w),
            {'weights': scheme, 'min_pairs': min_pairs})
    for min_pairs in (10, 20):
        found['logistic, window term, min_pairs %d' % min_pairs] = (
            lambda x, y, s, w, m=min_pairs: _WindowKeyed(
                min_pairs=m).fit(x, y, s, w),
            {'weights': 'window and ipw', 'min_pairs': min_pairs})
    # The prior map shipped with the service (fitted on other seeds than
    # the measured ones: see calibration_prior.py), stated before any
    # outcome is known.
    bundled = learning.load_prior_map('bundled')
    found['logistic, bundled prior map (default)'] = (
        lambda x, y, s: cal.LogisticCalibrationMap(
            prior=bundled).fit(x, y, s), {'min_pairs': 0})
    # The bundled prior map with other weights of the prior, a shorter
    # lookback (seconds of rankings fitted on) or outcomes weighted by
    # recency (halved every H seconds of the ranking's age): does the
    # map keep up with a confidence that drifts over the run?
    for pairs in (10, 40):
        found['logistic, bundled prior map, worth %d' % pairs] = (
            lambda x, y, s, p=pairs: cal.LogisticCalibrationMap(
                prior=bundled, prior_map_pairs=p).fit(x, y, s),
            {'min_pairs': 0})
    for days in (1, 2, 3):
        found['logistic, bundled prior map, lookback %d d' % days] = (
            lambda x, y, s: cal.LogisticCalibrationMap(
                prior=bundled).fit(x, y, s),
            {'min_pairs': 0, 'lookback': days * 86400.0})
    for hours in (12, 24, 48):
        found['logistic, bundled prior map, recency %d h' % hours] = (
            lambda x, y, s, w: _WeightedLogistic(
                prior=bundled, min_pairs=0).fit(x, y, s, w),
            {'min_pairs': 0, 'weights': 'recency %d' % (hours * 3600)})
    for margin in (0.0, 0.05, 0.1):
        found['logistic, bundled prior map, share_margin %g' % margin] = (
            lambda x, y, s, m=margin: cal.LogisticCalibrationMap(
                prior=bundled, share_margin=m).fit(x, y, s),
            {'min_pairs': 0})
    for refit_s, refit_n in ((1800, 3), (3600, 20), (7200, 7)):
        found['logistic, bundled prior map, refit %d s, %d requests' % (
            refit_s, refit_n)] = (
            lambda x, y, s: cal.LogisticCalibrationMap(
                prior=bundled).fit(x, y, s),
            {'min_pairs': 0, 'refit': (refit_s, refit_n)})
    # The raw confidence read by its rank: a new ranking's raw figure
    # stands at its quantile among the last N rankings' raw figures, and
    # is mapped at the same quantile of the raw figures of the outcomes
    # the map was fitted on (a drift of the raw figure's level alone does
    # not move the stated one).
    for count in (30, 60):
        found['logistic, bundled prior map, rank among last %d' % count] = (
            lambda x, y, s: cal.LogisticCalibrationMap(
                prior=bundled).fit(x, y, s),
            {'min_pairs': 0, 'rank': count})
    found['mean accuracy so far'] = (
        lambda x, y, _s: (lambda a: (lambda c: a))(
            (np.sum(y) + 5 * 0.75) / (len(y) + 5)), {})
    return found


def _stated(mapping, raw, share, key=None):
    if key is not None:
        return mapping(raw, share, key)
    if isinstance(mapping, cal.CalibrationMap):
        return mapping(raw, share)
    return mapping(raw)


def replay(rows, times, fit, *, min_pairs=MIN_PAIRS, recent=None,
           cluster=None, group=None, weights=None, lookback=None,
           refit=(REFIT_S, REFIT_REQUESTS), rank=None):
    """``(stated, outcomes)`` arrays of the online replay of ``fit``;
    ``cluster`` (see :func:`request_times`) stands in the cluster's
    share for rows without one."""
    shares = cluster_shares(rows, times, cluster) if cluster else {}
    pairs = []
    for row in rows:
        if not row.get('confidence'):
            continue
        arrival, lifetime = times[row['request']]
        known = arrival + min(WINDOW_S, lifetime or WINDOW_S)
        share = (row['confidence'][3] if len(row['confidence']) > 3
                 else shares.get(row['request']))
        pairs.append((known, row['confidence'][2],
                      float(row['confidence'][1]), arrival, share,
                      GROUPS[group](row) if group else None))
    stated, mapping = [], None
    fitted_at, fitted_n = -np.inf, -refit[1]
    fitted_raws = []
    for n, (_known, raw, _right, now, share, key) in enumerate(pairs):
        if fit is not None and now - fitted_at >= refit[0] \
                and n - fitted_n >= refit[1]:
            seen = [(c, y, s, g) if group else (c, y, s)
                    for k, c, y, a, s, g in pairs[:n] if k <= now
                    and (lookback is None or now - a <= lookback)]
            if recent:
                seen = seen[-recent:]
            if weights and seen:
                seen = [tuple(p) + (w,) for p, w in zip(seen, weights_for(
                    weights, [k - a if k <= now else None
                              for k, _c, _y, a, _s, _g in pairs[:n]],
                    [now - a for _k, _c, _y, a, _s, _g in pairs[:n]]))]
            fitted_at, fitted_n = now, n
            fitted_raws = np.sort([p[0] for p in seen])
            # min_pairs 0: a map with a prior of its own states it before
            # any outcome is known.
            mapping = (fit(*(zip(*seen) if seen
                             else ((),) * (4 if weights else 3)))
                       if len(seen) >= min_pairs and (seen or min_pairs == 0)
                       else None)
        if rank and mapping is not None and n >= rank \
                and len(fitted_raws) >= rank:
            last = np.array([p[1] for p in pairs[n - rank + 1:n + 1]])
            level = (np.sum(last < raw) + 0.5 * np.sum(last == raw)) / rank
            raw = float(np.quantile(fitted_raws, level))
        stated.append(_stated(mapping, raw, share, key)
                      if mapping is not None else raw)
    return (np.clip(np.array(stated), 1e-4, 1 - 1e-4),
            np.array([p[2] for p in pairs]))


def scores(stated, outcomes):
    return {'ece': cal.reliability(stated, outcomes)['ece'],
            'brier': round(float(np.mean((stated - outcomes) ** 2)), 4),
            'log_loss': round(float(-np.mean(
                outcomes * np.log(stated)
                + (1 - outcomes) * np.log(1 - stated))), 4),
            'pairs': int(stated.size)}


#: Classes of the window a ranking's outcome is judged over (its VM's
#: life, at most a day), in hours: ``(name, from, below)``.
WINDOW_CLASSES = (('under 2 h', 0, 2), ('2-6 h', 2, 6), ('6-24 h', 6, 24),
                  ('a full day', 24, np.inf))


def breakdown(rows, times=None):
    """Lines of the run's own stated and raw confidence against the share
    right (see :func:`breakdown_parts`)."""
    return breakdown_lines(breakdown_parts(rows, times))


def pooled_parts(parts_per_file):
    """The parts of several runs' :func:`breakdown_parts` pooled by name,
    in the first run's order."""
    pooled = {}
    for parts in parts_per_file:
        for name, part in parts:
            pooled.setdefault(name, []).extend(part)
    return list(pooled.items())


def breakdown_parts(rows, times=None):
    """``[(name, rows)]``: all, by half of the run, by the answer's source
    and by profile; with ``times`` (see :func:`request_times`) also the
    first outcomes the learner knows (by when they are known), the
    rankings made before 20 of them are known, and both by the window
    each outcome is judged over (the VM's life, at most a day; see
    :data:`WINDOW_CLASSES`)."""
    rows = [r for r in rows if r.get('confidence')]
    half = max(r['request'] for r in rows) // 2 + 1 if rows else 0
    parts = [('all', rows),
             ('first half', [r for r in rows if r['request'] < half]),
             ('second half', [r for r in rows if r['request'] >= half])]
    for source in ('history', 'shadows'):
        mine = [r for r in rows if row_source(r) == source]
        parts += [('from %s' % source, mine),
                  ('from %s, second half' % source,
                   [r for r in mine if r['request'] >= half])]
    parts += [('profile %s' % name, [r for r in rows
                                     if r['profile'] == name])
              for name in sorted({r['profile'] for r in rows})]
    if times:
        def known(row):
            arrival, lifetime = times[row['request']]
            return arrival + min(WINDOW_S, lifetime or WINDOW_S)
        order = sorted(rows, key=known)
        for count in (5, 10, 20):
            parts.append(('first %d outcomes known' % count, order[:count]))
        early = []
        if len(order) >= MIN_PAIRS:
            ready = known(order[MIN_PAIRS - 1])
            early = [r for r in rows if times[r['request']][0] < ready]
            parts.append(('ranked before %d known' % MIN_PAIRS, early))

        def window_h(row):
            arrival, lifetime = times[row['request']]
            return (known(row) - arrival) / 3600.0
        for name, low, high in WINDOW_CLASSES:
            parts.append(('judged over %s' % name,
                          [r for r in rows if low <= window_h(r) < high]))
        for name, low, high in (('under 6 h', 0, 6),) + WINDOW_CLASSES[2:]:
            parts.append(('early, judged over %s' % name,
                          [r for r in early if low <= window_h(r) < high]))
    return parts


def breakdown_lines(parts):
    """The lines of :func:`breakdown`'s ``parts``."""
    lines = []
    for name, part in parts:
        if not part:
            continue
        stated = np.array([r['confidence'][0] for r in part])
        raw = np.array([r['confidence'][2] for r in part])
        right = np.array([float(r['confidence'][1]) for r in part])
        lines.append('  %-32s n %4d  right %.3f  stated %.3f (ECE %.3f)  '
                     'raw %.3f (ECE %.3f)' % (
                         name, len(part), right.mean(), stated.mean(),
                         cal.reliability(stated, right)['ece'], raw.mean(),
                         cal.reliability(raw, right)['ece']))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('rows', nargs='+',
                        help='ROWS_FILE:MODE:SEED:REQUESTS')
    parser.add_argument('--json', help='also write the table here')
    parser.add_argument('--breakdown', action='store_true',
                        help='first print each run\'s own stated and raw '
                        'confidence against the share right, by half of '
                        'the run, source of the answer and profile, and '
                        'of its first outcomes known')
    parser.add_argument('--only', action='append', metavar='TEXT',
                        help='replay only the methods whose name contains '
                        'TEXT (repeatable; by default every method)')
    args = parser.parse_args(argv)
    files, parts = [], []
    for spec in args.rows:
        path, mode, seed, count = spec.rsplit(':', 3)
        with open(path) as handle:
            rows = json.load(handle)
        times, cluster = request_times(mode, int(seed), int(count))
        if args.breakdown:
            parts.append(breakdown_parts(rows, times))
            print(os.path.basename(path))
            print('\n'.join(breakdown_lines(parts[-1])))
        files.append((os.path.basename(path), rows, times, cluster))
    if len(parts) > 1:
        print('all %d runs pooled (runs of one seed share their requests)'
              % len(parts))
        print('\n'.join(breakdown_lines(pooled_parts(parts))))
    table = {}
    chosen = {name: method for name, method in methods().items()
              if not args.only or any(text in name for text in args.only)}
    width = max([34] + [len(name) for name in chosen])
    print('%-*s %s | pooled ECE  Brier  log loss' % (
        width, 'method',
        ' '.join('%6s' % ('f%d' % i) for i in range(len(files)))))
    for name, (fit, options) in chosen.items():
        per_file, all_s, all_y = {}, [], []
        for label, rows, times, cluster in files:
            stated, outcomes = replay(rows, times, fit, cluster=cluster,
                                      **options)
            per_file[label] = scores(stated, outcomes)
            all_s.append(stated)
            all_y.append(outcomes)
        pooled = scores(np.concatenate(all_s), np.concatenate(all_y))
        table[name] = {'files': per_file, 'pooled': pooled}
        print('%-*s %s | %.4f  %.4f  %.4f' % (
            width, name,
            ' '.join('%6.3f' % per_file[f[0]]['ece'] for f in files),
            pooled['ece'], pooled['brier'], pooled['log_loss']), flush=True)
    for i, (label, *_rest) in enumerate(files):
        print('f%d = %s' % (i, label))
    if args.json:
        with open(args.json, 'w') as handle:
            json.dump(table, handle, indent=1, sort_keys=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
