"""The RPC endpoint of ``shadow-service``: parse, validate, delegate.

``ShadowManager`` holds no evaluation logic: it validates what arrives,
enforces the concurrency limit, and hands the work to an
:class:`~shadow_service.evaluation.Evaluator`.  Finished evaluations are kept
in memory for ``[shadow] evaluation_ttl`` seconds, the most recent
``EVALUATIONS_KEPT`` of them (holding at most ``EVALUATION_HOSTS_KEPT``
candidate hosts) at most, and in the history store for longer: a
``shadow_evaluation`` hint or ``get_evaluation`` finds them in either.

A ``get_evaluation`` made for a project (``shadow_project_id`` in the
request context: the weigher looking up a boot's ``shadow_evaluation``
hint) finds only the evaluations of that project's requests and those
whose request names no project (an operator's pre-flight); another
project's evaluation is "not found", as an unknown id is.  A call that
names no project (the operator's read-back) finds any.

An evaluation started with ``start_evaluation`` whose caller stops polling
it (``get_evaluation``) for ``[shadow] unpolled_evaluation_timeout``
seconds is cancelled, as ``cancel_evaluation`` would: its caller died or
gave up, and it would hold its slot for its whole budget.  A caller that
does not mean to poll says so when it starts it (``shadow_detached`` in
the request context, :meth:`shadow_service.rpcapi.ShadowAPI.
start_evaluation`).

Every rejected call (bad input, unknown evaluation, busy service, a
history store that cannot be read for the operator's read-back) is
logged as one INFO line with the typed error's message, never a
traceback; the caller gets the typed error.
"""

import collections
import concurrent.futures
import functools
import inspect
import logging
import math
import threading
import time
import uuid

import oslo_messaging as messaging

from shadow_service import audit
from shadow_service import boundedqueue
from shadow_service import exception
from shadow_service import exporter
from shadow_service import logsafe
from shadow_service import rpcapi
from shadow_service import schema
from shadow_service.history import base as history_base
from shadow_service.watcher import records as decision_records
from shadow_service.workloads import profiles as profiles_mod

LOG = logging.getLogger(__name__)

#: Longest look-back of the listings (seconds).
MAX_SINCE_S = rpcapi.MAX_SINCE_S
#: Most rows a listing returns.
MAX_LIMIT = rpcapi.MAX_LIMIT
#: Longest project id a call may be made for (a request's ``project_id``
#: in ``schema``).
MAX_PROJECT_ID = 255


#: What a compact host entry keeps (``rank_hosts(detail=False)``).
COMPACT_HOST_KEYS = ('host', 'score', 'confidence')


def compact(ranking):
    """``ranking`` with each host entry cut to ``COMPACT_HOST_KEYS``: what
    the weigher reads.  The evaluation record keeps every detail."""
    result = dict(ranking)
    result['hosts'] = [{key: entry[key] for key in COMPACT_HOST_KEYS
                        if key in entry}
                       for entry in ranking.get('hosts', ())]
    return result


#: Longest wait for queued evaluation records before reading history.
RECORDS_WAIT_S = 10.0
#: Finished evaluations kept in memory, the most recent (older ones, and
#: those past ``evaluation_ttl``, are read from the history store) ...
EVALUATIONS_KEPT = 1024
#: ... holding at most this many candidate hosts in all (a finished
#: evaluation holds about 3.5 KB per host: its ranking, the hosts' facts).
EVALUATION_HOSTS_KEPT = 32768
#: Seconds between two passes, on admission, that forget the finished
#: evaluations past ``evaluation_ttl``.
EXPIRE_EVERY_S = 1.0
#: The weigher's records (casts of the requests it answered from its
#: cache) waiting for the service's one records thread
#: (shadow_service.boundedqueue): at most this many ...
RECORDS_QUEUED = 1024
#: ... holding at most this many candidate hosts in all (256 records of
#: 1,000 hosts; 1,024 of up to 250); more are dropped, counted and logged.
RECORD_HOSTS_QUEUED = 256000
#: A warning for the first dropped record and every this many after.
RECORDS_DROPPED_WARN_EVERY = 100
#: Seconds a stopping service goes on recording the records still
#: waiting; those left then are dropped, counted and logged.
RECORDS_DRAIN_S = 10.0
#: Weighers whose count of dropped records the service keeps, to export
#: only what each one's next report adds (the one heard from least
#: recently is forgotten first).
DROP_SENDERS_KEPT = 1024


def _record_hosts(hosts):
    """How many candidate hosts a record names (its weight in the
    records queue), before the record is checked: a record too large
    for the schema is dropped here or rejected by its check."""
    names = hosts.get('host') if isinstance(hosts, dict) else None
    return len(names) if isinstance(names, (list, tuple)) else 1


