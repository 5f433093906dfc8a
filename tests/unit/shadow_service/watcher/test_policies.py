"""The scaling policies on hand-made situations."""

import json
import math
import pathlib
import re

import pytest
from oslo_config import cfg

from shadow_service import conf as shadow_conf
from shadow_service import plugins
from shadow_service.watcher import forecast as forecast_mod
from shadow_service.watcher import guard
from shadow_service.watcher import ladder
from shadow_service.watcher.policies import base
from shadow_service.watcher.policies import forecast
from shadow_service.watcher.policies import oracle
from shadow_service.watcher.policies import reactive
from shadow_service.watcher.policies import rl

RESULTS = (pathlib.Path(__file__).resolve().parents[4] / 'benchmarks'
           / 'results')
LADDER = ladder.parse(['s:2:2048', 'm:4:4096', 'l:8:8192', 'xl:16:16384'])
LEAD = {'vertical': 600.0, 'migrate': 420.0, 'horizontal': 420.0}


def _situation(rung=1, util=50.0, peak=2.0, peak_down=None, recent=0.0,
               seasonal=0.0, saturated=False, mode='vertical', size=1,
               foresight=None, breaches=None, demand=None):
    flavor = LADDER.rungs[rung].to_flavor()
    return base.Situation(
        instance_id='vm', profile='batch-cpu', now=1000.0, step_s=300.0,
        flavor=flavor, ladder=LADDER, rung=rung, lead_s=LEAD,
        demand=demand or [1.0] * 12, utilisation_pct=util,
        saturated=saturated,
        forecast={'peak': peak, 'raw_peak': peak,
                  'peak_down': peak if peak_down is None else peak_down,
                  'recent_peak': recent, 'seasonal_peak': seasonal},
        breaches=breaches or {}, mode=mode, group_size=size, min_count=1,
        max_count=4, foresight=foresight)


def test_every_policy_is_a_plugin():
    assert plugins.names(plugins.POLICIES) == ['forecast', 'oracle',
                                               'reactive', 'rl']


def test_reactive_grows_at_the_high_threshold_and_shrinks_at_the_low():
    policy = reactive.ReactivePolicy()
    up = policy.decide(_situation(rung=1, util=85.0))
    assert (up.action, up.target_rung) == ('resize_up', 2)
    assert policy.decide(_situation(rung=1, util=50.0)).action == 'none'
    down = policy.decide(_situation(rung=1, util=20.0))
    assert (down.action, down.target_rung) == ('resize_down', 0)
    assert policy.decide(_situation(rung=0, util=20.0)).action == 'none'
    assert policy.decide(_situation(rung=3, util=99.0)).reason == \
        'top of the ladder'
    assert policy.decide(_situation(util=math.nan)).action == 'none'


def test_reactive_scales_a_group_out_and_in():
    policy = reactive.ReactivePolicy()
    out = policy.decide(_situation(util=90.0, mode='horizontal', size=2))
    assert (out.action, out.target_count) == ('scale_out', 3)
    full = policy.decide(_situation(util=90.0, mode='horizontal', size=4))
    assert full.action == 'none'
    assert policy.decide(_situation(util=10.0, mode='horizontal',
                                    size=2)).action == 'scale_in'


def test_forecast_jumps_to_the_rung_that_holds_the_bound():
    decision = forecast.ForecastPolicy().decide(_situation(rung=0,
                                                           peak=7.5))
    assert (decision.action, decision.target_rung) == ('resize_up', 2)
    assert decision.predicted == 7.5 and decision.threshold == 2.0


def test_forecast_shrinks_with_margin_and_not_below_the_peak():
    policy = forecast.ForecastPolicy()
    # 1.5 / (1 - 0.2) = 1.9 fits 's' (2 vCPUs): one resize down to it
    down = policy.decide(_situation(rung=2, peak=1.5))
    assert (down.action, down.target_rung) == ('resize_down', 0)
    # 1.7 / 0.8 = 2.1 does not fit 's' but fits 'm'
    assert policy.decide(_situation(rung=1, peak=1.7)).action == 'none'
    # the last hours' peak holds the VM where it is
    assert policy.decide(_situation(rung=2, peak=1.5,
                                    recent=5.0)).action == 'none'


def test_forecast_meets_yesterdays_peak_ahead():
    # Yesterday's peak in the window (seasonal_weight 1.0) is 6 vCPUs.
    decision = forecast.ForecastPolicy().decide(_situation(
        rung=1, peak=3.0, seasonal=6.0))
    assert (decision.action, decision.target_rung) == ('resize_up', 2)
    assert forecast.ForecastPolicy().decide(_situation(
        rung=1, peak=3.0, seasonal=3.5)).action == 'none'


def test_a_saturated_vm_is_grown_past_what_it_shows():
    decision = forecast.ForecastPolicy().decide(_situation(
        rung=0, util=100.0, peak=2.0, saturated=True))
    # at least 8 x 2 vCPUs: a burst's first growth holds it
    assert (decision.action, decision.target_rung) == ('resize_up', 3)


