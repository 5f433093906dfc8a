"""The analyzer: shadow measurements in, ranked Performance Scores out.

:class:`Analyzer` is what the evaluation loop and the watcher call:

* :meth:`Analyzer.rank` estimates every metric of every host from its
  shadow samples (:mod:`.estimate`), applies the contention model and the
  scale-up to the full flavor, scores the hosts (:mod:`.score`), puts a
  calibrated confidence on the order (:mod:`.confidence`) and explains
  each score with its top contributing metrics;
* :meth:`Analyzer.forecast` runs a forecaster plugin on one series.

Behaviour is changed through keyword-only constructor options (see
:meth:`Analyzer.from_conf` for the ``[analysis]`` configuration group).
"""

import collections
import copy
import dataclasses
import json
import logging
import threading

import numpy as np

from shadow_service import hostfacts
from shadow_service.analysis import confidence as confidence_lib
from shadow_service.analysis import estimate as estimate_lib
from shadow_service.analysis import forecasters
from shadow_service.analysis import peak as peak_lib
from shadow_service.analysis import scaleup as scaleup_lib
from shadow_service.analysis import score as score_lib
from shadow_service.workloads import catalogue

LOG = logging.getLogger(__name__)

NEUTRAL_SCORE = 50.0
DEFAULT_SENSITIVITY = {"cpu": 0.2, "memory": 0.2, "io": 0.2,
                       "network": 0.2, "latency": 0.2}


@dataclasses.dataclass
class HostScore:
    """One host's score, confidence, predictions and explanation."""

    host: str
    score: float
    confidence: float
    predicted: dict
    reasons: list
    data_age_s: float = None
    uncertainty: dict = dataclasses.field(default_factory=dict)
    contender: float = 0.0

    def to_dict(self):
        return {"host": self.host, "score": round(float(self.score), 2),
                "confidence": round(float(self.confidence), 3),
                "data_age_s": (None if self.data_age_s is None
                               else float(self.data_age_s)),
                "predicted": {m: float(v) for m, v in
                              self.predicted.items()},
                "reasons": list(self.reasons)}


@dataclasses.dataclass
class Ranking:
    """Hosts best first, with the overall confidence of the order."""

    hosts: list
    confidence: float
    weights: dict = dataclasses.field(default_factory=dict)
    raw_confidence: float = None
    #: ``(hosts list, its length, measured hosts, metrics, values, sds)``
    #: the ranking was made from (arrays, a row per measured host), for
    #: readers that need them all (:func:`shadow_service.racing.assess`);
    #: valid while ``hosts`` is that list at that length.
    arrays: tuple = dataclasses.field(default=None, compare=False,
                                      repr=False)
    #: The :class:`RankedMemo` the host entries came from (a ranking
    #: made again from the same figures shares it), or None.
    memo: object = dataclasses.field(default=None, compare=False,
                                     repr=False)
    #: The part of ``arrays``' sds a new measurement of the host can
    #: narrow (rows and columns as there; see
    #: :attr:`.estimate.MetricEstimate.measured_sd`), or None (all of
    #: it): what the racing schedule asks shadows to settle.
    measurable_sds: object = dataclasses.field(default=None, compare=False,
                                               repr=False)
    #: Share of the candidates' RAM allocated (from their features), the
    #: calibration map's condition; None when unknown.
    allocated_share: float = None

    def measurable(self, host, entry=None):
        """``{metric: sd}`` of ``host``'s measurable uncertainty (its
        whole uncertainty where the ranking does not tell); ``entry``:
        its :class:`HostScore`, when the caller has it."""
        entry = entry if entry is not None else self.host(host)
        arrays, found = self.arrays, dict(entry.uncertainty)
        if arrays is None or self.measurable_sds is None:
            return found
        measured, metrics = arrays[2], arrays[3]
        try:
            row = measured.index(host)
        except ValueError:
            return found
        for column, metric in enumerate(metrics):
            sd = float(self.measurable_sds[row, column])
            if metric in found and not np.isnan(sd):
                found[metric] = min(sd, found[metric])
        return found

    def to_dict(self):
        """The contract's "RPC ranking" minus the caller's fields."""
        memo = self.memo
        if memo is not None and memo.holds(self.hosts):
            # The host entries of a ranking already made: their dicts
            # once (each copied: callers change them in place).
            hosts = [dict(entry) for entry in memo.host_dicts()]
        else:
            hosts = [h.to_dict() for h in self.hosts]
        result = {"confidence": round(float(self.confidence), 3),
                  "hosts": hosts}
        if self.raw_confidence is not None:
            result["raw_confidence"] = round(float(self.raw_confidence), 3)
        return result

    def clearly_worse(self, margin=10.0, probability=0.05):
        """Hosts that can be dropped early (successive halving).

        A host is clearly worse when its score is more than ``margin``
        below the best and its chance of being within the tie margin of
        the best is below ``probability``. Unmeasured hosts never are.
        """
        if not self.hosts:
            return []
        best = self.hosts[0].score
        return [h.host for h in self.hosts
                if h.predicted and h.score < best - margin
                and h.contender < probability]

    def host(self, name):
        for host_score in self.hosts:
            if host_score.host == name:
                return host_score
        raise KeyError(name)