def columns_reply(ranking, names):
    """What ``rank_host_columns`` answers: the ranking's overall fields
    (``evaluation_id``, ``status``, ``source``, ``confidence``,
    ``raw_confidence`` when stated) and, in the order of ``names`` (the
    request's hosts), ``scores`` and ``confidences``."""
    by_host = {entry['host']: entry for entry in ranking.get('hosts', ())}
    reply = {key: ranking[key] for key in COLUMNS_REPLY_KEYS
             if key in ranking}
    entries = [by_host.get(name) for name in names]
    reply['scores'] = [None if e is None else e['score'] for e in entries]
    reply['confidences'] = [None if e is None else e.get('confidence')
                            for e in entries]
    return reply


#: The overall fields a ``rank_host_columns`` answer carries.
COLUMNS_REPLY_KEYS = ('evaluation_id', 'status', 'source', 'confidence',
                      'raw_confidence')
#: Status of an evaluation whose process was stopped before it finished.
INTERRUPTED = 'interrupted'
#: Seconds before the caller's deadline an evaluation stops, to answer.
CALLER_MARGIN_S = 0.5
#: A caller clock further ahead than this is not trusted.
MAX_CLOCK_SKEW_S = 60.0
#: Longest sleep of the thread that cancels unpolled evaluations (it
#: looks four times per ``unpolled_evaluation_timeout`` when that is
#: shorter).
UNPOLLED_CHECK_S = 5.0


def caller_left(ctxt, now=None):
    """Seconds until the caller stops waiting (from the request context
    :func:`shadow_service.rpcapi.with_deadline` fills), or None if it did
    not say.  Clocks are assumed synchronised (NTP); a sending time in
    the future by more than ``MAX_CLOCK_SKEW_S`` counts from receipt."""
    if not isinstance(ctxt, dict):
        return None
    wait_s, sent_at = ctxt.get('shadow_wait_s'), ctxt.get('shadow_sent_at')
    numbers = (int, float)
    if (not isinstance(wait_s, numbers) or isinstance(wait_s, bool)
            or not math.isfinite(wait_s) or wait_s <= 0):
        return None
    now = time.time() if now is None else now
    if (not isinstance(sent_at, numbers) or isinstance(sent_at, bool)
            or not math.isfinite(sent_at)
            or sent_at > now + MAX_CLOCK_SKEW_S):
        sent_at = now
    return sent_at + wait_s - now


def asked_at(ctxt, now=None):
    """When Nova asked the request a record records (the sender's wall
    clock, ``shadow_asked_at`` in the request context:
    :meth:`shadow_service.rpcapi.ShadowAPI.record_host_columns`), or None
    when it does not say or says nonsense.  A time ahead of ``now`` (this
    host's wall clock) by more than ``MAX_CLOCK_SKEW_S`` is not believed;
    one less ahead is read as ``now``."""
    value = (ctxt.get(rpcapi.CTXT_ASKED_AT) if isinstance(ctxt, dict)
             else None)
    if (not isinstance(value, (int, float)) or isinstance(value, bool)
            or not math.isfinite(value)):
        return None
    now = time.time() if now is None else now
    if value > now + MAX_CLOCK_SKEW_S:
        return None
    return min(float(value), now)


def named_evaluation_id(ctxt):
    """The evaluation id the caller named in the request context
    (``shadow_evaluation_id``: :func:`shadow_service.rpcapi.
    with_evaluation_id`) or None; InvalidRequest when it is not a UUID
    in its canonical form (the form the service's own ids have)."""
    if not isinstance(ctxt, dict):
        return None
    named = ctxt.get(rpcapi.CTXT_EVALUATION_ID)
    if named is None:
        return None
    try:
        canonical = str(uuid.UUID(named)) if isinstance(named, str) else None
    except ValueError:
        canonical = None
    if canonical != named:
        raise exception.InvalidRequest(
            reason='%s: not a UUID' % rpcapi.CTXT_EVALUATION_ID)
    return named


def asking_project(ctxt):
    """The project a call is made for (``shadow_project_id`` in the
    request context: :func:`shadow_service.rpcapi.with_project`) or
    None; InvalidRequest when it is not a string of at most
    ``MAX_PROJECT_ID`` characters."""
    if not isinstance(ctxt, dict):
        return None
    project = ctxt.get(rpcapi.CTXT_PROJECT_ID)
    if project is None or project == '':
        return None
    if not isinstance(project, str) or len(project) > MAX_PROJECT_ID:
        raise exception.InvalidRequest(
            reason='%s: not a project id' % rpcapi.CTXT_PROJECT_ID)
    return project


def visible_to(request, project):
    """Whether an evaluation of ``request`` may be used for ``project``
    (None: the operator, who may use any): when either names no project,
    or both name the same one."""
    owner = request.get('project_id') if isinstance(request, dict) else None
    return not project or not owner or owner == project


def _detached(ctxt):
    """Whether the caller of ``start_evaluation`` said it will not poll
    the evaluation (``shadow_detached`` in the request context): a
    pre-flight evaluation for a later ``shadow_evaluation`` hint."""
    return isinstance(ctxt, dict) and ctxt.get('shadow_detached') is True


def _require_boolean(**flags):
    """InvalidRequest naming the first of ``flags`` that is not a
    boolean."""
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise exception.InvalidRequest(
                reason='%s: must be true or false' % name)


