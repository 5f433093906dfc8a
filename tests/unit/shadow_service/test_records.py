"""The weigher's records (casts nobody waits for) are answered on the
service's records thread, one at a time, never in the RPC thread that
serves calls; beyond a bounded queue they are dropped and counted, and
so are those still waiting when a stopping service has recorded what it
could."""

import logging
import threading

import pytest

from shadow_service import boundedqueue
from shadow_service import exporter
from shadow_service import manager as manager_mod
from shadow_service import measurements as names
from shadow_service import rpcapi
from shadow_service import service
from shadow_service.history import memory
from tests import rpc_contract
from tests import service_support

COLUMNS = {'host': [h['host'] for h in rpc_contract.HOSTS],
           'vcpus': [h['vcpus'] for h in rpc_contract.HOSTS]}
RECORD = {rpcapi.CTXT_RECORD: True}


@pytest.fixture
def manager():
    parts = service.build(service_support.make_conf(),
                          history=memory.MemoryStore())
    yield parts.manager
    parts.manager.shutdown()


def _watch_evaluations(manager, gate=None):
    """The names of the threads ``manager.evaluate`` runs in (each call
    waits for ``gate`` first, when given)."""
    threads = []
    evaluate = manager.evaluate

    def watched(*args, **kwargs):
        threads.append(threading.current_thread().name)
        if gate is not None:
            assert gate.wait(30)
        return evaluate(*args, **kwargs)

    manager.evaluate = watched
    return threads



def _recorded(manager):
    """How many recorded evaluations ``manager`` has finished."""
    return sum(e.record and e.status == 'finished'
               for e in manager._evaluations.values())


def test_a_record_is_answered_on_the_records_thread(manager):
    threads = _watch_evaluations(manager)
    reply = manager.rank_host_columns(RECORD, rpc_contract.REQUEST,
                                      COLUMNS, 10.0, history_only=True,
                                      record=True)
    # Nothing to answer: the cast's caller does not wait.
    assert reply is None
    service_support.wait_for(lambda: _recorded(manager))
    assert threads == ['shadow-records']
    # A call with the same arguments (no record mark) is answered in the
    # caller's thread, as before.
    reply = manager.rank_host_columns({}, rpc_contract.REQUEST, COLUMNS,
                                      10.0, history_only=True, record=True)
    assert len(reply['scores']) == len(COLUMNS['host'])
    assert threads == ['shadow-records', threading.current_thread().name]


@pytest.mark.parametrize('items,hosts', [
    # One record waits (of any size) ...
    (1, 10 ** 6),
    # ... or any number while they name one record's hosts in all.
    (100, len(COLUMNS['host']))])
def test_records_beyond_the_queue_are_dropped_and_counted(manager,
                                                          monkeypatch,
                                                          items, hosts):
    monkeypatch.setattr(manager, '_records',
                        boundedqueue.BoundedQueue(items, hosts))
    gate = threading.Event()
    threads = _watch_evaluations(manager, gate)
    exported = exporter.RECORDS_DROPPED._value.get()
    for _ in range(3):
        assert manager.rank_host_columns(
            RECORD, rpc_contract.REQUEST, COLUMNS, 10.0, history_only=True,
            record=True) is None
        # The first is taken by the records thread (held at the gate),
        # the second waits in the queue, the third finds it full.
        service_support.wait_for(lambda: threads)
    assert manager.records_dropped == 1
    assert exporter.RECORDS_DROPPED._value.get() == exported + 1
    gate.set()
    service_support.wait_for(lambda: len(threads) == 2)
    service_support.wait_for(lambda: _recorded(manager) == 2)
    assert manager.records_dropped == 1


def _queue_held_records(manager, count):
    """Queue ``count`` records while the records thread is held (it took
    the first); returns the gate that lets it go on and the names of the
    threads the records were answered in."""
    gate = threading.Event()
    threads = _watch_evaluations(manager, gate)
    for _ in range(count):
        assert manager.rank_host_columns(
            RECORD, rpc_contract.REQUEST, COLUMNS, 10.0, history_only=True,
            record=True) is None
    service_support.wait_for(lambda: threads)
    return gate, threads


def test_records_waiting_when_the_service_stops_are_recorded_first(
        manager):
    gate, threads = _queue_held_records(manager, 5)
    # The records thread goes on while the service is stopping.
    threading.Timer(0.5, gate.set).start()
    manager.shutdown()
    # Before: the four still waiting were lost, uncounted and unlogged.
    assert not manager._records_thread.is_alive()
    assert threads == ['shadow-records'] * 5
    history = manager.evaluator.history
    recorded = {p.tags[names.TAG_EVALUATION]
                for p in history.query_points(names.EVALUATION)}
    assert len(recorded) == 5
    assert manager.records_dropped == 0


def test_records_left_when_the_service_stops_are_dropped_and_counted(
        manager, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger=manager_mod.__name__)
    monkeypatch.setattr(manager_mod, 'RECORDS_DRAIN_S', 0.5)
    monkeypatch.setattr(manager_mod, 'RECORDS_WAIT_S', 0.5)
    exported = exporter.RECORDS_DROPPED._value.get()
    gate, threads = _queue_held_records(manager, 5)
    try:
        # The record held at the gate outlasts the drain: the four
        # waiting behind it are dropped.
        manager.shutdown()
    finally:
        gate.set()
    # Before: none counted, nothing logged.
    assert manager.records_dropped == 4
    assert exporter.RECORDS_DROPPED._value.get() == exported + 4
    stopping = [r.getMessage() for r in caplog.records
                if r.getMessage().startswith('Stopping: dropped')]
    assert stopping == [
        'Stopping: dropped 4 records of requests the weigher answered '
        'from its cache, still waiting after 0.5s (4 dropped in all)']
    # One that arrives once the service stopped taking them is dropped
    # and counted too, never left waiting.
    assert manager.rank_host_columns(
        RECORD, rpc_contract.REQUEST, COLUMNS, 10.0, history_only=True,
        record=True) is None
    assert manager.records_dropped == 5
    assert manager._records.qsize() == 0
    service_support.wait_for(lambda: not manager._records_thread.is_alive())
    assert threads == ['shadow-records']


