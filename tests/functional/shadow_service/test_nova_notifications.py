"""Nova's versioned notifications over the real RabbitMQ, into real
history stores that fail and recover.

The notifications are sent the way Nova sends them: an oslo.messaging
``Notifier`` with the ``messaging`` driver on Nova's exchange, topic
``versioned_notifications``, publisher ``nova-compute:<host>``, payload a
versioned object's primitive.  Each test has an exchange and a listener
pool of its own.
"""

import sqlite3
import threading
import time
import uuid

import oslo_messaging as messaging
import pytest

from shadow_service import notifications
from shadow_service.history import influxdb
from shadow_service.history import memory
from shadow_service.history import sqlite
from tests import service_support
from tests.fixtures import influxdb as influxdb_fixture

pytestmark = pytest.mark.rabbit


class Nova:
    """Sends versioned notifications as Nova's computes do."""

    def __init__(self, rabbit_url, exchange):
        conf = service_support.make_conf()
        conf.set_override('control_exchange', exchange)
        self.transport = messaging.get_notification_transport(
            conf, url=rabbit_url)
        self.notifier = messaging.Notifier(
            self.transport, driver='messaging',
            topics=['versioned_notifications'])

    def send(self, event_type, instance, host='host1', payload=None):
        payload = payload or {
            'nova_object.name': 'InstanceActionPayload',
            'nova_object.namespace': 'nova',
            'nova_object.version': '1.8',
            'nova_object.data': {
                'uuid': instance, 'host': host, 'node': host,
                'state': 'active', 'tenant_id': 'project-a',
                'image_uuid': 'image-1',
                'flavor': {'nova_object.data': {
                    'name': 'm1.small', 'vcpus': 1, 'memory_mb': 512,
                    'root_gb': 1}}}}
        self.notifier.prepare(publisher_id='nova-compute:%s' % host).info(
            {}, event_type, payload)

    def close(self):
        self.transport.cleanup()


@pytest.fixture
def exchange():
    return 'nova-shadow-test-%s' % uuid.uuid4().hex[:8]


@pytest.fixture
def nova(rabbit_url, exchange):
    sender = Nova(rabbit_url, exchange)
    yield sender
    sender.close()


class Listeners:
    """Starts listeners (one pool per test) and stops them at the end."""

    def __init__(self, rabbit_url, exchange):
        self.rabbit_url = rabbit_url
        self.conf = service_support.make_conf(nova_notifications={
            'listen': True, 'exchange': exchange,
            'pool': 'test-%s' % exchange, 'retry_backoff_s': 0.2,
            'retry_backoff_max_s': 1.0})
        self.running = []

    def start(self, history, clock=time.time):
        listener = notifications.NotificationListener(
            self.conf, history, clock, transport_url=self.rabbit_url)
        self.running.append(listener.start())
        return listener

    def stop(self, listener):
        self.running.remove(listener)
        listener.stop()

    def stop_all(self):
        for listener in list(self.running):
            self.stop(listener)


@pytest.fixture
def listeners(rabbit_url, exchange):
    started = Listeners(rabbit_url, exchange)
    yield started
    started.stop_all()


def _events(history, instance, event='created'):
    return [e for e in notifications.instance_events(history, instance)
            if e['event'] == event]


def test_a_notification_waits_out_a_locked_sqlite_store(tmp_path, nova,
                                                        listeners):
    path = str(tmp_path / 'history.db')
    store = sqlite.SQLiteStore(path=path, busy_timeout=1.0)
    listener = listeners.start(store)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute('BEGIN IMMEDIATE')       # another writer holds the lock
    try:
        instance = str(uuid.uuid4())
        nova.send('instance.create.end', instance)
        # The store gives up after its busy timeout ([history]
        # sqlite_busy_timeout, 1 s here).
        service_support.wait_for(lambda: listener.endpoint.requeued,
                                 timeout=60)
        assert listener.endpoint.recorded == 0
    finally:
        locker.execute('ROLLBACK')
        locker.close()

    service_support.wait_for(
        lambda: notifications.placement_of(store, instance), timeout=30)
    assert notifications.placement_of(store, instance) == 'host1'
    # Once, however often it was delivered.
    time.sleep(1.0)
    assert len(_events(store, instance)) == 1
    assert listener.endpoint.recorded == 1
    store.close()


@pytest.fixture
def private_influxd(influxdb_server):
    # Depending on the session server makes the test skip (or fail) the
    # same way when influxd is not installed.
    server = influxdb_fixture.InfluxDBServer().start()
    yield server
    server.cleanup()


def _influx_store(server, database='notifications'):
    return influxdb.InfluxDBStore(
        url=server.url, database=database, flush_interval_s=0.1,
        retry_backoff_s=0.1, retry_backoff_max_s=0.5, startup_timeout_s=10,
        raw_retention_days=0, timeout_s=2, close_timeout_s=1.0)


