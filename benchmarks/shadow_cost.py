"""Shadow cost of the evaluation schedules, at what ranking quality.

The same requests (``placement_quality.make_requests`` in ``arrivals``
mode: Poisson arrivals, lognormal lifetimes, through the shared request
builder) go to three shadow services on three copies of the twin built
from the same seed, each assembled by ``shadow_service.service.build`` and
asked through its manager's ``evaluate`` (the RPC endpoint's schema and
checks) with the placement benchmark's service settings (every candidate
may get a shadow, samples every 5 s of twin time, persistent history with
the contention learner); they differ only in ``[shadow]
evaluation_schedule``:

full     a shadow on every candidate for the whole budget, no prior: the
         reference;
pool     the loop before the racing schedule;
racing   the racing schedule (the default).

Each arm places every VM where the deployed combination (Nova's default
weighers plus the real ``ShadowWeigher`` fed the arm's ranking) puts it,
so each twin fills with its own choices.  Scored per request, on the arm's
own twin at placement time, by the twin's oracle:

quality          realised performance over the VM's life (at most 24 h)
                 of the host the deployed combination picked, divided by
                 that of the best candidate (1.0: the best host);
top_quality      the same for the ranking's top host alone;
qos_met          whether the picked host met the profile's QoS targets;
shadow-host-seconds  simulated seconds of shadows the evaluation ran;

and, to say why, the answer's ``history_verdict``, the age drift the
arm's service had learned (``age_drift``) and what the answer's best three
hosts rested on (``top_hosts``: score, data age, metrics known by fewer
than three samples).  ``--no-age-drift-learning`` runs the arms with
``[analysis] age_drift_learning`` off; ``--age-drift-per-metric
METRIC:DRIFT,...`` sets ``[analysis] age_drift_per_metric``;
``--prior-trust-learning`` sets ``[shadow] prior_trust_learning``.
``--diagnose-prior`` adds to each racing answer's ``history_verdict`` a
``diagnosis`` of its prior (:class:`PriorDiagnosis`: the expected loss
over the known candidates alone, at data age 0, and how many candidates
without history had shadows of the profile at another size), and
``why_shadows`` counts the finer ``reasons`` it gives; it costs time, not
answers (the service's decisions are the same).

``cost_ratio_vs_full`` and ``quality_ratio_vs_full`` are each arm's mean
shadow-host-seconds per request and mean quality divided by the ``full``
arm's; ``answered_from_prior`` is the share of requests after the first
``--warmup`` answered from history without a shadow.  ``windows`` repeats
the figures for consecutive spans of ``--window`` requests (1-50, 51-100,
101-150, ... by default), so runs of different lengths compare on the
same requests.  ``--progress PREFIX`` also writes each arm's scored
requests as they come (``PREFIX.<schedule>.jsonl``); ``--from-progress
PREFIX`` writes the results of a run stopped before its end from them,
every arm cut to the requests all arms scored (``requests_scored``).
``--schedules`` runs only some arms (``pool,racing``: the racing
schedule's figures against pool's without the slow ``full`` reference;
the ratios to ``full`` are then left out); with ``--progress``, one arm
alone, whose progress file a later ``--from-progress`` joins with the
other arms' (same ``--requests``, ``--seed``, settings).

Usage::

    python benchmarks/shadow_cost.py --requests 200 --warmup 100 \\
        --seed 1 [--window 50] [--budget 60] [--traces DIR] [--out FILE]
        [--schedules pool,racing]
"""

import argparse
import concurrent.futures
import json
import logging
import multiprocessing
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import placement_quality as pq  # noqa: E402

from shadow_service import evaluation as evaluation_mod  # noqa: E402
from shadow_service import priorsamples  # noqa: E402
from shadow_service.clouds.sim import driver as sim_driver  # noqa: E402
from shadow_service.clouds.sim import engine  # noqa: E402
from shadow_service.learners import base as learner_base  # noqa: E402
from shadow_service.workloads import profiles  # noqa: E402

LOG = logging.getLogger('shadow_cost')

SCHEDULES = ('full', 'pool', 'racing')
REFERENCE = 'full'


