"""The proactive scaling benchmark's breakdown of violation minutes by
cause (``benchmarks/proactive_scaling.py``, ``violation_causes``)."""

import logging
import pathlib
import types

import numpy as np
import pytest

from tests.fixtures import benchmarks

REPO = pathlib.Path(__file__).resolve().parents[4]


def _benchmark():
    return benchmarks.load('proactive_scaling')


OPTS = types.SimpleNamespace(interval=300.0, resize_duration=300.0,
                             boot_duration=45.0, immunity_window=600.0)


def _up(at, outcome):
    return {'instance': 'vm', 'action': 'resize_up', 'at': at,
            'outcome': outcome}


def test_each_violated_minute_gets_the_first_cause_that_applies():
    bench = _benchmark()
    times = np.arange(0.0, 3600.0, 60.0)           # one hour, by minute
    capacity = np.full(len(times), 4.0)
    short = np.zeros(len(times))
    violated = np.zeros(len(times), bool)

    def violate(start_min, end_min, cap=4.0, gap=1.0):
        span = slice(start_min, end_min)
        violated[span] = True
        capacity[span] = cap
        short[span] = gap

    violate(2, 5)                      # nothing asked: missed
    violate(10, 11, cap=0.0)           # down for a reboot
    violate(12, 14, gap=0.0)           # steal only
    violate(20, 23, cap=48.0)          # at the top of the ladder
    violate(30, 33)                    # a growth under way (at 29 min)
    violate(35, 38)                    # it took effect, not enough
    violate(50, 52)                    # a growth refused (at 49 min)
    found = [_up(29 * 60.0, 'started'), _up(49 * 60.0, 'suppressed')]
    causes = bench.violation_causes(times, violated, capacity, short, 48,
                                    found, OPTS)
    assert causes == {'downtime': 1.0, 'steal': 2.0, 'top': 3.0,
                      'refused': 2.0, 'under_way': 3.0, 'undersized': 3.0,
                      'failed': 0.0, 'missed': 3.0}
    assert sum(causes.values()) == violated.sum()
    assert tuple(causes) == bench.CAUSES


def test_a_shrink_is_no_growth():
    bench = _benchmark()
    times = np.arange(0.0, 600.0, 60.0)
    violated = np.ones(len(times), bool)
    capacity = np.full(len(times), 2.0)
    short = np.ones(len(times))
    found = [{'instance': 'vm', 'action': 'resize_down', 'at': 0.0,
              'outcome': 'started'}]
    causes = bench.violation_causes(times, violated, capacity, short, 48,
                                    found, OPTS)
    assert causes['missed'] == 10.0


def test_the_warm_up_must_fit_before_the_scored_run(tmp_path, capsys):
    bench = _benchmark()
    common = ['--traces', str(tmp_path), '--out', str(tmp_path / 'o.json')]
    with pytest.raises(SystemExit) as raised:
        bench.main(common + ['--warmup-days', '8'])
    assert raised.value.code == 2
    assert '--warmup-days' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(common + ['--warmup-days', '3', '--start-day', '2'])
    # Within the days before the scored run it goes on to the traces
    # (none here).
    with pytest.raises(SystemExit) as raised:
        bench.main(common + ['--warmup-days', '7'])
    assert 'only 0 VMs qualify' in capsys.readouterr().err


def test_main_leaves_the_callers_logging_alone(tmp_path, capsys):
    # Only the script sets up logging; main() called from elsewhere (these
    # tests) must not quieten the service's loggers for later tests.
    bench = _benchmark()
    names = ('shadow_service', 'stevedore', '')
    before = {n: (logging.getLogger(n).level,
                  list(logging.getLogger(n).handlers)) for n in names}
    with pytest.raises(SystemExit):
        bench.main(['--traces', str(tmp_path),
                    '--out', str(tmp_path / 'o.json')])
    after = {n: (logging.getLogger(n).level,
                 list(logging.getLogger(n).handlers)) for n in names}
    assert after == before


