"""The shadow samples a prior is made of, kept between requests.

An evaluation's prior (:meth:`shadow_service.evaluation.Evaluator._prior`)
is built from the shadow samples earlier evaluations of the same workload
left on the candidate hosts within ``prior_lookback``.  Reading them from
the history store on every request costs time in proportion to the whole
window (every host, every earlier evaluation): seconds for a thousand
hosts, on the scheduler's critical path.

:class:`PriorSamples` keeps them in memory per profile instead and tops
them up with what the store received since the last read:

* a read covers ``[last read - overlap, now]`` of the driver's clock
  (``overlap`` lets samples that arrive a little late still count; a
  sample written twice counts once, as in the store);
* a profile is read again at most every ``refresh_s`` seconds of the
  driver's clock, and at once after :meth:`invalidate` (the evaluator
  calls it when one of its own evaluations measured the profile);
* what falls out of the window is dropped, and so is every evaluation
  older than the newest ``keep`` (the prior never reads further back);
  the observations of one
  choice of earlier evaluations are assembled once and reused until the
  choice or the window's content changes.

The samples come back exactly as a full read of the window would give
them (per host and metric, in time order), except for samples stamped
more than ``overlap`` before they reached the store, which a full read
of the store (a new process, or ``invalidate(full=True)``) finds.
"""

import collections
import threading

from shadow_service import measurements as names

#: Seconds (driver clock) a profile's samples are reused before the store
#: is asked for newer ones.
DEFAULT_REFRESH_S = 5.0
#: Seconds before the previous read that the next read covers again.
DEFAULT_OVERLAP_S = 600.0


class _Evaluation:
    """One earlier evaluation's samples: ``{host: {metric: {t: v}}}``
    (a sample written twice counts once, as in the store)."""

    __slots__ = ('first', 'last', 'samples')

    def __init__(self):
        self.first = None
        self.last = None
        self.samples = collections.defaultdict(
            lambda: collections.defaultdict(dict))

    def add(self, host, metric, when, value):
        self.samples[host][metric][when] = value
        self.first = when if self.first is None else min(self.first, when)
        self.last = when if self.last is None else max(self.last, when)


class _Profile:
    """What is kept of one profile."""

    def __init__(self):
        self.evaluations = {}
        self.read_until = None
        self.checked_at = None
        self.version = 0
        self.stale = True
        self.full = True
        # (version, chosen ids, window start) -> (observations, newest)
        self.assembled = None


