"""Learning how far a ranking's confidence can be trusted.

A ranking states a confidence: the probability that its top host is
within the tie margin of the truly best candidate.  This learner checks
that claim against what happened to placed VMs and fits a
:class:`~shadow_service.analysis.calibration.CalibrationMap` from the raw
confidence to the share of rankings that were right, which the analyzer
then states instead of the raw figure.

Outcomes come from two places:

* ``ranking_outcome`` points (tags ``evaluation``, ``host``; fields
  ``confidence``, ``outcome``), written by :meth:`record_outcome` by
  whoever knows how the candidates really did over the VM's first day
  (the placement benchmark on the digital twin knows every candidate's
  realised day);
* placed VMs, from the history alone: an evaluation record whose request
  carries an ``instance_uuid``, Nova's ``instance.create.end``
  notification (recorded by the service's notification listener) saying
  the VM landed on the ranking's top host, and the VM's own
  ``instance_metric`` points over its first ``window_s`` seconds.  The
  other candidates' days are not observable, so their predictions stand
  in: the ranking was right when the VM's realised figures score within
  the tie margin of the best of the other candidates' predicted ones.
  A VM that landed elsewhere gives no outcome.

Each outcome keeps the share of the candidates' RAM allocated when its
ranking was made (from the evaluation record's host features), so that
the map is not read in a cloud fuller or emptier than its outcomes saw
(see :class:`~shadow_service.analysis.calibration.CalibrationMap`).

Before any outcome is known the logistic map states a prior map
(``[analysis] calibration_prior_map``; by default the one shipped in
``data/calibration_prior.json``, fitted offline on the digital twin's
rankings by ``benchmarks/calibration_prior.py``), and hands over from it
as outcomes accrue (see
:class:`~shadow_service.analysis.calibration.LogisticCalibrationMap`).

Refits are throttled like the other learners' and never raise.
Configure it in the ``[analysis]`` group (``calibration_*`` options).
"""

import json
import logging
import math
import os
import time

import numpy as np

from shadow_service import hostfacts
from shadow_service import measurements as names
from shadow_service import notifications
from shadow_service.analysis import calibration as calibration_lib
from shadow_service.analysis import score as score_lib
from shadow_service.history import base as history_base
from shadow_service.learners import base
from shadow_service.workloads import catalogue
from shadow_service.workloads import profiles

LOG = logging.getLogger(__name__)

#: The prior map shipped with nova-shadow (``[analysis]
#: calibration_prior_map = bundled``).
BUNDLED_PRIOR_MAP = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                 'data', 'calibration_prior.json')


def load_prior_map(setting):
    """``(a0, b0)`` of the logistic prior map ``setting`` names
    (``[analysis] calibration_prior_map``): ``bundled`` the map shipped
    with nova-shadow, ``identity`` (or empty) none, else the path of a
    JSON file with ``method`` ``logistic`` and ``coefficients`` ``[a0,
    b0]`` (as ``benchmarks/calibration_prior.py`` writes it).

    Raises
    ------
    ValueError
        Naming the option and the file when it cannot be read or holds no
        such map.
    """
    if setting in (None, '', 'identity'):
        return None
    path = BUNDLED_PRIOR_MAP if setting == 'bundled' else setting
    try:
        with open(path) as handle:
            found = json.load(handle)
        if found.get('method', 'logistic') != 'logistic':
            raise ValueError('method %r, not logistic' % found['method'])
        a, b = (float(v) for v in found['coefficients'])
        if not (math.isfinite(a) and math.isfinite(b)) or b < 0:
            raise ValueError('coefficients must be finite, the slope not '
                             'negative')
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError('[analysis] calibration_prior_map %s is not a '
                         'logistic prior map: %s' % (path, exc)) from exc
    return a, b


