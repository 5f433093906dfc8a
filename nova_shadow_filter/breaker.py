"""A small circuit breaker and a hard deadline for calls out of the scheduler.

nova-scheduler must never wait on nova-shadow longer than it was told, and a
dead service must cost it nothing per request.  :func:`call_with_deadline`
runs a call in a helper thread (kept for the next calls) and stops waiting at
the deadline (a messaging call can block far longer than its own timeout
while the broker is down: one to a broker it cannot reach never returns, as
oslo.messaging retries the connection for its replies for ever).  At most
:data:`MAX_OVERRUNNING` calls whose callers stopped waiting may still be
running; while that many are, a call is refused at once
(:class:`DeadlineExceeded`) instead of leaving one more thread behind.
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


#: Idle helper threads kept for the next calls.
MAX_IDLE_HELPERS = 4
#: Calls whose callers stopped waiting that may still be running (each
#: holds a thread); while this many are, calls are refused at once.
MAX_OVERRUNNING = 8


class _Helper(threading.Thread):
    """A helper thread that runs one call after another; idle ones wait
    in :data:`_IDLE` for the next call (starting a thread for each call
    cost the scheduler a thread start and its hand-over every request)."""

    def __init__(self):
        super().__init__(name='shadow-rpc', daemon=True)
        # One call at a time: the slot and the event that says it is
        # filled (threading primitives, which eventlet's patching makes
        # green where nova-scheduler runs on eventlet).
        self.job = None
        self.ready = threading.Event()

    def give(self, job):
        self.job = job
        self.ready.set()

    def run(self):
        global _overrunning
        while True:
            self.ready.wait()
            self.ready.clear()
            (func, outcome, finished), self.job = self.job, None
            try:
                outcome['value'] = func()
            except BaseException as e:  # handed to the waiting thread
                outcome['error'] = e
            finally:
                # Idle again before the caller wakes: its next call finds
                # this thread.
                with _IDLE_LOCK:
                    outcome['done'] = True
                    if outcome.get('abandoned'):
                        _overrunning -= 1
                    keep = len(_IDLE) < MAX_IDLE_HELPERS
                    if keep:
                        _IDLE.append(self)
                finished.set()
            if not keep:
                return
            func = outcome = finished = None


_IDLE = []
_IDLE_LOCK = threading.Lock()
#: Calls whose callers stopped waiting that are still running.
_overrunning = 0


def call_with_deadline(func, deadline_s):
    """Return ``func()`` or raise DeadlineExceeded after ``deadline_s``.

    An exception raised by ``func`` is re-raised.  The call runs in a
    helper thread (an idle one when there is one); a call that overruns is
    abandoned there, and its thread serves calls again only once it
    returns.  While :data:`MAX_OVERRUNNING` such calls still run,
    ``func`` is not called: DeadlineExceeded at once.
    """
    global _overrunning
    outcome = {}
    finished = threading.Event()
    with _IDLE_LOCK:
        if _overrunning >= MAX_OVERRUNNING:
            raise DeadlineExceeded(
                'not called: %d earlier calls are still without an answer'
                % _overrunning)
        helper = _IDLE.pop() if _IDLE else None
    if helper is None:
        helper = _Helper()
        helper.start()
    helper.give((func, outcome, finished))
    if not finished.wait(deadline_s):
        with _IDLE_LOCK:
            if not outcome.get('done'):
                outcome['abandoned'] = True
                _overrunning += 1
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
