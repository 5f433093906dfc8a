"""Shadow Weigher.  Weigh hosts by their measured Performance Score.

For a request with a ``shadow_profile`` (or ``shadow_evaluation``) scheduler
hint, the weigher asks ``shadow-service`` once per scheduling request to rank
all candidate hosts; the service may boot flavor-minimal shadows of the VM on
them and measure them under load.  It prefers the hosts the service ranks
best; a negative ``[shadow_weigher] weight_multiplier`` prefers the worst.

From score to weight (each 0..1, see ``doc/source/weigher.rst``):

* hosts within ``tie_margin`` points of the best score weigh 1, hosts
  ``score_range`` or more points behind weigh 0, linearly in between, so a
  clear ranking decides and Nova's own weighers break near-ties;
* the weight is shrunk toward the neutral 0.5 by the host's confidence
  (``0.5 + confidence x (weight - 0.5)``): an unmeasured host (confidence 0)
  is neutral;
* times ``weight_multiplier`` (or the ``shadow_weight_multiplier``
  aggregate metadata; a value that is not a finite number is logged once
  and ignored).

Each host is sent with its cost when its aggregates carry
``shadow_host_cost`` metadata; the service ranks by the operator's trade-off
between score and cost (``[shadow] cost_policy``) and gives hosts that may
not take the VM (over the cost cap, disabled, another zone) score 0.

Requests without a hint get neutral weights and cause no RPC at all: 0 for
every host, which adds nothing whatever each host's multiplier (so does a
ranking that weighs every host alike).  A bad hint value is logged and
ignored.  A multi-create asks once and reuses the
ranking for its other instances.  Moves (resize, migrations, unshelve) are
answered from history without shadows; an evacuation or a rebuild sends
nothing.  A ``shadow_evaluation`` hint is looked up for the booting
request's project: the service finds only that project's evaluations and
those of no project (an operator's pre-flight), so another project's is an
unknown evaluation.  A rejection by the service (a bad profile, an unknown
evaluation, a busy service) gives neutral weights for that request only;
outages (no answer in time, no broker) also open a circuit breaker after
``failure_threshold`` of them within ``failure_window`` seconds, which then
skips the service for ``reset_timeout`` seconds.  Nova's own weighers then
decide, and the boot never fails because of us.  With ``mode = observe``
the weights are computed and logged but not applied.
"""

import math
import operator
import queue
import threading
import time
import uuid
import weakref

import nova.conf
import oslo_messaging as messaging
from nova.scheduler import utils
from nova.scheduler import weights
from nova.scheduler.filters import utils as filters_utils
from oslo_log import log as logging

from nova_shadow_filter import breaker
from nova_shadow_filter import conf as shadow_conf
from nova_shadow_filter import operations
from nova_shadow_filter import priorcache
from nova_shadow_filter import request as request_lib
from shadow_service import boundedqueue
from shadow_service import exception as shadow_exception
from shadow_service import optcheck
from shadow_service import rpcapi

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF
shadow_conf.register_opts(CONF)

HINT_PROFILE = 'shadow_profile'
HINT_BUDGET = 'shadow_budget'
HINT_EVALUATION = 'shadow_evaluation'
#: Aggregate metadata key of a host's cost (see ``[shadow] cost_policy``).
AGGREGATE_COST_KEY = 'shadow_host_cost'
#: Aggregate metadata key of the weight multiplier of its hosts.
AGGREGATE_MULTIPLIER_KEY = 'shadow_weight_multiplier'
#: The weight of a host a ranking does not tell apart from the others
#: (unmeasured, or not in the ranking): between the best (1) and the
#: worst (0).
NEUTRAL = 0.5
#: The weight of every host of a request without a ranking (no hint, a
#: rejection, an outage, observe mode): Nova's handler keeps it 0
#: (``minval`` 0, ``maxval`` 1) and 0 times any host's multiplier adds
#: nothing, so Nova's own weighers decide alone.
NO_EFFECT = 0.0
#: Aggregates whose bad ``shadow_weight_multiplier`` was logged that are
#: remembered (not logged again).
BAD_MULTIPLIERS_REMEMBERED = 1024
#: Seconds a weigher whose service did not take host columns sends host
#: lists before it asks with columns again.
COLUMNS_RETRY_S = 300
#: The clock of the retry above.
_clock = time.monotonic
#: Longest tenant- or service-supplied text put in one log line.
LOG_VALUE_MAX = 80
#: Seconds the service may take to answer the few changed hosts of a
#: cached answer from history (it boots nothing for them).
REFRESH_BUDGET_S = 3.0
#: Records of requests answered from the cache that may wait to be sent
#: (shadow_service.boundedqueue): at most this many ...
RECORDS_QUEUED = 1024
#: ... holding at most this many candidate hosts in all (64 records of
#: 1,000 hosts; 1,024 of up to 62).
RECORD_HOSTS_QUEUED = 64000
#: Renewals of cached answers that may wait for the one being made (each
#: may take a whole budget); a request whose renewal finds them all
#: waiting is recorded instead.
RENEWALS_QUEUED = 8
#: Dropped records (and renewals): one warning for the first and every
#: this many.
DROPS_LOGGED_EVERY = 100


def _every_level(count):
    """The log level of the ``count``-th repeat of a failure: a warning
    for the first and every ``DROPS_LOGGED_EVERY``-th (a service that is
    away fails them all), DEBUG for the others."""
    return (logging.WARNING if count % DROPS_LOGGED_EVERY == 1
            else logging.DEBUG)


class InvalidReply(Exception):
    """The service answered something that is not a ranking."""


def clip(value, limit=LOG_VALUE_MAX):
    """``value`` as one log-safe line: control characters escaped, at most
    ``limit`` characters (a tenant controls hints; a remote error may hold a
    traceback)."""
    text = value if isinstance(value, str) else repr(value)
    text = text.encode('unicode_escape', 'backslashreplace').decode('ascii')
    if len(text) > limit:
        return text[:limit] + '...(%d chars)' % len(text)
    return text