class Analyzer:
    """Rank hosts by predicted performance, and forecast series.

    Parameters
    ----------
    metric_weights : dict, optional
        Operator multipliers per metric, applied on top of the weights
        derived from the profile's sensitivity.
    confidence_target : float
        Confidence at which the evaluation may stop (kept for callers).
    tie_margin : float
        Score points within which two hosts count as equally good.
    age_drift : float
        Relative drift of a measurement per sqrt(hour) of data age.
    age_drift_by_metric : dict, optional
        ``{metric: drift}`` overriding ``age_drift`` per metric (what
        :class:`~shadow_service.learners.drift.AgeDriftLearner` learns).
    draws : int
        Monte Carlo draws for the confidence.
    contention : dict, optional
        ``{metric: fitted ContentionModel}``.
    scaleup : ScaleUpModel, optional
        Defaults to the documented priors.
    forecast_level : float
        Coverage of forecast intervals.
    forecaster : str
        Default forecaster plugin of :meth:`forecast`.
    cotenancy_horizon_s : float
        How far ahead the contention model predicts a host's co-tenancy:
        the VM itself plus the VMs the host is expected to gain over this
        time from its recent churn (``vm_arrivals_24h`` and
        ``vm_departures_24h`` host features); 0 counts the VM only.
    load_forecaster : LoadForecaster, optional
        Forecasts each host's own load over the VM's first hours
        (:mod:`.lifetime`); where a contention model is fitted, every
        prediction moves by what that load does to the metric.
    calibration : object, optional
        Anything with a ``calibration_map()`` method (the
        :class:`~shadow_service.learners.calibration.CalibrationLearner`)
        returning a :class:`~.calibration.CalibrationMap`: the ranking's
        confidence is mapped through it (the raw figure stays in
        ``Ranking.raw_confidence``).
    peak_headroom : bool
        Raise each host's predicted ``cpu_steal_pct`` to the steal the VM
        would see at the host's busiest 5 % of the last day
        (:mod:`.peak`), where the host facts carry those statistics.
    peak_memory_headroom : bool
        Divide each host's predicted ``mem_bandwidth_gbps`` and multiply
        its ``mem_latency_ns`` by how far the full VM's memory traffic
        (and that of the VMs like it the host is expected to gain) would
        oversubscribe the host's memory system at its busy level
        (:func:`.peak.apply_memory`).
    """

    def __init__(self, *, metric_weights=None, confidence_target=0.8,
                 tie_margin=2.0, age_drift=0.05, draws=400,
                 contention=None, scaleup=None, forecast_level=0.9,
                 forecaster="auto", seed=0, cotenancy_horizon_s=86400.0,
                 load_forecaster=None, calibration=None,
                 peak_headroom=True, age_drift_by_metric=None,
                 peak_memory_headroom=True):
        if cotenancy_horizon_s < 0:
            raise ValueError("cotenancy_horizon_s must not be negative")
        if not 0.0 <= confidence_target <= 1.0:
            raise ValueError("confidence_target must be within [0, 1]")
        self.metric_weights = dict(metric_weights or {})
        self.confidence_target = confidence_target
        self.tie_margin = tie_margin
        self.age_drift = age_drift
        self.age_drift_by_metric = dict(age_drift_by_metric or {})
        self.draws = draws
        self.contention = dict(contention or {})
        self.scaleup = scaleup or scaleup_lib.ScaleUpModel()
        self.forecast_level = forecast_level
        self.default_forecaster = forecaster
        self.seed = seed
        self.cotenancy_horizon_s = float(cotenancy_horizon_s)
        self.load_forecaster = load_forecaster
        self.calibration = calibration
        self.peak_headroom = bool(peak_headroom)
        self.peak_memory_headroom = bool(peak_memory_headroom)

    @classmethod
    def from_conf(cls, conf, **kwargs):
        """Build from the ``[analysis]`` group of a ConfigOpts (and the
        evaluation's ``[shadow] confidence_target`` where registered)."""
        group = conf.analysis
        target = (conf.shadow.confidence_target if "shadow" in conf
                  else 0.8)
        known = sorted(catalogue.METRIC_DIRECTIONS)
        unknown = sorted(set(group.age_drift_per_metric) - set(known))
        if unknown:
            # A misspelt metric would age at the global figure, silently.
            raise ValueError(
                "[analysis] age_drift_per_metric: unknown metric %s "
                "(known: %s)" % (", ".join(unknown), ", ".join(known)))
        options = {"metric_weights": {k: float(v) for k, v in
                                      (group.metric_weights or {}).items()},
                   "confidence_target": target,
                   "tie_margin": group.tie_margin,
                   "age_drift": group.age_drift_per_sqrt_hour,
                   "age_drift_by_metric": dict(group.age_drift_per_metric),
                   "draws": group.confidence_draws,
                   "forecast_level": group.interval_level,
                   "forecaster": group.forecaster,
                   "cotenancy_horizon_s": group.cotenancy_horizon,
                   "peak_headroom": group.peak_headroom,
                   "peak_memory_headroom": group.peak_memory_headroom}
        options.update(kwargs)
        return cls(**options)

    def with_contention(self, models):
        """A copy that also applies ``models`` (``{metric: fitted
        ContentionModel}``, overriding the constructor's per metric).

        The copy shares everything else, so one analyzer can serve
        concurrent evaluations whose workloads have different models.
        """
        if not models:
            return self
        adjusted = copy.copy(self)
        adjusted.contention = {**self.contention, **models}
        return adjusted

    def with_scaleup(self, model):
        """A copy that scales shadow figures up with ``model`` (a
        :class:`~shadow_service.analysis.scaleup.ScaleUpModel`, e.g. one a
        learner fitted); ``None`` keeps this analyzer's."""
        if model is None or model is self.scaleup:
            return self
        adjusted = copy.copy(self)
        adjusted.scaleup = model
        return adjusted

    def with_age_drift(self, drift):
        """A copy that ages data by ``drift`` (anything with ``default``,
        a drift for every metric or None, and ``by_metric``, ``{metric:
        drift}``: an :class:`~shadow_service.learners.drift.AgeDrift`);
        ``None`` keeps this analyzer's."""
        if drift is None or (drift.default is None
                             and not drift.by_metric):
            return self
        adjusted = copy.copy(self)
        if drift.default is not None:
            adjusted.age_drift = float(drift.default)
        adjusted.age_drift_by_metric = {**self.age_drift_by_metric,
                                        **drift.by_metric}
        return adjusted

    def drift_of(self, metric):
        """Relative drift of ``metric`` per sqrt(hour) of data age."""
        return float(self.age_drift_by_metric.get(metric, self.age_drift))

    def forecast(self, values, *, step_s, horizon_steps, forecaster=None,
                 bounds=None):
        """Forecast ``horizon_steps`` ahead with a forecaster plugin.

        ``forecaster`` names the plugin (None: the configured default,
        ``auto`` unless set); ``bounds`` is the series' physical range.

        Returns
        -------
        Forecast
            ``mean``, ``lower``, ``upper`` arrays, ``model`` and
            ``notes``.
        """
        forecaster = forecaster or self.default_forecaster
        options = {"level": self.forecast_level, "bounds": bounds}
        if forecaster == "auto":
            options["horizon_steps"] = horizon_steps
        fitted = forecasters.load(forecaster, **options).fit(
            values, step_s=step_s)
        return fitted.forecast(horizon_steps)

    def weights(self, sensitivity):
        """Per-metric weights for a profile's sensitivity."""
        weights = catalogue.metric_weights_from_sensitivity(
            sensitivity, self.metric_weights)
        if not weights:
            weights = catalogue.metric_weights_from_sensitivity(
                DEFAULT_SENSITIVITY, self.metric_weights)
        return weights

    def rank(self, sensitivity, observations, host_features=None,
             scale=None, data_age_s=None, prior=None, kept=None,
             tokens=None, earlier=None, earlier_age_s=None, deadline=None):
        """Score and rank the hosts; see the module docstring.

        Parameters
        ----------
        sensitivity : dict
            ``{"cpu": .3, "memory": .1, ...}`` of the profile.
        observations : dict
            ``{host: {metric: time-ordered samples}}``.
        host_features : dict, optional
            ``{host: {feature: value}}`` for the contention model.
        scale : dict, optional
            ``load_ratio``, ``shadow_vcpus``, ``full_vcpus``,
            ``shadow_ram_mb``, ``full_ram_mb`` (see
            :func:`shadow_service.analysis.scaleup.scale_keys`).
        data_age_s : dict, optional
            ``{host: seconds since the newest sample}``.
        prior : Ranking, optional
            A previous ranking; hosts without observations take its
            predictions (aged by ``data_age_s``).
        kept : KeptEstimates, optional
            Per-host estimates kept from earlier rankings of the same
            workload: a host's are reused while its ``tokens`` entry and
            features are the same (see :class:`KeptEstimates`).
        tokens : dict, optional
            ``{host: token}`` that changes whenever the host's
            observations do (required with ``kept``).
        earlier : dict, optional
            ``{host: {metric: samples}}`` of earlier runs of the same
            workload (the samples a prior was made from): a host with
            observations and earlier samples is estimated from both
            (:func:`.estimate.combine`, before the contention model and
            the scale-up), the earlier ones aged by ``earlier_age_s``
            (``{host: seconds since their newest sample}``).
        deadline : float, optional
            ``time.monotonic()`` by which the load forecaster must have
            read the metrics source (what it has not read by then is
            left out, the reasons say so).

        Returns
        -------
        Ranking
        """
        weights = self.weights(sensitivity)
        metrics = sorted(weights)
        host_features = host_features or {}
        data_age_s = data_age_s or {}
        earlier = earlier or {}
        earlier_age_s = earlier_age_s or {}
        share = hostfacts.allocated_ram_share(host_features)
        if (kept is not None and tokens is not None and prior is None
                and not earlier and self.load_forecaster is None):
            return self._rank_kept(kept, tokens, metrics, weights,
                                   observations or {}, host_features, scale,
                                   data_age_s, share)
        # In a fixed order: the confidence's seeded draws go to hosts by
        # row, so the order the observations arrive in (a history store's
        # catalogue order) must not change which host gets which.
        hosts = sorted(observations or {}, key=str)
        if prior is not None:
            hosts += [h.host for h in prior.hosts if h.host not in hosts]
        estimates, reasons = {}, {}
        outlooks = self._outlooks(hosts, deadline)
        for host in hosts:
            estimates[host], reasons[host] = self._host_estimates(
                host, metrics, (observations or {}).get(host),
                host_features.get(host), scale, data_age_s.get(host),
                prior, outlooks.get(host), earlier.get(host),
                earlier_age_s.get(host))
        seen = {m for e in estimates.values() for m in e}
        for host in hosts:
            reasons[host] = [r for r in reasons[host]
                             if not r.endswith("no samples, left out")
                             or r.split(":")[0] in seen]
        return self._ranking(hosts, metrics, weights, estimates, reasons,
                             data_age_s, share)

    def _outlooks(self, hosts, deadline=None):
        """``{host: HostOutlook}`` of the load forecaster (none without
        one, or when it fails)."""
        if self.load_forecaster is None or not hosts:
            return {}
        try:
            return self.load_forecaster.outlook(hosts, deadline=deadline)
        except Exception:
            LOG.exception('Host load forecasts failed; ranking on the '
                          'shadow measurements alone')
            return {}

    def _lifetime(self, metric, features, outlook):
        """``(change, sd, horizon_s)`` of ``metric`` from the host's load
        outlook through its contention model, or None."""
        model = self.contention.get(metric)
        if outlook is None or not outlook.loads or model is None \
                or not features:
            return None
        try:
            change, sd = self.load_forecaster.shift(metric, model, features,
                                                    outlook)
        except (ValueError, KeyError) as error:
            LOG.debug('Lifetime shift of %s not applied: %s', metric, error)
            return None
        return change, sd, outlook.horizon_s

    def _host_estimates(self, host, metrics, samples, features, scale,
                        age_s, prior, outlook=None, earlier=None,
                        earlier_age_s=None):
        host_estimates, host_reasons = {}, []
        earlier = (earlier or {}) if samples else {}
        samples = samples or {}
        age_s = float(age_s or 0.0)
        if not samples and prior is not None:
            return self._prior_estimates(host, metrics, prior, age_s)
        if outlook is not None and samples:
            host_reasons += outlook.reasons()
        for metric in metrics:
            raw = samples.get(metric)
            single = estimate_lib.from_samples(
                metric, [] if raw is None else raw, data_age_s=age_s,
                age_drift=self.drift_of(metric))
            if earlier.get(metric) is not None:
                single = estimate_lib.combine(
                    single, estimate_lib.from_samples(
                        metric, earlier[metric],
                        data_age_s=float(earlier_age_s or 0.0),
                        age_drift=self.drift_of(metric)))
            if single is None:
                host_reasons.append(_left_out(metric, raw))
                continue
            single, notes = estimate_lib.adjust(
                metric, single, features=features,
                contention=self.contention.get(metric), scale=scale,
                scaleup=self.scaleup, horizon_s=self.cotenancy_horizon_s,
                lifetime=self._lifetime(metric, features, outlook))
            host_reasons += notes
            host_reasons += ["%s: %s" % (metric, n) for n in single.notes]
            host_estimates[metric] = single
        if self.peak_headroom and (features or outlook is not None):
            host_reasons += peak_lib.apply(host_estimates, samples,
                                           features, scale,
                                           self.cotenancy_horizon_s,
                                           outlook)
        if self.peak_memory_headroom and (features or outlook is not None):
            host_reasons += peak_lib.apply_memory(
                host_estimates, samples, features, scale,
                self.cotenancy_horizon_s, outlook)
        return host_estimates, host_reasons

    def _kept_signature(self, weights, scale):
        """What a host's kept estimates (and explanations) depend on
        besides its samples and features: the metrics and their weights,
        the age drift, the models (by identity: a learner's refit makes
        new ones) and the scale."""
        return (tuple(sorted(weights.items())), self.age_drift,
                tuple(sorted(self.age_drift_by_metric.items())),
                id(self.scaleup),
                tuple(sorted(getattr(self.scaleup, 'learned', {}).items())),
                tuple(sorted((m, id(model))
                             for m, model in self.contention.items())),
                self.cotenancy_horizon_s, self.peak_headroom,
                self.peak_memory_headroom,
                tuple(sorted((scale or {}).items())))

    def _sample_estimates(self, metrics, samples, scale):
        """What a host's kept entry holds: per metric the estimate of its
        samples alone at data age 0 (value, sd; NaN without one), the
        reasons its samples give, in metric order (``(metric, reason)``,
        None where the metric's adjustment's reasons go), and the VM's
        busy vCPUs for the peak headroom."""
        values = np.full(len(metrics), np.nan)
        sds = np.full(len(metrics), np.nan)
        counts = [0] * len(metrics)
        notes = []
        for column, metric in enumerate(metrics):
            raw = samples.get(metric)
            single = estimate_lib.from_samples(
                metric, [] if raw is None else raw, age_drift=0.0)
            if single is None:
                notes.append((metric, _left_out(metric, raw)))
                continue
            values[column], sds[column] = single.value, single.sd
            counts[column] = single.samples
            notes.append((metric, None))
            notes += [(metric, "%s: %s" % (metric, n))
                      for n in single.notes]
        busy = (peak_lib.vm_busy_vcpus(samples, scale)
                if self.peak_headroom else None)
        mem_gbps = (peak_lib.vm_memory_gbps(samples, scale)
                    if self.peak_memory_headroom else None)
        return values, sds, counts, notes, busy, mem_gbps

    def _rank_kept(self, kept, tokens, metrics, weights, observations,
                   host_features, scale, data_age_s, share=None):
        """:meth:`rank` with each host's sample estimates kept in
        ``kept`` while its token is the same; what the request adds (data
        age, bounds, scale-up, contention, peak headroom) is applied on
        top, for every host at once where it does not depend on the
        host's features.  Gives what :meth:`rank` gives without ``kept``
        (load forecasts excluded: :meth:`rank` does not keep then)."""
        signature = self._kept_signature(weights, scale)
        with kept.lock:
            if kept.signature != signature:
                kept.reset(signature)
            entries = kept.hosts
            explained = kept.explained
            if len(explained) > 4 * max(len(observations), 1024):
                explained.clear()
        hosts = sorted(observations, key=str)     # as in rank()
        # Everything a host's part of the ranking depends on besides the
        # signature: when none of it changed, the ranking made before.
        keys = _host_keys(hosts, tokens, data_age_s, host_features)
        inputs = _inputs_key(hosts, keys)
        found = kept.prepared(inputs) if inputs is not None else None
        if found is not None:
            memo, measured, values, sds, measurable = found
            ranking = self._stated(memo, measured, metrics, weights, values,
                                   sds, share)
            ranking.measurable_sds = measurable
            return ranking
        # A host's row (its figures with the request's additions) depends
        # on nothing but its key and the signature: rows made for another
        # candidate list are taken as they are, the others made here.
        rows = kept.rows_of(hosts, keys) if inputs is not None else {}
        missing = [h for h in hosts if h not in rows]
        made = self._kept_rows(kept, entries, missing, tokens, metrics,
                               observations, host_features, scale,
                               data_age_s)
        if inputs is not None and missing:
            kept.keep_rows(missing, keys, made,
                           limit=4 * max(len(hosts), 1024))
        if rows:
            values, sds, measurable, reasons = _assembled(
                hosts, rows, missing, made, len(metrics))
        else:
            values, sds, measurable, reasons = made[0], made[1], made[2], \
                dict(made[3])
        present = ~np.isnan(values)
        measured_rows = present.any(axis=1) if hosts else np.array([], bool)
        measured = [h for h, m in zip(hosts, measured_rows) if m]
        seen = {m for c, m in enumerate(metrics) if present[:, c].any()}
        for host in hosts:
            reasons[host] = [r for r in reasons[host]
                             if not r.endswith("no samples, left out")
                             or r.split(":")[0] in seen]
        values, sds = values[measured_rows], sds[measured_rows]
        measurable = np.minimum(measurable[measured_rows], sds)
        ranking = self._ranked(hosts, measured, metrics, weights, values,
                               sds, reasons, data_age_s,
                               explained=explained, memo=kept, share=share)
        ranking.measurable_sds = measurable
        if inputs is not None:
            kept.keep_prepared(inputs, (ranking.memo, measured, values,
                                        sds, measurable))
        return ranking

    def _kept_rows(self, kept, entries, hosts, tokens, metrics,
                   observations, host_features, scale, data_age_s):
        """``(values, sds, measurable sds, {host: reasons})`` of ``hosts``
        (rows in their order) from their kept sample estimates (made
        where missing or stale) with what the request adds on top; a
        host's row does not depend on the other hosts."""
        entry_of = {}
        for host in hosts:
            token = tokens.get(host)
            entry = entries.get(host)
            if entry is None or token is None or entry[0] != token:
                entry = (token,) + self._sample_estimates(
                    metrics, observations.get(host) or {}, scale)
                if token is not None:
                    entries[host] = entry
                kept.computed += 1
            else:
                kept.reused += 1
            entry_of[host] = entry
        columns = len(metrics)
        values = (np.vstack([entry_of[h][1] for h in hosts]) if hosts
                  else np.empty((0, columns)))
        sds = (np.vstack([entry_of[h][2] for h in hosts]) if hosts
               else np.empty((0, columns)))
        # The data's age, as estimate.from_samples adds it.
        age_hours = np.array([max(float(data_age_s.get(h) or 0.0), 0.0)
                              / 3600.0 for h in hosts])
        drift = np.array([self.drift_of(m) for m in metrics])
        age_sd = drift[None, :] * np.abs(values) * np.sqrt(age_hours)[:, None]
        sds = np.sqrt(sds ** 2 + age_sd ** 2)
        # What measuring again can narrow: the samples and their age,
        # without the models added below.
        measurable = sds.copy()
        # Per metric: contention where fitted (per host), then the bounds
        # and the scale-up (estimate.adjust's order).
        extra = {h: {} for h in hosts}
        for column, metric in enumerate(metrics):
            model = self.contention.get(metric)
            if model is not None:
                for row, host in enumerate(hosts):
                    features = host_features.get(host)
                    if not features or np.isnan(values[row, column]):
                        continue
                    single, notes = estimate_lib.adjust(
                        metric, estimate_lib.MetricEstimate(
                            float(values[row, column]),
                            float(sds[row, column]),
                            entry_of[host][3][column], []),
                        features=features, contention=model,
                        horizon_s=self.cotenancy_horizon_s)
                    values[row, column] = single.value
                    sds[row, column] = single.sd
                    extra[host][metric] = notes
            upper = 100.0 if metric in catalogue.PERCENT_METRICS else None
            values[:, column] = np.clip(values[:, column], 0.0, upper)
            if self.scaleup is not None and scale:
                factor = self.scaleup.factor(metric, scale)
                if factor.factor != 1.0 or factor.log_sd:
                    values[:, column] *= factor.factor
                    sds[:, column] *= factor.factor
                    measurable[:, column] *= factor.factor
        # The peak headroom needs the host's features.
        reasons = {}
        horizon = self.cotenancy_horizon_s
        for row, host in enumerate(hosts):
            entry = entry_of[host]
            host_reasons = []
            for metric, note in entry[4]:
                if note is None:
                    host_reasons += extra[host].get(metric, ())
                else:
                    host_reasons.append(note)
            features = host_features.get(host)
            if not features:
                reasons[host] = host_reasons
                continue
            features = peak_lib.with_outlook(features, None)
            if self.peak_headroom:
                host_reasons += _kept_peak(
                    metrics, values, sds, row, entry[3],
                    (peak_lib.STEAL_METRIC,),
                    lambda current, busy=entry[5], f=features:
                    peak_lib.apply_busy(current, busy, f, horizon))
            if self.peak_memory_headroom and entry[6] is not None:
                host_reasons += _kept_peak(
                    metrics, values, sds, row, entry[3],
                    (peak_lib.MEM_BANDWIDTH_METRIC,
                     peak_lib.MEM_LATENCY_METRIC),
                    lambda current, gbps=entry[6], f=features:
                    peak_lib.apply_memory_gbps(current, gbps, f, horizon))
            reasons[host] = host_reasons
        return values, sds, measurable, reasons

    def _prior_estimates(self, host, metrics, prior, age_s):
        try:
            previous = prior.host(host)
        except KeyError:
            return {}, ["no measurements"]
        previous_age = float(previous.data_age_s or 0.0)
        measurable = prior.measurable(host, previous)
        host_estimates = {}
        for metric in metrics:
            if metric not in previous.predicted:
                continue
            value = float(previous.predicted[metric])
            sd = previous.uncertainty.get(
                metric, estimate_lib.FEW_SAMPLES_RELATIVE_SD * abs(value))
            aged = self.drift_of(metric) * abs(value) * np.sqrt(
                max(age_s - previous_age, 0.0) / 3600.0)
            host_estimates[metric] = estimate_lib.MetricEstimate(
                value, float(np.hypot(sd, aged)), 0, [],
                measured_sd=float(np.hypot(measurable.get(metric, sd),
                                           aged)))
        return host_estimates, ["from the previous ranking (no new "
                                "samples)"]

    def _ranking(self, hosts, metrics, weights, estimates, reasons,
                 data_age_s, share=None):
        measured = [h for h in hosts if estimates[h]]
        values = np.array([[estimates[h][m].value if m in estimates[h]
                            else np.nan for m in metrics]
                           for h in measured]).reshape(len(measured),
                                                       len(metrics))
        sds = np.array([[estimates[h][m].sd if m in estimates[h]
                         else np.nan for m in metrics]
                        for h in measured]).reshape(values.shape)
        measurable = np.array([[estimates[h][m].measurable_sd
                                if m in estimates[h] else np.nan
                                for m in metrics]
                               for h in measured]).reshape(values.shape)
        ranking = self._ranked(hosts, measured, metrics, weights, values,
                               sds, reasons, data_age_s, share=share)
        ranking.measurable_sds = measurable
        return ranking

    def _ranked(self, hosts, measured, metrics, weights, values, sds,
                reasons, data_age_s, explained=None, memo=None,
                share=None):
        """The ranking of ``(measured hosts, metrics)`` arrays of values
        and their uncertainties (NaN: no estimate); ``hosts`` not in
        ``measured`` get the neutral score.  ``explained``: a dict that
        keeps explanations between rankings.  ``memo``: a
        :class:`KeptEstimates` whose recent rankings are reused when
        every input is the same (the host entries and the raw confidence
        are a function of the arguments and the analyzer's tie margin,
        draws and seed; the calibration is applied afresh).  ``share``:
        the candidates' allocated RAM share the calibration map is read
        at."""
        key = None
        if memo is not None:
            key = (tuple(hosts), tuple(measured), tuple(metrics),
                   tuple(sorted(weights.items())), values.shape,
                   values.tobytes(), sds.tobytes(),
                   tuple(tuple(reasons[h]) for h in hosts),
                   tuple(data_age_s.get(h) for h in hosts),
                   self.tie_margin, self.draws, self.seed)
            found = memo.ranked(key)
            if found is not None:
                return self._stated(found, measured, metrics, weights,
                                    values, sds, share)
        found = self._rank_entries(hosts, measured, metrics, weights,
                                   values, sds, reasons, data_age_s,
                                   explained)
        if memo is not None:
            memo.keep_ranked(key, found)
        return self._stated(found, measured, metrics, weights, values, sds,
                            share)

    def _stated(self, found, measured, metrics, weights, values, sds,
                share=None):
        """The :class:`Ranking` of a :class:`RankedMemo`: its entries,
        the calibrated confidence and the arrays behind them."""
        results = list(found.entries)
        overall = found.overall
        stated = self.calibrated(overall, share)
        return Ranking(results, float(stated), weights,
                       raw_confidence=(None if stated == overall
                                       and self.calibration is None
                                       else float(overall)),
                       arrays=(results, len(results), measured, metrics,
                               values, sds),
                       memo=found, allocated_share=share)

    def _rank_entries(self, hosts, measured, metrics, weights, values, sds,
                      reasons, data_age_s, explained):
        """The :class:`RankedMemo` of :meth:`_ranked`'s arguments."""
        point = score_lib.scores(metrics, weights, values) \
            if measured else np.array([])
        confidence = confidence_lib.rank_confidence(
            metrics, weights, values, sds, point,
            tie_margin=self.tie_margin, draws=self.draws, seed=self.seed)
        norm = score_lib.normalised(metrics, values) if measured else None
        # As Python lists: a thousand hosts' rows read element by element.
        present = (~np.isnan(values)).tolist()
        value_rows, sd_rows = values.tolist(), sds.tolist()
        point_rows = np.asarray(point, dtype=float).tolist()
        per_host = confidence.per_host.tolist()
        contender = confidence.contender.tolist()
        results = []
        for index, host in enumerate(measured):
            columns = [c for c, here in enumerate(present[index]) if here]
            results.append(HostScore(
                host=host, score=point_rows[index],
                confidence=per_host[index],
                predicted={metrics[c]: value_rows[index][c]
                           for c in columns},
                reasons=_explain_kept(explained, metrics, weights, values,
                                      norm, index, len(measured))
                + reasons[host],
                data_age_s=data_age_s.get(host),
                uncertainty={metrics[c]: sd_rows[index][c]
                             for c in columns},
                contender=contender[index]))
        measured_set = set(measured)
        for host in hosts:
            if host not in measured_set:
                results.append(HostScore(
                    host=host, score=NEUTRAL_SCORE, confidence=0.0,
                    predicted={}, reasons=["no measurements: neutral "
                                           "score"] + reasons[host],
                    data_age_s=data_age_s.get(host)))
        results.sort(key=lambda h: (-h.score, -h.confidence, h.host))
        overall = confidence.overall * (len(measured) / len(hosts)) \
            if hosts else 0.0
        return RankedMemo(tuple(results), float(overall))

    def calibrated(self, confidence, share=None):
        """``confidence`` (a raw ranking confidence) through the learned
        calibration map at the candidates' allocated RAM share ``share``
        (as is without a calibration source or a fitted map, or at a
        share the map's outcomes do not cover)."""
        if self.calibration is None:
            return confidence
        try:
            mapping = self.calibration.calibration_map()
        except Exception:
            LOG.exception('The confidence calibration map is unavailable; '
                          'stating the raw confidence')
            return confidence
        if mapping is None:
            return confidence
        if share is None:
            return float(mapping(confidence))
        return float(mapping(confidence, share))


