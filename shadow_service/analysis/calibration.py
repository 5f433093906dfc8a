"""Measure whether the analyzer's confidence is calibrated.

A confidence c is calibrated when rankings given confidence c are right
about c of the time. :func:`reliability` bins (confidence, outcome) pairs
into a reliability table with the expected calibration error (ECE).
:func:`trace_driven_reliability` builds ranking cases whose hosts'
performance follows real utilisation traces (background load degrading
CPU throughput, raising steal and round-trip latency), ranks the first
samples with the analyzer, and checks the order against the mean of a
later window (after the case's data age). ``constructed`` cases use
stationary noise instead of traces.

:class:`CalibrationMap` is the correction learned from what really
happened: fitted on (stated confidence, was the top host really best)
pairs of placed VMs, it maps a raw confidence to the share of such
rankings that were right (isotonic regression over bins, each bin shrunk
toward the identity by ``prior_pairs`` pseudo-pairs, so few outcomes move
it little; flat beyond the outermost fitted bins), at the share of the
candidates' RAM allocated when they were ranked: a ranking made in a
cloud allocated beyond (or below) the shares its outcomes come from, by
more than ``share_margin``, keeps its raw confidence.
:class:`LogisticCalibrationMap` (the service's default, ``[analysis]
calibration_method``) is the same correction as a straight line in
log-odds (Platt scaling), two figures learned from every outcome at once,
from a prior map (``[analysis] calibration_prior_map``) stated before any
outcome is known.
Pure: series in, tables out.
"""

import numpy as np

from shadow_service.analysis import analyzer as analyzer_lib
from shadow_service.analysis import score as score_lib

BIN_EDGES = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
SAMPLE_COUNTS = (3, 6, 12, 24, 48)
AGE_STEPS = (0, 0, 6, 36, 144)
FUTURE_STEPS = 12
STEP_S = 300.0
#: Allocated RAM share beyond the range of the map's outcomes within
#: which the map still holds.
SHARE_MARGIN = 0.02
PROFILES = ({"cpu": 1.0}, {"cpu": 0.5, "latency": 0.5},
            {"cpu": 0.3, "network": 0.2, "latency": 0.5})


def reliability(confidences, outcomes, edges=BIN_EDGES):
    """Reliability table of confidences against 0/1 (or 0..1) outcomes."""
    confidences = np.asarray(confidences, dtype=float)
    outcomes = np.asarray(outcomes, dtype=float)
    rows = []
    ece = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidences >= low) & ((confidences < high)
                                         | (high == edges[-1])
                                         & (confidences <= high))
        count = int(np.sum(inside))
        if not count:
            continue
        mean_confidence = float(np.mean(confidences[inside]))
        accuracy = float(np.mean(outcomes[inside]))
        ece += count * abs(mean_confidence - accuracy)
        rows.append({"bin": [low, high], "count": count,
                     "mean_confidence": round(mean_confidence, 4),
                     "observed_accuracy": round(accuracy, 4)})
    total = len(confidences)
    return {"rows": rows, "count": total,
            "ece": round(ece / total, 4) if total else None}


def _performance(load, rng, base_ops, base_rtt):
    """Metric series of a VM on a host whose background load is ``load``."""
    size = load.size
    return {
        "cpu_ops_per_s": base_ops * (1 - 0.5 * load)
        * (1 + 0.03 * rng.standard_normal(size)),
        "cpu_steal_pct": 8.0 * load + 0.5 * np.abs(
            rng.standard_normal(size)),
        "net_p95_rtt_ms": base_rtt * (1 + 1.5 * load)
        * (1 + 0.05 * rng.standard_normal(size)),
    }


