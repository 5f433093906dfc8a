"""The watcher loop over the twin, assembled as the daemon assembles it.

Each test replays a made-up demand in the twin (real engine, real SQLite
history, real policies and actuator) and looks at what the twin's VMs and
the decision records show afterwards.
"""

import http.server as http_server
import itertools
import json
import socket
import threading

import numpy as np
import pytest

from shadow_service.clouds import base as cloud_base
from shadow_service.clouds.sim import driver as sim_driver
from shadow_service.history import base as history_base
from shadow_service.history import sqlite as sqlite_store
from shadow_service.watcher import records
from tests import watcher_support as support

DAY = 288


def _ramp(base=1.0, peak=6.0, steps=24, hold=200):
    return ([base] * DAY + list(np.linspace(base, peak, steps))
            + [peak] * hold)


def _records(history, driver, instance_id=None):
    return records.read(history, 0, driver.now() + 1, instance_id)



def _horizontal_web(conf, wave, **placed):
    """A twin with one horizontally scaled VM ``web-1`` (``placed``: more
    of :func:`support.place`) whose demand follows ``wave``, a day of its
    history behind it; ``(driver, history, the assembled watcher)``."""
    driver, history = support.twin(conf)
    support.place(driver, 'web-1', wave, flavor='medium',
                  metadata={'nova_shadow_scaling': 'horizontal'},
                  group='web', **placed)
    assembled = support.build(conf, driver, history)
    driver.fast_forward(DAY * support.STEP_S)
    return driver, history, assembled

def test_forecast_resizes_ahead_of_the_demand_and_confirms(tmp_path):
    conf = support.make_conf(tmp_path, watcher={'policy': 'forecast',
                                                'dry_run': False})
    driver, history = support.twin(conf)
    support.place(driver, 'vm-1', _ramp())
    start = driver.now()
    assembled = support.build(conf, driver, history)
    driver.fast_forward(DAY * support.STEP_S)
    steps = support.run(assembled, driver, 30)
    grew = [s for s in steps if s.decision.action == 'resize_up'
            and s.outcome == 'started']
    assert grew, [s.decision.reason for s in steps][-5:]
    # The first resize starts before the demand passes the 2 vCPUs of
    # "small".
    crossing = start + support.STEP_S * next(
        i for i, v in enumerate(_ramp()) if v > 2.0)
    assert grew[0].record['at'] < crossing
    instance = driver.get_instance('vm-1')
    assert instance.status == 'ACTIVE'
    assert instance.flavor['vcpus'] >= 8
    found = _records(history, driver, 'vm-1')
    first = grew[0].record['decision_id']
    outcomes = [r['outcome'] for r in found if r['decision_id'] == first]
    assert outcomes == ['started', 'done']
    done = [r for r in found if r['decision_id'] == first][1]
    assert 'confirmed' in done['detail']
    inputs = grew[0].record['inputs']
    assert inputs['forecast']['peak'] > 2.0 and inputs['flavor'][
        'name'] == 'small'


def test_dry_run_records_what_it_would_do_and_changes_nothing(tmp_path):
    conf = support.make_conf(tmp_path, watcher={'policy': 'reactive',
                                                'dry_run': True})
    driver, history = support.twin(conf)
    support.place(driver, 'vm-1', _ramp())
    assembled = support.build(conf, driver, history)
    driver.fast_forward(DAY * support.STEP_S)
    segments = len(driver.twin.workloads)
    steps = support.run(assembled, driver, 30)
    would = [s for s in steps if s.outcome == 'dry_run']
    assert would and would[0].decision.action == 'resize_up'
    assert would[0].detail.startswith('would resize vm-1 from small')
    assert len(driver.twin.workloads) == segments
    assert driver.get_instance('vm-1').flavor['vcpus'] == 2
    assert {r['outcome'] for r in _records(history, driver)} <= {
        'dry_run', 'suppressed'}


def test_outcomes_update_the_error_statistics(tmp_path):
    rng = np.random.default_rng(3)
    noisy = list(np.clip(1.0 + rng.normal(0, 0.4, 2 * DAY), 0.1, None))
    conf = support.make_conf(tmp_path, watcher={'policy': 'forecast',
                                                'dry_run': True})
    driver, history = support.twin(conf)
    support.place(driver, 'vm-1', noisy, flavor='medium')
    assembled = support.build(conf, driver, history)
    watcher = assembled.watcher
    driver.fast_forward(DAY * support.STEP_S)
    support.run(assembled, driver, 12)
    # Lead time 540 s: each run's forecast matures two runs later.
    assert watcher.errors.count('vm-1') >= 8
    summary = watcher.errors.summary('vm-1', 'medium', 4)
    assert summary['source'] == 'instance'
    situation = watcher.situation(driver.get_instance('vm-1'),
                                  driver.now())
    assert situation.forecast['margin'] == max(summary['margin'], 0.0)
    assert situation.forecast['peak'] == (situation.forecast['raw_peak']
                                          + situation.forecast['margin'])


def test_a_shrink_from_the_top_is_not_undone_by_its_first_sample(tmp_path):
    # 3 busy vCPUs all along on the top rung ("xlarge", 16 vCPUs): once
    # the hold window passed, the VM is shrunk to "medium" (4 vCPUs), on
    # which the same demand reads 75 %.  The first sample on "medium"
    # is 3 busy vCPUs, not 75 % of the 16 vCPUs before (12, which grew
    # the VM back within the cooldown: a flap).
    conf = support.make_conf(tmp_path, watcher={
        'policy': 'forecast', 'dry_run': False, 'hold_window': 1800.0})
    driver, history = support.twin(conf)
    support.place(driver, 'vm-1', [3.0] * 400, flavor='xlarge')
    assembled = support.build(conf, driver, history)
    driver.fast_forward(4 * 3600.0)
    steps = support.run(assembled, driver, 24)
    started = [s.decision.action for s in steps if s.outcome == 'started']
    assert started == ['resize_down'], [
        (s.decision.action, s.outcome, s.decision.reason) for s in steps]
    assert driver.get_instance('vm-1').flavor['vcpus'] == 4
    assert assembled.watcher.counters['flaps'] == 0
    situation = assembled.watcher.situation(driver.get_instance('vm-1'),
                                            driver.now())
    # Every sample of the last six hours, on either flavor, reads the
    # VM's 3 busy vCPUs.
    demand = np.asarray(situation.demand)
    assert demand[np.isfinite(demand)] == pytest.approx(3.0, rel=1e-6)


