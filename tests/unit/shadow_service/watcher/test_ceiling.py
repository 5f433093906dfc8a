"""The demand ceiling: the most a VM that is not saturated is sized for."""

import math

import pytest

from shadow_service.watcher import loop
from tests import watcher_support

STEP = watcher_support.STEP_S


def _watcher(tmp_path, values, hours=4.0, **watcher_opts):
    tmp_path.mkdir(parents=True, exist_ok=True)
    conf = watcher_support.make_conf(tmp_path, watcher=watcher_opts)
    driver, history = watcher_support.twin(conf)
    watcher_support.place(driver, 'vm-1', values, flavor='medium')
    driver.fast_forward(hours * 3600.0)
    assembled = watcher_support.build(conf, driver, history)
    return assembled, driver


def _ceiling(assembled, driver):
    watcher = assembled.watcher
    instance = driver.get_instance('vm-1')
    situation = watcher.situation(instance, driver.now())
    return situation.forecast['ceiling']


def test_smoothed_peak_ignores_a_lone_sample():
    assert loop.Watcher._smoothed_peak([1, 1, 9, 1, 1], 3) == 1.0
    assert loop.Watcher._smoothed_peak([1, 5, 5, 1, 1], 3) == 5.0
    assert loop.Watcher._smoothed_peak([1, 1, 9, 1, 1], 1) == 9.0
    assert loop.Watcher._smoothed_peak([math.nan, 2.0], 3) == 2.0
    assert loop.Watcher._smoothed_peak([], 3) == 0.0


def _with_burst(burst):
    # 1 busy vCPU with a two-step plateau of 2.5 and one sample of
    # ``burst``, repeating every 4 hours.
    values = [1.0] * 48
    values[10:12] = [2.5, 2.5]
    values[30] = burst
    return values


def test_ceiling_is_the_sustained_peak_plus_its_margin(tmp_path):
    # One sample 16 % above the plateau: noise.
    assembled, driver = _watcher(tmp_path, _with_burst(2.9))
    try:
        assert _ceiling(assembled, driver) == pytest.approx(2.5 * 1.05,
                                                            rel=1e-3)
    finally:
        assembled.close()


def test_a_burst_well_above_the_sustained_peak_sets_the_ceiling(tmp_path):
    assembled, driver = _watcher(tmp_path / 'burst', _with_burst(3.5))
    try:
        assert _ceiling(assembled, driver) == pytest.approx(3.5 * 1.05,
                                                            rel=1e-3)
    finally:
        assembled.close()
    # With a median of one step every sample counts.
    assembled, driver = _watcher(tmp_path / 'single', _with_burst(2.9),
                                 ceiling_steps=1)
    try:
        assert _ceiling(assembled, driver) == pytest.approx(2.9 * 1.05,
                                                            rel=1e-3)
    finally:
        assembled.close()


def test_a_rising_demand_lifts_the_ceiling(tmp_path):
    # Flat at 1 vCPU for 4 hours, then rising 0.2 vCPU a step.
    values = [1.0] * 48 + [1.0 + 0.2 * i for i in range(1, 49)]
    assembled, driver = _watcher(tmp_path, values, hours=4.5)
    try:
        watcher = assembled.watcher
        situation = watcher.situation(driver.get_instance('vm-1'),
                                      driver.now())
        forecast = situation.forecast
        latest = situation.demand[-1]
        assert forecast['trend'] > 0.1
        assert forecast['ceiling'] >= latest + forecast['trend'] - 1e-9
        assert forecast['ceiling'] > watcher._ceilings['vm-1'][0] * 1.05
    finally:
        assembled.close()