def test_rl_sizes_a_saturated_vm_on_the_forecast_rules_floor():
    # No model: the forecast rule's size, its saturation floor included
    # (8 x 2 vCPUs: 'xl'), not the 2 vCPUs the saturated sample shows.
    situation = _situation(rung=0, util=100.0, peak=2.0, saturated=True)
    burst = rl.RLPolicy().decide(situation)
    assert (burst.action, burst.target_rung) == ('resize_up', 3)
    assert forecast.ForecastPolicy().decide(situation).target_rung == 3


def test_forecast_migrates_when_the_host_breaks_a_target_the_vm_fits():
    breach = forecast_mod.BreachForecast(
        metric='cpu_steal_pct', target=('<=', 10.0), step_s=300.0,
        mean=[9.0, 9.0], lower=[6.0, 7.0], upper=[14.0, 9.0], model='x',
        breach_step=0)
    decision = forecast.ForecastPolicy().decide(_situation(
        rung=1, peak=3.0, breaches={'cpu_steal_pct': breach}))
    assert decision.action == 'live_migrate'
    assert decision.metric == 'cpu_steal_pct' and decision.predicted == 14
    # a breach beyond the migration's lead time waits
    late = forecast_mod.BreachForecast(
        metric='cpu_steal_pct', target=('<=', 10.0), step_s=300.0,
        mean=[1.0] * 4, lower=[1.0] * 4, upper=[1.0, 1.0, 1.0, 14.0],
        model='x', breach_step=3)
    assert forecast.ForecastPolicy().decide(_situation(
        rung=1, peak=3.0, breaches={'cpu_steal_pct': late})).action == \
        'none'


def test_the_oracle_sizes_on_the_true_future_and_needs_foresight():
    seen = []

    def foresight(start, end):
        seen.append((start, end))
        return 7.0 if end - start <= 600 else 9.0
    decision = oracle.OraclePolicy().decide(_situation(
        rung=1, foresight=foresight))
    assert (decision.action, decision.target_rung) == ('resize_up', 2)
    assert seen[0] == (1000.0, 1600.0)
    assert oracle.OraclePolicy().decide(_situation()).action == 'none'


def test_the_oracle_shrinks_only_on_what_its_down_horizon_holds():
    # Quiet for the next hour, busy again two hours from now.
    def foresight(start, end):
        return 1.0 if end - start <= 3600 else 7.0
    conf = cfg.ConfigOpts()
    conf.register_opts(oracle.OPTS, group=oracle.GROUP)
    conf([])
    policy = oracle.OraclePolicy(conf)
    shrink = policy.decide(_situation(rung=2, foresight=foresight))
    assert (shrink.action, shrink.target_rung) == ('resize_down', 1)
    conf.set_override('down_horizon', 3 * 3600.0,
                      group='watcher_policy_oracle')
    held = policy.decide(_situation(rung=2, foresight=foresight))
    assert held.action == 'none'


def test_rl_without_a_model_sizes_on_the_forecast_bound():
    decision = rl.RLPolicy().decide(_situation(rung=0, peak=7.5))
    assert (decision.action, decision.target_rung) == ('resize_up', 2)


def test_rl_learns_which_offset_pays_and_saves_it(tmp_path):
    policy = rl.RLPolicy()
    policy.explore = 1.0
    for i in range(800):
        # The forecast bound says 3.5 vCPUs (rung m, 4 vCPUs: stay) ...
        situation = _situation(rung=1, peak=3.5)
        situation.now = float(i)
        policy.decide(situation)
        policy.learn('vm', float(i), 6.0)       # ... the real peak is 6
    state = rl.features(_situation(rung=1, peak=3.5)) + '/b+0'
    values = policy.values[state]
    # +1 rung (8 vCPUs) holds 6 vCPUs at the least cost.
    assert max(values) == values[rl.MOVES.index(1)]
    path = tmp_path / 'model.json'
    policy.save(str(path))
    loaded = rl.RLPolicy()
    loaded.load(str(path))
    decision = loaded.decide(_situation(rung=1, peak=3.5))
    assert (decision.action, decision.target_rung) == ('resize_up', 2)
    assert 'best offset +1' in decision.reason
    unseen = loaded.decide(_situation(rung=0, peak=7.5))
    assert (unseen.action, unseen.target_rung) == ('resize_up', 2)
    assert 'unseen in training' in unseen.reason


def test_rl_refuses_a_file_that_is_not_its_model(tmp_path):
    path = tmp_path / 'model.json'
    path.write_text('{"version": 99}')
    with pytest.raises(ValueError, match='not a version 2 rl model'):
        rl.RLPolicy().load(str(path))
    with pytest.raises(ValueError, match='model_file .*missing'):
        rl.RLPolicy().load(str(tmp_path / 'missing'))


