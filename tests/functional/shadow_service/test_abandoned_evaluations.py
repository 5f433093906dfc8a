"""Work nobody waits for: an evaluation ends when its caller stops
waiting (the caller's deadline travels with the request), so its slot is
free for the next call; an evaluation killed with its process is reported
``interrupted`` after a restart."""

import os
import signal
import threading
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


def _one_slot_service(rabbit_url, slots=1, sim=None, **shadow):
    """A service with one evaluation slot (or ``slots``) whose
    evaluations measure their whole budget (on the twin's clock:
    ``sim={'speedup': 1}`` paces it at real time)."""
    return service_support.RunningService(
        rabbit_url, sim=sim or {},
        shadow=dict({'max_concurrent_evaluations': slots,
                     'min_run_time': 60,
                     'confidence_target': 1.0,
                     # Measure the whole budget: the racing schedule
                     # would settle this ranking early.
                     'evaluation_schedule': 'pool'}, **shadow)).start()


def _wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.1)
    return predicate()



def _cancel_and_stop(running):
    """Stop ``running`` without waiting out the budgets of the
    evaluations still under way."""
    for evaluation in list(running.evaluations.values()):
        evaluation.cancelled = True
    running.stop()

def test_an_unpolled_evaluation_is_cancelled_and_frees_its_slot(
        rabbit_url, caplog):
    # Paced at real time: the evaluation would run 120 s.
    running = _one_slot_service(rabbit_url, sim={'speedup': 1},
                                unpolled_evaluation_timeout=2)
    try:
        running.wait_until_serving()
        api = running.client()
        started = time.monotonic()
        # Its caller never polls it (it died or gave up).
        evaluation_id = api.start_evaluation({}, REQUEST, HOSTS, 120.0,
                                             timeout=30)
        assert running.manager._running == 1
        # Before: the slot stayed taken for the whole 120 s budget.
        assert _wait_for(lambda: running.manager._running == 0, 60)
        assert time.monotonic() - started < 60
        state = api.get_evaluation({}, evaluation_id, timeout=30)
        assert state['status'] == 'cancelled'
        # Cancelled as cancel_evaluation does: its shadows are deleted.
        assert running.parts.driver.list_shadows() == []
        assert any('Cancelling evaluation %s: not polled' % evaluation_id
                   in r.getMessage() for r in caplog.records
                   if r.levelname == 'WARNING')
        # The slot takes the next evaluation.
        again = api.start_evaluation({}, REQUEST, HOSTS, 120.0, timeout=30)
        assert api.get_evaluation({}, again, timeout=30)['status'] in (
            'pending', 'running')
    finally:
        _cancel_and_stop(running)


def test_a_polled_or_detached_evaluation_is_not_cancelled(rabbit_url):
    running = _one_slot_service(rabbit_url, slots=2, sim={'speedup': 1},
                                unpolled_evaluation_timeout=2)
    try:
        running.wait_until_serving()
        api = running.client()
        polled = api.start_evaluation({}, REQUEST, HOSTS, 120.0, timeout=30)
        # A pre-flight evaluation for a later shadow_evaluation hint:
        # nothing polls it.
        detached = api.start_evaluation({}, REQUEST, HOSTS, 120.0,
                                        timeout=30, detached=True)
        # Polled every second (the slowest client's interval) for three
        # times the timeout: neither is cancelled.
        until = time.monotonic() + 6
        while time.monotonic() < until:
            state = api.get_evaluation({}, polled, timeout=30)
            assert state['status'] in ('pending', 'running'), state
            time.sleep(1.0)
        evaluations = running.manager._evaluations
        assert not evaluations[polled].cancelled
        assert not evaluations[detached].cancelled
        assert running.manager._running == 2
        # Once its caller stops polling, the polled one is cancelled; the
        # detached one runs on.
        assert _wait_for(lambda: evaluations[polled].cancelled, 30)
        assert _wait_for(lambda: running.manager._running == 1, 60)
        assert not evaluations[detached].cancelled
        assert api.get_evaluation({}, detached, timeout=30)['status'] in (
            'pending', 'running')
    finally:
        _cancel_and_stop(running)


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


def test_a_stopping_service_ends_the_calls_under_way(rabbit_url):
    """Stopping answers a call under way with what its shadows measured
    and deletes them, instead of waiting out its budget: oslo.service
    kills a worker [DEFAULT] graceful_shutdown_timeout (60 s) after
    SIGTERM, shadows and all."""
    running = _one_slot_service(rabbit_url, sim={'speedup': 1})
    answers = []
    try:
        running.wait_until_serving()
        api = running.client()
        caller = threading.Thread(target=lambda: answers.append(
            api.rank_hosts({}, REQUEST, HOSTS, 40.0, timeout=60)))
        caller.start()
        assert _wait_for(lambda: running.parts.driver.list_shadows(), 20)
        started = time.monotonic()
        running.stop()
        # Before: the stop waited the call's whole 40 s budget.
        stopped_in = time.monotonic() - started
        caller.join(30)
        assert stopped_in < 15, stopped_in
        assert [a['status'] for a in answers] == ['cancelled']
        assert {h['host'] for h in answers[0]['hosts']} == {
            h['host'] for h in HOSTS}
        assert running.parts.driver.list_shadows() == []
    finally:
        _cancel_and_stop(running)


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
        _cancel_and_stop(running)


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
