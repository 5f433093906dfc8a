"""Lifetime outlook: the host's own load over the VM's first hours.

A shadow measures a host for a minute or two; a VM lives for hours or
months.  :class:`LoadForecaster` reads each candidate host's utilisation
history from a metrics source (:mod:`shadow_service.metrics`: the history
store, Prometheus or InfluxDB), forecasts it ``horizon_s`` ahead with a
forecaster plugin, and summarises the forecast as a :class:`HostOutlook`:
per load metric, the value now (the last bucket of the history with
data), the mean over the horizon with its interval, and the peak and when
it comes; a history whose newest buckets are empty is forecast across them,
so the horizon starts now.

:func:`lifetime_shift` turns an outlook into a change of one predicted
metric with the contention model: the model's prediction with the host's
load features moved from now to the forecast mean over the horizon, minus
its prediction now; the forecast interval's ends give the change's
uncertainty.  A metric without a fitted contention model is not changed
(the outlook still appears in the host's reasons).

Forecasts are cached per host and per ``step_s`` bucket of the clock, so
the many rankings of one evaluation read and fit each host once.  An
outlook for which the source could not be read (it failed, or the
caller's deadline came first) is reused only ``failure_ttl_s`` seconds of
real time, then the host's history is asked for again: a passing outage
of the monitoring costs a host its outlook for that long, not a whole
step.
"""

import dataclasses
import logging
import math
import time

import numpy as np
from scipy import stats

from shadow_service import hostfacts
from shadow_service.analysis import forecasters

LOG = logging.getLogger(__name__)

#: Host load metrics read from the metrics source, and how each maps onto
#: the contention model's regressor: ``(feature, rated feature)``, where a
#: rated feature divides the metric into a utilisation (0-1).
LOAD_METRICS = {
    'cpu_util_pct': (hostfacts.CPU_UTIL_PCT, None),
    'cpu_steal_pct': (hostfacts.CPU_STEAL_PCT, None),
    'mem_bandwidth_gbps': (hostfacts.MEM_BW_UTIL,
                           hostfacts.RATED_MEM_BANDWIDTH_GBPS),
    'disk_iops': (hostfacts.IO_UTIL, hostfacts.RATED_DISK_IOPS),
}
#: Names used in the reasons.
LABELS = {'cpu_util_pct': 'CPU', 'cpu_steal_pct': 'steal',
          'mem_bandwidth_gbps': 'memory bandwidth', 'disk_iops': 'disk IOPS'}
PERCENT = ('cpu_util_pct', 'cpu_steal_pct')
#: A forecast peak or mean this many points (percent metrics) or this
#: share (others) above or below now is worth a reason.
NOTABLE_POINTS = 10.0
NOTABLE_SHARE = 0.25
#: History the recent busy level (``LoadOutlook.recent_p95``) covers.
RECENT_S = 86400.0
#: Entries kept in the shift cache before it is emptied.
CACHE_LIMIT = 20000