_ROW = '[1.0, 2.0, 3.0, 4.0]'


@pytest.mark.parametrize('text,problem', [
    ('{"version": 2, "values": {"a": 5}}',
     "values of state 'a': 5 is not a list of 4 numbers"),
    ('{"version": 2, "values": {"a": "xyz"}}',
     "values of state 'a': 'xyz' is not a list of 4 numbers"),
    ('{"version": 2, "values": {"a": [1, 2, "x", 4]}}',
     "values of state 'a': 'x' is not a finite number"),
    ('{"version": 2, "values": {"a": [1, 2, NaN, 4]}}',
     "values of state 'a': nan is not a finite number"),
    ('{"version": 2, "values": {"a": [1, -Infinity, 3, 4]}}',
     "values of state 'a': -inf is not a finite number"),
    ('{"version": 2, "values": {"a": [1, 2, 3, 1e999]}}',
     "values of state 'a': inf is not a finite number"),
    ('{"version": 2, "values": {"a": [1, 2, 3, true]}}',
     "values of state 'a': True is not a finite number"),
    ('{"version": 2, "values": {"a": [1, 2, 3]}}',
     "values of state 'a': 3 numbers, not 4"),
    ('{"version": 2, "values": {"a": [1, 2, 3, 4, 5]}}',
     "values of state 'a': 5 numbers, not 4"),
    ('{"version": 2, "values": {"a": %s}, "counts": {"a": [1.5, "x", 1, 1]}}'
     % _ROW, "counts of state 'a': 1.5 is not a whole number >= 0"),
    ('{"version": 2, "values": {"a": %s}, "counts": {"a": [1, "x", 1, 1]}}'
     % _ROW, "counts of state 'a': 'x' is not a finite number"),
    ('{"version": 2, "values": {"a": %s}, "counts": {"a": [1, -1, 1, 1]}}'
     % _ROW, "counts of state 'a': -1 is not a whole number >= 0"),
    ('{"version": 2, "values": {"a": %s}, "counts": {"a": [1, 1]}}' % _ROW,
     "counts of state 'a': 2 numbers, not 4"),
    ('{"version": 2, "values": {}, "counts": 7}',
     'counts: 7 is not an object of states'),
    ('{"version": 2, "values": {}, "counts": {"b": [1, 1, 1, 1]}}',
     "counts of state 'b', which has no values"),
    ('{"version": 2, "values": [1, 2]}',
     'values: [1, 2] is not an object of states'),
    ('{"version": 2}', 'no values'),
    ('{"version": 2, "moves": [0, 1], "values": {}}',
     "moves [0, 1] are not this policy's [-1, 0, 1, 2]"),
])
def test_rl_refuses_a_malformed_model_naming_the_file_and_the_key(
        tmp_path, text, problem):
    path = tmp_path / 'model.json'
    path.write_text(text)
    policy = rl.RLPolicy(model={'version': rl.MODEL_VERSION,
                                'values': {'kept': [0.0] * len(rl.MOVES)}})
    with pytest.raises(ValueError) as error:
        policy.load(str(path))
    assert str(error.value).startswith(
        '[watcher_policy_rl] model_file %s: %s' % (path, problem))
    # The model it had is kept whole.
    assert policy.values == {'kept': [0.0] * len(rl.MOVES)}
    assert policy.counts == {}
    # A model handed over in memory is refused the same way.
    with pytest.raises(ValueError, match=re.escape('rl model: ' + problem)):
        rl.RLPolicy(model=json.loads(text))


def test_rl_refuses_a_malformed_model_file_from_its_option(tmp_path):
    # As shadow-watcher's start-up constructs it.
    path = tmp_path / 'model.json'
    path.write_text('{"version": 2, "values": {"a": [1, 2, 3]}}')
    conf = cfg.ConfigOpts()
    conf.register_group(rl.GROUP)
    conf.register_opts(rl.OPTS, group=rl.GROUP)
    conf([], project='nova-shadow')
    conf.set_override('model_file', str(path), group=rl.GROUP)
    with pytest.raises(ValueError, match=re.escape(
            "[watcher_policy_rl] model_file %s: values of state 'a': 3 "
            "numbers, not 4" % path)):
        rl.RLPolicy(conf)


def test_the_committed_rl_models_load():
    paths = sorted(RESULTS.glob('rl_policy*.json'))
    assert paths
    for path in paths:
        policy = rl.RLPolicy()
        policy.load(str(path))
        assert policy.values, path
        assert all(len(row) == len(rl.MOVES) and all(
            math.isfinite(v) for v in row) for row in policy.values.values())
        assert all(len(row) == len(rl.MOVES)
                   for row in policy.counts.values())
        # What it saves is what it loaded.
        assert rl.RLPolicy(model=policy.to_dict()).values == policy.values
        assert policy.decide(_situation(rung=1, peak=3.5)).reason


def test_an_unknown_action_is_refused():
    with pytest.raises(ValueError, match='unknown action'):
        base.Decision('explode', 'why not')


