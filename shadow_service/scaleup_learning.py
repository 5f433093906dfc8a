"""Learning the shadow-to-full-flavor scale-up from placed VMs.

A shadow runs a flavor-minimal copy of the VM; the analyzer scales what it
measured up to the full flavor with
:class:`~shadow_service.analysis.scaleup.ScaleUpModel`, whose exponents are
documented priors until (shadow, full VM) pairs exist.  This module is the
I/O edge that makes those pairs:

* an evaluation record whose request carries an ``instance_uuid`` (the
  weigher sends Nova's) names the VM the evaluation was for;
* the VM's ``instance_metric`` points (written by the cloud driver's
  monitoring) say where it landed and what it achieved;
* the evaluation's ``shadow_sample`` points on that same host say what the
  shadow achieved there.

One pair per (evaluation, metric): the median of the shadow's samples on
the VM's host against the median of the VM's own figures over its first
``window_s`` seconds (close in time to the shadow run, so the host's load
changed little in between).  Hosts where no shadow ran (the VM landed on a
host ranked from history, or Nova chose another host than the measured
ones) give no pair.

Refits are throttled like the contention learner's and never raise: a
failing store or fit is logged and the last good model stays in use.
Configure it in the ``[shadow]`` group (``scaleup_*`` options).
"""

import collections
import json
import logging
import statistics
import threading
import time

from shadow_service.analysis import scaleup as scaleup_lib

LOG = logging.getLogger(__name__)


def shadow_scale_of(record, shadow_scale):
    """The ``scale`` keys of an evaluation record.

    Records written since the scale is recorded carry it; for older ones it
    is recomputed from the request's flavor and ``shadow_scale``.
    """
    scale = record.get('scale')
    if scale:
        return dict(scale)
    from shadow_service import evaluation

    flavor = ((record.get('request') or {}).get('flavor')) or {}
    if not flavor.get('vcpus') or not flavor.get('ram_mb'):
        return None
    shadow = evaluation.shadow_flavor(flavor, shadow_scale)
    return {'shadow_vcpus': shadow['vcpus'], 'full_vcpus': flavor['vcpus'],
            'shadow_ram_mb': shadow['ram_mb'],
            'full_ram_mb': flavor['ram_mb']}


def landing_host(instance_points):
    """The host most of the VM's points name (a migrated VM's first)."""
    hosts = collections.Counter(p.tags.get('host') for p in instance_points
                                if p.tags.get('host'))
    if not hosts:
        return None
    first = instance_points[0].tags.get('host')
    top = hosts.most_common(1)[0][0]
    return first if first in hosts else top


def scaleup_pairs(record, shadow_points, instance_points, *, window_s,
                  shadow_scale):
    """Pairs of one placed evaluation (see the module docstring).

    Parameters
    ----------
    record : dict
        The evaluation record (``request``, optionally ``scale``).
    shadow_points : list of Point
        The evaluation's ``shadow_sample`` points (any hosts).
    instance_points : list of Point
        The VM's ``instance_metric`` points, in time order.
    window_s : float
        Only the VM's points within this many seconds of its first one
        count.

    Returns
    -------
    list of dict
        ``metric``, ``shadow_value``, ``full_value``, ``host`` and the
        scale keys, as :meth:`ScaleUpModel.fit` takes them.
    """
    if not instance_points:
        return []
    scale = shadow_scale_of(record, shadow_scale)
    host = landing_host(instance_points)
    if scale is None or host is None:
        return []
    shadow = collections.defaultdict(list)
    for point in shadow_points:
        value = point.fields.get('value')
        if point.tags.get('host') == host and value is not None:
            shadow[point.tags.get('metric')].append(float(value))
    start = instance_points[0].time
    full = collections.defaultdict(list)
    for point in instance_points:
        value = point.fields.get('value')
        if (point.tags.get('host') == host and value is not None
                and point.time - start <= window_s):
            full[point.tags.get('metric')].append(float(value))
    pairs = []
    for metric in sorted(set(shadow) & set(full)):
        pair = {'metric': metric, 'host': host,
                'shadow_value': statistics.median(shadow[metric]),
                'full_value': statistics.median(full[metric])}
        pair.update(scale)
        pairs.append(pair)
    return pairs


