"""Leader election among several watchers (tooz).

Several ``shadow-watcher`` processes may run for availability; only the
leader acts.  :class:`Leadership` holds a tooz lock named
``[watcher] coordination_group`` on ``[watcher] coordination_url`` (for
example Redis): the watcher holding it is the leader, :meth:`heartbeat`
keeps it, and a leader that dies stops heart-beating so the lock expires
after ``[watcher] leader_timeout`` seconds and another watcher takes it.
A new leader rebuilds its memory of earlier actions from the history's
decision records before it acts (``Watcher.restore``), so no action is
done twice.

Holding the lock once is no proof of holding it now: a run longer than
``leader_timeout`` or an outage of the backend lets it expire, and
another watcher may take it.  Every renewal (:meth:`is_leader`,
:meth:`heartbeat`, and :meth:`still_leading`, which the watcher asks
just before each action) extends the lock only if this watcher still
owns it, and a watcher that does not is no longer the leader.  A backend
that fails means "not leading" too (logged once until it answers again);
nothing here raises it.
"""

import logging
import threading
import uuid

import tooz
from tooz import coordination

LOG = logging.getLogger(__name__)


class LeaderError(Exception):
    """The coordination backend cannot be reached."""


class Leadership:
    """One watcher's membership in the election.

    Parameters
    ----------
    url : str
        tooz backend URL (``redis://127.0.0.1:6379``).
    group : str
        Name of the leader lock.
    member_id : str, optional
        This watcher's name (unique; a random one by default).
    timeout : float
        Seconds a lock outlives its holder's last heartbeat.
    """

    def __init__(self, url, group, member_id=None, timeout=30.0):
        self.member_id = member_id or 'watcher-%s' % uuid.uuid4().hex[:8]
        separator = '&' if '?' in url else '?'
        self.url = '%s%slock_timeout=%d' % (url, separator,
                                             int(max(timeout, 1)))
        self.lock_name = ('nova-shadow-leader-%s' % group).encode()
        self.coordinator = coordination.get_coordinator(
            self.url, self.member_id.encode())
        self.lock = None
        #: Whether this watcher verified it holds the lock at its last
        #: renewal: it may act.
        self._leading = False
        #: Whether it took the lock and has not given it up: the lock
        #: may still be its own (after an outage of the backend).
        self._holding = False
        self._started = False
        self._failing = False
        #: How many times this watcher took the lock: a new term means
        #: another watcher may have led in between.
        self.term = 0

    def start(self, timeout=None):
        """Connect to the backend.

        Raises
        ------
        LeaderError
            when it cannot, or (with ``timeout``) has not within that
            many seconds: tooz's own retries of an unreachable backend
            take more than a minute.
        """
        outcome = {}

        def connect():
            try:
                self.coordinator.start(start_heart=False)
                outcome['lock'] = self.coordinator.get_lock(self.lock_name)
            except Exception as exc:
                outcome['error'] = exc
        worker = threading.Thread(target=connect, daemon=True,
                                  name='tooz-connect')
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            raise LeaderError('coordination backend %s did not answer '
                              'within %.0f s' % (self.url, timeout))
        if 'error' in outcome:
            raise LeaderError('coordination backend %s: %s'
                              % (self.url, outcome['error']))
        self.lock = outcome['lock']
        self._started = True
        return self

    def is_leader(self):
        """Whether this watcher leads now: renews the lock if it still
        owns it, else takes it if it is free."""
        try:
            if not self._started:
                self.start()
            self._renew()
            self.coordinator.heartbeat()
            if not self._holding and self.lock.acquire(blocking=False):
                self._holding = self._leading = True
                self.term += 1
                LOG.info('%s is now the leader', self.member_id)
        except (coordination.ToozError, LeaderError) as exc:
            self._failed(exc)
            return False
        self._answered()
        return self._leading

    def still_leading(self):
        """Whether this watcher still leads, renewing the lock (asked
        just before an action); never takes the lock."""
        if not self._leading:
            return False
        try:
            self._renew()
        except coordination.ToozError as exc:
            self._failed(exc)
            return False
        return self._leading

    @property
    def leading(self):
        """The last answer of :meth:`is_leader` (without asking again)."""
        return self._leading

    def heartbeat(self):
        """Renew the lock while the watcher waits between runs.  A lock
        lost, or a backend that fails, means not leading until the next
        :meth:`is_leader` takes the lock again."""
        if not self._started:
            return
        try:
            self._renew()
            self.coordinator.heartbeat()
        except coordination.ToozError as exc:
            self._failed(exc)
            return
        self._answered()

    def _renew(self):
        """Extend the lock if this watcher still owns it, else give it
        up (another watcher holds it, or it expired)."""
        if not self._holding:
            return
        try:
            # Redis extends the lock only for the token that took it.
            renewed = getattr(self.lock, 'heartbeat', lambda: True)()
        except coordination.ToozConnectionError:
            raise
        except tooz.ToozError:
            renewed = False
        if renewed:
            try:
                renewed = self.lock.is_still_owner()
            except tooz.NotImplemented:
                pass
        if renewed:
            if not self._leading:
                LOG.info('%s still holds the leader lock', self.member_id)
            self._leading = True
            return
        was_leading = self._leading
        self._holding = self._leading = False
        try:
            # Out of the coordinator's renewals (which would try it at
            # every heartbeat); the backend may say it is not ours.
            self.lock.release()
        except coordination.ToozConnectionError:
            raise
        except tooz.ToozError:
            pass
        if was_leading or self._failing:
            LOG.warning('%s is no longer the leader: its lock expired or '
                        'another watcher holds it; not acting',
                        self.member_id)

    def _failed(self, exc):
        self._leading = False
        if not self._failing:
            self._failing = True
            LOG.warning('Leader election failed (%s); not acting until the '
                        'coordination backend answers', exc)

    def _answered(self):
        if self._failing:
            self._failing = False
            LOG.info('The coordination backend answers again')

    def stop(self):
        """Give the lock up (a clean shutdown: another watcher takes over
        at once)."""
        if not self._started:
            return
        try:
            if self._holding:
                self.lock.release()
        except coordination.ToozError:
            LOG.exception('Releasing the leader lock failed')
        self._holding = self._leading = False
        self.coordinator.stop()
        self._started = False
