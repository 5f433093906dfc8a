"""Confidence calibration: the map, and the learner on a real store."""

import uuid

import numpy as np
import pytest

from shadow_service import hostfacts
from shadow_service import notifications
from shadow_service.analysis import analyzer as analyzer_lib
from shadow_service.analysis import calibration as calibration_lib
from shadow_service.history import base
from shadow_service.history import sqlite
from shadow_service.learners import calibration as learning

DAY = 86400.0
T0 = 1_796_000_000.0


def _overconfident_pairs(count, seed=0):
    """Rankings that state c but are right only c - 0.2 of the time."""
    rng = np.random.default_rng(seed)
    confidences = rng.uniform(0.5, 1.0, count)
    outcomes = rng.uniform(size=count) < confidences - 0.2
    return confidences, outcomes


def test_the_map_corrects_an_overconfident_ranker():
    confidences, outcomes = _overconfident_pairs(2000)
    mapping = calibration_lib.CalibrationMap().fit(confidences, outcomes)
    assert mapping.fitted
    assert mapping(0.9) == pytest.approx(0.7, abs=0.06)
    assert mapping(0.6) == pytest.approx(0.4, abs=0.08)
    fresh_c, fresh_o = _overconfident_pairs(2000, seed=1)
    before = calibration_lib.reliability(fresh_c, fresh_o)['ece']
    after = calibration_lib.reliability(
        [mapping(c) for c in fresh_c], fresh_o)['ece']
    assert before > 0.15
    assert after < 0.05


def _record_outcomes(learner, confidences, outcomes):
    """One outcome a second on host h1, the last a little before T0."""
    for i, (c, o) in enumerate(zip(confidences, outcomes)):
        learner.record_outcome('e-%d' % i, c, o, host='h1',
                               when=T0 - 1000.0 + i)


def _assert_monotone_within_bounds(mapping):
    grid = np.linspace(0, 1, 101)
    mapped = [mapping(c) for c in grid]
    assert np.all(np.diff(mapped) >= -1e-12)
    assert min(mapped) >= 0.0 and max(mapped) <= 1.0


def test_the_map_is_monotone_and_within_bounds():
    rng = np.random.default_rng(2)
    mapping = calibration_lib.CalibrationMap(prior_pairs=0).fit(
        rng.uniform(size=300), rng.uniform(size=300) < 0.5)
    _assert_monotone_within_bounds(mapping)


@pytest.mark.parametrize('method', sorted(calibration_lib.METHODS))
def test_few_outcomes_leave_the_confidence_as_it_is(method):
    mapping = calibration_lib.make_map(method, min_pairs=20).fit(
        [0.9] * 10, [0] * 10)
    assert not mapping.fitted
    assert mapping(0.9) == pytest.approx(0.9)
    if method == 'logistic':
        assert mapping.to_dict()['coefficients'] == [0.0, 1.0]


def test_bad_map_options_are_refused():
    with pytest.raises(ValueError, match='bins'):
        calibration_lib.CalibrationMap(bins=0)
    with pytest.raises(ValueError, match='tails'):
        calibration_lib.CalibrationMap(tails='linear')


def _mid_range_pairs(count=400, seed=3):
    """Raw confidences only within 0.6-0.8, right half of the time."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.6, 0.8, count),
            rng.uniform(size=count) < 0.5)


def test_beyond_the_fitted_bins_the_map_states_the_nearest_observed_share():
    confidences, outcomes = _mid_range_pairs()
    mapping = calibration_lib.CalibrationMap().fit(confidences, outcomes)
    assert mapping.tails == 'flat'
    observed = float(np.mean(outcomes))
    # No outcome above 0.8: a raw 0.99 is stated as what 0.8 achieved,
    # not pulled back toward the raw figure.
    assert mapping(0.99) == pytest.approx(observed, abs=0.06)
    assert mapping(1.0) == pytest.approx(mapping(0.8), abs=0.06)
    assert mapping(0.2) == pytest.approx(observed, abs=0.06)
    assert mapping.to_dict()['tails'] == 'flat'


def _filling_cloud_pairs(count=400, seed=4):
    """Rankings made while 70-80 % of the candidates' RAM was allocated,
    right 0.9 of the time whatever their raw confidence said."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.6, 0.8, count), rng.uniform(size=count) < 0.9,
            rng.uniform(0.7, 0.8, count))


