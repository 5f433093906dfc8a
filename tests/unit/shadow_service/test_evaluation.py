"""The evaluation loop with the real twin, history store and analyzer."""

import dataclasses

import numpy as np
import pytest

from shadow_service import evaluation
from shadow_service import exception
from shadow_service import measurements as names
from shadow_service import racing
from shadow_service.analysis import analyzer as analyzer_mod
from shadow_service.analysis import contention
from shadow_service.analysis import scaleup
from shadow_service.history import memory
from tests import service_support

# These tests name hosts node-1, node-2...: the twin makes them up.
DERIVE = {'unknown_hosts': 'derive'}

REQUEST = {'flavor': {'name': 'm1.large', 'vcpus': 4, 'ram_mb': 8192,
                      'disk_gb': 40},
           'profile': 'db-oltp'}
HOSTS = [{'host': 'node-%d' % i} for i in range(1, 7)]


def make_evaluator(analyzer=None, **options):
    conf = service_support.make_conf(sim=DERIVE)
    history = memory.MemoryStore()
    driver = service_support.twin_with_hosts(conf, history, HOSTS)
    options.setdefault('sample_interval', 1.0)
    options.setdefault('min_run_time', 2.0)
    return evaluation.Evaluator(
        driver, history, analyzer or analyzer_mod.Analyzer(), **options)


def test_shadows_are_flavor_minimal():
    flavor = scaleup.shadow_flavor(
        {'name': 'big', 'vcpus': 16, 'ram_mb': 65536, 'disk_gb': 100}, 0.25)
    assert flavor == {'name': 'shadow-big', 'vcpus': 4, 'ram_mb': 16384,
                      'disk_gb': 25, 'extra_specs': {}}
    tiny = scaleup.shadow_flavor({'vcpus': 1, 'ram_mb': 512}, 0.1)
    assert tiny['vcpus'] == 1 and tiny['ram_mb'] == 256


def test_evaluation_ranks_every_host_and_leaves_no_shadow():
    evaluator = make_evaluator()
    run = evaluator.new(REQUEST, HOSTS, 20.0)
    seen = []
    ranking = evaluator.run(run, progress=lambda e, r: seen.append(
        e.progress))
    assert {h['host'] for h in ranking['hosts']} == {
        h['host'] for h in HOSTS}
    assert ranking['source'] == 'shadows'
    assert ranking['shadow_host_seconds'] > 0
    assert seen and seen == sorted(seen)
    assert evaluator.driver.list_shadows() == []
    assert evaluator.history.get_evaluation(run.evaluation_id)[
        'request'] == REQUEST


def test_at_most_max_shadow_hosts_run_at_once_and_all_get_measured():
    evaluator = make_evaluator(max_shadow_hosts=3)
    driver = evaluator.driver
    peak = []
    boot = driver.boot_shadows

    def recording_boot(evaluation_id, request, hosts, profile, **kwargs):
        shadows = boot(evaluation_id, request, hosts, profile, **kwargs)
        peak.append(len(driver.list_shadows()))
        return shadows

    driver.boot_shadows = recording_boot
    ranking = evaluator.run(evaluator.new(REQUEST, HOSTS, 60.0))
    assert max(peak) <= 3
    assert len(peak) >= 2, 'freed slots are refilled from the queue'
    assert {h['host'] for h in ranking['hosts']} == {
        h['host'] for h in HOSTS}
    assert driver.list_shadows() == []


def test_history_of_earlier_shadows_is_the_prior():
    evaluator = make_evaluator(confidence_target=0.5)
    first = evaluator.run(evaluator.new(REQUEST, HOSTS, 20.0))
    assert first['source'] == 'shadows'
    second = evaluator.run(evaluator.new(REQUEST, HOSTS, 20.0))
    assert second['source'] == 'history'
    assert second['shadow_host_seconds'] == 0
    assert second['hosts'][0]['host'] == first['hosts'][0]['host']


def test_prior_can_be_disabled():
    evaluator = make_evaluator(confidence_target=0.5, prior_lookback=0)
    evaluator.run(evaluator.new(REQUEST, HOSTS, 20.0))
    again = evaluator.run(evaluator.new(REQUEST, HOSTS, 20.0))
    assert again['source'] == 'shadows'


