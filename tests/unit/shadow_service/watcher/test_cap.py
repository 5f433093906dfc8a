"""A resized VM's demand cap (``[watcher] cap_steps``).

A VM that fills its flavor reads saturated: its demand may be hidden
above it, so the ``forecast`` policy grows it by its saturation factor.
When the larger flavor then shows that the demand stays at the vCPUs of
the one it filled (a workload of so many threads), that flavor is the
most the VM can use: it goes back to it and is not grown again while it
runs there at its capacity.
"""

import pytest

from tests import watcher_support

HOUR = 3600.0


def _assembled(tmp_path, values, flavor='medium', **watcher_opts):
    tmp_path.mkdir(parents=True, exist_ok=True)
    opts = {'policy': 'forecast', 'dry_run': False}
    opts.update(watcher_opts)
    conf = watcher_support.make_conf(tmp_path, watcher=opts)
    driver, history = watcher_support.twin(conf)
    watcher_support.place(driver, 'vm-1', values, flavor=flavor)
    driver.fast_forward(4.0 * HOUR)
    return watcher_support.build(conf, driver, history), driver


def _resizes(steps):
    return [(s.decision.action, s.decision.target_rung) for s in steps
            if s.instance_id == 'vm-1'
            and s.decision.action in ('resize_up', 'resize_down')
            and s.outcome == 'started']


def _replay(tmp_path, values, hours, **watcher_opts):
    assembled, driver = _assembled(tmp_path, values, **watcher_opts)
    try:
        steps = watcher_support.run(assembled, driver, int(hours * 12))
        situation = assembled.watcher.situation(
            driver.get_instance('vm-1'), driver.now())
        vcpus = driver.get_instance('vm-1').flavor['vcpus']
    finally:
        assembled.close()
    return _resizes(steps), situation, vcpus


# Four busy vCPUs all the time: a 4-vCPU workload, which fills the
# medium flavor (4 vCPUs) and no more on any larger one.
CAPPED = [4.0] * (24 * 12)


def test_a_vm_whose_demand_stops_at_the_flavor_it_filled_goes_back_to_it(
        tmp_path):
    resizes, situation, vcpus = _replay(tmp_path, CAPPED, 4.0)
    # Saturated on medium: grown to the top rung (8 times 4 vCPUs); there
    # its demand stays at 4, so it goes back to medium once, and stays.
    assert resizes == [('resize_up', 3), ('resize_down', 1)]
    assert vcpus == 4
    assert situation.forecast['cap'] == pytest.approx(4.0)
    # At its capacity (100 %), read as at its cap, not as hiding demand.
    assert situation.utilisation_pct == pytest.approx(100.0, abs=1.0)
    assert not situation.saturated
    assert situation.forecast['at_cap'] == pytest.approx(100.0, abs=1.0)


def test_without_a_cap_the_vm_keeps_a_margin_above_its_demand(tmp_path):
    resizes, situation, vcpus = _replay(tmp_path, CAPPED, 4.0, cap_steps=0)
    # Its 4 busy vCPUs and the down margin above them: large, twice
    # what it uses.
    assert resizes == [('resize_up', 3), ('resize_down', 2)]
    assert vcpus == 8
    assert 'cap' not in situation.forecast


def test_a_demand_past_the_flavor_it_filled_is_no_cap(tmp_path):
    # Six busy vCPUs: they fill medium and show past it on a larger one.
    resizes, situation, vcpus = _replay(tmp_path, [6.0] * (24 * 12), 4.0)
    assert 'cap' not in situation.forecast
    assert resizes[0] == ('resize_up', 3)
    assert vcpus > 4


def test_the_cap_is_forgotten_after_the_ceiling_window(tmp_path):
    # Kept while it sits on medium (no larger flavor shows its demand
    # then) for the ceiling window after the samples last showed it;
    # then a saturated sample grows it again, which shows it again.
    resizes, situation, vcpus = _replay(
        tmp_path, CAPPED, 12.0, ceiling_window=3.0 * HOUR)
    assert resizes[:2] == [('resize_up', 3), ('resize_down', 1)]
    assert resizes[2] == ('resize_up', 3)


def test_a_horizontally_scaled_group_has_no_cap(tmp_path):
    assembled, driver = _assembled(
        tmp_path, CAPPED, flavor='small')
    try:
        instance = driver.get_instance('vm-1')
        instance.metadata['nova_shadow_scaling'] = 'horizontal'
        situation = assembled.watcher.situation(instance, driver.now())
    finally:
        assembled.close()
    assert 'cap' not in situation.forecast


def test_a_vm_grown_at_its_first_saturated_sample_has_shown_no_cap(tmp_path):
    # Idle on medium, then 4 busy vCPUs: grown at the first sample that
    # fills medium, it never sat there, so a larger flavor showing 4
    # busy vCPUs says nothing of a cap (a burst may rise past it).
    values = [0.2] * 48 + [4.0] * (24 * 12)
    resizes, situation, vcpus = _replay(tmp_path, values, 3.0)
    assert 'cap' not in situation.forecast
    assert resizes[0] == ('resize_up', 3)
    assert vcpus > 4


def test_the_loop_reads_yesterdays_demand_over_the_hold_window(tmp_path):
    # Busy (3 vCPUs) for the first day, idle (0.2) since.
    values = [3.0] * (24 * 12) + [0.2] * (24 * 12)
    tmp_path.mkdir(parents=True, exist_ok=True)
    conf = watcher_support.make_conf(tmp_path, watcher={'policy':
                                                        'forecast'})
    driver, history = watcher_support.twin(conf)
    watcher_support.place(driver, 'vm-1', values, flavor='medium')
    driver.fast_forward(30.0 * HOUR)
    assembled = watcher_support.build(conf, driver, history)
    try:
        situation = assembled.watcher.situation(
            driver.get_instance('vm-1'), driver.now())
    finally:
        assembled.close()
    assert situation.forecast['seasonal_recent'] == pytest.approx(3.0)
    assert situation.forecast['recent_peak'] == pytest.approx(0.2)


def test_a_restarted_watcher_keeps_the_cap(tmp_path):
    # Back on medium with its cap for longer than the history it reads
    # (two hours here), no larger flavor is left in that history: a
    # watcher that restarts there takes the cap back from the records,
    # and does not grow the VM at its capacity again.
    def after(path, restart):
        assembled, driver = _assembled(path, CAPPED,
                                       history_window=2.0 * HOUR)
        try:
            watcher_support.run(assembled, driver, 48)
            if restart:
                # A new watcher over the same cloud and history.
                assembled = watcher_support.build(
                    assembled.watcher.conf, driver,
                    assembled.watcher.history)
            steps = watcher_support.run(assembled, driver, 2)
            situation = assembled.watcher.situation(
                driver.get_instance('vm-1'), driver.now())
            return _resizes(steps), situation.forecast.get('cap')
        finally:
            assembled.close()

    kept = after(tmp_path / 'kept', restart=False)
    assert kept == ([], pytest.approx(4.0))
    assert after(tmp_path / 'restarted', restart=True) == kept