def test_the_map_holds_only_at_the_allocated_shares_it_was_fitted_on():
    confidences, outcomes, shares = _filling_cloud_pairs()
    mapping = calibration_lib.CalibrationMap().fit(confidences, outcomes,
                                                   shares)
    assert mapping.share_range == pytest.approx((0.7, 0.8), abs=0.01)
    lifted = mapping(0.7)
    assert lifted == pytest.approx(0.9, abs=0.05)
    # At a share its outcomes saw (or within the margin of one), and
    # where the share is unknown: the fitted map.
    assert mapping(0.7, 0.75) == pytest.approx(lifted)
    assert mapping(0.7, 0.8 + calibration_lib.SHARE_MARGIN / 2) \
        == pytest.approx(lifted)
    # A fuller (or emptier) cloud than any outcome came from: the raw
    # confidence, not what an emptier cloud's rankings achieved.
    assert mapping(0.7, 0.95) == pytest.approx(0.7)
    assert mapping(0.7, 0.5) == pytest.approx(0.7)
    assert mapping.to_dict()['share_range'] == pytest.approx(
        list(mapping.share_range), abs=1e-4)
    # Outcomes without a share leave the map as it was.
    plain = calibration_lib.CalibrationMap().fit(confidences, outcomes,
                                                 [None] * len(outcomes))
    assert plain.share_range is None
    assert plain(0.7, 0.95) == pytest.approx(lifted)


def test_the_allocated_share_is_the_candidates_ram_in_use():
    assert hostfacts.allocated_ram_share({
        'a': {'memory_mb': 1000, 'memory_mb_used': 900},
        'b': {'memory_mb': 3000, 'memory_mb_used': 1500},
        'c': {'memory_mb_used': 10},
        'd': None}) == pytest.approx(0.6)
    assert hostfacts.allocated_ram_share({'c': {'cores': 8}}) is None
    assert hostfacts.allocated_ram_share(None) is None


def test_identity_tails_run_on_to_the_raw_confidence():
    confidences, outcomes = _mid_range_pairs()
    mapping = calibration_lib.CalibrationMap(tails='identity').fit(
        confidences, outcomes)
    assert mapping(1.0) == pytest.approx(1.0)
    assert mapping(0.0) == pytest.approx(0.0)
    assert mapping(0.99) > 0.9


def test_the_learner_takes_the_map_options_from_the_configuration(store):
    from oslo_config import cfg

    from shadow_service import conf as shadow_conf
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf([], project='nova-shadow-test')
    assert conf.analysis.calibration_tails == 'flat'
    assert conf.analysis.calibration_prior_pairs == 5.0
    conf.set_override('calibration_tails', 'identity', group='analysis')
    conf.set_override('calibration_prior_pairs', 12.0, group='analysis')
    assert conf.analysis.calibration_share_margin == pytest.approx(
        calibration_lib.SHARE_MARGIN)
    conf.set_override('calibration_share_margin', 1.0, group='analysis')
    learner = learning.CalibrationLearner.from_conf(conf, store)
    assert learner.tails == 'identity'
    assert learner.prior_pairs == 12.0
    assert learner.share_margin == 1.0
    with pytest.raises(ValueError):
        conf.set_override('calibration_tails', 'linear', group='analysis')


@pytest.fixture
def store(tmp_path):
    store = sqlite.SQLiteStore(path=str(tmp_path / 'history.sqlite'))
    yield store
    store.close()


class _Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def test_recorded_outcomes_become_the_stated_confidence(store):
    clock = _Clock(T0)
    learner = learning.CalibrationLearner(store, clock=clock,
                                          refit_every=1,
                                          refit_interval_s=0.0)
    confidences, outcomes = _overconfident_pairs(400)
    _record_outcomes(learner, confidences, outcomes)
    mapping = learner.calibration_map()
    assert mapping.pairs == 400
    analyzer = analyzer_lib.Analyzer(calibration=learner)
    observations = {'a': {'cpu_ops_per_s': list(np.full(6, 1000.0)
                                                 + np.arange(6))},
                    'b': {'cpu_ops_per_s': list(np.full(6, 990.0)
                                                 + np.arange(6))}}
    ranking = analyzer.rank({'cpu': 1}, observations)
    assert ranking.raw_confidence is not None
    assert ranking.confidence == pytest.approx(
        mapping(ranking.raw_confidence))
    assert ranking.to_dict()['raw_confidence'] == pytest.approx(
        ranking.raw_confidence, abs=1e-3)
    with pytest.raises(ValueError, match='confidence'):
        learner.record_outcome('e-bad', 1.5, True)