@dataclasses.dataclass
class LoadOutlook:
    """One load metric of one host over the horizon."""

    metric: str
    now: float
    mean: float
    lower: float
    upper: float
    peak: float
    peak_at: float
    model: str
    history_points: int
    level: float = 0.9
    horizon_s: float = 86400.0
    #: 95th percentile of the last day of history (the host's busy level;
    #: :mod:`.peak` uses it where the host facts do not carry it).
    recent_p95: float = None

    @property
    def notable(self):
        """True when the horizon differs from now enough to say so."""
        scale = (NOTABLE_POINTS if self.metric in PERCENT
                 else NOTABLE_SHARE * max(abs(self.now), 1e-9))
        return (self.peak - self.now >= scale
                or abs(self.mean - self.now) >= scale)

    def describe(self):
        """E.g. ``quiet now (CPU 22 %), forecast peak 19:00 UTC +40 %
        CPU, mean 41 % over 24 h (90 % interval 30-52 %)``."""
        label = LABELS.get(self.metric, self.metric)
        percent = self.metric in PERCENT
        unit = ' %' if percent else ''
        fmt = '%.0f' if percent else '%.3g'
        scale = (NOTABLE_POINTS if percent
                 else NOTABLE_SHARE * max(abs(self.now), 1e-9))
        if percent:
            rise = '%+.0f %%' % (self.peak - self.now)
        else:
            rise = '%+.0f %%' % (100.0 * (self.peak - self.now)
                                 / max(abs(self.now), 1e-9))
        peak_at = time.strftime('%H:%M UTC', time.gmtime(self.peak_at))
        if self.peak - self.now >= scale:
            state = 'quiet now (%s %s%s), forecast peak %s %s %s' % (
                label, fmt % self.now, unit, peak_at, rise, label)
        elif self.now - self.mean >= scale:
            state = 'busy now (%s %s%s), forecast to ease' % (
                label, fmt % self.now, unit)
        else:
            state = 'steady (%s %s%s)' % (label, fmt % self.now, unit)
        return '%s, mean %s%s over %.0f h (%.0f %% interval %s-%s%s; %s)' % (
            state, fmt % self.mean, unit, self.horizon_s / 3600.0,
            100 * self.level, fmt % self.lower, fmt % self.upper, unit,
            self.model.split(':')[0])


@dataclasses.dataclass
class HostOutlook:
    """What the host's own load is expected to do over the horizon."""

    host: str
    horizon_s: float
    key: float
    loads: dict = dataclasses.field(default_factory=dict)
    notes: list = dataclasses.field(default_factory=list)
    #: True when some history could not be read from the source (it
    #: failed or ran out of time); such an outlook is read again sooner.
    unavailable: bool = False
    #: Which read of the forecaster made it (tells a re-read outlook of the
    #: same ``key`` from the one it replaced).
    read: int = 0

    def features(self, features, which='mean'):
        """``features`` with every forecast load moved from now to the
        forecast's ``mean``, ``lower`` or ``upper`` over the horizon (in
        the regressor's units); None if nothing could be moved."""
        moved = dict(features)
        changed = False
        for metric, outlook in self.loads.items():
            feature, rated = LOAD_METRICS[metric]
            if feature not in features:
                continue
            try:
                current = float(features[feature])
            except (TypeError, ValueError):
                continue
            shift = getattr(outlook, which) - outlook.now
            if rated is not None:
                try:
                    capacity = float(features.get(rated) or 0.0)
                except (TypeError, ValueError):
                    capacity = 0.0
                if capacity <= 0:
                    continue
                shift /= capacity
            value = max(current + shift, 0.0)
            if metric in PERCENT:
                value = min(value, 100.0)
            moved[feature] = value
            changed = True
        return moved if changed else None

    def reasons(self):
        lines = ['lifetime: %s' % o.describe()
                 for o in self.loads.values() if o.notable]
        if not lines and self.loads:
            cpu = self.loads.get('cpu_util_pct') or next(
                iter(self.loads.values()))
            lines.append('lifetime: %s' % cpu.describe())
        return lines + ['lifetime: %s' % n for n in self.notes]


