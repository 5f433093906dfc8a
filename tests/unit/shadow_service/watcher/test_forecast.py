"""Forecast-and-breach: when will a metric cross its QoS target?"""

import numpy as np
import pytest

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
    flat[10] = None                     # a missing sample is filled
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


def _daily_peak(hours):
    # Hourly latency with a daily peak at 19:00 and 20:00 above target.
    return [8.0 if h % 24 in (19, 20) else 2.0 for h in range(hours)]


@pytest.mark.parametrize('missing', [range(75, 79), range(81, 84)],
                         ids=['gap-in-the-last-day', 'newest-steps'])
def test_missing_samples_do_not_shift_a_daily_breach(missing):
    # 84 hourly steps, the last one 11:00: the 19:00 peak is the eighth
    # step ahead (index 7).  Dropping the missing samples shifted the
    # season or the horizon (index 11 or 10, hours after it began).
    values = _daily_peak(84)
    for hour in missing:
        values[hour] = None
    found = forecast.forecast_breach(
        analyzer_mod.Analyzer(), values, metric='disk_p95_latency_ms',
        target=('<=', 5.0), step_s=3600.0, horizon_steps=12,
        forecaster='seasonal_naive')
    assert found.breach_step == 7
    assert found.breach_in_s == 8 * 3600.0
    assert len(found.mean) == len(found.upper) == 12
