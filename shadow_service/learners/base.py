"""What every learner over the history's evaluation records shares.

A learner reads the evaluation records the evaluator left in the history
store (and the measurements they point to), fits a model, and hands the
current model to whoever ranks or forecasts.  :class:`HistoryLearner`
throttles refits (never more often than ``refit_every`` uses and
``refit_interval_s`` seconds) and never raises: a failing store or fit is
logged and the last good state stays in use.

One clock: a learner's ``clock`` is the time base of the records it reads,
which is the cloud driver's clock (virtual in the twin); its refit interval
runs on that same clock.
"""

import json
import logging
import math
import threading
import time

from shadow_service import measurements as names
from shadow_service.history import base as history_base

LOG = logging.getLogger(__name__)

#: Host features an evaluation record keeps: the contention regressors
#: plus everything else the driver reports (scalars only).
FEATURE_TYPES = (str, bool, int, float)

def workload_key(request, profile_name):
    """What a model is specific to: ``(profile, full vCPUs, scale)``.

    Shadows of the same profile on differently sized flavors achieve
    different absolute figures, so each combination gets its own models.
    """
    flavor = (request or {}).get('flavor') or {}
    return (str(profile_name), int(flavor.get('vcpus') or 0),
            float((request or {}).get('profile_scale', 1.0)))


def recordable_features(host_features):
    """``{host: {feature: scalar}}`` with what JSON cannot keep left out."""
    kept = {}
    for host, features in (host_features or {}).items():
        kept[str(host)] = {
            str(name): (float(value) if isinstance(value, float)
                        else value)
            for name, value in (features or {}).items()
            if isinstance(value, FEATURE_TYPES)
            and not (isinstance(value, float) and not math.isfinite(value))}
    return kept


class HistoryLearner:
    """What every learner over evaluation records shares: throttled refits
    that never raise, and reading the newest records in a window.

    Subclasses implement :meth:`_fit` (returns the fitted state and how
    many training items it used) and :meth:`_describe`.

    Parameters
    ----------
    history : shadow_service.history.base.HistoryStore
    lookback_s : float
        Evaluation records younger than this (by ``clock``) are used.
    refit_every : int
        Uses between two refits.
    refit_interval_s : float
        Fewest seconds between two refits.
    max_evaluations : int
        Newest evaluation records read per refit (bounds its cost).
    clock : callable
        Now in the time base of the evaluation records, which the
        evaluator stamps with the cloud driver's clock (pass the driver's
        ``now``; virtual in the twin).
    monotonic : callable, optional
        Elapsed time for the refit interval (``clock`` by default).
    """

    #: What a refit learns, for log messages.
    what = 'models'

    def __init__(self, history, *, lookback_s, refit_every,
                 refit_interval_s, max_evaluations, initial,
                 clock=time.time, monotonic=None):
        if refit_every < 1 or max_evaluations < 1:
            raise ValueError('refit_every and max_evaluations must be at '
                             'least 1')
        self.history = history
        self.lookback_s = float(lookback_s)
        self.refit_every = int(refit_every)
        self.refit_interval_s = float(refit_interval_s)
        self.max_evaluations = int(max_evaluations)
        self._clock = clock
        self._monotonic = clock if monotonic is None else monotonic
        self._lock = threading.Lock()
        self._state = initial
        self._since_fit = 0
        self._fitted_at = None
        self.fits = 0
        self.failures = 0

    def _use(self):
        """Count one use and refit when due; the current state."""
        self._since_fit += 1
        if self._due() and self._lock.acquire(blocking=False):
            try:
                self.refit()
            finally:
                self._lock.release()
        return self._state

    def _use_or_last(self):
        """:meth:`_use`, never raising: on any error the state in use."""
        try:
            return self._use()
        except Exception:
            LOG.exception('Learning %s failed; using the last one', self.what)
            return self._state

    def _due(self):
        if self._fitted_at is None:
            return True
        return (self._since_fit >= self.refit_every
                and self._monotonic() - self._fitted_at
                >= self.refit_interval_s)

    def refit(self):
        """Fit now; returns the new state (the last good one when reading
        or fitting fails)."""
        started = self._monotonic()
        self._since_fit = 0
        self._fitted_at = started
        try:
            state, used = self._fit()
        except Exception:
            self.failures += 1
            LOG.exception('Fitting %s failed; keeping the last good ones',
                          self.what)
            return self._state
        self._state = state
        self.fits += 1
        LOG.info('%s refitted from %d items in %.2fs: %s',
                 self.what.capitalize(), used,
                 self._monotonic() - started, self._describe(state))
        return state

    def _fit(self):
        raise NotImplementedError

    def _describe(self, state):
        return state

    def records(self):
        """``[(evaluation_id, record dict)]``: the newest
        ``max_evaluations`` parseable records in the lookback window.

        An evaluation recorded more than once (``running``, then its
        result) is placed by its first record in the window and read as
        its last one."""
        now = self._clock()
        raw = newest_records(self.history, now - self.lookback_s,
                             now + 1.0, self.max_evaluations)
        records = []
        for evaluation_id, record in raw:
            try:
                records.append((evaluation_id, json.loads(record)))
            except (TypeError, ValueError):
                LOG.warning('Evaluation record %s is not JSON; skipped',
                            evaluation_id)
        return records


