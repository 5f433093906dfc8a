"""The calibration replay's weights against the selection of the outcomes
known first (``benchmarks/calibration_replay.py``)."""

import numpy as np
import pytest

from tests.fixtures import benchmarks

DAY = 86400.0


def _replay_module():
    return benchmarks.load('calibration_replay')


def test_known_share_is_kaplan_meier_over_the_judged_windows():
    replay = _replay_module()
    # Windows 1 and 3 known; the second ranking, 2 old, not known yet:
    # at risk at 1 are all three (2/3 survive), at 3 only the third.
    share = replay._known_share([1.0, None, 3.0], [5.0, 2.0, 5.0])
    assert share(0.5) == 0.0
    assert share(2.0) == pytest.approx(1 / 3)
    assert share(3.0) == pytest.approx(1.0)


def test_weights_of_each_scheme():
    replay = _replay_module()
    windows = [DAY / 4, None, DAY]
    ages = [DAY / 2, DAY / 8, 2 * DAY]
    assert replay.weights_for("window", windows, ages) == [0.25, 1.0]
    assert replay.weights_for("cohort", windows, ages) == [0.0, 1.0]
    # A ranking half a day old: of those as old, the share known is 1/2
    # (the second, younger one is censored before the first's window).
    assert replay.weights_for("ipw", windows, ages) == pytest.approx(
        [2.0, 1.0])
    assert replay.weights_for("recency %g" % DAY, windows, ages) == \
        pytest.approx([2 ** -0.5, 0.25])


def test_weighted_map_leans_toward_the_heavier_outcomes():
    replay = _replay_module()
    x = np.full(40, 0.7)
    y = np.array([1.0] * 20 + [0.0] * 20)
    even = replay._WeightedLogistic().fit(x, y, [None] * 40, np.ones(40))
    heavy = replay._WeightedLogistic().fit(
        x, y, [None] * 40, np.array([3.0] * 20 + [1.0] * 20))
    assert heavy(0.7) > even(0.7)
    held = replay._WeightedLogistic(min_weight=50).fit(
        x, y, [None] * 40, np.ones(40))
    assert held(0.7) == pytest.approx(0.7)


def test_weighted_map_with_a_prior_map_states_it_and_leans_on_it():
    replay = _replay_module()
    prior = (1.0, 0.5)
    unfitted = replay._WeightedLogistic(prior=prior, min_pairs=0).fit(
        [], [], [], [])
    expected = 1 / (1 + np.exp(-(1.0 + 0.5 * np.log(0.7 / 0.3))))
    assert unfitted(0.7) == pytest.approx(expected)
    # Two outcomes, both wrong, pull it down only a little from the prior.
    fitted = replay._WeightedLogistic(prior=prior, min_pairs=0).fit(
        [0.7, 0.7], [0.0, 0.0], [None, None], [1.0, 1.0])
    assert 0.5 < fitted(0.7) < expected


def _rows(raws, rights):
    return [{'request': i, 'confidence': [raw, right, raw, None]}
            for i, (raw, right) in enumerate(zip(raws, rights))]


def _fit(x, y, s):
    from shadow_service.analysis import calibration as cal
    return cal.LogisticCalibrationMap(min_pairs=0, prior_pairs=1).fit(
        x, y, s)


def test_replay_lookback_fits_only_recent_rankings():
    replay = _replay_module()
    # Hourly rankings of VMs living an hour: each outcome is known by the
    # next ranking.  The first 30 were wrong, the next 30 right.
    count = 60
    times = {i: (i * 3600.0, 3000.0) for i in range(count)}
    rows = _rows([0.7] * count, [0.0] * 30 + [1.0] * 30)
    every, _ = replay.replay(rows, times, _fit, min_pairs=0,
                             refit=(0.0, 1))
    recent, _ = replay.replay(rows, times, _fit, min_pairs=0,
                              refit=(0.0, 1), lookback=10 * 3600.0)
    assert recent[-1] > 0.8
    assert every[-1] < recent[-1] - 0.2


def test_replay_rank_reads_a_raw_figure_at_its_quantile():
    replay = _replay_module()
    count = 40
    times = {i: (i * 3600.0, 3000.0) for i in range(count)}
    # The raw figure falls over the run, the outcomes do not follow it:
    # read by its rank among the last 10, the last ranking's (the lowest
    # of its 10) is stated as the fitted map at the low end of the raw
    # figures it was fitted on, not at its own lower level.
    raws = list(np.linspace(0.9, 0.5, count))
    rows = _rows(raws, [1.0, 0.0] * (count // 2))
    plain, _ = replay.replay(rows, times, _fit, min_pairs=0,
                             refit=(0.0, 1))
    ranked, _ = replay.replay(rows, times, _fit, min_pairs=0,
                              refit=(0.0, 1), rank=10)
    fitted = _fit(raws[:count - 1], [1.0, 0.0] * (count // 2 - 1) + [1.0],
                  [None] * (count - 1))
    low = float(np.quantile(raws[:count - 1], 0.05))
    assert ranked[-1] == pytest.approx(fitted(low))
    assert ranked[-1] != pytest.approx(plain[-1])