def _checks_arguments(method):
    """InvalidRequest, not oslo.messaging's untyped TypeError (and its
    traceback in the log), for a call whose arguments ``method`` does not
    take: one it does not know, or a required one missing.  The names in
    the reason are escaped (a caller chooses them)."""
    signature = inspect.signature(method)
    names = [name for name in signature.parameters if name != 'self']
    known = frozenset(names)
    required = [name for name, param in signature.parameters.items()
                if name not in ('self', 'ctxt')
                and param.default is inspect.Parameter.empty]

    @functools.wraps(method)
    def wrapper(self, ctxt, *args, **kwargs):
        unknown = sorted(kwargs.keys() - known)
        missing = [name for name in required[len(args):]
                   if name not in kwargs]
        if unknown or missing or len(args) > len(names) - 1:
            parts = []
            if unknown:
                parts.append('unknown argument%s %s' % (
                    's' if len(unknown) > 1 else '',
                    ', '.join(logsafe.clip(n, 60) for n in unknown[:5])))
            if missing:
                parts.append('missing argument%s %s' % (
                    's' if len(missing) > 1 else '', ', '.join(missing)))
            if not parts:
                parts.append('too many arguments')
            raise exception.InvalidRequest(reason='%s: %s (it takes %s)' % (
                method.__name__, '; '.join(parts),
                ', '.join(names[1:]) or 'none'))
        return method(self, ctxt, *args, **kwargs)

    return wrapper


def _logs_rejections(method):
    """One INFO line per typed rejection of ``method``; the error goes
    back to the caller unchanged."""

    @functools.wraps(method)
    def wrapper(self, ctxt, *args, **kwargs):
        try:
            return method(self, ctxt, *args, **kwargs)
        except exception.ShadowException as e:
            LOG.info('Rejected %s: %s: %s', method.__name__,
                     type(e).__name__, logsafe.clip(str(e), 300))
            raise

    return wrapper