def test_a_burst_past_the_ceiling_goes_on_at_its_last_rise(tmp_path):
    # 0.4 vCPU for 4 hours, then 2 vCPUs in one step (of 4, not
    # saturated): the rise of that step, not the slope of the quiet
    # steps before it, is extrapolated over the lead time.
    values = [0.4] * 48 + [2.0] * 48
    assembled, driver = _watcher(tmp_path, values, hours=4.0)
    try:
        watcher = assembled.watcher
        situation = watcher.situation(driver.get_instance('vm-1'),
                                      driver.now())
        forecast = situation.forecast
        assert not situation.saturated
        assert forecast['trend'] == pytest.approx(1.6, abs=0.05)
        horizon = forecast['horizon_steps']
        assert forecast['ceiling'] >= 2.0 + 1.6 * horizon - 0.1
        assert forecast['raw_peak'] >= 2.0 + 1.6 * horizon - 0.1
        # One step later the demand stays: no new rise to go on with.
        driver.fast_forward(STEP)
        later = watcher.situation(driver.get_instance('vm-1'),
                                  driver.now()).forecast
        assert later['trend'] < 1.0
    finally:
        assembled.close()


def test_no_ceiling_before_a_hold_window_is_known_or_when_off(tmp_path):
    values = [1.0] * 48
    young, driver = _watcher(tmp_path / 'young', values, hours=1.0)
    try:
        assert _ceiling(young, driver) == math.inf
    finally:
        young.close()
    off, driver = _watcher(tmp_path / 'off', values, ceiling_window=0.0)
    try:
        assert _ceiling(off, driver) == math.inf
    finally:
        off.close()


def test_ceiling_rises_with_new_demand_and_never_falls(tmp_path):
    # Quiet for 5 hours, then 3 busy vCPUs for an hour, then quiet.
    values = [0.5] * 60 + [3.0] * 12 + [0.5] * 216
    assembled, driver = _watcher(tmp_path, values, hours=4.0)
    try:
        assert _ceiling(assembled, driver) == pytest.approx(0.525,
                                                            rel=1e-3)
        watcher_support.run(assembled, driver, 24)
        assert _ceiling(assembled, driver) == pytest.approx(3.15, rel=1e-3)
        watcher_support.run(assembled, driver, 12)
        assert _ceiling(assembled, driver) == pytest.approx(3.15, rel=1e-3)
    finally:
        assembled.close()


def test_one_saturated_sample_above_the_ceiling_is_not_saturation(tmp_path):
    # 'medium' (4 vCPUs) at 3.2 busy vCPUs (80 %) for 4 hours, then 4.4:
    # one sample at 110 %, then a second.
    values = [3.2] * 48 + [4.4] * 48
    assembled, driver = _watcher(tmp_path, values, hours=4.0)
    try:
        watcher = assembled.watcher
        instance = driver.get_instance('vm-1')
        first = watcher.situation(instance, driver.now())
        assert first.utilisation_pct >= 95.0
        assert not first.saturated
        assert first.forecast['unconfirmed_saturation'] == 1
        driver.fast_forward(STEP)
        second = watcher.situation(instance, driver.now())
        assert second.saturated
    finally:
        assembled.close()


def test_a_vm_below_its_ceiling_is_saturated_at_once(tmp_path):
    values = [1.0] * 48 + [4.4] * 48
    assembled, driver = _watcher(tmp_path, values, hours=4.0 + 5 / 60.0)
    try:
        watcher = assembled.watcher
        # It used 6 vCPUs before (on a larger flavor).
        watcher._ceilings['vm-1'] = (6.0, 6.0, driver.now() - 86400.0)
        situation = watcher.situation(driver.get_instance('vm-1'),
                                      driver.now())
        assert situation.forecast['ceiling_before'] == pytest.approx(6.3)
        assert situation.saturated
        # Saturated, it hides its demand: the ceiling is at least what
        # the policy sizes it for (eight times its 4 vCPUs), not the 6.3
        # shown.
        assert situation.forecast['hidden_floor'] == pytest.approx(32.0)
        assert situation.forecast['ceiling'] == pytest.approx(32.0)
    finally:
        assembled.close()


def test_a_jump_to_saturation_from_well_below_counts_at_once(tmp_path):
    # 'medium' (4 vCPUs) at 0.4 busy vCPU (10 %) for 4 hours, then a
    # burst: the first saturated sample follows a quiet one.
    values = [0.4] * 47 + [4.4] * 49
    assembled, driver = _watcher(tmp_path, values, hours=4.0)
    try:
        situation = assembled.watcher.situation(
            driver.get_instance('vm-1'), driver.now())
        assert situation.utilisation_pct >= 95.0
        assert situation.saturated
    finally:
        assembled.close()