def test_a_group_grows_and_shrinks_with_its_demand(tmp_path):
    wave = [2.0] * DAY + [2.0] * 6 + [12.0] * 30 + [2.0] * 150
    conf = support.make_conf(tmp_path, watcher={
        'policy': 'forecast', 'dry_run': False, 'max_count': 4,
        'cooldown': 900.0, 'immunity_window': 300.0,
        'hold_window': 3600.0,
        # One wave among few errors: at the default 0.99 the margin is
        # the wave's own jump for as long as it is in the error window.
        'error_quantile': 0.8})
    driver, history, assembled = _horizontal_web(conf, wave)
    steps = support.run(assembled, driver, 80)
    started = [s for s in steps if s.outcome == 'started']
    actions = [s.decision.action for s in started]
    assert 'scale_out' in actions and 'scale_in' in actions
    assert actions.index('scale_out') < actions.index('scale_in')
    booted = [r for r in _records(history, driver)
              if r['action'] == 'scale_out' and r['outcome'] == 'done']
    sibling = booted[0]['siblings'][0]
    assert driver.twin.workloads[sibling].group == 'web'
    # Fewer members after the wave than at its height, and the twin runs
    # exactly the members the watcher counts.
    done = [r for r in _records(history, driver) if r['outcome'] == 'done']
    grown = sum(len(r['siblings']) for r in done
                if r['action'] == 'scale_out')
    shrunk = sum(len(r['siblings']) for r in done
                 if r['action'] == 'scale_in')
    left = assembled.watcher.siblings.get('web-1', [])
    assert len(left) == grown - shrunk < grown
    assert sorted(i.instance_id for i in driver.list_instances()) == \
        sorted(['web-1'] + left)


def test_a_suppressed_decision_names_the_limit(tmp_path):
    conf = support.make_conf(tmp_path, watcher={
        'policy': 'reactive', 'dry_run': False,
        'immunity_window': 3600.0})
    driver, history = support.twin(conf)
    support.place(driver, 'vm-1', [1.0] * DAY + [30.0] * 200)
    assembled = support.build(conf, driver, history)
    driver.fast_forward(DAY * support.STEP_S)
    steps = support.run(assembled, driver, 8)
    refused = [s for s in steps if s.outcome == 'suppressed']
    assert refused and refused[0].detail.startswith('immunity window')
    assert [r for r in _records(history, driver)
            if r['outcome'] == 'suppressed'][0]['guard'] == refused[0].detail


def test_the_steal_detector_moves_a_vm_off_a_crowded_host(tmp_path):
    conf = support.make_conf(tmp_path, cores=4, watcher={
        'policy': 'reactive', 'dry_run': False, 'steal_window': 900.0})
    driver, history = support.twin(conf)
    support.place(driver, 'vm-1', [1.0] * 3 * DAY, flavor='medium')
    for i in range(3):
        driver.place_vm(
            {'flavor': {'vcpus': 4, 'ram_mb': 4096}}, 'host-1',
            instance_id='noisy-%d' % i,
            profile=support.demand_profile([0.0] * DAY + [4.0] * DAY))
    assembled = support.build(conf, driver, history)
    driver.fast_forward(DAY * support.STEP_S)
    steps = support.run(assembled, driver, 12)
    moved = [s for s in steps if s.decision.action == 'live_migrate'
             and s.outcome == 'started']
    assert moved and moved[0].decision.metric == 'cpu_steal_pct'
    assert moved[0].decision.reason.startswith('steal above 10%')
    assert driver.get_instance('vm-1').host != 'host-1'
    done = [r for r in _records(history, driver, 'vm-1')
            if r['outcome'] == 'done' and r['action'] == 'live_migrate']
    assert done and done[0]['detail'] == 'now on %s' % (
        driver.get_instance('vm-1').host)


def test_a_shrink_is_decided_on_the_demand_over_the_cooldown(tmp_path):
    # A burst every 35 minutes: between two bursts the demand is low for
    # less than cooldown + lead, so a shrink would be undone by a growth
    # within the cooldown (a flap); once the watcher has seen bursts,
    # the shrink bound (with the error margin they taught) sees the next.
    # The first growths are the saturation factor's doublings, so a
    # burst shows its size before the cooldown ends; with no hold window,
    # a group grown at once to the factor's eight times was scaled in
    # before any burst had shown more than its censored first sample.
    period = [12.0] + [2.0] * 6
    wave = [2.0] * DAY + period * 30
    conf = support.make_conf(tmp_path, watcher={
        'policy': 'forecast', 'dry_run': False, 'max_count': 4,
        'cooldown': 1800.0, 'immunity_window': 300.0,
        'hold_window': 0.0, 'hysteresis_runs': 1},
        watcher_policy_forecast={'saturation_factor': 2.0})
    driver, history, assembled = _horizontal_web(conf, wave)
    steps = support.run(assembled, driver, 60)
    situation = assembled.watcher.situation(
        driver.get_instance('web-1'), driver.now())
    lead = assembled.watcher.lead_s['horizontal']
    assert len(situation.forecast['upper']) * support.STEP_S >= \
        1800.0 + lead
    # One run a step: a step's index is its run.
    started = [(run, s.decision.action) for run, s in enumerate(steps)
               if s.outcome == 'started']
    assert started[0] == (0, 'scale_out')
    # Before the second burst (run 7) the watcher has seen one, censored
    # on one member: nothing says another comes, and the group may be
    # scaled in once the cooldown is over (run 6), to be grown again by
    # that burst: at most that one flap.  From the second burst on, no
    # scale in undoes a growth.
    assert all(action == 'scale_out' for run, action in started if run > 7)
    assert assembled.watcher.counters['flaps'] <= 1


def test_a_restarted_watcher_keeps_its_group_together(tmp_path):
    wave = [2.0] * DAY + [2.0] * 6 + [12.0] * 60
    conf = support.make_conf(tmp_path, watcher={
        'policy': 'forecast', 'dry_run': False, 'max_count': 4,
        'cooldown': 900.0, 'immunity_window': 300.0,
        'hold_window': 3600.0, 'error_quantile': 0.8})
    driver, history, assembled = _horizontal_web(conf, wave)
    support.run(assembled, driver, 14)
    booted = assembled.watcher.siblings['web-1']
    assert len(booted) >= 2

    # A server of another group that claims to be a sibling of web-1
    # (metadata is the tenant's to write) joins no group.
    support.place(driver, 'intruder', [1.0] * DAY, metadata={
        'nova_shadow_sibling_of': 'web-1'}, group='other')

    # The daemon restarts: a new watcher over the same cloud and history.
    again = support.build(conf, driver, history)
    # Before its first run it knows the siblings by their metadata...
    assert [i.instance_id for i in again.watcher.watched()] == ['web-1']
    for sibling in booted:
        assert driver.get_instance(sibling).metadata[
            'nova_shadow_sibling_of'] == 'web-1'
    steps = support.run(again, driver, 1)
    # ... and after it, the group as the records say, so nothing is
    # scaled twice: the siblings are not watched on their own and the
    # group's size counts them.
    assert [s.instance_id for s in steps] == ['web-1']
    assert again.watcher.siblings['web-1'] == booted
    assert 'intruder' not in again.watcher.siblings['web-1']
    situation = again.watcher.situation(driver.get_instance('web-1'),
                                        driver.now())
    assert situation.group_size == 1 + len(booted)


