"""Client side of the shadow service RPC API.

nova-scheduler imports this module (through the weigher): it must import
nothing heavier than oslo.messaging.

API version history:

* 1.0 - Initial version: ``rank_hosts``, ``start_evaluation``,
        ``get_evaluation``, ``cancel_evaluation``.
* 1.1 - ``rank_hosts`` takes ``detail``: ``False`` answers with only each
        host's name, score and confidence (what the weigher reads; a
        tenth of the bytes at 1,000 hosts).
* 1.2 - The operator's read-back: ``list_evaluations``,
        ``delete_evaluation``, ``list_profiles``, ``get_profile``,
        ``list_decisions``.
* 1.3 - ``rank_host_columns``: ``rank_hosts`` with the hosts as columns
        (``{"host": [...], "vcpus": [...], ...}``) and each host's score
        and confidence answered in the request's order, without names
        (what the weigher sends: 29 % of the request's bytes and 23 % of
        the compact reply's at 1,000 hosts).
* 1.4 - ``rank_host_columns`` takes ``history_only`` (answer from the
        history prior alone, never boot a shadow) and ``record`` (whether
        the answer is recorded as an evaluation): the weigher's cache of
        answers from history refreshes a few hosts with the first and
        has the service record a request it answered itself with both.

The operator's read-back (``get_evaluation`` of an evaluation the service
no longer holds in memory, ``delete_evaluation``, ``list_evaluations``,
``list_decisions``) raises ``HistoryUnavailable`` while the history store
cannot be read, where a service before it answered ``EvaluationNotFound``
or an untyped error (this needs no new version: a caller whose
``shadow_service.exception`` lacks it gets a ``RemoteError``).

A caller that waits at most ``timeout`` seconds for ``rank_hosts`` says so
in the request context (``shadow_sent_at``, its wall clock when sending,
and ``shadow_wait_s``): the service then ends the evaluation by the time
the caller stops waiting instead of running it for nobody (this needs no
new version: older services ignore the context).

A caller may name the evaluation a ``rank_host_columns`` call makes
(``shadow_evaluation_id`` in the request context, a UUID): the weigher
gives a renewal of a cached answer and the record it casts when that
renewal fails the same one, so a renewal answered after the weigher
stopped waiting and its record are one evaluation in the history (whose
readers keep the newest record of each evaluation), not two.  An older
service ignores it and makes its own.

A record (:meth:`ShadowAPI.record_host_columns`) says when Nova asked the
request it records (``shadow_asked_at`` in the request context, the
sender's wall clock): the service stamps the record then, not when it got
to it (this needs no new version: older services ignore the context).

A caller may say which project it asks ``get_evaluation`` for
(``shadow_project_id`` in the request context): the weigher names the
project of the boot whose ``shadow_evaluation`` hint it looks up, and the
service answers ``EvaluationNotFound`` for an evaluation whose request
names another project (one whose request names none, an operator's
pre-flight, any project may use).  A caller that names none (the
operator's read-back) reads any evaluation.  This needs no new version:
an older service ignores the context and answers as before.

Every argument and result is JSON-serialisable; see
``doc/source/contributor/contracts.rst`` for the ``request``, ``hosts`` and
ranking formats.
"""

import time

import oslo_messaging as messaging

from shadow_service import rpc

RPC_API_VERSION = '1.4'

# Our own exchange: nova-scheduler changes the default control exchange to
# "nova" (nova.rpc calls set_transport_defaults) while a plain service keeps
# "openstack"; naming it on both sides keeps the weigher and the service on
# the same exchange whatever process they run in.
EXCHANGE = 'nova_shadow'


#: The request-context key naming the evaluation a call makes.
CTXT_EVALUATION_ID = 'shadow_evaluation_id'
#: The request-context key marking a record (a cast nobody waits for),
#: which the service queues behind the calls it answers.
CTXT_RECORD = 'shadow_record'
#: The request-context key of a record reporting how many records its
#: sender (one weigher) dropped so far: ``{'sender': id, 'count': n}``.
CTXT_DROPPED = 'shadow_records_dropped'
#: Longest sender id a dropped-records report may carry.
SENDER_ID_MAX = 64
#: The request-context key of a record saying when Nova asked the
#: request it records (the sender's wall clock, Unix seconds).
CTXT_ASKED_AT = 'shadow_asked_at'
#: The request-context key of the project a ``get_evaluation`` call is
#: made for (the booting request's, for a ``shadow_evaluation`` hint).
CTXT_PROJECT_ID = 'shadow_project_id'

#: Longest look-back (``since_s``) of ``list_evaluations`` and
#: ``list_decisions``, in seconds.
MAX_SINCE_S = 366 * 86400.0
#: Most rows (``limit``) either listing returns.
MAX_LIMIT = 10000