def describe_error(error):
    """The first line of an error, clipped: never a remote traceback."""
    message = str(error).strip().splitlines()
    return '%s: %s' % (type(error).__name__,
                       clip(message[0] if message else '', 200))


def _hint(spec_obj, name):
    try:
        value = spec_obj.get_scheduler_hint(name)
    except Exception:
        return None
    if isinstance(value, list):
        value = value[0] if value else None
    return value


def _attr(obj, name, default=None):
    try:
        if hasattr(obj, 'obj_attr_is_set') and not obj.obj_attr_is_set(name):
            return default
        return getattr(obj, name, default)
    except Exception:
        return default


def build_request(spec_obj, profile, purpose='boot'):
    """The RPC request dict for ``spec_obj``: the shared request builder
    (:mod:`nova_shadow_filter.request`) over the RequestSpec's values."""
    image = _attr(spec_obj, 'image')
    return request_lib.build_request(
        _attr(spec_obj, 'flavor') or {}, profile,
        image_id=_attr(image, 'id'),
        project_id=_attr(spec_obj, 'project_id'),
        instance_uuid=_attr(spec_obj, 'instance_uuid'),
        num_instances=_attr(spec_obj, 'num_instances', 1) or 1,
        purpose=purpose,
        availability_zone=_attr(spec_obj, 'availability_zone'))


def host_cost(host_state):
    """The host's cost from the ``shadow_host_cost`` metadata of its
    aggregates (the highest when several set it), or None; a value that is
    not a non-negative number is logged and ignored."""
    values = filters_utils.aggregate_values_from_key(host_state,
                                                     AGGREGATE_COST_KEY)
    costs = []
    for value in values:
        try:
            cost = float(value)
            if not math.isfinite(cost) or cost < 0:
                raise ValueError(value)
        except (TypeError, ValueError, OverflowError):
            LOG.warning('Ignoring aggregate metadata %s=%s of host %s: not '
                        'a non-negative number', AGGREGATE_COST_KEY,
                        clip(value), clip(host_state.host))
            continue
        costs.append(cost)
    return max(costs) if costs else None


#: What the weigher tells the service of each host: ``(key, HostState
#: attribute)``.
HOST_FACTS = (('vcpus', 'vcpus_total'),
              ('vcpus_used', 'vcpus_used'),
              ('free_ram_mb', 'free_ram_mb'),
              ('total_ram_mb', 'total_usable_ram_mb'),
              ('free_disk_mb', 'free_disk_mb'),
              ('num_instances', 'num_instances'))


def _state_cost(state):
    if not getattr(state, 'aggregates', None):
        return None
    try:
        return host_cost(state)
    except (AttributeError, TypeError):
        # A host state without aggregates: no cost.
        return None


def _distinct(host_states):
    """One host state per host name, in first-seen order."""
    seen, states = set(), []
    for state in host_states:
        if state.host not in seen:
            seen.add(state.host)
            states.append(state)
    return states


def describe_hosts(host_states):
    """One JSON-able dict per distinct host, in first-seen order (the
    host list of ``rank_hosts``)."""
    hosts = []
    for state in _distinct(host_states):
        entry = {'host': state.host, 'nodename': state.nodename}
        cost = _state_cost(state)
        if cost is not None:
            entry['cost'] = cost
        for key, attr in HOST_FACTS:
            value = request_lib.finite(getattr(state, attr, None))
            if value is not None:
                entry[key] = value
        hosts.append(entry)
    return hosts


def _finite_column(values):
    """``values`` with each one that is not a finite number as None
    (:func:`nova_shadow_filter.request.finite`), checked by type first:
    a column of ints, the usual case, is returned as is."""
    types = set(map(type, values))
    if types <= {int}:
        return values
    if types <= {int, float}:
        isfinite = math.isfinite
        return [v if type(v) is int or isfinite(v) else None
                for v in values]
    return [request_lib.finite(v) for v in values]


def describe_host_columns(host_states):
    """The distinct hosts as columns, in first-seen order (the host list
    of ``rank_host_columns``, RPC API 1.3): ``host``, then each fact a
    host has (null where it has none), ``nodename`` only where one
    differs from its host name, ``cost`` only where a host has one."""
    states = _distinct(host_states)
    names = [state.host for state in states]
    columns = {'host': names}
    nodenames = [state.nodename for state in states]
    if nodenames != names:
        columns['nodename'] = nodenames
    for key, attr in HOST_FACTS:
        values = _finite_column(_attribute(states, attr))
        if any(value is not None for value in values):
            columns[key] = values
    # Only hosts in an aggregate can have a cost (the usual case: none).
    if any(getattr(state, 'aggregates', None) for state in states):
        costs = [_state_cost(state) for state in states]
        if any(cost is not None for cost in costs):
            columns['cost'] = costs
    return columns


def _attribute(states, attr):
    """``attr`` of each of ``states``, None where one has none."""
    try:
        # Every HostState has every fact: one C-level pass.
        return list(map(operator.attrgetter(attr), states))
    except AttributeError:
        return [getattr(state, attr, None) for state in states]


