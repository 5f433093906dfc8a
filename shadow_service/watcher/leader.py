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

Every call to a Redis backend is bounded by ``call_timeout`` (``[watcher]
coordination_timeout``): it is the socket and connect timeout tooz hands
to redis-py, unless the URL sets its own, and redis-py does not retry
(tooz retries a refused connection at once, 15 times, and redis-py's own
retries with back-off made each of those take seconds: about a minute a
call; a backend that does not answer took eleven socket timeouts).
A renewal makes up to :data:`RENEWAL_CALLS` calls, so the lock outlives
at least that many: ``timeout`` must be at least that many times
``call_timeout``.

Through Redis Sentinel (``redis://<sentinel>:<port>?sentinel=<master>``,
more with ``sentinel_fallback``) a call that connects first asks each
sentinel in turn for the master, then the master: the socket timeouts
tooz is given are ``call_timeout`` shared among those hops, the
sentinels do not retry either, and a master no sentinel names fails the
call at once (tooz retried it 15 times, each asking every sentinel with
redis-py's own retries: minutes while a sentinel did not answer).
"""

import logging
import uuid
from urllib import parse

import tooz
from redis import backoff
from redis import exceptions as redis_exceptions
from redis import retry
from redis import sentinel as redis_sentinel
from tooz import coordination

from shadow_service import logsafe

LOG = logging.getLogger(__name__)

#: Seconds a call to the backend may take by default, at most.
DEFAULT_CALL_TIMEOUT = 5.0
#: Calls one renewal may make (the lock's, its owner check, the
#: coordinator's heartbeat of itself and of the lock): the lock must
#: outlive them all waiting their longest.
RENEWAL_CALLS = 4
#: redis-py's options (in the URL's query) that bound one call.
_REDIS_TIMEOUTS = ('socket_timeout', 'socket_connect_timeout')


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
    call_timeout : float, optional
        Seconds one call to a Redis backend may take, at most (a quarter
        of ``timeout``, at most :data:`DEFAULT_CALL_TIMEOUT`, by default).

    Raises
    ------
    ValueError
        when ``timeout`` is shorter than :data:`RENEWAL_CALLS` calls (of a
        Redis backend).
    LeaderError
        when tooz has no driver for the URL here.
    """

    def __init__(self, url, group, member_id=None, timeout=30.0,
                 call_timeout=None):
        self.member_id = member_id or 'watcher-%s' % uuid.uuid4().hex[:8]
        if call_timeout is None:
            call_timeout = min(DEFAULT_CALL_TIMEOUT, timeout / RENEWAL_CALLS)
        self.url, self.call_timeout = _bounded_url(url, timeout, call_timeout)
        redis = parse.urlsplit(self.url).scheme == 'redis'
        # Only a Redis backend's calls are bounded by it (another tooz
        # backend keeps its own time-outs): nothing to check for others.
        if redis and self.call_timeout * RENEWAL_CALLS > timeout:
            raise ValueError(
                '[watcher] leader_timeout (%g s) must be at least %d times '
                'the longest a coordination call may take (%g s: '
                'coordination_timeout, or the socket timeouts of '
                'coordination_url): a renewal of the leader lock makes up '
                'to %d calls, and the lock must outlive them'
                % (timeout, RENEWAL_CALLS, self.call_timeout,
                   RENEWAL_CALLS))
        self.lock_name = ('nova-shadow-leader-%s' % group).encode()
        try:
            self.coordinator = coordination.get_coordinator(
                self.url, self.member_id.encode())
        except (ImportError, RuntimeError) as exc:
            # A backend whose Python package is not installed (etcd3gw,
            # kazoo...), or a scheme tooz has no driver for (stevedore's
            # NoMatches is a RuntimeError).
            raise LeaderError(logsafe.mask_urls_in(
                'coordination backend %s: tooz cannot use it here (%s); '
                'install the package its tooz driver needs, or choose '
                'another coordination_url' % (self.url, exc),
                [self.url])) from None
        if redis:
            _without_client_retries(self.coordinator)
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

    def start(self):
        """Connect to the backend.

        Raises
        ------
        LeaderError
            when it cannot (within a few ``call_timeout``).
        """
        try:
            self.coordinator.start(start_heart=False)
            self.lock = self.coordinator.get_lock(self.lock_name)
        except Exception as exc:
            # The URL may hold a password (redis://:secret@host): the
            # error is printed and logged.
            raise LeaderError(logsafe.mask_urls_in(
                'coordination backend %s: %s' % (self.url, exc),
                [self.url])) from None
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
                        'coordination backend answers',
                        logsafe.mask_urls_in(str(exc), [self.url]))

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


def _bounded_url(url, timeout, call_timeout):
    """``(url, call_timeout)``: ``url`` with the lock's TTL and, for
    Redis, the timeouts of one call (those the URL sets win, and the
    longest of them is the bound)."""
    parts = parse.urlsplit(url)
    query = parse.parse_qsl(parts.query, keep_blank_values=True)
    given = dict(query)
    added = [('lock_timeout', str(int(max(timeout, 1))))]
    if parts.scheme == 'redis':
        # Through Sentinel, one call may ask every sentinel before the
        # master: each of those hops has its share of the bound.
        hops = 1
        if 'sentinel' in given:
            hops += 1 + sum(1 for name, _ in query
                            if name == 'sentinel_fallback')
        bounds = []
        for name in _REDIS_TIMEOUTS:
            if name in given:
                try:
                    bounds.append(float(given[name]))
                except ValueError:
                    raise ValueError('coordination_url: %s=%r is not a '
                                     'number' % (name, given[name])) from None
            else:
                added.append((name, '%g' % (call_timeout / hops)))
                bounds.append(call_timeout / hops)
        call_timeout = max(bounds) * hops
    url = parse.urlunsplit(parts._replace(
        query=parse.urlencode(query + added)))
    return url, call_timeout


def _without_client_retries(coordinator):
    """Make the Redis client tooz builds give up at the first failure.

    redis-py (8, as pinned) retries a failed connection or a timed-out
    call ten times, with back-off of up to a second each, and tooz
    retries a failed connection 15 times over that: about a minute a
    call while Redis refuses connections, and eleven socket timeouts
    while it does not answer.  No URL option sets redis-py's retries,
    and tooz builds its client and calls it at once as it starts, so
    the client is changed as it is built: ``_make_client`` of tooz's
    Redis driver (private to it) is wrapped on this coordinator only.
    A redis-py without ``set_retry`` (before 4.3) does not retry.

    Through Sentinel, the clients of the sentinels do not retry either,
    and a master no sentinel names is a timeout (which tooz does not
    retry), not a connection error (which it retries 15 times).
    """
    make_client = coordinator._make_client

    def bounded_client(*args, **kwargs):
        client = make_client(*args, **kwargs)
        _try_once(client)
        manager = getattr(client.connection_pool, 'sentinel_manager', None)
        if manager is not None:
            for sentinel_client in manager.sentinels:
                _try_once(sentinel_client)
            manager.discover_master = _master_found_once(
                manager.discover_master)
        return client
    coordinator._make_client = bounded_client


def _try_once(client):
    set_retry = getattr(client, 'set_retry', None)
    if set_retry is not None:
        set_retry(retry.Retry(backoff.NoBackoff(), 0))


def _master_found_once(discover_master):
    def discover_once(service_name):
        try:
            return discover_master(service_name)
        except redis_sentinel.MasterNotFoundError as exc:
            raise redis_exceptions.TimeoutError(str(exc)) from exc
    return discover_once