class PriorSamples:
    """Shadow samples per profile, read incrementally (see the module
    docstring).  Thread-safe: the service runs evaluations in parallel."""

    def __init__(self, history, lookback_s, *, refresh_s=DEFAULT_REFRESH_S,
                 overlap_s=DEFAULT_OVERLAP_S, keep=None):
        self.history = history
        #: The newest evaluations kept per profile (None: every one in the
        #: window): a prior never looks further back.
        self.keep = keep
        self.lookback_s = float(lookback_s)
        self.refresh_s = float(refresh_s)
        self.overlap_s = float(overlap_s)
        self._profiles = {}
        self._lock = threading.Lock()
        #: Store reads made (full and incremental): for tests and metrics.
        self.reads = 0

    def invalidate(self, profile_name=None, full=False):
        """Read ``profile_name`` (every profile when None) again on its
        next use; ``full``: the whole window, not only what is new."""
        with self._lock:
            profiles = (self._profiles.values() if profile_name is None
                        else [self._profiles.get(profile_name)])
            for profile in profiles:
                if profile is not None:
                    profile.stale = True
                    profile.full = profile.full or full

    def evaluations(self, profile_name, now):
        """``{evaluation_id: time of its newest sample}`` of the earlier
        evaluations of ``profile_name`` with samples in the window ending
        at ``now``.  Raises what the store raises."""
        with self._lock:
            profile = self._current(profile_name, now)
            start = now - self.lookback_s
            return {evaluation_id: evaluation.last
                    for evaluation_id, evaluation
                    in profile.evaluations.items()
                    if evaluation.last >= start}

    def observations(self, profile_name, chosen, hosts, now):
        """``({host: {metric: [values in time order]}}, {host: newest
        sample time})`` of the ``chosen`` evaluations' samples on
        ``hosts`` within the window ending at ``now``."""
        with self._lock:
            profile = self._current(profile_name, now)
            start = now - self.lookback_s
            key = (profile.version, frozenset(chosen))
            cached = profile.assembled
            if (cached is None or cached[0] != key
                    or cached[1] < start or cached[2] >= now):
                cached = (key,) + _assemble(
                    [profile.evaluations[e] for e in chosen
                     if e in profile.evaluations], start, now)
                profile.assembled = cached
            _, _, _, observations, newest = cached
        return ({h: observations[h] for h in hosts if h in observations},
                {h: newest[h] for h in hosts if h in newest})

    # -- reading the store ---------------------------------------------

    def _current(self, profile_name, now):
        """The profile's samples, read from the store when due."""
        profile = self._profiles.get(profile_name)
        if profile is None:
            profile = self._profiles[profile_name] = _Profile()
        due = (profile.stale or profile.checked_at is None
               or now - profile.checked_at >= self.refresh_s
               or now < profile.checked_at)
        if not due:
            return profile
        start = now - self.lookback_s
        if not profile.full and profile.read_until is not None \
                and profile.read_until <= now:
            start = max(start, profile.read_until - self.overlap_s)
        else:
            profile.evaluations = {}
        points = self.history.query_points(
            names.SHADOW_SAMPLE, {names.TAG_PROFILE: profile_name},
            start=start, end=now)
        self.reads += 1
        changed = profile.full
        for point in points:
            evaluation_id = point.tags.get(names.TAG_EVALUATION)
            host = point.tags.get(names.TAG_HOST)
            metric = point.tags.get(names.TAG_METRIC)
            value = float(point.fields[names.FIELD_VALUE])
            evaluation = profile.evaluations.get(evaluation_id)
            if evaluation is None:
                evaluation = profile.evaluations[evaluation_id] = \
                    _Evaluation()
            known = evaluation.samples.get(host, {}).get(metric, {})
            if known.get(point.time) != value:
                changed = True
            evaluation.add(host, metric, point.time, value)
        # What no longer reaches into the window is forgotten, and so are
        # evaluations no prior will choose: beyond the newest ``keep``,
        # except those that may still be running (samples within the
        # overlap).
        window_start = now - self.lookback_s
        newest_first = sorted(profile.evaluations,
                              key=lambda e: profile.evaluations[e].last,
                              reverse=True)
        recent = now - self.overlap_s
        for rank, evaluation_id in enumerate(newest_first):
            last = profile.evaluations[evaluation_id].last
            if last < window_start or (self.keep is not None
                                       and rank >= self.keep
                                       and last < recent):
                del profile.evaluations[evaluation_id]
                changed = True
        if changed:
            profile.version += 1
        profile.read_until = now
        profile.checked_at = now
        profile.stale = False
        profile.full = False
        return profile


def _assemble(evaluations, start, end):
    """``(oldest, latest, observations, newest)`` of ``evaluations``
    within ``[start, end)``: per host and metric the values in time order
    (the order of a read of the store)."""
    merged = collections.defaultdict(lambda: collections.defaultdict(list))
    for evaluation in evaluations:
        for host, metrics in evaluation.samples.items():
            for metric, by_time in metrics.items():
                merged[host][metric].extend(
                    item for item in by_time.items()
                    if start <= item[0] < end)
    observations, newest = {}, {}
    oldest, latest = float('inf'), float('-inf')
    for host, metrics in merged.items():
        per_metric = {}
        for metric, items in metrics.items():
            if not items:
                continue
            items.sort(key=lambda item: item[0])
            per_metric[metric] = [value for _, value in items]
            first, last = items[0][0], items[-1][0]
            newest[host] = max(newest.get(host, last), last)
            oldest, latest = min(oldest, first), max(latest, last)
        if per_metric:
            observations[host] = per_metric
    return oldest, latest, observations, newest