def _placed(store, *, realised_ops, confidence, when, top='h1',
            landed='h1', purpose=None):
    """An evaluation that ranked h1 (predicted 1000 ops/s) over h2
    (predicted 900), and its VM's first day on ``landed``."""
    evaluation_id = str(uuid.uuid4())
    instance = str(uuid.uuid4())
    other = 'h2' if top == 'h1' else 'h1'
    request = {'instance_uuid': instance, 'profile': 'batch-cpu',
               'flavor': {'name': 'm1', 'vcpus': 2, 'ram_mb': 4096,
                          'disk_gb': 20}}
    if purpose:
        request['purpose'] = purpose
    store.put_evaluation({
        'evaluation_id': evaluation_id, 'confidence': confidence,
        'raw_confidence': confidence,
        'request': request,
        'hosts': [{'host': top, 'score': 100.0, 'confidence': confidence,
                   'predicted': {'cpu_ops_per_s': 1000.0}},
                  {'host': other, 'score': 90.0, 'confidence': confidence,
                   'predicted': {'cpu_ops_per_s': 900.0}}]}, when=when)
    store.write([notifications.event_point(
        'instance.create.end', {'nova_object.data': {
            'uuid': instance, 'host': landed}}, when + 60.0)])
    store.write([base.Point(
        'instance_metric', {'instance': instance, 'host': landed,
                            'metric': 'cpu_ops_per_s'},
        {'value': realised_ops}, when + 120.0 + i * 3600.0)
        for i in range(24)])
    return evaluation_id


def test_placed_vms_outcomes_are_harvested_after_their_first_day(store):
    clock = _Clock(T0)
    learner = learning.CalibrationLearner(
        store, clock=clock, refit_every=1, refit_interval_s=0.0,
        min_pairs=2, lookback_s=1e10)
    # Right: realised 980 beats the runner-up's predicted 900.
    _placed(store, realised_ops=980.0, confidence=0.9, when=T0 - 2 * DAY)
    # Wrong: realised 700 is far below the runner-up's 900.
    _placed(store, realised_ops=700.0, confidence=0.9, when=T0 - 2 * DAY)
    # Landed on the runner-up: no outcome about the top host.
    _placed(store, realised_ops=700.0, confidence=0.9, when=T0 - 2 * DAY,
            landed='h2')
    # Still in its first day: not judged yet.
    _placed(store, realised_ops=700.0, confidence=0.9, when=T0 - 3600.0)

    pairs = learner.training_pairs()

    assert sorted(pairs) == [(0.9, 0.0, None), (0.9, 1.0, None)]
    assert learner.harvested == 2


def test_a_move_is_not_judged_by_the_first_day_after_the_creation(store):
    # The VM's first day follows its creation on h1; an unshelve ranking
    # that also put h1 first was made later, for another placement.
    clock = _Clock(T0)
    learner = learning.CalibrationLearner(
        store, clock=clock, refit_every=1, refit_interval_s=0.0,
        min_pairs=2, lookback_s=1e10)
    _placed(store, realised_ops=980.0, confidence=0.9, when=T0 - 2 * DAY)
    _placed(store, realised_ops=700.0, confidence=0.8, when=T0 - 2 * DAY,
            purpose='unshelve')

    assert learner.training_pairs() == [(0.9, 1.0, None)]
    assert learner.harvested == 1


def test_the_learner_remembers_only_the_evaluations_it_still_reads(store):
    # What a refit settled is kept for the records it reads (the newest
    # max_evaluations in the lookback), not for every evaluation ever
    # run: a daemon's memory does not grow with each evaluation.
    clock = _Clock(T0)
    learner = learning.CalibrationLearner(
        store, clock=clock, refit_every=1, refit_interval_s=0.0,
        min_pairs=2, lookback_s=1e10, max_evaluations=4)
    for i in range(12):
        _placed(store, realised_ops=980.0 if i % 2 else 700.0,
                confidence=0.9, when=T0 - 2 * DAY + i)
        store.put_evaluation({'evaluation_id': 'from-history-%d' % i,
                              'confidence': 0.9}, when=T0 - DAY + i)
    newest = [evaluation_id for evaluation_id, _ in learner.records()]

    for _ in range(3):
        pairs = learner.training_pairs()

    assert pairs == []      # the newest four placed nothing
    assert sorted(learner._settled) == sorted(newest)
    for i in range(4):
        store.put_evaluation({'evaluation_id': 'later-%d' % i,
                              'confidence': 0.9}, when=T0 - 100 + i)

    assert learner.training_pairs() == []
    assert sorted(learner._settled) == ['later-%d' % i for i in range(4)]


