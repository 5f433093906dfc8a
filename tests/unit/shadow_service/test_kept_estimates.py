"""The prior's per-host estimates, kept between requests: a host whose
samples changed is estimated again (and its answer changes), the others
are reused, and the answer is the one a fresh estimate of every host
gives."""

import json
import uuid

import pytest

from shadow_service import evaluation
from shadow_service import measurements as names
from shadow_service import service
from shadow_service.history import base
from shadow_service.history import memory
from tests import service_support

REQUEST = {'flavor': {'name': 'm1.medium', 'vcpus': 2, 'ram_mb': 4096,
                      'disk_gb': 20},
           'profile': 'web'}
# Hosts the twin makes up (hardware, tenants, monitoring with noise).
HOSTS = [{'host': 'node-%d' % i} for i in range(1, 13)]


def seed(parts, evaluation_id, hosts, start, level_of, samples=10):
    """Shadow samples of one earlier evaluation of the workload on
    ``hosts``, as the evaluator records them, and its record."""
    evaluator = parts.manager.evaluator
    profile = evaluator.resolve_profile(REQUEST)
    metrics = sorted(evaluator.analyzer.weights(profile.sensitivity))
    service_support.seed_evaluation(
        parts.history, evaluation_id, REQUEST, profile.name, metrics, hosts,
        start, level_of, samples)
    return metrics


def level(index, metric_index, step):
    return 20.0 + (index * 37 + metric_index * 11) % 60 + step % 3


def answer(ranking):
    """What the answer says of each host (ids and timings left out)."""
    return {h['host']: (h['score'], h['confidence'], h['predicted'],
                        h['reasons']) for h in ranking['hosts']}


@pytest.fixture
def parts():
    # No noise in the hosts' monitoring: the same host facts on every
    # call, so two answers from the same samples are the same answer (the
    # peak headrooms read those facts).
    conf = service_support.make_conf(sim={'unknown_hosts': 'derive',
                                          'host_noise_pct': 0.0})
    built = service.build(conf, history=memory.MemoryStore())
    yield built
    built.close()


def test_a_changed_host_is_estimated_again_the_others_are_reused(parts):
    evaluator = parts.manager.evaluator
    clock = parts.driver.now()
    seeded = str(uuid.uuid4())
    seed(parts, seeded, [h['host'] for h in HOSTS], clock - 600.0, level)
    first = parts.manager.evaluate(REQUEST, HOSTS, 30.0)
    assert first['source'] == 'history'
    kept = evaluator._kept_for(REQUEST, evaluator.resolve_profile(REQUEST))
    assert (kept.computed, kept.reused) == (len(HOSTS), 0)

    # Nothing changed: every host's estimates are reused, and the
    # ranking made from them is the one made before (made once).
    again = parts.manager.evaluate(REQUEST, HOSTS, 30.0)
    assert (kept.computed, kept.reused) == (len(HOSTS), 0)
    assert kept.rankings_reused == 1
    assert answer(again) == answer(first)
    assert again['confidence'] == first['confidence']
    assert again['evaluation_id'] != first['evaluation_id']

    # node-3's shadow reports again, with other figures on every metric;
    # the prior reads the store again once its refresh is due on the
    # clock.
    seed(parts, seeded, ['node-3'], clock - 300.0,
         lambda i, m, s: 90.0 + s)
    parts.driver.fast_forward(10.0)
    changed = parts.manager.evaluate(REQUEST, HOSTS, 30.0)
    assert kept.computed == len(HOSTS) + 1
    assert kept.reused == len(HOSTS) - 1
    before, after = answer(first), answer(changed)
    assert after['node-3'][2] != before['node-3'][2]
    assert after['node-3'][0] != before['node-3'][0]

    # The kept answer is the one a fresh estimate of every host gives.
    evaluator.keep_estimates = False
    fresh = parts.manager.evaluate(REQUEST, HOSTS, 30.0)
    evaluator.keep_estimates = True
    kept_again = parts.manager.evaluate(REQUEST, HOSTS, 30.0)
    assert kept.computed == len(HOSTS) + 1
    assert answer(kept_again) == answer(fresh)
    assert kept_again['confidence'] == fresh['confidence']


def bench_hosts(count, number):
    """``count`` roomy hosts the twin does not know (fixed facts)."""
    return [{'host': 'bench-' + number % i, 'vcpus': 64, 'vcpus_used': 3,
             'free_ram_mb': 200000, 'total_ram_mb': 262144}
            for i in range(count)]