class LoadForecaster:
    """Host load outlooks from a metrics source.

    Parameters
    ----------
    source : shadow_service.metrics.base.MetricsSource
    clock : callable
        Now, in the time base of the source (the cloud driver's clock).
    horizon_s : float
        How far ahead the VM's performance is predicted.
    history_s : float
        Host history read per forecast.
    step_s : float
        Grid of the history and the forecast; also how long a forecast is
        reused.
    forecaster : str
        Forecaster plugin (``auto`` picks per series).
    level : float
        Coverage of the forecast intervals.
    min_points : int
        Fewest history buckets with data a metric needs to be forecast.
    metrics : sequence of str, optional
        Load metrics to forecast (default: those of :data:`LOAD_METRICS`
        the source can read).
    failure_ttl_s : float
        Seconds of ``timer`` an outlook whose history could not all be
        read is reused before the source is asked again (within the same
        ``step_s`` bucket at most).
    timer : callable
        Real elapsed seconds for ``failure_ttl_s`` (default
        ``time.monotonic``): an outage passes in real time, whatever the
        pace of ``clock``.
    """

    def __init__(self, source, clock, *, horizon_s=86400.0,
                 history_s=3 * 86400.0, step_s=3600.0, forecaster='auto',
                 level=0.9, min_points=24, metrics=None,
                 failure_ttl_s=60.0, timer=time.monotonic):
        if horizon_s <= 0 or history_s <= 0 or step_s <= 0:
            raise ValueError('horizon_s, history_s and step_s must be '
                             'positive')
        if not failure_ttl_s >= 0:
            raise ValueError('failure_ttl_s must not be negative')
        self.source = source
        self.clock = clock
        self.horizon_s = float(horizon_s)
        self.history_s = float(history_s)
        self.step_s = float(step_s)
        self.forecaster = forecaster
        self.level = level
        self.min_points = int(min_points)
        self.failure_ttl_s = float(failure_ttl_s)
        self.timer = timer
        wanted = metrics or tuple(LOAD_METRICS)
        self.metrics = tuple(m for m in wanted if m in LOAD_METRICS
                             and source.supports(m))
        # (host, key) -> (HostOutlook, monotonic time to read it again
        # or None for the rest of the step)
        self._cache = {}
        self._shifts = {}
        self._reads = 0
        self.forecasts = 0
        self.failures = 0

    def now(self):
        try:
            return float(self.clock())
        except Exception:
            LOG.exception('The clock of the load forecaster failed; using '
                          'the wall clock')
            return time.time()

    def outlook(self, hosts, deadline=None):
        """``{host: HostOutlook}`` for ``hosts`` (never raises: a host
        whose history cannot be read gets an outlook with a note).

        ``deadline`` (``time.monotonic()`` seconds) bounds the reading of
        the source: a metric not read by then, and every metric after the
        source was found unavailable, is noted as unavailable."""
        now = self.now()
        key = math.floor(now / self.step_s)
        missing = [h for h in hosts if self._stale(h, key)]
        if missing:
            if len(self._cache) > CACHE_LIMIT:
                self._cache.clear()
            for host, outlook in self._forecast(missing, key,
                                                deadline).items():
                retry_at = (self.timer() + self.failure_ttl_s
                            if outlook.unavailable else None)
                self._cache[(host, key)] = (outlook, retry_at)
        return {h: self._cache[(h, key)][0] for h in hosts}

    def _stale(self, host, key):
        """True if ``host`` has no outlook for ``key`` to reuse: none yet,
        or one whose history was unavailable ``failure_ttl_s`` ago."""
        cached = self._cache.get((host, key))
        if cached is None:
            return True
        retry_at = cached[1]
        return retry_at is not None and self.timer() >= retry_at

    def _forecast(self, hosts, key, deadline=None):
        end = key * self.step_s
        start = end - self.history_s
        steps = max(1, int(math.ceil(self.horizon_s / self.step_s)))
        self._reads += 1
        outlooks = {h: HostOutlook(h, self.horizon_s, key, read=self._reads)
                    for h in hosts}
        down = False
        for metric in self.metrics:
            found = None
            if not down:
                try:
                    found = self.source.host_series_many(
                        hosts, metric, start, end, self.step_s,
                        deadline=deadline)
                except Exception as exc:
                    self.failures += 1
                    # Unreachable, or out of time: so for the metrics
                    # still to read, without waiting for it again.
                    down = isinstance(exc, getattr(
                        self.source, 'unavailable_errors', ()))
                    LOG.warning('Host history of %s unavailable from the '
                                '%s metrics source%s: %s', metric,
                                getattr(self.source, 'name', '?'),
                                ' (the metrics after it are not asked for)'
                                if down else '', exc)
            if found is None:
                for outlook in outlooks.values():
                    outlook.notes.append('%s history unavailable'
                                         % LABELS[metric])
                    outlook.unavailable = True
                continue
            for host in hosts:
                series = found.get(host)
                values = np.array([np.nan if v is None else float(v)
                                   for v in (series.values if series
                                             else [])], dtype=float)
                load = self._one(metric, values, end, steps)
                if load is None:
                    if metric == 'cpu_util_pct':
                        outlooks[host].notes.append(
                            'too little %s history to forecast (%d of %d '
                            'buckets)' % (LABELS[metric],
                                          int(np.sum(np.isfinite(values))),
                                          self.min_points))
                    continue
                outlooks[host].loads[metric] = load
        return outlooks

    def _one(self, metric, values, end, steps):
        known = np.flatnonzero(np.isfinite(values))
        if known.size < self.min_points:
            return None
        values = values[known[0]:]
        now = float(values[known[-1] - known[0]])
        # Buckets at the end without data (the monitoring stopped or lags):
        # the model is fitted up to the last bucket with data, so its path
        # starts there; forecast across them and keep what follows end.
        stale = values.size - 1 - (known[-1] - known[0])
        bounds = (0.0, 100.0) if metric in PERCENT else (0.0, None)
        options = {'level': self.level, 'bounds': bounds}
        if self.forecaster == 'auto':
            options['horizon_steps'] = steps + stale
        try:
            fitted = forecasters.load(self.forecaster, **options).fit(
                values, step_s=self.step_s)
            forecast = fitted.forecast(steps + stale)
        except Exception:
            self.failures += 1
            LOG.exception('Forecasting %s failed', metric)
            return None
        if stale:
            forecast = dataclasses.replace(
                forecast, mean=forecast.mean[stale:],
                lower=forecast.lower[stale:], upper=forecast.upper[stale:])
        self.forecasts += 1
        if not np.all(np.isfinite(forecast.mean)):
            return None
        peak = int(np.argmax(forecast.mean))
        last_day = values[-max(1, int(round(RECENT_S / self.step_s))):]
        last_day = last_day[np.isfinite(last_day)]
        return LoadOutlook(
            metric=metric, now=now, mean=float(np.mean(forecast.mean)),
            lower=float(np.mean(forecast.lower)),
            upper=float(np.mean(forecast.upper)),
            peak=float(forecast.mean[peak]),
            peak_at=end + (peak + 0.5) * self.step_s,
            model=forecast.model, history_points=int(values.size),
            level=float(self.level), horizon_s=self.horizon_s,
            recent_p95=(float(np.percentile(last_day, 95))
                        if last_day.size else None))

    def shift(self, metric, model, features, outlook):
        """Cached :func:`lifetime_shift`."""
        relevant = tuple(sorted((k, v) for k, v in features.items()
                                if isinstance(v, (int, float, str))))
        key = (metric, model, outlook.host, outlook.key, outlook.read,
               relevant)
        if key not in self._shifts:
            if len(self._shifts) > CACHE_LIMIT:
                self._shifts.clear()
            self._shifts[key] = lifetime_shift(model, features, outlook)
        return self._shifts[key]