def _record_of(point):
    """The record JSON an ``evaluation`` point holds, or None."""
    return point.fields.get(names.FIELD_RECORD) or None


def _keyed(points, value_of):
    """``{evaluation id: value}`` of the ``points`` whose ``value_of`` is
    not None, in the order each evaluation first comes, each with its
    last value."""
    raw = {}
    for point in points:
        value = value_of(point)
        if value is not None:
            raw[point.tags.get(names.TAG_EVALUATION)] = value
    return raw


def newest_records(history, start, end, count, page_size=None):
    """``[(evaluation id, record JSON)]``: the last ``count`` evaluations
    of every ``evaluation`` point in ``[start, end)`` that holds a record
    (:func:`newest_by_evaluation`)."""
    return newest_by_evaluation(history, names.EVALUATION, _record_of,
                                start, end, count, page_size)


def newest_by_evaluation(history, measurement, value_of, start, end,
                         count, page_size=None):
    """``[(evaluation id, value)]``: the last ``count`` items of
    :func:`_keyed` over every ``measurement`` point in ``[start, end)``
    (points tagged by evaluation; ``value_of(point)`` None skips one),
    read from the newest points back, a page at a time (the first of
    ``page_size`` points, ``2 * count + 64`` by default: most evaluations
    are recorded twice; each next page twice as large).

    The points after the oldest time a page holds are complete: the
    evaluations first recorded there, and nowhere earlier (one query,
    by evaluation, over the time before), come after every other
    evaluation.  Once ``count`` of them are known they are the answer;
    otherwise the next, older page is read (at worst, the whole
    window).
    """
    later = []
    page_end = end
    page_size = page_size or 2 * count + 64
    while True:
        page = history.query_points(measurement, start=start,
                                    end=page_end, limit=page_size)
        if len(page) < page_size:
            # The window's start is reached: every point is read.
            return list(_keyed(page + later, value_of).items())[-count:]
        cut = page[0].time
        later = [point for point in page if point.time > cut] + later
        # The next page ends with the points at the cut (some of them
        # may not be in this one).
        page_end = _time_after(cut)
        page_size *= 2
        raw = _keyed(later, value_of)
        if len(raw) < count:
            continue
        earlier = _recorded_before(history, measurement, value_of,
                                   list(raw), start, page_end)
        first_here = [evaluation_id for evaluation_id in raw
                      if evaluation_id not in earlier]
        if len(first_here) >= count:
            return [(evaluation_id, raw[evaluation_id])
                    for evaluation_id in first_here[-count:]]


def _time_after(moment):
    """The next time after ``moment`` the stores can tell apart (their
    resolution is one microsecond)."""
    return history_base.us_to_time(history_base.time_to_us(moment) + 1)


def _recorded_before(history, measurement, value_of, evaluation_ids,
                     start, end):
    """The evaluation ids among ``evaluation_ids`` with a
    ``measurement`` point of a value (``value_of``) in ``[start,
    end)``."""
    wanted = ['' if e is None else e for e in evaluation_ids]
    return {point.tags.get(names.TAG_EVALUATION)
            for point in history.query_points(
                measurement, {names.TAG_EVALUATION: wanted},
                start=start, end=end)
            if value_of(point) is not None}