def test_kept_and_fresh_estimates_give_the_same_ranking():
    """On hosts with fixed facts (none: hosts the twin does not know),
    an aged history and several requests, the kept answer is exactly the
    fresh one."""
    conf = service_support.make_conf()
    parts = service.build(conf, history=memory.MemoryStore())
    try:
        hosts = bench_hosts(40, '%02d')
        clock = parts.driver.now()
        seed(parts, str(uuid.uuid4()), [h['host'] for h in hosts],
             clock - 4000.0, level, samples=4)
        evaluator = parts.manager.evaluator
        for _ in range(3):
            parts.driver.fast_forward(7.0)
            kept = parts.manager.evaluate(REQUEST, hosts, 30.0)
            evaluator.keep_estimates = False
            fresh = parts.manager.evaluate(REQUEST, hosts, 30.0)
            evaluator.keep_estimates = True
            assert kept['source'] == fresh['source'] == 'history'
            assert answer(kept) == answer(fresh)
            assert kept['confidence'] == fresh['confidence']
    finally:
        parts.close()


def test_a_prior_reads_ages_at_the_end_of_the_clocks_step():
    step = evaluation.PRIOR_AGE_STEP_S
    newest = {'a': 100.0, 'b': 95.0, 'c': 100.5}
    end = 20 * step
    for now in (19 * step + 0.001, 19.5 * step, end):
        assert evaluation.prior_ages(newest, now) == {
            'a': end - 100.0, 'b': end - 95.0, 'c': end - 100.5}
    # A sample stamped after the clock is not older than now.
    assert evaluation.prior_ages({'a': 2 * end}, end) == {'a': 0.0}
    assert evaluation.prior_ages({'a': 95.5}, 100.0, step=0) == {'a': 4.5}


def test_a_reused_ranking_is_recorded_whole(parts):
    """Each answer's record holds its own id and request and every host
    entry, also when its host entries' JSON was made for an earlier
    answer."""
    clock = parts.driver.now()
    seed(parts, str(uuid.uuid4()), [h['host'] for h in HOSTS],
         clock - 600.0, level)
    requests = [dict(REQUEST, instance_uuid=str(uuid.uuid4()))
                for _ in range(2)]
    rankings = [parts.manager.evaluate(r, HOSTS, 30.0) for r in requests]
    evaluator = parts.manager.evaluator
    kept = evaluator._kept_for(REQUEST, evaluator.resolve_profile(REQUEST))
    assert kept.rankings_reused == 1
    assert evaluator.score_writer.flush()
    for request, ranking in zip(requests, rankings):
        record = parts.history.get_evaluation(ranking['evaluation_id'])
        assert record['hosts'] == ranking['hosts']
        assert record['evaluation_id'] == ranking['evaluation_id']
        assert record['request'] == request


def test_a_record_with_its_hosts_encoded_before_is_the_same_json():
    record = {'evaluation_id': 'e', 'confidence': 0.5, 'zeta': [1, {'b': 2,
              'a': 1}], 'hosts': [{'score': 1.5, 'host': 'a',
                                   'reasons': ['x "quoted"']}],
              'host_features': {'a': {'cores': 4}}, 'raw': None}
    hosts_json = json.dumps(record['hosts'], sort_keys=True)
    assert base.encode_record(record, hosts_json) == json.dumps(
        record, sort_keys=True)
    assert base.encode_record(record) == json.dumps(record, sort_keys=True)


def first_answer(parts, age_s):
    """The evaluator, the first answer from history seeded ``age_s``
    seconds ago on ``HOSTS``, and the workload's kept estimates."""
    clock = parts.driver.now()
    seed(parts, str(uuid.uuid4()), [h['host'] for h in HOSTS],
         clock - age_s, level)
    evaluator = parts.manager.evaluator
    first = parts.manager.evaluate(REQUEST, HOSTS, 30.0)
    return evaluator, first, evaluator._kept_for(
        REQUEST, evaluator.resolve_profile(REQUEST))


