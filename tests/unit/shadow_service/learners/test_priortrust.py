"""The prior trust learner: its fit, and reading races from a real store."""

import pytest

from shadow_service.history import sqlite
from shadow_service.learners import priortrust

HOUR = 3600.0
T0 = 1_796_000_000.0


def _record(number, profile, before, after, *, source='shadows',
            decides=False, margin=1.0):
    return {'evaluation_id': 'e-%d' % number, 'source': source,
            'request': {'profile': profile,
                        'flavor': {'vcpus': 4, 'ram_mb': 8192}},
            'history_verdict': {'decides': decides, 'expected_loss': before,
                                'loss_after': after,
                                'prior_settle_margin': margin},
            'hosts': []}


def test_the_ratio_is_what_races_confirmed_shrunk_toward_one():
    # web: races found a quarter of the prior's stated loss; db: all of
    # it; batch: too few races to say.
    outcomes = ([('web', 2.0, 0.5, 1.0)] * 10 + [('db', 3.0, 3.0, 1.0)] * 10
                + [('batch', 2.0, 0.0, 1.0)] * 3)
    state = priortrust.fit(outcomes, min_outcomes=10, prior_outcomes=5.0)
    # (10 * 0.5 + 5 * 2.0) / (10 * 2.0 + 5 * 2.0)
    assert state.factor('web') == pytest.approx(15.0 / 30.0)
    assert state.factor('db') == pytest.approx(1.0)
    assert state.factor('batch') == 1.0
    assert 'batch' not in state.by_profile
    assert state.outcomes == {'web': 10, 'db': 10}
    # Without shrinkage, the plain ratio; bounded below.
    plain = priortrust.fit([('web', 2.0, 0.5, 1.0)] * 10, min_outcomes=1,
                           prior_outcomes=0.0)
    assert plain.factor('web') == pytest.approx(0.25)
    none_real = priortrust.fit([('web', 2.0, 0.0, 1.0)] * 10,
                               min_outcomes=1, prior_outcomes=0.0)
    assert none_real.factor('web') == priortrust.MIN_TRUST
    dear = priortrust.fit([('web', 2.0, 40.0, 1.0)] * 10, min_outcomes=1,
                          prior_outcomes=0.0)
    assert dear.factor('web') == priortrust.MAX_TRUST


def test_only_races_the_ratio_could_decide_count():
    # At or below the margin history answered anyway; beyond the margin
    # over MIN_TRUST no ratio could make it answer.
    outcomes = ([('web', 0.8, 5.0, 1.0)] * 10 + [('web', 9.0, 0.0, 1.0)] * 10
                + [('web', 2.0, 1.0, 0.0)] * 10)
    assert priortrust.fit(outcomes, min_outcomes=1).by_profile == {}


def test_race_outcome_reads_only_races_with_both_figures():
    assert priortrust.race_outcome(_record(1, 'web', 2.0, 0.5)) == (
        'web', 2.0, 0.5, 1.0)
    inline = _record(2, 'x', 2.0, 0.5)
    inline['request']['profile'] = {'name': 'inline-web', 'components': {}}
    assert priortrust.race_outcome(inline)[0] == 'inline-web'
    assert priortrust.race_outcome(
        _record(3, 'web', 0.5, None, source='history', decides=True)) is None
    assert priortrust.race_outcome(_record(4, 'web', 2.0, None)) is None
    assert priortrust.race_outcome(_record(5, 'web', None, 1.0)) is None
    assert priortrust.race_outcome(
        _record(6, 'web', float('nan'), 1.0)) is None
    assert priortrust.race_outcome({'source': 'shadows'}) is None


def test_the_learner_reads_the_races_in_its_window(tmp_path):
    store = sqlite.SQLiteStore(path=str(tmp_path / 'history.sqlite'))
    try:
        # Old races that said the opposite, then the window's.
        for number in range(10):
            store.put_evaluation(_record(number, 'web', 2.0, 8.0),
                                 when=T0 + number)
        for number in range(10, 22):
            store.put_evaluation(_record(number, 'web', 2.0, 0.5),
                                 when=T0 + 48 * HOUR + number)
        now = [T0 + 49 * HOUR]
        learner = priortrust.PriorTrustLearner(
            store, lookback_s=24 * HOUR, min_outcomes=10,
            prior_outcomes=0.0, refit_every=1, refit_interval_s=0.0,
            clock=lambda: now[0])
        assert learner.current().factor('web') == 1.0
        assert learner.prior_trust().factor('web') == pytest.approx(0.25)
        assert learner.current().outcomes == {'web': 12}
        # Once the window has moved past every race, nothing is learned.
        now[0] = T0 + 200 * HOUR
        assert learner.prior_trust().by_profile == {}
    finally:
        store.close()


def test_bad_settings_are_refused(tmp_path):
    store = sqlite.SQLiteStore(path=str(tmp_path / 'history.sqlite'))
    try:
        with pytest.raises(ValueError):
            priortrust.PriorTrustLearner(store, min_outcomes=0)
        with pytest.raises(ValueError):
            priortrust.PriorTrustLearner(store, prior_outcomes=-1.0)
    finally:
        store.close()