def test_rl_never_shrinks_below_the_forecast_shrink_bound():
    policy = rl.RLPolicy(model={'version': rl.MODEL_VERSION, 'values': {},
                                'counts': {}})
    # A learnt -1 offset where the forecast rule keeps the size.
    keep = _situation(rung=2, peak=6.0, peak_down=7.0)
    state = rl.features(keep) + '/b+0'
    policy.values[state] = [5.0, 0.0, -1.0, -2.0]
    policy.counts[state] = [100, 100, 100, 100]
    decision = policy.decide(keep)
    assert decision.action == 'none', decision.reason
    assert 'no shrink below' in decision.reason
    # The same offset where the shrink bound allows it.
    allowed = _situation(rung=2, peak=3.0, peak_down=3.0)
    state = rl.features(allowed) + '/b-1'
    policy.values[state] = [5.0, 0.0, -1.0, -2.0]
    policy.counts[state] = [100, 100, 100, 100]
    down = policy.decide(allowed)
    assert (down.action, down.target_rung) == ('resize_down', 1)


def test_rl_does_not_grow_back_on_its_own_offset_after_a_shrink():
    policy = rl.RLPolicy(model={'version': rl.MODEL_VERSION, 'values': {},
                                'counts': {}})
    shrink = _situation(rung=2, peak=3.0, peak_down=3.0)
    assert policy.decide(shrink).action == 'resize_down'
    # The watcher did the shrink and tells the policy.
    policy.record_taken(guard.Taken('vm', 'resize_down', shrink.now, -1))
    # Next run on rung 1: the forecast rule keeps it, the table says +1.
    keep = _situation(rung=1, peak=3.0, peak_down=3.0)
    keep.now = shrink.now + 300.0
    state = rl.features(keep) + '/b+0'
    policy.values[state] = [-5.0, -1.0, 0.0, -2.0]
    policy.counts[state] = [100, 100, 100, 100]
    held = policy.decide(keep)
    assert held.action == 'none', held.reason
    assert 'no regrowth of its own' in held.reason
    # After the cooldown the learnt offset applies again.
    keep.now = shrink.now + 1800.0
    assert policy.decide(keep).action == 'resize_up'
    # Within it, the forecast rule's own growth is never held back.
    grow = _situation(rung=1, peak=7.0, peak_down=7.0)
    grow.now = shrink.now + 600.0
    assert policy.decide(grow).action == 'resize_up'


def _rl_learnt_plus_one():
    """``(situation, policy)``: an rl policy whose table prefers the +1
    offset in that situation's state."""
    keep = _situation(rung=1, peak=3.0, peak_down=3.0)
    state = rl.features(keep) + '/b+0'
    table = {'version': rl.MODEL_VERSION,
             'values': {state: [-5.0, -1.0, 0.0, -2.0]},
             'counts': {state: [100, 100, 100, 100]}}
    return keep, rl.RLPolicy(model=table)


def test_rl_remembers_only_the_shrinks_the_watcher_did():
    # A shrink the policy proposed is no shrink until the watcher did
    # it: one the guard held back, or whose start failed, changed
    # nothing, and the learnt +1 offset may grow the VM at once.
    keep, policy = _rl_learnt_plus_one()
    proposed = _situation(rung=1, peak=1.0, peak_down=1.0)
    proposed.now = keep.now - 300.0
    assert policy.decide(proposed).action == 'resize_down'
    assert policy.decide(keep).action == 'resize_up'
    policy.record_taken(guard.Taken('vm', 'resize_down', keep.now - 300.0,
                                    -1, failed=True))
    assert policy.decide(keep).action == 'resize_up'
    policy.record_taken(guard.Taken('vm', 'resize_down', keep.now - 300.0,
                                    -1))
    assert policy.decide(keep).action == 'none'


def test_rl_forgets_a_shrink_that_failed_after_it_started():
    # The watcher's guard marks the shrink failed when it went to ERROR
    # (or timed out): it changed nothing, and the learnt +1 offset may
    # grow the VM at once.  Before: it held the growth back for the
    # cooldown.
    keep, policy = _rl_learnt_plus_one()
    limits = guard.Guard()
    shrink = guard.Taken('vm', 'resize_down', keep.now - 300.0, -1)
    limits.record(shrink)
    policy.record_taken(shrink)
    assert policy.decide(keep).action == 'none'
    limits.failed('vm', shrink.at)
    assert policy.decide(keep).action == 'resize_up'


def _capped(ceiling, **kwargs):
    situation = _situation(**kwargs)
    situation.forecast['ceiling'] = ceiling
    return situation


