"""A stand-in ranker for the demo and the benchmark.

``make_analyzer()`` returns the real
``shadow_service.analysis.analyzer.Analyzer()``; only when that module cannot
be imported does it return :class:`FallbackAnalyzer`: hosts
ranked by their shadows' mean metrics, each relative to the best host and
weighted by the profile's sensitivity, with no forecast and no history.
Results produced with it say so (its ``name``).
"""

import logging

import numpy as np

from shadow_service.analysis import catalogue

LOG = logging.getLogger(__name__)


class FallbackHost:
    def __init__(self, host, score, predicted, reasons):
        self.host = host
        self.score = score
        self.confidence = 0.5
        self.predicted = predicted
        self.reasons = reasons


class FallbackRanking:
    def __init__(self, hosts):
        self.hosts = sorted(hosts, key=lambda h: (-h.score, h.host))
        self.confidence = 0.5 if hosts else 0.0

    def clearly_worse(self):
        return []

    def to_dict(self):
        return {'confidence': self.confidence,
                'hosts': [{'host': h.host, 'score': round(h.score, 2),
                           'confidence': h.confidence,
                           'predicted': h.predicted, 'reasons': h.reasons}
                          for h in self.hosts]}


class FallbackAnalyzer:
    """Weighted shadow means relative to the best host (no forecasting)."""

    name = 'fallback-shadow-means'

    def rank(self, sensitivity, observations, host_features=None,
             scale=None, data_age_s=None):
        weights = catalogue.metric_weights_from_sensitivity(sensitivity)
        means = {h: {m: float(np.mean(v)) for m, v in metrics.items() if v}
                 for h, metrics in observations.items()}
        scores = dict.fromkeys(means, 0.0)
        worst = {}
        for metric, weight in weights.items():
            values = {h: m[metric] for h, m in means.items() if metric in m}
            for host, value in values.items():
                good = _goodness(metric, value, values)
                scores[host] += weight * 100.0 * good
                if good < worst.get(host, (1.01, ''))[0]:
                    worst[host] = (good, '%s %.3g (%.0f%% of best)'
                                   % (metric, value, 100 * good))
        return FallbackRanking([
            FallbackHost(h, scores[h], means[h],
                         [worst[h][1]] if h in worst else [])
            for h in means])

    def forecast(self, values, step_s, horizon_steps):
        """Seasonal-naive: the same time one day earlier, with an interval
        of +-2 standard deviations of the day-on-day differences."""
        values = np.asarray(values, dtype=float)
        season = int(round(86400.0 / step_s))
        if len(values) <= season:
            mean = np.full(horizon_steps, np.nanmean(values))
            spread = np.full(horizon_steps, 2 * np.nanstd(values))
        else:
            last_day = values[-season:]
            mean = np.resize(last_day, horizon_steps)
            spread = np.full(horizon_steps, 2 * np.nanstd(
                values[season:] - values[:-season]))
        return {'mean': mean.tolist(), 'lower': (mean - spread).tolist(),
                'upper': (mean + spread).tolist(),
                'model': 'seasonal-naive (fallback)'}


def _goodness(metric, value, values):
    if metric in catalogue.PERCENT_METRICS:
        return (100.0 - value) / 100.0
    if catalogue.METRIC_DIRECTIONS.get(metric) == catalogue.LOWER:
        return min(values.values()) / max(value, 1e-12)
    return value / max(max(values.values()), 1e-12)


def make_analyzer():
    """The real Analyzer when it exists, else :class:`FallbackAnalyzer`."""
    try:
        from shadow_service.analysis.analyzer import Analyzer
    except ImportError:
        LOG.warning('shadow_service.analysis.Analyzer is missing: using the '
                    'fallback ranker (shadow means, no forecasting)')
        return FallbackAnalyzer()
    return Analyzer()


def analyzer_name(analyzer):
    """How results name the ranker that produced them."""
    return getattr(analyzer, 'name', None) or '%s.%s' % (
        type(analyzer).__module__, type(analyzer).__name__)
