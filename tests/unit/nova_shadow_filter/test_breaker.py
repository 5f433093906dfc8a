import threading
import time

import pytest

from nova_shadow_filter import breaker


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_breaker_opens_after_threshold_and_half_opens_after_reset():
    clock = FakeClock()
    cb = breaker.CircuitBreaker(failure_threshold=2, reset_timeout=10,
                                clock=clock)
    assert cb.allow()
    assert cb.record_failure() is False
    assert cb.state == 'closed'
    assert cb.record_failure() is True
    assert cb.state == 'open'
    assert not cb.allow()
    clock.now = 10
    assert cb.state == 'half-open'
    assert cb.allow()
    assert not cb.allow(), 'only one trial call at a time'
    cb.record_failure()
    assert cb.state == 'open'
    clock.now = 20
    assert cb.allow()
    cb.record_success()
    assert cb.state == 'closed'
    assert cb.allow() and cb.allow()


def test_call_with_deadline_returns_value_and_reraises():
    assert breaker.call_with_deadline(lambda: 42, 1.0) == 42
    with pytest.raises(ZeroDivisionError):
        breaker.call_with_deadline(lambda: 1 / 0, 1.0)


def test_call_with_deadline_stops_waiting_for_a_blocked_call():
    release = threading.Event()
    start = time.monotonic()
    with pytest.raises(breaker.DeadlineExceeded):
        breaker.call_with_deadline(release.wait, 0.2)
    assert time.monotonic() - start < 1.0
    release.set()


def test_call_with_deadline_reuses_its_helper_thread():
    first = breaker.call_with_deadline(threading.get_ident, 1.0)
    again = [breaker.call_with_deadline(threading.get_ident, 1.0)
             for _ in range(5)]
    assert first != threading.get_ident(), 'the call runs in a helper'
    assert set(again) == {first}, 'one thread serves calls one by one'


def test_an_overrunning_call_keeps_its_thread_and_others_go_on():
    release = threading.Event()
    blocked = []

    def block():
        blocked.append(threading.get_ident())
        release.wait()
        return 'late'

    with pytest.raises(breaker.DeadlineExceeded):
        breaker.call_with_deadline(block, 0.1)
    # The blocked helper is busy: the next calls run on another thread.
    other = breaker.call_with_deadline(threading.get_ident, 1.0)
    assert other != blocked[0]
    assert breaker.call_with_deadline(lambda: 7, 1.0) == 7
    release.set()
    # Once its call returns, the helper waits for calls again; no more
    # helpers are kept idle than MAX_IDLE_HELPERS.
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        with breaker._IDLE_LOCK:
            idle = [h.ident for h in breaker._IDLE]
        if blocked[0] in idle:
            break
        time.sleep(0.01)
    assert blocked[0] in idle
    assert len(idle) <= breaker.MAX_IDLE_HELPERS


def test_idle_helpers_are_bounded():
    release = threading.Event()
    started = threading.Semaphore(0)

    def block():
        started.release()
        release.wait()

    before = {t for t in threading.enumerate() if t.name == 'shadow-rpc'}
    count = breaker.MAX_IDLE_HELPERS + 3
    for _ in range(count):
        with pytest.raises(breaker.DeadlineExceeded):
            breaker.call_with_deadline(block, 0.01)
    for _ in range(count):
        assert started.acquire(timeout=5.0)
    release.set()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        alive = [t for t in threading.enumerate()
                 if t.name == 'shadow-rpc' and t not in before]
        if len(alive) <= breaker.MAX_IDLE_HELPERS:
            break
        time.sleep(0.01)
    assert len(alive) <= breaker.MAX_IDLE_HELPERS
    with breaker._IDLE_LOCK:
        assert len(breaker._IDLE) <= breaker.MAX_IDLE_HELPERS


def test_calls_that_never_return_do_not_pile_up_threads():
    # A messaging call to a broker that cannot be reached never returns
    # (oslo.messaging retries the connection of its reply queue for
    # ever); the circuit breaker lets one trial call through every
    # reset_timeout, so without a bound each trial left a thread behind.
    release = threading.Event()
    ran = []

    def never_returns():
        ran.append(1)
        release.wait()

    def shadow_rpc_threads():
        return [t for t in threading.enumerate() if t.name == 'shadow-rpc'
                and t.is_alive()]

    before = len(shadow_rpc_threads())
    try:
        for _ in range(breaker.MAX_OVERRUNNING + 20):
            with pytest.raises(breaker.DeadlineExceeded):
                breaker.call_with_deadline(never_returns, 0.005)
        assert len(ran) == breaker.MAX_OVERRUNNING
        assert (len(shadow_rpc_threads()) - before
                <= breaker.MAX_OVERRUNNING)
        start = time.monotonic()
        with pytest.raises(breaker.DeadlineExceeded):
            breaker.call_with_deadline(never_returns, 5.0)
        assert time.monotonic() - start < 1.0, 'refused without waiting'
    finally:
        release.set()
    # Once the stuck calls return, calls are made again.
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            assert breaker.call_with_deadline(lambda: 'up', 1.0) == 'up'
            break
        except breaker.DeadlineExceeded:
            time.sleep(0.01)
    assert breaker.call_with_deadline(lambda: 'up', 1.0) == 'up'