def test_flaps_are_counted_and_timed_per_vm():
    bench = _benchmark()

    def taken(name, action, at):
        return {'instance': name, 'action': action, 'at': at}

    started = [taken('a', 'scale_out', 0.0), taken('a', 'scale_in', 600.0),
               taken('b', 'scale_in', 0.0), taken('b', 'scale_out', 4000.0),
               taken('a', 'scale_out', 1000.0)]
    assert bench.flap_times(started, 1800.0) == {'a': [600.0, 1000.0]}
    assert bench.count_flaps(started, 1800.0) == 2


def test_hours_at_each_size_add_up_to_the_resource_hours():
    bench = _benchmark()
    held = np.array([2.0] * 30 + [48.0] * 90 + [32.0] * 60)   # minutes
    hours = bench.hours_at_vcpus(held, 1 / 60.0)
    assert hours == {'2': 0.5, '32': 1.0, '48': 1.5}
    assert sum(float(v) * h for v, h in hours.items()) == pytest.approx(
        held.sum() / 60.0)


def test_an_action_that_failed_after_it_started_is_no_scaling_nor_flap():
    bench = _benchmark()
    found = [dict(_up(0.0, 'started'), decision_id='a'),
             {'instance': 'vm', 'action': 'resize_down', 'at': 600.0,
              'outcome': 'started', 'decision_id': 'b'},
             {'instance': 'vm', 'action': 'resize_down', 'at': 900.0,
              'outcome': 'failed', 'decision_id': 'b'},
             dict(_up(1200.0, 'started'), decision_id='c')]
    # The shrink went to ERROR: two scalings, both growths, no flap.
    # Before: three actions, two of them flaps.
    started = bench.scalings(found)
    assert [r['decision_id'] for r in started] == ['a', 'c']
    assert bench.count_flaps(started, 1800.0) == 0


def test_a_growth_that_failed_took_no_effect():
    bench = _benchmark()
    times = np.arange(0.0, 3600.0, 60.0)
    capacity = np.full(len(times), 4.0)
    short = np.ones(len(times))
    violated = np.zeros(len(times), bool)
    violated[30:33] = True              # a growth under way, then failed
    violated[35:38] = True              # after it failed
    violated[50:53] = True              # after one whose start failed
    found = [dict(_up(29 * 60.0, 'started'), decision_id='a'),
             dict(_up(30 * 60.0, 'failed'), decision_id='a'),
             dict(_up(49 * 60.0, 'failed'), decision_id='b')]
    causes = bench.violation_causes(times, violated, capacity, short, 48,
                                    found, OPTS)
    # Under way until it went to ERROR (minute 30), then no growth had
    # taken effect, and the next waited for the immunity window.
    # Before: 3 minutes under way and 3 undersized (as if it had taken
    # effect and was not enough), and the failed start's 3 missed (as if
    # none had been asked for).
    assert causes['under_way'] == 1.0
    assert causes['undersized'] == 0.0
    assert causes['failed'] == 8.0
    assert causes['missed'] == 0.0
    assert sum(causes.values()) == violated.sum()


def test_a_growth_that_timed_out_was_under_way_for_its_duration_only():
    bench = _benchmark()
    times = np.arange(0.0, 3600.0, 60.0)
    violated = np.ones(len(times), bool)
    found = [dict(_up(0.0, 'started'), decision_id='a'),
             dict(_up(1200.0, 'failed'), decision_id='a')]
    causes = bench.violation_causes(times, violated, np.full(len(times), 4.0),
                                    np.ones(len(times)), 48, found, OPTS)
    # Under way for the 300 s a growth takes; failed from then until a
    # growth asked once it ended (at 20 min) could have taken effect.
    assert (causes['under_way'], causes['failed']) == (5.0, 20.0)
    assert causes['missed'] == 35.0          # minute 0 and from 26 min on
