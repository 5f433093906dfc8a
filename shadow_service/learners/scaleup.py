"""Learning the shadow-to-full-flavor scale-up from placed VMs.

A shadow runs a flavor-minimal copy of the VM; the analyzer scales what it
measured up to the full flavor with
:class:`~shadow_service.analysis.scaleup.ScaleUpModel`, whose exponents are
documented priors until (shadow, full VM) pairs exist.  This module is the
I/O edge that makes those pairs:

* an evaluation record whose request carries an ``instance_uuid`` (the
  weigher sends Nova's) names the VM the evaluation was for;
* Nova's ``instance.create.end`` notification (recorded by the
  service's notification listener) says where it landed; without it the
  host most of the VM's points name is taken;
* the VM's ``instance_metric`` points (written by the cloud driver's
  monitoring) say what it achieved;
* the evaluation's ``shadow_sample`` points on that same host say what the
  shadow achieved there.

One pair per (evaluation, metric): the median of the shadow's samples on
the VM's host against the median of the VM's own figures over its first
``window_s`` seconds (close in time to the shadow run, so the host's load
changed little in between).  Samples that are not finite numbers within
:data:`~shadow_service.analysis.series.MAX_MAGNITUDE` are left out of the
medians, and a pair with a median that is not positive (or is beyond
that magnitude, or below its inverse) is not fitted.  Hosts where no
shadow ran (the VM landed on a host ranked from history, or Nova chose
another host than the measured ones) give no pair.

Refits are throttled like the contention learner's and never raise: a
failing store or fit is logged and the last good model stays in use.
Configure it in the ``[shadow]`` group (``scaleup_*`` options).
"""

import collections
import logging
import math
import statistics
import time

from shadow_service import measurements as names
from shadow_service import notifications
from shadow_service.analysis import scaleup as scaleup_lib
from shadow_service.analysis import series
from shadow_service.learners import base

LOG = logging.getLogger(__name__)


def shadow_scale_of(record, shadow_scale):
    """The ``scale`` keys of an evaluation record.

    Records written since the scale is recorded carry it; for older ones it
    is recomputed from the request's flavor and ``shadow_scale``, and
    records that predate the load ratio get the one ``shadow_scale`` gives.
    """
    scale = record.get('scale')
    if scale:
        scale = dict(scale)
        scale.setdefault('load_ratio', 1.0 / float(shadow_scale))
        return scale
    flavor = ((record.get('request') or {}).get('flavor')) or {}
    if not flavor.get('vcpus') or not flavor.get('ram_mb'):
        return None
    return scaleup_lib.scale_keys(flavor, shadow_scale)


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
                  shadow_scale, placed_on=None):
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
    placed_on : str, optional
        The host Nova placed the VM on (its ``instance.create.end``
        notification); guessed from the VM's points when unknown.

    Returns
    -------
    list of dict
        ``metric``, ``shadow_value``, ``full_value``, ``host`` and the
        scale keys, as :meth:`ScaleUpModel.fit` takes them.
    """
    if not instance_points:
        return []
    scale = shadow_scale_of(record, shadow_scale)
    host = placed_on or landing_host(instance_points)
    if scale is None or host is None:
        return []
    shadow = collections.defaultdict(list)
    for point in shadow_points:
        value = point.fields.get('value')
        if point.tags.get('host') == host and _usable(value):
            shadow[point.tags.get('metric')].append(float(value))
    start = instance_points[0].time
    full = collections.defaultdict(list)
    for point in instance_points:
        value = point.fields.get('value')
        if (point.tags.get('host') == host and _usable(value)
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


def _usable(value):
    """Whether a sample is a measurement: a finite number within
    :data:`~shadow_service.analysis.series.MAX_MAGNITUDE`."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(value) and abs(value) <= series.MAX_MAGNITUDE


class ScaleUpLearner(base.HistoryLearner):
    """Fits a :class:`ScaleUpModel` on the history's placed evaluations.

    Parameters (besides those of
    :class:`~shadow_service.learners.base.HistoryLearner`)
    ------------------------------------------------------
    shadow_scale : float
        ``[shadow] shadow_scale``, for records that predate the recorded
        scale.
    min_pairs : int
        Fewest pairs a metric needs before its learned correction replaces
        the prior.
    window_s : float
        Seconds of the VM's own metrics after its first point that count.
    """

    what = 'the scale-up model'

    def __init__(self, history, *, shadow_scale=0.25,
                 lookback_s=30 * 86400.0, min_pairs=8, window_s=3600.0,
                 refit_every=10, refit_interval_s=0.0, max_evaluations=500,
                 clock=time.time, monotonic=None):
        if min_pairs < 2:
            raise ValueError('min_pairs must be at least 2')
        if window_s <= 0:
            raise ValueError('window_s must be positive')
        super().__init__(
            history, lookback_s=lookback_s, refit_every=refit_every,
            refit_interval_s=refit_interval_s,
            max_evaluations=max_evaluations,
            initial=scaleup_lib.ScaleUpModel(min_pairs=int(min_pairs)),
            clock=clock, monotonic=monotonic)
        self.shadow_scale = float(shadow_scale)
        self.min_pairs = int(min_pairs)
        self.window_s = float(window_s)
        self.pairs = 0

    @classmethod
    def from_conf(cls, conf, history, clock=time.time):
        """Build from the ``scaleup_*`` options of ``[shadow]``; ``clock``
        is the time base of the evaluation records (the driver's ``now``).
        """
        opts = conf.shadow
        return cls(history, shadow_scale=opts.shadow_scale,
                   lookback_s=opts.scaleup_lookback,
                   min_pairs=opts.scaleup_min_pairs,
                   window_s=opts.scaleup_window,
                   refit_every=opts.scaleup_refit_every,
                   refit_interval_s=opts.scaleup_refit_interval,
                   max_evaluations=opts.scaleup_max_evaluations,
                   clock=clock)

    def model(self):
        """The current :class:`ScaleUpModel` (priors until learned).

        Counts one use, refits when due; never raises.
        """
        return self._use_or_last()

    def _fit(self):
        pairs = self.training_pairs()
        model = scaleup_lib.ScaleUpModel(min_pairs=self.min_pairs).fit(pairs)
        self.pairs = len(pairs)
        return model, len(pairs)

    def _describe(self, model):
        return 'learned %s' % (sorted(model.learned) or 'nothing yet')

    def training_pairs(self):
        """Pairs of the newest ``max_evaluations`` placed records."""
        pairs = []
        for evaluation_id, record in self.records():
            instance = (record.get('request') or {}).get('instance_uuid')
            if not instance:
                continue
            instance_points = self.history.query_points(
                names.INSTANCE_METRIC, {names.TAG_INSTANCE: str(instance)})
            if not instance_points:
                continue
            shadow_points = self.history.query_points(
                names.SHADOW_SAMPLE,
                {names.TAG_EVALUATION: str(evaluation_id)})
            pairs += scaleup_pairs(
                record, shadow_points, instance_points,
                window_s=self.window_s, shadow_scale=self.shadow_scale,
                placed_on=notifications.placement_of(self.history,
                                                     instance))
        return pairs
