"""One shadow evaluation: prior, shadows, measure, rank, always clean up.

The :class:`Evaluator` composes the parts behind their interfaces: a
``CloudDriver`` boots and deletes shadows, the ``HistoryStore`` holds what
they measured, the ``Analyzer`` turns measurements into a ranking.  It owns
the loop and its stopping rules:

* the prior (history only) is returned as is when it is already confident;
* otherwise the best ``max_shadow_hosts`` candidates get a shadow;
* the loop stops when the ranking reaches ``confidence_target`` (after
  ``min_run_time``), when the budget is spent, or when it is cancelled;
* clearly worse hosts lose their shadow early (successive halving);
* every shadow is deleted in a ``finally`` block, whatever happened.
"""

import collections
import logging
import time
import uuid

from loadgen import profiles as lg_profiles
from shadow_service import exception

LOG = logging.getLogger(__name__)

MIN_SHADOW_RAM_MB = 256
# Seconds of the budget kept back for deleting shadows and answering.
CLEANUP_RESERVE_S = 0.5


def resolve_profile(request):
    """The loadgen Profile a request asks for, or InvalidRequest."""
    spec = request['profile']
    try:
        profile = lg_profiles.load_profile(spec)
    except lg_profiles.ProfileError as e:
        if isinstance(spec, str) and spec not in lg_profiles.BUILTIN_PROFILES:
            raise exception.ProfileNotFound(profile=spec)
        raise exception.InvalidRequest(reason='profile: %s' % e)
    scale = request.get('profile_scale', 1.0)
    return profile.scaled(scale) if scale != 1.0 else profile


def shadow_flavor(flavor, shadow_scale):
    """The flavor-minimal copy of ``flavor`` a shadow boots with."""
    return {
        'name': 'shadow-%s' % flavor.get('name', 'custom'),
        'vcpus': max(1, int(round(flavor['vcpus'] * shadow_scale))),
        'ram_mb': max(MIN_SHADOW_RAM_MB,
                      int(flavor['ram_mb'] * shadow_scale)),
        'disk_gb': max(1, int(flavor.get('disk_gb', 1) * shadow_scale)),
        'extra_specs': dict(flavor.get('extra_specs', {})),
    }


class Evaluation:
    """Progress of one evaluation, readable from other threads."""

    def __init__(self, evaluation_id, request, hosts, budget_s):
        self.evaluation_id = evaluation_id
        self.request = request
        self.hosts = hosts
        self.budget_s = budget_s
        self.status = 'pending'
        self.progress = 0.0
        self.ranking = None
        self.error = None
        self.cancelled = False
        self.started_at = time.time()
        self.finished_at = None

    def to_dict(self):
        return {
            'evaluation_id': self.evaluation_id,
            'status': self.status,
            'progress': round(self.progress, 3),
            'ranking': self.ranking,
            'error': self.error,
            'started_at': self.started_at,
            'finished_at': self.finished_at,
        }