def test_a_saturated_sample_does_not_cap_the_next_shrink(tmp_path):
    # 'medium' (4 vCPUs) at 1 busy vCPU for 4 hours, then one sample
    # saturated (it wanted 9), then quiet again.  The saturated sample
    # reads 4 vCPUs, not the 9 wanted: a ceiling of 4.2 would let the
    # next shrink go back to the size that saturated.
    values = [1.0] * 47 + [9.0] + [1.0] * 48
    assembled, driver = _watcher(tmp_path, values, hours=4.0 - 5 / 60.0)
    try:
        watcher = assembled.watcher
        instance = driver.get_instance('vm-1')
        saturated = watcher.situation(instance, driver.now())
        assert saturated.saturated
        driver.fast_forward(2 * STEP)
        later = watcher.situation(instance, driver.now())
        assert not later.saturated
        # What it showed: 4 vCPUs (censored) plus the margin.
        assert later.forecast['ceiling_before'] == pytest.approx(4.2)
        # What the forecast policy sized it for while saturated: eight
        # times its vCPUs; the ceiling stays there.
        assert later.forecast['hidden_floor'] == pytest.approx(32.0)
        assert later.forecast['ceiling'] == pytest.approx(32.0)
    finally:
        assembled.close()


def test_the_hidden_demand_factor_is_the_policys():
    from shadow_service.watcher.policies import forecast
    from shadow_service.watcher.policies import reactive
    from shadow_service.watcher.policies import rl

    assert forecast.ForecastPolicy().hidden_demand_factor() == 8.0
    assert rl.RLPolicy().hidden_demand_factor() == 8.0
    assert reactive.ReactivePolicy().hidden_demand_factor() == 1.0


def test_the_hold_window_remembers_the_bound_within_the_ceiling(tmp_path):
    # 1 to 1.5 busy vCPUs, then a burst to 3: the forecast's bound (the
    # burst plus its interval) is above the ceiling the run sizes on.
    values = [1.0, 1.5] * 23 + [1.0, 3.0] + [1.0] * 48
    assembled, driver = _watcher(tmp_path, values, hours=4.0 - 5 / 60.0,
                                 hold_window=3600.0, trend_steps=0,
                                 ceiling_margin=0.0)
    try:
        watcher = assembled.watcher
        instance = driver.get_instance('vm-1')
        first = watcher.situation(instance, driver.now()).forecast
        assert first['ceiling'] == pytest.approx(3.0)
        assert first['peak'] > first['ceiling']
        driver.fast_forward(STEP)
        later = watcher.situation(instance, driver.now()).forecast
        # The next run holds what the first sized on, not its raw bound.
        assert later['recent_bound'] == pytest.approx(3.0)
    finally:
        assembled.close()


def test_no_shrink_bound_before_an_error_margin_is_known(tmp_path):
    # A watcher that just started knows no forecast error of the VM or
    # its flavor: its bound is not calibrated, so it offers no shrink.
    assembled, driver = _watcher(tmp_path, [1.0] * 96)
    try:
        forecast = assembled.watcher.situation(
            driver.get_instance('vm-1'), driver.now()).forecast
        assert forecast['margin_source'] == 'none'
        assert math.isinf(forecast['peak_down'])
        assert math.isfinite(forecast['peak'])
    finally:
        assembled.close()


def _situation_after(tmp_path, values, hours=4.0, **watcher_opts):
    assembled, driver = _watcher(tmp_path, values, hours=hours,
                                 **watcher_opts)
    try:
        return assembled.watcher.situation(driver.get_instance('vm-1'),
                                           driver.now())
    finally:
        assembled.close()


def test_a_burst_from_idle_within_noise_of_saturation_is_saturation(
        tmp_path):
    # 'medium' (4 vCPUs) at 0.4 busy vCPU (10 %) for 4 hours, then 3.6
    # (90 %): below saturation_pct (95 %), but a jump from well below
    # past anything the VM showed lands on its capacity, and noisy
    # samples read a saturated VM some percent low.
    values = [0.4] * 48 + [3.6] * 48
    situation = _situation_after(tmp_path / 'on', values)
    assert 85.0 <= situation.utilisation_pct < 95.0
    assert situation.saturated
    assert situation.forecast['near_saturation'] == pytest.approx(
        situation.utilisation_pct)
    # Sized as a saturated VM: eight times its vCPUs.
    assert situation.forecast['hidden_floor'] == pytest.approx(32.0)
    # At or above saturation_pct the rule is off.
    off = _situation_after(tmp_path / 'off', values,
                           near_saturation_pct=95.0)
    assert not off.saturated