def placed_outcome(record, instance_points, *, placed_on, window_s,
                   tie_margin, metric_weights=None):
    """``(raw confidence, right)`` of one placed evaluation, or None.

    ``instance_points`` are the VM's ``instance_metric`` points in time
    order; only those on ``placed_on`` within ``window_s`` of the first
    count.  None when the VM did not land on the top host, when fewer
    than two candidates were measured, or when its figures share no
    weighted metric with the predictions.
    """
    ranked = [h for h in record.get('hosts') or () if h.get('predicted')]
    if len(ranked) < 2 or not instance_points or not placed_on:
        return None
    if ranked[0].get('host') != placed_on:
        return None
    try:
        profile = profiles.resolve_profile(record.get('request') or {})
    except Exception:
        return None
    weights = catalogue.metric_weights_from_sensitivity(
        profile.sensitivity, metric_weights or {})
    start = instance_points[0].time
    realised = {}
    for point in instance_points:
        value = point.fields.get(names.FIELD_VALUE)
        if (point.tags.get(names.TAG_HOST) == placed_on
                and value is not None and point.time - start <= window_s):
            realised.setdefault(point.tags.get(names.TAG_METRIC),
                                []).append(float(value))
    metrics = sorted(m for m in weights if m in realised
                     and m in ranked[0]['predicted'])
    if not metrics:
        return None
    values = [[float(np.mean(realised[m])) for m in metrics]]
    values += [[float(h['predicted'].get(m, np.nan)) for m in metrics]
               for h in ranked[1:]]
    scores = score_lib.scores(metrics, weights, np.array(values))
    others = scores[1:][np.isfinite(scores[1:])]
    if not np.isfinite(scores[0]) or not others.size:
        return None
    raw = record.get('raw_confidence', record.get('confidence'))
    if raw is None:
        return None
    return float(raw), bool(scores[0] >= np.max(others) - tie_margin)


def _outcome_of(point):
    """``(raw confidence, 0/1)`` of a ``ranking_outcome`` point, or None
    when it lacks either."""
    confidence = point.fields.get(names.FIELD_CONFIDENCE)
    outcome = point.fields.get(names.FIELD_OUTCOME)
    if confidence is None or outcome is None:
        return None
    return float(confidence), float(outcome)