class ExplodingAnalyzer(analyzer_mod.Analyzer):
    """Fails on the first ranking that has shadow measurements."""

    def rank(self, sensitivity, observations, **kwargs):
        if observations:
            raise RuntimeError('analysis blew up')
        return super().rank(sensitivity, observations, **kwargs)


def test_a_crash_mid_evaluation_leaves_no_shadow_behind():
    evaluator = make_evaluator(analyzer=ExplodingAnalyzer())
    with pytest.raises(RuntimeError, match='blew up'):
        evaluator.run(evaluator.new(REQUEST, HOSTS, 10.0))
    assert evaluator.driver.list_shadows() == []


def test_budget_bounds_the_run():
    evaluator = make_evaluator(confidence_target=1.0)
    ranking = evaluator.run(evaluator.new(REQUEST, HOSTS[:2], 5.0))
    # Two shadows for at most the budget each (on the twin's clock).
    assert 0 < ranking['shadow_host_seconds'] <= 2 * 5.0 + 2


def test_unknown_profile_is_a_typed_error():
    evaluator = make_evaluator()
    with pytest.raises(exception.ProfileNotFound):
        evaluator.run(evaluator.new(dict(REQUEST, profile='nope'), HOSTS,
                                    5.0))


def test_bad_inline_profile_names_the_field():
    evaluator = make_evaluator()
    bad = dict(REQUEST, profile={'name': 'x', 'components': {
        'cpu': {'workers': -2, 'duty_cycle': 0.5}}})
    with pytest.raises(exception.InvalidRequest, match='workers'):
        evaluator.run(evaluator.new(bad, HOSTS, 5.0))


def test_prior_only_uses_shadows_of_the_same_workload():
    evaluator = make_evaluator(confidence_target=0.5)
    evaluator.run(evaluator.new(REQUEST, HOSTS, 20.0))
    bigger = dict(REQUEST, flavor=dict(REQUEST['flavor'], vcpus=16))
    other_size = evaluator.run(evaluator.new(bigger, HOSTS, 20.0))
    assert other_size['source'] == 'shadows'
    scaled = dict(REQUEST, profile_scale=2.0)
    assert evaluator.run(evaluator.new(scaled, HOSTS, 20.0))[
        'source'] == 'shadows'
    assert evaluator.run(evaluator.new(REQUEST, HOSTS, 20.0))[
        'source'] == 'history'


def test_unknown_schedule_is_rejected():
    with pytest.raises(ValueError, match='schedule'):
        make_evaluator(schedule='lottery')


def test_full_schedule_measures_every_host_for_the_whole_budget():
    evaluator = make_evaluator(schedule='full')
    evaluator.run(evaluator.new(REQUEST, HOSTS, 20.0))
    # A second run ignores the prior: still every host, the whole budget.
    ranking = evaluator.run(evaluator.new(REQUEST, HOSTS, 20.0))
    assert ranking['source'] == 'shadows'
    budget = 20.0 - evaluation.CLEANUP_RESERVE_S
    assert ranking['shadow_host_seconds'] >= len(HOSTS) * budget - 1e-6
    assert evaluator.driver.list_shadows() == []


def test_racing_spends_less_than_the_full_budget_and_ranks_alike():
    full = make_evaluator(schedule='full')
    reference = full.run(full.new(REQUEST, HOSTS, 30.0))
    racing = make_evaluator(schedule='racing')
    ranking = racing.run(racing.new(REQUEST, HOSTS, 30.0))
    assert ranking['source'] == 'shadows'
    assert 0 < ranking['shadow_host_seconds'] < reference[
        'shadow_host_seconds']
    assert {h['host'] for h in ranking['hosts']} == {
        h['host'] for h in HOSTS}
    scores = {h['host']: h['score'] for h in reference['hosts']}
    # The racing schedule's top host is within the tie margin of the
    # full measurement's best.
    assert scores[ranking['hosts'][0]['host']] >= max(scores.values()) - 2.0
    assert racing.driver.list_shadows() == []


def test_racing_answers_from_history_when_the_prior_settles_it():
    evaluator = make_evaluator(schedule='racing', confidence_target=1.0,
                               settle_margin=5.0)
    first = evaluator.run(evaluator.new(REQUEST, HOSTS, 30.0))
    assert first['source'] == 'shadows'
    second = evaluator.run(evaluator.new(REQUEST, HOSTS, 30.0))
    assert second['source'] == 'history'
    assert second['shadow_host_seconds'] == 0