class RankedMemo:
    """The host entries (best first) and raw confidence of one ranking,
    with what is derived from them once: their dicts and the racing
    verdicts (:meth:`verdict`).  Shared by the rankings made again from
    the same figures; never changed once made except by adding derived
    figures."""

    def __init__(self, entries, overall):
        self.entries = entries
        self.overall = overall
        self._dicts = None
        self._json = None
        self.verdicts = {}
        #: Cost and exclusion keys whose ``host_score`` points are written.
        self.points_written = set()
        self.lock = threading.Lock()

    def holds(self, hosts):
        """Whether ``hosts`` are this memo's entries, in its order."""
        return len(hosts) == len(self.entries) and all(
            a is b for a, b in zip(hosts, self.entries))

    def host_dicts(self):
        if self._dicts is None:
            self._dicts = [h.to_dict() for h in self.entries]
        return self._dicts

    def hosts_json(self):
        """:meth:`host_dicts` as JSON, keys sorted (made once)."""
        if self._json is None:
            self._json = json.dumps(self.host_dicts(), sort_keys=True)
        return self._json


#: Rankings a :class:`KeptEstimates` keeps for reuse (one per candidate
#: list of a workload asked for at the same time; about 3.4 MB each at
#: 1,000 candidates).
RANKINGS_KEPT = 2