def test_forecast_never_sizes_above_the_demand_ceiling():
    policy = forecast.ForecastPolicy()
    # A bound of 10 (12.5 with the shrink margin) keeps 'xl'; the VM
    # never used more than 6 vCPUs (7.5 with the shrink margin), so it
    # shrinks to 'l'.
    assert policy.decide(_situation(rung=3, peak=10.0)).action == 'none'
    down = policy.decide(_capped(6.0, rung=3, peak=10.0))
    assert (down.action, down.target_rung) == ('resize_down', 2)
    # The shrink keeps its margin above the ceiling: at 7 vCPUs (8.75
    # with it) 'l' would run within 15 % of the most the VM used.
    assert policy.decide(_capped(7.0, rung=3, peak=10.0)).action == 'none'
    # Nor does a forecast above the ceiling grow it.
    assert policy.decide(_capped(3.5, rung=1, peak=6.0)).action == 'none'
    assert policy.decide(_situation(rung=1, peak=6.0)).action == \
        'resize_up'


def test_a_ceiling_of_0_is_a_ceiling_and_a_missing_one_is_none():
    # A VM that never used its CPU, with an error margin borrowed from
    # its flavor (a bound of 6 vCPUs): it is not grown for it, and one
    # already grown shrinks to the bottom of the ladder.
    rl_policy = rl.RLPolicy(model={'version': rl.MODEL_VERSION,
                                   'values': {}, 'counts': {}})
    for policy in (forecast.ForecastPolicy(), rl_policy):
        assert policy.decide(_capped(0.0, rung=0, peak=6.0)).action == \
            'none'
        down = policy.decide(_capped(0.0, rung=3, peak=6.0))
        assert (down.action, down.target_rung) == ('resize_down', 0)
        # Without a ceiling the bound is what it is.
        up = policy.decide(_situation(rung=0, peak=6.0))
        assert (up.action, up.target_rung) == ('resize_up', 2)
        # (6 vCPUs with the shrink margin, 7.5, hold 'l', not 's').
        kept = policy.decide(_situation(rung=3, peak=6.0))
        assert (kept.action, kept.target_rung) == ('resize_down', 2)
    # Scaling out: an idle group keeps one member.
    group = forecast.ForecastPolicy().decide(
        _capped(0.0, peak=6.0, mode='horizontal', size=3))
    assert (group.action, group.target_count) == ('scale_in', 1)
    assert base.demand_ceiling(_capped(0.0)) == 0.0
    assert base.demand_ceiling(_situation()) == math.inf


def test_the_ceiling_keeps_what_the_hold_window_holds():
    policy = forecast.ForecastPolicy()
    # 'xl' between two bursts: the forecast bound over the shrink horizon
    # is 3 and the ceiling 7, but the VM used 9 vCPUs within the hold
    # window: it stays on 'xl' instead of shrinking to 'l'.
    held = _capped(7.0, rung=3, peak=3.0, recent=9.0)
    assert policy.bounds(held) == (3.0, 9.0)
    assert policy.decide(held).action == 'none'
    # A growth bound of the hold window (within the ceiling it was
    # sized on) holds it too.
    bound = _capped(7.0, rung=3, peak=3.0)
    bound.forecast['recent_bound'] = 12.0
    assert policy.decide(bound).action == 'none'
    # Without either, the bound with its margin (7.5) fits 'l'.
    free = _capped(7.0, rung=3, peak=3.0, recent=6.0)
    assert policy.bounds(free) == (3.0, 7.5)
    down = policy.decide(free)
    assert (down.action, down.target_rung) == ('resize_down', 2)


def test_no_shrink_without_a_shrink_bound():
    policy = forecast.ForecastPolicy()
    # A young VM, or no error margin known yet: no shrink bound, and the
    # ceiling does not make one.
    young = _capped(3.0, rung=3, peak=2.0, peak_down=math.inf)
    assert policy.decide(young).action == 'none'
    group = _capped(3.0, peak=2.0, peak_down=math.inf, mode='horizontal',
                    size=3)
    assert policy.decide(group).action == 'none'


def test_the_ceiling_does_not_hold_back_a_saturated_vm():
    policy = forecast.ForecastPolicy()
    # 2 members of 4 vCPUs saturated: eight times the group (as many
    # members as allowed), whatever the most it used before.
    grown = policy.decide(_capped(6.0, rung=1, peak=8.0, saturated=True,
                                  mode='horizontal', size=2))
    assert (grown.action, grown.target_count) == ('scale_out', 4)


def test_rl_offsets_stop_at_the_demand_ceiling():
    situation = _capped(3.5, rung=1, peak=3.0)
    state = rl.features(situation) + '/b+0'
    # A table that always prefers two rungs more than the forecast rule.
    policy = rl.RLPolicy(model={'version': rl.MODEL_VERSION,
                                'values': {state: [-9.0, -5.0, -3.0, 0.0]},
                                'counts': {state: [100, 100, 100, 100]}})
    unbounded = _situation(rung=1, peak=3.0)
    assert policy.decide(unbounded).target_rung == 3
    capped = policy.decide(situation)
    assert capped.action == 'none'
    assert 'demand ceiling' in capped.reason


