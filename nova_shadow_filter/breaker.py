"""A small circuit breaker and a hard deadline for calls out of the scheduler.

nova-scheduler must never wait on nova-shadow longer than it was told, and a
dead service must cost it nothing per request.  :func:`call_with_deadline`
runs a call in a helper thread and stops waiting at the deadline (a messaging
call can block far longer than its own timeout while the broker is down).
:class:`CircuitBreaker` stops calls altogether after ``failure_threshold``
outages within ``failure_window`` seconds and lets one trial call through
every ``reset_timeout`` seconds.  Only outages count (no answer in time, no
transport): a service that answers, even with a rejection, is up.
"""

import collections
import threading
import time


class DeadlineExceeded(Exception):
    """The call did not return before its deadline."""


def call_with_deadline(func, deadline_s):
    """Return ``func()`` or raise DeadlineExceeded after ``deadline_s``.

    An exception raised by ``func`` is re-raised.  A call that overruns is
    abandoned in a daemon thread; the circuit breaker keeps such threads from
    piling up.
    """
    outcome = {}
    finished = threading.Event()

    def run():
        try:
            outcome['value'] = func()
        except BaseException as e:  # handed to the waiting thread
            outcome['error'] = e
        finally:
            finished.set()

    worker = threading.Thread(target=run, name='shadow-rpc', daemon=True)
    worker.start()
    if not finished.wait(deadline_s):
        raise DeadlineExceeded('no answer within %.1fs' % deadline_s)
    if 'error' in outcome:
        raise outcome['error']
    return outcome['value']


class CircuitBreaker:
    """closed -> (outages) -> open -> (reset_timeout) -> half-open -> ...

    Parameters
    ----------
    failure_threshold : int
        Outages within ``failure_window`` seconds that open the breaker.
    reset_timeout : float
        Seconds the breaker stays open before one trial call.
    failure_window : float
        Seconds over which outages are counted; older ones are forgotten.
    """

    CLOSED = 'closed'
    OPEN = 'open'
    HALF_OPEN = 'half-open'

    def __init__(self, failure_threshold=2, reset_timeout=30.0,
                 failure_window=300.0, clock=time.monotonic):
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.failure_window = failure_window
        self._clock = clock
        self._failures = collections.deque()
        self._opened_at = None
        self._trial_running = False
        self._lock = threading.Lock()

    @property
    def state(self):
        with self._lock:
            return self._state()

    def _state(self):
        if self._opened_at is None:
            return self.CLOSED
        if self._clock() - self._opened_at >= self.reset_timeout:
            return self.HALF_OPEN
        return self.OPEN

    def allow(self):
        """True if a call may be made now (claims the half-open trial)."""
        with self._lock:
            state = self._state()
            if state == self.CLOSED:
                return True
            if state == self.HALF_OPEN and not self._trial_running:
                self._trial_running = True
                return True
            return False

    def record_success(self):
        """The service answered (a ranking or a typed rejection)."""
        with self._lock:
            self._failures.clear()
            self._opened_at = None
            self._trial_running = False

    def record_failure(self):
        """Count an outage; True if this one opened the breaker."""
        with self._lock:
            now = self._clock()
            self._failures.append(now)
            while self._failures and \
                    now - self._failures[0] > self.failure_window:
                self._failures.popleft()
            was_open = self._opened_at is not None
            self._trial_running = False
            if was_open or len(self._failures) >= self.failure_threshold:
                self._opened_at = now
                return not was_open
            return False
