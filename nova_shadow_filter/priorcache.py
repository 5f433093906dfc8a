"""The weigher's cache of the service's answers from history.

The shadow service answers from its history prior, without shadows, when
history alone decides the ranking, and makes the same answer again while
no new sample arrives and the hosts' facts stay the same.  Waiting for it
then costs a scheduling request a round trip over the broker with every
candidate's facts (about 50 kB at 1,000 hosts).  This cache keeps, per
workload (the request the weigher sends, less the instance's own UUID),
each host's score and confidence from the last such answer together with
the facts the weigher sent for the host.  Within ``ttl_s`` of that
answer, a request for the same workload is answered from the cache:
hosts whose facts are unchanged keep their entries, and the few hosts
whose facts changed (the host that took the previous VM) or that the
answer does not hold (the filters left them out of the requests
answered, or they are new) are neutral (:meth:`PriorCache.lookup` says
which) until the service, asked again about the request's whole
candidate list from history alone, answers (:meth:`PriorCache.refresh`).
Anything else (more such hosts than a tenth of the candidates, an older
answer) is a miss and the weigher asks about every candidate.

The service scores each host relative to the best host of the list it
is given, so one answer's scores are never mixed with another's: an
answer replaces the one kept whole.  See ``doc/source/weigher.rst``,
"Answers from history, reused".
"""

import json
import threading
import time

#: Workloads whose answers are kept (least recently used first out).
WORKLOADS_KEPT = 32
#: Largest share of the candidates that may be neutral in an answer from
#: the cache (asked about again in the background); with more changed
#: hosts the request waits for the service.
CHANGED_SHARE = 0.1
#: Request keys that are not the workload: the instance, and the
#: operation (only boots' answers are kept; the weigher tells a boot from
#: a move after answering from the cache).
_NOT_WORKLOAD = ('instance_uuid', 'purpose')


def workload_key(request):
    """What identifies a workload's answer: the request the weigher sends
    (profile, flavor, image, project, zone, count), without the instance's
    UUID and the operation, as canonical JSON."""
    return json.dumps({k: v for k, v in request.items()
                       if k not in _NOT_WORKLOAD},
                      sort_keys=True, default=str)


def fact_rows(columns):
    """``(fact keys, one tuple of facts per host)`` of a host-columns
    dict (:func:`nova_shadow_filter.weigher.describe_host_columns`)."""
    keys = tuple(sorted(k for k in columns if k != 'host'))
    if not keys:
        return keys, [()] * len(columns['host'])
    return keys, list(zip(*[columns[k] for k in keys]))


class Lookup:
    """What the cache holds for one request: ``entries`` (``{host:
    {'score', 'confidence'}}`` of the hosts whose facts are unchanged),
    ``changed`` (indices of the candidates whose facts changed or that
    the answer does not hold, to ask again) and ``age`` (seconds since
    the answer was made, read with it: another thread may drop the
    answer right after the lookup)."""

    __slots__ = ('entries', 'changed', 'age')

    def __init__(self, entries, changed, age):
        self.entries = entries
        self.changed = changed
        self.age = age


