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
:func:`workload_key`): a model never mixes profiles or flavor sizes.  A
metric gets a model only with ``min_rows`` rows, a target that varies and
at least one host-load regressor that varies.

Refits are throttled (``refit_every`` evaluations and ``refit_interval_s``
seconds since the last one) and never raise: a failing history store or
fit is logged and the last good models stay in use.  Configure it in the
``[shadow]`` group (``contention_*`` options, ``conf/service.py``).
"""

import collections
import json
import logging
import math
import statistics
import threading
import time

import numpy as np

LOG = logging.getLogger(__name__)

#: Host features an evaluation record keeps: the contention regressors
#: plus everything else the driver reports (scalars only).
FEATURE_TYPES = (str, bool, int, float)

#: Estimators of ``analysis.contention.ContentionModel`` (imported lazily:
#: statsmodels is only loaded once there is something to fit).
METHODS = ('ols', 'wls', 'quantile')

#: Default regressors (besides the hardware class).  Utilisation and steal
#: are left out on purpose: they are *consequences* of the VMs on a host,
#: so with them in the fit the ``num_instances`` slope only measures a VM
#: that adds no load (about 0, or even the wrong sign), while the analyzer
#: needs the whole effect of one more VM arriving.
DEFAULT_FEATURES = ('num_instances',)


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
        and the host's features; hosts without features are left out.
    """
    features = record.get('host_features') or {}
    values = collections.defaultdict(list)
    profiles = {}
    for point in samples:
        host = point.tags.get('host')
        metric = point.tags.get('metric')
        value = point.fields.get('value')
        if host not in features or not metric or value is None:
            continue
        values[(host, metric)].append(float(value))
        profiles[host] = point.tags.get('profile')
    rows = []
    for (host, metric), measured in sorted(values.items()):
        row = dict(features[host])
        row.update({
            'key': workload_key(record.get('request'), profiles[host]),
            'metric': metric, 'host': host,
            'value': statistics.median(measured),
            'samples': len(measured)})
        rows.append(row)
    return rows


def fit_models(rows, *, min_rows, method='ols', level=0.9,
               features=DEFAULT_FEATURES):
    """``{key: {metric: fitted ContentionModel}}`` from training rows.

    Metrics with fewer than ``min_rows`` rows, a constant target or no
    varying host-load regressor get no model.
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
    if not model.columns:
        return None
    return model


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
    monotonic : callable
        Elapsed time for the refit interval.
    """

    #: What a refit learns, for log messages.
    what = 'models'

    def __init__(self, history, *, lookback_s, refit_every,
                 refit_interval_s, max_evaluations, initial,
                 clock=time.time, monotonic=time.monotonic):
        if refit_every < 1 or max_evaluations < 1:
            raise ValueError('refit_every and max_evaluations must be at '
                             'least 1')
        self.history = history
        self.lookback_s = float(lookback_s)
        self.refit_every = int(refit_every)
        self.refit_interval_s = float(refit_interval_s)
        self.max_evaluations = int(max_evaluations)
        self._clock = clock
        self._monotonic = monotonic
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
        ``max_evaluations`` parseable records in the lookback window."""
        now = self._clock()
        raw = {}
        for point in self.history.query_points(
                'evaluation', start=now - self.lookback_s, end=now + 1.0):
            record = point.fields.get('record')
            if record:
                raw[point.tags.get('evaluation')] = record
        records = []
        for evaluation_id in list(raw)[-self.max_evaluations:]:
            try:
                records.append((evaluation_id,
                                json.loads(raw[evaluation_id])))
            except (TypeError, ValueError):
                LOG.warning('Evaluation record %s is not JSON; skipped',
                            evaluation_id)
        return records


class ContentionLearner(HistoryLearner):
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
                 clock=time.time,
                 monotonic=time.monotonic):
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
            return dict(models.get(workload_key(request, profile_name), {}))
        except Exception:
            LOG.exception('Contention models unavailable; ranking without')
            return {}

    def _fit(self):
        rows = self.training_rows()
        models = fit_models(rows, min_rows=self.min_rows,
                            method=self.method, level=self.level,
                            features=self.features)
        self.rows = len(rows)
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
                'shadow_sample', {'evaluation': str(evaluation_id)})
            rows += training_rows(record, samples)
        return rows