class ScheduledService(pq.ShadowService):
    """The placement benchmark's shadow service with one
    ``evaluation_schedule``."""

    def __init__(self, args, twin, schedule):
        self.schedule = schedule
        super().__init__(args, twin)

    def _build(self, store):
        self.conf.set_override('evaluation_schedule', self.schedule,
                               group='shadow')
        if self.args.settle_margin is not None:
            self.conf.set_override('settle_margin', self.args.settle_margin,
                                   group='shadow')
        if getattr(self.args, 'prior_settle_margin', None) is not None:
            self.conf.set_override('prior_settle_margin',
                                   self.args.prior_settle_margin,
                                   group='shadow')
        if getattr(self.args, 'prior_lookback', None) is not None:
            self.conf.set_override('prior_lookback',
                                   self.args.prior_lookback, group='shadow')
        if getattr(self.args, 'no_age_drift_learning', False):
            self.conf.set_override('age_drift_learning', False,
                                   group='analysis')
        if getattr(self.args, 'prior_trust_learning', False):
            self.conf.set_override('prior_trust_learning', True,
                                   group='shadow')
        if getattr(self.args, 'age_drift_per_metric', None):
            self.conf.set_override('age_drift_per_metric',
                                   self.args.age_drift_per_metric,
                                   group='analysis')
        parts = super()._build(store)
        if getattr(self.args, 'diagnose_prior', False) and parts:
            PriorDiagnosis(parts.evaluator)
        return parts