class KeptEstimates:
    """One workload's per-host estimates, kept between rankings by
    :meth:`Analyzer.rank`: a host's are estimated again only when its
    observations (its token) or its features changed, or anything else
    they depend on did (the analyzer's drift, models, the scale: then all
    of them).  Each host's row (those estimates with what the request
    adds, by its token, data age and features: :meth:`rows_of`) is kept
    too, for a ranking of another candidate list.  ``computed`` and
    ``reused`` count hosts.  Thread-safe enough for concurrent rankings:
    an entry is replaced whole."""

    def __init__(self):
        self.lock = threading.Lock()
        self.signature = None
        self.hosts = {}
        self.explained = {}
        self.computed = 0
        self.reused = 0
        #: Rankings answered from :meth:`ranked`.
        self.rankings_reused = 0
        #: Hosts whose row a ranking took from :meth:`rows_of` (made for
        #: another candidate list).
        self.rows_reused = 0
        self._ranked = collections.OrderedDict()
        self._prepared = collections.OrderedDict()
        self._rows = {}

    def reset(self, signature):
        self.signature = signature
        self.hosts = {}
        self.explained = {}
        self._rows = {}
        self._ranked = collections.OrderedDict()
        self._prepared = collections.OrderedDict()

    def forget_rankings(self):
        """Drop the rankings kept for reuse (the estimates stay)."""
        with self.lock:
            self._ranked.clear()
            self._prepared.clear()

    def rows_of(self, hosts, keys):
        """``{host: (key, values, sds, measurable sds, reasons)}``: the
        rows kept for those of ``hosts`` whose key (``keys[host]``, see
        :func:`_host_keys`) is the one they were made for."""
        found = {}
        with self.lock:
            rows = self._rows
            for host in hosts:
                kept = rows.get(host)
                if kept is not None and kept[0] == keys[host]:
                    found[host] = kept
            self.reused += len(found)
            self.rows_reused += len(found)
        return found

    def keep_rows(self, hosts, keys, made, limit):
        """Keep each of ``hosts``' row of ``made`` (``(values, sds,
        measurable sds, {host: reasons})``, rows in ``hosts``' order;
        the arrays are not changed afterwards) under its key; all rows
        are dropped first when more than ``limit`` hosts would be
        kept."""
        values, sds, measurable, reasons = made
        for array in (values, sds, measurable):
            array.setflags(write=False)
        with self.lock:
            rows = self._rows
            if len(rows) + len(hosts) > limit:
                rows = self._rows = {}
            for index, host in enumerate(hosts):
                rows[host] = (keys[host], values[index], sds[index],
                              measurable[index], tuple(reasons[host]))

    def ranked(self, key):
        """The :class:`RankedMemo` kept for ``key``, or None."""
        return self._reused(self._ranked, key)

    def keep_ranked(self, key, memo):
        self._keep(self._ranked, key, memo)

    def prepared(self, inputs):
        """``(RankedMemo, measured hosts, values, sds, measurable sds)``
        of a ranking made from the same per-host inputs, or None."""
        return self._reused(self._prepared, inputs)

    def keep_prepared(self, inputs, found):
        self._keep(self._prepared, inputs, found)

    def _reused(self, kept, key):
        with self.lock:
            found = kept.get(key)
            if found is not None:
                kept.move_to_end(key)
                self.rankings_reused += 1
            return found

    def _keep(self, kept, key, value):
        with self.lock:
            kept[key] = value
            while len(kept) > RANKINGS_KEPT:
                kept.popitem(last=False)


