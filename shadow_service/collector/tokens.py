"""Per-shadow write-only tokens of the sample collector.

A cloud driver issues one token per shadow when it boots it
(:meth:`Grants.issue`) and puts it in the shadow's user-data; the
collector checks every request's bearer token (:meth:`Grants.check`) and
tags what it accepts with what the token says (evaluation, shadow, host,
profile), never with what the guest claims.  Only a SHA-256 hash of each
token is kept.

A token reads ``nss1.<evaluation id>.<secret>``: the evaluation id is not
secret and lets the collector answer precisely:

====================================  ======  ==============================
the token                             status  reason
====================================  ======  ==============================
missing or not of that form           401     ``unauthenticated``
its evaluation is unknown             404     ``unknown_evaluation``
its evaluation is known, hash is not  403     ``forged``
its shadow was deleted, or the        410     ``finished`` / ``expired``
evaluation finished, or it expired
====================================  ======  ==============================

An evaluation is running while any of its tokens is neither revoked nor
expired; a finished evaluation (and its tokens) is forgotten
``retention_s`` seconds later, after which its tokens get 404.
"""

import dataclasses
import hashlib
import re
import secrets
import threading
import time

PREFIX = 'nss1'
_EVALUATION_ID = re.compile(r'^[A-Za-z0-9_-]{1,64}\Z')


class Rejection(Exception):
    """A request the collector refuses: ``status`` (HTTP) and ``reason``
    (a short code for counters and logs)."""

    def __init__(self, status, reason, message=None):
        super().__init__(message or reason)
        self.status = status
        self.reason = reason


@dataclasses.dataclass
class Grant:
    """What one token allows: writing samples of one shadow."""

    evaluation_id: str
    host: str
    profile: str
    #: Wall-clock time after which the token is refused (410).
    expires_at: float
    #: The server's id, known once the create call returned.
    shadow_id: str = None
    revoked: bool = False
    #: Samples accepted with this token (collector and console).
    accepted: int = 0
    #: Wall-clock time of the last accepted collector request.
    last_seen: float = None
    #: Metric names accepted with this token (at most
    #: :data:`shadow_service.collector.ingest.MAX_METRICS_PER_SHADOW`).
    metrics: set = dataclasses.field(default_factory=set)
    #: Samples it may still write, as of ``allowance_at`` (monotonic);
    #: None before the first (see
    #: :data:`shadow_service.collector.ingest.MAX_SAMPLES_PER_S`).
    sample_allowance: float = None
    allowance_at: float = None


def token_hash(token):
    return hashlib.sha256(token.encode('utf-8', 'surrogatepass')).hexdigest()


def evaluation_of(token):
    """The evaluation id a well-formed token names, else None."""
    if not isinstance(token, str) or len(token) > 256:
        return None
    parts = token.split('.')
    if len(parts) != 3 or parts[0] != PREFIX or not parts[2]:
        return None
    if not _EVALUATION_ID.match(parts[1]):
        return None
    return parts[1]


class Grants:
    """The tokens of running and recently finished evaluations.

    Thread-safe: the driver issues and revokes from evaluation threads,
    the collector checks from its request threads.
    """

    def __init__(self, retention_s=3600.0, clock=time.time):
        self.retention_s = float(retention_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._by_hash = {}
        # evaluation id -> {token hash}
        self._evaluations = {}
        # evaluation id -> time it finished (none of its tokens live)
        self._finished = {}
        self._purged_at = float('-inf')

    def issue(self, evaluation_id, host, profile, expires_at):
        """A new token for one shadow of ``evaluation_id`` on ``host``.

        Returns ``(token, grant)``; set ``grant.shadow_id`` once the
        server exists.
        """
        if not _EVALUATION_ID.match(str(evaluation_id)):
            raise ValueError('evaluation id %r cannot go in a token'
                             % (evaluation_id,))
        token = '%s.%s.%s' % (PREFIX, evaluation_id,
                              secrets.token_urlsafe(32))
        grant = Grant(evaluation_id=evaluation_id, host=host,
                      profile=profile, expires_at=float(expires_at))
        digest = token_hash(token)
        with self._lock:
            self._purge()
            self._by_hash[digest] = grant
            self._evaluations.setdefault(evaluation_id, set()).add(digest)
            self._finished.pop(evaluation_id, None)
        return token, grant

    def revoke(self, grant):
        """Refuse ``grant``'s token from now on (its shadow is deleted)."""
        with self._lock:
            grant.revoked = True
            self._update(grant.evaluation_id)

    def check(self, token):
        """The :class:`Grant` of ``token``; :class:`Rejection` otherwise."""
        evaluation_id = evaluation_of(token)
        if evaluation_id is None:
            raise Rejection(401, 'unauthenticated',
                            'no bearer token of the collector')
        digest = token_hash(token)
        now = self._clock()
        with self._lock:
            self._purge()
            if evaluation_id not in self._evaluations:
                raise Rejection(404, 'unknown_evaluation',
                                'no evaluation %s' % evaluation_id)
            grant = self._by_hash.get(digest)
            if grant is None or grant.evaluation_id != evaluation_id:
                raise Rejection(403, 'forged',
                                'not a token of evaluation %s'
                                % evaluation_id)
            if grant.revoked or evaluation_id in self._finished:
                raise Rejection(410, 'finished',
                                'the shadow or its evaluation is finished')
            if now > grant.expires_at:
                raise Rejection(410, 'expired', 'the token expired')
            if grant.shadow_id is None:
                raise Rejection(409, 'not_booted',
                                'the shadow does not exist yet')
            return grant

    def running(self, evaluation_id):
        """True while ``evaluation_id`` has a live token."""
        with self._lock:
            return (evaluation_id in self._evaluations
                    and evaluation_id not in self._finished)

    def live(self):
        """Grants neither revoked nor expired."""
        now = self._clock()
        with self._lock:
            return [g for g in self._by_hash.values()
                    if not g.revoked and now <= g.expires_at]

    def _update(self, evaluation_id):
        hashes = self._evaluations.get(evaluation_id, ())
        if all(self._by_hash[h].revoked for h in hashes):
            self._finished.setdefault(evaluation_id, self._clock())

    def _purge(self):
        now = self._clock()
        if now - self._purged_at < 1.0:
            return
        self._purged_at = now
        cutoff = now - self.retention_s
        for evaluation_id, finished_at in list(self._finished.items()):
            if finished_at < cutoff:
                del self._finished[evaluation_id]
                for digest in self._evaluations.pop(evaluation_id, ()):
                    self._by_hash.pop(digest, None)
        # Tokens of a driver that never revoked them (it crashed).
        for digest, grant in list(self._by_hash.items()):
            if grant.expires_at < cutoff:
                del self._by_hash[digest]
                hashes = self._evaluations.get(grant.evaluation_id)
                if hashes is not None:
                    hashes.discard(digest)
                    if not hashes:
                        del self._evaluations[grant.evaluation_id]
                        self._finished.pop(grant.evaluation_id, None)
