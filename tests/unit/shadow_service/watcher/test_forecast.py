"""Forecast-and-breach: when will a metric cross its QoS target?"""

import numpy as np

from shadow_service.analysis import analyzer as analyzer_mod
from shadow_service.watcher import forecast

STEP_S = 300.0


def test_a_rising_latency_breaks_its_target_within_the_horizon():
    rising = list(np.linspace(1.0, 4.0, 96))
    found = forecast.forecast_breach(
        analyzer_mod.Analyzer(), rising, metric='disk_p95_latency_ms',
        target=('<=', 5.0), step_s=STEP_S, horizon_steps=36)
    assert found.breach_step is not None
    assert 0 < found.breach_in_s <= 36 * STEP_S
    assert found.bound()[found.breach_step] > 5.0
    assert 'may break its target' in found.describe()


def test_a_flat_series_far_below_its_target_stays_within_it():
    rng = np.random.default_rng(0)
    flat = list(1.0 + 0.05 * rng.standard_normal(96))
    flat[10] = None                     # a missing sample is skipped
    found = forecast.forecast_breach(
        analyzer_mod.Analyzer(), flat, metric='disk_p95_latency_ms',
        target=('<=', 5.0), step_s=STEP_S, horizon_steps=36)
    assert found.breach_step is None and found.breach_in_s is None
    assert len(found.mean) == len(found.upper) == 36
    assert 'stays within its target' in found.describe()


def test_a_higher_is_fine_target_compares_the_lower_bound():
    falling = list(np.linspace(2000.0, 1100.0, 96))
    found = forecast.forecast_breach(
        analyzer_mod.Analyzer(), falling, metric='net_rps',
        target=('>=', 1000.0), step_s=STEP_S, horizon_steps=36)
    assert found.bound() is found.lower
    assert found.breach_step is not None