def _features(share, hosts=('a', 'b')):
    return {h: {'memory_mb': 1000, 'memory_mb_used': 1000 * share}
            for h in hosts}


def test_a_ranking_in_a_fuller_cloud_than_the_outcomes_states_its_raw(
        store):
    clock = _Clock(T0)
    learner = learning.CalibrationLearner(store, clock=clock,
                                          refit_every=1,
                                          refit_interval_s=0.0)
    confidences, outcomes, shares = _filling_cloud_pairs()
    for i, (c, o, share) in enumerate(zip(confidences, outcomes, shares)):
        when = T0 - DAY - 1000.0 + i
        store.put_evaluation({'evaluation_id': 'e-%d' % i,
                              'raw_confidence': float(c),
                              'host_features': _features(share)}, when=when)
        learner.record_outcome('e-%d' % i, c, o, host='a', when=when)
    pairs = learner.training_pairs()
    assert len(pairs) == 400
    assert min(p[2] for p in pairs) == pytest.approx(0.7, abs=0.01)
    mapping = learner.calibration_map()
    assert mapping.share_range == pytest.approx((0.7, 0.8), abs=0.01)
    analyzer = analyzer_lib.Analyzer(calibration=learner)
    observations = {'a': {'cpu_ops_per_s': list(np.full(6, 1000.0)
                                                 + np.arange(6))},
                    'b': {'cpu_ops_per_s': list(np.full(6, 990.0)
                                                 + np.arange(6))}}
    seen = analyzer.rank({'cpu': 1}, observations,
                         host_features=_features(0.75))
    fuller = analyzer.rank({'cpu': 1}, observations,
                           host_features=_features(0.97))
    assert seen.allocated_share == pytest.approx(0.75)
    assert seen.confidence == pytest.approx(
        mapping(seen.raw_confidence), abs=1e-9)
    # A raw 1.0 stated lower by the map (the logistic map's 0.98; the
    # binned map's, held flat, 0.9).
    assert abs(seen.confidence - seen.raw_confidence) > 0.01
    assert fuller.raw_confidence == pytest.approx(seen.raw_confidence)
    assert fuller.confidence == pytest.approx(fuller.raw_confidence)