def test_a_burst_onto_a_flavor_it_filled_before_is_saturation(tmp_path):
    # Saturated on its 4 vCPUs for an hour (it wanted 6: the samples
    # read 4), quiet, then 3.6 (90 %): not past the 4.2 it has shown,
    # but that was this flavor full, its demand hidden above it.
    values = [6.0] * 12 + [0.4] * 36 + [3.6] * 48
    situation = _situation_after(tmp_path, values)
    assert situation.forecast['ceiling_before'] == pytest.approx(4.2)
    assert 85.0 <= situation.utilisation_pct < 95.0
    assert situation.saturated


def test_near_saturation_right_after_a_saturated_sample_is_not(tmp_path):
    # A VM running near its capacity: one sample saturated, the next at
    # 90 %.  No jump from well below: its noise, not a burst.
    values = [3.6] * 46 + [4.4] + [3.6] * 49
    situation = _situation_after(tmp_path, values)
    assert 85.0 <= situation.utilisation_pct < 95.0
    assert not situation.saturated


def test_no_near_saturation_before_a_ceiling_is_known(tmp_path):
    # An hour of history (less than the hold window): no ceiling, so
    # nothing says a jump to 90 % is a burst.
    values = [0.4] * 11 + [3.6] * 85
    situation = _situation_after(tmp_path, values, hours=1.0)
    assert situation.forecast['ceiling_before'] == math.inf
    assert 85.0 <= situation.utilisation_pct < 95.0
    assert not situation.saturated


def test_a_vm_that_often_runs_near_its_capacity_is_not_saturated(
        tmp_path):
    # 3.2 busy vCPUs (80 %) for hours, then quiet, then back to 3.5
    # (88 %): within noise of saturation, but no burst past what the
    # VM has shown (3.2 + 25 %) onto a flavor it never filled, and the
    # sample before was quiet, not saturated.
    values = [3.2] * 30 + [0.4] * 18 + [3.5] * 48
    situation = _situation_after(tmp_path, values)
    assert 85.0 <= situation.utilisation_pct < 95.0
    assert not situation.saturated
    assert 'near_saturation' not in situation.forecast


def test_a_busy_vm_below_noise_of_saturation_is_not_saturated(tmp_path):
    # A burst from idle to 3.2 of 4 vCPUs (80 %): a real 80 %.
    values = [0.4] * 48 + [3.2] * 48
    situation = _situation_after(tmp_path, values)
    assert situation.utilisation_pct < 85.0
    assert not situation.saturated


def test_a_restart_keeps_peaks_older_than_the_history_it_reads(tmp_path):
    # Quiet for 4 hours, 3 busy vCPUs for an hour, then quiet; the
    # watcher reads one hour of history.  It saw the burst, and keeps it
    # in its ceiling; so does a watcher that restarts two hours later,
    # though the burst has left the history it reads.
    values = [0.5] * 48 + [3.0] * 12 + [0.5] * 36

    def ceiling_after(path, restart):
        assembled, driver = _watcher(path, values, hours=4.0,
                                     history_window=3600.0,
                                     ceiling_window=3600.0)
        try:
            watcher_support.run(assembled, driver, 36)
            if restart:
                # A new watcher over the same cloud and history.
                assembled = watcher_support.build(
                    assembled.watcher.conf, driver, assembled.watcher.history)
            watcher_support.run(assembled, driver, 1)
            return _ceiling(assembled, driver), dict(
                assembled.watcher._ceilings)
        finally:
            assembled.close()

    kept = ceiling_after(tmp_path / 'kept', restart=False)
    assert kept[0] == pytest.approx(3.15, rel=1e-3)
    assert ceiling_after(tmp_path / 'restarted', restart=True) == kept
