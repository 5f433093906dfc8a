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