def _underconfident_pairs(count, seed=0):
    """Rankings whose raw confidence, spread over 0.3-0.8, is too low
    throughout: right 0.85 of the time whatever they state."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.3, 0.8, count), rng.uniform(size=count) < 0.85


def test_the_default_map_lifts_a_raw_confidence_too_low_from_few_outcomes(
        store):
    """Thirty outcomes spread over five bins: the binned map learns each
    bin from its six alone, held toward the raw figure by five
    pseudo-outcomes, so it lifts 0.55 only to about 0.7; the logistic
    map (the default) learns its level from all thirty (here from the
    identity, without the bundled prior map)."""
    from oslo_config import cfg

    from shadow_service import conf as shadow_conf
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf([], project='nova-shadow-test')
    conf.set_override('calibration_prior_map', 'identity', group='analysis')
    clock = _Clock(T0)
    learner = learning.CalibrationLearner.from_conf(conf, store,
                                                    clock=clock)
    confidences, outcomes = _underconfident_pairs(30)
    _record_outcomes(learner, confidences, outcomes)
    mapping = learner.calibration_map()
    assert mapping.pairs == 30
    assert mapping(0.55) > 0.78
    binned = calibration_lib.CalibrationMap().fit(confidences, outcomes)
    assert binned(0.55) < 0.75
    fresh_c, fresh_o = _underconfident_pairs(2000, seed=1)
    assert calibration_lib.reliability(
        [mapping(c) for c in fresh_c], fresh_o)['ece'] < 0.05
    assert calibration_lib.reliability(
        [binned(c) for c in fresh_c], fresh_o)['ece'] > 0.1


def test_the_logistic_map_corrects_an_overconfident_ranker():
    confidences, outcomes = _overconfident_pairs(2000)
    mapping = calibration_lib.LogisticCalibrationMap().fit(confidences,
                                                           outcomes)
    assert mapping.fitted
    assert mapping(0.9) == pytest.approx(0.7, abs=0.06)
    fresh_c, fresh_o = _overconfident_pairs(2000, seed=1)
    assert calibration_lib.reliability(
        [mapping(c) for c in fresh_c], fresh_o)['ece'] < 0.05
    _assert_monotone_within_bounds(mapping)


def test_a_falling_logistic_fit_is_held_level():
    """Outcomes right more often at lower raw confidence do not make a
    map that falls: the slope is held at 0 and the level learned."""
    confidences = np.linspace(0.3, 0.8, 40)
    outcomes = confidences < 0.7
    mapping = calibration_lib.LogisticCalibrationMap().fit(confidences,
                                                           outcomes)
    a, b = mapping.coefficients
    assert b == 0.0
    assert mapping(0.3) == pytest.approx(mapping(0.8))
    assert 0.6 < mapping(0.5) < 0.85


def test_the_logistic_map_states_the_raw_figure_beyond_its_shares():
    confidences, outcomes = _underconfident_pairs(200)
    mapping = calibration_lib.LogisticCalibrationMap().fit(
        confidences, outcomes, [0.7] * 100 + [0.8] * 100)
    assert mapping(0.5, 0.75) > 0.7
    assert mapping(0.5, 0.9) == pytest.approx(0.5)


def test_the_calibration_method_is_an_option(store):
    from oslo_config import cfg

    from shadow_service import conf as shadow_conf
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf([], project='nova-shadow-test')
    assert conf.analysis.calibration_method == 'logistic'
    assert isinstance(
        learning.CalibrationLearner.from_conf(conf, store).current_map(),
        calibration_lib.LogisticCalibrationMap)
    conf.set_override('calibration_method', 'bins', group='analysis')
    learner = learning.CalibrationLearner.from_conf(conf, store)
    assert type(learner.current_map()) is calibration_lib.CalibrationMap
    assert learner.method == 'bins'
    with pytest.raises(ValueError):
        conf.set_override('calibration_method', 'isotonic',
                          group='analysis')
    with pytest.raises(ValueError, match='method'):
        calibration_lib.make_map('isotonic')


def _old_outcomes(history, now, lookback_s):
    """Every recorded outcome of the window, each evaluation's last, in
    the order each evaluation first comes (the read of every refit until
    the read was bounded, written out here)."""
    recorded = {}
    for point in history.query_points(
            'ranking_outcome', start=now - lookback_s, end=now + 1.0):
        confidence = point.fields.get('confidence')
        outcome = point.fields.get('outcome')
        if confidence is not None and outcome is not None:
            recorded[point.tags.get('evaluation')] = (
                float(confidence), float(outcome), None)
    return list(recorded.values())


class _Counting(sqlite.SQLiteStore):
    """A SQLite store counting the points its reads return."""

    returned = 0

    def query_points(self, *args, **kwargs):
        found = super().query_points(*args, **kwargs)
        self.returned += len(found)
        return found


def test_a_refit_reads_the_newest_outcomes_not_the_whole_window(tmp_path):
    # 400 evaluations' outcomes over the look-back, some recorded again
    # (a later figure for the same evaluation, another host's), some at
    # the same time, some without a figure, some before the window: a
    # refit reads the newest 50 evaluations' outcomes a page at a time,
    # and keeps what reading the whole window and keeping those would.
    store = _Counting(path=str(tmp_path / 'history.sqlite'))
    try:
        rng = np.random.default_rng(11)
        lookback = 10 * DAY
        now = T0 + lookback
        points = []
        for number in range(400):
            when = T0 - DAY + number * (lookback + DAY) / 400
            tags = {'evaluation': 'ev-%04d' % number, 'host': 'h1'}
            points.append(base.Point('ranking_outcome', tags, {
                'confidence': float(rng.uniform(0.5, 1.0)),
                'outcome': float(rng.integers(0, 2))}, when))
            if number % 7 == 0:
                again = dict(tags, host='h2')
                points.append(base.Point('ranking_outcome', again, {
                    'confidence': float(rng.uniform(0.5, 1.0)),
                    'outcome': 1.0}, when + rng.choice([0.0, 90.0])))
            if number % 11 == 0:
                points.append(base.Point('ranking_outcome', tags, {
                    'confidence': 0.7}, when + 30.0))
        store.write(points)
        learner = learning.CalibrationLearner(
            store, lookback_s=lookback, max_evaluations=50, harvest=False,
            clock=lambda: now)

        store.returned = 0
        pairs = learner.training_pairs()
        read = store.returned
        expected = _old_outcomes(store, now, lookback)

        assert len(expected) > 300
        assert pairs == expected[-50:]
        assert read < 300, read
        # Fewer outcomes than the bound: every one, as before.
        everything = learning.CalibrationLearner(
            store, lookback_s=lookback, max_evaluations=500, harvest=False,
            clock=lambda: now)
        assert everything.training_pairs() == expected
    finally:
        store.close()


class _CountingMetrics(sqlite.SQLiteStore):
    """A SQLite store counting the ``instance_metric`` points its reads
    return."""

    returned = 0

    def query_points(self, measurement, *args, **kwargs):
        found = super().query_points(measurement, *args, **kwargs)
        if measurement == 'instance_metric':
            self.returned += len(found)
        return found


def _lived(store, *, first, created, days, landed='h1', moved_to=None,
           ops=980.0):
    """An evaluation of ``T0 - 40 days`` that ranked h1 (1000 ops/s) over
    h2 (900), its VM created on ``landed`` at ``created`` and measured
    every 10 minutes from ``first`` for ``days`` days, its first day
    at ``ops`` (varying) and every later one far lower (on ``moved_to``
    after the second when given)."""
    evaluation_id = str(uuid.uuid4())
    instance = str(uuid.uuid4())
    store.put_evaluation({
        'evaluation_id': evaluation_id, 'confidence': 0.8,
        'raw_confidence': 0.8,
        'request': {'instance_uuid': instance, 'profile': 'batch-cpu',
                    'flavor': {'name': 'm1', 'vcpus': 2, 'ram_mb': 4096,
                               'disk_gb': 20}},
        'hosts': [{'host': 'h1', 'score': 100.0, 'confidence': 0.8,
                   'predicted': {'cpu_ops_per_s': 1000.0}},
                  {'host': 'h2', 'score': 90.0, 'confidence': 0.8,
                   'predicted': {'cpu_ops_per_s': 900.0}}]},
        when=T0 - 40 * DAY)
    store.write([notifications.event_point(
        'instance.create.end', {'nova_object.data': {
            'uuid': instance, 'host': landed}}, created)])
    points = []
    for step in range(int(days * 144)):
        when = first + step * 600.0
        host = moved_to if moved_to and when > first + 2 * DAY else landed
        value = ops + step % 7 if when - first <= DAY else 500.0
        points.append(base.Point(
            'instance_metric', {'instance': instance, 'host': host,
                                'metric': 'cpu_ops_per_s'},
            {'value': value}, when))
    store.write(points)
    return instance


def _whole_life_pairs(store, learner):
    """The harvest as it read each VM's points over its whole life,
    written out: every placed VM's outcome."""
    pairs = []
    for _evaluation_id, record in learner.records():
        instance = record['request']['instance_uuid']
        placed_on = notifications.placement_of(store, instance)
        points = store.query_points('instance_metric',
                                    {'instance': instance})
        outcome = learning.placed_outcome(
            record, points, placed_on=placed_on, window_s=learner.window_s,
            tie_margin=learner.tie_margin)
        if outcome is not None:
            pairs.append((outcome[0], float(outcome[1]), None))
    return pairs