def test_notifications_outlive_a_restart_while_influxdb_is_down(
        private_influxd, nova, listeners):
    store = _influx_store(private_influxd)
    listener = listeners.start(store)
    private_influxd.stop()
    sent = [str(uuid.uuid4()) for _ in range(3)]
    for instance in sent:
        nova.send('instance.create.end', instance)
    # InfluxDB refused the first write; the others have arrived by now.
    service_support.wait_for(lambda: store.counters()['retried'],
                             timeout=30)
    time.sleep(2.0)
    # The service stops while InfluxDB is still down: its store drops
    # what it could not write.
    listeners.stop(listener)
    store.close()

    private_influxd.start()
    store = _influx_store(private_influxd)
    try:
        listener = listeners.start(store)
        service_support.wait_for(lambda: all(
            notifications.placement_of(store, instance)
            for instance in sent), timeout=30)
        time.sleep(1.0)
        assert [1, 1, 1] == [len(_events(store, instance))
                             for instance in sent]
        assert listener.endpoint.recorded == 3
    finally:
        listeners.stop_all()
        store.close()


def _assert_only_the_bad_one_dropped(nova, store, listener):
    """After one bad notification, a good one is recorded and the bad one
    was dropped, not requeued."""
    good = str(uuid.uuid4())
    nova.send('instance.create.end', good)
    service_support.wait_for(
        lambda: notifications.placement_of(store, good), timeout=30)
    time.sleep(1.0)
    assert listener.endpoint.dropped == 1
    assert listener.endpoint.requeued == 0
    assert listener.endpoint.recorded == 1


def test_a_notification_that_cannot_be_read_is_dropped_not_requeued(
        nova, listeners):
    store = memory.MemoryStore()
    listener = listeners.start(store)
    # A payload whose object data is no object: a bug, not a fault.
    nova.send('instance.create.end', None, payload={
        'nova_object.name': 'InstanceActionPayload',
        'nova_object.data': ['not', 'an', 'object']})
    _assert_only_the_bad_one_dropped(nova, store, listener)


def test_a_notification_no_store_can_encode_is_dropped_not_requeued(
        influxdb_server, nova, listeners):
    store = _influx_store(influxdb_server,
                          database='encode-%s' % uuid.uuid4().hex[:8])
    try:
        listener = listeners.start(store)
        # JSON's "\udc80" escape arrives as a lone surrogate: InfluxDB's
        # writer could not encode the batch, and the notification came
        # back again and again.
        nova.send('instance.create.end', 'vm-\udc80')
        _assert_only_the_bad_one_dropped(nova, store, listener)
        assert store.counters()['dropped'] == 0
    finally:
        listeners.stop_all()
        store.close()


def test_a_stopping_listener_does_not_wait_out_the_backoff(
        tmp_path, nova, listeners):
    path = str(tmp_path / 'history.db')
    store = sqlite.SQLiteStore(path=path, busy_timeout=1.0)
    listeners.conf.set_override('retry_backoff_s', 60.0,
                                group='nova_notifications')
    listeners.conf.set_override('retry_backoff_max_s', 60.0,
                                group='nova_notifications')
    listener = listeners.start(store)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute('BEGIN IMMEDIATE')
    try:
        nova.send('instance.create.end', str(uuid.uuid4()))
        service_support.wait_for(lambda: listener.endpoint.requeued,
                                 timeout=60)
        stopped = threading.Event()
        threading.Thread(target=lambda: (listeners.stop(listener),
                                         stopped.set()),
                         daemon=True).start()
        assert stopped.wait(15), 'stop waited out the 60 s backoff'
    finally:
        locker.execute('ROLLBACK')
        locker.close()
        store.close()


def test_a_notification_delivered_late_is_recorded_at_nova_s_time(
        nova, listeners):
    store = memory.MemoryStore()
    # A service clock that follows the wall clock a day behind (as the
    # openstack driver's follows it [openstack] sample_lag behind): Nova's
    # time is recorded on it.
    behind_s = 86400.0

    def clock():
        return time.time() - behind_s

    # The first listener declares the pool's queue, then goes away.
    listeners.stop(listeners.start(store, clock))
    instance = str(uuid.uuid4())
    sent = time.time()
    nova.send('instance.create.end', instance)
    time.sleep(3.0)                 # the listener is down meanwhile
    listeners.start(store, clock)

    service_support.wait_for(lambda: _events(store, instance), timeout=30)
    (created,) = _events(store, instance)
    assert abs(created['time'] - (sent - behind_s)) < 1.0, (
        'recorded %.1f s after Nova sent it'
        % (created['time'] - (sent - behind_s)))
