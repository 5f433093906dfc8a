"""A VM's (or a group's) steep rise within one step: the start of a burst.

A burst that begins within a step reads only part of its rise in the
step's mean; the ``forecast`` policy's ``burst_rise`` makes the watcher
take such a VM or group as saturated, scaling out and resizing.
"""

import pytest

from tests import watcher_support

STEP = watcher_support.STEP_S
HORIZONTAL = {'nova_shadow_scaling': 'horizontal'}


def _assembled(tmp_path, values, metadata=None, policy='forecast',
               **forecast_opts):
    tmp_path.mkdir(parents=True, exist_ok=True)
    conf = watcher_support.make_conf(
        tmp_path, watcher={'policy': policy, 'max_count': 12},
        watcher_policy_forecast=forecast_opts)
    driver, history = watcher_support.twin(conf)
    watcher_support.place(driver, 'vm-1', values, flavor='medium',
                          metadata=metadata, group='group-1')
    driver.fast_forward(4.0 * 3600.0)
    return watcher_support.build(conf, driver, history), driver


def _situation(tmp_path, values, **kwargs):
    assembled, driver = _assembled(tmp_path, values, **kwargs)
    try:
        return assembled.watcher.situation(driver.get_instance('vm-1'),
                                           driver.now())
    finally:
        assembled.close()


# One member of 4 vCPUs at 0.2 busy vCPU (5 %) for four hours, then 2.4
# (60 %): a step whose mean rose by more than half the group's capacity.
BURST = [0.2] * 48 + [2.4] * 48


def test_a_steep_rise_of_a_group_is_taken_as_saturation(tmp_path):
    situation = _situation(tmp_path, BURST, metadata=HORIZONTAL)
    assert situation.utilisation_pct == pytest.approx(60.0, abs=1.0)
    assert situation.saturated
    assert situation.forecast['burst_rise'] == pytest.approx(2.2, abs=0.1)
    # Sized, and held, as a saturated group: eight times its vCPUs.
    assert situation.forecast['hidden_floor'] == pytest.approx(32.0)
    assert situation.forecast['ceiling'] == pytest.approx(32.0)


def test_the_first_scale_out_of_a_burst_holds_it(tmp_path):
    assembled, driver = _assembled(tmp_path, BURST, metadata=HORIZONTAL)
    try:
        steps = watcher_support.run(assembled, driver, 1)
    finally:
        assembled.close()
    decision = [s.decision for s in steps if s.instance_id == 'vm-1'][0]
    # Not the two members the 2.4 vCPUs read call for.
    assert (decision.action, decision.target_count) == ('scale_out', 8)


def test_on_by_default_at_half_the_capacity():
    from shadow_service.watcher.policies import forecast
    assert forecast.ForecastPolicy().burst_rise() == 0.5


def test_a_smaller_rise_or_the_option_off_is_not_a_burst(tmp_path):
    # A rise by 40 % of the capacity (5 % to 45 %).
    smaller = [0.2] * 48 + [1.8] * 48
    assert not _situation(tmp_path / 'smaller', smaller,
                          metadata=HORIZONTAL).saturated
    off = _situation(tmp_path / 'off', BURST, metadata=HORIZONTAL,
                     burst_rise=0.0)
    assert not off.saturated
    assert 'burst_rise' not in off.forecast


# A VM of 4 vCPUs that filled them for half an hour an hour before,
# idled at 0.2 busy vCPU, then rose within one step to 2.4 (60 %).
FILLED_THEN_BURST = [0.2] * 24 + [4.0] * 6 + [0.2] * 18 + [2.4] * 48


def test_a_steep_rise_of_a_resized_vm_that_filled_it_is_saturation(
        tmp_path):
    situation = _situation(tmp_path, FILLED_THEN_BURST)
    assert situation.mode == 'vertical'
    assert situation.utilisation_pct == pytest.approx(60.0, abs=1.0)
    assert situation.saturated
    assert situation.forecast['burst_rise'] == pytest.approx(2.2, abs=0.1)
    assert situation.forecast['hidden_floor'] == pytest.approx(32.0)


def test_the_first_resize_of_a_burst_goes_past_what_the_step_read(
        tmp_path):
    assembled, driver = _assembled(tmp_path, FILLED_THEN_BURST)
    try:
        steps = watcher_support.run(assembled, driver, 1)
    finally:
        assembled.close()
    decision = [s.decision for s in steps if s.instance_id == 'vm-1'][0]
    # 2.4 busy vCPUs fit the 4 vCPUs it has: read as it is, no resize.
    # Taken for saturated, it is sized for eight times its vCPUs, up
    # the ladder to its top (16 vCPUs, rung 3).
    assert (decision.action, decision.target_rung) == ('resize_up', 3)


def test_a_resized_vm_that_never_filled_its_flavor_is_not_a_burst(
        tmp_path):
    # The same rise on a VM that never used its 4 vCPUs: a step up
    # within its flavor, not a burst that hides demand (taken for one,
    # it would be rebooted to four times its size).
    situation = _situation(tmp_path, BURST)
    assert not situation.saturated
    assert 'burst_rise' not in situation.forecast


def test_the_rl_policy_reads_a_burst_as_its_forecast_rule_does(tmp_path):
    # Its base size is its forecast rule's, burst reading included,
    # scaling out and resizing; without the rule's option, neither reads
    # one.
    for name, metadata in (('out', HORIZONTAL), ('resize', None)):
        for burst_rise in (0.5, 0.0):
            seen = [_situation(tmp_path / ('%s-%s-%s' % (name, policy,
                                                         burst_rise)),
                               BURST, metadata=metadata, policy=policy,
                               burst_rise=burst_rise)
                    for policy in ('forecast', 'rl')]
            assert seen[0].saturated == seen[1].saturated
            assert seen[0].forecast.get('burst_rise') == \
                seen[1].forecast.get('burst_rise')
            if name == 'out':
                assert seen[1].saturated == (burst_rise > 0)