def test_the_harvest_reads_each_vms_first_day_not_its_life(tmp_path):
    # Five VMs measured for 30 days each (4,320 points apiece): created
    # before their first measurement, after it (the notification came
    # late), moved to another host, a wrong ranking, and one whose
    # measurements began two days after its creation.  Each is judged
    # from its first day alone, as when every point of its life was read.
    store = _CountingMetrics(path=str(tmp_path / 'history.sqlite'))
    try:
        start = T0 - 35 * DAY
        _lived(store, first=start + 120.0, created=start + 60.0, days=30)
        _lived(store, first=start, created=start + 900.0, days=30)
        _lived(store, first=start, created=start, days=30, moved_to='h2')
        _lived(store, first=start, created=start, days=30, ops=700.0)
        _lived(store, first=start + 2 * DAY, created=start, days=30)
        learner = learning.CalibrationLearner(
            store, clock=lambda: T0, refit_every=1, refit_interval_s=0.0,
            min_pairs=2, lookback_s=50 * DAY)

        store.returned = 0
        pairs = learner.training_pairs()
        read = store.returned
        expected = _whole_life_pairs(store, learner)

        assert len(expected) == 5
        assert sorted(pairs) == sorted(expected)
        assert sorted(pairs) == [(0.8, 0.0, None)] + [(0.8, 1.0, None)] * 4
        # Per VM a day and a second of its measurements (145 points) and
        # its newest point (where the look for its first one ends), and
        # the quarter-hour before the late creation notice: not 4,320.
        assert read <= 5 * (145 + 1) + 2, read
    finally:
        store.close()


