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
"""

import logging
import threading
import uuid

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
        self._leading = False
        self._started = False

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
        """Whether this watcher leads now (taking the lock if it is
        free); also renews the lock."""
        try:
            if not self._started:
                self.start()
            self.coordinator.heartbeat()
            if not self._leading:
                self._leading = bool(self.lock.acquire(blocking=False))
                if self._leading:
                    LOG.info('%s is now the leader', self.member_id)
        except (coordination.ToozError, LeaderError) as exc:
            LOG.warning('Leader election failed (%s); not acting', exc)
            self._leading = False
        return self._leading

    @property
    def leading(self):
        """The last answer of :meth:`is_leader` (without asking again)."""
        return self._leading

    def heartbeat(self):
        if self._started:
            self.coordinator.heartbeat()

    def stop(self):
        """Give the lock up (a clean shutdown: another watcher takes over
        at once)."""
        if not self._started:
            return
        try:
            if self._leading:
                self.lock.release()
        except coordination.ToozError:
            LOG.exception('Releasing the leader lock failed')
        self._leading = False
        self.coordinator.stop()
        self._started = False
