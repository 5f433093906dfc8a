"""What Nova actually did: a listener on Nova's versioned notifications.

``shadow-service`` listens (``[nova_notifications] listen``) on the topic
Nova sends its versioned notifications to and records, for every instance,
where it was created, moved and deleted: one ``instance_event`` point per
event (tags ``instance``, ``host``, ``event``; field ``record``, a JSON
summary of the payload), stamped with the time Nova sent it on the
service's clock (:func:`event_time`).  The host of every event of
:data:`LANDED` is the host the instance runs on afterwards.  Nothing is
recorded for events it does not need.

That record is what joins a ranking with Nova's choice:
:func:`placement_of` answers "where did this instance land?", the scale-up
learner pairs a shadow with its VM by it instead of guessing from the VM's
metrics, and :func:`audit` puts an evaluation's ranking next to the host
Nova chose (an operator trialling ``[shadow_weigher] mode = observe``
compares the two).

Nova sends versioned notifications only with ``[notifications]
notification_format = versioned`` (or ``both``) in nova.conf; the topic is
its ``versioned_notifications_topics`` (``versioned_notifications`` by
default) on its control exchange (``nova``).
"""

import datetime
import json
import logging
import threading
import time

import oslo_messaging as messaging

from shadow_service import exporter
from shadow_service import measurements as names
from shadow_service.history import base as history_base

LOG = logging.getLogger(__name__)

#: Nova event types recorded, and the name they are recorded under.
#: ``instance.evacuate`` is sent by Nova's API before the instance is
#: scheduled anywhere and names the host it leaves; the evacuation lands
#: with the ``instance.rebuild.end`` that the new host sends.  A live
#: migration is recorded from the destination's
#: ``live_migration_post_dest.end``: the source's
#: ``live_migration_post.end`` names the source.
EVENTS = {
    'instance.create.end': 'created',
    'instance.resize_finish.end': 'resized',
    'instance.live_migration_post_dest.end': 'live-migrated',
    'instance.evacuate': 'evacuating',
    'instance.unshelve.end': 'unshelved',
    'instance.rebuild.end': 'rebuilt',
    'instance.delete.end': 'deleted',
}
#: Events after which the instance runs on the host that sent them.
LANDED = ('created', 'resized', 'live-migrated', 'unshelved', 'rebuilt')
#: The events a move evaluated for each request ``purpose`` lands with
#: (a cold migration finishes like a resize).
MOVE_LANDINGS = {
    'resize': ('resized',),
    'migrate': ('resized',),
    'live-migrate': ('live-migrated',),
    'unshelve': ('unshelved',),
    'evacuate': ('rebuilt',),
    'rebuild': ('rebuilt',),
}
#: The service that sends the events of :data:`LANDED`.
COMPUTE_SERVICE = 'nova-compute'
#: Longest string kept from a payload field.
MAX_FIELD = 255


def _data(payload):
    """The ``nova_object.data`` of a versioned payload (or the payload)."""
    if isinstance(payload, dict) and 'nova_object.data' in payload:
        return payload.get('nova_object.data') or {}
    return payload if isinstance(payload, dict) else {}


def _text(value):
    return None if value is None else str(value)[:MAX_FIELD]


def _sender_host(publisher_id):
    """The host of a ``nova-compute:<host>`` publisher id, else None."""
    if not isinstance(publisher_id, str):
        return None
    service, _, host = publisher_id.partition(':')
    return host[:MAX_FIELD] if service == COMPUTE_SERVICE and host else None


def sent_at(metadata):
    """When Nova sent a notification (Unix seconds, wall clock), from the
    ``timestamp`` oslo.messaging passes in ``metadata``: Nova's
    ``str(utcnow())``, ``YYYY-MM-DD HH:MM:SS[.ffffff]`` in UTC without a
    zone (one with a zone is read in that zone).  None when it is missing
    or cannot be read."""
    stamp = metadata.get('timestamp') if isinstance(metadata, dict) else None
    if isinstance(stamp, str):
        try:
            stamp = datetime.datetime.fromisoformat(stamp.strip())
        except ValueError:
            return None
    if not isinstance(stamp, datetime.datetime):
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.UTC)
    return stamp.timestamp()


#: Resolution (decimal places of a second) of the lag of the service's
#: clock behind the wall clock that :func:`event_time` carries Nova's
#: time over with.
LAG_DECIMALS = 3


