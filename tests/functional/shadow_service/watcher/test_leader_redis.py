"""Several watchers, one leader: tooz leader election on the real Redis.

Only the leader acts.  When it dies (no release, no more heartbeats: what
Redis sees of a killed process) the lock expires after ``leader_timeout``
and another watcher takes over, rebuilding what the old leader had under
way from the decision records, so no action is done twice.
"""

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import numpy as np
import pytest

from shadow_service.watcher import leader as leader_mod
from shadow_service.watcher import records
from tests import watcher_support as support

pytestmark = pytest.mark.redis

DAY = 288


def _group():
    return 'test-%s' % uuid.uuid4().hex[:12]


def _wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_killed_leader_process_hands_the_lock_over(redis_url):
    group = _group()
    script = textwrap.dedent("""\
        import sys, time
        from shadow_service.watcher import leader
        me = leader.Leadership(%r, %r, member_id='doomed', timeout=2)
        while not me.is_leader():
            time.sleep(0.1)
        print('leader', flush=True)
        while True:
            me.heartbeat()
            time.sleep(0.2)
        """ % (redis_url, group))
    proc = subprocess.Popen([sys.executable, '-c', script],
                            stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    other = leader_mod.Leadership(redis_url, group, member_id='waiting',
                                  timeout=2)
    try:
        assert proc.stdout.readline().strip() == 'leader'
        assert not other.is_leader()
        time.sleep(2.5)             # heartbeats keep the lock past its TTL
        assert not other.is_leader()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert _wait_for(other.is_leader, 6.0)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        other.stop()


def test_the_new_leader_finishes_the_old_ones_resize_without_redoing_it(
        tmp_path, redis_url):
    conf = support.make_conf(tmp_path, watcher={
        'policy': 'forecast', 'dry_run': False,
        'coordination_url': redis_url, 'coordination_group': _group(),
        'leader_timeout': 1.0})
    driver, history = support.twin(conf)
    ramp = [1.0] * DAY + list(np.linspace(1.0, 6.0, 24)) + [6.0] * 200
    support.place(driver, 'vm-1', ramp)
    first = support.build(conf, driver, history)
    second = support.build(conf, driver, history)
    try:
        driver.fast_forward(DAY * support.STEP_S)
        started = []
        for _ in range(10):
            steps = first.watcher.run_once(driver.now())
            assert second.watcher.run_once(driver.now()) == []
            started += [s for s in steps if s.outcome == 'started']
            if started:
                break
            driver.fast_forward(support.STEP_S)
        assert started, 'the leader never acted'
        decision_id = started[0].record['decision_id']
        # The leader dies with its resize under way: it is never called
        # again (no release, no heartbeat) and its lock expires after
        # leader_timeout.
        driver.fast_forward(support.STEP_S)
        assert _wait_for(second.watcher.leader.is_leader, 5.0)
        steps = []
        for _ in range(3):
            steps += second.watcher.run_once(driver.now())
            driver.fast_forward(support.STEP_S)
        found = records.read(history, 0, driver.now() + 1, 'vm-1')
        mine = [r['outcome'] for r in found
                if r['decision_id'] == decision_id]
        assert mine == ['started', 'done']
        assert [s for s in steps if s.outcome == 'started'] == []
        # One resize in the twin: the VM's first segment and one more.
        segments = [w for w in driver.twin.workloads.values()
                    if w.reported_id == 'vm-1']
        assert len(segments) == 2
        assert driver.get_instance('vm-1').status == 'ACTIVE'
    finally:
        second.close()
        first.parts.close()


def test_a_leader_whose_lock_was_taken_no_longer_leads(redis_url):
    # A run longer than leader_timeout (no heartbeat meanwhile): the
    # lock expires and another watcher takes it.
    group = _group()
    first = leader_mod.Leadership(redis_url, group, member_id='first',
                                  timeout=1)
    second = leader_mod.Leadership(redis_url, group, member_id='second',
                                   timeout=1)
    try:
        assert first.is_leader()
        time.sleep(1.5)
        assert second.is_leader()
        assert not first.is_leader()
        assert not first.leading and not first.still_leading()
        first.heartbeat()
        assert not first.leading
        assert second.is_leader() and second.still_leading()
        # Once the other gives the lock up, the first takes it again, in
        # a new term (another watcher may have acted meanwhile).
        term = first.term
        second.stop()
        assert first.is_leader() and first.term == term + 1
    finally:
        first.stop()
        second.stop()


def _two_watchers(tmp_path, redis_url, demand, **watcher):
    options = {'policy': 'reactive', 'dry_run': False,
               'coordination_url': redis_url,
               'coordination_group': _group(), 'leader_timeout': 1.0}
    options.update(watcher)
    conf = support.make_conf(tmp_path, watcher=options)
    driver, history = support.twin(conf)
    support.place(driver, 'vm-1', demand)
    return conf, driver, history


def test_a_watcher_whose_lock_expired_does_not_act_beside_the_new_leader(
        tmp_path, redis_url):
    _conf, driver, history = _two_watchers(
        tmp_path, redis_url, [1.0] * (DAY + 1) + [1.9] * 200)
    first = support.build(_conf, driver, history)
    second = support.build(_conf, driver, history)
    try:
        driver.fast_forward(DAY * support.STEP_S)
        assert first.watcher.run_once(driver.now())
        assert second.watcher.run_once(driver.now()) == []
        # The first's next run is late (longer than leader_timeout):
        # the second takes the lock meanwhile and grows the busy VM.
        time.sleep(1.5)
        driver.fast_forward(support.STEP_S)
        started = second.watcher.run_once(driver.now())
        assert [(s.decision.action, s.outcome) for s in started] == [
            ('resize_up', 'started')]
        for _ in range(4):
            assert first.watcher.run_once(driver.now()) == []
            assert not first.watcher.leader.leading
            second.watcher.run_once(driver.now())
            driver.fast_forward(support.STEP_S)
        found = records.read(history, 0, driver.now() + 1, 'vm-1')
        assert [(r['action'], r['outcome']) for r in found
                if r['outcome'] != 'suppressed'] == [
            ('resize_up', 'started'), ('resize_up', 'done')]
    finally:
        second.close()
        first.close()


def test_a_leader_whose_ranking_outlasts_its_lock_does_not_act(
        tmp_path, redis_url):
    # Ranking a migration's hosts may take up to ranking_budget (10 s
    # by default), longer than leader_timeout: the lock expires and
    # another watcher takes it before the migration would start.
    conf = support.make_conf(tmp_path, cores=4, watcher={
        'policy': 'reactive', 'dry_run': False, 'steal_window': 900.0,
        'coordination_url': redis_url, 'coordination_group': _group(),
        'leader_timeout': 1.0},
        # (Starved by its neighbours, the VM is not shrunk meanwhile.)
        watcher_policy_reactive={'low_pct': 5.0})
    driver, history = support.twin(conf)
    support.place(driver, 'vm-1', [2.0] * 3 * DAY, flavor='medium')
    for i in range(3):
        driver.place_vm(
            {'flavor': {'vcpus': 4, 'ram_mb': 4096}}, 'host-1',
            instance_id='noisy-%d' % i,
            profile=support.demand_profile([0.0] * DAY + [4.0] * DAY))
    other = support.build(conf, driver, history)
    ranked = []

    def slow_ranker(instance, profile, hosts):
        time.sleep(1.5)
        ranked.append(other.watcher.leader.is_leader())
        return {h.host: 1.0 for h in hosts}

    first = support.build(conf, driver, history, ranker=slow_ranker)
    try:
        driver.fast_forward(DAY * support.STEP_S)
        steps = []
        for _ in range(12):
            steps += first.watcher.run_once(driver.now())
            if ranked:
                break
            driver.fast_forward(support.STEP_S)
        assert ranked == [True]
        assert [s for s in steps if s.outcome] == []
        assert driver.get_instance('vm-1').host == 'host-1'
        assert records.read(history, 0, driver.now() + 1) == []
        assert not first.watcher.leader.leading
        # The new leader moves the VM (its ranker: Nova's choice).
        moved = other.watcher.run_once(driver.now())
        assert [(s.decision.action, s.outcome) for s in moved] == [
            ('live_migrate', 'started')]
    finally:
        first.close()
        other.close()


def test_a_backend_that_stops_answering_means_not_leading(own_redis,
                                                           caplog):
    # The watcher's own Redis stalls (SIGSTOP), as a hung server or a
    # network partition does; with a socket timeout each call fails
    # within seconds (a refused connection takes tooz about a minute).
    caplog.set_level(logging.INFO, logger=leader_mod.__name__)
    lead = leader_mod.Leadership(
        own_redis.url + '?socket_timeout=0.5&socket_connect_timeout=0.5',
        _group(), member_id='lead', timeout=60)
    try:
        assert lead.is_leader()
        own_redis.pause()
        lead.heartbeat()                # the daemon's, between runs
        assert not lead.leading and not lead.still_leading()
        assert not lead.is_leader()     # the next run's
        failed = [r for r in caplog.records
                  if r.getMessage().startswith('Leader election failed')]
        assert len(failed) == 1
        own_redis.resume()
        # The lock is still its own: it leads on in the term it took it
        # in (no other watcher can have led meanwhile).
        assert lead.is_leader() and lead.term == 1
        assert 'The coordination backend answers again' in caplog.text
    finally:
        own_redis.resume()
        lead.stop()