def test_another_age_step_makes_the_ranking_again(parts):
    evaluator, first, kept = first_answer(parts, 4000.0)
    parts.driver.fast_forward(evaluation.PRIOR_AGE_STEP_S)
    later = parts.manager.evaluate(REQUEST, HOSTS, 30.0)
    assert kept.rankings_reused == 0
    # Older samples: less certain estimates, the same order.
    assert [h['host'] for h in later['hosts']] == [
        h['host'] for h in first['hosts']]
    assert later['hosts'][0]['data_age_s'] == (
        first['hosts'][0]['data_age_s'] + evaluation.PRIOR_AGE_STEP_S)


def test_host_scores_are_written_after_the_answer(parts):
    """One host_score point per ranked host, tagged as the contract says,
    written by the score writer: all of them once it is flushed (once
    for rankings made again from the same figures), and what is still
    queued when the service closes."""
    clock = parts.driver.now()
    seed(parts, str(uuid.uuid4()), [h['host'] for h in HOSTS],
         clock - 600.0, level)
    rankings = []
    for _ in range(2):
        # The samples' age moves on a step: another ranking.
        parts.driver.fast_forward(evaluation.PRIOR_AGE_STEP_S)
        rankings += [parts.manager.evaluate(REQUEST, HOSTS, 30.0)
                     for _ in range(2)]
    assert parts.manager.evaluator.score_writer.flush()
    for index, ranking in enumerate(rankings):
        points = parts.history.query_points(
            names.HOST_SCORE,
            {names.TAG_EVALUATION: ranking['evaluation_id']})
        if index % 2:
            # The same ranking as the one before: its points are there.
            assert points == []
            assert answer(ranking) == answer(rankings[index - 1])
            continue
        assert {p.tags[names.TAG_HOST]: (p.fields['score'],
                                         p.fields['confidence'])
                for p in points} == {
            h['host']: (h['score'], h['confidence'])
            for h in ranking['hosts']}
        assert {p.tags[names.TAG_SOURCE] for p in points} == {'history'}
        assert {p.tags[names.TAG_PROFILE] for p in points} == {'web'}
    parts.driver.fast_forward(evaluation.PRIOR_AGE_STEP_S)
    last = parts.manager.evaluate(REQUEST, HOSTS, 30.0)
    parts.manager.shutdown()
    assert len(parts.history.query_points(
        names.HOST_SCORE,
        {names.TAG_EVALUATION: last['evaluation_id']})) == len(HOSTS)
    assert parts.manager.evaluator.score_writer.failed == 0


def test_the_race_reads_the_rankings_arrays_as_its_host_entries(parts):
    """racing.assess of a prior reads the arrays the ranking was made
    from: the same assessment as from its host entries."""
    import dataclasses

    from shadow_service import racing

    clock = parts.driver.now()
    seed(parts, str(uuid.uuid4()), [h['host'] for h in HOSTS],
         clock - 600.0, level)
    evaluator = parts.manager.evaluator
    profile = evaluator.resolve_profile(REQUEST)
    names_ = [h['host'] for h in HOSTS]
    prior = evaluator._prior(profile, names_, {}, None, evaluator.analyzer,
                             request=REQUEST)
    assert racing._arrays(prior, [h for h in prior.hosts if h.predicted],
                          prior.weights) is not None
    for exclude in ((), ('node-2', 'node-5')):
        from_arrays = racing.assess(prior, exclude=exclude, indifference=2.0)
        from_entries = racing.assess(dataclasses.replace(prior, arrays=None),
                                     exclude=exclude, indifference=2.0)
        assert from_arrays == from_entries
        assert from_arrays.gains


def test_only_the_most_recent_workloads_keep_rankings(parts):
    """Rankings are kept for reuse by the most recent workloads only;
    an older workload keeps its estimates and makes its ranking again."""
    evaluator, first, kept = first_answer(parts, 600.0)
    # Other workloads (other flavor sizes) asked for since.
    for vcpus in range(3, 3 + evaluation.WORKLOADS_RANKED):
        other = dict(REQUEST, flavor=dict(REQUEST['flavor'], vcpus=vcpus))
        evaluator._kept_for(other, evaluator.resolve_profile(other))
    again = parts.manager.evaluate(REQUEST, HOSTS, 30.0)
    assert kept.rankings_reused == 0
    assert kept.computed == len(HOSTS)
    assert answer(again) == answer(first)
    parts.manager.evaluate(REQUEST, HOSTS, 30.0)
    assert kept.rankings_reused == 1