def event_time(metadata, now, wall_now):
    """The time to record a notification at, on the service's clock:
    the time Nova sent it less the lag of that clock behind the wall
    clock, measured from ``now`` (that clock's reading as it arrived) and
    ``wall_now`` to the millisecond (:data:`LAG_DECIMALS`).  An event
    delivered late (a backlog after an outage, a requeued one) so keeps
    its place among the evaluations the same clock stamped, and one
    delivered again (requeued after its write, or redelivered to another
    service of the pool) gets the same time, so it replaces the point it
    wrote before instead of adding a second one: the two readings are
    never taken at quite the same instant.  ``now`` when Nova's time is
    missing, unreadable or ahead of the wall clock here."""
    sent = sent_at(metadata)
    if sent is None or sent > wall_now:
        return now
    return sent - round(wall_now - now, LAG_DECIMALS)


#: Readings of the wall clock around the service's clock further apart
#: than this are taken again (another thread ran between them).
TIGHT_READING_S = 1e-4
#: At most this many tries; the closest pair is used.
READING_TRIES = 5


def clock_readings(clock):
    """``(now, wall_now)`` for :func:`event_time`: ``clock`` read between
    two readings of the wall clock, ``wall_now`` their midpoint.  Another
    thread can take the interpreter between two readings (for up to
    ``sys.getswitchinterval()``, 5 ms), which would move the lag by as
    much and a notification delivered again to another millisecond: the
    pair is read again, up to :data:`READING_TRIES` times, until the wall
    clock moved less than :data:`TIGHT_READING_S` around it, and the
    closest pair is kept."""
    best = None
    for _ in range(READING_TRIES):
        before = time.time()
        now = clock()
        after = time.time()
        if best is None or after - before < best[0]:
            best = (after - before, now, (before + after) / 2)
        if after - before <= TIGHT_READING_S:
            break
    return best[1], best[2]


def event_point(event_type, payload, when, publisher_id=None):
    """The ``instance_event`` point for one notification, or None when the
    event is not recorded or the payload names no instance.

    The host of an event of :data:`LANDED` is the compute host that sent
    it (``publisher_id`` ``nova-compute:<host>``), where the instance runs
    now: the ``instance.rebuild.end`` of an evacuation is sent by the new
    host while its payload still names the old one.  Other events, and a
    notification without such a publisher, keep the payload's host.
    """
    event = EVENTS.get(event_type)
    if event is None:
        return None
    data = _data(payload)
    instance = _text(data.get('uuid'))
    if not instance:
        return None
    flavor = _data(data.get('flavor'))
    host, node = _text(data.get('host')), _text(data.get('node'))
    sender = _sender_host(publisher_id) if event in LANDED else None
    if sender and sender != host:
        host, node = sender, None   # the payload's node is the old one
    record = {
        'event': event, 'event_type': event_type, 'instance': instance,
        'host': host, 'node': node,
        'state': _text(data.get('state')),
        'project_id': _text(data.get('tenant_id')),
        'flavor': {k: flavor.get(k) for k in ('name', 'vcpus', 'memory_mb',
                                              'root_gb')
                   if isinstance(flavor.get(k), (str, int))},
        'image_id': _text(data.get('image_uuid')),
    }
    tags = {names.TAG_INSTANCE: instance, names.TAG_EVENT: event}
    if record['host']:
        tags[names.TAG_HOST] = record['host']
    return history_base.Point(
        names.INSTANCE_EVENT, tags,
        {names.FIELD_RECORD: json.dumps(record, sort_keys=True)}, when)