def from_conf(conf, source, clock):
    """The :class:`LoadForecaster` the ``[analysis]`` group describes over
    ``source``, or None when ``lifetime_horizon`` is 0 or there is no
    source."""
    group = conf.analysis
    if source is None or not group.lifetime_horizon:
        return None
    return LoadForecaster(source, clock,
                          horizon_s=group.lifetime_horizon,
                          history_s=group.lifetime_history,
                          step_s=group.lifetime_step,
                          forecaster=group.forecaster,
                          level=group.interval_level,
                          min_points=group.lifetime_min_points,
                          failure_ttl_s=group.lifetime_failure_ttl)


def lifetime_shift(model, features, outlook):
    """``(change, sd)`` of a metric over the horizon: the contention
    model's prediction at the forecast mean load minus its prediction at
    the load now, and the standard deviation the forecast interval adds.
    ``(0.0, 0.0)`` when the outlook moves no regressor of the model.
    """
    rows = [outlook.features(features, which) for which in
            ('mean', 'lower', 'upper')]
    if rows[0] is None:
        return 0.0, 0.0
    predicted = model.predict([features] + rows).mean
    now, mean, low, high = (float(v) for v in predicted)
    level = next(iter(outlook.loads.values())).level
    spread = abs(high - low) / (2.0 * stats.norm.ppf(0.5 + level / 2.0))
    return mean - now, spread