def test_the_refit_reads_as_many_evaluations_as_configured(store):
    from oslo_config import cfg

    from shadow_service import conf as shadow_conf
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf([], project='nova-shadow-test')
    assert learning.CalibrationLearner.from_conf(
        conf, store).max_evaluations == 500
    conf.set_override('calibration_max_evaluations', 2000, group='analysis')
    assert learning.CalibrationLearner.from_conf(
        conf, store).max_evaluations == 2000
    for bad in (0, 19, 20001):
        with pytest.raises(ValueError):
            conf.set_override('calibration_max_evaluations', bad,
                              group='analysis')


def test_how_many_rankings_pass_between_refits_is_an_option(tmp_path):
    """In a cloud that ranks rarely the count, not the interval, holds
    new outcomes back; ``calibration_refit_every = 1`` with no interval
    refits at the next ranking."""
    from oslo_config import cfg

    from shadow_service import conf as shadow_conf
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf([], project='nova-shadow-test')
    assert conf.analysis.calibration_refit_every == 20
    conf.set_override('calibration_refit_interval', 0.0, group='analysis')
    confidences, outcomes = _overconfident_pairs(400)

    def pairs_learned_at_the_second_ranking(name):
        store = sqlite.SQLiteStore(path=str(tmp_path / name))
        try:
            learner = learning.CalibrationLearner.from_conf(
                conf, store, clock=_Clock(T0))
            assert learner.calibration_map().pairs == 0     # first fit
            _record_outcomes(learner, confidences, outcomes)
            return learner.refit_every, learner.calibration_map().pairs
        finally:
            store.close()

    assert pairs_learned_at_the_second_ranking('default') == (20, 0)
    conf.set_override('calibration_refit_every', 1, group='analysis')
    assert pairs_learned_at_the_second_ranking('every') == (1, 400)
    with pytest.raises(ValueError):
        conf.set_override('calibration_refit_every', 0, group='analysis')


#: A prior map that lifts a raw confidence too low: raw 0.7 stated 0.77.
PRIOR = (0.9, 0.37)


def _prior_value(raw, prior=PRIOR):
    raw = min(max(raw, 1e-3), 1 - 1e-3)
    z = np.log(raw / (1 - raw))
    return 1 / (1 + np.exp(-(prior[0] + prior[1] * z)))


def test_a_prior_map_is_stated_before_any_outcome_is_known():
    mapping = calibration_lib.LogisticCalibrationMap(prior=PRIOR)
    assert mapping(0.7) == pytest.approx(_prior_value(0.7))
    assert mapping(0.7) > 0.76
    assert mapping.fit([], []).pairs == 0
    assert mapping(0.7) == pytest.approx(_prior_value(0.7))
    assert mapping.to_dict()['prior'] == {'coefficients': list(PRIOR),
                                          'pairs': 20.0}
    _assert_monotone_within_bounds(mapping)


