"""The safety limits between a policy's decision and an act."""

from shadow_service.watcher import guard
from shadow_service.watcher.policies import base

UP = base.Decision('resize_up', 'more')
DOWN = base.Decision('resize_down', 'less')


def _guard(**limits):
    settings = dict(immunity_window=0.0, cooldown=0.0, hysteresis_runs=1,
                    max_actions_per_hour=100, max_concurrent_actions=100,
                    cycle_window=0.0, max_reversals=10)
    settings.update(limits)
    return guard.Guard(guard.Limits(**settings))


def _take(g, decision, at, instance='vm', **hosts):
    g.record(guard.Taken(instance, decision.action, at,
                         decision.direction, **hosts))


def test_nothing_to_do_is_always_allowed():
    assert _guard().check('vm', base.Decision('none', 'fine'), 0) is None


def test_the_immunity_window_holds_every_action_after_one():
    g = _guard(immunity_window=600)
    _take(g, UP, 1000)
    assert g.check('vm', UP, 1300).startswith('immunity window')
    assert g.check('other', UP, 1300) is None
    assert g.check('vm', UP, 1600) is None


def test_the_cooldown_delays_shrinks_but_never_growths():
    g = _guard(cooldown=1800)
    _take(g, UP, 0)
    assert g.check('vm', DOWN, 900).startswith('cooldown')
    assert g.check('vm', UP, 900) is None
    assert g.check('vm', DOWN, 1800) is None


def test_hysteresis_wants_a_shrink_proposed_several_runs_in_a_row():
    g = _guard(hysteresis_runs=3)
    assert g.check('vm', DOWN, 0).startswith('hysteresis: shrink '
                                             'proposed 1 of 3')
    assert g.check('vm', DOWN, 300).startswith('hysteresis')
    assert g.check('vm', DOWN, 600) is None
    # A run that proposes something else starts the count again.
    g.check('vm', base.Decision('none', 'fine'), 900)
    assert g.check('vm', DOWN, 1200).startswith('hysteresis')


def test_the_rate_limit_caps_actions_per_hour_over_all_vms():
    g = _guard(max_actions_per_hour=2)
    _take(g, UP, 0, instance='a')
    _take(g, UP, 100, instance='b')
    assert g.check('c', UP, 200).startswith('rate limit: 2 actions')
    assert g.check('c', UP, 3601) is None


def test_the_rate_limit_caps_actions_under_way():
    g = _guard(max_concurrent_actions=1)
    g.in_flight.add('a')
    assert g.check('b', UP, 0).startswith('rate limit: 1 actions under')
    assert g.check('a', UP, 0).startswith('an action on this VM')


def test_the_cycle_breaker_stops_a_vm_going_back_to_a_host_it_left():
    g = _guard(cycle_window=3600)
    move = base.Decision('live_migrate', 'steal', host='host-b')
    _take(g, move, 0, source_host='host-a', target_host='host-b')
    back = base.Decision('live_migrate', 'steal', host='host-a')
    assert g.check('vm', back, 600).startswith(
        'cycle breaker: vm left host-a')
    assert g.check('vm', base.Decision('live_migrate', 'x',
                                       host='host-c'), 600) is None
    assert g.check('vm', back, 3700) is None


def test_the_cycle_breaker_stops_a_vm_sent_up_and_down_again():
    g = _guard(cycle_window=6 * 3600, max_reversals=2)
    _take(g, UP, 0)
    _take(g, DOWN, 3600)
    _take(g, UP, 7200)
    assert g.check('vm', DOWN, 9000).startswith('cycle breaker')
    assert g.check('vm', UP, 9000) is None


def test_max_reversals_refuses_the_shrink_that_would_be_that_many():
    # As [watcher] max_reversals' help says: with 2, a shrink after a
    # growth is the first change of direction and is allowed; a shrink
    # after a shrink and a growth would be the second and is refused.
    g = _guard(cycle_window=6 * 3600, max_reversals=2)
    _take(g, UP, 0)
    assert g.check('vm', DOWN, 600) is None
    g = _guard(cycle_window=6 * 3600, max_reversals=2)
    _take(g, DOWN, 0)
    _take(g, UP, 600)
    assert g.check('vm', DOWN, 1200) == (
        'cycle breaker: this shrink would be reversal 2 within 21600 s')
    # With 1, a VM grown within the window is not shrunk; growths never
    # wait for the cycle breaker.
    g = _guard(cycle_window=6 * 3600, max_reversals=1)
    _take(g, UP, 0)
    assert g.check('vm', DOWN, 600).startswith('cycle breaker')
    _take(g, DOWN, 1200)
    _take(g, UP, 1800)
    _take(g, DOWN, 2400)
    assert g.check('vm', UP, 3000) is None