class PriorDiagnosis:
    """Why the racing schedule's prior did not answer, in more detail
    than its ``history_verdict`` (``--diagnose-prior``): wraps the
    evaluator's verdict on the prior and adds ``diagnosis`` to the
    verdict's dict:

    ``loss_known_hosts``
        the expected loss over the candidates with history alone (when
        some have none): above the margin, those hosts were not what
        kept history from answering;
    ``too_few_known``
        fewer known candidates than the verdict needs to stand in for the
        others (it refuses outright);
    ``unknown_at_other_sizes``
        candidates without history of the workload that have shadows of
        its profile at another size (flavor vCPUs, profile scale) in the
        prior's window, and ``other_size_log_sd``: per metric, the spread
        of the log ratio of the two sizes' means over the candidates
        measured at both (the size with most of them), with
        ``other_size_hours``, the data age whose learned drift is as wide;
    ``loss_at_age_0``
        the prior's expected loss were its samples new: within the margin,
        the data's age is what kept history from answering.

    Reads what the verdict read; the decisions are unchanged.
    """

    def __init__(self, evaluator):
        self.evaluator = evaluator
        self.pending = None
        self.analyzer = None
        assess, verdict_of = evaluator.assess, evaluator._history_verdict
        analyzer_for = evaluator._analyzer_for

        def analyzer_with(request, profile):
            # The evaluation's own analyzer (asking for another would
            # count a use of the learners and move their refits).
            self.analyzer = analyzer_for(request, profile)
            return self.analyzer

        def assess_with(ranking, evaluation, unknown=(), incumbent=None):
            verdict = assess(ranking, evaluation, unknown=unknown,
                             incumbent=incumbent)
            if (incumbent is None
                    and getattr(evaluation, 'history_verdict', None) is None
                    and evaluator.schedule == 'racing'):
                try:
                    self.pending = self.diagnose(assess, ranking,
                                                 evaluation)
                except Exception:
                    LOG.exception('Diagnosing the prior failed')
                    self.pending = {'failed': True}
            return verdict

        def verdict_with(*args, **kwargs):
            found = verdict_of(*args, **kwargs)
            if self.pending is not None:
                found['diagnosis'], self.pending = self.pending, None
            return found

        evaluator.assess = assess_with
        evaluator._history_verdict = verdict_with
        evaluator._analyzer_for = analyzer_with

    def diagnose(self, assess, prior, evaluation):
        evaluator = self.evaluator
        excluded = getattr(evaluation, 'excluded', {})
        eligible = [h['host'] for h in evaluation.hosts
                    if h['host'] not in excluded]
        known = {h.host for h in prior.hosts if h.predicted}
        unknown = [h for h in eligible if h not in known]
        like_known = bool(unknown) and len(eligible) - len(unknown) >= max(
            evaluation_mod.MIN_KNOWN_HOSTS,
            evaluation_mod.KNOWN_SHARE * len(eligible))
        profile = (getattr(evaluation, 'profile', None)
                   or evaluator.resolve_profile(evaluation.request))
        analyzer = self.analyzer
        samples = getattr(evaluation, 'prior_samples', None) or {}
        observations = samples.get('observations') or {}
        found = {'too_few_known': bool(unknown) and not like_known}
        if unknown:
            alone = assess(prior, evaluation)
            found['loss_known_hosts'] = (
                None if alone is None else round(alone.opportunity_cost, 4))
            found.update(self._other_sizes(profile, evaluation, unknown,
                                           observations, analyzer))
        if observations:
            fresh = analyzer.rank(
                profile.sensitivity, observations,
                host_features=getattr(evaluation, 'host_features', None),
                scale=getattr(evaluation, 'scale', None),
                data_age_s={h: 0.0 for h in observations})
            again = assess(fresh, evaluation,
                           unknown=unknown if like_known else ())
            found['loss_at_age_0'] = (
                None if again is None else round(again.opportunity_cost, 4))
        return found

    def _other_sizes(self, profile, evaluation, unknown, observations,
                     analyzer):
        evaluator = self.evaluator
        store = evaluator.prior_samples
        now = evaluator.driver.now()
        # The prior's own evaluations of the profile, as it read them.
        mine = learner_base.workload_key(evaluation.request, profile.name)
        sizes = {}
        for evaluation_id in store.evaluations(profile.name, now):
            key = evaluator._workload_of(evaluation_id, profile.name)
            if key is not None and key != mine:
                sizes.setdefault(key, set()).add(evaluation_id)
        covered, best = set(), None
        for key, chosen in sorted(sizes.items()):
            theirs = self._read(profile.name, chosen,
                                list(observations) + list(unknown), now)
            covered |= {h for h in unknown if h in theirs}
            bridge = [h for h in observations if h in theirs]
            if best is None or len(bridge) > len(best[1]):
                best = (key, bridge, theirs)
        found = {'unknown_at_other_sizes': len(covered)}
        if best is None or len(best[1]) < 3:
            return found
        _key, bridge, theirs = best
        spread, hours = {}, {}
        for metric in sorted(analyzer.weights(profile.sensitivity)):
            logs = []
            for host in bridge:
                a = np.mean(observations[host].get(metric) or [np.nan])
                b = np.mean(theirs[host].get(metric) or [np.nan])
                if a > 0 and b > 0:
                    logs.append(np.log(a / b))
            if len(logs) >= 3:
                spread[metric] = round(float(np.std(logs, ddof=1)), 4)
                drift = analyzer.drift_of(metric)
                hours[metric] = (round((spread[metric] / drift) ** 2, 1)
                                 if drift > 0 else None)
        found.update(other_size_bridge=len(bridge),
                     other_size_log_sd=spread, other_size_hours=hours)
        return found

    def _read(self, profile_name, chosen, hosts, now):
        """``{host: {metric: [values]}}`` of the ``chosen`` evaluations'
        samples, assembled apart from what the prior keeps (reading them
        through ``observations`` would replace the prior's assembly and
        the tokens its kept estimates go by)."""
        store = self.evaluator.prior_samples
        with store._lock:
            profile = store._current(profile_name, now)
            found = priorsamples._assemble(
                [profile.evaluations[e] for e in chosen
                 if e in profile.evaluations],
                now - store.lookback_s, now, set(hosts))
        return found[2]