def test_racing_measures_only_hosts_that_could_change_the_ranking():
    evaluator = make_evaluator(schedule='racing', confidence_target=1.0,
                               settle_margin=0.5)
    evaluator.run(evaluator.new(REQUEST, HOSTS, 30.0))
    booted = []
    boot = evaluator.driver.boot_shadows

    def recording_boot(evaluation_id, request, hosts, profile, **kwargs):
        booted.extend(hosts)
        return boot(evaluation_id, request, hosts, profile, **kwargs)

    evaluator.driver.boot_shadows = recording_boot
    extra = HOSTS + [{'host': 'node-9'}]
    ranking = evaluator.run(evaluator.new(REQUEST, extra, 30.0))
    # The host history knows nothing about is measured; hosts the prior
    # already ranks clearly worse are not.
    assert 'node-9' in booted
    assert len(set(booted)) < len(extra)
    assert {h['host'] for h in ranking['hosts']} == {
        h['host'] for h in extra}
    assert evaluator.driver.list_shadows() == []


def test_racing_assessment_of_a_clear_ranking():
    analyzer = analyzer_mod.Analyzer()
    clear = analyzer.rank({'cpu': 1.0}, {
        'a': {'cpu_ops_per_s': [100.0, 101.0, 99.0, 100.0]},
        'b': {'cpu_ops_per_s': [50.0, 51.0, 49.0, 50.0]}})
    verdict = racing.assess(clear)
    assert verdict.incumbent == 'a'
    assert verdict.opportunity_cost < 0.01
    assert verdict.contenders(0.01) == []
    close = analyzer.rank({'cpu': 1.0}, {
        'a': {'cpu_ops_per_s': [100.0]}, 'b': {'cpu_ops_per_s': [99.0]}})
    verdict = racing.assess(close)
    assert verdict.opportunity_cost > 1.0
    assert verdict.contenders(0.5) == ['b']
    # Per cost: b at half the cost is worth twice as much per unit.
    assert racing.assess(clear, cost_factors={'b': 2.0}).incumbent in (
        'a', 'b')
    assert racing.assess(clear, exclude=['a']).incumbent == 'b'


def test_the_learned_age_drift_ages_the_prior():
    from shadow_service import learners
    from shadow_service.learners import drift as drift_mod
    conf = service_support.make_conf(sim=DERIVE)
    history = memory.MemoryStore()
    driver = service_support.twin_with_hosts(conf, history, HOSTS)
    learner = drift_mod.AgeDriftLearner(history, min_pairs=3,
                                        refit_every=1, refit_interval_s=0,
                                        clock=driver.now)
    evaluator = evaluation.Evaluator(
        driver, history, analyzer_mod.Analyzer(age_drift=0.5),
        schedule='full', sample_interval=1.0, min_run_time=2.0,
        learners=learners.Learners(age_drift=learner))
    for _ in range(3):
        evaluator.run(evaluator.new(REQUEST, HOSTS, 10.0))
        driver.wait(3600.0)
    profile = evaluator.resolve_profile(REQUEST)
    analyzer = evaluator._analyzer_for(REQUEST, profile)
    learned = learner.current()
    assert learned.pairs >= 3 * len(HOSTS) // 2
    # The twin's hosts hold steady over hours: far below the assumed 0.5.
    assert learned.by_metric['cpu_ops_per_s'] < 0.2
    assert analyzer.drift_of('cpu_ops_per_s') == learned.by_metric[
        'cpu_ops_per_s']
    # A metric without its own pairs keeps the configured drift.
    assert analyzer.drift_of('no_such_metric') == 0.5