def test_the_ceiling_does_not_make_rl_shrink_below_the_forecast_floor():
    policy = rl.RLPolicy(model={'version': rl.MODEL_VERSION, 'values': {},
                                'counts': {}})
    # 'xl' with a ceiling of 7 vCPUs ('l'), but 9 used within the hold
    # window: the forecast policy keeps 'xl', and so does rl.
    held = _capped(7.0, rung=3, peak=3.0, recent=9.0)
    assert forecast.ForecastPolicy().decide(held).action == 'none'
    assert policy.decide(held).action == 'none'


def test_rl_holds_what_the_forecast_policy_holds_before_it_shrinks():
    policy = rl.RLPolicy(model={'version': rl.MODEL_VERSION, 'values': {},
                                'counts': {}})
    # The forecast bound alone would let it shrink to 'm' (3.75 with the
    # down margin), but the VM used 6 vCPUs within the hold window.
    held = _situation(rung=2, peak=3.0, peak_down=3.0, recent=6.0)
    decision = policy.decide(held)
    assert decision.action == 'none', decision.reason
    assert forecast.ForecastPolicy().decide(held).action == 'none'
    assert policy.decide(_situation(rung=2, peak=3.0,
                                    peak_down=3.0)).action == 'resize_down'


def test_a_shrink_descends_at_most_max_down_rungs():
    policy = forecast.ForecastPolicy()
    # 'xl' with 1.5 vCPUs expected: 's' holds it, three rungs down.
    down = policy.decide(_situation(rung=3, peak=1.5))
    assert (down.action, down.target_rung) == ('resize_down', 0)
    # A group of 4 members of 4 vCPUs whose demand fits one member.
    group = _situation(rung=1, peak=1.5, mode='horizontal', size=4)
    scaled = policy.decide(group)
    assert (scaled.action, scaled.target_count) == ('scale_in', 1)
    # The staircase of earlier releases with max_down_rungs = 1.
    one = base.capacity_decision(group, 1.5, 1.5, 'forecast', max_down=1)
    assert (one.action, one.target_count) == ('scale_in', 3)


def test_rl_remembers_a_shrink_it_did_before_a_restart():
    # A new rl policy (a restarted or new leading watcher) is told of the
    # shrink the records hold: its learnt +1 offset does not grow the VM
    # back within the cooldown either.
    keep, policy = _rl_learnt_plus_one()
    policy.restore([
        guard.Taken('vm', 'resize_up', keep.now - 3000.0, 1),
        guard.Taken('other', 'resize_down', keep.now - 60.0, -1),
        guard.Taken('vm', 'resize_down', keep.now - 300.0, -1)])
    held = policy.decide(keep)
    assert held.action == 'none', held.reason
    assert 'no regrowth of its own' in held.reason
    # A growth is no shrink to remember.
    _, grown = _rl_learnt_plus_one()
    grown.restore([guard.Taken('vm', 'resize_up', keep.now - 300.0, 1)])
    assert grown.decide(keep).action == 'resize_up'
    # The policies with no memory of actions take the records too.
    for policy in (forecast.ForecastPolicy(), reactive.ReactivePolicy()):
        policy.restore([guard.Taken('vm', 'resize_down', 0.0, -1)])


def _rl_with(min_visits, counts):
    """An rl policy whose model values +1 rung best in the state of
    ``_situation(rung=1, peak=3.5)``, its moves tried ``counts`` times."""
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf([], project='nova-shadow')
    conf.set_override('min_visits', min_visits, group=rl.GROUP)
    state = rl.features(_situation(rung=1, peak=3.5)) + '/b+0'
    values = [-1.0, -0.5, -0.2, -0.9]       # moves -1, 0, +1, +2
    return rl.RLPolicy(conf, model={
        'version': rl.MODEL_VERSION, 'values': {state: values},
        'counts': {state: counts}})


@pytest.mark.parametrize('min_visits,counts,target,why', [
    # Tried once each: the best mean is taken, however few its outcomes.
    (0, [1, 1, 1, 1], 2, 'best offset +1'),
    # +1 tried too few times: the best of those tried often enough.
    (30, [40, 40, 29, 40], 1, 'best offset +0'),
    (30, [40, 40, 30, 40], 2, 'best offset +1'),
    # The forecast rule's own size tried too few times: its size.
    (30, [40, 29, 40, 40], 1, 'offset 0 tried too few times'),
])
def test_rl_takes_a_move_only_when_training_tried_it_often_enough(
        min_visits, counts, target, why):
    decision = _rl_with(min_visits, counts).decide(
        _situation(rung=1, peak=3.5))
    assert (decision.target_rung or 1) == target
    assert why in decision.reason