class ScheduleArm:
    """One schedule on its own twin."""

    def __init__(self, schedule, args, nova):
        self.schedule = schedule
        self.twin = engine.build_twin(
            trace_dir=args.traces, seed=args.seed,
            sample_interval_s=pq.SHADOW_SAMPLE_S,
            host_metric_interval_s=3600.0)
        self.driver = sim_driver.SimDriver(pq.service_conf(args, False),
                                           None, twin=self.twin)
        self.hosts = self.twin.cluster.host_names
        self.oracle = self.driver.oracle
        self.nova = nova
        self.service = ScheduledService(args, self.twin, schedule)
        self.rows = []
        self.wall_s = 0.0

    def handle(self, number, request, profile):
        started = time.monotonic()
        self.twin.jump_to(max(self.twin.clock, request['arrival']))
        flavor = request['flavor']
        views = pq.capacity_filter(self.driver, self.hosts, flavor)
        if not views:
            self.rows.append({'request': number, 'rejected': True})
            return
        wire = {k: v for k, v in request.items()
                if k not in ('arrival', 'lifetime_s')}
        hosts = [dict(host=h, **{k: v for k, v in view.items()
                                 if k in ('vcpus', 'vcpus_used',
                                          'free_ram_mb')})
                 for h, view in sorted(views.items())]
        ranking = self.service.rank(wire, hosts)
        picked = self.nova.choose(views, flavor, ranking=ranking)
        ranked = [h['host'] for h in ranking['hosts'] if h['host'] in views]
        top = ranked[0] if ranked else picked
        self.wall_s += time.monotonic() - started
        _best, realised = self.oracle.best(
            profile, flavor, sorted(views), start=self.twin.clock,
            lifetime_s=request.get('lifetime_s'))
        best = max(r.performance for r in realised.values())
        self.rows.append({
            'request': number, 'candidates': len(views),
            'source': ranking.get('source'),
            'shadow_host_seconds': float(
                ranking.get('shadow_host_seconds', 0.0)),
            'quality': realised[picked].performance / best if best else 1.0,
            'top_quality': (realised[top].performance / best
                            if best else 1.0),
            'qos_met': bool(realised[picked].qos_met),
            'picked': picked, 'top': top,
            'history_verdict': ranking.get('history_verdict'),
            'age_drift': self.age_drift(),
            # What the top of the answer rested on (for diagnosis).
            'top_hosts': [{'host': h['host'], 'score': h['score'],
                           'data_age_s': h.get('data_age_s'),
                           'few_samples': sum('only' in r and 'samples' in r
                                              for r in h.get('reasons', ()))}
                          for h in ranking['hosts'][:3]]})
        self.driver.place_vm(request, picked,
                             instance_id=request['instance_uuid'],
                             lifetime_s=request.get('lifetime_s'))

    def age_drift(self):
        """The age drift the arm's service learned so far (by metric),
        or None without the learner."""
        learner = (self.service.parts
                   and self.service.parts.learners.age_drift)
        if learner is None:
            return None
        return learner.current().to_dict()

    def close(self):
        self.service.close()


def summarise(rows):
    placed = [r for r in rows if not r.get('rejected')]
    if not placed:
        return {'requests': 0}
    return {
        'requests': len(placed),
        'shadow_host_seconds_per_request': round(float(np.mean(
            [r['shadow_host_seconds'] for r in placed])), 2),
        'shadow_host_seconds': round(float(sum(
            r['shadow_host_seconds'] for r in placed)), 1),
        'quality': round(float(np.mean([r['quality'] for r in placed])), 4),
        'top_quality': round(float(np.mean([r['top_quality']
                                            for r in placed])), 4),
        'qos_met': round(float(np.mean([r['qos_met'] for r in placed])), 4),
        'answered_from_prior': round(float(np.mean(
            [r['source'] == 'history' for r in placed])), 4),
        'answered_from_prior_count': sum(r['source'] == 'history'
                                         for r in placed),
    }