def test_restore_replays_actions_a_previous_leader_took():
    g = _guard(immunity_window=600)
    g.restore([guard.Taken('vm', 'resize_up', 1000, 1)])
    assert g.last('vm').action == 'resize_up'
    assert g.check('vm', UP, 1200).startswith('immunity window')


def test_a_growth_soon_after_a_shrink_is_counted_as_a_flap():
    g = _guard(cooldown=1800)
    _take(g, DOWN, 0)
    assert g.is_flap('vm', UP.direction, 900)
    assert not g.is_flap('vm', UP.direction, 1800)
    assert not g.is_flap('vm', DOWN.direction, 900)     # same direction
    assert not g.is_flap('other', UP.direction, 900)
    assert not g.is_flap('vm', 0, 900)                  # a migration


def test_a_vm_that_flapped_shrinks_after_a_longer_cooldown():
    g = _guard(cooldown=1800, hysteresis_runs=1, cycle_window=21600)
    _take(g, DOWN, 0)
    _take(g, UP, 600)                       # undone within the cooldown
    assert g.check('vm', DOWN, 2400).startswith('cooldown')
    assert g.check('vm', DOWN, 600 + 2 * 1800 - 1).startswith('cooldown')
    g.check('vm', base.Decision('none', 'fine'), 4000)   # runs restart
    assert g.check('vm', DOWN, 600 + 2 * 1800).startswith('hysteresis')
    assert g.check('vm', DOWN, 600 + 2 * 1800 + 300) is None
    # The same history with no flap: one cooldown is enough.
    calm = _guard(cooldown=1800, hysteresis_runs=1, cycle_window=21600)
    _take(calm, DOWN, 0)
    _take(calm, UP, 1800)
    assert calm.check('vm', DOWN, 3600) is None


def test_a_failed_start_holds_the_vm_and_counts_toward_the_rate_limit():
    # An attempt the cloud refused: not asked again within the immunity
    # window, and counted in the hour's actions.
    g = _guard(immunity_window=600, max_actions_per_hour=2)
    g.record(guard.Taken('vm', 'resize_up', 1000, 1, failed=True))
    assert g.check('vm', UP, 1300) == (
        'immunity window: last action (resize_up, its start failed) '
        '300 s ago, < 600 s')
    assert g.check('vm', UP, 1600) is None
    _take(g, UP, 1700, instance='other')
    assert g.check('third', UP, 1800).startswith('rate limit: 2 actions')


def test_a_failed_start_is_no_scaling_for_the_cooldown_or_the_cycles():
    # The VM did not change: a shrink refused by the cloud neither starts
    # a cooldown, nor makes the next growth a flap, nor counts as a
    # reversal; a migration that did not start left no host behind.
    g = _guard(cooldown=1800, cycle_window=7200, max_reversals=2)
    _take(g, UP, 0)
    g.record(guard.Taken('vm', 'resize_down', 2000, -1, failed=True))
    assert not g.is_flap('vm', 1, 2100)
    g.record(guard.Taken('vm', 'resize_up', 2100, 1, failed=True))
    g.record(guard.Taken('vm', 'live_migrate', 2150, 0,
                         source_host='h1', failed=True))
    assert g.check('vm', base.Decision('live_migrate', 'steal',
                                       host='h1'), 2200) is None
    assert g.check('vm', DOWN, 2200) is None
    g = _guard(cooldown=1800)
    g.record(guard.Taken('vm', 'resize_up', 0, 1, failed=True))
    assert g.check('vm', DOWN, 100) is None


def test_an_action_that_failed_after_it_started_is_an_attempt():
    # A shrink that started, then went to ERROR (or timed out): as a
    # failed start, it holds the VM for the immunity window and counts
    # toward the rate limit, but changed nothing: no cooldown, no flap,
    # no reversal.  Before: it counted as the shrink it set out to be.
    g = _guard(immunity_window=600, cooldown=1800, cycle_window=7200,
               max_reversals=2)
    _take(g, UP, 0)
    _take(g, DOWN, 2000)
    assert g.failed('vm', 2000).failed
    assert g.failed('vm', 1234) is None
    assert g.check('vm', UP, 2300) == (
        'immunity window: last action (resize_down, it failed) 300 s ago, '
        '< 600 s')
    assert not g.is_flap('vm', 1, 2700)
    _take(g, UP, 2700)
    assert g.check('vm', DOWN, 4500) is None
    rate = _guard(max_actions_per_hour=1)
    _take(rate, DOWN, 0)
    rate.failed('vm', 0)
    assert rate.check('other', UP, 100).startswith('rate limit: 1 actions')