def _host_keys(hosts, tokens, data_age_s, host_features):
    """``{host: (token, data age, features)}``: what
    :meth:`Analyzer._rank_kept` reads per host (its observations by their
    token), or None when a host has no token."""
    keys = {}
    for host in hosts:
        token = tokens.get(host)
        if token is None:
            return None
        keys[host] = (token, data_age_s.get(host),
                      _frozen(host_features.get(host)))
    return keys


def _inputs_key(hosts, keys):
    """A hashable key of the candidate list and its hosts' ``keys``
    (:func:`_host_keys`), or None without keys or when a feature cannot
    be hashed."""
    if keys is None:
        return None
    key = (tuple(hosts), tuple(keys[h] for h in hosts))
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _assembled(hosts, rows, missing, made, columns):
    """``(values, sds, measurable sds, {host: reasons})`` of ``hosts``
    (rows in their order) from kept ``rows`` (:meth:`KeptEstimates.
    rows_of`) and the rows ``made`` for ``missing`` (the reasons as
    kept: sequences the caller does not change)."""
    values, sds, measurable = (np.empty((len(hosts), columns))
                               for _ in range(3))
    reasons = {}
    for index, host in enumerate(hosts):
        found = rows.get(host)
        if found is None:
            continue
        values[index], sds[index], measurable[index] = found[1:4]
        reasons[host] = found[4]
    if missing:
        row = {host: index for index, host in enumerate(hosts)}
        made_rows = [row[host] for host in missing]
        values[made_rows], sds[made_rows], measurable[made_rows] = made[:3]
        for host in missing:
            reasons[host] = made[3][host]
    return values, sds, measurable, reasons


