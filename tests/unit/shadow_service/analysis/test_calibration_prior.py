"""Fitting the calibration's prior map from stored rankings
(``benchmarks/calibration_prior.py``)."""

import json

import numpy as np
import pytest

from shadow_service.analysis import calibration as cal
from shadow_service.learners import calibration as learning
from tests.fixtures import benchmarks


def _rows(count, seed=0):
    """Rows whose raw confidence, over 0.5-0.8, is too low: right 0.85
    of the time."""
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0.5, 0.8, count)
    right = rng.uniform(size=count) < 0.85
    return [{'request': i, 'confidence': [float(c), bool(r), float(c)]}
            for i, (c, r) in enumerate(zip(raw, right))]


def test_the_prior_map_is_fitted_on_the_rows_and_read_by_the_option(
        tmp_path):
    prior = benchmarks.load('calibration_prior')
    rows = tmp_path / 'rows.arrivals.json'
    rows.write_text(json.dumps(_rows(400)))
    out = tmp_path / 'prior.json'
    assert prior.main(['%s:arrivals:5:400' % rows, '--out', str(out)]) == 0
    coefficients = learning.load_prior_map(str(out))
    mapping = cal.LogisticCalibrationMap(prior=coefficients)
    assert mapping(0.65) == pytest.approx(0.85, abs=0.04)
    assert json.loads(out.read_text())['fitted_on'] == [
        'rows.arrivals.json:arrivals:5:400']


def test_the_seeds_the_calibration_is_measured_on_are_refused(tmp_path):
    prior = benchmarks.load('calibration_prior')
    rows = tmp_path / 'rows.arrivals.json'
    rows.write_text(json.dumps(_rows(40)))
    with pytest.raises(SystemExit):
        prior.main(['%s:arrivals:1:40' % rows])
    assert prior.main(['%s:arrivals:1:40' % rows,
                       '--held-out-seeds', '']) == 0


def test_the_replay_states_a_maps_own_prior_before_any_outcome():
    replay = benchmarks.load('calibration_replay')
    rows = _rows(3)
    times = {0: (0.0, None), 1: (60.0, None), 2: (120.0, None)}

    def fit(x, y, s):
        return cal.LogisticCalibrationMap(prior=(1.0, 0.5)).fit(x, y, s)
    stated, _outcomes = replay.replay(rows, times, fit, min_pairs=0)
    expected = [cal.LogisticCalibrationMap(prior=(1.0, 0.5))(
        r['confidence'][2]) for r in rows]
    assert stated == pytest.approx(expected)
    raw, _outcomes = replay.replay(rows, times, fit)
    assert raw == pytest.approx([r['confidence'][2] for r in rows])
