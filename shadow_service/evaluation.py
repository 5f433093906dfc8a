"""One shadow evaluation: prior, shadows, measure, rank, always clean up.

The :class:`Evaluator` composes the parts behind their interfaces: a
``CloudDriver`` boots and deletes shadows, the ``HistoryStore`` holds what
they measured, the ``Analyzer`` turns measurements into a ranking.  It owns
the loop and its stopping rules.

The prior is built from history alone: the shadow samples earlier
evaluations of the same workload (profile, flavor size and profile scale)
left on these hosts within ``prior_lookback`` seconds (the analyzer
discounts them by their age, at the drift the age drift learner measured
where it is on).  Hosts that got no shadow keep their prior
estimate in the ranking, and every shadow is deleted in a ``finally``
block, whatever happened.  Then one of three schedules
(``evaluation_schedule``) spends the budget:

``racing`` (the default)
    The prior is returned as is when it already decides the ranking:
    it covers every candidate and its confidence reaches
    ``confidence_target``, or the expected score lost by taking its top
    host (:mod:`shadow_service.racing`, drawn from the part of each
    estimate's uncertainty a shadow can narrow) is below
    ``prior_settle_margin`` (``settle_margin`` when unset), counting each
    candidate without history as a host like a known one picked at
    random (when at least half the candidates, and at least three, are
    known; otherwise they are measured first).  The answer's
    ``history_verdict`` says which.
    Otherwise shadows run only on the hosts that could change the
    ranking: hosts the history knows nothing about, the prior's top host,
    and the hosts whose expected improvement over it is not negligible.
    A host with a shadow is estimated from its new samples and its
    earlier samples of the workload together (the earlier ones aged).
    After every read (once ``min_run_time`` has passed) a host whose
    expected improvement falls below a quarter of ``settle_margin`` loses
    its shadow, a host that becomes a contender (the top host measured
    worse than its prior) gets one, and the race stops as soon as the
    ranking is settled, when the budget is spent, or when it is
    cancelled.
``pool``
    The earlier loop: up to ``max_shadow_hosts`` candidates get a shadow
    (hosts the history knows nothing about first, then the best of the
    prior), clearly worse hosts lose theirs (successive halving), and the
    loop stops at ``confidence_target`` once every host without an
    estimate has been measured.
``full``
    A shadow on every candidate (up to ``max_shadow_hosts``) for the whole
    budget, without the prior: the most expensive, the reference the
    others are measured against.
"""

import collections
import itertools
import logging
import math
import queue
import threading
import time
import uuid

from shadow_service import hostchoice
from shadow_service import hostfacts
from shadow_service import learners as learners_mod
from shadow_service import logsafe
from shadow_service import measurements as names
from shadow_service import priorsamples
from shadow_service import racing
from shadow_service.analysis import analyzer as analyzer_mod
from shadow_service.analysis import scaleup
from shadow_service.clouds import base as cloud_base
from shadow_service.history import base as history_base
from shadow_service.learners import base as learner_base
from shadow_service.workloads import profiles

LOG = logging.getLogger(__name__)

# Score of a host nothing is known about (the middle of 0..100).
NEUTRAL_SCORE = 50.0
# Seconds of the budget kept back for deleting shadows and answering.
CLEANUP_RESERVE_S = 0.5
# Earlier evaluations whose shadow samples may form a prior.
PRIOR_EVALUATIONS = 50
#: Workload keys of recorded evaluations kept in memory (then forgotten
#: and read again).
WORKLOAD_KEYS_KEPT = 100000
#: Workloads whose prior per-host estimates are kept between requests.
WORKLOADS_KEPT = 64
#: Workloads (the most recent) whose rankings are kept for reuse.
WORKLOADS_RANKED = 8
#: Rankings whose host_score points may wait to be written.
SCORE_WRITES_QUEUED = 64
#: Racing verdicts kept per ranking (one per set of exclusions and costs).
VERDICTS_KEPT = 8
#: The prior reads its samples' age at the end of the clock's current
#: step of this many seconds, so requests within one step that find the
#: same history get the same ranking, which is then made once (see
#: ``KeptEstimates``).
PRIOR_AGE_STEP_S = 10.0
#: How an evaluation spends its budget (see the module docstring).
SCHEDULES = ('racing', 'pool', 'full')
#: Share of ``settle_margin`` below which a host's expected improvement
#: takes it out of the race.
ELIMINATION_SHARE = 0.25
#: The racing verdict counts candidates without history of the workload
#: as hosts like the known ones when at least this share of the
#: candidates, and at least ``MIN_KNOWN_HOSTS`` of them, are known;
#: otherwise they are measured before history may answer.
KNOWN_SHARE = 0.5
MIN_KNOWN_HOSTS = 3


def prior_ages(newest, now, step=PRIOR_AGE_STEP_S):
    """``{host: age of its newest sample}`` at the end of the clock's
    current ``step`` (never younger than it is; the same ages for every
    request within one step)."""
    if step > 0:
        now = math.ceil(now / step) * step
    return {h: max(now - t, 0.0) for h, t in newest.items()}


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
        # {host: why it got no measurement}
        self.unmeasured = {}
        # The samples the prior was made from (see Evaluator._prior).
        self.prior_samples = {}
        # Answered from the history prior alone (RPC API 1.4).
        self.history_only = False
        # Whether the answer is recorded (RPC API 1.4).
        self.record = True

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