def test_a_restarted_watcher_reads_past_demand_at_the_old_size(tmp_path):
    # 1.9 busy vCPUs from the start: "small" (2 vCPUs) runs at 95 %
    # until the watcher grows it.  (With its demand cap the larger
    # flavor would show that 1.9 fits "small" and take it back there;
    # this test keeps it grown, off.)
    conf = support.make_conf(tmp_path, watcher={'policy': 'forecast',
                                                'dry_run': False,
                                                'cap_steps': 0})
    driver, history = support.twin(conf)
    support.place(driver, 'vm-1', [1.9] * (3 * DAY))
    assembled = support.build(conf, driver, history)
    driver.fast_forward(DAY * support.STEP_S)
    support.run(assembled, driver, 12)
    grown = driver.get_instance('vm-1').flavor['vcpus']
    assert grown > 2

    # The daemon restarts: a new watcher over the same cloud and history.
    again = support.build(conf, driver, history)
    support.run(again, driver, 1)
    forecast = again.watcher.situation(driver.get_instance('vm-1'),
                                       driver.now()).forecast
    # The samples taken at 95 % of 2 vCPUs are 1.9 busy vCPUs, not 95 %
    # of the new flavor's vCPUs: the demand ceiling learnt from them.
    assert forecast['ceiling_before'] == pytest.approx(
        1.9 * (1.0 + conf.watcher.ceiling_margin), rel=1e-3)
    # Saturated at 2 vCPUs, it was sized for eight times them, and the
    # ceiling stays there after the restart as it would without one.
    assert forecast['ceiling'] == pytest.approx(16.0)


def _saturated_at_the_top(tmp_path, restart):
    """A VM on the ladder's top rung ("xlarge", 16 vCPUs), quiet for
    four hours, saturated for two samples (it wanted 20 vCPUs, the
    samples read 16), then quiet again; four watcher runs from the
    saturation on, then (``restart``: in a new watcher over the same
    cloud and history, as after a restart of the daemon) eight more.
    ``(watcher state after the first of those eight runs, the eight
    runs' decisions, the records written before the restart)``."""
    tmp_path.mkdir()
    conf = support.make_conf(tmp_path, watcher={
        'policy': 'forecast', 'dry_run': False, 'hold_window': 1800.0})
    driver, history = support.twin(conf)
    support.place(driver, 'vm-1', [1.0] * 48 + [20.0] * 2 + [1.0] * 200,
                  flavor='xlarge')
    assembled = support.build(conf, driver, history)
    driver.fast_forward(4 * 3600.0)
    support.run(assembled, driver, 4)
    before = _records(history, driver, 'vm-1')
    if restart:
        assembled = support.build(conf, driver, history)
    steps = support.run(assembled, driver, 1)
    watcher = assembled.watcher
    state = {'hidden': dict(watcher._hidden),
             'ceilings': dict(watcher._ceilings),
             'bounds': list(watcher._bounds['vm-1']),
             'errors': watcher.errors.count('vm-1'),
             'margin': watcher.errors.summary('vm-1', 'xlarge', 16.0),
             'pending predictions': len(watcher._predictions['vm-1'])}
    steps += support.run(assembled, driver, 7)
    decisions = [(s.decision.action, s.outcome, s.decision.reason)
                 for s in steps]
    return state, decisions, before


def test_a_restarted_watcher_decides_as_if_it_had_not_stopped(tmp_path):
    kept, kept_decisions, before = _saturated_at_the_top(
        tmp_path / 'kept', restart=False)
    # Saturated on the top rung, the policy had nothing to do: no
    # decision record holds what the watcher learnt from it.
    assert before == []
    # It sized the VM for eight times its 16 vCPUs while saturated.
    assert kept['hidden'] == {'vm-1': pytest.approx(128.0)}
    assert max(b for _t, b in kept['bounds']) == pytest.approx(128.0)
    assert kept['errors'] >= 2
    # Without a restart it shrinks the VM once the hold window passed.
    assert ('resize_down', 'started') in [d[:2] for d in kept_decisions]

    restarted, restarted_decisions, _ = _saturated_at_the_top(
        tmp_path / 'restarted', restart=True)
    # The hidden-demand floor, the demand ceiling's peaks and the day it
    # was first known, the hold window's growth bounds and the forecast
    # errors are back after the restart...
    assert restarted == kept
    # ... and the watcher decides as it would have without stopping.
    assert restarted_decisions == kept_decisions


def test_a_restart_keeps_the_hidden_floor_of_older_records(tmp_path):
    # Records from before the demand forecasts held the watcher's state:
    # a resize record's inputs carry the hidden-demand floor; a forecast
    # point without the state's fields restores nothing, and breaks
    # nothing.
    conf = support.make_conf(tmp_path, watcher={'policy': 'forecast'})
    driver, history = support.twin(conf)
    support.place(driver, 'vm-1', [1.0] * DAY, flavor='xlarge')
    driver.fast_forward(4 * 3600.0)
    now = driver.now()
    history.write([
        records.decision_point({
            'decision_id': 'd-1', 'instance': 'vm-1',
            'action': 'resize_up', 'outcome': 'dry_run', 'at': now - 900,
            'inputs': {'flavor': {'name': 'medium', 'vcpus': 4},
                       'saturated': True,
                       'forecast': {'hidden_floor': 32.0,
                                    'ceiling': 32.0}}}, now - 900),
        history_base.Point('demand_forecast',
                           {'instance': 'vm-1', 'model': 'naive'},
                           {'mean': 1.0, 'lower': 0.5, 'upper': 1.5,
                            'peak': 1.5, 'lead_s': 540.0}, now - 60)])
    assembled = support.build(conf, driver, history)
    support.run(assembled, driver, 1)
    watcher = assembled.watcher
    assert watcher._hidden == {'vm-1': pytest.approx(32.0)}
    assert watcher.situation(driver.get_instance('vm-1'), driver.now()) \
        .forecast['ceiling'] == pytest.approx(32.0)