def _left_out(metric, raw):
    """The reason ``metric`` is left out of a host's estimates: it has no
    samples, or none usable (all missing, infinite or beyond
    :data:`.series.MAX_MAGNITUDE`)."""
    try:
        count = len(raw) if raw is not None else 0
    except TypeError:
        count = 0
    if count:
        return "%s: none of %d samples usable, left out" % (metric, count)
    return "%s: no samples, left out" % metric


def _frozen(features):
    return tuple(sorted(features.items())) if features else None


def _kept_peak(metrics, values, sds, row, counts, wanted, apply):
    """A peak headroom (``apply(estimates)``, which replaces entries of
    the dict and returns its reasons) on the ``wanted`` metrics of row
    ``row`` of the kept arrays, changed in place; its reasons."""
    columns = {m: metrics.index(m) for m in wanted if m in metrics}
    current = {m: estimate_lib.MetricEstimate(
        float(values[row, c]), float(sds[row, c]), counts[c], [])
        for m, c in columns.items() if not np.isnan(values[row, c])}
    if not current:
        return []
    found = apply(current)
    for metric, estimate in current.items():
        values[row, columns[metric]] = estimate.value
        sds[row, columns[metric]] = estimate.sd
    return found


def _explain_kept(explained, metrics, weights, values, norm, index,
                  host_count):
    """:func:`_explain`, kept in ``explained`` (when given) by what it
    depends on: the host's values and normalised values, and the count."""
    if explained is None:
        return _explain(metrics, weights, values, norm, index, host_count)
    key = (host_count, values[index].tobytes(), norm[index].tobytes())
    lines = explained.get(key)
    if lines is None:
        lines = explained[key] = _explain(metrics, weights, values, norm,
                                          index, host_count)
    return list(lines)


def _explain(metrics, weights, values, norm, index, host_count):
    """Top contributing metrics of one host, and its largest loss."""
    present = [c for c in range(len(metrics))
               if not np.isnan(norm[index, c])]
    total = sum(weights[metrics[c]] for c in present) or 1.0
    lines = []
    by_contribution = sorted(
        present, key=lambda c: -weights[metrics[c]] * norm[index, c])
    for column in by_contribution[:3]:
        lines.append(_describe(metrics[column], values[index, column],
                               norm[index, column], host_count,
                               weights[metrics[column]] / total))
    losses = [(weights[metrics[c]] * (1 - norm[index, c]), c)
              for c in present]
    if losses:
        loss, column = max(losses)
        if loss > 0.005 and column not in by_contribution[:3]:
            lines.append("loses most on " + _describe(
                metrics[column], values[index, column],
                norm[index, column], host_count,
                weights[metrics[column]] / total))
    return lines


def _describe(metric, value, normalised_value, host_count, share):
    if normalised_value >= 0.9995:
        where = "best of %d" % host_count
    else:
        where = "%.0f%% of best" % (100 * normalised_value)
    return "%s %.4g (%s, weight %.0f%%)" % (metric, value, where,
                                            100 * share)
