"""The RPC endpoint of ``shadow-service``: parse, validate, delegate.

``ShadowManager`` holds no evaluation logic: it validates what arrives,
enforces the concurrency limit, and hands the work to an
:class:`~shadow_service.evaluation.Evaluator`.  Finished evaluations are kept
in memory for ``[shadow] evaluation_ttl`` seconds (and in the history store
for longer) so that a ``shadow_evaluation`` hint can find them.

Every rejected call (bad input, unknown evaluation, busy service) is
logged as one INFO line with the typed error's message, never a
traceback; the caller gets the typed error.
"""

import concurrent.futures
import functools
import logging
import math
import threading
import time

import oslo_messaging as messaging

from shadow_service import exception
from shadow_service import logsafe
from shadow_service import rpcapi
from shadow_service import schema

LOG = logging.getLogger(__name__)

#: Status of an evaluation whose process was stopped before it finished.
INTERRUPTED = 'interrupted'
#: Seconds before the caller's deadline an evaluation stops, to answer.
CALLER_MARGIN_S = 0.5
#: A caller clock further ahead than this is not trusted.
MAX_CLOCK_SKEW_S = 60.0


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

    def __init__(self, evaluator, *, max_concurrent=4, evaluation_ttl=3600):
        self.evaluator = evaluator
        self.max_concurrent = max_concurrent
        self.evaluation_ttl = evaluation_ttl
        self._evaluations = {}
        self._running = 0
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_concurrent, thread_name_prefix='evaluation')

    # RPC methods ---------------------------------------------------------

    @messaging.expected_exceptions(exception.InvalidRequest,
                                   exception.ServiceBusy)
    @_logs_rejections
    def rank_hosts(self, ctxt, request, hosts, budget_s):
        return self.evaluate(request, hosts, budget_s,
                             caller_left=caller_left(ctxt))

    @messaging.expected_exceptions(exception.InvalidRequest,
                                   exception.ServiceBusy)
    @_logs_rejections
    def start_evaluation(self, ctxt, request, hosts, budget_s):
        evaluation = self._admit(request, hosts, budget_s)

        def work():
            try:
                self._run(evaluation)
            except Exception:
                LOG.exception('Evaluation %s failed',
                              evaluation.evaluation_id)
            finally:
                self._release()

        self._pool.submit(work)
        return evaluation.evaluation_id

    @messaging.expected_exceptions(exception.InvalidRequest,
                                   exception.EvaluationNotFound)
    @_logs_rejections
    def get_evaluation(self, ctxt, evaluation_id):
        schema.validate_evaluation_id(evaluation_id)
        self._expire()
        evaluation = self._evaluations.get(evaluation_id)
        if evaluation is not None:
            return evaluation.to_dict()
        record = self._recorded(evaluation_id)
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
                'progress': 1.0, 'ranking': record, 'error': None}

    @messaging.expected_exceptions(exception.InvalidRequest)
    @_logs_rejections
    def cancel_evaluation(self, ctxt, evaluation_id):
        schema.validate_evaluation_id(evaluation_id)
        evaluation = self._evaluations.get(evaluation_id)
        if evaluation is not None:
            LOG.info('Cancelling evaluation %s', evaluation_id)
            evaluation.cancelled = True

    # the same, called in-process (no RPC exception wrapping) -------------

    def evaluate(self, request, hosts, budget_s, caller_left=None):
        """Validate and run one evaluation now; returns the ranking.

        ``caller_left``: seconds until the caller stops waiting; the
        evaluation ends before then (nobody would read its answer).
        """
        if caller_left is not None and caller_left <= CALLER_MARGIN_S:
            raise exception.InvalidRequest(
                reason='the caller stopped waiting %.1fs before the request '
                       'was read' % max(0.0, -caller_left))
        evaluation = self._admit(request, hosts, budget_s)
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
            self._release()

    # helpers -------------------------------------------------------------

    def _admit(self, request, hosts, budget_s):
        schema.validate_request(request)
        schema.validate_hosts(hosts)
        schema.validate_budget(budget_s)
        # The profile once, here: a bad one is a typed rejection before
        # anything is booted or recorded.
        profile = self.evaluator.resolve_profile(request)
        with self._lock:
            if self._running >= self.max_concurrent:
                raise exception.ServiceBusy(running=self._running)
            self._running += 1
        evaluation = self.evaluator.new(request, hosts, budget_s,
                                        profile=profile)
        self._evaluations[evaluation.evaluation_id] = evaluation
        return evaluation

    def _release(self):
        with self._lock:
            self._running -= 1

    def _run(self, evaluation):
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

    def _recorded(self, evaluation_id):
        try:
            return self.evaluator.history.get_evaluation(evaluation_id)
        except Exception:
            LOG.exception('History look-up of %s failed', evaluation_id)
            return None

    def _expire(self):
        cutoff = time.time() - self.evaluation_ttl
        for key, evaluation in list(self._evaluations.items()):
            if evaluation.finished_at and evaluation.finished_at < cutoff:
                self._evaluations.pop(key, None)

    def shutdown(self):
        for evaluation in self._evaluations.values():
            evaluation.cancelled = True
        self._pool.shutdown(wait=True)
