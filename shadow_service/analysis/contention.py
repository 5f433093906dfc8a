"""Contention model: achieved performance against host load features.

A linear regression (statsmodels OLS, WLS or quantile regression) of one
metric of a shadow or running VM against the features of the host it ran
on: CPU utilisation and steal, memory-bandwidth and I/O utilisation, the
number of co-located VMs and the hardware class (one-hot). It answers
"what will this host deliver" and "how much worse when k more VMs land on
it", each with a prediction interval.

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

LOG = logging.getLogger(__name__)

NUMERIC_FEATURES = ("cpu_util_pct", "cpu_steal_pct", "mem_bw_util",
                    "io_util", "num_instances")
CATEGORICAL_FEATURES = ("hardware_class",)
METHODS = ("ols", "wls", "quantile")


class NotFitted(RuntimeError):
    """The model has not been fitted (or had too little data)."""


@dataclasses.dataclass
class Prediction:
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


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
    """

    def __init__(self, *, method="ols", level=0.9, features=None):
        if method not in METHODS:
            raise ValueError("method must be one of %s" % (METHODS,))
        self.method = method
        self.level = level
        self.features = tuple(features or NUMERIC_FEATURES)
        self.columns = None
        self.categories = {}
        self._fits = None

    @property
    def fitted(self):
        return self._fits is not None

    def fit(self, rows, target, weights=None):
        """Fit on ``rows`` (DataFrame or list of feature dicts).

        Parameters
        ----------
        rows : pandas.DataFrame or list of dict
            Host features per observation.
        target : array-like
            The metric achieved in each observation.
        weights : array-like, optional
            Observation weights for ``wls`` (e.g. sample counts).

        Returns
        -------
        ContentionModel
            ``self``; raises :class:`NotFitted` with too few rows.
        """
        frame = pd.DataFrame(rows).reset_index(drop=True)
        target = np.asarray(target, dtype=float)
        usable = [f for f in self.features if f in frame
                  and frame[f].notna().all() and frame[f].nunique() > 1]
        self.categories = {
            c: sorted(frame[c].astype(str).unique())
            for c in CATEGORICAL_FEATURES
            if c in frame and frame[c].nunique() > 1}
        self.columns = usable
        design = self._design(frame)
        if len(target) < design.shape[1] + 3:
            raise NotFitted("need at least %d rows, got %d"
                            % (design.shape[1] + 3, len(target)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._fits = self._fit_design(design, target, weights)
        return self

    def _fit_design(self, design, target, weights):
        if self.method == "quantile":
            alpha = (1 - self.level) / 2
            return {q: sm.QuantReg(target, design).fit(q=q)
                    for q in (alpha, 0.5, 1 - alpha)}
        if self.method == "wls":
            if weights is None:
                raise ValueError("wls needs weights")
            return {"mean": sm.WLS(target, design,
                                   weights=np.asarray(weights)).fit()}
        return {"mean": sm.OLS(target, design).fit()}

    def _design(self, frame):
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
        """Regressor names in design-matrix order."""
        names = ["const"] + list(self.columns)
        for column, levels in self.categories.items():
            names += ["%s[%s]" % (column, level) for level in levels[1:]]
        return names

    def params(self):
        """Fitted coefficients as ``{name: value}`` (median for quantile)."""
        fit = self._main_fit()
        return dict(zip(self.names(), np.asarray(fit.params)))

    def slope(self, feature="num_instances"):
        """Change of the metric per unit of ``feature`` (0 if unused)."""
        return self.params().get(feature, 0.0)

    def _main_fit(self):
        if not self.fitted:
            raise NotFitted("fit the model first")
        return self._fits.get("mean") or self._fits[0.5]

    def predict(self, rows):
        """Predict the metric with a prediction interval.

        Parameters
        ----------
        rows : dict, list of dict or pandas.DataFrame
            Features; missing numeric features are an error.

        Returns
        -------
        Prediction
        """
        if isinstance(rows, dict):
            rows = [rows]
        frame = pd.DataFrame(rows).reset_index(drop=True)
        missing = [c for c in self.columns if c not in frame]
        if missing:
            raise ValueError("missing features: %s" % ", ".join(missing))
        design = self._design(frame)
        if self.method == "quantile":
            alpha = (1 - self.level) / 2
            mean = self._fits[0.5].predict(design)
            lower = np.minimum(self._fits[alpha].predict(design), mean)
            upper = np.maximum(self._fits[1 - alpha].predict(design), mean)
            return Prediction(mean, lower, upper)
        frame = self._fits["mean"].get_prediction(design).summary_frame(
            alpha=1 - self.level)
        return Prediction(frame["mean"].to_numpy(),
                          frame["obs_ci_lower"].to_numpy(),
                          frame["obs_ci_upper"].to_numpy())

    def degradation(self, features, added_instances=1):
        """Predicted change of the metric when VMs are added to a host.

        Returns
        -------
        tuple of (float, float)
            Change of the mean and its standard error (from the slope's
            standard error; 0 when ``num_instances`` is not a regressor).
        """
        if "num_instances" not in self.columns:
            return 0.0, 0.0
        fit = self._main_fit()
        index = self.names().index("num_instances")
        slope = float(np.asarray(fit.params)[index])
        slope_se = float(np.asarray(fit.bse)[index])
        return slope * added_instances, abs(slope_se * added_instances)