def why_shadows(rows):
    """Why each request was or was not answered from the prior, by the
    first condition of "history alone decides" it failed (the answer's
    ``history_verdict``): ``answered_from_prior``; ``without_history``,
    a candidate without history of the workload within
    ``prior_lookback`` (split by whether the expected loss over the
    other candidates was within ``settle_margin``); ``expected_loss``,
    every candidate known but the expected loss above ``settle_margin``
    and the confidence below ``confidence_target``.  None for an arm
    without verdicts (``full``)."""
    placed = [r for r in rows if not r.get('rejected')]
    verdicts = [(r, r.get('history_verdict')) for r in placed]
    if not placed or all(v is None for _r, v in verdicts):
        return None
    counts = {'answered_from_prior': 0, 'without_history': 0,
              'without_history_loss_within_margin': 0,
              'expected_loss': 0, 'no_verdict': 0}
    seconds = dict.fromkeys(counts, 0.0)
    losses = []
    reasons = {}
    for row, verdict in verdicts:
        reason = _reason(verdict)
        if reason is not None:
            reasons[reason] = reasons.get(reason, 0) + 1
        if verdict is None:
            kind = 'no_verdict'
        elif verdict['decides']:
            kind = 'answered_from_prior'
        elif verdict['without_history']:
            kind = 'without_history'
            loss = verdict.get('expected_loss')
            margin = verdict.get('prior_settle_margin',
                                 verdict['settle_margin'])
            if loss is not None and loss <= margin:
                counts['without_history_loss_within_margin'] += 1
        else:
            kind = 'expected_loss'
            if verdict.get('expected_loss') is not None:
                losses.append(verdict['expected_loss'])
        counts[kind] += 1
        seconds[kind] += row['shadow_host_seconds']
    return {
        'requests': counts,
        'shadow_host_seconds_per_request': {
            k: round(v / len(placed), 2) for k, v in seconds.items()
            if k != 'without_history_loss_within_margin'},
        'expected_loss_when_it_blocked': (
            {'median': round(float(np.median(losses)), 3),
             'p25': round(float(np.percentile(losses, 25)), 3),
             'p75': round(float(np.percentile(losses, 75)), 3)}
            if losses else None),
        'confidence_max': round(max(
            v['confidence'] for _r, v in verdicts if v is not None), 4),
        # With --diagnose-prior.
        'reasons': dict(sorted(reasons.items())) if reasons else None,
    }


def _reason(verdict):
    """The finer reason ``--diagnose-prior``'s diagnosis gives for a
    verdict (None without one): ``answered``; candidates without history
    and too few known ones to stand in for them
    (``without_history_too_few_known``, ``..._at_other_sizes`` when every
    such candidate had shadows of the profile at another size); enough
    known ones but their own expected loss above the margin
    (``without_history_known_loss_above_margin``) or within it (the
    stand-ins tipped it: ``..._within_margin``); every candidate known,
    the loss above the margin and within it at data age 0
    (``expected_loss_within_margin_at_age_0``) or not
    (``..._above_margin_at_age_0``)."""
    found = (verdict or {}).get('diagnosis')
    if found is None:
        return None
    if verdict['decides']:
        return 'answered'
    margin = verdict.get('prior_settle_margin', verdict['settle_margin'])
    if verdict['without_history']:
        if found.get('too_few_known'):
            if found.get('unknown_at_other_sizes', 0) >= verdict[
                    'without_history']:
                return 'without_history_too_few_known_at_other_sizes'
            return 'without_history_too_few_known'
        loss = found.get('loss_known_hosts')
        if loss is not None and loss <= margin:
            return 'without_history_known_loss_within_margin'
        return 'without_history_known_loss_above_margin'
    loss = found.get('loss_at_age_0')
    if loss is not None and loss <= margin:
        return 'expected_loss_within_margin_at_age_0'
    return 'expected_loss_above_margin_at_age_0'


def _ratios(summaries):
    reference = summaries.get(REFERENCE)
    for summary in summaries.values():
        if not summary.get('requests') or not (reference or {}).get(
                'requests'):
            continue
        summary['cost_ratio_vs_full'] = round(
            summary['shadow_host_seconds_per_request']
            / max(reference['shadow_host_seconds_per_request'], 1e-9), 4)
        summary['quality_ratio_vs_full'] = round(
            summary['quality'] / reference['quality'], 4)
        summary['top_quality_ratio_vs_full'] = round(
            summary['top_quality'] / reference['top_quality'], 4)
    return summaries


def run_arm(schedule, args):
    """Every request through one schedule's arm (a worker process):
    ``(rows, wall_s, settle_margin, confidence_target)``."""
    nova = pq.NovaWeighers()
    arm = ScheduleArm(schedule, args, nova)
    requests = pq.make_requests(
        args.requests, args.seed, arm.twin.clock, mode='arrivals',
        free_ram_mb=pq.free_ram_mb(arm.driver, arm.hosts))
    for number, request in enumerate(requests):
        arm.handle(number, request, profiles.resolve_profile(request))
        if args.progress:
            # One line per request as it is scored, for a run that is
            # stopped before its results file is written.
            with open('%s.%s.jsonl' % (args.progress, schedule),
                      'a') as handle:
                handle.write(json.dumps(dict(
                    arm.rows[-1], profile=request.get('profile'))) + '\n')
        if args.verbose and number % 10 == 0:
            row = arm.rows[-1]
            LOG.info('%s request %d: %s %s', schedule, number,
                     row.get('source'), row.get('shadow_host_seconds'))
    opts = arm.service.conf.shadow
    answer = (arm.rows, arm.wall_s, opts.settle_margin,
              opts.confidence_target)
    arm.close()
    return answer


