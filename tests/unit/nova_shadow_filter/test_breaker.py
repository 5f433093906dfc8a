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