def test_the_learned_map_hands_over_from_the_prior_map_as_outcomes_accrue():
    """Without waiting for ``min_pairs``: five outcomes move the map a
    little from its prior, two thousand make it the outcomes' own."""
    confidences, outcomes = _overconfident_pairs(2000)
    few = calibration_lib.LogisticCalibrationMap(prior=PRIOR).fit(
        confidences[:5], outcomes[:5])
    assert few.fitted and few.pairs == 5
    assert 0.01 < abs(few(0.9) - _prior_value(0.9)) < 0.1
    many = calibration_lib.LogisticCalibrationMap(prior=PRIOR).fit(
        confidences, outcomes)
    assert many(0.9) == pytest.approx(0.7, abs=0.06)
    worth_more = calibration_lib.LogisticCalibrationMap(
        prior=PRIOR, prior_map_pairs=200.0).fit(confidences[:40],
                                                outcomes[:40])
    worth_less = calibration_lib.LogisticCalibrationMap(
        prior=PRIOR, prior_map_pairs=2.0).fit(confidences[:40],
                                              outcomes[:40])
    assert (abs(worth_more(0.9) - _prior_value(0.9))
            < abs(worth_less(0.9) - _prior_value(0.9)))


def test_a_prior_map_is_not_read_beyond_the_outcomes_shares():
    confidences, outcomes = _underconfident_pairs(200)
    mapping = calibration_lib.LogisticCalibrationMap(prior=PRIOR).fit(
        confidences, outcomes, [0.7] * 100 + [0.8] * 100)
    assert mapping(0.5, 0.75) > 0.7
    assert mapping(0.5, 0.9) == pytest.approx(0.5)


def test_bad_prior_maps_are_refused(tmp_path):
    with pytest.raises(ValueError, match='prior'):
        calibration_lib.LogisticCalibrationMap(prior=(0.1, -1.0))
    with pytest.raises(ValueError, match='prior_map_pairs'):
        calibration_lib.LogisticCalibrationMap(prior=PRIOR,
                                               prior_map_pairs=-1)
    assert learning.load_prior_map('identity') is None
    assert learning.load_prior_map('') is None
    bundled = learning.load_prior_map('bundled')
    assert bundled is not None and bundled[1] >= 0
    path = tmp_path / 'prior.json'
    path.write_text('{"method": "logistic", "coefficients": [0.5, 0.8]}')
    assert learning.load_prior_map(str(path)) == (0.5, 0.8)
    path.write_text('{"method": "bins", "coefficients": [0.5, 0.8]}')
    with pytest.raises(ValueError, match='calibration_prior_map .*bins'):
        learning.load_prior_map(str(path))
    with pytest.raises(ValueError, match='calibration_prior_map'):
        learning.load_prior_map(str(tmp_path / 'missing.json'))


def test_the_learner_states_the_bundled_prior_map_until_outcomes_come(
        store):
    """By default the first rankings, made before any outcome is known,
    state the prior map shipped with the service, not their raw
    confidence; ``calibration_prior_map = identity`` states the raw one
    until ``calibration_min_pairs`` outcomes, as before the option."""
    from oslo_config import cfg

    from shadow_service import conf as shadow_conf
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf([], project='nova-shadow-test')
    assert conf.analysis.calibration_prior_map == 'bundled'
    assert conf.analysis.calibration_prior_map_pairs == 20.0
    learner = learning.CalibrationLearner.from_conf(conf, store,
                                                    clock=_Clock(T0))
    bundled = learning.load_prior_map('bundled')
    analyzer = analyzer_lib.Analyzer(calibration=learner)
    observations = {'a': {'cpu_ops_per_s': [1000.0, 1030.0, 970.0]},
                    'b': {'cpu_ops_per_s': [990.0, 1020.0, 960.0]}}
    ranking = analyzer.rank({'cpu': 1}, observations)
    assert learner.calibration_map().pairs == 0
    assert 0.5 < ranking.raw_confidence < 0.95
    assert ranking.confidence == pytest.approx(
        _prior_value(ranking.raw_confidence, bundled))
    assert ranking.confidence != pytest.approx(ranking.raw_confidence)

    conf.set_override('calibration_prior_map', 'identity', group='analysis')
    plain = learning.CalibrationLearner.from_conf(conf, store,
                                                  clock=_Clock(T0))
    assert plain.prior_map is None
    assert analyzer_lib.Analyzer(calibration=plain).calibrated(0.7) == 0.7
    conf.set_override('calibration_method', 'bins', group='analysis')
    conf.set_override('calibration_prior_map', 'bundled', group='analysis')
    binned = learning.CalibrationLearner.from_conf(conf, store,
                                                   clock=_Clock(T0))
    assert analyzer_lib.Analyzer(calibration=binned).calibrated(0.7) == 0.7