class PriorCache:
    """Per-workload answers from history, per host with its facts.

    :param ttl_s: seconds an answer from the service is reused; 0 turns
        the cache off.
    :param clock: a monotonic clock (seconds).
    """

    def __init__(self, ttl_s, clock=time.monotonic,
                 workloads=WORKLOADS_KEPT, changed_share=CHANGED_SHARE):
        self.ttl_s = ttl_s
        self.clock = clock
        self.workloads = workloads
        self.changed_share = changed_share
        self._lock = threading.Lock()
        # {workload key: {'at': clock, 'keys': fact keys,
        #                 'hosts': {host: (facts, entry)}}}, oldest first.
        self._answers = {}
        # The workload keys whose answer is being renewed.
        self._renewing = set()

    @property
    def enabled(self):
        return self.ttl_s > 0

    def age(self, key):
        """Seconds since the answer for ``key`` was made (None without
        one, which another thread may make so at any time: a request
        reads the age of its answer from :meth:`lookup`)."""
        with self._lock:
            answer = self._answers.get(key)
            return None if answer is None else self.clock() - answer['at']

    def claim_renewal(self, key):
        """True for one caller at a time per workload with an answer:
        whoever gets it asks the service about the workload again (in
        the background) before the answer is too old (:meth:`store` of
        its answer), then calls :meth:`release_renewal` whatever came of
        it (renewed, dropped or failed)."""
        with self._lock:
            if key in self._renewing or key not in self._answers:
                return False
            self._renewing.add(key)
            return True

    def release_renewal(self, key):
        """End the renewal claimed for ``key`` (:meth:`claim_renewal`):
        the next request past half the answer's life may claim it again
        (an answer that was renewed is new again by then)."""
        with self._lock:
            self._renewing.discard(key)

    def holds(self, key):
        """Whether an answer for ``key`` is kept and young enough."""
        answer = self._answers.get(key)
        return (answer is not None
                and self.clock() - answer['at'] <= self.ttl_s)

    def lookup(self, key, columns):
        """A :class:`Lookup` for ``columns`` (the request's candidates),
        or None (ask the service about every candidate)."""
        if not self.enabled:
            return None
        names = columns['host']
        fact_keys, rows = fact_rows(columns)
        with self._lock:
            answer = self._answers.get(key)
            if answer is None:
                return None
            age = self.clock() - answer['at']
            if age > self.ttl_s:
                del self._answers[key]
                return None
            if answer['keys'] != fact_keys:
                return None
            hosts = answer['hosts']
        entries, changed = {}, []
        for index, (name, row) in enumerate(zip(names, rows)):
            kept = hosts.get(name)
            if kept is not None and kept[0] == row:
                entries[name] = kept[1]
            else:
                # Its facts changed, or the answer does not hold it (the
                # filters left it out of the requests answered, it is new,
                # or the service did not rank it): asked about again,
                # like a changed host.
                changed.append(index)
        if (not entries or len(changed)
                > max(1, int(len(names) * self.changed_share))):
            return None
        return Lookup(entries, changed, age)

    def store(self, key, columns, entries):
        """Keep the service's answer from history ``entries`` (``{host:
        entry}``) for the candidates ``columns``, as new (a renewal's
        answer too); it replaces the answer kept whole (its scores are
        relative to the best of another list)."""
        if not self.enabled:
            return
        fact_keys, hosts = self._hosts(columns, entries)
        now = self.clock()
        with self._lock:
            self._answers.pop(key, None)
            while len(self._answers) >= self.workloads:
                self._answers.pop(next(iter(self._answers)))
            self._answers[key] = {'at': now, 'keys': fact_keys,
                                  'hosts': hosts}

    def refresh(self, key, columns, entries):
        """Replace the hosts of the answer kept for ``key`` with
        ``entries``, the service's answer from history alone for the
        whole candidate list ``columns`` (asked again because some of
        its hosts changed); the answer keeps its age (the renewal still
        asks whether history decides).  A host without an entry is left
        out (the next request with it asks again).  Nothing is kept when
        the answer is gone meanwhile."""
        fact_keys, hosts = self._hosts(columns, entries)
        with self._lock:
            answer = self._answers.get(key)
            if answer is None or answer['keys'] != fact_keys:
                return
            answer['hosts'] = hosts

    @staticmethod
    def _hosts(columns, entries):
        """``(fact keys, {host: (facts, entry)})`` of the hosts of
        ``columns`` that have one of ``entries``."""
        fact_keys, rows = fact_rows(columns)
        return fact_keys, {name: (row, entries[name])
                           for name, row in zip(columns['host'], rows)
                           if name in entries}

    def forget(self, key=None):
        """Drop the answer of ``key`` (every answer without one)."""
        with self._lock:
            if key is None:
                self._answers.clear()
            else:
                self._answers.pop(key, None)