def _case(pool, rng, kind):
    hosts = int(rng.integers(2, 7))
    samples = int(rng.choice(SAMPLE_COUNTS))
    age = int(rng.choice(AGE_STEPS))
    length = samples + age + FUTURE_STEPS
    observations, truth = {}, {}
    for index in range(hosts):
        if kind == "trace":
            while True:
                trace = pool[int(rng.integers(len(pool)))]
                if trace.size > length + 1:
                    break
            start = int(rng.integers(0, trace.size - length))
            load = np.clip(trace[start:start + length], 0, 100) / 100.0
        else:
            load = np.clip(rng.uniform(0, 0.6) + 0.1
                           * rng.standard_normal(length), 0, 1)
        series = _performance(load, rng, 1000 * rng.lognormal(0, 0.1),
                              rng.lognormal(0, 0.1))
        host = "host-%d" % index
        observations[host] = {m: v[:samples] for m, v in series.items()}
        truth[host] = {m: float(np.mean(v[-FUTURE_STEPS:]))
                       for m, v in series.items()}
    return observations, truth, age * STEP_S


def run_cases(pool, *, cases, seed=0, kind="trace", analyzer=None):
    """Rank ``cases`` cases; return per-host and overall outcomes."""
    rng = np.random.default_rng(seed)
    analyzer = analyzer or analyzer_lib.Analyzer(draws=300)
    host_confidence, host_outcome = [], []
    overall_confidence, overall_outcome = [], []
    for _ in range(cases):
        observations, truth, age_s = _case(pool, rng, kind)
        sensitivity = PROFILES[int(rng.integers(len(PROFILES)))]
        ranking = analyzer.rank(
            sensitivity, observations,
            data_age_s={h: age_s for h in observations})
        metrics = sorted(ranking.weights)
        names = [h.host for h in ranking.hosts]
        true_values = np.array([[truth[h].get(m, np.nan) for m in metrics]
                                for h in names])
        true_scores = score_lib.scores(metrics, ranking.weights,
                                       true_values)
        point = np.array([h.score for h in ranking.hosts])
        margin = analyzer.tie_margin
        for i, host_score in enumerate(ranking.hosts):
            right = [(abs(true_scores[i] - true_scores[j]) <= margin)
                     or (np.sign(point[i] - point[j]) != 0
                         and np.sign(true_scores[i] - true_scores[j])
                         == np.sign(point[i] - point[j]))
                     for j in range(len(names)) if j != i]
            host_confidence.append(host_score.confidence)
            host_outcome.append(float(np.mean(right)))
        overall_confidence.append(ranking.confidence)
        overall_outcome.append(float(true_scores[0]
                                     >= np.max(true_scores) - margin))
    return (host_confidence, host_outcome, overall_confidence,
            overall_outcome)


def trace_driven_reliability(pool, *, cases=400, seed=0):
    """Reliability tables on trace-driven and constructed cases."""
    report = {"tie_margin_points": analyzer_lib.Analyzer().tie_margin,
              "cases": cases}
    for kind in ("trace", "constructed"):
        hosts_c, hosts_o, overall_c, overall_o = run_cases(
            pool, cases=cases, seed=seed, kind=kind)
        name = "trace_driven" if kind == "trace" else "constructed"
        report[name] = {"per_host": reliability(hosts_c, hosts_o),
                        "overall": reliability(overall_c, overall_o)}
    return report


def print_table(report):
    for name in ("trace_driven", "constructed"):
        for level in ("per_host", "overall"):
            table = report[name][level]
            print("\ncalibration %s %s (n=%d, ECE %.3f)"
                  % (name, level, table["count"], table["ece"] or 0))
            print("%-12s %6s %10s %10s" % ("bin", "count", "mean_conf",
                                           "observed"))
            for row in table["rows"]:
                print("%-12s %6d %10.3f %10.3f" % (
                    "%.2f-%.2f" % tuple(row["bin"]), row["count"],
                    row["mean_confidence"], row["observed_accuracy"]))


