"""Learning the contention model from the evaluations already run.

:class:`ContentionLearner` is the I/O edge of
:mod:`shadow_service.analysis.contention`: it reads the evaluation records
the :class:`~shadow_service.evaluation.Evaluator` left in the history store
(each carries the ``host_features`` its hosts had when it ran), joins them
with the ``shadow_sample`` points of the same evaluation, and fits one
:class:`~shadow_service.analysis.contention.ContentionModel` per workload
and metric.  The evaluator asks it for models before ranking and hands them
to the analyzer, so every ranking uses what earlier shadows taught about
how each host's load degrades performance.

Models are fitted per hardware class where a class has enough rows and
are bounded to the metric's physical range (see
:mod:`shadow_service.analysis.contention`).

One training row is one (evaluation, host, metric): the median of the
shadow's samples of the metric, its sample count (the weight for ``wls``)
and the host's features at that time.  Rows are grouped by workload (see
:func:`~shadow_service.learners.base.workload_key`): a model never mixes
profiles or flavor sizes.  A metric gets a model only with ``min_rows``
rows, a target that varies and at least one host-load regressor that
varies.  A row without a usable value of a regressor (a host fact missing
from one evaluation) is left out of the fit while fewer than half the
rows lack it, and ``min_rows`` counts the rows that remain.

Refits are throttled (``refit_every`` evaluations and ``refit_interval_s``
seconds since the last one) and never raise: a failing history store or
fit is logged and the last good models stay in use.  Configure it in the
``[shadow]`` group (``contention_*`` options, ``conf/service.py``).
"""

import collections
import logging
import math
import statistics
import time

import numpy as np

from shadow_service import measurements as names
from shadow_service.analysis import series
from shadow_service.learners import base

LOG = logging.getLogger(__name__)

#: Estimators of ``analysis.contention.ContentionModel`` (imported lazily:
#: statsmodels is only loaded once there is something to fit).
METHODS = ('ols', 'wls', 'quantile')

#: Default regressors (besides the hardware class).  Utilisation and steal
#: are left out on purpose: they are *consequences* of the VMs on a host,
#: so with them in the fit the ``num_instances`` slope only measures a VM
#: that adds no load (about 0, or even the wrong sign), while the analyzer
#: needs the whole effect of one more VM arriving.
DEFAULT_FEATURES = ('num_instances',)


def training_rows(record, samples):
    """Rows of one evaluation record joined with its ``shadow_sample``s.

    Parameters
    ----------
    record : dict
        An evaluation record with ``request`` and ``host_features``.
    samples : list of shadow_service.history.base.Point
        The evaluation's ``shadow_sample`` points.

    Returns
    -------
    list of dict
        ``key``, ``metric``, ``host``, ``value`` (median), ``samples``
        and the host's features; hosts without features, and samples
        without a finite value within
        :data:`~shadow_service.analysis.series.MAX_MAGNITUDE`, are left
        out.
    """
    features = record.get('host_features') or {}
    values = collections.defaultdict(list)
    profiles = {}
    for point in samples:
        host = point.tags.get('host')
        metric = point.tags.get('metric')
        value = point.fields.get('value')
        if host not in features or not metric or not _usable(value):
            continue
        values[(host, metric)].append(float(value))
        profiles[host] = point.tags.get('profile')
    rows = []
    for (host, metric), measured in sorted(values.items()):
        row = dict(features[host])
        row.update({
            'key': base.workload_key(record.get('request'),
                                    profiles[host]),
            'metric': metric, 'host': host,
            'value': statistics.median(measured),
            'samples': len(measured)})
        rows.append(row)
    return rows