def test_unmeasured_candidates_scale_the_raw_confidence_too():
    """A ranking over 3 of 4 candidates: the raw confidence, which the
    calibration map learns from and outcomes are judged over every
    candidate against, is scaled by the share measured like the stated
    one, and the stated one is the map of the scaled raw figure."""
    run = evaluation.Evaluation('e', REQUEST, HOSTS[:4], 10.0)
    result = {'confidence': 0.9, 'raw_confidence': 0.8,
              'hosts': [{'host': h['host'], 'score': 70.0,
                         'predicted': {'cpu_ops_per_s': 1.0}}
                        for h in HOSTS[:3]]}
    evaluation.Evaluator._add_unmeasured(
        run, result, 'shadows', calibrated=lambda c: min(1.0, c + 0.1))
    assert result['raw_confidence'] == pytest.approx(0.6)
    assert result['confidence'] == pytest.approx(0.7)
    assert result['hosts'][-1]['host'] == HOSTS[3]['host']
    assert result['hosts'][-1]['score'] == evaluation.NEUTRAL_SCORE
    # Without a calibration map both are scaled.
    result = {'confidence': 0.9, 'raw_confidence': 0.8,
              'hosts': list(result['hosts'][:3])}
    evaluation.Evaluator._add_unmeasured(run, result, 'shadows')
    assert result['raw_confidence'] == pytest.approx(0.6)
    assert result['confidence'] == pytest.approx(0.675, abs=1e-3)


def test_racing_estimates_a_host_measured_again_with_its_history():
    evaluator = make_evaluator(schedule='racing', confidence_target=1.0,
                               settle_margin=0.0)
    evaluator.run(evaluator.new(REQUEST, HOSTS, 30.0))
    ranks = []
    rank = evaluator.analyzer.rank

    def recording_rank(*args, **kwargs):
        ranks.append(kwargs)
        return rank(*args, **kwargs)

    evaluator.analyzer.rank = recording_rank
    second = evaluator.new(REQUEST, HOSTS, 30.0)
    ranking = evaluator.run(second)
    assert ranking['source'] == 'shadows'
    # The prior's samples went along to every ranking made in the race.
    in_race = [k for k in ranks if k.get('prior') is not None]
    assert in_race
    earlier = second.prior_samples['observations']
    assert set(earlier) == {h['host'] for h in HOSTS}
    assert all(k['earlier'] is earlier for k in in_race)
    measured = [h for h in ranking['hosts']
                if any('earlier samples' in r for r in h['reasons'])]
    assert measured


def _model_uncertain_ranking(kept=None):
    """Two hosts measured closely apart (20 samples each) under a
    contention model fitted on scattered data: the model's uncertainty
    dwarfs the samples'."""
    rng = np.random.default_rng(0)
    data = {'num_instances': rng.integers(0, 10, 30)}
    ops = 1000 - 20 * data['num_instances'] + rng.normal(0, 150, 30)
    model = contention.ContentionModel(
        features=('num_instances',)).fit(data, ops)
    analyzer = analyzer_mod.Analyzer(contention={'cpu_ops_per_s': model})
    observations = {
        'a': {'cpu_ops_per_s': list(800 + rng.normal(0, 4, 20))},
        'b': {'cpu_ops_per_s': list(790 + rng.normal(0, 4, 20))}}
    features = {'a': {'num_instances': 4}, 'b': {'num_instances': 4}}
    tokens = {'a': 1, 'b': 2} if kept is not None else None
    return analyzer.rank({'cpu': 1.0}, observations,
                         host_features=features, kept=kept, tokens=tokens)


def test_racing_asks_shadows_only_for_what_they_can_narrow():
    ranking = _model_uncertain_ranking()
    sds, measurable = ranking.arrays[5], ranking.measurable_sds
    column = ranking.arrays[3].index('cpu_ops_per_s')
    assert (measurable[:, column] * 10 < sds[:, column]).all()
    settled = racing.assess(ranking, indifference=2.0)
    # The same ranking judged on its whole uncertainty, as before.
    whole = racing.assess(dataclasses.replace(ranking, measurable_sds=None),
                          indifference=2.0)
    assert settled.incumbent == whole.incumbent == 'a'
    assert settled.opportunity_cost < 0.01
    assert whole.opportunity_cost > evaluation.Evaluator.DEFAULT_SETTLE_MARGIN
    assert settled.contenders(0.25) == []
    # The confidence still counts all of it.
    assert ranking.confidence < 0.9


def test_kept_estimates_give_the_same_measurable_uncertainty():
    fresh = _model_uncertain_ranking()
    kept = analyzer_mod.KeptEstimates()
    first = _model_uncertain_ranking(kept)
    again = _model_uncertain_ranking(kept)
    for ranking in (first, again):
        np.testing.assert_allclose(ranking.measurable_sds,
                                   fresh.measurable_sds)
        np.testing.assert_allclose(ranking.arrays[5], fresh.arrays[5])