def run_arms(args):
    """``{schedule: run_arm's answer}`` of every arm in
    ``args.schedules``."""
    # One process per schedule: the arms share nothing (each has its own
    # twin built from the seed, its own service and history) and see the
    # same requests.
    context = multiprocessing.get_context('fork')
    with concurrent.futures.ProcessPoolExecutor(
            max_workers=len(args.schedules), mp_context=context) as pool:
        futures = {s: pool.submit(run_arm, s, args) for s in args.schedules}
        return {s: f.result() for s, f in futures.items()}


def run(args):
    answers = run_arms(args)
    rows = {s: a[0] for s, a in answers.items()}
    _rows, _wall, settle_margin, confidence_target = answers['racing']
    return results(args, rows, settle_margin, confidence_target,
                   {s: round(a[1], 1) for s, a in answers.items()})


def from_progress(args):
    """The results of a run stopped before its end, from its
    ``--progress`` files: every arm cut to the requests all arms scored
    (``requests_scored``), the same figures as a finished run of that
    many requests."""
    rows = {}
    for schedule in args.schedules:
        with open('%s.%s.jsonl' % (args.from_progress, schedule)) as handle:
            rows[schedule] = [json.loads(line) for line in handle
                              if line.strip()]
    scored = min(len(r) for r in rows.values())
    for schedule in args.schedules:
        rows[schedule] = [r for r in rows[schedule][:scored]
                          if r['request'] < scored]
        if len(rows[schedule]) != scored:
            raise SystemExit('%s: requests out of order in its progress '
                             'file' % schedule)
    opts = pq.service_conf(args, True).shadow
    settle_margin = (opts.settle_margin if args.settle_margin is None
                     else args.settle_margin)
    args.requests_scored = scored
    return results(args, rows, settle_margin, opts.confidence_target, None)


