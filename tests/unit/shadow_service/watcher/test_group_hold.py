"""A horizontally scaled group's hold window (``group_hold_window``)."""

import pytest

from tests import watcher_support

STEP = watcher_support.STEP_S
HORIZONTAL = {'nova_shadow_scaling': 'horizontal'}


def _forecasts(tmp_path, values, **watcher_opts):
    """``{instance: forecast}`` at the end of ``values`` for a resized VM
    and a scaled group that show the same demand."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    conf = watcher_support.make_conf(tmp_path, watcher=watcher_opts)
    driver, history = watcher_support.twin(conf)
    watcher_support.place(driver, 'resized', values, flavor='medium')
    watcher_support.place(driver, 'group', values, flavor='medium',
                          host='host-2', metadata=HORIZONTAL, group='g')
    driver.fast_forward(len(values) * STEP - STEP / 2)
    assembled = watcher_support.build(conf, driver, history)
    try:
        watcher = assembled.watcher
        # A run at the peak (its growth bound is held), then the end.
        back = (len(values) - values.index(max(values)) - 1) * STEP
        found = {}
        for name in ('resized', 'group'):
            instance = driver.get_instance(name)
            watcher.situation(instance, driver.now() - back)
        for name in ('resized', 'group'):
            instance = driver.get_instance(name)
            found[name] = watcher.situation(instance,
                                            driver.now()).forecast
        return found
    finally:
        assembled.close()


def test_a_group_holds_its_peak_for_the_group_hold_window_only(tmp_path):
    # 1 busy vCPU, one step at 3 an hour before the end: the resized VM
    # holds it for the three-hour hold window, the group for 2400 s.
    values = [1.0] * 48
    values[36] = 3.0
    found = _forecasts(tmp_path, values)
    assert found['resized']['recent_peak'] == pytest.approx(3.0)
    assert found['group']['recent_peak'] == pytest.approx(1.0)
    assert found['resized']['recent_bound'] >= 3.0
    assert found['group']['recent_bound'] < 3.0
    # Within 2400 s the group holds it too.
    found = _forecasts(tmp_path / 'near', values[:42])
    assert found['group']['recent_peak'] == pytest.approx(3.0)


def test_the_group_hold_is_at_most_the_hold_window(tmp_path):
    values = [1.0] * 48
    values[36] = 3.0
    found = _forecasts(tmp_path, values, hold_window=1800.0,
                       group_hold_window=7200.0)
    for name in ('resized', 'group'):
        assert found[name]['recent_peak'] == pytest.approx(1.0), name