def test_the_log_says_why_history_did_not_decide(caplog):
    evaluator = make_evaluator(schedule='racing', confidence_target=1.0,
                               settle_margin=0.5)
    with caplog.at_level('INFO', logger='shadow_service.evaluation'):
        evaluator.run(evaluator.new(REQUEST, HOSTS, 30.0))
    why = [r.getMessage() for r in caplog.records
           if 'history does not decide' in r.getMessage()]
    assert why and '6 of 6 candidates without history' in why[0]
    caplog.clear()
    with caplog.at_level('INFO', logger='shadow_service.evaluation'):
        evaluator.run(evaluator.new(REQUEST, HOSTS + [{'host': 'node-9'}],
                                    30.0))
    why = [r.getMessage() for r in caplog.records
           if 'history does not decide' in r.getMessage()]
    assert why and '1 of 7 candidates without history' in why[0]
    assert 'expected loss' in why[0]


def test_racing_takes_a_host_without_history_as_one_like_the_known():
    analyzer = analyzer_mod.Analyzer()
    # One host far ahead of three alike: a host like the known ones is
    # most likely one of the three, and cannot change the ranking.
    clear = analyzer.rank({'cpu': 1.0}, {
        'a': {'cpu_ops_per_s': [100.0, 101.0, 99.0, 100.0]},
        'b': {'cpu_ops_per_s': [50.0, 51.0, 49.0, 50.0]},
        'c': {'cpu_ops_per_s': [52.0, 51.0, 53.0, 52.0]},
        'd': {'cpu_ops_per_s': [48.0, 49.0, 47.0, 48.0]}})
    verdict = racing.assess(clear, indifference=2.0, unknown=['x'])
    assert verdict.incumbent == 'a'
    assert set(verdict.gains) == {'b', 'c', 'd', 'x'}
    assert verdict.gains['x'] < 0.01
    assert verdict.opportunity_cost < 0.01
    # Two hosts within the tie margin: a host like them may be better.
    close = analyzer.rank({'cpu': 1.0}, {
        'a': {'cpu_ops_per_s': [100.0]}, 'b': {'cpu_ops_per_s': [99.0]},
        'c': {'cpu_ops_per_s': [98.0]}})
    alone = racing.assess(close, indifference=2.0)
    verdict = racing.assess(close, indifference=2.0, unknown=['x'])
    assert verdict.gains['x'] > 0.1
    assert verdict.opportunity_cost > alone.opportunity_cost
    # An excluded host takes no part.
    assert 'x' not in racing.assess(close, unknown=['x'],
                                    exclude=['x']).gains


def test_racing_draws_a_wide_latency_relative_not_down_to_zero():
    from shadow_service.analysis import confidence
    values = np.array([[1.0], [2.0]])
    sds = np.array([[0.1], [2.0]])
    metrics = ['disk_p95_latency_ms']
    normal = confidence.draw(metrics, values, sds, 4000, 0)
    relative = confidence.draw(metrics, values, sds, 4000, 0,
                               relative=True)
    # The normal clips a fifth of the wide host's draws to 0 (an
    # unbounded goodness); the lognormal keeps its mean and sd above 0.
    assert np.mean(normal[1, 0] == 0.0) > 0.1
    assert (relative > 0).all()
    assert np.mean(relative[1, 0]) == pytest.approx(2.0, rel=0.1)
    assert np.std(relative[1, 0]) == pytest.approx(2.0, rel=0.2)
    # A narrow estimate draws alike either way.
    assert np.std(relative[0, 0]) == pytest.approx(np.std(normal[0, 0]),
                                                   rel=0.05)
    # The wide, worse host: the race's loss from it is the lognormal's.
    ranking = analyzer_mod.Analyzer().rank({'disk_latency': 1.0}, {
        'a': {'disk_p95_latency_ms': [1.0, 1.02, 0.98, 1.0]},
        'b': {'disk_p95_latency_ms': [2.0]}})
    verdict = racing.assess(ranking, indifference=2.0)
    assert verdict.incumbent == 'a'
    assert verdict.opportunity_cost < evaluation.Evaluator.\
        DEFAULT_SETTLE_MARGIN * 10