class ScaleUpLearner:
    """Fits a :class:`ScaleUpModel` on the history's placed evaluations.

    Parameters
    ----------
    history : shadow_service.history.base.HistoryStore
    shadow_scale : float
        ``[shadow] shadow_scale``, for records that predate the recorded
        scale.
    lookback_s : float
        Evaluation records younger than this (store time) are used.
    min_pairs : int
        Fewest pairs a metric needs before its learned correction replaces
        the prior.
    window_s : float
        Seconds of the VM's own metrics after its first point that count.
    refit_every : int
        Calls of :meth:`model` between two refits.
    refit_interval_s : float
        Fewest seconds between two refits.
    max_evaluations : int
        Newest evaluation records read per refit.
    clock, monotonic : callable
        Store time and elapsed time (tests replace them).
    """

    def __init__(self, history, *, shadow_scale=0.25,
                 lookback_s=30 * 86400.0, min_pairs=8, window_s=3600.0,
                 refit_every=10, refit_interval_s=0.0, max_evaluations=500,
                 clock=time.time, monotonic=time.monotonic):
        if min_pairs < 2 or refit_every < 1 or max_evaluations < 1:
            raise ValueError('min_pairs must be at least 2, refit_every and '
                             'max_evaluations at least 1')
        if window_s <= 0:
            raise ValueError('window_s must be positive')
        self.history = history
        self.shadow_scale = float(shadow_scale)
        self.lookback_s = float(lookback_s)
        self.min_pairs = int(min_pairs)
        self.window_s = float(window_s)
        self.refit_every = int(refit_every)
        self.refit_interval_s = float(refit_interval_s)
        self.max_evaluations = int(max_evaluations)
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._model = scaleup_lib.ScaleUpModel(min_pairs=self.min_pairs)
        self._since_fit = 0
        self._fitted_at = None
        self.fits = 0
        self.failures = 0
        self.pairs = 0

    @classmethod
    def from_conf(cls, conf, history):
        """Build from the ``scaleup_*`` options of ``[shadow]``."""
        opts = conf.shadow
        return cls(history, shadow_scale=opts.shadow_scale,
                   lookback_s=opts.scaleup_lookback,
                   min_pairs=opts.scaleup_min_pairs,
                   window_s=opts.scaleup_window,
                   refit_every=opts.contention_refit_every,
                   refit_interval_s=opts.contention_refit_interval,
                   max_evaluations=opts.contention_max_evaluations)

    def model(self):
        """The current :class:`ScaleUpModel` (priors until learned).

        Counts one use, refits when due; never raises.
        """
        try:
            self._since_fit += 1
            if self._due() and self._lock.acquire(blocking=False):
                try:
                    self.refit()
                finally:
                    self._lock.release()
        except Exception:
            LOG.exception('Scale-up learning failed; using the last model')
        return self._model

    def _due(self):
        if self._fitted_at is None:
            return True
        return (self._since_fit >= self.refit_every
                and self._monotonic() - self._fitted_at
                >= self.refit_interval_s)

    def refit(self):
        """Fit now; returns the model (the last good one on failure)."""
        started = self._monotonic()
        self._since_fit = 0
        self._fitted_at = started
        try:
            pairs = self.training_pairs()
            model = scaleup_lib.ScaleUpModel(
                min_pairs=self.min_pairs).fit(pairs)
        except Exception:
            self.failures += 1
            LOG.exception('Fitting the scale-up model failed; keeping the '
                          'last good one')
            return self._model
        self._model = model
        self.pairs = len(pairs)
        self.fits += 1
        LOG.info('Scale-up model refitted from %d pairs in %.2fs; learned: '
                 '%s', len(pairs), self._monotonic() - started,
                 sorted(model.learned) or 'none yet')
        return model

    def training_pairs(self):
        """Pairs of the newest ``max_evaluations`` placed records."""
        now = self._clock()
        records = {}
        for point in self.history.query_points(
                'evaluation', start=now - self.lookback_s, end=now + 1.0):
            raw = point.fields.get('record')
            if raw:
                records[point.tags.get('evaluation')] = raw
        pairs = []
        for evaluation_id in list(records)[-self.max_evaluations:]:
            pairs += self._pairs_of(evaluation_id, records[evaluation_id])
        return pairs

    def _pairs_of(self, evaluation_id, raw_record):
        try:
            record = json.loads(raw_record)
        except (TypeError, ValueError):
            LOG.warning('Evaluation record %s is not JSON; skipped',
                        evaluation_id)
            return []
        instance = (record.get('request') or {}).get('instance_uuid')
        if not instance:
            return []
        instance_points = self.history.query_points(
            'instance_metric', {'instance': str(instance)})
        if not instance_points:
            return []
        shadow_points = self.history.query_points(
            'shadow_sample', {'evaluation': str(evaluation_id)})
        return scaleup_pairs(record, shadow_points, instance_points,
                             window_s=self.window_s,
                             shadow_scale=self.shadow_scale)