def _usable(value):
    """Whether a sample's value is a measurement: a finite number within
    :data:`~shadow_service.analysis.series.MAX_MAGNITUDE` (one beyond it
    in a row's median would make the model's coefficients as large)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(value) and abs(value) <= series.MAX_MAGNITUDE


def fit_models(rows, *, min_rows, method='ols', level=0.9,
               features=DEFAULT_FEATURES):
    """``{key: {metric: fitted ContentionModel}}`` from training rows.

    Metrics with fewer than ``min_rows`` rows (complete ones: see
    :meth:`ContentionModel.fit
    <shadow_service.analysis.contention.ContentionModel.fit>`), a constant
    target or no varying host-load regressor get no model.
    """
    import pandas as pd

    if not rows:
        return {}
    frame = pd.DataFrame(rows)
    models = collections.defaultdict(dict)
    for (key, metric), group in frame.groupby(['key', 'metric'],
                                              sort=True):
        model = _fit_one(group, min_rows=min_rows, method=method,
                         level=level, features=features)
        if model is not None:
            models[key][metric] = model
            LOG.debug('Contention model for %s %s: %d rows, %s', key,
                      metric, len(group), model.params())
    return dict(models)


def _fit_one(group, *, min_rows, method, level, features):
    from shadow_service.analysis import contention as contention_lib

    target = group['value'].to_numpy(float)
    if len(group) < min_rows or np.ptp(target) <= 1e-9 * max(
            1.0, float(np.max(np.abs(target)))):
        return None
    metric = str(group['metric'].iloc[0])
    model = contention_lib.ContentionModel(
        method=method, level=level, features=features,
        bounds=contention_lib.bounds_for(metric))
    try:
        model.fit(group.reset_index(drop=True), target,
                  weights=group['samples'].to_numpy(float))
    except (contention_lib.NotFitted, ValueError, np.linalg.LinAlgError):
        return None
    if not model.columns or len(group) - model.dropped_rows < min_rows:
        return None
    return model


class ContentionLearner(base.HistoryLearner):
    """Fits contention models on the history store's past evaluations.

    Parameters (besides :class:`HistoryLearner`'s)
    ----------------------------------------------
    min_rows : int
        Fewest training rows a metric needs for a model.
    method : {"ols", "wls", "quantile"}
        Estimator of :class:`ContentionModel` (``wls`` weighs rows by
        their sample count).
    features : sequence of str
        Numeric regressors (see :data:`DEFAULT_FEATURES`); the hardware
        class is always one.
    """

    what = 'contention models'

    def __init__(self, history, *, lookback_s=7 * 86400.0, min_rows=30,
                 refit_every=10, refit_interval_s=0.0, max_evaluations=200,
                 method='ols', level=0.9, features=DEFAULT_FEATURES,
                 clock=time.time, monotonic=None):
        if min_rows < 1:
            raise ValueError('min_rows must be at least 1')
        if method not in METHODS:
            raise ValueError('method must be one of %s' % (METHODS,))
        super().__init__(history, lookback_s=lookback_s,
                         refit_every=refit_every,
                         refit_interval_s=refit_interval_s,
                         max_evaluations=max_evaluations, initial={},
                         clock=clock, monotonic=monotonic)
        self.min_rows = int(min_rows)
        self.method = method
        self.level = level
        self.features = tuple(features)
        self.rows = 0
        # What it handed out (the placement benchmark and operators read
        # these): evaluations given at least one model, models per metric,
        # and every workload/metric a refit ever produced a model for.
        self.evaluations_with_models = 0
        self.models_by_metric = {}
        self.fitted_keys = set()

    @classmethod
    def from_conf(cls, conf, history, clock=time.time):
        """Build from the ``contention_*`` options of ``[shadow]``;
        ``clock`` is the time base of the evaluation records (the cloud
        driver's ``now``, virtual in the twin)."""
        opts = conf.shadow
        return cls(history, lookback_s=opts.contention_lookback,
                   clock=clock,
                   min_rows=opts.contention_min_rows,
                   refit_every=opts.contention_refit_every,
                   refit_interval_s=opts.contention_refit_interval,
                   max_evaluations=opts.contention_max_evaluations,
                   method=opts.contention_method,
                   features=opts.contention_features)

    @property
    def _models(self):
        return self._state

    def models(self, request, profile_name):
        """``{metric: fitted model}`` for one evaluation's workload.

        Counts one evaluation, refits when due, and returns ``{}`` until
        the history holds enough of this workload.  Never raises.
        """
        try:
            models = self._use()
            found = dict(models.get(base.workload_key(request, profile_name),
                                    {}))
        except Exception:
            LOG.exception('Contention models unavailable; ranking without')
            return {}
        if found:
            self.evaluations_with_models += 1
        for metric in found:
            self.models_by_metric[metric] = (
                self.models_by_metric.get(metric, 0) + 1)
        return found

    def _fit(self):
        rows = self.training_rows()
        models = fit_models(rows, min_rows=self.min_rows,
                            method=self.method, level=self.level,
                            features=self.features)
        self.rows = len(rows)
        self.fitted_keys |= {'/'.join(map(str, key)) + ':' + metric
                             for key, metrics in models.items()
                             for metric in metrics}
        return models, len(rows)

    def _describe(self, models):
        return {'/'.join(map(str, k)): sorted(m)
                for k, m in models.items()} or 'none yet'

    def training_rows(self):
        """Rows of the newest ``max_evaluations`` records in the window."""
        rows = []
        for evaluation_id, record in self.records():
            if not record.get('host_features'):
                continue
            samples = self.history.query_points(
                names.SHADOW_SAMPLE,
                {names.TAG_EVALUATION: str(evaluation_id)})
            rows += training_rows(record, samples)
        return rows