def _finite_float(value):
    """``value`` (aggregate metadata text) as a finite float, or None."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _number(value, low, high):
    return (not isinstance(value, bool) and isinstance(value, (int, float))
            and math.isfinite(value) and low <= value <= high)


def entries_from_ranking(ranking):
    """``{host: entry}`` of a ranking dict (score and confidence), or
    InvalidReply."""
    if not isinstance(ranking, dict):
        raise InvalidReply('ranking is %s, not a dict'
                           % type(ranking).__name__)
    hosts = ranking.get('hosts')
    if not isinstance(hosts, list):
        raise InvalidReply('ranking has no list of hosts')
    entries = {}
    for entry in hosts:
        if not isinstance(entry, dict):
            raise InvalidReply('host entry %s is not a dict' % clip(entry))
        host, score = entry.get('host'), entry.get('score')
        if not isinstance(host, str):
            raise InvalidReply('host entry %s has no host name'
                               % clip(entry))
        if not _number(score, 0, 100):
            raise InvalidReply('score %s of %s is not in 0..100'
                               % (clip(score), clip(host)))
        confidence = entry.get('confidence', 1.0)
        if not _number(confidence, 0, 1):
            raise InvalidReply('confidence %s of %s is not in 0..1'
                               % (clip(confidence), clip(host)))
        entries[host] = {'score': float(score),
                         'confidence': float(confidence)}
    return entries


def entries_from_columns(reply, names):
    """``{host: entry}`` of a ``rank_host_columns`` answer for the hosts
    ``names`` (the request's order; a null score leaves the host out),
    or InvalidReply."""
    if not isinstance(reply, dict):
        raise InvalidReply('ranking is %s, not a dict'
                           % type(reply).__name__)
    scores, confidences = reply.get('scores'), reply.get('confidences')
    if not isinstance(scores, list) or len(scores) != len(names):
        raise InvalidReply('ranking has no list of %d scores' % len(names))
    if not isinstance(confidences, list) or len(confidences) != len(names):
        raise InvalidReply('ranking has no list of %d confidences'
                           % len(names))
    if not (_all_numbers(scores, 0, 100) and _all_numbers(confidences, 0, 1)):
        # Some value is bad or missing: the checks one by one say which.
        for host, score, confidence in zip(names, scores, confidences):
            if score is not None and not _number(score, 0, 100):
                raise InvalidReply('score %s of %s is not in 0..100'
                                   % (clip(score), clip(host)))
            if confidence is not None and not _number(confidence, 0, 1):
                raise InvalidReply('confidence %s of %s is not in 0..1'
                                   % (clip(confidence), clip(host)))
    return {host: {'score': float(score),
                   'confidence': 1.0 if confidence is None
                   else float(confidence)}
            for host, score, confidence in zip(names, scores, confidences)
            if score is not None}


def _all_numbers(values, low, high):
    """Whether ``values`` are all finite ints or floats within
    ``[low, high]`` (no None: then the checks go one by one)."""
    if not set(map(type, values)) <= {int, float}:
        return False
    return not values or (low <= min(values) and max(values) <= high
                          and all(map(math.isfinite, values)))


def _unsupported(error):
    """Whether ``error`` says the service does not know the method or
    its version (a service older than the weigher)."""
    name = (getattr(error, 'exc_type', None)
            if isinstance(error, messaging.RemoteError)
            else type(error).__name__)
    return name in ('UnsupportedVersion', 'NoSuchMethod')


def scores_from_ranking(ranking):
    """``{host: score}`` from a ranking dict, or InvalidReply."""
    return {h: e['score'] for h, e in entries_from_ranking(ranking).items()}


def score_weight(score, best, *, tie_margin, score_range):
    """0..1: 1 within ``tie_margin`` of ``best``, 0 at ``score_range`` or
    more behind, linear in between."""
    behind = best - score
    if behind <= tie_margin:
        return 1.0
    span = max(score_range - tie_margin, 1e-9)
    return max(0.0, 1.0 - (behind - tie_margin) / span)


def shrink(weight, confidence):
    """``weight`` pulled toward neutral by ``1 - confidence``."""
    return NEUTRAL + confidence * (weight - NEUTRAL)


class _Plan:
    """What one weigh_objects call asks: a description for the logs, the
    call, its deadline, and how its answer becomes ``{host: entry}``;
    or ``local``, the answer without a call (from the cache of answers
    from history).  ``record``: what the service is to do for a request
    answered from the cache, once it is answered (:class:`_Recorder`)."""

    def __init__(self, what, call, deadline_s, parse=None, local=None,
                 record=None, changed=0):
        self.what = what
        self.call = call
        self.deadline_s = deadline_s
        self.parse = parse or entries_from_ranking
        self.local = local
        self.record = record
        # Hosts of a cached answer left neutral (their facts changed).
        self.changed = changed


class _Recorder:
    """The service's part of the requests answered from the cache, on
    threads of their own (the request does not wait).

    The records thread, one request at a time, looks up the request's
    operation, hands a boot's renewal of the answer to the renewals
    thread, asks about the request again when some of its hosts' facts
    changed (its whole candidate list, history only, unrecorded), then,
    whatever came of that question, has the whole request recorded (a
    cast) unless its renewal records it.  At most
    ``RECORDS_QUEUED`` requests with at most ``RECORD_HOSTS_QUEUED``
    candidate hosts in all wait, more are dropped (and logged).

    The renewals thread asks about a request again as without the cache
    (and recorded), which may take the request's whole budget: at most
    ``RENEWALS_QUEUED`` renewals wait for it; a request whose renewal
    finds them all waiting is recorded instead (and counted in
    ``renewals_dropped``, logged).  A renewal whose call fails (no answer
    in time, no broker, a busy service) has its request recorded instead
    too (counted in ``renewals_failed``, logged): the service recorded
    nothing of it, or, when it answered after the weigher stopped
    waiting, recorded it under the evaluation id the renewal named, which
    the record sent instead names too (one evaluation in the history, not
    two).  However a renewal ends (made, dropped, failed), its
    claim on the answer is released
    (:meth:`nova_shadow_filter.priorcache.PriorCache.release_renewal`).
    Any other failed call is logged and dropped.

    Every record sent after the first dropped one carries how many were
    dropped so far, under an id of this weigher's own, which the service
    exports (``nova_shadow_weigher_records_dropped``): nova-scheduler has
    no metrics endpoint of ours."""

    def __init__(self, weigher):
        self._weigher = weigher
        self._queue = boundedqueue.BoundedQueue(RECORDS_QUEUED,
                                                RECORD_HOSTS_QUEUED)
        self._renewals = queue.Queue(maxsize=RENEWALS_QUEUED)
        #: This weigher's id in its reports of the records it dropped.
        self.sender = uuid.uuid4().hex
        self.dropped = 0
        self.renewals_dropped = 0
        self.renewals_failed = 0
        self.refreshes_failed = 0
        self._thread = threading.Thread(
            target=self._run, args=(self._queue, self._serve, 'record'),
            daemon=True, name='shadow-weigher-records')
        self._renewer = threading.Thread(
            target=self._run,
            args=(self._renewals, self._renew, 'renew the answer of'),
            daemon=True, name='shadow-weigher-renewals')
        self._thread.start()
        self._renewer.start()

    def send(self, record):
        """Queue ``record`` (a :class:`_Plan`'s ``record``) without
        waiting: dropped (and its renewal claim released) when it does not
        fit beside the records already waiting (``RECORDS_QUEUED``,
        ``RECORD_HOSTS_QUEUED``)."""
        try:
            self._queue.put_nowait(record,
                                   weight=len(record['columns']['host']))
        except boundedqueue.Full:
            if record['renew']:
                self._cache(record).release_renewal(record['key'])
            self.dropped += 1
            if self.dropped % DROPS_LOGGED_EVERY == 1:
                # Once per burst, not once per request.
                LOG.warning('Not recording a request answered from the '
                            'cache of answers from history: %d records of '
                            '%d hosts in all already wait (%d dropped so '
                            'far)', self._queue.qsize(),
                            self._queue.weight(), self.dropped)

    def _cache(self, job):
        """The cache the answer of ``job`` came from."""
        return job.get('cache') or self._weigher._prior_cache

    def _run(self, jobs, serve, what):
        while True:
            job = jobs.get()
            try:
                serve(job)
            except Exception as e:
                if _unsupported(e):
                    self._weigher._cache_unsupported()
                LOG.warning('Could not have the shadow service %s a '
                            'request answered from the cache (%s)', what,
                            describe_error(e))

    def _serve(self, job):
        cache = self._cache(job)
        columns, budget, key = job['columns'], job['budget'], job['key']
        renewing = False
        try:
            request = self._with_operation(job['request'])
            if (job['renew'] and request is not None
                    and request['purpose'] == operations.BOOT):
                # The renewal's evaluation and the record sent instead
                # when it fails have one id: a renewal answered after
                # its deadline and that record are one evaluation.
                renewing = self._queue_renewal(dict(
                    job, request=request, evaluation_id=str(uuid.uuid4())))
        finally:
            if job['renew'] and not renewing:
                # Not renewed (not a boot, no room, or the look-up
                # failed): the next request past half the answer's life
                # may renew it.
                cache.release_renewal(key)
        if job['changed']:
            # On its own: whatever comes of it, the request is recorded.
            self._refresh(job, request or job['request'])
        if request is None or renewing:
            # Nothing to send, or the renewal records the request.
            return
        self._record(request, columns, budget,
                     asked_at=job.get('asked_at'))

    def _refresh(self, job, request):
        """Ask the service again, from history alone and unrecorded,
        about ``job``'s request because some of its hosts' facts changed
        (they were neutral in its answer): about its whole candidate list,
        since the service scores each host relative to the best of the
        list it is given (a host asked about alone scores 100).  The
        answer replaces the one kept, for the next requests.  A failure
        is counted and logged (a warning for the first and every
        ``DROPS_LOGGED_EVERY``-th): those hosts stay neutral and are
        asked about with the next request that has them."""
        api, cache = self._weigher.api, self._cache(job)
        columns = job['columns']
        try:
            reply = api.rank_host_columns(
                {}, request, columns, REFRESH_BUDGET_S,
                timeout=REFRESH_BUDGET_S + CONF.shadow_weigher.
                deadline_margin, history_only=True, record=False)
            entries = entries_from_columns(reply, columns['host'])
        except Exception as e:
            if _unsupported(e):
                # Nor would it take the record (RPC API 1.4 too).
                raise
            self.refreshes_failed += 1
            LOG.log(_every_level(self.refreshes_failed),
                    'Could not ask the shadow service again about '
                    'a request answered from the cache with %d hosts whose '
                    'facts changed (%s; %d such questions failed so far); '
                    'they stay neutral until a request with them asks '
                    'again', len(job['changed']), describe_error(e),
                    self.refreshes_failed)
            return
        cache.refresh(job['key'], columns, entries)

    def _record(self, request, columns, budget, evaluation_id=None,
                asked_at=None):
        """Send the record of ``request``, asked at ``asked_at`` (wall
        clock), with the count of the records dropped so far once there
        are any."""
        dropped = self.dropped
        self._weigher.api.record_host_columns(
            {}, request, columns, budget, evaluation_id=evaluation_id,
            dropped=(self.sender, dropped) if dropped else None,
            asked_at=asked_at)

    def _queue_renewal(self, job):
        """Whether ``job``'s renewal waits for the renewals thread (not
        when ``RENEWALS_QUEUED`` already wait: it is counted, logged and
        the request recorded instead)."""
        try:
            self._renewals.put_nowait(job)
        except queue.Full:
            self.renewals_dropped += 1
            if self.renewals_dropped % DROPS_LOGGED_EVERY == 1:
                # Once per burst, not once per request.
                LOG.warning('Not renewing an answer from history in the '
                            'background: %d renewals already wait (%d not '
                            'renewed so far); recording the request '
                            'instead', RENEWALS_QUEUED,
                            self.renewals_dropped)
            return False
        return True

    def _renew(self, job):
        """Ask about ``job``'s request again as without the cache (and
        recorded): its answer is kept anew if history still decides,
        forgotten if not."""
        cache, key = self._cache(job), job['key']
        try:
            request, columns, budget = (job['request'], job['columns'],
                                        job['budget'])
            try:
                reply = self._weigher.api.rank_host_columns(
                    {}, request, columns, budget,
                    timeout=budget + CONF.shadow_weigher.deadline_margin,
                    history_only=False, record=True,
                    evaluation_id=job.get('evaluation_id'))
            except Exception as e:
                if _unsupported(e):
                    # Nor would it take the record (RPC API 1.4 too).
                    raise
                # The service ends a call before its caller's deadline
                # (and refuses one read after it): a call without an
                # answer recorded nothing, as a refused one did.  One
                # answered late anyway (a service too busy to end it in
                # time) was recorded under the same evaluation id as the
                # record sent here: one evaluation in the history.
                self._record_instead(job, e)
                return
            if reply.get('source') == 'history':
                cache.store(key, columns,
                            entries_from_columns(reply, columns['host']))
            else:
                cache.forget(key)
        finally:
            cache.release_renewal(key)

    def _record_instead(self, job, error):
        """Have the service record ``job``'s request, whose renewal
        failed with ``error`` (it recorded nothing of it), as a request
        without a renewal is: the calibration sees every request."""
        self.renewals_failed += 1
        level = _every_level(self.renewals_failed)
        LOG.log(level, 'Could not have the shadow service renew the '
                'answer of a request answered from the cache (%s; %d '
                'renewals failed so far); recording the request instead',
                describe_error(error), self.renewals_failed)
        try:
            self._record(job['request'], job['columns'], job['budget'],
                         evaluation_id=job.get('evaluation_id'),
                         asked_at=job.get('asked_at'))
        except Exception as e:
            LOG.log(level, 'Could not have the shadow service record a '
                    'request answered from the cache (%s)',
                    describe_error(e))

    @staticmethod
    def _with_operation(request):
        """``request`` with the operation it was (the boot-or-move
        look-up the cached answer did not wait for), or None for one that
        sends nothing (an evacuation, a move with ``move_timeout`` 0, one
        that cannot be told)."""
        operation = operations.BOOT
        if request.get('instance_uuid'):
            operation = operations.operation_of_instance(
                request['instance_uuid'])
        if operation in (operations.REBUILD, operations.EVACUATE,
                         operations.UNKNOWN):
            return None
        if (operation != operations.BOOT
                and CONF.shadow_weigher.move_timeout <= 0):
            return None
        return dict(request, purpose=operation)


def _instances(state):
    """The instances Nova counts on ``state`` (0 when it says none)."""
    count = getattr(state, 'num_instances', None)
    return count if isinstance(count, int) else 0


class _RequestCache:
    """Rankings of multi-create requests, reused for their other
    instances.  Keyed by the RequestSpec object Nova passes on every call
    of one scheduling request (held weakly, so a new request never finds
    an old entry)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries = {}

    def get(self, spec_obj):
        now = time.monotonic()
        with self._lock:
            for key, entry in list(self._entries.items()):
                if entry['expires'] < now or entry['spec']() is None:
                    del self._entries[key]
            entry = self._entries.get(id(spec_obj))
            if entry is not None and entry['spec']() is spec_obj:
                return entry
            return None

    def put(self, spec_obj, ranking, ttl_s, states):
        """Keep ``ranking`` for the other instances of ``spec_obj``,
        with the instances each of ``states`` (the candidates of its
        first instance) had then: Nova counts each instance it places in
        its host's ``num_instances``, so what a host gained since is
        what it took of this request."""
        try:
            ref = weakref.ref(spec_obj)
        except TypeError:
            return None
        entry = {'spec': ref, 'ranking': ranking,
                 'instances': {state.host: _instances(state)
                               for state in states},
                 'expires': time.monotonic() + ttl_s}
        with self._lock:
            self._entries[id(spec_obj)] = entry
        return entry