def is_record(ctxt):
    """Whether ``ctxt`` marks a record (:meth:`ShadowAPI.
    record_host_columns`)."""
    return isinstance(ctxt, dict) and ctxt.get(CTXT_RECORD) is True


def dropped_report(ctxt):
    """``(sender, count)`` of the dropped-records report in ``ctxt``
    (:meth:`ShadowAPI.record_host_columns`' ``dropped``); None when it
    holds none, ``False`` when it holds one that is malformed (a sender
    that is not a string of 1 to ``SENDER_ID_MAX`` characters, a count
    that is not an integer of at least 0)."""
    if not isinstance(ctxt, dict) or CTXT_DROPPED not in ctxt:
        return None
    report = ctxt[CTXT_DROPPED]
    if not isinstance(report, dict):
        return False
    sender, count = report.get('sender'), report.get('count')
    if (isinstance(sender, str) and 0 < len(sender) <= SENDER_ID_MAX
            and isinstance(count, int) and not isinstance(count, bool)
            and count >= 0):
        return sender, count
    return False


def with_deadline(ctxt, timeout):
    """``ctxt`` (a dict) plus when the caller stops waiting."""
    ctxt = dict(ctxt or {})
    if timeout is not None:
        ctxt['shadow_sent_at'] = time.time()
        ctxt['shadow_wait_s'] = float(timeout)
    return ctxt


def with_evaluation_id(ctxt, evaluation_id):
    """``ctxt`` (a dict) naming the evaluation the call makes, when
    ``evaluation_id`` is given."""
    if evaluation_id is None:
        return ctxt
    return dict(ctxt or {}, **{CTXT_EVALUATION_ID: str(evaluation_id)})


def with_project(ctxt, project_id):
    """``ctxt`` (a dict) naming the project the call is made for, when
    ``project_id`` is given."""
    if not project_id:
        return ctxt
    return dict(ctxt or {}, **{CTXT_PROJECT_ID: str(project_id)})