class NovaEndpoint:
    """Notification endpoint: records what :data:`EVENTS` names.

    A notification the history store cannot record (the store is down or
    locked) is requeued: the broker keeps it and delivers it again.
    Before handing it back the endpoint waits ``retry_backoff_s``,
    doubling with each further failure up to ``retry_backoff_max_s``, so
    a store that stays down is tried once per wait per listener thread
    instead of in a tight loop.  The first failure logs one warning, the
    first notification recorded afterwards one more, with the number
    requeued meanwhile.  A notification that cannot be read is a bug in
    its payload, not a fault of the store: it is logged and dropped; so
    is one whose event the store would never keep
    (:class:`~shadow_service.history.base.PointsRejected`: older than
    its retention).
    """

    filter_rule = messaging.NotificationFilter(
        event_type='^instance\\.(%s)$' % '|'.join(
            e.split('.', 1)[1].replace('.', '\\.') for e in EVENTS))

    def __init__(self, history, clock, retry_backoff_s=1.0,
                 retry_backoff_max_s=30.0, nova_time=True):
        self.history = history
        self.clock = clock
        self.nova_time = nova_time
        self.retry_backoff_s = retry_backoff_s
        self.retry_backoff_max_s = retry_backoff_max_s
        self.recorded = 0
        self.requeued = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._failures = 0          # store failures since the last record
        self._requeued_in_outage = 0
        self._stopping = threading.Event()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        try:
            when = (event_time(metadata, *clock_readings(self.clock))
                    if self.nova_time else self.clock())
            point = event_point(event_type, payload, when, publisher_id)
            if point is not None:
                history_base.prepare_point(point)
        except Exception:
            self.dropped += 1
            exporter.notification_handled('dropped')
            LOG.exception('Dropped a %s notification from %s that could '
                          'not be read', event_type, publisher_id)
            return messaging.NotificationResult.HANDLED
        if point is None:
            return messaging.NotificationResult.HANDLED
        if self._stopping.is_set():
            return messaging.NotificationResult.REQUEUE
        try:
            self.history.write_through([point], cancel=self._stopping)
        except history_base.PointsRejected as exc:
            # Older than the store keeps (Nova's clock far behind, or a
            # backlog older than the retention): it never will.
            self.dropped += 1
            exporter.notification_handled('dropped')
            LOG.warning('Dropped a %s notification from %s that the '
                        'history store will not keep: %s', event_type,
                        publisher_id, exc)
            return messaging.NotificationResult.HANDLED
        except Exception as exc:
            return self._requeue(event_type, exc)
        self._recovered()
        self.recorded += 1
        exporter.notification_handled('recorded')
        LOG.debug('Recorded %s of instance %s on %s', event_type,
                  point.tags.get(names.TAG_INSTANCE),
                  point.tags.get(names.TAG_HOST))
        return messaging.NotificationResult.HANDLED

    def _requeue(self, event_type, error):
        with self._lock:
            self._failures += 1
            self._requeued_in_outage += 1
            self.requeued += 1
            first = self._failures == 1
            wait = min(self.retry_backoff_s * 2 ** min(self._failures - 1,
                                                       32),
                       self.retry_backoff_max_s)
        exporter.notification_handled('requeued')
        if first:
            LOG.warning('The history store could not record a %s '
                        'notification (%s): requeueing Nova notifications '
                        'until it records them again, retrying every '
                        '%g s at most', event_type, error,
                        self.retry_backoff_max_s)
        else:
            LOG.debug('Requeued a %s notification: %s', event_type, error)
        # Not a tight loop on a store that stays down; a stopping listener
        # hands the message back at once.
        self._stopping.wait(wait)
        return messaging.NotificationResult.REQUEUE

    def _recovered(self):
        with self._lock:
            if not self._failures:
                return
            requeued, self._requeued_in_outage = self._requeued_in_outage, 0
            self._failures = 0
        LOG.warning('The history store records Nova notifications again; '
                    '%d deliveries were requeued meanwhile', requeued)

    def stop(self):
        """Requeue at once from now on, and end the waits."""
        self._stopping.set()


#: Where the listener's broker URL comes from, first set first:
#: oslo.messaging's own order for notifications after the service's
#: option.  None: ``[DEFAULT] transport_url``.
URL_GROUPS = ('nova_notifications', 'oslo_messaging_notifications', None)


def broker_url(conf):
    """``(url, group)``: the broker URL the listener takes Nova's
    notifications from and the group of the ``transport_url`` option
    that set it (None: ``[DEFAULT]``): the first of :data:`URL_GROUPS`
    set.  The start-up check reads it here too."""
    from oslo_messaging import opts as messaging_opts

    for group, opts in messaging_opts.list_opts():
        if group in URL_GROUPS:
            conf.register_opts(opts, group=group)
    for group in URL_GROUPS:
        url = (conf if group is None else conf[group]).transport_url
        if url or group is None:
            return url, group