class ScoreWriter:
    """Writes each ranking's ``host_score`` points (one per host), and the
    records of answers from history, on its own thread, so the answer
    does not wait for them.  At most
    ``SCORE_WRITES_QUEUED`` rankings wait (then the next one waits for
    room); :meth:`flush` waits until every queued ranking is written,
    :meth:`close` also stops the thread.  A failed write is logged and
    dropped, as a failed record is."""

    def __init__(self, history):
        self.history = history
        self._queue = queue.Queue(maxsize=SCORE_WRITES_QUEUED)
        self._lock = threading.Lock()
        self._thread = None
        #: Rankings whose points were written, and those that failed.
        self.written = 0
        self.failed = 0

    def put(self, make_points, evaluation, result, when):
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name='score-writer', daemon=True)
                self._thread.start()
        self._queue.put((make_points, evaluation, result, when))

    def put_record(self, record, when, memo=None):
        """Write the evaluation ``record`` (``put_evaluation``) on the
        writer's thread, in order with the points.  ``memo``: the
        :class:`~shadow_service.analysis.analyzer.RankedMemo` its host
        entries came from (their JSON is then made once)."""
        self.put(None, record, memo, when)

    def _run(self):
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                make_points, evaluation, result, when = item
                if make_points is None:
                    self._write_record(evaluation, when, result)
                    continue
                try:
                    self.history.write(make_points(evaluation, result, when))
                    self.written += 1
                except Exception:
                    self.failed += 1
                    LOG.exception('Could not record the host scores of '
                                  'evaluation %s', evaluation.evaluation_id)
            finally:
                self._queue.task_done()

    def _write_record(self, record, when, memo=None):
        try:
            encoded = None
            if memo is not None and record.get('hosts') == memo.host_dicts():
                # The host entries of a ranking already recorded: their
                # JSON once.
                encoded = history_base.encode_record(record,
                                                     memo.hosts_json())
            self.history.put_evaluation(record, when=when, encoded=encoded)
            self.written += 1
        except Exception:
            self.failed += 1
            LOG.exception('Could not record evaluation %s',
                          record.get('evaluation_id'))

    def flush(self, timeout=30.0):
        """Wait until every queued ranking is written; False if that
        took longer than ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout=30.0):
        with self._lock:
            thread = self._thread
            self._thread = None
        if thread is None or not thread.is_alive():
            return
        self._queue.put(None)
        thread.join(timeout)


class Evaluator:
    """Runs evaluations against one driver, history store and analyzer."""

    DEFAULT_CONFIDENCE_TARGET = 0.8
    DEFAULT_SETTLE_MARGIN = 1.0
    DEFAULT_FIRST_SAMPLE_TIMEOUT = 60.0

    def __init__(self, driver, history, analyzer, *,
                 confidence_target=DEFAULT_CONFIDENCE_TARGET,
                 max_shadow_hosts=8,
                 sample_interval=1.0, min_run_time=2.0, max_budget=300.0,
                 shadow_scale=0.25, min_hosts_kept=2,
                 prior_lookback=86400.0, profile_dirs=(), learners=None,
                 schedule='racing',
                 settle_margin=DEFAULT_SETTLE_MARGIN, cost_policy=None,
                 inline_profile_allow=(), prior_settle_margin=None,
                 first_sample_timeout=DEFAULT_FIRST_SAMPLE_TIMEOUT):
        if schedule not in SCHEDULES:
            raise ValueError('schedule must be one of %s, not %r'
                             % (', '.join(SCHEDULES), schedule))
        if settle_margin < 0:
            raise ValueError('settle_margin must not be negative')
        if prior_settle_margin is not None and prior_settle_margin < 0:
            raise ValueError('prior_settle_margin must not be negative')
        if first_sample_timeout < 0:
            raise ValueError('first_sample_timeout must not be negative')
        # Seconds a shadow may stay silent once up (0: forever).
        self.first_sample_timeout = float(first_sample_timeout)
        self.schedule = schedule
        self.settle_margin = float(settle_margin)
        # The expected loss at or below which history alone answers
        # (None: settle_margin); settle_margin keeps stopping races.
        self.prior_settle_margin = (None if prior_settle_margin is None
                                    else float(prior_settle_margin))
        # Which hosts may take the VM and how cost weighs against score.
        self.cost_policy = cost_policy or hostchoice.CostPolicy()
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
        self.prior_lookback = prior_lookback
        self.profile_dirs = tuple(profile_dirs)
        self.inline_profile_allow = tuple(inline_profile_allow)
        # The samples earlier evaluations left, kept between requests.
        self.prior_samples = priorsamples.PriorSamples(
            history, prior_lookback, keep=PRIOR_EVALUATIONS)
        # The rankings' host_score points, written off the request path.
        self.score_writer = ScoreWriter(history)
        self._workload_keys = {}
        # Per workload, the prior's per-host estimates, kept between
        # requests (least recently used first).
        self._kept_estimates = {}
        self._kept_lock = threading.Lock()
        #: Whether the prior keeps per-host estimates between requests
        #: (False: every host is estimated afresh, as a new process does).
        self.keep_estimates = True
        learners = learners or learners_mod.Learners()
        # Optional ContentionLearner: its models join the analyzer's.
        self.learner = learners.contention
        # Optional ScaleUpLearner: its model replaces the prior scale-up.
        self.scaleup_learner = learners.scaleup
        # Optional AgeDriftLearner: how fast measurements go stale.
        self.drift_learner = learners.age_drift
        # Optional PriorTrustLearner: how much of the prior's expected
        # loss races confirmed, per profile.
        self.trust_learner = learners.prior_trust

    @classmethod
    def from_conf(cls, conf, driver, history, analyzer, learners=None):
        """The evaluator ``[shadow]`` describes; ``learners`` default to
        :func:`shadow_service.learners.build` on the driver's clock."""
        opts = conf.shadow
        if learners is None:
            learners = learners_mod.build(conf, history, clock=driver.now)
        return cls(driver, history, analyzer,
                   confidence_target=opts.confidence_target,
                   max_shadow_hosts=opts.max_shadow_hosts,
                   sample_interval=opts.sample_interval,
                   min_run_time=opts.min_run_time,
                   max_budget=opts.max_budget,
                   shadow_scale=opts.shadow_scale,
                   prior_lookback=opts.prior_lookback,
                   profile_dirs=opts.profile_dirs, learners=learners,
                   schedule=opts.evaluation_schedule,
                   settle_margin=opts.settle_margin,
                   prior_settle_margin=opts.prior_settle_margin,
                   cost_policy=hostchoice.CostPolicy.from_conf(conf),
                   inline_profile_allow=opts.inline_profile_allow,
                   first_sample_timeout=opts.first_sample_timeout)

    def resolve_profile(self, request):
        """The request's profile (InvalidRequest if it names none)."""
        return profiles.resolve_profile(request, self.profile_dirs,
                                        self.inline_profile_allow)

    def new(self, request, hosts, budget_s, evaluation_id=None,
            profile=None):
        evaluation = Evaluation(evaluation_id or str(uuid.uuid4()), request,
                                hosts, min(budget_s, self.max_budget))
        evaluation.profile = profile
        # Its start on the driver's clock, the clock its records are on
        # (``started_at`` is the wall clock's).
        evaluation.clock_started_at = self._now()
        return evaluation

    def run(self, evaluation, progress=None):
        """Run ``evaluation`` to the end; returns the ranking dict.

        ``progress(evaluation, ranking)`` is called after every read.
        """
        evaluation.status = 'running'
        wall_start = time.monotonic()
        profile = (getattr(evaluation, 'profile', None)
                   or self.resolve_profile(evaluation.request))
        host_names = [h['host'] for h in evaluation.hosts]
        # The budget bounds the whole request, reading facts included
        # (on the wall clock only when the driver spends it there).
        evaluation.deadline = (wall_start + max(
            0.0, evaluation.budget_s - self._cleanup_reserve())
            if self._wall_budget() else None)
        features = self._host_features(host_names, evaluation.hosts,
                                       evaluation.deadline)
        scale = self._scale(evaluation.request['flavor'])
        evaluation.host_features = features
        evaluation.scale = scale
        analyzer = self._analyzer_for(evaluation.request, profile)

        eligible = self._eligible(evaluation, host_names)
        if self.schedule == 'full':
            prior = analyzer.rank(profile.sensitivity, {})
        else:
            prior = self._prior(profile, host_names, features, scale,
                                analyzer, request=evaluation.request,
                                samples_out=getattr(
                                    evaluation, 'prior_samples', None),
                                deadline=evaluation.deadline)
        purpose = evaluation.request.get('purpose', 'boot')
        if purpose != 'boot' or not eligible or evaluation.history_only:
            LOG.info('Evaluation %s (%s): answered from history, without '
                     'shadows%s', evaluation.evaluation_id, purpose,
                     ' (no host may take the VM)' if not eligible else
                     ' (asked of history only)' if evaluation.history_only
                     else '')
            return self._finish(evaluation, prior, wall_start, 0.0,
                                'history')
        known = {h.host for h in prior.hosts if h.predicted}
        unknown = [h for h in eligible if h not in known]
        # Hosts without history take part in the verdict as hosts like
        # the known ones, when those are enough to say what that is.
        like_known = bool(unknown) and len(eligible) - len(unknown) >= max(
            MIN_KNOWN_HOSTS, KNOWN_SHARE * len(eligible))
        verdict = (self.assess(prior, evaluation,
                               unknown=unknown if like_known else ())
                   if self.schedule == 'racing' else None)
        trust = self._trust(profile) if verdict is not None else None
        decides = self.schedule != 'full' and (
            (not unknown and prior.confidence >= self.confidence_target)
            or (verdict is not None and (not unknown or like_known)
                and verdict.opportunity_cost * trust <= self.prior_margin))
        if self.schedule != 'full':
            evaluation.history_verdict = self._history_verdict(
                prior, verdict, eligible, known, decides)
            if trust is not None and self.trust_learner is not None:
                evaluation.history_verdict['trust'] = round(trust, 4)
        if decides:
            LOG.info('Evaluation %s: history alone decides the ranking '
                     '(confidence %.2f%s); no shadows booted',
                     evaluation.evaluation_id, prior.confidence,
                     '' if verdict is None else
                     ', expected loss %.2f points'
                     % verdict.opportunity_cost)
            return self._finish(evaluation, prior, wall_start, 0.0,
                                'history')
        if self.schedule != 'full':
            LOG.info('Evaluation %s: history does not decide the ranking: '
                     '%d of %d candidates without history of the workload '
                     'within prior_lookback, confidence %.2f (target '
                     '%.2f)%s', evaluation.evaluation_id,
                     len(set(eligible) - known), len(eligible),
                     prior.confidence, self.confidence_target,
                     '' if verdict is None else
                     ', expected loss %.2f points (margin %.2f)'
                     % (verdict.opportunity_cost, self.prior_margin))

        if self.schedule == 'racing':
            candidates = self._contenders(prior, verdict, eligible)
        else:
            candidates = self._candidates(prior, eligible)
        if (evaluation.deadline is not None
                and time.monotonic() >= evaluation.deadline):
            # Shadows booted now could only be deleted again, and the
            # answer would wait for that.
            return self._answer_without_time(evaluation, prior, candidates,
                                             wall_start)
        # Only an evaluation that boots shadows can be cut short by a
        # stopped process: an answer from history is recorded when given.
        self._record_start(evaluation)
        ranking, shadow_seconds = self._measure(
            evaluation, profile, candidates, features, scale, wall_start,
            progress, prior if self.schedule != 'full' else None, analyzer)
        if ranking is None:
            ranking = prior
        if verdict is not None:
            # What the race says the prior's top host would have lost:
            # what the prior trust learner weighs the prior's figure by.
            after = self.assess(ranking, evaluation,
                                incumbent=verdict.incumbent)
            evaluation.history_verdict['loss_after'] = (
                None if after is None
                else round(after.opportunity_cost, 4))
        return self._finish(evaluation, ranking, wall_start, shadow_seconds,
                            'shadows')

    def _trust(self, profile):
        """The ratio the prior's expected loss of ``profile`` is weighed
        by (``[shadow] prior_trust_learning``; 1 without it)."""
        if self.trust_learner is None:
            return 1.0
        return self.trust_learner.prior_trust().factor(profile.name)

    def _answer_without_time(self, evaluation, prior, candidates,
                             wall_start):
        """The prior as the answer, without shadows, when the budget
        leaves no time to measure (what is kept back for deleting
        shadows takes all of it, or reading host facts and the history
        did); the hosts that would have been measured say why they were
        not."""
        reserve = self._cleanup_reserve()
        LOG.info('Evaluation %s: a budget of %.1fs leaves no time to '
                 'measure (%.1fs kept back for deleting shadows); answered '
                 'from history, without shadows', evaluation.evaluation_id,
                 evaluation.budget_s, reserve)
        order, _unknown = candidates
        why = ('the budget of %.1fs left no time to measure (%.1fs kept '
               'back for deleting shadows)' % (evaluation.budget_s, reserve))
        for host in order:
            evaluation.unmeasured.setdefault(host, why)
        return self._finish(evaluation, prior, wall_start, 0.0, 'history')

    def _history_verdict(self, prior, verdict, eligible, known, decides):
        """Why history alone did or did not decide the ranking: the
        candidates without history of the workload within
        ``prior_lookback``, the prior's confidence against
        ``confidence_target`` and (racing) its expected loss against
        ``settle_margin``; in the answer as ``history_verdict``."""
        return {
            'decides': bool(decides),
            'candidates': len(eligible),
            'without_history': len(set(eligible) - known),
            'confidence': round(float(prior.confidence), 4),
            'confidence_target': self.confidence_target,
            'expected_loss': (None if verdict is None
                              else round(verdict.opportunity_cost, 4)),
            'settle_margin': self.settle_margin,
            'prior_settle_margin': self.prior_margin,
            'largest_gain': (round(max(verdict.gains.values()), 4)
                             if verdict is not None and verdict.gains
                             else None),
            'contenders': (None if verdict is None else len(
                verdict.contenders(self.elimination_margin))),
        }

    def _eligible(self, evaluation, host_names):
        """The candidates that may take the VM (up, enabled, in the
        request's zone, within the cost cap); the others are recorded on
        ``evaluation`` with the reason and get no shadow."""
        evaluation.costs = self.cost_policy.costs(evaluation.hosts)
        infos = {}
        try:
            infos = {h.host: h for h in self.driver.list_hosts()}
        except Exception:
            LOG.exception('Could not list the hosts\' availability; '
                          'taking every candidate as available')
        evaluation.excluded = self.cost_policy.exclusions(
            host_names, evaluation.costs, infos,
            evaluation.request.get('availability_zone'))
        for host, reason in evaluation.excluded.items():
            evaluation.unmeasured[host] = 'may not take the VM (%s)' % reason
        return [h for h in host_names if h not in evaluation.excluded]

    def assess(self, ranking, evaluation, unknown=(), incumbent=None):
        """What ``ranking`` leaves open among the hosts that may take the
        VM (scores per cost under the ``per_cost`` policy); ``incumbent``:
        the host whose expected loss is asked for (the top host when
        None)."""
        excluded = getattr(evaluation, 'excluded', {})
        eligible = [h['host'] for h in evaluation.hosts
                    if h['host'] not in excluded]
        indifference = getattr(self.analyzer, 'tie_margin', 0.0)
        factors = self.cost_policy.factors(
            eligible, getattr(evaluation, 'costs', {}))
        memo = getattr(ranking, 'memo', None)
        key = None
        if memo is not None and memo.holds(ranking.hosts):
            # A ranking made again from the same figures: its verdict
            # under the same exclusions and costs is the same (the draws
            # are seeded).
            measurable = getattr(ranking, 'measurable_sds', None)
            key = (tuple(sorted(excluded)), tuple(sorted(factors.items())),
                   indifference, tuple(unknown), incumbent,
                   None if measurable is None else measurable.tobytes())
            if key in memo.verdicts:
                return memo.verdicts[key]
        verdict = racing.assess(ranking, exclude=excluded,
                                indifference=indifference,
                                cost_factors=factors, unknown=unknown,
                                incumbent=incumbent)
        if key is not None:
            if len(memo.verdicts) >= VERDICTS_KEPT:
                memo.verdicts.clear()
            memo.verdicts[key] = verdict
        return verdict

    def _record_start(self, evaluation):
        """A ``running`` record, written before the first shadow boots:
        if the process dies before :meth:`_finish` writes the real one, a
        later look-up finds the evaluation and reports it
        ``interrupted``."""
        try:
            self.history.put_evaluation({
                'evaluation_id': evaluation.evaluation_id,
                'status': 'running', 'request': evaluation.request,
                'hosts': [], 'started_at': evaluation.started_at,
            }, when=self._now())
        except Exception:
            LOG.exception('Could not record the start of evaluation %s',
                          evaluation.evaluation_id)

    def _wall_budget(self):
        """True when the wall clock bounds an evaluation's budget (the
        driver's ``wall_budget``): not on a virtual clock that runs as
        fast as the machine computes, whose evaluations must simulate the
        same seconds however loaded the machine is."""
        return bool(getattr(self.driver, 'wall_budget', True))

    def _now(self):
        """The driver's clock (the wall clock if it cannot tell)."""
        try:
            return float(self.driver.now())
        except Exception:
            LOG.exception('The driver cannot tell the time; stamping the '
                          'evaluation record with the wall clock')
            return time.time()

    def _analyzer_for(self, request, profile):
        """The analyzer with the learners' models for this workload."""
        analyzer = self.analyzer
        if self.drift_learner is not None:
            analyzer = analyzer.with_age_drift(
                self.drift_learner.age_drift())
        if self.scaleup_learner is not None:
            analyzer = analyzer.with_scaleup(self.scaleup_learner.model())
        if self.learner is None:
            return analyzer
        return analyzer.with_contention(
            self.learner.models(request, profile.name))

    def _prior(self, profile, host_names, features, scale, analyzer,
               request=None, samples_out=None, deadline=None):
        """A ranking from earlier shadows of the same workload (profile,
        flavor size, profile scale) on these hosts (the samples are kept
        between requests: :mod:`shadow_service.priorsamples`).

        ``samples_out``: a dict that receives the samples the prior was
        made from, ``observations`` and ``newest`` (``{host: time of its
        newest sample}``).  ``deadline`` (``time.monotonic()``) bounds the
        reading of the metrics source for the lifetime ranking."""
        observations, newest, tokens = {}, {}, None
        now = self.driver.now()
        if self.prior_lookback > 0:
            try:
                same = self._same_workload(
                    self.prior_samples.evaluations(profile.name, now),
                    request, profile.name)
                observations, newest, tokens = \
                    self.prior_samples.observations(
                        profile.name, same, host_names, now, tokens=True)
            except Exception:
                LOG.exception('Reading the history for a prior failed; '
                              'measuring every candidate')
                observations, newest, tokens = {}, {}, None
        if samples_out is not None:
            samples_out.update(observations=observations, newest=newest)
        return analyzer.rank(
            profile.sensitivity, observations,
            host_features=features, scale=scale,
            data_age_s=prior_ages(newest, now),
            kept=self._kept_for(request, profile), tokens=tokens,
            deadline=deadline)

    def _kept_for(self, request, profile):
        """The per-host estimates kept for the request's workload
        (profile, flavor size, profile scale; see
        :class:`~shadow_service.analysis.analyzer.KeptEstimates`), None
        without a request."""
        if request is None or not self.keep_estimates:
            return None
        key = (learner_base.workload_key(request, profile.name),
               tuple(sorted((profile.sensitivity or {}).items())))
        with self._kept_lock:
            kept = self._kept_estimates.pop(key, None)
            if kept is None:
                kept = analyzer_mod.KeptEstimates()
                while len(self._kept_estimates) >= WORKLOADS_KEPT:
                    self._kept_estimates.pop(next(iter(
                        self._kept_estimates)))
            # Most recently used last.
            self._kept_estimates[key] = kept
            # Rankings are kept for reuse by the most recent workloads
            # only (the estimates by all of them).
            older = len(self._kept_estimates) - WORKLOADS_RANKED
            if older > 0:
                for other in itertools.islice(
                        self._kept_estimates.values(), older):
                    other.forget_rankings()
        return kept

    def _same_workload(self, last_seen, request, profile_name):
        """Ids of the newest ``PRIOR_EVALUATIONS`` earlier evaluations
        (``last_seen``: ``{id: time of its newest sample}``) whose recorded
        request is the same workload."""
        newest_first = sorted(last_seen, key=lambda e: (last_seen[e], e),
                              reverse=True)
        key = learner_base.workload_key(request, profile_name)
        same = set()
        for evaluation_id in newest_first[:PRIOR_EVALUATIONS]:
            if self._workload_of(evaluation_id, profile_name) == key:
                same.add(evaluation_id)
        return same

    def _workload_of(self, evaluation_id, profile_name):
        """The workload key of a recorded evaluation (kept: a record's
        request never changes); None without a record."""
        key = self._workload_keys.get(evaluation_id)
        if key is None:
            record = self.history.get_evaluation(evaluation_id)
            if not record:
                return None
            key = learner_base.workload_key(record.get('request'),
                                            profile_name)
            if len(self._workload_keys) >= WORKLOAD_KEYS_KEPT:
                self._workload_keys.clear()
            self._workload_keys[evaluation_id] = key
        return key

    def _cleanup_reserve(self):
        return max(CLEANUP_RESERVE_S,
                   getattr(self.driver, 'cleanup_reserve_s', 0.0))

    def _deadline_kwargs(self, deadline):
        if deadline is not None and getattr(self.driver, 'honours_deadline',
                                            False):
            return {'deadline': deadline}
        return {}

    def _host_features(self, host_names, hosts_info=None, deadline=None):
        try:
            return self.driver.host_facts(
                host_names, hosts_info=hosts_info,
                **self._deadline_kwargs(deadline)) or {}
        except Exception:
            LOG.exception('Could not read host features; ranking without')
            return {}

    def _scale(self, flavor):
        return scaleup.scale_keys(flavor, self.shadow_scale)

    def _candidates(self, prior, host_names):
        """Every host in measuring order: those history knows nothing
        about first, then the prior's best."""
        known = [h.host for h in prior.hosts if h.host in host_names]
        unknown = [h for h in host_names if h not in known]
        return unknown + known, set(unknown)

    @property
    def prior_margin(self):
        """Expected loss (score points) at or below which the prior
        answers without shadows: ``prior_settle_margin``, or
        ``settle_margin`` when that is unset."""
        if self.prior_settle_margin is None:
            return self.settle_margin
        return self.prior_settle_margin

    @property
    def elimination_margin(self):
        """Expected improvement (score points) below which a host leaves
        the race: ``ELIMINATION_SHARE`` of ``settle_margin``.  Hosts that
        left keep their estimates, so the race still settles only when
        the expected loss over every host is within the margin."""
        return self.settle_margin * ELIMINATION_SHARE

    def _contenders(self, prior, verdict, host_names):
        """The racing schedule's first hosts: those history knows nothing
        about, the prior's top host, then the hosts whose expected
        improvement over it is not negligible (largest first)."""
        known = {h.host for h in prior.hosts if h.predicted}
        unknown = [h for h in host_names if h not in known]
        order = list(unknown)
        if verdict is not None:
            margin = self.elimination_margin
            order += [h for h in [verdict.incumbent]
                      + verdict.contenders(margin)
                      if h in host_names and h not in order]
        return order, set(unknown)

    def _measure(self, evaluation, profile, candidates, features, scale,
                 wall_start, progress, prior=None, analyzer=None):
        order, unknown = candidates
        request = dict(evaluation.request)
        request['flavor'] = scaleup.shadow_flavor(request['flavor'],
                                                  self.shadow_scale)
        run_class = {'racing': _RacingRun, 'pool': _Run,
                     'full': _FullRun}[self.schedule]
        run = run_class(self, evaluation, profile.scaled(self.shadow_scale),
                        request, order, unknown, features, scale, prior)
        run.analyzer = analyzer or self.analyzer
        try:
            ranking = run.loop(wall_start, progress)
        finally:
            run.delete_all()
        return ranking, run.shadow_seconds()

    def _finish(self, evaluation, ranking, wall_start, shadow_seconds,
                source):
        result = ranking.to_dict()
        self._add_unmeasured(evaluation, result, source,
                             getattr(self.analyzer, 'calibrated', None))
        self.cost_policy.apply(result, getattr(evaluation, 'costs', {}),
                               getattr(evaluation, 'excluded', {}))
        result.update({
            'evaluation_id': evaluation.evaluation_id,
            'status': 'cancelled' if evaluation.cancelled else 'finished',
            'source': source,
            'duration_s': round(time.monotonic() - wall_start, 3),
            'shadow_host_seconds': round(shadow_seconds, 3),
        })
        if getattr(evaluation, 'history_verdict', None) is not None:
            result['history_verdict'] = evaluation.history_verdict
        evaluation.ranking = result
        finished_at = time.time()
        if getattr(evaluation, 'record', True):
            self._record(evaluation, ranking, result, shadow_seconds, source,
                         finished_at)
        # Finished only once recorded (or queued for the writer): a reader
        # that sees it finished and flushes the writer finds the record.
        evaluation.status = result['status']
        evaluation.progress = 1.0
        evaluation.finished_at = finished_at
        return result

    def _record(self, evaluation, ranking, result, shadow_seconds, source,
                finished_at):
        """Record a finished evaluation in history and its dashboard
        points (answers from history on the score writer's thread)."""
        record = dict(result)
        record['request'] = evaluation.request
        # When it ran (wall clock, as get_evaluation answers it while the
        # evaluation is in memory): read back once it is not.
        record['started_at'] = evaluation.started_at
        record['finished_at'] = finished_at
        record['host_features'] = learner_base.recordable_features(
            getattr(evaluation, 'host_features', None))
        # What the scale-up learner pairs the shadow with the placed VM by.
        record['scale'] = getattr(evaluation, 'scale', None)
        when = self._now()
        asked_at = getattr(evaluation, 'asked_at', None)
        if asked_at is not None and getattr(self.driver, 'wall_clock',
                                            False):
            # A record the service got to late (the weigher answered the
            # request from its cache): stamped when Nova asked, carried
            # onto the driver's clock as Nova's notifications are, so it
            # still comes before what Nova did next (the move it landed:
            # notifications.audit).  A virtual clock keeps its reading.
            when -= max(0.0, time.time() - asked_at)
        if shadow_seconds > 0:
            # Its samples join the next prior of this profile at once.
            self.prior_samples.invalidate(
                getattr(getattr(evaluation, 'profile', None), 'name', None))
        if source == 'history':
            # Answered in milliseconds: recorded on the writer's thread,
            # after the answer (readers of the service flush it first).
            memo = getattr(ranking, 'memo', None)
            self.score_writer.put_record(
                record, when,
                memo if memo is not None and memo.holds(ranking.hosts)
                else None)
        else:
            try:
                # The driver's clock, like the samples': the prior's and
                # the learner's lookbacks then compare like with like.
                self.history.put_evaluation(record, when=when)
            except Exception:
                LOG.exception('Could not record evaluation %s',
                              evaluation.evaluation_id)
        # One point per host, for dashboards: written on the score
        # writer's thread, after the answer; once per ranking made again
        # from the same figures (the same points).
        if source == 'history' and not self._new_points(evaluation,
                                                         ranking):
            return
        self.score_writer.put(self._score_points, evaluation, {
            'source': result['source'],
            'hosts': [{'host': h['host'], 'score': h['score'],
                       'confidence': h.get('confidence')}
                      for h in result['hosts']]}, when)

    @staticmethod
    def _new_points(evaluation, ranking):
        """False when ``ranking`` was made again from the same figures
        as an earlier one whose points, under the same costs and
        exclusions, are already written (or queued)."""
        memo = getattr(ranking, 'memo', None)
        if memo is None or not memo.holds(ranking.hosts):
            return True
        key = (tuple(sorted(getattr(evaluation, 'excluded', {}).items())),
               tuple(sorted(getattr(evaluation, 'costs', {}).items())))
        with memo.lock:
            if key in memo.points_written:
                return False
            memo.points_written.add(key)
        return True

    def close(self):
        """Write what the score writer still holds and stop it."""
        self.score_writer.close()

    @staticmethod
    def _score_points(evaluation, result, when):
        """One ``host_score`` point per ranked host."""
        profile = getattr(getattr(evaluation, 'profile', None), 'name',
                          None) or 'unknown'
        points = []
        for host in result['hosts']:
            fields = {'score': float(host['score'])}
            if host.get('confidence') is not None:
                fields['confidence'] = float(host['confidence'])
            points.append(history_base.Point(
                names.HOST_SCORE,
                {names.TAG_EVALUATION: evaluation.evaluation_id,
                 names.TAG_HOST: host['host'],
                 names.TAG_PROFILE: profile,
                 names.TAG_SOURCE: result['source']}, fields, when))
        return points


    @staticmethod
    def _add_unmeasured(evaluation, result, source, calibrated=None):
        """Every candidate appears in the ranking: one the service could
        not measure (no shadow booted, no sample arrived, no history) is
        neutral, confidence 0, with the reason; the overall confidence
        then counts only what was measured.

        The raw confidence is scaled alike (it is the probability over
        every candidate, which is what a ranking's outcome is judged
        against and what the calibration map learns from), and the stated
        one is the map (``calibrated``) of the scaled raw figure at the
        candidates' allocated RAM share."""
        ranked = {h['host'] for h in result['hosts']}
        missing = [h['host'] for h in evaluation.hosts
                   if h['host'] not in ranked]
        if not missing:
            return
        why = getattr(evaluation, 'unmeasured', {})
        default = ('no history of this workload here (answered without '
                   'shadows)' if source == 'history'
                   else 'the evaluation was cancelled before it was '
                   'measured' if evaluation.cancelled
                   else 'not measured within the budget')
        for host in missing:
            result['hosts'].append({
                'host': host, 'score': NEUTRAL_SCORE, 'confidence': 0.0,
                'data_age_s': None, 'predicted': {},
                'reasons': ['not measured: %s; neutral score'
                            % why.get(host, default)]})
        share = (len(evaluation.hosts) - len(missing)) / len(
            evaluation.hosts)
        if result.get('raw_confidence') is None or calibrated is None:
            result['confidence'] = round(result['confidence'] * share, 3)
            if result.get('raw_confidence') is not None:
                result['raw_confidence'] = round(
                    result['raw_confidence'] * share, 3)
            return
        raw = result['raw_confidence'] * share
        result['raw_confidence'] = round(raw, 3)
        allocated = hostfacts.allocated_ram_share(
            getattr(evaluation, 'host_features', None))
        result['confidence'] = round(
            calibrated(raw) if allocated is None
            else calibrated(raw, allocated), 3)


