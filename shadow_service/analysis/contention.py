"""Contention model: achieved performance against host load features.

A linear regression (statsmodels OLS, WLS or quantile regression) of one
metric of a shadow or running VM against the features of the host it ran
on: CPU utilisation and steal, memory-bandwidth and I/O utilisation, the
number of co-located VMs and the hardware class (one-hot). It answers
"what will this host deliver" and "how much worse when k more VMs land on
it", each with a prediction interval.

Per hardware class
    Hosts of different hardware degrade differently (one more busy VM
    costs a 16-thread host more than a 48-thread one), so with
    ``per_class`` (the default) one regression is fitted per hardware
    class that has at least ``min_class_rows`` rows; classes with fewer
    rows, and rows without a class, use the pooled regression (every row,
    the class as one-hot offsets).  ``slope`` and ``degradation`` answer
    per class.
Bounded
    A linear model extrapolates out of any range (a steal of -7 % was
    seen).  ``bounds`` is the metric's physical range (``(0, 100)`` for
    percentages, ``(0, None)`` for throughputs and latencies; see
    :func:`bounds_for`): predictions and their intervals are clipped to
    it, and the predicted degradation is the difference of two clipped
    predictions, so it never takes the metric out of range either.

Incomplete rows
    A regressor value that is missing, not a number, not finite or beyond
    :data:`~shadow_service.analysis.series.MAX_MAGNITUDE` leaves its row
    out of the fit when fewer than half the rows lack that regressor (one
    host without a fact in one evaluation does not cost the model); when
    half or more lack it, the regressor is left out instead.

Fit it on history (one row per measurement with the host's features at
the time); pass fitted models to the analyzer as ``{metric: model}``.
Change the regressors with ``features``, the estimator with ``method``.
"""

import dataclasses
import logging
import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm

from shadow_service import hostfacts
from shadow_service.analysis import series
from shadow_service.workloads import catalogue

LOG = logging.getLogger(__name__)

NUMERIC_FEATURES = hostfacts.CONTENTION_FEATURES
CATEGORICAL_FEATURES = (hostfacts.HARDWARE_CLASS,)
METHODS = ("ols", "wls", "quantile")
CLASS_FEATURE = hostfacts.HARDWARE_CLASS


def bounds_for(metric):
    """Physical range of ``metric``: percentages within 0-100, every other
    metric of the catalogue non-negative."""
    if metric in catalogue.PERCENT_METRICS:
        return (0.0, 100.0)
    return (0.0, None)


#: Host features that count VMs created on / deleted from a host in the
#: last 24 h (Nova's instance actions or notifications give them).
ARRIVALS_FEATURE = hostfacts.VM_ARRIVALS_24H
DEPARTURES_FEATURE = hostfacts.VM_DEPARTURES_24H
CHURN_WINDOW_S = 86400.0


def expected_added_instances(features, horizon_s=86400.0):
    """VMs a host is expected to gain, on average, over the ``horizon_s``
    a new VM is scored over, counting the new VM itself.

    ``1 + max(0, arrivals - departures) / CHURN_WINDOW_S * horizon_s / 2``:
    the VM, plus the host's recent net growth (measured from its churn
    features) continued over the horizon and averaged over it.  A host a
    scheduler keeps choosing grows and is predicted to crowd; a host whose
    VMs leave is not assumed to keep emptying (its departures already show
    in what the shadow measures).  Without churn features it is 1.
    """
    features = features or {}
    try:
        arrivals = float(features.get(ARRIVALS_FEATURE, 0.0) or 0.0)
        departures = float(features.get(DEPARTURES_FEATURE, 0.0) or 0.0)
    except (TypeError, ValueError):
        return 1.0
    if not (np.isfinite(arrivals) and np.isfinite(departures)):
        return 1.0
    growth = max(0.0, arrivals - departures) / CHURN_WINDOW_S
    return 1.0 + growth * max(float(horizon_s), 0.0) / 2.0