class NotificationListener:
    """Listens on ``[nova_notifications]`` and records into ``history``,
    on ``clock``: at the time Nova sent each notification
    (:func:`event_time`), or with ``nova_time`` False (a clock that does
    not follow the wall clock) at its arrival.

    Several ``shadow-service`` processes share the ``pool``: each
    notification is recorded once.
    """

    def __init__(self, conf, history, clock, transport_url=None,
                 nova_time=True):
        opts = conf.nova_notifications
        self.transport = messaging.get_notification_transport(
            conf, url=transport_url or broker_url(conf)[0])
        targets = [messaging.Target(topic=topic, exchange=opts.exchange)
                   for topic in opts.topics]
        self.endpoint = NovaEndpoint(
            history, clock, retry_backoff_s=opts.retry_backoff_s,
            retry_backoff_max_s=max(opts.retry_backoff_s,
                                    opts.retry_backoff_max_s),
            nova_time=nova_time)
        self._listener = messaging.get_notification_listener(
            self.transport, targets, [self.endpoint], executor='threading',
            pool=opts.pool, allow_requeue=True)

    def start(self):
        self._listener.start()
        LOG.info('Listening to Nova notifications')
        return self

    def stop(self):
        self._listener.stop()
        self.endpoint.stop()
        self._listener.wait()


def instance_events(history, instance_uuid):
    """Recorded events of one instance, oldest first (records as dicts)."""
    points = history.query_points(
        names.INSTANCE_EVENT, {names.TAG_INSTANCE: str(instance_uuid)})
    events = []
    for point in points:
        try:
            record = json.loads(point.fields.get(names.FIELD_RECORD))
        except (TypeError, ValueError):
            continue
        record['time'] = point.time
        events.append(record)
    return events


def creation_of(history, instance_uuid):
    """``(host, time)`` of the recorded creation of ``instance_uuid``
    (its first ``created`` event naming a host), or None."""
    for record in instance_events(history, instance_uuid):
        if record.get('event') == 'created' and record.get('host'):
            return record['host'], record['time']
    return None


def placement_of(history, instance_uuid, purpose='boot', after=None):
    """The host Nova placed ``instance_uuid`` on for a request of
    ``purpose`` (an evaluation request's ``purpose``), or None.

    For a boot, the host it was created on.  For a move, the host of the
    first landing of that move's kind (:data:`MOVE_LANDINGS`; any landing
    but the creation for ``move``) recorded at or after ``after``, the
    time the move's evaluation was recorded on the service's clock; None
    without ``after``, so a move is never joined with where the instance
    was created or went before.
    """
    if purpose in (None, 'boot'):
        created = creation_of(history, instance_uuid)
        return created[0] if created else None
    if after is None:
        return None
    wanted = MOVE_LANDINGS.get(purpose, LANDED[1:])
    for record in instance_events(history, instance_uuid):
        if (record.get('event') in wanted and record.get('host')
                and record['time'] >= after):
            return record['host']
    return None


def audit(history, evaluation_id):
    """An evaluation's ranking next to what Nova did with the instance it
    was for: ``{evaluation_id, instance, purpose, ranked_first,
    nova_chose, rank_of_choice, agreed, events}`` (``nova_chose`` None
    until Nova's notification arrived; None if the evaluation is
    unknown).  For a move, ``nova_chose`` is where that move landed
    (:func:`placement_of`), not where the instance was created."""
    record = history.get_evaluation(evaluation_id)
    if record is None:
        return None
    request = record.get('request') or {}
    instance = request.get('instance_uuid')
    purpose = request.get('purpose') or 'boot'
    ranked = [h.get('host') for h in record.get('hosts') or []]
    chose = None
    if instance:
        after = None
        if purpose != 'boot':
            recorded = history.query_points(
                names.EVALUATION, {names.TAG_EVALUATION: str(evaluation_id)})
            after = recorded[0].time if recorded else None
        chose = placement_of(history, instance, purpose, after)
    return {
        'evaluation_id': evaluation_id, 'instance': instance,
        'purpose': purpose,
        'ranked_first': ranked[0] if ranked else None,
        'nova_chose': chose,
        'rank_of_choice': (ranked.index(chose) + 1
                           if chose in ranked else None),
        'agreed': (chose == ranked[0]) if chose and ranked else None,
        'events': instance_events(history, instance) if instance else [],
    }