class _Run:
    """The measuring part of one evaluation: a pool of at most
    ``max_shadow_hosts`` shadows, refilled from the queue of candidates as
    clearly worse hosts are dropped, until the ranking is confident and
    every host without an estimate has been measured, or the budget is
    spent."""

    def __init__(self, evaluator, evaluation, profile, request, order,
                 unknown, features, scale, prior):
        self.ev = evaluator
        self.evaluation = evaluation
        self.profile = profile
        self.request = request
        self.queue = list(order)
        self.unmeasured = set(unknown)
        self.features = features
        self.scale = scale
        self.prior = prior if prior is not None and prior.hosts else None
        self.analyzer = evaluator.analyzer
        self.running = {}
        self.started = {}
        self.stopped = {}
        self.observations = collections.defaultdict(
            lambda: collections.defaultdict(list))
        self.newest = {}
        self.read_failures = 0
        # When a read of the samples last failed (the driver's clock).
        self.read_failed_at = None

    def shadow_seconds(self):
        return sum(self.stopped[s] - self.started.get(s, self.stopped[s])
                   for s in self.stopped)

    def boot(self):
        room = self.ev.max_shadow_hosts - len(self.running)
        hosts, self.queue = self.queue[:room], self.queue[room:]
        if not hosts:
            return
        try:
            shadows = self.ev.driver.boot_shadows(
                self.evaluation.evaluation_id, self.request, hosts,
                self.profile, **self.ev._deadline_kwargs(
                    getattr(self.evaluation, 'deadline', None)))
        except Exception:
            # The contract says a driver never raises here; one that does
            # costs this batch of hosts, not the evaluation.
            LOG.exception('Evaluation %s: booting shadows on %s failed',
                          self.evaluation.evaluation_id, ', '.join(hosts))
            shadows = []
        shadows = self.wait_until_active(shadows)
        now = self.ev.driver.now()
        for shadow in shadows:
            self.running[shadow.shadow_id] = shadow
            self.started[shadow.shadow_id] = now
        booted = {s.host for s in shadows}
        for host in hosts:
            if host not in booted and not self.evaluation.cancelled:
                LOG.warning('Evaluation %s: no shadow could boot on %s',
                            self.evaluation.evaluation_id, host)
            if host not in booted:
                self.unmeasured.discard(host)
                self.evaluation.unmeasured[host] = (
                    'the evaluation was cancelled before its shadow was up'
                    if self.evaluation.cancelled else 'no shadow could boot')

    def wait_until_active(self, shadows):
        """The shadows that became active within what is left of the
        budget; the others are deleted at once."""
        if not shadows:
            return shadows
        left = self.budget - self.wall_elapsed()
        more = {}
        if getattr(self.ev.driver, 'honours_cancel', False):
            # A cancel (or the service's stop) deletes them at once.
            more['cancelled'] = lambda: self.evaluation.cancelled
        try:
            active = self.ev.driver.wait_until_active(
                shadows, max(0.0, left), **more)
        except Exception:
            LOG.exception('Evaluation %s: waiting for shadows failed',
                          self.evaluation.evaluation_id)
            active = []
        ids = {s.shadow_id for s in active}
        self.delete([s for s in shadows if s.shadow_id not in ids])
        return active

    def delete(self, shadows):
        if not shadows:
            return
        try:
            now = self.ev.driver.now()
        except Exception:
            now = time.time()
        try:
            self.ev.driver.delete_shadows(shadows)
        except cloud_base.CloudError as e:
            # The cloud's own words say it all (a time-out, a refusal):
            # the driver's garbage collector deletes what is left, as the
            # service starts and, with the openstack driver, every
            # [openstack] gc_interval.
            LOG.warning('Evaluation %s: deleting shadows %s failed (%s); '
                        'the garbage collector deletes what is left',
                        self.evaluation.evaluation_id,
                        ', '.join(s.shadow_id for s in shadows), e)
        except Exception:
            LOG.exception('Evaluation %s: deleting shadows %s failed; the '
                          'garbage collector deletes what is left',
                          self.evaluation.evaluation_id,
                          ', '.join(s.shadow_id for s in shadows))
        for shadow in shadows:
            self.stopped[shadow.shadow_id] = now
            self.running.pop(shadow.shadow_id, None)

    def delete_all(self):
        self.delete(list(self.running.values()))

    def silence_grace(self):
        """Seconds a shadow may stay without any sample once it is up
        (``first_sample_timeout``, never less than the driver's own
        ``first_sample_s``); 0: no limit."""
        grace = self.ev.first_sample_timeout
        if grace <= 0:
            return 0.0
        return max(grace, float(getattr(self.ev.driver, 'first_sample_s',
                                        0.0) or 0.0))

    def drop_silent(self, now):
        """Delete the shadows that sent no sample within
        :meth:`silence_grace` of being up (their loadgen never reported);
        their hosts are left unmeasured, saying so, and the evaluation
        goes on without them.  Called after a read that succeeded only,
        and the silence counts from the last failed read at the earliest:
        a history store that cannot be read (or still holds back the
        writes of its outage) says nothing of the shadows.  Returns the
        deleted shadows."""
        grace = self.silence_grace()
        if not grace:
            return []
        heard = self.read_failed_at
        silent = [s for s in self.running.values()
                  if s.host not in self.observations
                  and now - max(self.started.get(s.shadow_id, now),
                                heard if heard is not None else -math.inf)
                  >= grace]
        if not silent:
            return []
        hosts = sorted(s.host for s in silent)
        LOG.warning('Evaluation %s: no sample from the shadows on %s '
                    '%.0fs after they were up; deleting them, going on '
                    'without', self.evaluation.evaluation_id,
                    ', '.join(hosts), grace)
        self.delete(silent)
        for host in hosts:
            self.unmeasured.discard(host)
            self.evaluation.unmeasured[host] = (
                'its shadow sent no sample within %gs of being up'
                % grace)
        return silent

    def read(self, read_from, now):
        """Add the samples since ``read_from``; returns False when the
        history store could not be read (the evaluation goes on with what
        it has: the samples stay buffered and are read next time)."""
        try:
            points = self.ev.history.query_points(
                names.SHADOW_SAMPLE,
                {names.TAG_EVALUATION: self.evaluation.evaluation_id},
                start=read_from, end=now + 1e-6)
        except Exception as e:
            self.read_failures += 1
            self.read_failed_at = now
            log = LOG.warning if self.read_failures == 1 else LOG.debug
            log('Evaluation %s: reading its samples failed (%s); ranking '
                'with what it has', self.evaluation.evaluation_id,
                logsafe.clip(str(e), 300))
            return False
        for point in points:
            host = point.tags.get(names.TAG_HOST)
            self.observations[host][point.tags.get(names.TAG_METRIC)].append(
                float(point.fields[names.FIELD_VALUE]))
            self.newest[host] = max(self.newest.get(host, 0.0), point.time)
            self.unmeasured.discard(host)
        return True

    def rank(self, now, **more):
        """The ranking of what the run measured (``more``: further
        arguments of :meth:`Analyzer.rank`)."""
        if not self.observations:
            return None
        return self.analyzer.rank(
            self.profile.sensitivity,
            {h: dict(m) for h, m in self.observations.items()},
            host_features=self.features, scale=self.scale,
            data_age_s={h: now - t for h, t in self.newest.items()},
            prior=self.prior,
            deadline=getattr(self.evaluation, 'deadline', None), **more)

    def start_clock(self, wall_start):
        """The budget left for measuring (the clean-up reserve kept
        back) and the wall clock it runs on."""
        reserve = self.ev._cleanup_reserve()
        self.budget = max(0.0, self.evaluation.budget_s - reserve)
        self.wall_start = wall_start

    def wall_elapsed(self):
        """Wall seconds of the budget spent: 0 when the driver spends
        it on its own clock alone (``Evaluator._wall_budget``)."""
        if not self.ev._wall_budget():
            return 0.0
        return time.monotonic() - self.wall_start

    def wait_for_samples(self):
        """Wait ``sample_interval`` for the next read, never past the
        budget (on a slow clock, never a whole read past it)."""
        left = self.budget - self.wall_elapsed()
        self.ev.driver.wait(max(0.0, min(self.ev.sample_interval, left)))

    def begin(self, wall_start):
        """Start the clock and boot the first shadows; False (and a
        warning) when none booted."""
        self.start_clock(wall_start)
        self.boot()
        if not self.running:
            LOG.warning('Evaluation %s: no shadow booted',
                        self.evaluation.evaluation_id)
            return False
        return True

    def report(self, progress, ranking, elapsed):
        """Publish progress; True once the budget is spent."""
        evaluation, budget = self.evaluation, self.budget
        wall = self.wall_elapsed()
        evaluation.progress = (min(1.0, max(elapsed, wall) / budget)
                               if budget else 1.0)
        if progress is not None:
            progress(evaluation, ranking)
        if elapsed >= budget or wall >= budget:
            LOG.info('Evaluation %s: budget of %.1fs spent',
                     evaluation.evaluation_id, evaluation.budget_s)
            return True
        return False

    def loop(self, wall_start, progress):
        ev, evaluation = self.ev, self.evaluation
        if not self.begin(wall_start):
            return None
        budget = self.budget
        t0 = read_from = ev.driver.now()
        batch_started = t0
        ranking = None
        while not evaluation.cancelled:
            self.wait_for_samples()
            now = ev.driver.now()
            if self.read(read_from, now):
                read_from = now + 1e-6
                if self.drop_silent(now) and self.queue:
                    self.boot()
                    batch_started = ev.driver.now()
            ranking = self.rank(now) or ranking
            if not self.running:
                LOG.info('Evaluation %s: no shadow left',
                            evaluation.evaluation_id)
                break
            elapsed = now - t0
            wall = self.wall_elapsed()
            evaluation.progress = (min(1.0, max(elapsed, wall) / budget)
                                   if budget else 1.0)
            if progress is not None:
                progress(evaluation, ranking)
            if elapsed >= budget or wall >= budget:
                LOG.info('Evaluation %s: budget of %.1fs spent',
                         evaluation.evaluation_id, evaluation.budget_s)
                break
            if ranking is None or now - batch_started < ev.min_run_time:
                continue
            confident = ranking.confidence >= ev.confidence_target
            # Hosts without an estimate, waiting for a slot or for their
            # shadow's first samples, keep the loop going.
            if confident and not self.unmeasured:
                break
            dropped = self.drop_worse(ranking, make_room=confident)
            if dropped and self.queue:
                self.boot()
                batch_started = ev.driver.now()
        return ranking

    def drop_worse(self, ranking, make_room=False):
        """Stop measuring clearly worse hosts; when ``make_room`` (the
        measured hosts are ranked confidently but others wait), keep only
        the best ``min_hosts_kept``."""
        keep_at_least = self.ev.min_hosts_kept
        worse = set(ranking.clearly_worse())
        if make_room:
            order = {h.host: i for i, h in enumerate(ranking.hosts)}
            # A host without an estimate keeps its shadow until it has
            # reported.
            by_rank = sorted((s for s in self.running.values()
                              if s.host not in self.unmeasured),
                             key=lambda s: order.get(s.host, len(order)))
            worse |= {s.host for s in by_rank[keep_at_least:]}
        droppable = [s for s in self.running.values() if s.host in worse]
        spare = len(self.running) - keep_at_least
        if not make_room and not self.queue:
            droppable = droppable[:max(0, spare)]
        if droppable:
            LOG.info('Evaluation %s: no longer measuring %s',
                     self.evaluation.evaluation_id,
                     ', '.join(sorted(s.host for s in droppable)))
            self.delete(droppable)
        return droppable