class NotFitted(RuntimeError):
    """The model has not been fitted (or had too little data)."""


@dataclasses.dataclass
class Prediction:
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


class _Regression:
    """One linear regression (pooled or of one class): design and fits."""

    def __init__(self, method, level, columns, categories):
        self.method = method
        self.level = level
        self.columns = columns
        self.categories = categories
        self.fits = None

    def design(self, frame):
        parts = [np.ones((len(frame), 1))]
        for column in self.columns:
            parts.append(frame[column].to_numpy(float)[:, None])
        for column, levels in self.categories.items():
            values = (frame[column].astype(str) if column in frame
                      else pd.Series([levels[0]] * len(frame)))
            for level in levels[1:]:
                parts.append((values == level).to_numpy(float)[:, None])
        return np.hstack(parts)

    def names(self):
        names = ["const"] + list(self.columns)
        for column, levels in self.categories.items():
            names += ["%s[%s]" % (column, level) for level in levels[1:]]
        return names

    def fit(self, frame, target, weights):
        design = self.design(frame)
        if len(target) < design.shape[1] + 3:
            raise NotFitted("need at least %d rows, got %d"
                            % (design.shape[1] + 3, len(target)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.method == "quantile":
                alpha = (1 - self.level) / 2
                self.fits = {q: sm.QuantReg(target, design).fit(q=q)
                             for q in (alpha, 0.5, 1 - alpha)}
            elif self.method == "wls":
                self.fits = {"mean": sm.WLS(
                    target, design, weights=np.asarray(weights)).fit()}
            else:
                self.fits = {"mean": sm.OLS(target, design).fit()}
        return self

    def main(self):
        return self.fits.get("mean") or self.fits[0.5]

    def predict(self, frame):
        design = self.design(frame)
        if self.method == "quantile":
            alpha = (1 - self.level) / 2
            mean = self.fits[0.5].predict(design)
            lower = np.minimum(self.fits[alpha].predict(design), mean)
            upper = np.maximum(self.fits[1 - alpha].predict(design), mean)
            return mean, lower, upper
        summary = self.fits["mean"].get_prediction(design).summary_frame(
            alpha=1 - self.level)
        return (summary["mean"].to_numpy(),
                summary["obs_ci_lower"].to_numpy(),
                summary["obs_ci_upper"].to_numpy())

    def coefficient(self, name):
        """``(value, standard error)`` of regressor ``name`` (0, 0 when
        it is not one)."""
        names = self.names()
        if name not in names:
            return 0.0, 0.0
        fit = self.main()
        index = names.index(name)
        return (float(np.asarray(fit.params)[index]),
                float(np.asarray(fit.bse)[index]))


def _complete_regressors(frame, features):
    """``(frame, complete)``: ``frame`` with each regressor in
    ``features`` as floats (NaN where a value is missing, not a number,
    not finite or beyond ``series.MAX_MAGNITUDE``), and the mask of the
    rows to keep. A regressor missing from fewer than half the rows
    marks those rows incomplete; one missing from more is left as it is
    (the fit then leaves the regressor out, not the rows)."""
    complete = np.ones(len(frame), dtype=bool)
    frame = frame.copy()
    for feature in features:
        if feature not in frame:
            continue
        values = pd.to_numeric(frame[feature], errors="coerce").to_numpy(
            float)
        with np.errstate(invalid="ignore"):
            missing = ~(np.abs(values) <= series.MAX_MAGNITUDE)
        frame[feature] = np.where(missing, np.nan, values)
        if 0 < missing.sum() and 2 * missing.sum() < len(frame):
            complete &= ~missing
    return frame, complete


class ContentionModel:
    """Regression of one performance metric on host features.

    Parameters
    ----------
    method : {"ols", "wls", "quantile"}
        ``wls`` needs ``weights`` at fit time; ``quantile`` fits the
        median and the interval's quantiles as three regressions.
    level : float
        Coverage of prediction intervals.
    features : sequence of str, optional
        Numeric regressors (default ``NUMERIC_FEATURES``); missing or
        constant columns are left out at fit time.
    per_class : bool
        Fit one regression per hardware class with enough rows (see the
        module docstring); otherwise one pooled regression with the class
        as an offset.
    min_class_rows : int, optional
        Rows a class needs for its own regression (default: the pooled
        design's columns + 3, and at least 10).
    bounds : tuple of (float or None, float or None), optional
        Physical range of the metric; predictions are clipped to it.
    """

    def __init__(self, *, method="ols", level=0.9, features=None,
                 per_class=True, min_class_rows=None, bounds=None):
        if method not in METHODS:
            raise ValueError("method must be one of %s" % (METHODS,))
        if bounds is not None:
            low, high = bounds
            if low is not None and high is not None and low > high:
                raise ValueError("bounds must be (low, high) with "
                                 "low <= high, got %r" % (bounds,))
        self.method = method
        self.level = level
        self.features = tuple(features or NUMERIC_FEATURES)
        self.per_class = per_class
        self.min_class_rows = min_class_rows
        self.bounds = tuple(bounds) if bounds is not None else (None, None)
        self.columns = None
        self.categories = {}
        #: Rows the last fit left out (no finite target or weight, or a
        #: regressor missing from a minority of the rows).
        self.dropped_rows = 0
        self._pooled = None
        self._by_class = {}

    @property
    def fitted(self):
        return self._pooled is not None

    @property
    def classes(self):
        """Hardware classes with a regression of their own."""
        return sorted(self._by_class)

    def fit(self, rows, target, weights=None):
        """Fit on ``rows`` (DataFrame or list of feature dicts).

        Parameters
        ----------
        rows : pandas.DataFrame or list of dict
            Host features per observation.
        target : array-like
            The metric achieved in each observation; observations whose
            target (or weight) is NaN or infinite are left out.
        weights : array-like, optional
            Observation weights for ``wls`` (e.g. sample counts).

        Returns
        -------
        ContentionModel
            ``self``; raises :class:`NotFitted` with too few rows.
        """
        frame = pd.DataFrame(rows).reset_index(drop=True)
        target = np.asarray(target, dtype=float)
        if self.method == "wls" and weights is None:
            raise ValueError("wls needs weights")
        weights = (np.ones(len(target)) if weights is None
                   else np.asarray(weights, dtype=float))
        finite = np.isfinite(target) & np.isfinite(weights)
        if not finite.all():
            # One NaN would make every coefficient NaN.
            frame = frame[finite].reset_index(drop=True)
            target, weights = target[finite], weights[finite]
            dropped = "; %d left out without a finite target or weight" % (
                np.size(finite) - int(finite.sum()))
        else:
            dropped = ""
        self.dropped_rows = int(np.size(finite) - finite.sum())
        frame, complete = _complete_regressors(frame, self.features)
        if not complete.all():
            frame = frame[complete].reset_index(drop=True)
            target, weights = target[complete], weights[complete]
            dropped += "; %d left out with a regressor missing" % (
                np.size(complete) - int(complete.sum()))
            self.dropped_rows += int(np.size(complete) - complete.sum())
        usable = [f for f in self.features if f in frame
                  and frame[f].notna().all() and frame[f].nunique() > 1]
        self.categories = {
            c: sorted(frame[c].astype(str).unique())
            for c in CATEGORICAL_FEATURES
            if c in frame and frame[c].nunique() > 1}
        self.columns = usable
        pooled = _Regression(self.method, self.level, usable,
                             self.categories)
        try:
            pooled.fit(frame, target, weights)
        except NotFitted as error:
            raise NotFitted(str(error) + dropped)
        by_class = {}
        if self.per_class and CLASS_FEATURE in self.categories:
            needed = self.min_class_rows or max(10, len(usable) + 4)
            classes = frame[CLASS_FEATURE].astype(str)
            for level in self.categories[CLASS_FEATURE]:
                mask = (classes == level).to_numpy()
                subset = frame[mask].reset_index(drop=True)
                columns = [c for c in usable if subset[c].nunique() > 1]
                if mask.sum() < needed or not columns:
                    continue
                try:
                    by_class[level] = _Regression(
                        self.method, self.level, columns, {}).fit(
                            subset, target[mask], weights[mask])
                except NotFitted:
                    continue
        self._pooled = pooled
        self._by_class = by_class
        return self

    def _check_fitted(self):
        if not self.fitted:
            raise NotFitted("fit the model first")

    def _regression(self, hardware_class=None):
        self._check_fitted()
        return self._by_class.get(str(hardware_class), self._pooled) \
            if hardware_class is not None else self._pooled

    def names(self, hardware_class=None):
        """Regressor names in design-matrix order."""
        return self._regression(hardware_class).names()

    def params(self, hardware_class=None):
        """Fitted coefficients as ``{name: value}`` (median for quantile)
        of ``hardware_class``'s regression (the pooled one by default or
        when the class has none)."""
        regression = self._regression(hardware_class)
        return dict(zip(regression.names(),
                        np.asarray(regression.main().params)))

    def slope(self, feature="num_instances", hardware_class=None):
        """Change of the metric per unit of ``feature`` (0 if unused), for
        ``hardware_class`` (pooled by default)."""
        return self.params(hardware_class).get(feature, 0.0)

    def _clip(self, values):
        low, high = self.bounds
        if low is None and high is None:
            return values
        return np.clip(values, -np.inf if low is None else low,
                       np.inf if high is None else high)

    def predict(self, rows):
        """Predict the metric with a prediction interval, within
        ``bounds``.

        Parameters
        ----------
        rows : dict, list of dict or pandas.DataFrame
            Features; missing numeric features are an error.  A row's
            ``hardware_class`` picks its class's regression.

        Returns
        -------
        Prediction
        """
        self._check_fitted()
        if isinstance(rows, dict):
            rows = [rows]
        frame = pd.DataFrame(rows).reset_index(drop=True)
        missing = [c for c in self.columns if c not in frame]
        if missing:
            raise ValueError("missing features: %s" % ", ".join(missing))
        mean = np.empty(len(frame))
        lower = np.empty(len(frame))
        upper = np.empty(len(frame))
        classes = (frame[CLASS_FEATURE].astype(str).to_numpy()
                   if CLASS_FEATURE in frame
                   else np.array([None] * len(frame), dtype=object))
        for level in pd.unique(classes):
            mask = classes == level
            regression = self._regression(level)
            part = frame[mask].reset_index(drop=True)
            mean[mask], lower[mask], upper[mask] = regression.predict(part)
        return Prediction(self._clip(mean), self._clip(lower),
                          self._clip(upper))

    def degradation(self, features, added_instances=1):
        """Predicted change of the metric when VMs are added to a host.

        The change is the difference between the (bounded) predictions
        with ``num_instances`` raised by ``added_instances`` and as is,
        from the regression of the host's hardware class.

        Returns
        -------
        tuple of (float, float)
            Change of the mean and its standard error (from the slope's
            standard error, shrunk as the bounds shrink the change; 0
            when ``num_instances`` is not a regressor).
        """
        self._check_fitted()
        regression = self._regression(features.get(CLASS_FEATURE))
        if "num_instances" not in regression.columns or not added_instances:
            return 0.0, 0.0
        slope, slope_se = regression.coefficient("num_instances")
        now = self.predict(features).mean[0]
        later = self.predict(dict(
            features, num_instances=float(features["num_instances"])
            + added_instances)).mean[0]
        change = float(later - now)
        linear = slope * added_instances
        shrink = min(1.0, abs(change) / abs(linear)) if linear else 0.0
        return change, abs(slope_se * added_instances) * shrink
