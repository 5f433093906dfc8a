"""When a Nova notification is recorded: Nova's time, on the service's
clock."""

import datetime
import time
import uuid

import oslo_messaging as messaging
from oslo_utils import timeutils

from shadow_service import notifications
from shadow_service.history import base as history_base
from shadow_service.history import memory
from tests.unit.shadow_service.history import conftest as history_conftest


def test_nova_s_timestamp_is_read_as_utc():
    # What oslo.messaging's Notifier puts in every message Nova sends.
    before = time.time()
    stamp = str(timeutils.utcnow())
    sent = notifications.sent_at({'timestamp': stamp})
    assert before - 1e-3 <= sent <= time.time()


def test_a_timestamp_on_a_whole_second_is_read_too():
    stamp = str(datetime.datetime(2024, 5, 1, 10, 0, 0))
    assert stamp == '2024-05-01 10:00:00'
    assert notifications.sent_at({'timestamp': stamp}) == 1714557600.0


def test_a_missing_or_unreadable_timestamp_gives_none():
    for metadata in (None, {}, {'timestamp': None}, {'timestamp': 'Aug'},
                     {'timestamp': 1714557600}):
        assert notifications.sent_at(metadata) is None


def test_a_late_notification_keeps_nova_s_time_on_the_service_s_clock():
    metadata = {'timestamp': '2024-05-01 10:00:00'}
    wall_now = 1714557600.0 + 120.0           # delivered 2 minutes late
    service_now = wall_now - 3600.0           # a clock an hour behind
    assert notifications.event_time(metadata, service_now, wall_now) == (
        service_now - 120.0)


def test_receive_time_when_nova_s_time_is_missing_or_ahead():
    assert notifications.event_time({}, 500.0, 1000.0) == 500.0
    ahead = {'timestamp': '2024-05-01 10:00:05'}
    assert notifications.event_time(ahead, 500.0, 1714557600.0) == 500.0


def test_the_same_notification_gets_the_same_time_however_late():
    # A clock 3 s behind the wall clock ([openstack] sample_lag), read a
    # few microseconds apart from the wall clock, as the listener reads
    # them: a notification delivered again (requeued, or redelivered to
    # another service of the pool) must land on the point it wrote
    # before, not on a second one microseconds apart.
    metadata = {'timestamp': '2024-05-01 10:00:00'}
    sent = 1714557600.0
    first = notifications.event_time(metadata, sent + 2.0 - 3.0 - 3e-6,
                                     sent + 2.0)
    again = notifications.event_time(metadata, sent + 95.0 - 3.0 - 41e-6,
                                     sent + 95.0)
    assert history_base.time_to_us(first) == history_base.time_to_us(again)
    assert abs(first - (sent - 3.0)) < 1e-3


def _assert_delivered_twice_recorded_once(store, clock):
    """One notification handled twice with ``clock`` is one event."""
    endpoint = notifications.NovaEndpoint(store, clock)
    instance = str(uuid.uuid4())
    payload = {'nova_object.data': {'uuid': instance, 'host': 'host1'}}
    metadata = {'timestamp': str(timeutils.utcnow())}
    for _ in range(2):
        assert endpoint.info({}, 'nova-compute:host1',
                             'instance.create.end', payload,
                             metadata) == messaging.NotificationResult.HANDLED
    assert len(notifications.instance_events(store, instance)) == 1


def test_a_notification_delivered_twice_is_recorded_once():
    store = memory.MemoryStore()
    pauses = iter([5e-6, 60e-6])

    def clock():
        # 3 s behind the wall clock; reading it takes a moment.
        reading = time.time() - 3.0
        until = time.perf_counter() + next(pauses)
        while time.perf_counter() < until:
            pass
        return reading

    _assert_delivered_twice_recorded_once(store, clock)


def test_a_redelivery_read_across_a_thread_switch_is_recorded_once():
    # Another thread can take the interpreter between the readings of the
    # two clocks (sys.getswitchinterval(), 5 ms): 8 in 200,000 deliveries
    # with two busy threads were a millisecond or more off, and a
    # notification delivered again (requeued at a stop, redelivered after
    # a lost connection) was recorded a second time.
    store = memory.MemoryStore()
    pauses = iter([3e-3, 0.0, 0.0])

    def clock():
        reading = time.time() - 3.0
        pause = next(pauses, 0.0)
        if pause:
            time.sleep(pause)       # the other thread runs
        return reading

    _assert_delivered_twice_recorded_once(store, clock)


