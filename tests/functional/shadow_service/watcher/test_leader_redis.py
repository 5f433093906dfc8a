"""Several watchers, one leader: tooz leader election on the real Redis.

Only the leader acts.  When it dies (no release, no more heartbeats: what
Redis sees of a killed process) the lock expires after ``leader_timeout``
and another watcher takes over, rebuilding what the old leader had under
way from the decision records, so no action is done twice.
"""

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