def test_a_restarted_watcher_tells_its_policy_what_it_did(tmp_path):
    # The rl policy holds back its own regrowth within the cooldown of a
    # shrink; after a restart it learns of the shrink from the records.
    conf = support.make_conf(tmp_path, watcher={'policy': 'rl'})
    driver, history = support.twin(conf)
    support.place(driver, 'vm-1', [1.0] * DAY, flavor='large')
    driver.fast_forward(4 * 3600.0)
    now = driver.now()
    shrink = {'decision_id': 'd-1', 'instance': 'vm-1',
              'action': 'resize_down', 'at': now - 600.0,
              'inputs': {'flavor': {'name': 'xlarge', 'vcpus': 16}},
              'target_flavor': {'name': 'large', 'vcpus': 8}}
    history.write([
        records.decision_point(dict(shrink, outcome='started'), now - 600),
        records.decision_point(dict(shrink, outcome='done'), now - 300)])
    assembled = support.build(conf, driver, history)
    support.run(assembled, driver, 1)
    assert {vm: taken.at for vm, taken
            in assembled.watcher.policy._shrunk.items()} == {
        'vm-1': pytest.approx(now - 600.0)}


def _growing_rl_model(path):
    """An rl model whose every state of a rising demand (trend bins 3
    and 4) best takes the offset +2, tried often enough to be taken."""
    from shadow_service.watcher.policies import rl
    rising = ['r%d/s%d/t%d/top%d/b%s' % state for state in itertools.product(
        range(len(rl.RATIO_EDGES) + 1), (0, 1), (3, 4), (0, 1),
        ('-1', '+0'))]
    path.write_text(json.dumps({
        'version': rl.MODEL_VERSION,
        'values': {state: [-30.0, -20.0, -10.0, 0.0] for state in rising},
        'counts': {state: [100] * len(rl.MOVES) for state in rising}}))
    return str(path)


def test_a_shrink_the_guard_held_back_holds_back_no_rl_growth(tmp_path):
    # A quiet "medium" VM (no demand ceiling: ceiling_window 0) whose
    # demand rises one run after the forecast rule first proposed to
    # shrink it, which the guard's hysteresis held back.  The rl model
    # grows a VM whose demand rises by two rungs from the forecast
    # rule's size.  No shrink was done, so a watcher that kept running
    # and one restarted from its records take that growth alike.
    conf = support.make_conf(tmp_path, watcher={
        'policy': 'rl', 'hold_window': 1800.0, 'ceiling_window': 0.0},
        watcher_policy_rl={
            'model_file': _growing_rl_model(tmp_path / 'rl.json')})
    driver, history = support.twin(conf)
    support.place(driver, 'vm-1', [1.0] * 54 + [1.6] * 200, flavor='medium')
    running = support.build(conf, driver, history)
    driver.fast_forward(4 * 3600.0)
    held = support.run(running, driver, 6)[-1]
    assert (held.decision.action, held.outcome) == ('resize_down',
                                                    'suppressed')
    assert held.detail.startswith('hysteresis')
    now = driver.now()
    [again] = support.build(conf, driver, history).watcher.run_once(now)
    [then] = running.watcher.run_once(now)
    assert (then.decision.action, then.outcome, then.decision.target_rung) \
        == (again.decision.action, again.outcome,
            again.decision.target_rung), then.decision.reason
    assert (then.decision.action, then.outcome) == ('resize_up', 'dry_run')
    assert 'best offset +2' in then.decision.reason