def results(args, rows, settle_margin, confidence_target, wall_s):
    """The results file's content from every arm's scored ``rows``."""
    settings = pq.service_settings(args, True)
    scored = getattr(args, 'requests_scored', args.requests)
    result = {
        'benchmark': 'shadow_cost', 'seed': args.seed,
        'requests_drawn': args.requests, 'requests_scored': scored,
        'warmup': args.warmup,
        'mode': 'arrivals',
        'traces': args.traces or 'bundled sample',
        'assembled_by': 'shadow_service.service.build',
        'service_settings': {'[%s] %s' % (g, n): v
                             for g, n, v in settings},
        'settle_margin': settle_margin,
        'prior_settle_margin': getattr(args, 'prior_settle_margin', None),
        'prior_lookback_s': getattr(args, 'prior_lookback', None),
        'age_drift_learning': not getattr(args, 'no_age_drift_learning',
                                          False),
        'prior_trust_learning': getattr(args, 'prior_trust_learning',
                                        False),
        'diagnose_prior': getattr(args, 'diagnose_prior', False),
        'age_drift_per_metric': getattr(args, 'age_drift_per_metric',
                                        None),
        'confidence_target': confidence_target,
        'shadow_budget_s': args.budget,
        'quality_rule': 'realised performance (oracle, the VM\'s life up '
                        'to 24 h, from placement) of the host Nova\'s '
                        'default weighers plus the ShadowWeigher picked, '
                        '/ that of the best candidate, on the arm\'s own '
                        'twin',
        'cost_rule': 'simulated shadow-host-seconds per request',
        'schedules_run': list(args.schedules),
        'schedules': {}, 'after_warmup': {}, 'first_requests': {},
        'decision_wall_s': wall_s,
        'machine': platform.platform(),
    }
    result['schedules'] = _ratios({s: summarise(r)
                                   for s, r in rows.items()})
    result['first_requests'] = _ratios({
        s: summarise([x for x in r if x['request'] < args.warmup])
        for s, r in rows.items()})
    result['after_warmup'] = _ratios({
        s: summarise([x for x in r if x['request'] >= args.warmup])
        for s, r in rows.items()})
    result['why_shadows'] = {
        'first_requests': {s: why_shadows([x for x in r
                                           if x['request'] < args.warmup])
                           for s, r in rows.items()},
        'after_warmup': {s: why_shadows([x for x in r
                                         if x['request'] >= args.warmup])
                         for s, r in rows.items()}}
    result['window'] = args.window
    result['windows'] = {}
    for first in range(0, scored, args.window):
        last = min(scored, first + args.window)
        result['windows']['%d-%d' % (first + 1, last)] = _ratios({
            s: summarise([x for x in r if first <= x['request'] < last])
            for s, r in rows.items()})
    racing, pool = result['schedules']['racing'], result['schedules']['pool']
    late = result['after_warmup'].get('racing', {})
    result['cost_ratio_vs_full'] = racing.get('cost_ratio_vs_full')
    result['quality_ratio_vs_full'] = racing.get('quality_ratio_vs_full')
    result['racing_cost_vs_pool'] = round(
        racing['shadow_host_seconds_per_request']
        / max(pool['shadow_host_seconds_per_request'], 1e-9), 4)
    late_pool = result['after_warmup'].get('pool', {})
    result['racing_cost_vs_pool_after_warmup'] = (round(
        late['shadow_host_seconds_per_request']
        / max(late_pool['shadow_host_seconds_per_request'], 1e-9), 4)
        if late.get('requests') and late_pool.get('requests') else None)
    result['answered_from_prior_after_warmup'] = late.get(
        'answered_from_prior')
    result['aims'] = {
        'racing_cost<=0.5x_pool': result['racing_cost_vs_pool'] <= 0.5,
        'racing_quality>=pool_quality-0.002':
            racing['quality'] >= pool['quality'] - 0.002,
        'answered_from_prior_after_warmup>=0.5':
            (late['answered_from_prior'] >= 0.5
             if late.get('requests') else None)}
    result['rows'] = rows
    return result


def _figure(value):
    return 'n/a' if value is None else '%.3f' % value