def test_above_128_hosts_the_race_draws_its_own_and_keeps_the_verdict():
    """Above ``PAIRWISE_DRAWN_HOSTS`` candidates the race draws its own
    (relative) draws, as below; the verdict of a ranking made again from
    the same figures is kept."""
    from shadow_service import racing

    conf = service_support.make_conf()
    parts = service.build(conf, history=memory.MemoryStore())
    try:
        names_ = ['bench-%03d' % i for i in range(300)]
        clock = parts.driver.now()
        seed(parts, str(uuid.uuid4()), names_, clock - 600.0,
             # Close hosts and noisy samples: a race with contenders.
             lambda i, m, s: 50.0 + (i * 37 + m * 11) % 9 * 0.4
             + (s % 3) * 4.0, samples=4)
        evaluator = parts.manager.evaluator
        profile = evaluator.resolve_profile(REQUEST)
        prior = evaluator._prior(profile, names_, {}, None,
                                 evaluator.analyzer, request=REQUEST)
        own = racing.assess(prior, indifference=2.0)
        assert own.opportunity_cost > 0.5
        assert len(own.gains) == 299
        # Through the evaluator (a ranking made again): the same
        # verdict, kept.
        evaluation_ = evaluator.new(REQUEST, [{'host': h} for h in names_],
                                    30.0)
        evaluation_.excluded, evaluation_.costs = {}, {}
        evaluator._kept_for(REQUEST, profile).forget_rankings()
        prior = evaluator._prior(profile, names_, {}, None,
                                 evaluator.analyzer, request=REQUEST)
        verdict = evaluator.assess(prior, evaluation_)
        assert verdict == own
        assert evaluator.assess(prior, evaluation_) is verdict
    finally:
        parts.close()


def test_another_candidate_list_is_ranked_as_afresh_from_kept_rows():
    """A request whose candidate list is another (one host left out, half
    the hosts, one host's facts changed) takes each host's row kept from
    the ranking of the whole list, and states what a ranking of that list
    made afresh states: the same order, scores, confidences, predictions
    and reasons, and the same overall confidence (which is over the
    candidates asked about: not the whole list's)."""
    from shadow_service.analysis import confidence

    conf = service_support.make_conf()
    parts = service.build(conf, history=memory.MemoryStore())
    try:
        # Above 512 hosts every list draws the same number of draws (the
        # noise of fewer hosts is the first rows of the noise of more);
        # above 128, pairs are compared as normal.
        hosts = bench_hosts(601, '%03d')
        hosts, newcomer = hosts[:600], hosts[600]
        clock = parts.driver.now()
        seed(parts, str(uuid.uuid4()),
             [h['host'] for h in hosts + [newcomer]],
             clock - 600.0,
             lambda i, m, s: 100.0 + (i * 37 + m * 11) % 60 + s % 3,
             samples=3)
        evaluator = parts.manager.evaluator
        whole = parts.manager.evaluate(REQUEST, hosts, 30.0)
        kept = evaluator._kept_for(REQUEST,
                                   evaluator.resolve_profile(REQUEST))
        assert (kept.computed, kept.rows_reused) == (len(hosts), 0)
        # The last list has a host with history not asked about before.
        lists = [hosts[1:], hosts[:299] + hosts[300:], hosts[:-1],
                 hosts[::2], hosts[1:] + [newcomer]]
        for candidates in lists:
            rows, computed = kept.rows_reused, kept.computed
            reused = parts.manager.evaluate(REQUEST, candidates, 30.0)
            assert reused['source'] == 'history'
            # Every host's row taken as kept, but the newcomer's.
            made = 1 if newcomer in candidates else 0
            assert kept.rows_reused - rows == len(candidates) - made
            assert kept.computed == computed + made
            # The same list ranked afresh: every host estimated again,
            # the seeded noise drawn again.
            confidence.forget_noise()
            evaluator.keep_estimates = False
            fresh = parts.manager.evaluate(REQUEST, candidates, 30.0)
            evaluator.keep_estimates = True
            assert ([h['host'] for h in reused['hosts']]
                    == [h['host'] for h in fresh['hosts']])
            assert answer(reused) == answer(fresh)
            assert reused['confidence'] == fresh['confidence']
        # What is stated is over the list asked about: not the whole
        # list's figures for the same hosts.
        assert any(answer(whole)[host][1] != figures[1]
                   for host, figures in answer(reused).items())
    finally:
        parts.close()
