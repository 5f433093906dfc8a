"""Work nobody waits for: an evaluation ends when its caller stops
waiting (the caller's deadline travels with the request), so its slot is
free for the next call; an evaluation killed with its process is reported
``interrupted`` after a restart."""

import os
import signal
import time
import uuid

import oslo_messaging as messaging
import pytest

from shadow_service import manager as manager_mod
from tests import service_support
from tests.functional.shadow_service.cmd import test_service_daemon as d

pytestmark = pytest.mark.rabbit

REQUEST = {'flavor': {'vcpus': 2, 'ram_mb': 2048}, 'profile': 'web'}
HOSTS = [{'host': 'node-01'}, {'host': 'node-02'}]


def _one_slot_service(rabbit_url):
    """A service with one evaluation slot whose evaluations measure
    their whole budget."""
    return service_support.RunningService(
        rabbit_url, shadow={'max_concurrent_evaluations': 1,
                            'min_run_time': 60,
                            'confidence_target': 1.0,
                            # Measure the whole budget: the racing
                            # schedule would settle this ranking early.
                            'evaluation_schedule': 'pool'}).start()


def test_an_evaluation_ends_when_its_caller_stops_waiting(rabbit_url):
    running = _one_slot_service(rabbit_url)
    try:
        running.wait_until_serving()
        api = running.client()
        started = time.monotonic()
        # A 120 s budget for a caller that waits 4 s: the service answers
        # with what it has just before the caller gives up (or, on a
        # loaded machine, too late for it): either way the evaluation ends
        # then, not after 120 s.
        try:
            ranking = api.rank_hosts({}, REQUEST, HOSTS, 120.0, timeout=4)
        except messaging.MessagingTimeout:
            ranking = None
        if ranking is not None:
            assert time.monotonic() - started < 5
            assert ranking['status'] == 'finished'
        # Before: the slot stayed taken for the whole 120 s budget.
        deadline = time.monotonic() + 30
        while running.manager._running and time.monotonic() < deadline:
            time.sleep(0.2)
        assert running.manager._running == 0
        assert time.monotonic() - started < 30
        ranking = api.rank_hosts({}, REQUEST, HOSTS, 2.0, timeout=60)
        assert ranking['status'] == 'finished'
    finally:
        running.stop()


def test_history_only_requests_take_no_slot(rabbit_url):
    # One slot, taken by an evaluation that measures for 60 s: a request
    # asked of history only (the weigher's refresh or record of a cached
    # answer) is still answered, a real one is busy.
    running = _one_slot_service(rabbit_url)
    try:
        running.wait_until_serving()
        api = running.client()
        api.start_evaluation({}, REQUEST, HOSTS, 60.0, timeout=30)
        assert running.manager._running == 1
        columns = {'host': [h['host'] for h in HOSTS]}
        reply = api.rank_host_columns({}, REQUEST, columns, 5.0, timeout=30,
                                      history_only=True, record=False)
        assert reply['source'] == 'history'
        assert running.manager._running == 1
        with pytest.raises(Exception) as info:
            api.rank_host_columns({}, REQUEST, columns, 5.0, timeout=30)
        assert service_support.typed_error(info.value, 'ServiceBusy')
    finally:
        for evaluation in list(running.evaluations.values()):
            evaluation.cancelled = True
        running.stop()


def test_caller_left_reads_the_context():
    now = 1_000_000.0
    assert manager_mod.caller_left({}, now) is None
    assert manager_mod.caller_left(
        {'shadow_sent_at': now - 1, 'shadow_wait_s': 5}, now) == 4
    # A sending time far in the future counts from receipt.
    assert manager_mod.caller_left(
        {'shadow_sent_at': now + 3600, 'shadow_wait_s': 5}, now) == 5
    for bad in ('x', float('nan'), -1, True):
        assert manager_mod.caller_left({'shadow_wait_s': bad}, now) is None


def test_a_killed_evaluation_is_reported_interrupted(tmp_path, rabbit_url):
    daemon = d.Daemon(tmp_path, rabbit_url,
                      service_support.unique_topic())
    with open(daemon.conf_path, 'a') as f:
        # The pool schedule measures the whole budget: racing may settle
        # two hosts before the test sees the evaluation running.  The
        # twin's clock runs at real time: unpaced, two hosts' 120 s of
        # shadow time (after which a confidence of 1.0 ends the pool) can
        # pass before the test's first look.
        f.write('[shadow]\nmin_run_time = 120\nconfidence_target = 1.0\n'
                'evaluation_schedule = pool\n[sim]\nspeedup = 1\n')
    daemon.start()
    try:
        evaluation_id = daemon.api.start_evaluation(
            {}, REQUEST, HOSTS, 300.0, timeout=60)
        deadline = time.monotonic() + 60
        while True:
            state = daemon.api.get_evaluation({}, evaluation_id, timeout=30)
            if state['status'] == 'running' and state['progress'] > 0:
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.5)
    finally:
        os.killpg(daemon.proc.pid, signal.SIGKILL)
        daemon.proc.wait(30)
        daemon.log.close()
    daemon.start()
    try:
        state = daemon.api.get_evaluation({}, evaluation_id, timeout=30)
        assert state['status'] == 'interrupted', state
        assert state['ranking'] is None
        with pytest.raises(Exception) as info:
            daemon.api.get_evaluation({}, str(uuid.uuid4()), timeout=30)
        assert service_support.typed_error(info.value, 'EvaluationNotFound')
    finally:
        assert daemon.stop() == 0
