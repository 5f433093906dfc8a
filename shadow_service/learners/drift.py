"""Learning how fast a host's measurements go stale.

A prior built from history ages its data: every estimate's uncertainty
grows by a relative drift per sqrt(hour) since its newest sample (see
:mod:`shadow_service.analysis.estimate`).  This learner measures that
drift instead of assuming it: the history holds repeated shadows of the
same workload (profile, flavor size, profile scale) on the same host, and
how much their means changed between evaluations, net of each run's
sampling error, is the drift
(:func:`~shadow_service.analysis.estimate.fit_age_drift`), per metric.

Until ``min_pairs`` pairs of repeated runs exist for a metric, that
metric keeps the configured ``[analysis] age_drift_per_sqrt_hour`` (or
its own figure in ``age_drift_per_metric``; metrics drift very
differently, so none borrows another's learned figure).  The
learned figure is bounded below by ``floor`` (a host that happened not to
change is not promised never to).  Refits are throttled like the other
learners' and never raise.  Configure it in the ``[analysis]`` group
(``age_drift_*`` options).
"""

import collections
import dataclasses
import logging
import time

from shadow_service import measurements as names
from shadow_service.analysis import estimate as estimate_lib
from shadow_service.learners import base

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class AgeDrift:
    """Learned drift per sqrt(hour): ``by_metric`` where a metric had
    enough pairs (the others keep the configured drift), ``overall`` over
    all metrics' pairs (for the record), ``pairs`` how many pairs there
    were.  ``default`` is a drift for every metric without its own: the
    learner leaves it None."""

    default: float = None
    by_metric: dict = dataclasses.field(default_factory=dict)
    pairs: int = 0
    overall: float = None

    def to_dict(self):
        return {'overall': (None if self.overall is None
                            else round(self.overall, 4)),
                'by_metric': {m: round(v, 4)
                              for m, v in sorted(self.by_metric.items())},
                'pairs': self.pairs}


class AgeDriftLearner(base.HistoryLearner):
    """Fits :class:`AgeDrift` on repeated shadow runs in the history.

    Parameters (besides those of
    :class:`~shadow_service.learners.base.HistoryLearner`)
    ------------------------------------------------------
    min_pairs : int
        Pairs of repeated runs a metric needs before its drift is learned.
    floor : float
        Lowest drift the learner states.
    """

    what = 'the age drift'

    def __init__(self, history, *, lookback_s=86400.0, min_pairs=20,
                 floor=0.005, refit_every=20, refit_interval_s=3600.0,
                 max_evaluations=500, clock=time.time, monotonic=None):
        if min_pairs < 1 or floor < 0:
            raise ValueError('min_pairs must be at least 1 and floor not '
                             'negative')
        super().__init__(
            history, lookback_s=lookback_s, refit_every=refit_every,
            refit_interval_s=refit_interval_s,
            max_evaluations=max_evaluations, initial=AgeDrift(),
            clock=clock, monotonic=monotonic)
        self.min_pairs = int(min_pairs)
        self.floor = float(floor)

    @classmethod
    def from_conf(cls, conf, history, clock=time.time):
        """Build from ``[analysis] age_drift_*`` (the lookback is
        ``[shadow] prior_lookback`` where registered: the window the
        prior itself reads)."""
        opts = conf.analysis
        lookback = (conf.shadow.prior_lookback if 'shadow' in conf
                    else 86400.0)
        return cls(history, lookback_s=max(lookback, 3600.0),
                   min_pairs=opts.age_drift_min_pairs,
                   refit_every=opts.age_drift_refit_every,
                   refit_interval_s=opts.age_drift_refit_interval,
                   clock=clock)

    def age_drift(self):
        """The current :class:`AgeDrift`; counts one use and refits when
        due; never raises."""
        return self._use_or_last()

    def current(self):
        """The drift in use, without counting a use or refitting."""
        return self._state

    def runs(self):
        """``{metric: [[(time, mean, sd_of_mean), ...], ...]}``: one list
        per (workload, host) of the runs there, from the shadow samples
        of the evaluation records in the lookback window (only theirs
        are read)."""
        workloads = {}
        for evaluation_id, record in self.records():
            request = record.get('request') or {}
            profile = request.get('profile')
            if not isinstance(profile, str):
                profile = (profile or {}).get('name')
            workloads[evaluation_id] = base.workload_key(request, profile)
        if not workloads:
            return {}
        now = self._clock()
        # The samples of these evaluations only (an absent tag reads as
        # the empty string).
        wanted = ['' if e is None else e for e in workloads]
        return group_runs(self.history.query_points(
            names.SHADOW_SAMPLE, {names.TAG_EVALUATION: wanted},
            start=now - self.lookback_s, end=now + 1.0), workloads)

    def _fit(self):
        runs = self.runs()
        state = AgeDrift()
        everything = []
        for metric, metric_runs in runs.items():
            everything += metric_runs
            drift, _pairs = estimate_lib.fit_age_drift(
                metric_runs, min_pairs=self.min_pairs)
            if drift is not None:
                state.by_metric[metric] = max(drift, self.floor)
        # Over all metrics: reported, not applied.  Metrics drift very
        # differently (a host's CPU figures may hold steady while its disk
        # latency does not), so one short of pairs keeps the configured
        # drift rather than borrowing the steady metrics' figure.
        drift, state.pairs = estimate_lib.fit_age_drift(
            everything, min_pairs=self.min_pairs)
        state.overall = None if drift is None else max(drift, self.floor)
        return state, state.pairs

    def _describe(self, state):
        return '%d pairs of repeated runs, %s' % (state.pairs,
                                                   state.to_dict())


def group_runs(points, workloads):
    """``{metric: [[(time, mean, sd_of_mean), ...], ...]}`` of shadow
    sample ``points``: one list per (workload, host) of the runs there,
    a run being one evaluation's samples of a metric on a host.
    ``workloads``: ``{evaluation id: workload key}``; samples of other
    evaluations are left out."""
    samples = collections.defaultdict(list)
    times = {}
    for point in points:
        evaluation_id = point.tags.get(names.TAG_EVALUATION)
        if evaluation_id not in workloads:
            continue
        value = point.fields.get(names.FIELD_VALUE)
        if value is None:
            continue
        key = (evaluation_id, point.tags.get(names.TAG_HOST),
               point.tags.get(names.TAG_METRIC))
        samples[key].append(float(value))
        first, last = times.get(key, (point.time, point.time))
        times[key] = (min(first, point.time), max(last, point.time))
    grouped = collections.defaultdict(
        lambda: collections.defaultdict(list))
    for key, values in samples.items():
        evaluation_id, host, metric = key
        summary = estimate_lib.run_summary(values)
        if summary is None:
            continue
        first, last = times[key]
        grouped[metric][(workloads[evaluation_id], host)].append(
            ((first + last) / 2.0,) + summary)
    return {metric: list(by_host.values())
            for metric, by_host in grouped.items()}