def test_history_answers_with_a_host_it_does_not_know_when_it_cannot_matter():
    evaluator = make_evaluator(schedule='racing', confidence_target=1.0,
                               settle_margin=50.0)
    evaluator.run(evaluator.new(REQUEST, HOSTS, 30.0))
    ranking = evaluator.run(evaluator.new(
        REQUEST, HOSTS + [{'host': 'node-9'}], 30.0))
    assert ranking['source'] == 'history'
    assert ranking['history_verdict']['without_history'] == 1
    assert ranking['history_verdict']['decides'] is True
    new = [h for h in ranking['hosts'] if h['host'] == 'node-9']
    assert new[0]['confidence'] == 0.0 and new[0]['score'] == 50.0
    # Too few known hosts to say what a host like them is: measured.
    evaluator = make_evaluator(schedule='racing', confidence_target=1.0,
                               settle_margin=50.0)
    evaluator.run(evaluator.new(REQUEST, HOSTS[:2], 30.0))
    ranking = evaluator.run(evaluator.new(REQUEST, HOSTS, 30.0))
    assert ranking['source'] == 'shadows'
    assert ranking['history_verdict'] == dict(
        ranking['history_verdict'], decides=False, without_history=4)


def _losses_from(evaluator, losses):
    """Make the first ``len(losses)`` verdicts of ``evaluator`` report
    these expected losses (the rest of each verdict, and every later
    one, as assessed); returns the list the losses of every verdict are
    recorded in."""
    assess, seen = evaluator.assess, []

    def assess_with(ranking, evaluation, unknown=(), incumbent=None):
        if incumbent is not None:
            # The race's look back at the prior's top host.
            return assess(ranking, evaluation, incumbent=incumbent)
        verdict = assess(ranking, evaluation, unknown=unknown)
        if verdict is not None and len(seen) < len(losses):
            verdict = dataclasses.replace(
                verdict, opportunity_cost=losses[len(seen)])
        if verdict is not None:
            seen.append(verdict.opportunity_cost)
        return verdict

    evaluator.assess = assess_with
    return seen


def test_prior_settle_margin_decides_only_the_answer_from_history():
    evaluator = make_evaluator(schedule='racing', confidence_target=1.0,
                               settle_margin=1.0, prior_settle_margin=2.0)
    assert evaluator.elimination_margin == 0.25
    evaluator.run(evaluator.new(REQUEST, HOSTS, 30.0))
    # A prior 1.5 points from settled: within prior_settle_margin.
    _losses_from(evaluator, [1.5])
    ranking = evaluator.run(evaluator.new(REQUEST, HOSTS, 30.0))
    assert ranking['source'] == 'history'
    assert ranking['shadow_host_seconds'] == 0
    verdict = ranking['history_verdict']
    assert verdict['decides'] is True and verdict['expected_loss'] == 1.5
    assert verdict['prior_settle_margin'] == 2.0
    assert verdict['settle_margin'] == 1.0
    # A race, once its shadows run, settles at settle_margin only: a
    # read 1.5 points from settled does not stop it.
    seen = _losses_from(evaluator, [2.5, 1.5, 1.5, 1.5])
    ranking = evaluator.run(evaluator.new(REQUEST, HOSTS, 30.0))
    assert ranking['source'] == 'shadows'
    assert len(seen) > 4, 'the race stopped at a loss above settle_margin'
    assert evaluator.driver.list_shadows() == []


def test_prior_settle_margin_unset_is_settle_margin():
    evaluator = make_evaluator(schedule='racing', settle_margin=1.5)
    assert evaluator.prior_settle_margin is None
    assert evaluator.prior_margin == 1.5
    with pytest.raises(ValueError):
        make_evaluator(prior_settle_margin=-1.0)