class CalibrationMap:
    """Monotone map from a raw ranking confidence to the observed share
    of right rankings.

    Parameters
    ----------
    bins : int
        Equal-width confidence bins the pairs are pooled in.
    prior_pairs : float
        Pseudo-pairs at the identity added to every bin: a bin with ``n``
        outcomes of accuracy ``a`` and mean confidence ``c`` maps ``c`` to
        ``(n * a + prior_pairs * c) / (n + prior_pairs)``.
    min_pairs : int
        Fewest pairs before the map departs from the identity.
    tails : str
        The map below the lowest and above the highest fitted bin:
        ``flat`` (default) holds the outermost fitted values, the share
        observed there; ``identity`` runs on to 0 and 1 (the raw
        confidence's side), which states a raw confidence beyond the
        fitted bins as nearly right however wrong the nearest bin was.
    """

    TAILS = ('flat', 'identity')

    def __init__(self, *, bins=10, prior_pairs=5.0, min_pairs=20,
                 tails='flat', share_margin=SHARE_MARGIN):
        if bins < 1 or prior_pairs < 0 or min_pairs < 0 or share_margin < 0:
            raise ValueError("bins must be positive, prior_pairs, "
                             "min_pairs and share_margin not negative")
        if tails not in self.TAILS:
            raise ValueError("tails must be one of %s, got %r"
                             % (", ".join(self.TAILS), tails))
        self.tails = tails
        self.bins = int(bins)
        self.prior_pairs = float(prior_pairs)
        self.min_pairs = int(min_pairs)
        self.share_margin = float(share_margin)
        self.knots_x = np.array([0.0, 1.0])
        self.knots_y = np.array([0.0, 1.0])
        self.pairs = 0
        #: ``(lowest, highest)`` allocated share of the outcomes that
        #: came with one, or None.
        self.share_range = None

    @property
    def fitted(self):
        return self.pairs >= self.min_pairs and self.pairs > 0

    def fit(self, confidences, outcomes, shares=None, base=None):
        """Fit on raw confidences and 0/1 outcomes, with the allocated
        RAM share each ranking was made at (None where unknown); returns
        self.  ``base``: the map the ``prior_pairs`` pseudo-pairs sit on
        (a callable of the raw confidence; the identity when None), so a
        map of a part of the outcomes can lean on the map of them all."""
        confidences = np.clip(np.asarray(confidences, dtype=float), 0, 1)
        outcomes = np.asarray(outcomes, dtype=float)
        keep = np.isfinite(confidences) & np.isfinite(outcomes)
        confidences, outcomes = confidences[keep], outcomes[keep]
        self.pairs = int(confidences.size)
        self.share_range = None
        if shares is not None:
            shares = np.array([np.nan if s is None else float(s)
                               for s in shares])[keep]
            shares = shares[np.isfinite(shares)]
            if shares.size:
                self.share_range = (float(np.min(shares)),
                                    float(np.max(shares)))
        if not self.fitted:
            self.knots_x = np.array([0.0, 1.0])
            self.knots_y = np.array([0.0, 1.0])
            return self
        index = np.minimum((confidences * self.bins).astype(int),
                           self.bins - 1)
        xs, ys, ns = [], [], []
        for b in range(self.bins):
            inside = index == b
            count = int(np.sum(inside))
            if not count:
                continue
            mean_c = float(np.mean(confidences[inside]))
            accuracy = float(np.mean(outcomes[inside]))
            prior = mean_c if base is None else float(base(mean_c))
            xs.append(mean_c)
            ys.append((count * accuracy + self.prior_pairs * prior)
                      / (count + self.prior_pairs))
            ns.append(count + self.prior_pairs)
        ys = _pool_adjacent_violators(np.array(ys), np.array(ns))
        xs = np.array(xs)
        self.knots_x = np.concatenate([[0.0], xs, [1.0]])
        if self.tails == 'flat':
            # Beyond the outermost bins the nearest observed share holds.
            ends = ys[0], ys[-1]
        else:
            # Anchored on the identity's side of the fitted points.
            ends = min(0.0, ys[0]), max(1.0, ys[-1])
        self.knots_y = np.concatenate([[ends[0]], ys, [ends[1]]])
        self.knots_y = np.clip(np.maximum.accumulate(self.knots_y), 0, 1)
        return self

    def covers(self, share):
        """Whether the map holds at allocated RAM share ``share`` (None:
        unknown, and it does)."""
        if share is None or self.share_range is None:
            return True
        low, high = self.share_range
        return (low - self.share_margin <= float(share)
                <= high + self.share_margin)

    def __call__(self, confidence, share=None):
        """The stated confidence of a raw ``confidence`` ranked at
        allocated RAM share ``share``."""
        if not self.covers(share):
            value = float(confidence)
        else:
            value = float(np.interp(float(confidence), self.knots_x,
                                    self.knots_y))
        return min(max(value, 0.0), 1.0)

    def to_dict(self):
        return {"pairs": self.pairs, "fitted": self.fitted,
                "method": "bins", "tails": self.tails,
                "share_range": (None if self.share_range is None
                                else [round(v, 4)
                                      for v in self.share_range]),
                "knots": [[round(float(x), 4), round(float(y), 4)]
                          for x, y in zip(self.knots_x, self.knots_y)]}