def print_table(result):
    print('shadow cost: seed %d, %d requests (arrivals), traces: %s, '
          'budget %.0f s, settle_margin %.2f'
          % (result['seed'], result['requests_drawn'], result['traces'],
             result['shadow_budget_s'], result['settle_margin']))
    if result['requests_scored'] != result['requests_drawn']:
        print('stopped run: the first %d requests, scored by every arm'
              % result['requests_scored'])
    sections = [('all requests', result['schedules']),
                ('first %d' % result['warmup'], result['first_requests']),
                ('after the first %d' % result['warmup'],
                 result['after_warmup'])]
    sections += [('requests %s' % span, rows)
                 for span, rows in result['windows'].items()]
    for title, rows in sections:
        print('\n%s' % title)
        print('%-8s %5s %12s %10s %8s %8s %8s %9s %9s' % (
            'schedule', 'n', 'shadow_s/req', 'cost/full', 'quality',
            'q/full', 'top_q', 'qos_met', 'prior'))
        for schedule, row in rows.items():
            if not row.get('requests'):
                continue
            print('%-8s %5d %12.1f %10s %8.4f %8s %8.4f %9.3f %9.3f' % (
                schedule, row['requests'],
                row['shadow_host_seconds_per_request'],
                _figure(row.get('cost_ratio_vs_full')), row['quality'],
                _figure(row.get('quality_ratio_vs_full')),
                row['top_quality'], row['qos_met'],
                row['answered_from_prior']))
    print('\nracing / pool shadow-host-seconds per request: %.3f '
          '(after the first %d: %s)'
          % (result['racing_cost_vs_pool'], result['warmup'],
             'n/a' if result['racing_cost_vs_pool_after_warmup'] is None
             else '%.3f' % result['racing_cost_vs_pool_after_warmup']))
    late = (result.get('why_shadows') or {}).get('after_warmup', {})
    if late.get('racing'):
        print('racing after the first %d, why history did not decide: %s'
              % (result['warmup'], late['racing']['requests']))
    print('aims: %s' % result['aims'])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--requests', type=int, default=200)
    parser.add_argument('--warmup', type=int, default=100,
                        help='requests before the share answered from '
                        'the prior is counted')
    parser.add_argument('--window', type=int, default=50,
                        help='requests per span of the per-window figures')
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--budget', type=float, default=pq.BUDGET_S,
                        help='shadow budget per request, simulated s')
    parser.add_argument('--traces', help='trace directory (default: the '
                        'bundled sample)')
    parser.add_argument('--settle-margin', type=float,
                        help='[shadow] settle_margin of the racing '
                        'schedule (default: the option\'s default)')
    parser.add_argument('--prior-settle-margin', type=float,
                        help='[shadow] prior_settle_margin of the racing '
                        'schedule: the expected loss at which history '
                        'alone answers (default: unset, settle_margin)')
    parser.add_argument('--prior-lookback', type=float,
                        help='[shadow] prior_lookback, s, of every arm '
                        '(default: the option\'s default)')
    parser.add_argument('--no-age-drift-learning', action='store_true',
                        help='[analysis] age_drift_learning = false (every '
                        'metric ages at age_drift_per_sqrt_hour)')
    parser.add_argument('--age-drift-per-metric', metavar='METRIC:DRIFT,...',
                        help='[analysis] age_drift_per_metric of the racing '
                        'schedule: the drift a named metric ages at until '
                        'the learner has its own (default: unset)')
    parser.add_argument('--prior-trust-learning', action='store_true',
                        help='[shadow] prior_trust_learning = true: the '
                        'prior\'s expected loss weighed by the share of '
                        'it races of the profile confirmed')
    parser.add_argument('--diagnose-prior', action='store_true',
                        help='add a diagnosis of the prior to each racing '
                        'answer\'s history_verdict (the loss over the '
                        'known candidates alone, at data age 0, other '
                        'sizes of the profile) and count its reasons in '
                        'why_shadows; slower, same decisions')
    parser.add_argument('--out', help='results file (default: '
                        'results/shadow_cost.json)')
    parser.add_argument('--progress', help='write each arm\'s scored '
                        'requests as they come to PREFIX.<schedule>.jsonl')
    parser.add_argument('--from-progress', metavar='PREFIX',
                        help='no run: the results of a stopped run from '
                        'its --progress files, over the requests every '
                        'arm scored (--requests, --seed, --warmup as it '
                        'was run)')
    parser.add_argument('--schedules', default=','.join(SCHEDULES),
                        help='comma-separated arms to run (default: '
                        '%(default)s); racing and pool are needed, full '
                        'is the reference of the *_vs_full ratios')
    parser.add_argument('--verbose', action='store_true')
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.error('--window must be at least 1')
    asked = set(args.schedules.split(','))
    if asked - set(SCHEDULES):
        parser.error('unknown schedules: %s'
                     % ', '.join(sorted(asked - set(SCHEDULES))))
    args.schedules = tuple(s for s in SCHEDULES if s in asked)
    if not {'pool', 'racing'} <= set(args.schedules) and not (
            args.progress and not args.from_progress):
        parser.error('--schedules must include pool and racing, except '
                     'for a run that only writes --progress files (its '
                     'results come from --from-progress with the arms '
                     'of the other runs)')
    # What placement_quality's service settings read.
    args.history, args.store = 'persistent', 'sqlite'
    args.confidence_target = args.cotenancy_horizon = None
    args.lifetime_horizon, args.no_calibration = None, False
    logging.basicConfig(level=logging.INFO if args.verbose
                        else logging.WARNING)
    if args.out is None:
        args.out = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                'results', 'shadow_cost.json')
    if not {'pool', 'racing'} <= set(args.schedules):
        # One arm (or full alone) into its progress file, for a later
        # --from-progress that joins the arms.
        run_arms(args)
        print('progress written to %s.<schedule>.jsonl' % args.progress)
        return 0
    result = from_progress(args) if args.from_progress else run(args)
    print_table(result)
    with open(args.out, 'w') as handle:
        json.dump(result, handle, indent=2, sort_keys=True)
        handle.write('\n')
    print('results written to %s' % args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