def test_a_race_records_what_the_priors_top_host_would_have_lost():
    evaluator = make_evaluator(schedule='racing', confidence_target=1.0,
                               settle_margin=1.0)
    evaluator.run(evaluator.new(REQUEST, HOSTS, 30.0))
    _losses_from(evaluator, [3.0])
    ranking = evaluator.run(evaluator.new(REQUEST, HOSTS, 30.0))
    assert ranking['source'] == 'shadows'
    verdict = ranking['history_verdict']
    assert verdict['expected_loss'] == 3.0
    # Asked of the race's final ranking, with the prior's top host as
    # the incumbent.
    assert 0.0 <= verdict['loss_after'] < 3.0
    recorded = evaluator.history.get_evaluation(ranking['evaluation_id'])
    assert recorded['history_verdict']['loss_after'] == verdict[
        'loss_after']
    # Without the learner the prior's figure is taken as stated.
    assert 'trust' not in verdict


def test_the_learned_prior_trust_lets_history_answer_more():
    from shadow_service import learners
    from shadow_service.learners import priortrust
    conf = service_support.make_conf(sim=DERIVE)
    history = memory.MemoryStore()
    driver = service_support.twin_with_hosts(conf, history, HOSTS)
    learner = priortrust.PriorTrustLearner(
        history, min_outcomes=2, prior_outcomes=1.0, refit_every=1,
        refit_interval_s=0.0, clock=driver.now)
    evaluator = evaluation.Evaluator(
        driver, history, analyzer_mod.Analyzer(), schedule='racing',
        confidence_target=1.0, settle_margin=1.0, sample_interval=1.0,
        min_run_time=2.0, learners=learners.Learners(prior_trust=learner))
    evaluator.run(evaluator.new(REQUEST, HOSTS, 30.0))
    # Two priors that stated 4 points of loss; their races found the
    # twin's steady hosts where the prior had them.
    for _ in range(2):
        _losses_from(evaluator, [4.0])
        raced = evaluator.run(evaluator.new(REQUEST, HOSTS, 30.0))
        assert raced['source'] == 'shadows'
        assert raced['history_verdict']['trust'] == 1.0
        assert raced['history_verdict']['loss_after'] < 2.0
    _losses_from(evaluator, [1.5])
    ranking = evaluator.run(evaluator.new(REQUEST, HOSTS, 30.0))
    trust = learner.current().factor(REQUEST['profile'])
    assert trust * 1.5 <= 1.0
    assert ranking['source'] == 'history'
    assert ranking['history_verdict']['trust'] == round(trust, 4)
    assert ranking['history_verdict']['expected_loss'] == 1.5
    # The same prior without the learner races.
    plain = make_evaluator(schedule='racing', confidence_target=1.0,
                           settle_margin=1.0)
    plain.run(plain.new(REQUEST, HOSTS, 30.0))
    _losses_from(plain, [1.5])
    assert plain.run(plain.new(REQUEST, HOSTS, 30.0))['source'] == 'shadows'


class _StoreFailingOneRead(memory.MemoryStore):
    """A history store whose first read of shadow samples fails (the
    store unreachable for a moment)."""

    failed = False

    def query_points(self, measurement, tags, **kwargs):
        if measurement == names.SHADOW_SAMPLE and not self.failed:
            self.failed = True
            raise RuntimeError('the store is unreachable')
        return super().query_points(measurement, tags, **kwargs)


@pytest.mark.parametrize('schedule', ['racing', 'full', 'pool'])
def test_the_samples_of_a_failed_read_are_read_with_the_next(
        schedule, monkeypatch):
    conf = service_support.make_conf(sim=DERIVE)
    history = _StoreFailingOneRead()
    evaluator = evaluation.Evaluator(
        service_support.twin_with_hosts(conf, history, HOSTS[:3]), history,
        analyzer_mod.Analyzer(), schedule=schedule, sample_interval=5.0,
        min_run_time=2.0, prior_lookback=0, confidence_target=1.0,
        settle_margin=0.0)
    runs = []
    read = evaluation._Run.read

    def watched_read(run, read_from, now):
        runs.append(run)
        return read(run, read_from, now)

    monkeypatch.setattr(evaluation._Run, 'read', watched_read)
    run = evaluator.new(REQUEST, HOSTS[:3], 30.0)
    evaluator.run(run)
    assert history.failed
    written = history.query_points(
        names.SHADOW_SAMPLE, {names.TAG_EVALUATION: run.evaluation_id},
        start=0.0, end=evaluator.driver.now() + 1.0)
    observations = runs[0].observations
    # Before: racing and full skipped the samples of the failed read.
    assert sum(len(values) for metrics in observations.values()
               for values in metrics.values()) == len(written) > 0