class ShadowAPI:
    """Talks to ``shadow-service`` on ``topic``.

    :param conf: a ``ConfigOpts`` holding the messaging options.
    :param topic: the RPC topic of the service.
    :param transport_url: a broker URL; ``None`` uses ``conf.transport_url``.
    """

    def __init__(self, conf, topic='shadow', transport_url=None,
                 version_cap=None):
        self.topic = topic
        target = messaging.Target(exchange=EXCHANGE, topic=topic,
                                  version=RPC_API_VERSION)
        transport = rpc.get_transport(conf, transport_url)
        self.client = messaging.get_rpc_client(
            transport, target, version_cap=version_cap)

    def rank_hosts(self, ctxt, request, hosts, budget_s, timeout=None,
                   detail=True):
        """Rank ``hosts`` for ``request``; may run shadows for up to
        ``budget_s`` seconds.  Returns a ranking dict; with ``detail``
        False (1.1) its host entries hold only ``host``, ``score`` and
        ``confidence``."""
        if detail:
            cctxt = self.client.prepare(version='1.0', timeout=timeout)
            return cctxt.call(with_deadline(ctxt, timeout), 'rank_hosts',
                              request=request, hosts=hosts,
                              budget_s=budget_s)
        cctxt = self.client.prepare(version='1.1', timeout=timeout)
        return cctxt.call(with_deadline(ctxt, timeout), 'rank_hosts',
                          request=request, hosts=hosts, budget_s=budget_s,
                          detail=False)

    def rank_host_columns(self, ctxt, request, hosts, budget_s,
                          timeout=None, history_only=None, record=None,
                          evaluation_id=None):
        """``rank_hosts`` with ``hosts`` as columns (1.3); returns the
        overall fields and ``scores`` / ``confidences`` in the order of
        ``hosts['host']``.  ``history_only`` (1.4): answered from the
        history prior alone, without shadows; ``record`` False (1.4):
        the answer is not recorded as an evaluation.  Either one given
        (even at its default, False and True) asks at 1.4.
        ``evaluation_id``: the id of the evaluation it makes (in the
        request context; see the module's docstring)."""
        ctxt = with_evaluation_id(ctxt, evaluation_id)
        if history_only is None and record is None:
            cctxt = self.client.prepare(version='1.3', timeout=timeout)
            return cctxt.call(with_deadline(ctxt, timeout),
                              'rank_host_columns', request=request,
                              hosts=hosts, budget_s=budget_s)
        cctxt = self.client.prepare(version='1.4', timeout=timeout)
        return cctxt.call(with_deadline(ctxt, timeout), 'rank_host_columns',
                          request=request, hosts=hosts, budget_s=budget_s,
                          history_only=bool(history_only),
                          record=record is None or bool(record))

    def record_host_columns(self, ctxt, request, hosts, budget_s,
                            evaluation_id=None, dropped=None,
                            asked_at=None):
        """Have the service answer ``request`` from history and record
        the answer, without waiting for it (a cast of
        ``rank_host_columns`` with ``history_only``, 1.4): the record of
        a request the weigher answered from its cache.
        ``evaluation_id``: the id of the evaluation it records.
        ``dropped``: ``(sender, count)``, the records the sender (one
        weigher, named by an id of its own) dropped so far, which the
        service exports (in the request context: a service that does not
        know it ignores it).  ``asked_at``: when Nova asked the request
        (wall clock), which the record is stamped with instead of the
        time the service gets to it (in the request context too)."""
        # Not retried: a record that cannot be sent at once is dropped
        # rather than holding the sender while the broker is away.
        cctxt = self.client.prepare(version='1.4', retry=0)
        ctxt = dict(with_evaluation_id(ctxt, evaluation_id) or {},
                    **{CTXT_RECORD: True})
        if asked_at is not None:
            ctxt[CTXT_ASKED_AT] = float(asked_at)
        if dropped is not None:
            sender, count = dropped
            ctxt[CTXT_DROPPED] = {'sender': sender, 'count': int(count)}
        cctxt.cast(ctxt, 'rank_host_columns', request=request, hosts=hosts,
                   budget_s=budget_s, history_only=True, record=True)

    def start_evaluation(self, ctxt, request, hosts, budget_s,
                         timeout=None, detached=False):
        """Start an evaluation in the background; returns its id.  The
        caller is to poll it (``get_evaluation``): one not polled for
        ``[shadow] unpolled_evaluation_timeout`` is cancelled.  With
        ``detached``, for a caller that will not poll it (a pre-flight
        evaluation for a later ``shadow_evaluation`` hint), it runs to
        its end whatever.  (In the request context: any 1.x service
        takes it; one that does not know it ignores it.)"""
        if detached:
            ctxt = dict(ctxt or {}, shadow_detached=True)
        cctxt = self.client.prepare(version='1.0', timeout=timeout)
        return cctxt.call(ctxt, 'start_evaluation', request=request,
                          hosts=hosts, budget_s=budget_s)

    def get_evaluation(self, ctxt, evaluation_id, timeout=None,
                       project_id=None):
        """Status, progress and (when finished) ranking of an evaluation.
        ``project_id``: the project asking (in the request context; see
        the module's docstring): an evaluation of another project's
        request is then not found."""
        cctxt = self.client.prepare(version='1.0', timeout=timeout)
        return cctxt.call(with_project(ctxt, project_id), 'get_evaluation',
                          evaluation_id=evaluation_id)

    def cancel_evaluation(self, ctxt, evaluation_id):
        """Ask the service to stop an evaluation and delete its shadows."""
        cctxt = self.client.prepare(version='1.0')
        cctxt.cast(ctxt, 'cancel_evaluation', evaluation_id=evaluation_id)

    # 1.2 ------------------------------------------------------------------

    def _call_1_2(self, ctxt, method, timeout, **kwargs):
        cctxt = self.client.prepare(version='1.2', timeout=timeout)
        return cctxt.call(ctxt, method, **kwargs)

    def list_evaluations(self, ctxt, since_s=86400.0, limit=None,
                         status=None, timeout=None):
        """Summaries of the evaluations of the last ``since_s`` seconds
        (running ones and recorded ones), newest first."""
        return self._call_1_2(ctxt, 'list_evaluations', timeout,
                              since_s=since_s, limit=limit, status=status)

    def delete_evaluation(self, ctxt, evaluation_id, timeout=None):
        """Cancel ``evaluation_id`` if it runs and forget it: it is then
        "not found" to ``get_evaluation`` and to a ``shadow_evaluation``
        hint."""
        return self._call_1_2(ctxt, 'delete_evaluation', timeout,
                              evaluation_id=evaluation_id)

    def list_profiles(self, ctxt, timeout=None):
        """The workload profiles a request may name on this service."""
        return self._call_1_2(ctxt, 'list_profiles', timeout)

    def get_profile(self, ctxt, name, timeout=None):
        """One workload profile in loadgen's format."""
        return self._call_1_2(ctxt, 'get_profile', timeout, name=name)

    def list_decisions(self, ctxt, since_s=86400.0, instance=None,
                       action=None, outcome=None, limit=None,
                       timeout=None):
        """The watcher's decision records of the last ``since_s`` seconds,
        newest first."""
        return self._call_1_2(ctxt, 'list_decisions', timeout,
                              since_s=since_s, instance=instance,
                              action=action, outcome=outcome, limit=limit)