def _group_after_scale_in(policy, since, demand, util, peak=10.0,
                          before=1.0):
    """A group of two 4-vCPU members whose forecast bound (``peak``)
    asks for a third, ``since`` seconds after the watcher scaled it in,
    its newest sample ``demand`` busy vCPUs at ``util`` %, the samples
    before it ``before``."""
    group = _situation(rung=1, util=util, peak=peak, peak_down=peak,
                       mode='horizontal', size=2,
                       demand=[before] * 11 + [demand])
    policy.record_taken(guard.Taken('vm', 'scale_in', group.now - since,
                                    -1))
    return group


def test_forecast_regrows_a_group_within_the_cooldown_for_shown_demand():
    # 600 s after a scale-in the bound (margin, trend or a burst read
    # from a rise) asks for a third member while the two serve the 6
    # busy vCPUs the group shows: no growth (it would undo the
    # scale-in, a flap, for demand the group has not shown).
    policy = forecast.ForecastPolicy()
    held = policy.decide(_group_after_scale_in(policy, 600.0, 6.0, 75.0))
    assert held.action == 'none', held.reason
    # A sample above what the members hold, or a saturated one (its
    # demand hidden): the bound grows it at once.
    above = policy.decide(_group_after_scale_in(policy, 600.0, 9.0, 100.0))
    assert (above.action, above.target_count) == ('scale_out', 3)
    full = policy.decide(_group_after_scale_in(policy, 600.0, 7.9, 98.0,
                                               before=7.8))
    assert (full.action, full.target_count) == ('scale_out', 3)
    # After the cooldown, or with the option off, the bound grows it.
    later = policy.decide(_group_after_scale_in(policy, 1800.0, 6.0, 75.0))
    assert later.action == 'scale_out'
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf([], project='test')
    conf.set_override('regrow_on_shown_demand', False,
                      group='watcher_policy_forecast')
    off = forecast.ForecastPolicy(conf)
    assert off.decide(_group_after_scale_in(
        off, 600.0, 6.0, 75.0)).action == 'scale_out'


def _forecast_with(**opts):
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf([], project='test')
    for name, value in opts.items():
        conf.set_override(name, value, group='watcher_policy_forecast')
    return forecast.ForecastPolicy(conf)


def test_forecast_regrows_a_group_in_the_cooldown_on_two_saturated_samples():
    # A burst after a lull, read saturated (98 %) on the two members left
    # 600 s after a scale-in, the sample before it 1 busy vCPU: one
    # saturated sample is not enough within the cooldown; the members
    # serve what it shows (7.9 busy vCPUs of 8), so no growth.
    policy = forecast.ForecastPolicy()
    lone = policy.decide(_group_after_scale_in(policy, 600.0, 7.9, 98.0))
    assert lone.action == 'none', lone.reason
    # The next sample saturated too: the bound (hidden demand) grows it.
    again = policy.decide(_group_after_scale_in(policy, 900.0, 7.9, 98.0,
                                                before=7.7))
    assert (again.action, again.target_count) == ('scale_out', 3)
    # A sample before it just under saturation_pct of the two members
    # (7.5 < 7.6 busy vCPUs) does not confirm it; a sample from before
    # the scale-in past them (9 busy vCPUs on more members) does.
    near = policy.decide(_group_after_scale_in(policy, 600.0, 7.9, 98.0,
                                               before=7.5))
    assert near.action == 'none', near.reason
    past = policy.decide(_group_after_scale_in(policy, 600.0, 7.9, 98.0,
                                               before=9.0))
    assert past.action == 'scale_out'
    # A sample past what the members hold grows it at once, saturated or
    # not; after the cooldown a lone saturated sample grows it.
    above = policy.decide(_group_after_scale_in(policy, 600.0, 9.0, 100.0))
    assert (above.action, above.target_count) == ('scale_out', 3)
    later = policy.decide(_group_after_scale_in(policy, 1800.0, 7.9, 98.0))
    assert later.action == 'scale_out'
    # One sample (the rule before) grows it on the lone saturated one.
    one = _forecast_with(regrow_saturated_samples=1)
    assert one.decide(_group_after_scale_in(
        one, 600.0, 7.9, 98.0)).action == 'scale_out'


def test_forecast_regrowth_rule_follows_what_the_watcher_did():
    # Only a scale-in the watcher did counts (not a failed start), a
    # growth after it ends the rule, and resized VMs are not held.
    policy = forecast.ForecastPolicy()
    group = _situation(rung=1, util=75.0, peak=10.0, mode='horizontal',
                       size=2, demand=[6.0] * 12)
    policy.record_taken(guard.Taken('vm', 'scale_in', group.now - 600.0,
                                    -1, failed=True))
    assert policy.decide(group).action == 'scale_out'
    policy.record_taken(guard.Taken('vm', 'scale_in', group.now - 900.0,
                                    -1))
    assert policy.decide(group).action == 'none'
    policy.record_taken(guard.Taken('vm', 'scale_out', group.now - 300.0,
                                    1))
    assert policy.decide(group).action == 'scale_out'
    # A restarted watcher hands the policy the records back.
    restored = forecast.ForecastPolicy()
    restored.restore([guard.Taken('vm', 'scale_in', group.now - 600.0, -1),
                      guard.Taken('other', 'scale_out', group.now, 1)])
    assert restored.decide(group).action == 'none'
    resized = _situation(rung=1, util=75.0, peak=10.0, demand=[3.0] * 12)
    policy.record_taken(guard.Taken('vm', 'resize_down',
                                    resized.now - 600.0, -1))
    assert policy.decide(resized).action == 'resize_up'