def test_a_notification_older_than_the_store_keeps_is_dropped(
        influxdb_server):
    # Sent (by Nova's clock) before InfluxDB's records retention: the
    # server drops its event as it arrives, so requeueing it would loop.
    store = history_conftest.make_influx_store(
        influxdb_server, manage_retention=True, raw_retention_days=1,
        record_retention_days=1)
    try:
        endpoint = notifications.NovaEndpoint(store, time.time,
                                              retry_backoff_s=0.1)
        old, new = str(uuid.uuid4()), str(uuid.uuid4())
        for instance, sent in ((old, datetime.datetime(2020, 1, 1)),
                               (new, timeutils.utcnow())):
            payload = {'nova_object.data': {'uuid': instance,
                                            'host': 'host1'}}
            assert endpoint.info(
                {}, 'nova-compute:host1', 'instance.create.end', payload,
                {'timestamp': str(sent)}) == (
                    messaging.NotificationResult.HANDLED)
        assert (endpoint.dropped, endpoint.requeued, endpoint.recorded) == (
            1, 0, 1)
        assert notifications.placement_of(store, new) == 'host1'
    finally:
        store.close()


def _created(endpoint, instance):
    payload = {'nova_object.data': {'uuid': instance, 'host': 'host1'}}
    return endpoint.info({}, 'nova-compute:host1', 'instance.create.end',
                         payload, {'timestamp': str(timeutils.utcnow())})


def _host_score(host, value, when):
    return history_base.Point(
        'host_score', {'host': host}, {'score': value}, when)


def test_points_of_another_writer_dropped_by_influxdb_requeue_nothing(
        influxdb_server):
    # An evaluation's host score InfluxDB refuses (a string where the
    # field holds numbers) goes out in the same batch as the event: the
    # server drops that point, not the event, which is recorded.
    store = history_conftest.make_influx_store(
        influxdb_server, flush_interval_s=30.0)
    try:
        now = time.time()
        store.write_through([_host_score('host1', 0.5, now - 10)])
        store.write([_host_score('host1', 'high', now - 5)])
        _recorded_beside_a_dropped_point(store)
    finally:
        store.close()


def _recorded_beside_a_dropped_point(store):
    """A boot notification is recorded on host1 and not requeued, though
    ``store`` dropped one point of another writer's meanwhile."""
    endpoint = notifications.NovaEndpoint(store, time.time,
                                          retry_backoff_s=0.01)
    instance = str(uuid.uuid4())
    assert _created(endpoint, instance) == (
        messaging.NotificationResult.HANDLED)
    assert store.counters()['dropped'] == 1
    assert (endpoint.recorded, endpoint.requeued) == (1, 0)
    assert notifications.placement_of(store, instance) == 'host1'


def test_points_of_another_writer_the_full_buffer_drops_requeue_nothing(
        influxdb_server):
    # The buffer overflows as the event joins it: the oldest points, a
    # burst from another writer, are dropped; the event is not.
    store = history_conftest.make_influx_store(
        influxdb_server, flush_interval_s=30.0, buffer_size=3)
    try:
        now = time.time()
        store.write([_host_score('host%d' % i, 0.5, now) for i in range(3)])
        _recorded_beside_a_dropped_point(store)
    finally:
        store.close()


def test_a_notification_whose_own_point_influxdb_drops_is_requeued(
        influxdb_server):
    # The event's record field already holds numbers on the server: it
    # refuses the event itself (a partial write naming no point), so the
    # notification goes back to the broker.
    store = history_conftest.make_influx_store(influxdb_server)
    try:
        store.write_through([history_base.Point(
            'instance_event', {'instance': 'other'}, {'record': 1.0},
            time.time() - 10)])
        endpoint = notifications.NovaEndpoint(store, time.time,
                                              retry_backoff_s=0.01)
        assert _created(endpoint, str(uuid.uuid4())) == (
            messaging.NotificationResult.REQUEUE)
        assert (endpoint.recorded, endpoint.requeued) == (0, 1)
    finally:
        store.close()
