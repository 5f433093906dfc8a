"""Options of the ``[nova_notifications]`` group: what Nova actually did.

``shadow-service`` listens to Nova's versioned notifications to record
where Nova placed, moved and deleted each instance (see
``shadow_service/notifications.py``).
"""

from oslo_config import cfg

from shadow_service.conf import utils as conf_utils

notifications_group = cfg.OptGroup(
    name='nova_notifications',
    title="Nova's versioned notifications",
    help="""
Where ``shadow-service`` listens for Nova's versioned notifications, which
tell it where Nova placed each VM it evaluated and what happened to the VM
afterwards (moves, deletion). Audit records join a ranking with Nova's
choice, and the learners use that choice.

Nova emits them only with ``[notifications] notification_format =
versioned`` (or ``both``) in nova.conf.
""")

notifications_opts = [
    cfg.BoolOpt(
        'listen',
        default=True,
        help="""
Listen to Nova's versioned notifications.

Off: nothing records where Nova placed a VM; the scale-up learner then
guesses the host from the VM's own metrics.
"""),
    cfg.ListOpt(
        'topics',
        default=['versioned_notifications'],
        help="""
Topics Nova sends versioned notifications to.

Related options:

* nova.conf ``[notifications] versioned_notifications_topics``.
"""),
    cfg.StrOpt(
        'exchange',
        default='nova',
        help="""
Messaging exchange of Nova's notifications (Nova's control exchange).
"""),
    cfg.StrOpt(
        'pool',
        default='nova-shadow',
        help="""
Listener pool: every ``shadow-service`` of one deployment shares it, so
each notification is recorded once. Use another name only for a second,
independent deployment on the same broker.
"""),
    cfg.FloatOpt(
        'retry_backoff_s',
        default=1.0,
        min=0.1,
        max=60.0,
        help="""
Seconds the listener waits before it hands a notification back to the
broker (requeues it) because the history store could not record it. The
wait doubles with every further failure, up to ``retry_backoff_max_s``,
and starts again from this value once a notification is recorded. A
notification Nova sent is never lost to a failing store: the broker keeps
it until the store records it.

Related options:

* ``retry_backoff_max_s``.
"""),
    cfg.FloatOpt(
        'retry_backoff_max_s',
        default=30.0,
        min=0.1,
        max=600.0,
        help="""
Longest wait before a notification the history store could not record is
requeued. While the store is down each listener thread tries one
notification per wait: this bounds the load on the broker, and how long
recording takes to resume once the store is back.

With RabbitMQ quorum queues (``[oslo_messaging_rabbit]
rabbit_quorum_queue``) mind the queue's delivery limit (20 by default
since RabbitMQ 4.0; ``[oslo_messaging_rabbit]
rabbit_quorum_delivery_limit``): the broker drops a notification returned
more often than that, so a store outage longer than about that many times
this wait loses it.

Related options:

* ``retry_backoff_s``.
"""),
    cfg.StrOpt(
        'transport_url',
        secret=True,
        help="""
Broker URL of Nova's notifications. Unset: ``[oslo_messaging_notifications]
transport_url``, else ``[DEFAULT] transport_url``.

Checked at start, before the broker is asked anything, when ``listen`` is
on, and so is ``[oslo_messaging_notifications] transport_url`` when this
option is unset: a URL no notification driver can use (no
``driver://``, an unknown driver, ``kafka://`` without its client
library ``confluent_kafka``, a port that is not a number from 1 to
65535) stops the service with a line naming the option it came from,
the URL with its passwords masked and a valid form.
"""),
]


def register_opts(conf):
    conf_utils.register_group_opts(conf, notifications_group,
                                   notifications_opts)


def list_opts():
    return {notifications_group: notifications_opts}