def test_rl_regrows_a_group_within_the_cooldown_for_shown_demand():
    # rl's forecast rule (its size before any learnt offset) follows the
    # forecast policy's: no regrowth on the bound alone after a scale-in.
    policy = rl.RLPolicy(model={'version': rl.MODEL_VERSION, 'values': {},
                                'counts': {}})
    held = policy.decide(_group_after_scale_in(policy, 600.0, 6.0, 75.0))
    assert held.action == 'none', held.reason
    above = policy.decide(_group_after_scale_in(policy, 600.0, 9.0, 100.0))
    assert (above.action, above.target_count) == ('scale_out', 3)
    # A lone saturated sample after a lull is not enough; two are.
    lone = policy.decide(_group_after_scale_in(policy, 600.0, 7.9, 98.0))
    assert lone.action == 'none', lone.reason
    again = policy.decide(_group_after_scale_in(policy, 600.0, 7.9, 98.0,
                                                before=7.7))
    assert (again.action, again.target_count) == ('scale_out', 3)
    restored = rl.RLPolicy(model={'version': rl.MODEL_VERSION,
                                  'values': {}, 'counts': {}})
    group = _situation(rung=1, util=75.0, peak=10.0, mode='horizontal',
                       size=2, demand=[6.0] * 12)
    restored.restore([guard.Taken('vm', 'scale_in', group.now - 600.0,
                                  -1)])
    assert restored.decide(group).action == 'none'


def _with_cap(rung, cap, **kwargs):
    situation = _situation(rung=rung, **kwargs)
    situation.forecast['cap'] = cap
    return situation


def test_forecast_sizes_a_vm_for_its_demand_cap_and_no_margin_above_it():
    policy = forecast.ForecastPolicy()
    # 4 busy vCPUs on 'xl', a bound of 5.5 with its error margin: 'l'
    # without a cap; its cap of 4 ('m' filled, no more on larger ones)
    # takes it to 'm', where it runs at its capacity.
    assert policy.decide(_situation(rung=3, peak=5.5, recent=4.0)) \
        .target_rung == 2
    down = policy.decide(_with_cap(3, 4.0, peak=5.5, recent=4.0))
    assert (down.action, down.target_rung) == ('resize_down', 1)
    # On 'm' at 100 %, yesterday's peak or a saturated reading above it
    # does not grow it past the cap.
    assert policy.decide(_with_cap(1, 4.0, util=100.0, peak=5.5,
                                 seasonal=6.0)).action == 'none'
    # Below the cap, a saturated VM grows to it, not past it.
    up = policy.decide(_with_cap(0, 4.0, util=100.0, peak=2.0,
                               saturated=True))
    assert (up.action, up.target_rung) == ('resize_up', 1)


def test_rl_never_sizes_a_vm_above_its_demand_cap():
    policy = rl.RLPolicy()
    situation = _with_cap(1, 4.0, util=100.0, peak=5.5)
    # The forecast rule keeps it on 'm'; a learnt +2 would take it to
    # 'xl' but for the cap.
    state = rl.features(situation, policy._forecast) + '/b+0'
    policy.values = {state: [-9.0, -9.0, -9.0, 0.0]}
    policy.counts = {state: [1000] * 4}
    decision = policy.decide(situation)
    assert decision.action == 'none'
    assert 'demand cap' in decision.reason


def test_yesterdays_peak_counts_only_while_today_followed_yesterday():
    policy = _forecast_with(seasonal_follow=0.5)
    # Yesterday's 6 vCPUs in the window ahead grow the VM while its
    # last hours reached half of what yesterday's same hours did ...
    followed = _situation(rung=1, peak=3.0, seasonal=6.0, recent=3.0)
    followed.forecast['seasonal_recent'] = 6.0
    assert policy.decide(followed).action == 'resize_up'
    # ... not once it has stayed quiet where yesterday was busy.
    quiet = _situation(rung=1, peak=3.0, seasonal=6.0, recent=2.0)
    quiet.forecast['seasonal_recent'] = 6.0
    assert policy.decide(quiet).action == 'none'
    # Off, yesterday's peak counts either way.
    assert _forecast_with(seasonal_follow=0.0).decide(quiet).action == \
        'resize_up'
    # A group counts it either way.
    group = _situation(peak=3.0, seasonal=6.0, recent=2.0,
                       mode='horizontal', size=1)
    group.forecast['seasonal_recent'] = 6.0
    assert policy.decide(group).action == 'scale_out'