def test_a_bad_record_is_logged_and_the_thread_goes_on(manager, caplog):
    caplog.set_level(logging.INFO, logger=manager_mod.__name__)
    bad = dict(COLUMNS, vcpus=['many'] * len(COLUMNS['host']))
    assert manager.rank_host_columns(RECORD, rpc_contract.REQUEST, bad,
                                     10.0, history_only=True,
                                     record=True) is None
    assert manager.rank_host_columns(RECORD, rpc_contract.REQUEST, COLUMNS,
                                     10.0, history_only=True,
                                     record=True) is None
    service_support.wait_for(lambda: _recorded(manager))
    assert any('Rejected a record: InvalidRequest' in r.getMessage()
               for r in caplog.records)


def test_weighers_drop_reports_are_kept_for_the_most_recent_senders(
        manager, monkeypatch):
    # The service keeps the last count of DROP_SENDERS_KEPT weighers: a
    # weigher forgotten and heard from again has its count taken anew.
    monkeypatch.setattr(manager_mod, 'DROP_SENDERS_KEPT', 2)
    exported = exporter.WEIGHER_RECORDS_DROPPED._value.get()

    def report(sender, count):
        ctxt = dict(RECORD, **{rpcapi.CTXT_DROPPED: {'sender': sender,
                                                     'count': count}})
        assert manager.rank_host_columns(
            ctxt, rpc_contract.REQUEST, COLUMNS, 10.0, history_only=True,
            record=True) is None

    report('a', 4)
    report('b', 1)
    report('a', 6)
    # 'b' is now the least recently heard from: 'c' makes it forgotten.
    report('c', 2)
    assert list(manager._weigher_drops) == ['a', 'c']
    report('a', 6)
    report('b', 1)
    assert exporter.WEIGHER_RECORDS_DROPPED._value.get() == (
        exported + 6 + 1 + 2 + 1)
    service_support.wait_for(lambda: _recorded(manager) == 6)


def test_a_move_recorded_after_it_landed_is_audited_where_it_landed():
    # The weigher answered a live migration from its cache; its record
    # reaches the service only after Nova's notification that the move
    # landed (records wait behind others on both sides).  The record is
    # stamped when Nova asked, so the audit finds the move.
    import time
    import uuid

    import oslo_messaging as messaging
    from oslo_utils import timeutils

    from shadow_service import notifications

    parts = service.build(service_support.make_conf(),
                          history=memory.MemoryStore())
    try:
        # A cloud whose clock follows the wall clock 3 s behind, as the
        # openstack driver's ([openstack] sample_lag).
        parts.driver.wall_clock = True
        parts.driver.now = lambda: time.time() - 3.0
        history = parts.manager.evaluator.history
        instance = str(uuid.uuid4())
        asked_at = time.time()
        time.sleep(0.05)                        # the live migration
        landed_on = COLUMNS['host'][-1]
        endpoint = notifications.NovaEndpoint(history, parts.driver.now)
        assert endpoint.info(
            {}, 'nova-compute:%s' % landed_on,
            'instance.live_migration_post_dest.end',
            {'nova_object.data': {'uuid': instance, 'host': landed_on}},
            {'timestamp': str(timeutils.utcnow())}) == (
                messaging.NotificationResult.HANDLED)
        time.sleep(0.05)                        # the record waited
        named = str(uuid.uuid4())
        parts.manager.rank_host_columns(
            dict(RECORD, **{rpcapi.CTXT_EVALUATION_ID: named,
                            rpcapi.CTXT_ASKED_AT: asked_at}),
            dict(rpc_contract.REQUEST, instance_uuid=instance,
                 purpose='live-migrate'),
            COLUMNS, 10.0, history_only=True, record=True)
        service_support.wait_for(lambda: _recorded(parts.manager))
        assert parts.manager.evaluator.score_writer.flush()

        audit = notifications.audit(history, named)
        assert audit['purpose'] == 'live-migrate'
        assert audit['nova_chose'] == landed_on
    finally:
        parts.manager.shutdown()


def test_a_record_s_asking_time_is_read_with_care():
    now = 1000.0
    assert manager_mod.asked_at({rpcapi.CTXT_ASKED_AT: 990.5}, now) == 990.5
    # Slightly ahead (clocks a little apart): now; far ahead: not
    # believed, as nonsense and absence are not.
    assert manager_mod.asked_at({rpcapi.CTXT_ASKED_AT: 1001.0}, now) == now
    for ctxt in ({rpcapi.CTXT_ASKED_AT: now + 3600}, {},
                 {rpcapi.CTXT_ASKED_AT: 'soon'},
                 {rpcapi.CTXT_ASKED_AT: float('nan')},
                 {rpcapi.CTXT_ASKED_AT: True}, None):
        assert manager_mod.asked_at(ctxt, now) is None