class Evaluator:
    """Runs evaluations against one driver, history store and analyzer."""

    def __init__(self, driver, history, analyzer, *,
                 confidence_target=0.8, max_shadow_hosts=8,
                 sample_interval=1.0, min_run_time=2.0, max_budget=300.0,
                 shadow_scale=0.25, min_hosts_kept=2):
        self.driver = driver
        self.history = history
        self.analyzer = analyzer
        self.confidence_target = confidence_target
        self.max_shadow_hosts = max_shadow_hosts
        self.sample_interval = sample_interval
        self.min_run_time = min_run_time
        self.max_budget = max_budget
        self.shadow_scale = shadow_scale
        self.min_hosts_kept = min_hosts_kept

    @classmethod
    def from_conf(cls, conf, driver, history, analyzer):
        opts = conf.shadow
        return cls(driver, history, analyzer,
                   confidence_target=opts.confidence_target,
                   max_shadow_hosts=opts.max_shadow_hosts,
                   sample_interval=opts.sample_interval,
                   min_run_time=opts.min_run_time,
                   max_budget=opts.max_budget,
                   shadow_scale=opts.shadow_scale)

    def new(self, request, hosts, budget_s, evaluation_id=None):
        return Evaluation(evaluation_id or str(uuid.uuid4()), request,
                          hosts, min(budget_s, self.max_budget))

    def run(self, evaluation, progress=None):
        """Run ``evaluation`` to the end; returns the ranking dict.

        ``progress(evaluation, ranking)`` is called after every read.
        """
        evaluation.status = 'running'
        wall_start = time.monotonic()
        profile = resolve_profile(evaluation.request)
        host_names = [h['host'] for h in evaluation.hosts]
        features = self._host_features(host_names)
        scale = self._scale(evaluation.request['flavor'])

        prior = self.analyzer.rank(profile.sensitivity, {},
                                   host_features=features, scale=scale)
        if prior.confidence >= self.confidence_target:
            LOG.info('Evaluation %s: prior confidence %.2f is enough, no '
                     'shadows booted', evaluation.evaluation_id,
                     prior.confidence)
            return self._finish(evaluation, prior, wall_start, 0.0,
                                'prior')

        candidates = self._candidates(prior, host_names)
        ranking, shadow_seconds = self._measure(
            evaluation, profile, candidates, features, scale, wall_start,
            progress)
        if ranking is None:
            ranking = prior
        return self._finish(evaluation, ranking, wall_start, shadow_seconds,
                            'shadows')

    def _host_features(self, host_names):
        try:
            return self.driver.host_features(host_names) or {}
        except Exception:
            LOG.exception('Could not read host features; ranking without')
            return {}

    def _scale(self, flavor):
        shadow = shadow_flavor(flavor, self.shadow_scale)
        return {'shadow_vcpus': shadow['vcpus'],
                'full_vcpus': flavor['vcpus'],
                'shadow_ram_mb': shadow['ram_mb'],
                'full_ram_mb': flavor['ram_mb']}

    def _candidates(self, prior, host_names):
        ordered = [h.host for h in prior.hosts if h.host in host_names]
        ordered += [h for h in host_names if h not in ordered]
        return ordered[:self.max_shadow_hosts]

    def _measure(self, evaluation, profile, candidates, features, scale,
                 wall_start, progress):
        request = dict(evaluation.request)
        request['flavor'] = shadow_flavor(request['flavor'],
                                          self.shadow_scale)
        shadow_profile = profile.scaled(self.shadow_scale)
        shadows = []
        started = {}
        stopped = {}
        ranking = None
        try:
            shadows = self.driver.boot_shadows(
                evaluation.evaluation_id, request, candidates,
                shadow_profile.to_dict())
            if not shadows:
                LOG.warning('Evaluation %s: no shadow booted',
                            evaluation.evaluation_id)
                return None, 0.0
            t0 = self.driver.now()
            for shadow in shadows:
                started[shadow.shadow_id] = t0
            ranking = self._loop(evaluation, shadow_profile, shadows,
                                 started, stopped, features, scale, t0,
                                 wall_start, progress)
        finally:
            self._delete(shadows, stopped)
        return ranking, sum(stopped[s] - started.get(s, stopped[s])
                            for s in stopped)

    def _loop(self, evaluation, profile, shadows, started, stopped,
              features, scale, t0, wall_start, progress):
        observations = collections.defaultdict(
            lambda: collections.defaultdict(list))
        newest = {}
        read_from = t0
        running = {s.shadow_id: s for s in shadows}
        ranking = None
        budget = max(0.0, evaluation.budget_s - CLEANUP_RESERVE_S)
        while not evaluation.cancelled:
            self.driver.wait(self.sample_interval)
            now = self.driver.now()
            points = self.history.query_points(
                'shadow_sample', {'evaluation': evaluation.evaluation_id},
                start=read_from, end=now + 1e-6)
            read_from = now + 1e-6
            for point in points:
                host = point.tags.get('host')
                metric = point.tags.get('metric')
                observations[host][metric].append(
                    float(point.fields['value']))
                newest[host] = max(newest.get(host, 0.0), point.time)
            if observations:
                ranking = self.analyzer.rank(
                    profile.sensitivity,
                    {h: dict(m) for h, m in observations.items()},
                    host_features=features, scale=scale,
                    data_age_s={h: now - t for h, t in newest.items()})
            elapsed = now - t0
            wall = time.monotonic() - wall_start
            evaluation.progress = min(1.0, max(elapsed, wall) / budget
                                      if budget else 1.0)
            if progress is not None:
                progress(evaluation, ranking)
            if elapsed >= budget or wall >= budget:
                LOG.info('Evaluation %s: budget of %.1fs spent',
                         evaluation.evaluation_id, evaluation.budget_s)
                break
            if ranking is None or elapsed < self.min_run_time:
                continue
            if ranking.confidence >= self.confidence_target:
                break
            self._drop_worse(ranking, running, stopped, now)
        return ranking

    def _drop_worse(self, ranking, running, stopped, now):
        worse = set(ranking.clearly_worse())
        droppable = [s for s in running.values() if s.host in worse]
        keep = len(running) - len(droppable)
        if keep < self.min_hosts_kept:
            droppable = droppable[:max(0, len(running) -
                                       self.min_hosts_kept)]
        if droppable:
            LOG.info('Dropping shadows on clearly worse hosts: %s',
                     ', '.join(s.host for s in droppable))
            self._delete(droppable, stopped, now)
            for shadow in droppable:
                running.pop(shadow.shadow_id, None)

    def _delete(self, shadows, stopped, now=None):
        pending = [s for s in shadows if s.shadow_id not in stopped]
        if not pending:
            return
        try:
            now = self.driver.now() if now is None else now
        except Exception:
            now = time.time()
        try:
            self.driver.delete_shadows(pending)
        except Exception:
            LOG.exception('Deleting shadows %s failed; the start-up clean-up '
                          'will retry', [s.shadow_id for s in pending])
        for shadow in pending:
            stopped[shadow.shadow_id] = now

    def _finish(self, evaluation, ranking, wall_start, shadow_seconds,
                source):
        result = ranking.to_dict()
        result.update({
            'evaluation_id': evaluation.evaluation_id,
            'status': 'cancelled' if evaluation.cancelled else 'finished',
            'source': source,
            'duration_s': round(time.monotonic() - wall_start, 3),
            'shadow_host_seconds': round(shadow_seconds, 3),
        })
        evaluation.ranking = result
        evaluation.status = result['status']
        evaluation.progress = 1.0
        evaluation.finished_at = time.time()
        record = dict(result)
        record['request'] = evaluation.request
        try:
            self.history.put_evaluation(record)
        except Exception:
            LOG.exception('Could not record evaluation %s',
                          evaluation.evaluation_id)
        return result