def test_a_vm_whose_flavor_is_not_on_the_ladder_is_never_resized(tmp_path):
    # A busy 6-vCPU VM and an idle 32-vCPU one, of flavors the ladder
    # (2, 4, 8, 16 vCPUs) does not list: each was taken for the largest
    # rung with no more vCPUs ("medium", "xlarge") and resized, the big
    # one down to 8 vCPUs and 8 GB of RAM.
    conf = support.make_conf(tmp_path, watcher={
        'policy': 'reactive', 'dry_run': False, 'hysteresis_runs': 1,
        'cooldown': 0.0})
    driver, history = support.twin(conf)
    for instance_id, vcpus, busy in (('odd-6', 6, 5.8), ('huge-32', 32, 1.0)):
        driver.place_vm(
            {'flavor': {'name': 'm1.vcpus%d' % vcpus, 'vcpus': vcpus,
                        'ram_mb': vcpus * 2048, 'disk_gb': 20}},
            'host-%d' % (1 + vcpus // 32), instance_id=instance_id,
            profile=support.demand_profile([busy] * 3 * DAY),
            metadata={'nova_shadow_watch': 'true'})
    assembled = support.build(conf, driver, history)
    driver.fast_forward(DAY * support.STEP_S)
    steps = support.run(assembled, driver, 6)
    assert {s.instance_id for s in steps} == {'odd-6', 'huge-32'}
    assert [s for s in steps if s.outcome] == []
    assert {s.decision.reason for s in steps} == {
        'flavor not on the ladder'}
    assert {driver.get_instance(i).flavor['vcpus']
            for i in ('odd-6', 'huge-32')} == {6, 32}
    assert _records(history, driver) == []


class BusyApiTwin(sim_driver.SimDriver):
    """The twin, with a cloud API that answers the next ``unavailable``
    calls of ``get_instance`` with a 503, as an overloaded Nova API
    does (a retryable error)."""

    unavailable = 0

    def get_instance(self, instance_id):
        if self.unavailable:
            self.unavailable -= 1
            raise cloud_base.CloudError(
                'Getting %s failed (HTTP 503): Service Unavailable'
                % instance_id, retryable=True)
        return super().get_instance(instance_id)


def _busy_api_resizer(tmp_path):
    """A VM the reactive policy grows at its next run, on a twin whose
    API can be made busy; ``(history, driver, assembled)``."""
    conf = support.make_conf(tmp_path, watcher={'policy': 'reactive',
                                                'dry_run': False})
    history = sqlite_store.SQLiteStore(path=':memory:')
    driver = BusyApiTwin(conf, history)
    support.place(driver, 'vm-1', [1.9] * 3 * DAY)
    assembled = support.build(conf, driver, history)
    driver.fast_forward(DAY * support.STEP_S)
    return history, driver, assembled


def test_a_passing_api_error_does_not_end_the_following_of_a_resize(
        tmp_path):
    history, driver, assembled = _busy_api_resizer(tmp_path)
    started = support.run(assembled, driver, 1)
    assert [(s.decision.action, s.outcome) for s in started] == [
        ('resize_up', 'started')]
    # The next run follows the resize (now VERIFY_RESIZE) while the API
    # is busy: it keeps following it, and confirms it the run after.
    driver.unavailable = 1
    support.run(assembled, driver, 2)
    decision_id = started[0].record['decision_id']
    ended = [(r['outcome'], r['detail'])
             for r in _records(history, driver, 'vm-1')
             if r['decision_id'] == decision_id][1:]
    assert ended == [('done', 'resized to medium and confirmed')]
    instance = driver.get_instance('vm-1')
    assert (instance.status, instance.flavor['vcpus']) == ('ACTIVE', 4)


def test_an_api_error_that_keeps_on_fails_the_resize_at_its_deadline(
        tmp_path):
    history, driver, assembled = _busy_api_resizer(tmp_path)
    started = support.run(assembled, driver, 1)[0]
    pending = assembled.watcher.pending['vm-1']
    # Every call of the next runs until the deadline meets a busy API.
    driver.unavailable = 10 ** 6
    runs = 0
    while driver.now() <= pending.deadline:
        assert 'vm-1' in assembled.watcher.pending
        assembled.watcher.run_once(driver.now())
        driver.fast_forward(support.STEP_S)
        runs += 1
    assembled.watcher.run_once(driver.now())
    assert runs >= 2 and 'vm-1' not in assembled.watcher.pending
    ended = [r for r in _records(history, driver, 'vm-1')
             if r['decision_id'] == started.record['decision_id']][1:]
    assert [r['outcome'] for r in ended] == ['failed']
    assert ended[0]['detail'].startswith('timed out (Getting vm-1 failed '
                                         '(HTTP 503)')


def test_a_watcher_restarted_in_dry_run_does_not_confirm_a_resize(
        tmp_path):
    conf = support.make_conf(tmp_path, watcher={'policy': 'reactive',
                                                'dry_run': False})
    driver, history = support.twin(conf)
    support.place(driver, 'vm-1', [1.9] * 3 * DAY)
    acting = support.build(conf, driver, history)
    driver.fast_forward(DAY * support.STEP_S)
    started = support.run(acting, driver, 1)[0]
    assert (started.decision.action, started.outcome) == (
        'resize_up', 'started')
    assert driver.get_instance('vm-1').status == 'VERIFY_RESIZE'
    decision_id = started.record['decision_id']

    # The daemon is restarted in dry-run while the resize waits for its
    # confirmation: it records what it would do and changes nothing.
    conf.set_override('dry_run', True, group='watcher')
    observing = support.build(conf, driver, history)
    support.run(observing, driver, 3)
    assert driver.get_instance('vm-1').status == 'VERIFY_RESIZE'
    followed = [(r['outcome'], r.get('detail'))
                for r in _records(history, driver, 'vm-1')
                if r['decision_id'] == decision_id]
    assert followed == [
        ('started', started.detail),
        ('dry_run', 'would confirm the resize to medium')]

    # Acting again, the watcher confirms it.
    conf.set_override('dry_run', False, group='watcher')
    again = support.build(conf, driver, history)
    support.run(again, driver, 1)
    assert driver.get_instance('vm-1').status == 'ACTIVE'
    assert [r['outcome'] for r in _records(history, driver, 'vm-1')
            if r['decision_id'] == decision_id] == [
        'started', 'dry_run', 'done']


class UnreadableAtFirstStore(sqlite_store.SQLiteStore):
    """The history store, whose next ``unreadable`` reads of points
    fail as an unreachable InfluxDB does."""

    unreadable = 0

    def query_points(self, *args, **kwargs):
        if self.unreadable:
            self.unreadable -= 1
            raise OSError('the history store is unreachable')
        return super().query_points(*args, **kwargs)


def test_a_watcher_that_cannot_read_its_records_waits_before_acting(
        tmp_path):
    conf = support.make_conf(tmp_path, watcher={'policy': 'reactive',
                                                'dry_run': False})
    history = UnreadableAtFirstStore(path=':memory:')
    driver = sim_driver.SimDriver(conf, history)
    support.place(driver, 'vm-1', [1.9] * 3 * DAY)
    acting = support.build(conf, driver, history)
    driver.fast_forward(DAY * support.STEP_S)
    started = support.run(acting, driver, 1)[0]
    assert (started.decision.action, started.outcome) == (
        'resize_up', 'started')

    # The daemon restarts while the resize waits for its confirmation,
    # and its first read of the decision records fails: without them it
    # neither acts nor forgets the resize; it reads them again next run
    # and confirms it.
    history.unreadable = 1
    again = support.build(conf, driver, history)
    assert again.watcher.run_once(driver.now()) == []
    assert driver.get_instance('vm-1').status == 'VERIFY_RESIZE'
    driver.fast_forward(support.STEP_S)
    support.run(again, driver, 1)
    assert driver.get_instance('vm-1').status == 'ACTIVE'
    assert [r['outcome'] for r in _records(history, driver, 'vm-1')
            if r['decision_id'] == started.record['decision_id']] == [
        'started', 'done']


def test_the_quota_counts_the_flavors_resizes_under_way_go_to(tmp_path):
    # Nova shows the old flavor until a resize is done: two VMs of one
    # project grown in one run each saw the other's 2 vCPUs, and both
    # went to 8 (16 vCPUs for a quota of 10).
    conf = support.make_conf(
        tmp_path, watcher={'policy': 'reactive', 'dry_run': False,
                           'quota_vcpus': 10},
        watcher_policy_reactive={'step_rungs': 2})
    driver, history = support.twin(conf)
    for instance_id in ('vm-1', 'vm-2'):
        support.place(driver, instance_id, [1.9] * 3 * DAY)
    assembled = support.build(conf, driver, history)
    driver.fast_forward(DAY * support.STEP_S)
    steps = assembled.watcher.run_once(driver.now())
    assert [(s.instance_id, s.decision.action, s.outcome, s.detail)
            for s in steps] == [
        ('vm-1', 'resize_up', 'started', 'resize vm-1 from small to large '
         '(8 vCPUs; the guest reboots)'),
        ('vm-2', 'resize_up', 'suppressed',
         'quota: 10 vCPUs held + 6 > 10')]
    vm_1 = driver.get_instance('vm-1')
    assert (vm_1.status, vm_1.flavor['vcpus']) == ('RESIZE', 2)
    driver.fast_forward(support.STEP_S)
    # Once the resize is done the quota still holds vm-2 back.
    steps = support.run(assembled, driver, 2)
    assert [s.outcome for s in steps if s.instance_id == 'vm-2'] == [
        'suppressed', 'suppressed']
    assert driver.get_instance('vm-2').flavor['vcpus'] == 2


def _busy_group(tmp_path, boot_duration=45.0, **placed):
    """A horizontally scaled ``web-1`` (4 vCPUs, at most two members)
    whose every member is busy, a day of its history behind it, under
    ``reactive``; ``(driver, history, the assembled watcher)``."""
    conf = support.make_conf(
        tmp_path, sim={'boot_duration': boot_duration},
        watcher={'policy': 'reactive', 'dry_run': False, 'max_count': 2})
    return _horizontal_web(conf, [7.9] * 3 * DAY, **placed)


def test_a_vm_booted_from_a_volume_gets_a_sibling_booted_from_one(
        tmp_path):
    driver, _history, assembled = _busy_group(tmp_path, volume_backed=True)
    steps = support.run(assembled, driver, 3)
    assert [(s.decision.action, s.outcome) for s in steps][0] == (
        'scale_out', 'started'), [(s.decision.action, s.outcome, s.detail)
                                  for s in steps]
    [sibling] = assembled.watcher.siblings['web-1']
    assert driver.get_instance(sibling).volume_backed is True
    assert driver.twin.workloads[sibling].group == 'web'


def test_a_vm_whose_root_volume_was_not_made_from_an_image_gets_no_sibling(
        tmp_path):
    driver, history, assembled = _busy_group(
        tmp_path, volume_backed=True, volume_made_from='snapshot snap-1')
    steps = support.run(assembled, driver, 3)
    reason = ('its root volume web-1-root was created from snapshot '
              'snap-1, not from an image: a sibling has no image to boot '
              'from')
    assert [(s.decision.action, s.outcome, s.detail) for s in steps] == [
        ('scale_out', 'suppressed', reason)] * 3
    assert [r['guard'] for r in _records(history, driver, 'web-1')] == [
        reason] * 3
    assert [i.instance_id for i in driver.list_instances()] == ['web-1']
    with pytest.raises(cloud_base.CloudError, match='web-1: ' + reason):
        driver.boot_sibling('web-1')


def test_a_sibling_deleted_by_someone_else_leaves_the_group(tmp_path):
    driver, history, assembled = _busy_group(tmp_path)
    watcher = assembled.watcher
    steps = support.run(assembled, driver, 3)
    assert [(s.decision.action, s.outcome) for s in steps][0] == (
        'scale_out', 'started')
    assert steps[-1].decision.reason == 'group at its maximum size'
    [sibling] = watcher.siblings['web-1']
    # An operator (or a failed host) removes the sibling.
    driver.delete_instance(sibling)
    driver.fast_forward(support.STEP_S)
    steps = support.run(assembled, driver, 3)
    assert sibling not in watcher.siblings['web-1']
    started = [s for s in steps if s.outcome == 'started']
    assert [s.decision.action for s in started] == ['scale_out']
    assert started[0].record['inputs']['group_size'] == 1
    assert [i.instance_id for i in driver.list_instances()] == sorted(
        ['web-1'] + watcher.siblings['web-1'])


def test_a_sibling_that_boots_longer_than_a_run_counts_once(tmp_path):
    # Listed while it boots, it joined the group by its metadata, and
    # once more when the boot was seen done.
    driver, history, assembled = _busy_group(tmp_path, boot_duration=400.0)
    watcher = assembled.watcher
    support.run(assembled, driver, 4)
    assert len(watcher.siblings['web-1']) == 1
    situation = watcher.situation(driver.get_instance('web-1'),
                                  driver.now())
    assert situation.group_size == 2


@pytest.mark.parametrize('policy', ['reactive', 'forecast'])
def test_a_vm_without_recent_samples_is_left_alone(tmp_path, policy):
    # Saturated "small" VM, then an hour without any sample (the
    # collector was down): its last sample, an hour old, was taken for
    # now and the VM resized (reactive: a rung a run, to the top;
    # forecast: to the top at once).
    conf = support.make_conf(tmp_path, watcher={'policy': policy,
                                                'dry_run': False})
    driver, history = support.twin(conf)
    support.place(driver, 'vm-1', [1.9] * 3 * DAY)
    assembled = support.build(conf, driver, history)
    driver.fast_forward(DAY * support.STEP_S)
    driver.twin.jump_to(driver.now() + 3600.0)
    for _ in range(3):
        [step] = assembled.watcher.run_once(driver.now())
        assert (step.decision.action, step.outcome) == ('none', None)
        assert step.decision.reason.startswith(
            'the newest CPU utilisation sample is over ')
        assert step.decision.reason.endswith(
            ' s old: nothing is decided until samples come again')
        driver.twin.jump_to(driver.now() + support.STEP_S)
    assert driver.get_instance('vm-1').flavor['vcpus'] == 2
    assert _records(history, driver) == []
    # Samples again: the saturated VM is grown.
    driver.fast_forward(support.STEP_S)
    steps = support.run(assembled, driver, 2)
    assert [(s.decision.action, s.outcome) for s in steps][0] == (
        'resize_up', 'started')


def _held(watcher):
    """Every VM the watcher holds some state of."""
    return set().union(
        watcher._predictions, watcher._predicted, watcher._bounds,
        watcher._vcpus, watcher._ceilings, watcher.errors._by_instance,
        watcher.guard._taken, watcher.guard._proposed)


def test_the_watcher_forgets_a_vm_gone_for_longer_than_it_looks_back(
        tmp_path):
    window = 3600.0
    conf = support.make_conf(tmp_path, watcher={
        'policy': 'reactive', 'dry_run': True, 'history_window': window,
        'ceiling_window': window, 'cycle_window': window,
        'hold_window': window})
    driver, history = support.twin(conf)
    # Each says something once: a profile of its own, an opt-in typo
    # (listed, never watched).  Before: what was said of a VM was kept
    # for ever, one entry per VM and value ever seen.
    support.place(driver, 'gone', [1.9] * 3 * DAY,
                  metadata={'nova_shadow_profile': 'its-own'})
    support.place(driver, 'kept', [1.0] * 3 * DAY)
    support.place(driver, 'typo', [1.0] * 3 * DAY,
                  metadata={'nova_shadow_watch': 'ture'})
    assembled = support.build(conf, driver, history)
    driver.fast_forward(window)
    support.run(assembled, driver, 3)
    assert _held(assembled.watcher) >= {'gone', 'kept'}
    # What it keeps of what it said: one entry per VM and kind, whatever
    # values the VM's metadata took.
    for profile in ('p1', 'p2', 'p3'):
        driver._metadata['gone']['nova_shadow_profile'] = profile
        support.run(assembled, driver, 1)
    assert len(assembled.watcher._warned) == 2
    # One no longer listed is forgotten at once: it is not watched.
    driver.delete_instance('typo')
    support.run(assembled, driver, 1)
    assert len(assembled.watcher._warned) == 1

    # Deleted, the VM is still remembered within the window (a listing
    # that failed for a while must not wipe what is known)...
    driver.delete_instance('gone')
    support.run(assembled, driver, int(window // support.STEP_S))
    assert 'gone' in _held(assembled.watcher)
    # ... and forgotten after it, however many VMs come and go.
    support.run(assembled, driver, 2)
    assert 'gone' not in _held(assembled.watcher)
    assert 'kept' in _held(assembled.watcher)
    assert len(assembled.watcher._warned) == 0


class _Webhook(http_server.BaseHTTPRequestHandler):
    """An operator's scale webhook: keeps the JSON it is sent (in
    ``server.calls``) and answers 202 with the JSON body
    ``server.answer(call)`` gives."""

    def do_POST(self):
        body = json.loads(self.rfile.read(
            int(self.headers['Content-Length'])))
        self.server.calls.append(body)
        answer = json.dumps(self.server.answer(body)).encode()
        self.send_response(202)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def _serving_webhook(answer=None):
    """A :class:`_Webhook` serving on loopback until the test ends."""
    server = http_server.HTTPServer(('127.0.0.1', 0), _Webhook)
    server.calls = []
    server.answer = answer
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def webhook():
    """A webhook whose answer names the stack update it began."""
    updates = itertools.count(1)
    yield from _serving_webhook(
        lambda call: {'stack_update': 'upd-%d' % next(updates)})


def _webhook_conf(tmp_path, url):
    """A reactive watcher that acts, scaling out to 2 through ``url``."""
    return support.make_conf(
        tmp_path, watcher={'policy': 'reactive', 'dry_run': False,
                           'max_count': 2, 'scale_webhook': url})


def test_a_webhook_scale_out_records_the_answer_not_an_outcome(
        tmp_path, webhook):
    # The webhook's effect is the orchestrator's: the watcher records
    # the call and its answer, and, restarted, never follows it as
    # boots of siblings it did not boot.
    conf = _webhook_conf(tmp_path,
                         'http://127.0.0.1:%d/scale' % webhook.server_port)
    driver, history, assembled = _horizontal_web(conf, [7.9] * 3 * DAY)
    step = support.run(assembled, driver, 1)[0]
    assert webhook.calls == [{'instance': 'web-1', 'action': 'scale_out',
                              'target_count': 2, 'group_size': 1,
                              'reason': step.decision.reason}]
    assert (step.decision.action, step.outcome) == ('scale_out', 'started')
    assert step.detail == ('call the scale webhook (out): HTTP 202 '
                           'Accepted: {"stack_update": "upd-1"}')
    assert step.record['webhook'] == {
        'status': 202, 'answer': '{"stack_update": "upd-1"}',
        'group_size': None}
    assert step.record['group_size'] == 2
    assert step.record['siblings'] == []
    decision_id = step.record['decision_id']
    assert assembled.watcher.pending == {}

    # The daemon restarts: a new watcher over the same cloud and history.
    again = support.build(conf, driver, history)
    support.run(again, driver, 2)
    assert again.watcher.pending == {}
    written = [r for r in _records(history, driver, 'web-1')
               if r['decision_id'] == decision_id]
    assert [(r['outcome'], r['detail']) for r in written] == [
        (step.outcome, step.detail)]


def test_a_webhook_record_written_before_its_answer_was_kept_is_not_followed(
        tmp_path, webhook):
    # A record without ``webhook``, as the watcher wrote them before: a
    # restarted watcher knows it by its detail.
    conf = _webhook_conf(tmp_path,
                         'http://127.0.0.1:%d/scale' % webhook.server_port)
    driver, history, _assembled = _horizontal_web(conf, [7.9] * 3 * DAY)
    history.write([records.decision_point({
        'decision_id': 'd-1', 'instance': 'web-1', 'action': 'scale_out',
        'at': driver.now(), 'outcome': 'started',
        'detail': 'call the scale webhook (out)', 'siblings': []},
        driver.now())])
    again = support.build(conf, driver, history)
    support.run(again, driver, 2)
    assert [r['outcome'] for r in _records(history, driver, 'web-1')
            if r['decision_id'] == 'd-1'] == ['started']
    # Taken within the cooldown all the same: the webhook is not called
    # again.
    assert webhook.calls == []


def test_a_webhook_that_cannot_be_reached_fails_without_its_signature(
        tmp_path):
    with socket.socket() as closed:
        closed.bind(('127.0.0.1', 0))
        port = closed.getsockname()[1]
    conf = _webhook_conf(
        tmp_path, 'http://127.0.0.1:%d/scale?signature=s3cr3t' % port)
    driver, history, assembled = _horizontal_web(conf, [7.9] * 3 * DAY)
    step = support.run(assembled, driver, 1)[0]
    assert (step.decision.action, step.outcome) == ('scale_out', 'failed')
    assert step.detail.startswith('call the scale webhook (out): ')
    assert 'refused' in step.detail
    assert 's3cr3t' not in step.detail
    assert step.record['webhook'] is None


def test_a_failed_start_holds_the_vm_in_the_running_and_a_restarted_watcher(
        tmp_path):
    # The twin refuses, as Nova's API does, a resize to a flavor whose
    # disk (the ladder's 20 GB) is smaller than the VM's image-backed
    # 40 GB.  The attempt holds the VM for the immunity window in the
    # watcher that made it as in one restarted from its records; the
    # running one retried at every run.
    conf = support.make_conf(tmp_path, watcher={
        'policy': 'reactive', 'dry_run': False,
        'immunity_window': 3 * support.STEP_S})
    driver, history = support.twin(conf)
    support.place(driver, 'vm-1', [1.9] * 3 * DAY, disk_gb=40)
    running = support.build(conf, driver, history)
    driver.fast_forward(DAY * support.STEP_S)
    [step] = support.run(running, driver, 1)
    assert (step.decision.action, step.outcome) == ('resize_up', 'failed')
    assert "Flavor's disk is smaller" in step.detail
    for _ in range(2):
        restarted = support.build(conf, driver, history)
        now = driver.now()
        [again] = restarted.watcher.run_once(now)
        [then] = running.watcher.run_once(now)
        assert (again.outcome, again.detail) == (then.outcome, then.detail)
        assert then.outcome == 'suppressed'
        assert then.detail.startswith(
            'immunity window: last action (resize_up, its start failed) ')
        driver.fast_forward(support.STEP_S)
    # After the window it is asked again, once.
    [step] = support.run(running, driver, 1)
    assert step.outcome == 'failed'


@pytest.fixture
def orchestrator():
    """An operator's scale webhook in front of an orchestrator that
    really scales ``web-1``'s group in the twin (the test sets
    ``server.answer``: it does, and gives the JSON answer)."""
    yield from _serving_webhook()


def _members_of(driver, members, size):
    """Boot or delete the orchestrator's ``members`` of ``web-1``'s group
    (none of them the watcher's siblings, nor watched) to ``size`` in
    all."""
    while 1 + len(members) < size:
        members.append(driver.boot_sibling(
            'web-1', metadata={'nova_shadow_watch': 'false'}).instance_id)
    while 1 + len(members) > size:
        driver.delete_instance(members.pop())


def _calls(server):
    return [(c['action'], c.get('group_size'), c['target_count'])
            for c in server.calls]


def test_a_webhook_group_is_counted_when_its_answer_gives_no_size(
        tmp_path, orchestrator):
    # 11 busy vCPUs over 4-vCPU members: the group needs 4 of them, then
    # 1 once the demand falls.  The orchestrator sets the group to the
    # size asked and says nothing of it; the watcher took the group for
    # its original alone and asked for 2 members again and again, and
    # never for fewer than 1.
    window = 3600.0
    conf = support.make_conf(tmp_path, watcher={
        'policy': 'reactive', 'dry_run': False, 'max_count': 4,
        'scale_webhook': 'http://127.0.0.1:%d/scale'
        % orchestrator.server_port,
        'history_window': window, 'ceiling_window': window,
        'hold_window': window, 'cycle_window': window})
    members = []
    driver, history, assembled = _horizontal_web(
        conf, [11.0] * (DAY + 24) + [1.0] * 200)

    def orchestrate(call):
        _members_of(driver, members, call['target_count'])
        return {'stack_update': 'upd-%d' % len(orchestrator.calls)}
    orchestrator.answer = orchestrate
    support.run(assembled, driver, 10)
    assert _calls(orchestrator) == [('scale_out', 1, 2), ('scale_out', 2, 3),
                                    ('scale_out', 3, 4)]
    assert 1 + len(members) == 4
    written = [r for r in _records(history, driver, 'web-1')
               if r['outcome'] == 'started']
    assert [(r['inputs']['group_size'], r['group_size'],
             r['webhook']['group_size']) for r in written] == [
        (1, 2, None), (2, 3, None), (3, 4, None)]
    # 11 busy vCPUs seen as such: 4 members at 69 % each.
    steps = support.run(assembled, driver, 10)
    assert {(s.decision.action, s.outcome) for s in steps} == {
        ('none', None)}

    # Restarted after more than the decision records' window, the
    # watcher takes the group's size back from its forecasts, and scales
    # the group in once the demand falls.
    again = support.build(conf, driver, history)
    support.run(again, driver, 40)
    assert _calls(orchestrator)[3:] == [
        ('scale_in', 4, 3), ('scale_in', 3, 2), ('scale_in', 2, 1)]
    assert members == []


def test_a_webhook_group_takes_the_size_its_answer_states(
        tmp_path, orchestrator):
    # The orchestrator adds one member a call, whatever the size asked
    # (a Heat scaling policy's change in capacity), and answers the
    # group's size: the group had a member more than the watcher knew.
    conf = support.make_conf(tmp_path, watcher={
        'policy': 'reactive', 'dry_run': False, 'max_count': 4,
        'scale_webhook': 'http://127.0.0.1:%d/scale'
        % orchestrator.server_port})
    members = []
    driver, history, assembled = _horizontal_web(conf, [11.0] * 3 * DAY)
    _members_of(driver, members, 2)

    def orchestrate(call):
        _members_of(driver, members, len(members) + 2)
        return {'group_size': 1 + len(members)}
    orchestrator.answer = orchestrate
    support.run(assembled, driver, 8)
    assert _calls(orchestrator) == [('scale_out', 1, 2), ('scale_out', 3, 4)]
    written = [r for r in _records(history, driver, 'web-1')
               if r['outcome'] == 'started']
    assert [(r['group_size'], r['webhook']['group_size'])
            for r in written] == [(3, 3), (4, 4)]
    # A restarted watcher knows the group's size from the records.
    again = support.build(conf, driver, history)
    [step] = support.run(again, driver, 1)
    assert step.decision.action == 'none'
    assert again.watcher.situation(
        driver.get_instance('web-1'), driver.now()).group_size == 4


def test_a_watcher_restarted_in_dry_run_records_the_sibling_it_would_delete(
        tmp_path):
    # A sibling still booting at its scale-out's deadline is deleted by
    # an acting watcher; one restarted in dry-run deletes nothing, and
    # its record says what it would have done.  Before: it said only
    # that the scale-out timed out, as if nothing were to be done.
    driver, history, acting = _busy_group(tmp_path, boot_duration=3600.0)
    [started] = support.run(acting, driver, 1)
    assert (started.decision.action, started.outcome) == (
        'scale_out', 'started'), started.detail
    [sibling] = started.record['siblings']
    conf = acting.watcher.conf
    conf.set_override('dry_run', True, group='watcher')
    observing = support.build(conf, driver, history)
    watcher = observing.watcher
    assert watcher.restore(driver.now())
    deadline = watcher.pending['web-1'].deadline
    driver.fast_forward(deadline + 1.0 - driver.now())
    watcher.run_once(driver.now())
    assert 'web-1' not in watcher.pending
    [end] = [r for r in _records(history, driver, 'web-1')
             if r['decision_id'] == started.record['decision_id']][1:]
    assert end['outcome'] == 'failed'
    assert end['detail'] == 'timed out (%s BUILD), would delete it' % (
        sibling)
    assert (end['discarded'], end['would_discard']) == ([], [sibling])
    # Nothing was deleted.
    assert driver.twin.workloads[sibling].stopped_at is None


def test_a_restored_scale_out_keeps_the_deadline_it_started_with(tmp_path):
    # A sibling boots in [watcher] boot_duration, not resize_duration:
    # the restored scale-out ends when the running one would have.
    # Before: a restart gave every action under way a resize's deadline.
    driver, history, acting = _busy_group(tmp_path, boot_duration=3600.0)
    [started] = support.run(acting, driver, 1)
    assert (started.decision.action, started.outcome) == (
        'scale_out', 'started'), started.detail
    running = acting.watcher.pending['web-1']
    restarted = support.build(acting.watcher.conf, driver, history)
    assert restarted.watcher.restore(driver.now())
    restored = restarted.watcher.pending['web-1']
    assert restored.deadline - restored.started_at == pytest.approx(
        running.deadline - running.started_at)
    assert running.deadline - running.started_at == pytest.approx(
        4 * acting.watcher.lead_s['horizontal'])


def test_a_watcher_restarted_long_after_a_resize_confirms_it(tmp_path):
    # The watcher stops while a resize waits for its confirmation, and
    # comes back after longer than any window it reads its records over.
    # Before: the restart did not read that far back, and the VM stayed
    # in VERIFY_RESIZE (Nova confirms none by itself by default).
    conf = support.make_conf(tmp_path, watcher={'policy': 'reactive',
                                                'dry_run': False})
    driver, history = support.twin(conf)
    support.place(driver, 'vm-1', [1.9] * 3 * DAY)
    acting = support.build(conf, driver, history)
    driver.fast_forward(DAY * support.STEP_S)
    started = support.run(acting, driver, 1)[0]
    assert (started.decision.action, started.outcome) == (
        'resize_up', 'started')
    assert driver.get_instance('vm-1').status == 'VERIFY_RESIZE'
    again = support.build(conf, driver, history)
    opts = again.watcher.opts
    window = max(opts.cycle_window, opts.immunity_window, opts.cooldown,
                 opts.ceiling_window, opts.history_window, 3600.0)
    assert again.watcher.restore(driver.now() + 2 * window)
    again.watcher.run_once(driver.now())
    assert driver.get_instance('vm-1').status == 'ACTIVE'
    assert [r['outcome'] for r in _records(history, driver, 'vm-1')
            if r['decision_id'] == started.record['decision_id']] == [
        'started', 'done']