def fit_logistic(features, outcomes, center, ridge, steps=50,
                 weights=None):
    """Maximum a posteriori coefficients of a logistic regression of 0/1
    ``outcomes`` on the columns of ``features``, with a Gaussian prior of
    precision ``ridge`` at ``center`` (Newton's method, at most ``steps``
    steps); ``weights``: one per outcome (all 1 when None)."""
    center = np.asarray(center, dtype=float)
    theta = center.copy()
    for _ in range(steps):
        p = 1 / (1 + np.exp(-features @ theta))
        curvature = p * (1 - p)
        residual = p - outcomes
        if weights is not None:
            curvature = weights * curvature
            residual = weights * residual
        gradient = features.T @ residual + ridge * (theta - center)
        hessian = ((features * curvature[:, None]).T @ features
                   + ridge * np.eye(len(center)))
        step = np.linalg.solve(hessian, gradient)
        theta = theta - step
        if np.max(np.abs(step)) < 1e-8:
            break
    return theta


class LogisticCalibrationMap(CalibrationMap):
    """Platt scaling: the log-odds of the stated confidence a straight
    line in the log-odds of the raw one, ``a + b * logit(raw)``.

    Two figures learned from every outcome at once, where the binned map
    learns one per bin from that bin's outcomes alone: with the few dozen
    to few hundred outcomes a cloud has, the binned map follows a raw
    confidence that shifts (or is too low throughout) a bin at a time, and
    holds the identity wherever a bin has few outcomes.  ``a`` and ``b``
    have a Gaussian prior at the identity (``a = 0``, ``b = 1``) worth
    ``prior_pairs`` pseudo-outcomes in all (a quarter of them on each
    figure's curvature), so few outcomes move it little.  The same
    ``min_pairs`` and allocated-share guard as :class:`CalibrationMap`;
    there are no tails (the line covers every confidence) and the map is
    monotone: a fit with ``b`` below 0 is refitted with ``b = 0`` (the
    level alone).

    ``prior``: a prior map ``(a0, b0)`` (fitted offline on outcomes of
    other clouds or runs, see ``[analysis] calibration_prior_map``) that
    takes the identity's place: stated before any outcome is known, and
    the centre of the Gaussian prior, worth ``prior_map_pairs``
    pseudo-outcomes, once some are, so the learned map hands over from
    it as outcomes accrue.  With a prior map ``min_pairs`` is not waited
    for: the prior stands for the outcomes not known yet (without one,
    the first few outcomes, of the shortest-lived VMs, moved a map held
    only at the identity too far).
    """

    #: Raw confidences are clipped to this distance of 0 and 1 before
    #: their log-odds are taken.
    EPSILON = 1e-3
    NEWTON_STEPS = 50

    def __init__(self, *, prior_pairs=5.0, min_pairs=20,
                 share_margin=SHARE_MARGIN, prior=None,
                 prior_map_pairs=20.0, **_ignored):
        super().__init__(prior_pairs=prior_pairs, min_pairs=min_pairs,
                         share_margin=share_margin)
        if prior is not None:
            prior = tuple(float(v) for v in prior)
            if len(prior) != 2 or not all(np.isfinite(prior)) \
                    or prior[1] < 0:
                raise ValueError('prior must be two finite coefficients '
                                 '(a, b) with b >= 0, got %r' % (prior,))
        if prior_map_pairs < 0:
            raise ValueError('prior_map_pairs must not be negative')
        self.tails = None
        #: ``(a0, b0)`` of the prior map, or None (the identity).
        self.prior = prior
        self.prior_map_pairs = float(prior_map_pairs)
        #: ``(a, b)``: the prior map (the identity without one) until
        #: fitted.
        self.coefficients = self._center()

    def _center(self):
        return (0.0, 1.0) if self.prior is None else self.prior

    @property
    def fitted(self):
        if self.prior is not None:
            return self.pairs > 0
        return super().fitted

    def _ridge(self):
        if self.prior is not None:
            return max(self.prior_map_pairs * 0.25, 1e-3)
        return max(self.prior_pairs * 0.25, 1e-3)

    @classmethod
    def _logit(cls, confidence):
        confidence = np.clip(np.asarray(confidence, dtype=float),
                             cls.EPSILON, 1 - cls.EPSILON)
        return np.log(confidence / (1 - confidence))

    def fit(self, confidences, outcomes, shares=None, base=None):
        """Fit on raw confidences and 0/1 outcomes with the allocated RAM
        share of each ranking (None where unknown); returns self.
        ``base`` is not used (the prior is the identity or ``prior``)."""
        super().fit(confidences, outcomes, shares)
        center = np.array(self._center())
        self.coefficients = tuple(float(v) for v in center)
        if not self.fitted:
            return self
        confidences = np.asarray(confidences, dtype=float)
        outcomes = np.asarray(outcomes, dtype=float)
        keep = np.isfinite(confidences) & np.isfinite(outcomes)
        features = np.stack([np.ones(int(np.sum(keep))),
                             self._logit(confidences[keep])], 1)
        outcomes = np.clip(outcomes[keep], 0, 1)
        theta = self._newton(features, outcomes, center)
        if theta[1] < 0:
            # A map that falls as the raw confidence rises is not one:
            # the slope held at 0, the level alone learned.
            theta = np.array([self._newton(features[:, :1], outcomes,
                                           center[:1])[0], 0.0])
        if np.all(np.isfinite(theta)):
            self.coefficients = (float(theta[0]), float(theta[1]))
        return self

    def _newton(self, features, outcomes, center):
        """Maximum a posteriori logistic coefficients of ``features``,
        Gaussian prior at ``center``."""
        return fit_logistic(features, outcomes, center, self._ridge(),
                            self.NEWTON_STEPS)

    def __call__(self, confidence, share=None):
        """The stated confidence of a raw ``confidence`` ranked at
        allocated RAM share ``share``."""
        if ((not self.fitted and self.prior is None)
                or not self.covers(share)):
            value = float(confidence)
        else:
            a, b = self.coefficients
            value = float(1 / (1 + np.exp(-(a + b * float(
                self._logit(confidence))))))
        return min(max(value, 0.0), 1.0)

    def to_dict(self):
        found = super().to_dict()
        del found['knots']
        found.update(method='logistic',
                     coefficients=[round(v, 4) for v in self.coefficients],
                     prior=(None if self.prior is None else {
                         'coefficients': [round(v, 4) for v in self.prior],
                         'pairs': self.prior_map_pairs}))
        return found


#: ``[analysis] calibration_method`` -> the map's class.
METHODS = {'logistic': LogisticCalibrationMap, 'bins': CalibrationMap}


def make_map(method='logistic', **options):
    """An unfitted calibration map of ``method`` (see :data:`METHODS`)."""
    if method not in METHODS:
        raise ValueError('method must be one of %s, got %r'
                         % (', '.join(sorted(METHODS)), method))
    return METHODS[method](**options)


def _pool_adjacent_violators(values, weights):
    """Weighted isotonic (non-decreasing) fit of ``values``."""
    blocks = [[float(v), float(w), 1] for v, w in zip(values, weights)]
    merged = []
    for block in blocks:
        merged.append(block)
        while len(merged) > 1 and merged[-2][0] > merged[-1][0]:
            value2, weight2, size2 = merged.pop()
            value1, weight1, size1 = merged.pop()
            weight = weight1 + weight2
            merged.append([(value1 * weight1 + value2 * weight2) / weight,
                           weight, size1 + size2])
    return np.concatenate([[v] * size for v, _w, size in merged])