class _FullRun(_Run):
    """Every candidate measured for the whole budget: no early stop, no
    host dropped."""

    def loop(self, wall_start, progress):
        ev, evaluation = self.ev, self.evaluation
        if not self.begin(wall_start):
            return None
        t0 = read_from = ev.driver.now()
        while not evaluation.cancelled:
            self.wait_for_samples()
            now = ev.driver.now()
            if self.read(read_from, now):
                # A failed read's samples are read with the next.
                read_from = now + 1e-6
            # Nothing stops early: the ranking is made once, at the end.
            if self.report(progress, None, now - t0):
                break
        return self.rank(ev.driver.now())


class _RacingRun(_Run):
    """A race among the hosts that could change the ranking (see
    :mod:`shadow_service.racing`): the queue holds the first contenders;
    after every read, hosts whose expected improvement over the top host
    is negligible lose their shadow, new contenders get one, and the race
    ends once the ranking is settled."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Hosts that had a shadow in this evaluation, and since when.
        self.tried = {}
        excluded = getattr(self.evaluation, 'excluded', {})
        self.hosts = {h['host'] for h in self.evaluation.hosts
                      if h['host'] not in excluded}

    def boot(self):
        taken = self.queue[:max(0, self.ev.max_shadow_hosts
                                - len(self.running))]
        super().boot()
        now = self.ev.driver.now()
        for host in taken:
            # Booted or not: a host gets one chance per evaluation.
            self.tried.setdefault(host, now)

    def rank(self, now):
        """The race's ranking: a host with new samples is estimated from
        them and its earlier samples of the workload (those the prior was
        made from, aged to ``now``) together, so a few new samples refine
        its history instead of replacing it."""
        earlier = getattr(self.evaluation, 'prior_samples', None) or {}
        return super().rank(
            now, earlier=earlier.get('observations'),
            earlier_age_s=prior_ages(earlier.get('newest') or {}, now))

    def ready(self, now):
        """Whether every running host has run ``min_run_time`` and
        reported: only then may the race drop hosts or stop."""
        for shadow in self.running.values():
            if (now - self.tried.get(shadow.host, now) < self.ev.min_run_time
                    or shadow.host not in self.observations):
                return False
        return True

    def loop(self, wall_start, progress):
        ev, evaluation = self.ev, self.evaluation
        if not self.begin(wall_start):
            return None
        t0 = read_from = ev.driver.now()
        ranking = None
        margin = ev.elimination_margin
        while not evaluation.cancelled:
            self.wait_for_samples()
            now = ev.driver.now()
            if self.read(read_from, now):
                # A failed read's samples are read with the next.
                read_from = now + 1e-6
                if self.drop_silent(now) and self.queue:
                    self.boot()
            ranking = self.rank(now) or ranking
            if not self.running:
                LOG.info('Evaluation %s: no shadow left',
                            evaluation.evaluation_id)
                break
            if self.report(progress, ranking, now - t0):
                break
            if ranking is None or not self.ready(now):
                continue
            verdict = ev.assess(ranking, evaluation)
            if verdict is None:
                continue
            # Hosts without any estimate wait for a slot: the race is not
            # over until they have been measured.
            waiting = [h for h in self.queue if h in self.unmeasured]
            if not waiting and (
                    verdict.opportunity_cost <= ev.settle_margin
                    or ranking.confidence >= ev.confidence_target):
                LOG.info('Evaluation %s: settled after %.0fs (expected '
                         'loss %.2f points, confidence %.2f)',
                         evaluation.evaluation_id, now - t0,
                         verdict.opportunity_cost, ranking.confidence)
                break
            keep = {verdict.incumbent} | set(verdict.contenders(margin))
            dropped = [s for s in self.running.values()
                       if s.host not in keep]
            if (waiting and not dropped
                    and len(self.running) >= ev.max_shadow_hosts):
                # Make room: the incumbent and the strongest contenders
                # keep their shadows.
                by_gain = sorted(self.running.values(), key=lambda s: (
                    s.host != verdict.incumbent,
                    -verdict.gains.get(s.host, 0.0), s.host))
                dropped = by_gain[ev.min_hosts_kept:]
            if dropped:
                LOG.info('Evaluation %s: %s can no longer change the '
                         'ranking', evaluation.evaluation_id,
                         ', '.join(sorted(s.host for s in dropped)))
                self.delete(dropped)
            running = {s.host for s in self.running.values()}
            newcomers = [h for h in sorted(keep, key=lambda h: (
                -verdict.gains.get(h, float('inf')), h))
                if h in self.hosts and h not in running
                and h not in self.tried and h not in waiting]
            self.queue = waiting + newcomers
            if self.queue:
                self.boot()
            if not self.running:
                break
        return ranking
