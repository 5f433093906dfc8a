"""A demand that recurs at the same time of day is met ahead of it."""

import pytest

from shadow_service.watcher import ladder
from shadow_service.watcher.policies import base
from shadow_service.watcher.policies import forecast
from shadow_service.watcher.policies import rl
from tests import watcher_support

STEP = watcher_support.STEP_S
DAY_STEPS = int(86400 / STEP)
#: The burst starts at 10:00 and lasts half an hour.
BURST = slice(120, 126)
LADDER = ladder.parse(['s:2:2048', 'm:4:4096', 'l:8:8192', 'xl:16:16384'])


def _days(bursts, idle=0.5, level=12.0):
    """One value per step over ``len(bursts)`` days: ``idle`` busy vCPUs,
    and ``level`` in the burst's half hour on the days ``bursts`` says."""
    values = []
    for burst in bursts:
        day = [idle] * DAY_STEPS
        if burst:
            day[BURST] = [level] * (BURST.stop - BURST.start)
        values.extend(day)
    return values


def _watcher(tmp_path, values, at_s, **watcher_opts):
    """A watcher over one medium (4 vCPUs) VM whose busy vCPUs follow
    ``values``, ``at_s`` seconds after it started."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    conf = watcher_support.make_conf(tmp_path, watcher=watcher_opts)
    driver, history = watcher_support.twin(conf)
    watcher_support.place(driver, 'vm-1', values, flavor='medium')
    driver.fast_forward(at_s)
    return watcher_support.build(conf, driver, history), driver


def _situation(assembled, driver):
    return assembled.watcher.situation(driver.get_instance('vm-1'),
                                       driver.now())


#: 09:40 on the fifth day: 20 minutes before the usual burst, more than
#: the lead of a resize (300 s interval + 240 s resize).
BEFORE = 4 * 86400.0 + 9 * 3600.0 + 40 * 60.0
RECURRING = dict(recurring_days=4, recurring_min_days=3,
                 recurring_window=1800.0)


def test_a_burst_on_k_of_n_days_grows_the_vm_ahead(tmp_path):
    # A burst at 10:00 on three of the last four days (not yesterday),
    # to 12 busy vCPUs: the 4-vCPU VM was saturated, so the level it
    # reached is taken as 4 x saturation_factor (8) = 32.
    values = _days([True, True, False, True, False, True])
    assembled, driver = _watcher(tmp_path, values, BEFORE, **RECURRING)
    try:
        situation = _situation(assembled, driver)
        assert situation.forecast['recurring_peak'] == pytest.approx(32.0)
        assert situation.forecast['recurring_down'] == pytest.approx(32.0)
        assert not situation.saturated
        decision = assembled.watcher.policy.decide(situation)
        # xlarge (16 vCPUs), the top of the ladder
        assert (decision.action, decision.target_rung) == ('resize_up', 3)
    finally:
        assembled.close()


def test_no_growth_when_too_few_days_agree(tmp_path):
    # Two bursts in the last four days: fewer than recurring_min_days.
    _assert_no_growth(tmp_path / 'two',
                      _days([True, False, False, True, False, True]),
                      BEFORE, 0.5, **RECURRING)
    # Off (the default): no recurring peak at all.
    _assert_no_growth(tmp_path / 'off',
                      _days([True, True, True, True, True, True]),
                      BEFORE, 0.0)


def _assert_no_growth(path, values, at, recurring_peak, **options):
    """The watcher at ``at`` over ``values`` finds ``recurring_peak`` and
    does not grow the VM."""
    assembled, driver = _watcher(path, values, at, **options)
    try:
        situation = _situation(assembled, driver)
        assert situation.forecast['recurring_peak'] == pytest.approx(
            recurring_peak)
        assert assembled.watcher.policy.decide(situation).action != \
            'resize_up'
    finally:
        assembled.close()


def test_no_growth_long_before_the_usual_hour(tmp_path):
    # 08:00: the window (07:30 to 08:39) holds no burst on any day.
    _assert_no_growth(tmp_path, _days([True, True, True, True, True, True]),
                      4 * 86400.0 + 8 * 3600.0, 0.5, **RECURRING)


def test_a_vm_running_near_its_capacity_is_not_taken_for_a_burst(
        tmp_path):
    # 3.9 of 4 vCPUs all day: every sample reads saturated, but none
    # came from a quiet VM, so no demand hides behind them.
    values = [3.9] * (5 * DAY_STEPS)
    assembled, driver = _watcher(tmp_path, values, BEFORE, **RECURRING)
    try:
        situation = _situation(assembled, driver)
        assert situation.forecast['recurring_peak'] == pytest.approx(3.9)
    finally:
        assembled.close()


def test_grown_ahead_of_the_burst_and_never_flapping(tmp_path):
    values = _days([True] * 6)
    start = 4 * 86400.0 + 8 * 3600.0
    assembled, driver = _watcher(tmp_path, values, start, dry_run=False,
                                 **RECURRING)
    try:
        burst_at = driver.now() + 2 * 3600.0
        steps = watcher_support.run(assembled, driver, runs=60)
        started = [s.record for s in steps if s.outcome == 'started']
        ups = [r for r in started if r['action'] == 'resize_up']
        # The first growth comes at least the lead time before 10:00
        # (300 s interval + 240 s resize).
        assert ups and ups[0]['at'] <= burst_at - 540.0
        assert ups[0]['inputs']['forecast']['recurring_peak'] == \
            pytest.approx(32.0)
        assert ups[0]['decision']['target_rung'] == 3
        assert assembled.watcher.counters['flaps'] == 0
        # Still held through the burst: no shrink before it has passed.
        downs = [r for r in started if r['action'] == 'resize_down']
        assert all(r['at'] > burst_at + STEP * 6 for r in downs)
    finally:
        assembled.close()


def _policy_situation(rung=3, peak=1.0, ceiling=2.0, recurring=0.0,
                      recurring_down=0.0, recent=0.0):
    flavor = LADDER.rungs[rung].to_flavor()
    return base.Situation(
        instance_id='vm', profile='batch-cpu', now=1000.0, step_s=300.0,
        flavor=flavor, ladder=LADDER, rung=rung,
        lead_s={'vertical': 600.0, 'migrate': 420.0, 'horizontal': 420.0},
        demand=[1.0] * 12, utilisation_pct=10.0, saturated=False,
        forecast={'peak': peak, 'raw_peak': peak, 'peak_down': peak,
                  'recent_peak': recent, 'seasonal_peak': 0.0,
                  'ceiling': ceiling, 'recurring_peak': recurring,
                  'recurring_down': recurring_down})


def test_the_policy_grows_above_the_ceiling_and_holds_until_the_hour():
    policy = forecast.ForecastPolicy()
    # The ceiling (2 vCPUs) would cap the growth; the recurring peak
    # does not obey it.
    up = policy.decide(_policy_situation(rung=0, recurring=7.0,
                                         recurring_down=7.0))
    assert (up.action, up.target_rung) == ('resize_up', 2)
    # Idle now, but the recurring peak within the shrink horizon holds
    # the VM on the rung that meets it...
    held = policy.decide(_policy_situation(rung=2, recurring=0.0,
                                           recurring_down=7.0))
    assert held.action == 'none'
    # ... and once it has passed, the usual shrink rules apply.
    down = policy.decide(_policy_situation(rung=2))
    assert (down.action, down.target_rung) == ('resize_down', 0)
    # It never shrinks a VM on its own: a recurring peak below the
    # flavor changes nothing.
    assert policy.decide(_policy_situation(
        rung=3, peak=12.0, ceiling=20.0, recurring=3.0,
        recurring_down=3.0)).action == 'none'


def test_rl_grows_for_the_recurring_peak_above_the_ceiling_and_holds():
    # rl sizes from its own bounds; they meet the recurring peak as the
    # forecast policy's do (a table trained with the look-back learns its
    # offsets on them), also above the demand ceiling.
    policy = rl.RLPolicy(model={'version': rl.MODEL_VERSION, 'values': {},
                                'counts': {}})
    up = policy.decide(_policy_situation(rung=0, recurring=7.0,
                                         recurring_down=7.0))
    assert (up.action, up.target_rung) == ('resize_up', 2), up.reason
    held = policy.decide(_policy_situation(rung=2, recurring=0.0,
                                           recurring_down=7.0))
    assert held.action == 'none', held.reason
    down = policy.decide(_policy_situation(rung=2))
    assert (down.action, down.target_rung) == ('resize_down', 0)
    # Without a recurring peak, nothing above the ceiling.
    assert policy.decide(_policy_situation(rung=0)).action == 'none'


def test_without_the_look_back_only_yesterdays_censored_peak_is_met(
        tmp_path):
    # Yesterday's window shows the VM saturated at its 4 vCPUs: the
    # one-day look at yesterday grows it a rung at most before the
    # burst, where the look-back over several days grows it for the
    # demand that hid behind those samples (test above).
    values = _days([True] * 6)
    start = 4 * 86400.0 + 8 * 3600.0
    assembled, driver = _watcher(tmp_path, values, start, dry_run=False)
    try:
        burst_at = driver.now() + 2 * 3600.0
        steps = watcher_support.run(assembled, driver, runs=30)
        ups = [s.record for s in steps if s.outcome == 'started'
               and s.record['action'] == 'resize_up'
               and s.record['at'] < burst_at]
        assert all(r['decision']['target_rung'] <= 2 for r in ups)
    finally:
        assembled.close()