class ShadowManager:
    """Endpoint of the ``shadow`` topic, RPC API version 1.x."""

    target = messaging.Target(version=rpcapi.RPC_API_VERSION)

    def __init__(self, evaluator, *, max_concurrent=4, evaluation_ttl=3600,
                 unpolled_timeout=0.0):
        self.evaluator = evaluator
        self.max_concurrent = max_concurrent
        self.evaluation_ttl = evaluation_ttl
        #: Seconds a started evaluation may go unpolled (0: forever).
        self.unpolled_timeout = unpolled_timeout
        # Evaluations by id, in the order they were admitted; their
        # candidate hosts in all; when expired ones are next forgotten
        # on admission (time.monotonic()).
        self._evaluations = {}
        self._held_hosts = 0
        self._next_expiry = 0.0
        self._running = 0
        self._lock = threading.Lock()
        # Started evaluations whose caller polls them: id -> when they
        # were started or last polled (time.monotonic()).
        self._polled = {}
        self._reaper = None
        self._stopping = threading.Event()
        # Set when the service stops: every evaluation is cancelled as
        # it is admitted (under _lock).
        self._cancelling = False
        # Set when the manager is shut down (under _lock): evaluations
        # that would take a slot are refused (ServiceStopping).
        self._closed = False
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_concurrent, thread_name_prefix='evaluation')
        # Records are answered one at a time on a thread of their own, so
        # that a burst of them never outnumbers, on the service's threads
        # and GIL, a call a scheduler waits for.
        self._records = boundedqueue.BoundedQueue(RECORDS_QUEUED,
                                                  RECORD_HOSTS_QUEUED)
        self._records_thread = None
        # Set once the service stops taking records (under _lock), and
        # when the records thread stops answering those still waiting.
        self._records_closed = False
        self._records_until = None
        #: Records dropped because they did not fit beside those waiting,
        #: or were still waiting when the service stopped.
        self.records_dropped = 0
        #: Each weigher's last reported count of the records it dropped
        #: (its sender id -> count), least recently heard from first.
        self._weigher_drops = collections.OrderedDict()

    # RPC methods ---------------------------------------------------------

    @messaging.expected_exceptions(exception.InvalidRequest,
                                   exception.ServiceBusy)
    @exporter.timed_rpc
    @_logs_rejections
    @_checks_arguments
    def rank_hosts(self, ctxt, request, hosts, budget_s, detail=True):
        _require_boolean(detail=detail)
        ranking = self.evaluate(request, hosts, budget_s,
                                caller_left=caller_left(ctxt))
        return ranking if detail else compact(ranking)

    @messaging.expected_exceptions(exception.InvalidRequest,
                                   exception.ServiceBusy)
    @exporter.timed_rpc
    @_logs_rejections
    @_checks_arguments
    def rank_host_columns(self, ctxt, request, hosts, budget_s,
                          history_only=False, record=True):
        """``rank_hosts`` with the hosts as columns and the answer in
        their order (1.3; see :func:`columns_reply`); with
        ``history_only`` from the history prior alone, without shadows,
        and with ``record`` False not recorded (1.4).  The caller may
        name the evaluation (``shadow_evaluation_id`` in the request
        context): the weigher names a renewal of its cached answer and the
        record it sends when the renewal fails alike, so the two are one
        evaluation in the history."""
        _require_boolean(history_only=history_only, record=record)
        if history_only and record and rpcapi.is_record(ctxt):
            # A record: nobody waits for its answer.
            self._take_weigher_drops(ctxt)
            self._queue_record(ctxt, request, hosts, budget_s)
            return None
        return columns_reply(self._rank_columns(
            ctxt, request, hosts, budget_s, history_only, record),
            hosts['host'])

    def _rank_columns(self, ctxt, request, hosts, budget_s, history_only,
                      record):
        evaluation_id = named_evaluation_id(ctxt)
        rows = schema.hosts_from_columns(hosts)
        return self.evaluate(request, rows, budget_s,
                             caller_left=caller_left(ctxt),
                             hosts_checked=True, history_only=history_only,
                             record=record, evaluation_id=evaluation_id,
                             asked_at=asked_at(ctxt))

    def _take_weigher_drops(self, ctxt):
        """Export what a record's report of the records its weigher
        dropped (:func:`shadow_service.rpcapi.dropped_report`) adds to
        that weigher's last report; a malformed report is logged and
        ignored (the record is not)."""
        report = rpcapi.dropped_report(ctxt)
        if report is None:
            return
        if report is False:
            LOG.info('Ignored a malformed report of dropped records in a '
                     'record\'s request context: %s',
                     logsafe.clip(ctxt.get(rpcapi.CTXT_DROPPED)))
            return
        sender, count = report
        with self._lock:
            last = self._weigher_drops.pop(sender, 0)
            # Reports may arrive out of order (several RPC threads).
            self._weigher_drops[sender] = max(last, count)
            while len(self._weigher_drops) > DROP_SENDERS_KEPT:
                self._weigher_drops.popitem(last=False)
        if count > last:
            exporter.weigher_records_dropped(count - last)

    def _queue_record(self, ctxt, request, hosts, budget_s):
        """Queue a record for the records thread (started on the first),
        or drop and count it when it does not fit beside those waiting
        (``RECORDS_QUEUED``, ``RECORD_HOSTS_QUEUED``) or the service has
        stopped taking records."""
        with self._lock:
            if not self._records_closed:
                if self._records_thread is None:
                    self._records_thread = threading.Thread(
                        target=self._answer_records, daemon=True,
                        name='shadow-records')
                    self._records_thread.start()
                try:
                    self._records.put_nowait(
                        (ctxt, request, hosts, budget_s),
                        weight=_record_hosts(hosts))
                    return
                except boundedqueue.Full:
                    pass
            # No room, or the service is stopping.
            exporter.record_dropped()
            self.records_dropped += 1
            dropped = self.records_dropped
        if dropped == 1 or dropped % RECORDS_DROPPED_WARN_EVERY == 0:
            LOG.warning('Dropped a record of a request the weigher answered '
                        'from its cache (%d dropped so far): %d records of '
                        '%d hosts in all are waiting to be recorded',
                        dropped, self._records.qsize(),
                        self._records.weight())

    def _answer_records(self):
        """The records thread: each queued record answered from history
        and recorded, in turn, until the service stops and those waiting
        then are recorded (or ``RECORDS_DRAIN_S`` passed)."""
        while True:
            if self._stopping.is_set() and (
                    not self._records.qsize()
                    or time.monotonic() >= self._records_until):
                return
            try:
                ctxt, request, hosts, budget_s = self._records.get(
                    timeout=0.5)
            except boundedqueue.Empty:
                continue
            try:
                self._rank_columns(ctxt, request, hosts, budget_s, True,
                                   True)
            except exception.ShadowException as e:
                LOG.info('Rejected a record: %s: %s', type(e).__name__,
                         logsafe.clip(str(e), 300))
            except Exception:
                LOG.exception('Recording a request failed')

    @messaging.expected_exceptions(exception.InvalidRequest,
                                   exception.ServiceBusy)
    @exporter.timed_rpc
    @_logs_rejections
    @_checks_arguments
    def start_evaluation(self, ctxt, request, hosts, budget_s):
        evaluation = self._admit(request, hosts, budget_s)
        evaluation_id = evaluation.evaluation_id
        watched = self.unpolled_timeout > 0 and not _detached(ctxt)
        if watched:
            with self._lock:
                self._polled[evaluation_id] = time.monotonic()
            self._watch_polls()

        def unwatch():
            if watched:
                with self._lock:
                    self._polled.pop(evaluation_id, None)

        def work():
            try:
                self._run(evaluation)
            except Exception:
                LOG.exception('Evaluation %s failed', evaluation_id)
            finally:
                unwatch()
                self._release()

        try:
            self._pool.submit(work)
        except RuntimeError:
            # The manager was shut down after the admission: the
            # evaluation never runs; its slot and its place go back.
            unwatch()
            with self._lock:
                if self._evaluations.get(evaluation_id) is evaluation:
                    self._forget(evaluation_id)
            self._release()
            exporter.evaluation_refused('stopping')
            raise exception.ServiceStopping() from None
        return evaluation_id

    @messaging.expected_exceptions(exception.InvalidRequest,
                                   exception.EvaluationNotFound,
                                   exception.HistoryUnavailable)
    @exporter.timed_rpc
    @_logs_rejections
    @_checks_arguments
    def get_evaluation(self, ctxt, evaluation_id):
        schema.validate_evaluation_id(evaluation_id)
        project = asking_project(ctxt)
        self._expire()
        evaluation = self._evaluations.get(evaluation_id)
        if evaluation is not None and visible_to(evaluation.request,
                                                 project):
            with self._lock:
                if evaluation_id in self._polled:
                    self._polled[evaluation_id] = time.monotonic()
            return evaluation.to_dict()
        # Another project's evaluation (in memory or recorded) takes the
        # unknown id's path to the same error, its remote traceback
        # included: nothing tells the caller it exists.
        hidden = evaluation is not None
        record = self._recorded(evaluation_id)
        if record is not None and audit.is_deleted(record):
            record = None
        if record is not None and not visible_to(record.get('request'),
                                                 project):
            hidden = True
        if hidden:
            self._log_not_visible(evaluation_id, project)
            record = None
        if record is None:
            raise exception.EvaluationNotFound(evaluation_id=evaluation_id)
        if record.get('status') in ('running', 'pending'):
            # Started, never finished, and not running here: the process
            # that ran it was stopped or killed.
            return {'evaluation_id': evaluation_id,
                    'status': INTERRUPTED, 'progress': 0.0,
                    'ranking': None,
                    'error': 'the service stopped before the evaluation '
                             'finished',
                    'started_at': record.get('started_at'),
                    'finished_at': None}
        return {'evaluation_id': evaluation_id,
                'status': record.get('status', 'finished'),
                'progress': 1.0, 'ranking': record, 'error': None,
                'started_at': record.get('started_at'),
                'finished_at': record.get('finished_at')}

    @staticmethod
    def _log_not_visible(evaluation_id, project):
        LOG.info('Evaluation %s was asked for by project %s, not the one '
                 'that requested it: not found', evaluation_id,
                 logsafe.clip(project))

    @messaging.expected_exceptions(exception.InvalidRequest)
    @exporter.timed_rpc
    @_logs_rejections
    @_checks_arguments
    def cancel_evaluation(self, ctxt, evaluation_id):
        schema.validate_evaluation_id(evaluation_id)
        evaluation = self._evaluations.get(evaluation_id)
        if evaluation is not None:
            LOG.info('Cancelling evaluation %s', evaluation_id)
            evaluation.cancelled = True

    # 1.2: the operator's read-back ---------------------------------------

    @messaging.expected_exceptions(exception.InvalidRequest,
                                   exception.HistoryUnavailable)
    @exporter.timed_rpc
    @_logs_rejections
    @_checks_arguments
    def list_evaluations(self, ctxt, since_s=86400.0, limit=None,
                         status=None):
        since_s, limit = _window(since_s, limit)
        self._expire()
        self._settle_records()
        now = self.evaluator.driver.now()
        rows = {}
        for at, record in self._from_history(
                audit.list_evaluations, self.evaluator.history,
                now - since_s, None):
            rows[record.get('evaluation_id')] = audit.summary(record, at)
        # A record still ``running`` that this process does not run was
        # stopped with its process.
        for row in rows.values():
            if row.get('status') in ('running', 'pending'):
                row['status'] = INTERRUPTED
        # Running (and not yet recorded) evaluations from memory; a
        # finished one in memory is the same as its record.
        for evaluation in list(self._evaluations.values()):
            if (evaluation.evaluation_id in rows
                    and evaluation.status not in ('running', 'pending')):
                continue
            row = audit.summary(evaluation.to_dict())
            row['profile'] = audit.summary(
                {'request': evaluation.request})['profile']
            row['vcpus'] = (evaluation.request.get('flavor') or {}).get(
                'vcpus')
            # On the driver's clock, like the recorded rows.
            row['at'] = getattr(evaluation, 'clock_started_at',
                                evaluation.started_at)
            rows[evaluation.evaluation_id] = row
        out = [r for r in rows.values()
               if status is None or r['status'] == status]
        # Newest first; at the same time, those still under way first.
        out.sort(key=lambda r: (r['at'] or 0.0,
                                r['status'] in ('running', 'pending')),
                 reverse=True)
        return out[:limit]

    @messaging.expected_exceptions(exception.InvalidRequest,
                                   exception.EvaluationNotFound,
                                   exception.HistoryUnavailable)
    @exporter.timed_rpc
    @_logs_rejections
    @_checks_arguments
    def delete_evaluation(self, ctxt, evaluation_id):
        schema.validate_evaluation_id(evaluation_id)
        evaluation = self._evaluations.get(evaluation_id)
        if evaluation is None:
            record = self._recorded(evaluation_id)
            if record is None or audit.is_deleted(record):
                raise exception.EvaluationNotFound(
                    evaluation_id=evaluation_id)
        # The tombstone first: when the history cannot take it, nothing
        # changes and the caller is told so.
        self._settle_records()
        self._from_history(audit.tombstone, self.evaluator.history,
                           evaluation_id, self.evaluator.driver.now())
        LOG.info('Deleting evaluation %s', evaluation_id)
        if evaluation is not None:
            with self._lock:
                self._forget(evaluation_id)
            # A running evaluation stops and deletes its shadows; _run
            # writes the tombstone again after its own final record.
            evaluation.deleted = True
            evaluation.cancelled = True
        return {'evaluation_id': evaluation_id, 'status': audit.DELETED}

    @messaging.expected_exceptions(exception.InvalidRequest)
    @exporter.timed_rpc
    @_checks_arguments
    def list_profiles(self, ctxt):
        dirs = self.evaluator.profile_dirs
        out = []
        for name in profiles_mod.builtin_names():
            out.append(self._profile_row(name, 'builtin', dirs))
        for name in profiles_mod.operator_names(dirs):
            out.append(self._profile_row(name, 'operator', dirs))
        return out

    @messaging.expected_exceptions(exception.InvalidRequest)
    @exporter.timed_rpc
    @_checks_arguments
    def get_profile(self, ctxt, name):
        if not isinstance(name, str) or not name.strip():
            raise exception.InvalidRequest(reason='name: must be a profile '
                                                  'name')
        try:
            profile = profiles_mod.named_profile(
                name.strip(), self.evaluator.profile_dirs)
        except profiles_mod.ProfileError as e:
            raise exception.InvalidRequest(reason='profile %s: %s'
                                           % (name, e))
        spec = profile.to_dict()
        spec['source'] = ('builtin' if name in profiles_mod.builtin_names()
                          else 'operator')
        return spec

    @messaging.expected_exceptions(exception.InvalidRequest,
                                   exception.HistoryUnavailable)
    @exporter.timed_rpc
    @_logs_rejections
    @_checks_arguments
    def list_decisions(self, ctxt, since_s=86400.0, instance=None,
                       action=None, outcome=None, limit=None):
        since_s, limit = _window(since_s, limit)
        for field, value in (('instance', instance), ('action', action),
                             ('outcome', outcome)):
            if value is not None and not isinstance(value, str):
                raise exception.InvalidRequest(
                    reason='%s: must be a string' % field)
        now = self.evaluator.driver.now()
        found = self._from_history(decision_records.read,
                                   self.evaluator.history, now - since_s,
                                   None, instance=instance)
        out = [r for r in found
               if (action is None or r.get('action') == action)
               and (outcome is None or r.get('outcome') == outcome)]
        out.reverse()
        return out[:limit]

    # the same, called in-process (no RPC exception wrapping) -------------

    def evaluate(self, request, hosts, budget_s, caller_left=None,
                 hosts_checked=False, history_only=False, record=True,
                 evaluation_id=None, asked_at=None):
        """Validate and run one evaluation now; returns the ranking.

        ``caller_left``: seconds until the caller stops waiting; the
        evaluation ends before then (nobody would read its answer).
        ``hosts_checked``: ``hosts`` come from
        :func:`~shadow_service.schema.hosts_from_columns`, which checked
        them.  ``history_only``: answered from the history prior, without
        shadows; ``record`` False: the answer is not recorded.
        ``evaluation_id``: the evaluation's id (a new one when None).
        ``asked_at``: when Nova asked the request (wall clock), for a
        record the service gets to later: the record is stamped then.
        """
        if caller_left is not None and caller_left <= CALLER_MARGIN_S:
            raise exception.InvalidRequest(
                reason='the caller stopped waiting %.1fs before the request '
                       'was read' % max(0.0, -caller_left))
        # Asked of history only, it boots nothing: it takes no slot of
        # max_concurrent_evaluations (the weigher's records of requests
        # it answered from its cache must not make real ones busy).
        slot = not history_only
        evaluation = self._admit(request, hosts, budget_s,
                                 hosts_checked=hosts_checked, slot=slot,
                                 evaluation_id=evaluation_id)
        evaluation.history_only = history_only
        evaluation.record = record
        evaluation.asked_at = asked_at
        if caller_left is not None:
            left = caller_left - CALLER_MARGIN_S
            if left < evaluation.budget_s:
                LOG.info('Evaluation %s: budget %.1fs cut to %.1fs, when '
                         'the caller stops waiting',
                         evaluation.evaluation_id, evaluation.budget_s, left)
                evaluation.budget_s = left
        try:
            return self._run(evaluation)
        finally:
            self._release(slot)

    # helpers -------------------------------------------------------------

    def _admit(self, request, hosts, budget_s, hosts_checked=False,
               slot=True, evaluation_id=None):
        try:
            schema.validate_request(request)
            if not hosts_checked:
                schema.validate_hosts(hosts)
            schema.validate_budget(budget_s)
            # The profile once, here: a bad one is a typed rejection
            # before anything is booted or recorded.
            profile = self.evaluator.resolve_profile(request)
        except exception.InvalidRequest:
            exporter.evaluation_refused('rejected')
            raise
        if slot:
            with self._lock:
                if self._closed:
                    exporter.evaluation_refused('stopping')
                    raise exception.ServiceStopping()
                if self._running >= self.max_concurrent:
                    exporter.evaluation_refused('busy')
                    raise exception.ServiceBusy(running=self._running)
                self._running += 1
        evaluation = self.evaluator.new(request, hosts, budget_s,
                                        evaluation_id=evaluation_id,
                                        profile=profile)
        try:
            self._remember(evaluation)
        except exception.InvalidRequest:
            if slot:
                with self._lock:
                    self._running -= 1
            exporter.evaluation_refused('rejected')
            raise
        exporter.evaluation_admitted()
        return evaluation

    def _remember(self, evaluation):
        """Keep ``evaluation`` in memory; forget the finished ones past
        ``evaluation_ttl`` (at most every ``EXPIRE_EVERY_S``) and the
        oldest finished ones beyond ``EVALUATIONS_KEPT`` or
        ``EVALUATION_HOSTS_KEPT``.  InvalidRequest when ``evaluation``
        has the id of one still running (a finished one it replaces)."""
        with self._lock:
            held = self._evaluations.get(evaluation.evaluation_id)
            if held is not None and not held.finished_at:
                # A caller named the id of one still under way (the
                # weigher's record of a renewal it gave up on): replacing
                # it would hide it from cancel_evaluation and from the
                # service's stop, and its shadows would run on.  It
                # records the request itself.
                raise exception.InvalidRequest(
                    reason='%s: evaluation %s is still running' % (
                        rpcapi.CTXT_EVALUATION_ID,
                        evaluation.evaluation_id))
            self._forget(evaluation.evaluation_id)
            self._evaluations[evaluation.evaluation_id] = evaluation
            if self._cancelling:
                evaluation.cancelled = True
            self._held_hosts += len(evaluation.hosts)
            due = (len(self._evaluations) > EVALUATIONS_KEPT
                   or self._held_hosts > EVALUATION_HOSTS_KEPT
                   or time.monotonic() >= self._next_expiry)
        if due:
            self._expire()

    def _forget(self, evaluation_id):
        """Drop ``evaluation_id`` from memory (the caller holds the
        lock); returns the evaluation or None."""
        evaluation = self._evaluations.pop(evaluation_id, None)
        if evaluation is not None:
            self._held_hosts -= len(evaluation.hosts)
        return evaluation

    def _release(self, slot=True):
        if slot:
            with self._lock:
                self._running -= 1
        exporter.evaluation_released()

    def _run(self, evaluation):
        started = time.monotonic()
        try:
            return self.evaluator.run(evaluation)
        except exception.ShadowException as e:
            evaluation.status = 'error'
            evaluation.error = str(e)
            raise
        except Exception as e:
            LOG.exception('Evaluation %s failed', evaluation.evaluation_id)
            evaluation.status = 'error'
            evaluation.error = '%s: %s' % (type(e).__name__, e)
            raise
        finally:
            evaluation.finished_at = evaluation.finished_at or time.time()
            exporter.evaluation_ended(evaluation, time.monotonic() - started)
            if getattr(evaluation, 'deleted', False):
                self._tombstone(evaluation.evaluation_id)

    def _settle_records(self):
        """Wait until the records of answers given so far are written
        (answers from history are recorded after the answer)."""
        writer = getattr(self.evaluator, 'score_writer', None)
        if writer is not None and not writer.flush(RECORDS_WAIT_S):
            LOG.warning('Evaluation records still unwritten after %.0fs; '
                        'reading the history without them',
                        RECORDS_WAIT_S)

    def _recorded(self, evaluation_id):
        """The newest record of ``evaluation_id`` in the history store,
        or None; HistoryUnavailable when the store cannot be read."""
        self._settle_records()
        return self._from_history(self.evaluator.history.get_evaluation,
                                  evaluation_id)

    @staticmethod
    def _from_history(read, *args, **kwargs):
        """``read(*args, **kwargs)``, a use of the history store, whose
        failure the caller gets as HistoryUnavailable (one line) rather
        than as an answer the store did not give ("not found", an empty
        listing) or an untyped error."""
        try:
            return read(*args, **kwargs)
        except history_base.HistoryError as e:
            reason = str(e)
        except Exception as e:
            # Not the store's own error: a bug, or a driver's error the
            # store let through.
            LOG.exception('Using the history store failed')
            reason = '%s: %s' % (type(e).__name__, e)
        raise exception.HistoryUnavailable(
            reason=logsafe.clip(reason, 300)) from None

    def _tombstone(self, evaluation_id):
        # After the record it replaces, never before.
        self._settle_records()
        try:
            audit.tombstone(self.evaluator.history, evaluation_id,
                            self.evaluator.driver.now())
        except Exception:
            LOG.exception('Could not record the deletion of evaluation %s',
                          evaluation_id)

    def _watch_polls(self):
        """Start the thread that cancels unpolled evaluations, once."""
        with self._lock:
            if self._reaper is not None or self._stopping.is_set():
                return
            self._reaper = threading.Thread(
                target=self._cancel_unpolled, daemon=True,
                name='shadow-unpolled-evaluations')
        self._reaper.start()

    def _cancel_unpolled(self):
        """Cancel, every few seconds, the started evaluations not polled
        for ``unpolled_timeout`` seconds (the path of
        ``cancel_evaluation``: the evaluation stops and deletes its
        shadows, and its slot is free once it has)."""
        interval = min(UNPOLLED_CHECK_S, self.unpolled_timeout / 4.0)
        while not self._stopping.wait(interval):
            cutoff = time.monotonic() - self.unpolled_timeout
            with self._lock:
                unpolled = [key for key, at in self._polled.items()
                            if at < cutoff]
                for key in unpolled:
                    del self._polled[key]
            for key in unpolled:
                evaluation = self._evaluations.get(key)
                if evaluation is None or evaluation.cancelled:
                    continue
                LOG.warning('Cancelling evaluation %s: not polled for '
                            '%.0f s ([shadow] unpolled_evaluation_timeout); '
                            'its caller is gone', key, self.unpolled_timeout)
                evaluation.cancelled = True

    def _profile_row(self, name, source, dirs):
        try:
            description = profiles_mod.named_profile(name, dirs).description
        except Exception as e:
            description = 'cannot be loaded: %s' % e
        return {'name': name, 'source': source, 'description': description}

    def _expire(self):
        """Forget the finished evaluations past ``evaluation_ttl``, then
        the oldest finished ones while more than ``EVALUATIONS_KEPT``
        evaluations or ``EVALUATION_HOSTS_KEPT`` hosts are held (running
        ones stay whatever their number)."""
        cutoff = time.time() - self.evaluation_ttl
        with self._lock:
            self._next_expiry = time.monotonic() + EXPIRE_EVERY_S
            finished = [key for key, evaluation in self._evaluations.items()
                        if evaluation.finished_at]
            for key in finished:
                if self._evaluations[key].finished_at < cutoff:
                    self._forget(key)
            for key in finished:
                if (len(self._evaluations) <= EVALUATIONS_KEPT
                        and self._held_hosts <= EVALUATION_HOSTS_KEPT):
                    break
                self._forget(key)

    def cancel_evaluations(self):
        """Cancel every evaluation under way and each one admitted from
        now on: they answer at once with what their shadows measured and
        delete them (the service is stopping)."""
        with self._lock:
            self._cancelling = True
            evaluations = list(self._evaluations.values())
        for evaluation in evaluations:
            evaluation.cancelled = True

    def shutdown(self):
        """Cancel the evaluations under way, record what waits, stop the
        workers.  From now on an evaluation that would take a slot
        (``start_evaluation``, ``rank_hosts``, ``rank_host_columns``
        other than history-only) is refused with ``ServiceStopping``."""
        with self._lock:
            self._closed = True
        self._records_until = time.monotonic() + RECORDS_DRAIN_S
        self._stopping.set()
        for evaluation in list(self._evaluations.values()):
            evaluation.cancelled = True
        self._stop_records()
        self._pool.shutdown(wait=True)
        close = getattr(self.evaluator, 'close', None)
        if close is not None:
            close()

    def _stop_records(self):
        """Record the records still waiting, for at most
        ``RECORDS_DRAIN_S``; drop, count and log (once) those left, and
        any that arrives from now on."""
        thread = self._records_thread
        if thread is not None:
            # The record being answered at the deadline may take its
            # own budget's worth.
            thread.join(max(0.0, self._records_until - time.monotonic())
                        + RECORDS_WAIT_S)
            if thread.is_alive():
                LOG.warning('The records thread is still answering a '
                            'record %.0fs after the service began to stop',
                            RECORDS_DRAIN_S + RECORDS_WAIT_S)
        left = 0
        with self._lock:
            self._records_closed = True
            while True:
                try:
                    self._records.get(timeout=0)
                except boundedqueue.Empty:
                    break
                left += 1
            self.records_dropped += left
            dropped = self.records_dropped
        if left:
            exporter.record_dropped(left)
            LOG.warning('Stopping: dropped %d records of requests the '
                        'weigher answered from its cache, still waiting '
                        'after %gs (%d dropped in all)', left,
                        RECORDS_DRAIN_S, dropped)


def _window(since_s, limit):
    """``(since_s, limit)`` of a listing, checked; InvalidRequest names
    the field."""
    if isinstance(since_s, bool) or not isinstance(since_s, (int, float)) \
            or not 0 < since_s <= MAX_SINCE_S:
        raise exception.InvalidRequest(
            reason='since_s: must be seconds in (0, %d]' % MAX_SINCE_S)
    if limit is None:
        limit = MAX_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int) \
            or not 1 <= limit <= MAX_LIMIT:
        raise exception.InvalidRequest(
            reason='limit: must be an integer in [1, %d]' % MAX_LIMIT)
    return float(since_s), limit
