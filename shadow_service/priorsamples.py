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
  choice or the window's content changes; when only new samples arrived,
  only the hosts they are on are assembled again, and every host's
  observations carry a token (:meth:`PriorSamples.observations` with
  ``tokens=True``) that changes exactly when they do, so a caller can
  keep what it derived from a host's samples until its token changes.

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
        # The version at which each host's samples last changed, and the
        # last version at which any host's may have (a full read, an
        # evaluation forgotten).
        self.touched = {}
        self.all_touched = 0
        # (key, oldest, latest, observations, newest, tokens, version)
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
        self._tokens = 0

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

    def observations(self, profile_name, chosen, hosts, now, tokens=False):
        """``({host: {metric: [values in time order]}}, {host: newest
        sample time})`` of the ``chosen`` evaluations' samples on
        ``hosts`` within the window ending at ``now``; with ``tokens``, a
        third ``{host: token}``: a host's token changes exactly when its
        observations do (the same token means the same samples)."""
        with self._lock:
            profile = self._current(profile_name, now)
            start = now - self.lookback_s
            key = frozenset(chosen)
            cached = profile.assembled
            if cached is None or cached[1] < start or cached[2] >= now:
                cached = self._assemble_all(profile, key, start, now,
                                            cached)
            elif cached[0] != key or cached[6] != profile.version:
                cached = self._assemble_touched(profile, key, start, now,
                                                cached)
            observations, newest, kept = cached[3], cached[4], cached[5]
        found = ({h: observations[h] for h in hosts if h in observations},
                 {h: newest[h] for h in hosts if h in newest})
        if tokens:
            return found + ({h: kept[h] for h in hosts if h in kept},)
        return found

    def _token(self):
        self._tokens += 1
        return self._tokens

    def _assemble_all(self, profile, key, start, now, previous):
        """Assemble every host; a host whose observations came out as
        they were keeps its token."""
        oldest, latest, observations, newest = _assemble(
            [profile.evaluations[e] for e in key
             if e in profile.evaluations], start, now)
        before = previous[3] if previous is not None else {}
        before_tokens = previous[5] if previous is not None else {}
        tokens = {}
        for host, per_metric in observations.items():
            if host in before and before[host] == per_metric:
                observations[host] = before[host]
                tokens[host] = before_tokens[host]
            else:
                tokens[host] = self._token()
        profile.assembled = (key, oldest, latest, observations, newest,
                             tokens, profile.version)
        return profile.assembled

    def _assemble_touched(self, profile, key, start, now, previous):
        """Assemble again only the hosts whose samples changed since
        ``previous`` was assembled (everything when that cannot be
        told)."""
        since = previous[6]
        # Evaluations chosen now and not then, or then and not now.
        swapped = key.symmetric_difference(previous[0])
        if profile.all_touched > since or any(
                e not in profile.evaluations for e in swapped):
            return self._assemble_all(profile, key, start, now, previous)
        hosts = {h for h, v in profile.touched.items() if v > since}
        for evaluation_id in swapped:
            hosts.update(profile.evaluations[evaluation_id].samples)
        oldest, latest, part, part_newest = _assemble(
            [profile.evaluations[e] for e in key
             if e in profile.evaluations], start, now, hosts)
        observations = dict(previous[3])
        newest = dict(previous[4])
        tokens = dict(previous[5])
        for host in hosts:
            per_metric = part.get(host)
            if per_metric is None:
                observations.pop(host, None)
                newest.pop(host, None)
                tokens.pop(host, None)
            elif observations.get(host) != per_metric:
                observations[host] = per_metric
                newest[host] = part_newest[host]
                tokens[host] = self._token()
        profile.assembled = (key, min(previous[1], oldest),
                             max(previous[2], latest), observations, newest,
                             tokens, profile.version)
        return profile.assembled

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
        # The version this read makes, if anything changed.
        version = profile.version + 1
        if profile.full:
            profile.touched = {}
            profile.all_touched = version
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
                profile.touched[host] = version
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
                profile.all_touched = version
        if changed:
            profile.version = version
        profile.read_until = now
        profile.checked_at = now
        profile.stale = False
        profile.full = False
        return profile


def _assemble(evaluations, start, end, hosts=None):
    """``(oldest, latest, observations, newest)`` of ``evaluations``
    within ``[start, end)``: per host and metric the values in time order
    (the order of a read of the store); only ``hosts`` when given."""
    merged = collections.defaultdict(lambda: collections.defaultdict(list))
    for evaluation in evaluations:
        if hosts is None:
            items = evaluation.samples.items()
        else:
            items = [(h, evaluation.samples[h]) for h in hosts
                     if h in evaluation.samples]
        for host, metrics in items:
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