class _DefaultOptions:
    """The ``[shadow_weigher]`` defaults, for a disabled weigher's
    parts (it never asks the service)."""

    def __getattr__(self, name):
        for opt in shadow_conf.shadow_weigher_opts:
            if opt.dest == name:
                return opt.default
        raise AttributeError(name)


def config_error(opts):
    """The first problem with the ``[shadow_weigher]`` options ``opts``
    (a message naming the option), or None.  Read at a request instead, a
    bad value would fail the scheduling of every request that reads it
    (:mod:`shadow_service.optcheck`)."""
    found = optcheck.problem(opts, sorted(opts),
                             lambda name: '[shadow_weigher] %s' % name)
    if found:
        return clip(found, 200)
    if opts.tie_margin >= opts.score_range:
        return ('[shadow_weigher] tie_margin (%g) must be below '
                'score_range (%g)' % (opts.tie_margin, opts.score_range))
    return None


class ShadowWeigher(weights.BaseHostWeigher):
    minval = 0.0
    maxval = 1.0

    def __init__(self):
        opts = CONF.shadow_weigher
        # An option nova-scheduler cannot use disables the weigher (one
        # error, then neutral weights and a multiplier of 0): scheduling
        # goes on with Nova's own weighers, as when the service is away.
        self.disabled = config_error(opts)
        if self.disabled is not None:
            LOG.error('Shadow weigher disabled until nova-scheduler is '
                      'restarted with a valid value: %s; every request '
                      "gets neutral weights (Nova's other weighers "
                      'decide)', self.disabled)
            opts = _DefaultOptions()
        self._api = None
        self._cache = _RequestCache()
        # Whether the service takes host columns (RPC API 1.3): False
        # after a service answered that it does not, until
        # ``_columns_retry_at`` (time.monotonic()), when it is asked again
        # (the service may have been upgraded since).
        self._columns = True
        self._columns_retry_at = 0.0
        # The cache of answers from history ([shadow_weigher]
        # prior_cache_ttl), off until ``_cache_retry_at`` after a service
        # answered that it does not take its calls (RPC API 1.4).
        self._prior_cache = priorcache.PriorCache(
            opts.prior_cache_ttl)
        self._cache_retry_at = 0.0
        self._recorder = None
        # The configured multiplier, read once per request (Nova asks
        # for it once per host).
        self._multiplier = None
        # (aggregate, value) of the bad aggregate multipliers logged.
        self._bad_multipliers = set()
        # Requests whose weighing failed unexpectedly (weigh_objects).
        self.failures = 0
        self.breaker = breaker.CircuitBreaker(
            failure_threshold=opts.failure_threshold,
            reset_timeout=opts.reset_timeout,
            failure_window=opts.failure_window)

    @property
    def api(self):
        if self._api is None:
            opts = CONF.shadow_weigher
            self._api = rpcapi.ShadowAPI(CONF, topic=opts.topic,
                                         transport_url=opts.transport_url)
        return self._api

    def weight_multiplier(self, host_state):
        """Override the weight multiplier."""
        if self.disabled is not None:
            return 0.0
        configured = self._multiplier
        if configured is None:
            configured = CONF.shadow_weigher.weight_multiplier
        aggregates = getattr(host_state, 'aggregates', None)
        if not aggregates:
            # No aggregate can override it.
            return configured
        # As Nova's utils.get_weight_multiplier (the lowest value of the
        # host's aggregates), but a value that is not a finite number is
        # ignored on its own: Nova's would take NaN or infinity, which
        # make every host's total weight NaN or infinite.
        values = []
        for aggregate in aggregates:
            metadata = _attr(aggregate, 'metadata') or {}
            if AGGREGATE_MULTIPLIER_KEY not in metadata:
                continue
            value = _finite_float(metadata[AGGREGATE_MULTIPLIER_KEY])
            if value is None:
                self._bad_multiplier(aggregate,
                                     metadata[AGGREGATE_MULTIPLIER_KEY])
            else:
                values.append(value)
        return min(values) if values else configured

    def _bad_multiplier(self, aggregate, value):
        """Log a bad ``shadow_weight_multiplier`` of ``aggregate`` once
        (Nova asks for the multiplier of every host of every request)."""
        name = _attr(aggregate, 'name') or _attr(aggregate, 'id')
        seen = (name, value)
        if seen in self._bad_multipliers:
            return
        if len(self._bad_multipliers) >= BAD_MULTIPLIERS_REMEMBERED:
            self._bad_multipliers.clear()
        self._bad_multipliers.add(seen)
        LOG.warning('Ignoring aggregate metadata %s=%s of aggregate %s: '
                    'not a finite number; its hosts get [shadow_weigher] '
                    'weight_multiplier (or another aggregate\'s value)',
                    AGGREGATE_MULTIPLIER_KEY, clip(value), clip(name))

    def _weigh_object(self, host_state, weight_properties):
        # weigh_objects() sees all hosts at once; this is never reached.
        return NO_EFFECT

    # -- one scheduling call ------------------------------------------------
    def weigh_objects(self, weighed_obj_list, spec_obj):
        """One weight per host of ``weighed_obj_list`` for ``spec_obj``.
        Never raises into Nova's scheduler: an error nothing else caught
        is logged (with its traceback for the first and every
        ``DROPS_LOGGED_EVERY``-th) and the request gets neutral weights,
        as when the service is away."""
        try:
            return self._weigh_objects(weighed_obj_list, spec_obj)
        except Exception as e:
            self.failures += 1
            first = self.failures % DROPS_LOGGED_EVERY == 1
            LOG.log(logging.ERROR if first else logging.DEBUG,
                    'Shadow weigher failed (%s; %d requests so far); '
                    'neutral weights for this request', describe_error(e),
                    self.failures, exc_info=first)
            return [NO_EFFECT] * len(weighed_obj_list)

    def _weigh_objects(self, weighed_obj_list, spec_obj):
        if self.disabled is not None:
            return [NO_EFFECT] * len(weighed_obj_list)
        # Nova's handler asks weight_multiplier() of every host next.
        self._multiplier = CONF.shadow_weigher.weight_multiplier
        states = [w.obj for w in weighed_obj_list]
        no_effect = [NO_EFFECT] * len(states)
        cached = self._cache.get(spec_obj)
        record = None
        if cached is not None:
            # Another instance of a multi-create: never ask twice, not even
            # after a failure (the request's wait stays one budget).
            ranking, what = cached['ranking'], 'multi-create (reused)'
        else:
            plan = self._plan_call(spec_obj, states)
            if plan is None:
                return no_effect
            if plan.local is not None:
                ranking = plan.local
            else:
                ranking = self._call(plan)
            if ranking is not None:
                record = plan.record
            what = plan.what
            if (_attr(spec_obj, 'num_instances', 1) or 1) > 1:
                cached = self._cache.put(
                    spec_obj, ranking, self._budget(spec_obj) + 60.0,
                    states)
        if ranking is None:
            return no_effect
        # _call() parsed the ranking into entries (once: it is the
        # weigher's main cost at 1,000 hosts after the RPC itself).
        entries = ranking
        try:
            weights_ = self._weights(
                entries, states,
                cached['instances'] if cached is not None else None)
        finally:
            if record is not None:
                # Queued once the weights are made: the records thread
                # then does not take the GIL from this request's own
                # pass over the hosts.
                self._send_record(record)
        if CONF.shadow_weigher.mode == 'observe':
            LOG.info('Shadow weigher (observe mode, not applied) for %s: %s',
                     what, self._summary(states, weights_))
            return no_effect
        if LOG.isEnabledFor(logging.DEBUG):
            # The summary sorts every host: only made when logged.
            LOG.debug('Shadow weights for %s: %s', what,
                      self._summary(states, weights_))
        if weights_ and min(weights_) == max(weights_):
            # The ranking tells no host apart (every host neutral or
            # tied): as a request without one, whatever the multipliers.
            return no_effect
        return weights_

    def _call(self, plan):
        """The ranking of ``plan`` as ``{host: entry}``
        (:func:`entries_from_ranking`) or None (neutral weights)."""
        try:
            ranking = breaker.call_with_deadline(plan.call, plan.deadline_s)
            entries = plan.parse(ranking)
        except (shadow_exception.ShadowException, messaging.RemoteError,
                InvalidReply) as e:
            # The service answered: it is up; this request is neutral.
            self.breaker.record_success()
            LOG.warning('Shadow service declined the %s (%s); neutral '
                        'weights for this request', plan.what,
                        describe_error(e))
            return None
        except Exception as e:
            opened = self.breaker.record_failure()
            LOG.warning('Shadow service %s failed (%s); neutral weights%s',
                        plan.what, describe_error(e),
                        '; circuit opened' if opened else '')
            return None
        self.breaker.record_success()
        return entries

    def _weights(self, entries, states, instances_before=None):
        """The weights of ``states`` from ``entries``;
        ``instances_before``: in a multi-create, ``{host: instances}``
        when its first instance was weighed."""
        # Options read once per request, not once per host.
        opts = CONF.shadow_weigher
        tie_margin, score_range = opts.tie_margin, opts.score_range
        confidence_weighting = opts.confidence_weighting
        present = [entries[s.host]['score'] for s in states
                   if s.host in entries]
        if not present:
            return [NEUTRAL] * len(states)
        best = max(present)
        # score_weight() and shrink(), inlined: this loop runs once per
        # host on every request (1,000 times at 1,000 hosts).
        span = max(score_range - tie_margin, 1e-9)
        out = []
        append = out.append
        get = entries.get
        for state in states:
            entry = get(state.host)
            if entry is None:
                # Not in the ranking (e.g. a host added after a pre-flight
                # evaluation): unmeasured, neutral.
                append(NEUTRAL)
                continue
            confidence = entry['confidence']
            if instances_before:
                # Nova counts each instance it places (its own server
                # group bookkeeping, HostState.instances, is only kept
                # for requests in a server group).
                placed = _instances(state) - instances_before.get(
                    state.host, _instances(state))
                if placed > 0:
                    # The shadows measured the host without this request's
                    # other VMs: trust its score less for each one placed
                    # there (Nova's own weighers see what they consumed).
                    confidence = confidence / (1.0 + placed)
            behind = best - entry['score']
            if behind <= tie_margin:
                weight = 1.0
            else:
                weight = max(0.0, 1.0 - (behind - tie_margin) / span)
            if confidence_weighting:
                weight = NEUTRAL + confidence * (weight - NEUTRAL)
            append(weight)
        return out

    @staticmethod
    def _summary(states, weights_):
        ranked = sorted(zip((s.host for s in states), weights_),
                        key=lambda hw: -hw[1])
        return ', '.join('%s=%.2f' % (clip(h, 40), w) for h, w in ranked[:5])

    # -- what to ask --------------------------------------------------------
    def _plan_call(self, spec_obj, states):
        """The :class:`_Plan` for ``spec_obj`` or None for no call."""
        opts = CONF.shadow_weigher
        evaluation_id = _hint(spec_obj, HINT_EVALUATION)
        profile = _hint(spec_obj, HINT_PROFILE)
        if evaluation_id is None and profile is None:
            return None
        if self.breaker.state == breaker.CircuitBreaker.OPEN:
            # Before anything else: an open circuit costs nothing.
            LOG.debug('Shadow service circuit is open; neutral weights')
            return None
        # The host columns, made once per request (the cache compares
        # them; a request it cannot answer sends them).
        described = {}
        if evaluation_id is None:
            plan = self._cached_plan(spec_obj, states, profile, opts,
                                     described)
            if plan is not None:
                return plan
        operation = operations.operation_of(spec_obj)
        if operation in (operations.REBUILD, operations.EVACUATE,
                         operations.UNKNOWN):
            LOG.debug('Shadow weigher: %s is never delayed; neutral '
                      'weights', operation)
            return None
        if evaluation_id is not None:
            try:
                evaluation_id = str(uuid.UUID(str(evaluation_id)))
            except ValueError:
                LOG.warning('Ignoring scheduler hint %s=%s: not a UUID',
                            HINT_EVALUATION, clip(evaluation_id))
                evaluation_id = None
        if evaluation_id is not None and operation == operations.BOOT:
            return self._allowed(self._lookup(
                evaluation_id, _attr(spec_obj, 'project_id')))
        if profile is None:
            return None
        if not isinstance(profile, str) or not profile.strip():
            LOG.warning('Ignoring scheduler hint %s=%s: not a profile name',
                        HINT_PROFILE, clip(profile))
            return None
        if operation != operations.BOOT and opts.move_timeout <= 0:
            return None
        try:
            request = build_request(spec_obj, profile.strip(),
                                    purpose=operation)
        except Exception as e:
            LOG.warning('Could not describe the request for the shadow '
                        'service (%s); neutral weights', describe_error(e))
            return None
        columns = described.get('columns') or describe_host_columns(states)
        names = columns['host']
        if operation == operations.BOOT:
            budget = self._budget(spec_obj)
            timeout = budget + opts.deadline_margin
        else:
            # A move is answered from history, without shadows.
            budget = opts.move_timeout
            timeout = budget + opts.deadline_margin
        what = '%s ranking of %d hosts for profile %s' % (
            operation, len(names), clip(profile, 64))
        cache = self._prior_cache_for(opts)
        # Only a boot's answer from history is kept: history decided it
        # (a move is answered from history whatever history knows).
        key = (priorcache.workload_key(request)
               if cache is not None and operation == operations.BOOT
               else None)

        def rank():
            # Hosts as columns and the answer in their order, without
            # names (doc/source/weigher.rst, "Cost").
            if self._columns or _clock() >= self._columns_retry_at:
                try:
                    answer = self._rank_columns(request, columns, budget,
                                                timeout, cache)
                except Exception as e:
                    if not _unsupported(e):
                        raise
                    self._columns = False
                    self._columns_retry_at = _clock() + COLUMNS_RETRY_S
                    LOG.warning('The shadow service does not take host '
                                'columns (RPC API 1.3); sending host '
                                'lists (1.1) for %d s', COLUMNS_RETRY_S)
                else:
                    self._columns = True
                    return True, answer
            # An older service: host lists, and only each host's name,
            # score and confidence back.
            return False, self.api.rank_hosts(
                {}, request, describe_hosts(states), budget,
                timeout=timeout, detail=False)

        def parse(answer):
            as_columns, reply = answer
            if not as_columns:
                return entries_from_ranking(reply)
            entries = entries_from_columns(reply, names)
            if (key is not None and reply.get('source') == 'history'
                    and self._cache_supported()):
                cache.store(key, columns, entries)
            return entries

        return self._allowed(_Plan(what, rank, timeout, parse))

    # -- the cache of answers from history -----------------------------------
    def _cached_plan(self, spec_obj, states, profile, opts, described):
        """A :class:`_Plan` from the cache of answers from history, or
        None (ask as without it).  Tried before the boot-or-move look-up,
        which then runs on the recorder's thread: a move or an evacuation
        of a workload with a cached answer is weighed by it too (it is
        not delayed: nothing is waited for), and only its record
        differs.  ``described`` receives the host columns it made."""
        cache = self._prior_cache_for(opts)
        if (cache is None or not isinstance(profile, str)
                or not profile.strip()
                or utils.request_is_rebuild(spec_obj)):
            return None
        try:
            request = build_request(spec_obj, profile.strip())
        except Exception:
            # Said by the path without the cache.
            return None
        key = priorcache.workload_key(request)
        if not cache.holds(key):
            return None
        columns = described['columns'] = describe_host_columns(states)
        lookup = cache.lookup(key, columns)
        if lookup is None:
            return None
        job = {'request': request, 'columns': columns,
               'budget': self._budget(spec_obj), 'key': key,
               'cache': cache, 'asked_at': time.time(),
               'changed': lookup.changed,
               # Past half its life the answer is renewed in the
               # background, so a steady flow of requests finds one
               # (not when another thread dropped it since the lookup:
               # then nobody may claim its renewal).
               'renew': (lookup.age > cache.ttl_s / 2
                         and cache.claim_renewal(key))}
        what = 'ranking of %d hosts for profile %s (cached answer from ' \
            'history%s)' % (len(columns['host']), clip(profile, 64),
                            '; %d hosts with changed facts neutral, asked '
                            'again' % len(lookup.changed)
                            if lookup.changed else '')
        # The hosts whose facts changed are not in the entries: neutral
        # for this request (never their old score: one of them may just
        # have taken the previous VM).
        return _Plan(what, None, 0.0, local=lookup.entries, record=job,
                     changed=len(lookup.changed))

    def _prior_cache_for(self, opts):
        """The cache of answers from history, or None when it is off or
        the service does not take its calls (RPC API 1.4)."""
        ttl = opts.prior_cache_ttl
        if ttl <= 0 or not self._cache_supported():
            return None
        if self._prior_cache.ttl_s != ttl:
            self._prior_cache = priorcache.PriorCache(ttl)
        return self._prior_cache

    def _cache_supported(self):
        return self._cache_retry_at <= _clock()

    def _cache_unsupported(self, warn=True):
        self._cache_retry_at = _clock() + COLUMNS_RETRY_S
        self._prior_cache.forget()
        if warn:
            self._warn_cache_unsupported()

    @staticmethod
    def _warn_cache_unsupported():
        LOG.warning('The shadow service does not answer from history '
                    'alone (RPC API 1.4); not reusing its answers for %d s',
                    COLUMNS_RETRY_S)

    def _rank_columns(self, request, columns, budget, timeout, cache):
        """``rank_host_columns`` of every candidate: of RPC API 1.4 while
        the cache is on (a service that answers UnsupportedVersion is
        asked again at 1.3 and the cache stays off for a while)."""
        if cache is not None:
            try:
                return self.api.rank_host_columns(
                    {}, request, columns, budget, timeout=timeout,
                    history_only=False, record=True)
            except Exception as e:
                if not _unsupported(e):
                    raise
                # Said once the service is known to take 1.3 (an older
                # one gets the warning about host lists instead).
                self._cache_unsupported(warn=False)
            answer = self.api.rank_host_columns({}, request, columns,
                                                budget, timeout=timeout)
            self._warn_cache_unsupported()
            return answer
        return self.api.rank_host_columns({}, request, columns, budget,
                                          timeout=timeout)

    def _send_record(self, record):
        """Have the service record a request answered from the cache
        (a cast, on the recorder's thread: the request does not wait)."""
        if self._recorder is None:
            self._recorder = _Recorder(self)
        self._recorder.send(record)

    def _allowed(self, plan):
        """``plan`` if the circuit breaker lets a call through now (this
        claims the half-open trial, which the call then settles)."""
        if not self.breaker.allow():
            LOG.debug('Shadow service circuit is open; neutral weights')
            return None
        return plan

    def _lookup(self, evaluation_id, project_id):
        """The :class:`_Plan` looking up ``evaluation_id`` for a boot of
        ``project_id``: the service finds it only when it is that
        project's or no project's (an operator's pre-flight); another
        project's is "not found", neutral weights as for an unknown
        id."""
        timeout = CONF.shadow_weigher.lookup_timeout
        # As the request builder clips it (what the service recorded).
        project_id = (str(project_id)[:request_lib.MAX_NAME]
                      if project_id else None)

        def lookup():
            reply = self.api.get_evaluation({}, evaluation_id,
                                            timeout=timeout,
                                            project_id=project_id)
            if not isinstance(reply, dict):
                raise InvalidReply('evaluation reply is not a dict')
            if reply.get('status') != 'finished':
                raise InvalidReply('evaluation %s is %s' % (
                    evaluation_id, clip(reply.get('status'))))
            return reply.get('ranking')

        return _Plan('look-up of evaluation %s' % evaluation_id, lookup,
                     timeout + CONF.shadow_weigher.deadline_margin)

    def _budget(self, spec_obj):
        opts = CONF.shadow_weigher
        raw = _hint(spec_obj, HINT_BUDGET)
        if raw is None:
            return min(opts.default_budget, opts.max_budget)
        try:
            budget = float(raw)
            if not math.isfinite(budget) or budget <= 0:
                raise ValueError(raw)
        except (TypeError, ValueError, OverflowError):
            LOG.warning('Ignoring scheduler hint %s=%s: not a positive '
                        'number of seconds', HINT_BUDGET, clip(raw))
            return min(opts.default_budget, opts.max_budget)
        if budget > opts.max_budget:
            LOG.info('Scheduler hint %s=%s clipped to [shadow_weigher] '
                     'max_budget=%s', HINT_BUDGET, clip(raw),
                     opts.max_budget)
        return min(budget, opts.max_budget)