class CalibrationLearner(base.HistoryLearner):
    """Fits a calibration map on ranking outcomes.

    Parameters (besides those of
    :class:`~shadow_service.learners.base.HistoryLearner`)
    ------------------------------------------------------
    method : str
        ``logistic`` (a
        :class:`~shadow_service.analysis.calibration.LogisticCalibrationMap`)
        or ``bins`` (a :class:`CalibrationMap`); see ``[analysis]
        calibration_method``.
    window_s : float
        The VM's first hours an outcome covers (a day by default).
    min_pairs : int
        Outcomes needed before the map departs from the identity.
    prior_pairs : float
        Pseudo-outcomes at the identity per confidence bin.
    tails : str
        The binned map beyond its outermost fitted bins (``flat`` or
        ``identity``, see :class:`CalibrationMap`).
    share_margin : float
        How far beyond the allocated RAM shares of its outcomes the map
        is read (see :class:`CalibrationMap`).
    tie_margin : float
        ``[analysis] tie_margin``: score points within which the top host
        still counts as best.
    harvest : bool
        Also derive outcomes from placed VMs' own metrics (see the module
        docstring).
    prior_map : tuple or None
        ``(a0, b0)``: the logistic prior map stated before outcomes and
        learned from as they come (see :func:`load_prior_map`); None: the
        identity, and the raw confidence until ``min_pairs``.
    prior_map_pairs : float
        How many outcomes the prior map is worth.
    """

    what = 'the confidence calibration map'

    def __init__(self, history, *, lookback_s=30 * 86400.0,
                 window_s=86400.0, min_pairs=20, prior_pairs=5.0,
                 tails='flat', share_margin=calibration_lib.SHARE_MARGIN,
                 method='logistic', tie_margin=2.0, harvest=True,
                 refit_every=20, refit_interval_s=3600.0, max_evaluations=500,
                 prior_map=None, prior_map_pairs=20.0,
                 clock=time.time, monotonic=None):
        if window_s <= 0:
            raise ValueError('window_s must be positive')
        self.method = method
        self.prior_map = None if prior_map is None else tuple(prior_map)
        self.prior_map_pairs = float(prior_map_pairs)
        super().__init__(
            history, lookback_s=lookback_s, refit_every=refit_every,
            refit_interval_s=refit_interval_s,
            max_evaluations=max_evaluations,
            initial=self._new_map(min_pairs, prior_pairs, tails,
                                  share_margin),
            clock=clock, monotonic=monotonic)
        self.window_s = float(window_s)
        self.min_pairs = int(min_pairs)
        self.prior_pairs = float(prior_pairs)
        self.tails = tails
        self.share_margin = float(share_margin)
        self.tie_margin = float(tie_margin)
        self.harvest = bool(harvest)
        self.pairs = 0
        self.harvested = 0
        # evaluation id -> (confidence, right, allocated share) or None
        # once given up; only for the records the last refit read.
        self._settled = {}

    @classmethod
    def from_conf(cls, conf, history, clock=time.time):
        """Build from the ``calibration_*`` options of ``[analysis]``;
        ``clock`` is the time base of the records (the driver's ``now``).
        """
        opts = conf.analysis
        return cls(history, lookback_s=opts.calibration_lookback,
                   window_s=opts.calibration_window,
                   min_pairs=opts.calibration_min_pairs,
                   prior_pairs=opts.calibration_prior_pairs,
                   tails=opts.calibration_tails,
                   share_margin=opts.calibration_share_margin,
                   method=opts.calibration_method,
                   tie_margin=opts.tie_margin,
                   refit_every=opts.calibration_refit_every,
                   refit_interval_s=opts.calibration_refit_interval,
                   max_evaluations=opts.calibration_max_evaluations,
                   prior_map=load_prior_map(opts.calibration_prior_map),
                   prior_map_pairs=opts.calibration_prior_map_pairs,
                   clock=clock)

    def _new_map(self, min_pairs, prior_pairs, tails, share_margin):
        """An unfitted map of the learner's method (the prior map only
        for the logistic one)."""
        options = dict(min_pairs=min_pairs, prior_pairs=prior_pairs,
                       tails=tails, share_margin=share_margin)
        if self.method == 'logistic':
            options.update(prior=self.prior_map,
                           prior_map_pairs=self.prior_map_pairs)
        return calibration_lib.make_map(self.method, **options)

    def calibration_map(self):
        """The current map (the identity until enough outcomes); counts
        one use and refits when due; never raises."""
        return self._use_or_last()

    def current_map(self):
        """The map in use, without counting a use or refitting."""
        return self._state

    def record_outcome(self, evaluation_id, confidence, right, *,
                       host=None, when=None):
        """Record that the ranking of ``evaluation_id``, which stated the
        raw ``confidence``, was ``right`` (its top host within the tie
        margin of the best over the VM's first day).

        Raises
        ------
        ValueError
            Naming ``confidence`` when it is not a number in 0..1.
        """
        if (not history_base.is_number(confidence)
                or not 0.0 <= float(confidence) <= 1.0):
            raise ValueError('confidence must be a number in 0..1, got %r'
                             % (confidence,))
        when = self._clock() if when is None else float(when)
        tags = {names.TAG_EVALUATION: str(evaluation_id)}
        if host:
            tags[names.TAG_HOST] = str(host)
        self.history.write([history_base.Point(
            names.RANKING_OUTCOME, tags,
            {names.FIELD_CONFIDENCE: float(confidence),
             names.FIELD_OUTCOME: 1.0 if right else 0.0}, when)])

    def _fit(self):
        pairs = self.training_pairs()
        state = self._new_map(self.min_pairs, self.prior_pairs, self.tails,
                              self.share_margin)
        if pairs:
            confidences, outcomes, shares = zip(*pairs)
            state.fit(confidences, outcomes, shares)
        self.pairs = len(pairs)
        return state, len(pairs)

    def _describe(self, state):
        if state.fitted:
            return '%d outcomes, fitted' % state.pairs
        return '%d outcomes, %s until %d' % (
            state.pairs, 'identity' if getattr(state, 'prior', None) is None
            else 'the prior map', self.min_pairs)

    def training_pairs(self):
        """``[(raw confidence, 0/1, allocated RAM share or None)]`` in the
        lookback window: the recorded outcomes of the newest
        ``max_evaluations`` evaluations with one (each evaluation's last),
        then those harvested from the newest ``max_evaluations`` records.
        Both are read a page at a time from the newest back
        (:func:`~shadow_service.learners.base.newest_by_evaluation`), not
        the whole window."""
        now = self._clock()
        records = self.records()
        shares = {evaluation_id: hostfacts.allocated_ram_share(
            record.get('host_features')) for evaluation_id, record in records}
        recorded = {
            evaluation_id: (confidence, outcome, shares.get(evaluation_id))
            for evaluation_id, (confidence, outcome)
            in base.newest_by_evaluation(
                self.history, names.RANKING_OUTCOME, _outcome_of,
                now - self.lookback_s, now + 1.0, self.max_evaluations)}
        pairs = list(recorded.values())
        if self.harvest:
            pairs += self._harvest(now, set(recorded), records, shares)
        return pairs

    def _harvest(self, now, known, records, shares):
        # Only the records read now are ever looked up again: what was
        # settled for older ones goes (one entry per evaluation ever run
        # would grow a daemon's memory for good).
        reading = {evaluation_id for evaluation_id, _ in records}
        for evaluation_id in [e for e in self._settled if e not in reading]:
            del self._settled[evaluation_id]
        pairs = []
        for evaluation_id, record in records:
            if evaluation_id in known:
                continue
            if evaluation_id in self._settled:
                if self._settled[evaluation_id] is not None:
                    pairs.append(self._settled[evaluation_id])
                continue
            request = record.get('request') or {}
            instance = request.get('instance_uuid')
            if not instance or request.get('purpose', 'boot') != 'boot':
                # An outcome is the VM's first day after its creation:
                # it says nothing of a ranking made for a later move.
                self._settled[evaluation_id] = None
                continue
            created = notifications.creation_of(self.history, instance)
            if not created:
                continue
            placed_on, created_at = created
            points = self._first_window(str(instance), created_at)
            if not points:
                continue
            if now - points[0].time < self.window_s:
                continue        # its first day is not over yet
            outcome = placed_outcome(record, points, placed_on=placed_on,
                                     window_s=self.window_s,
                                     tie_margin=self.tie_margin)
            if outcome is not None and math.isfinite(outcome[0]):
                self._settled[evaluation_id] = (
                    outcome[0], float(outcome[1]), shares.get(evaluation_id))
                pairs.append(self._settled[evaluation_id])
                self.harvested += 1
            else:
                self._settled[evaluation_id] = None
        return pairs

    def _first_window(self, instance, created_at):
        """The VM's ``instance_metric`` points, in time order, from its
        first to ``window_s`` seconds (and one more) after it: every point
        :func:`placed_outcome` counts, read around ``created_at`` (its
        creation's time) instead of over the VM's whole life.

        A first point before ``created_at`` (a late notification) is
        found by reading the points before it; a first point later than
        a window after it, by reading on a window at a time up to the
        VM's newest point."""
        tags = {names.TAG_INSTANCE: instance}
        reach = self.window_s + 1.0     # beyond the rounding of the times
        before = self.history.query_points(names.INSTANCE_METRIC, tags,
                                           end=created_at)
        if before:
            end = before[0].time + reach
            if end <= created_at:
                return before
            return before + self.history.query_points(
                names.INSTANCE_METRIC, tags, start=created_at, end=end)
        newest = self.history.query_points(names.INSTANCE_METRIC, tags,
                                           start=created_at, limit=1)
        start = created_at
        while newest and start <= newest[-1].time:
            found = self.history.query_points(
                names.INSTANCE_METRIC, tags, start=start, end=start + reach)
            if found:
                end = found[0].time + reach
                if end > start + reach:
                    found += self.history.query_points(
                        names.INSTANCE_METRIC, tags, start=start + reach,
                        end=end)
                return found
            start += reach
        return []
