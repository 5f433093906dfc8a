"""Finished evaluations stay in the service's memory for a while and
within bounds: past ``[shadow] evaluation_ttl``, or beyond the most
recent ``EVALUATIONS_KEPT`` (holding ``EVALUATION_HOSTS_KEPT`` hosts),
they are forgotten as new ones arrive, and read from the history store
when asked for.  Running evaluations are never forgotten."""

import time

import pytest
from oslo_messaging.rpc import dispatcher

from shadow_service import exception
from shadow_service import manager as manager_mod
from shadow_service import rpcapi
from shadow_service import service
from shadow_service.history import memory
from tests import rpc_contract
from tests import service_support

COLUMNS = {'host': [h['host'] for h in rpc_contract.HOSTS],
           'vcpus': [h['vcpus'] for h in rpc_contract.HOSTS]}


@pytest.fixture
def parts():
    built = service.build(service_support.make_conf(),
                          history=memory.MemoryStore())
    yield built
    built.close()


def _answer_from_history(manager):
    """The weigher's call for a request its cache cannot answer: from
    history, recorded; returns the evaluation id."""
    return manager.rank_host_columns({}, rpc_contract.REQUEST, COLUMNS,
                                     10.0, history_only=True,
                                     record=True)['evaluation_id']


def test_the_most_recent_evaluations_are_kept_the_others_read_back(
        parts, monkeypatch):
    monkeypatch.setattr(manager_mod, 'EVALUATIONS_KEPT', 5)
    manager = parts.manager
    ids = [_answer_from_history(manager) for _ in range(20)]
    # Before: all 20 (every request on the weigher's path, for an hour).
    assert list(manager._evaluations) == ids[-5:]
    for evaluation_id in ids[:3]:
        state = manager.get_evaluation({}, evaluation_id)
        assert state['status'] == 'finished'
        assert state['ranking']['evaluation_id'] == evaluation_id
        assert len(state['ranking']['hosts']) == len(COLUMNS['host'])
    listed = {row['evaluation_id'] for row in manager.list_evaluations({})}
    assert set(ids) <= listed


def test_the_kept_evaluations_hold_a_bounded_number_of_hosts(
        parts, monkeypatch):
    monkeypatch.setattr(manager_mod, 'EVALUATION_HOSTS_KEPT',
                        3 * len(COLUMNS['host']))
    manager = parts.manager
    ids = [_answer_from_history(manager) for _ in range(10)]
    assert list(manager._evaluations) == ids[-3:]
    assert manager._held_hosts == 3 * len(COLUMNS['host'])
    # Deleting one gives its hosts back.
    manager.delete_evaluation({}, ids[-1])
    assert manager._held_hosts == 2 * len(COLUMNS['host'])


def _paced_parts(**sim):
    """The service's parts on the twin paced at real time, where an
    evaluation that measures its whole budget runs until it is
    cancelled."""
    conf = service_support.make_conf(
        shadow={'evaluation_schedule': 'pool', 'min_run_time': 300,
                'confidence_target': 1.0},
        sim=dict({'speedup': 1.0}, **sim))
    return service.build(conf, history=memory.MemoryStore())


def _start_running(manager):
    hosts = [{'host': h} for h in COLUMNS['host']]
    return manager.start_evaluation({}, rpc_contract.REQUEST, hosts, 300.0)


def _cancel(parts, evaluation_id):
    parts.manager.cancel_evaluation({}, evaluation_id)
    service_support.wait_for(lambda: parts.manager._running == 0,
                             timeout=60)
    parts.close()


def test_a_running_evaluation_is_never_forgotten(monkeypatch):
    monkeypatch.setattr(manager_mod, 'EVALUATIONS_KEPT', 1)
    parts = _paced_parts()
    manager = parts.manager
    running = _start_running(manager)
    try:
        ids = [_answer_from_history(manager) for _ in range(3)]
        assert list(manager._evaluations) == [running, ids[-1]]
        assert manager.get_evaluation({}, running)['status'] in (
            'pending', 'running')
    finally:
        _cancel(parts, running)


def test_evaluations_past_their_ttl_are_forgotten_as_new_ones_arrive(
        parts, monkeypatch):
    monkeypatch.setattr(manager_mod, 'EXPIRE_EVERY_S', 0.0)
    # evaluation_ttl is at least 60 s in the configuration.
    manager = manager_mod.ShadowManager(parts.evaluator, evaluation_ttl=0.5)
    try:
        ids = [_answer_from_history(manager) for _ in range(3)]
        time.sleep(1.0)
        latest = _answer_from_history(manager)
        # Before: forgotten only when someone read an evaluation back.
        assert list(manager._evaluations) == [latest]
        assert manager.get_evaluation({}, ids[0])['status'] == 'finished'
    finally:
        manager.shutdown()


def test_the_listing_reads_running_evaluations_on_the_drivers_clock():
    """A running evaluation is listed at its start on the cloud driver's
    clock, the clock its records (and so the other rows, and
    ``since_s``) are on; the twin's clock runs hours behind the wall
    clock."""
    # Twenty hours behind, whatever the time of day (by default the
    # twin starts at the latest 09:00 UTC: within the hour after 09:00
    # its clock reads like the wall clock).
    parts = _paced_parts(start_time=float(int(time.time()) - 20 * 3600))
    manager = parts.manager
    before = parts.evaluator.driver.now()
    assert abs(before - time.time()) > 3600.0
    finished = _answer_from_history(manager)
    running = _start_running(manager)
    try:
        service_support.wait_for(
            lambda: manager.get_evaluation({}, running)['status']
            == 'running', timeout=30)
        rows = manager.list_evaluations({}, since_s=3600.0)
        at = {row['evaluation_id']: row['at'] for row in rows}
        after = parts.evaluator.driver.now()
        # Before: the running one at the wall clock's time.
        assert before <= at[running] <= after + 60.0
        assert before <= at[finished] <= after + 60.0
    finally:
        _cancel(parts, running)


def test_an_evaluation_named_after_a_running_one_is_refused():
    """A caller naming the id of an evaluation still running (the
    weigher's record of a renewal it stopped waiting for) is refused: the
    running one stays the one the id names, so the service's stop and
    ``cancel_evaluation`` still reach it and its shadows are deleted."""
    parts = _paced_parts()
    manager = parts.manager
    running = _start_running(manager)
    try:
        service_support.wait_for(
            lambda: parts.driver.list_shadows(), timeout=30)
        ctxt = {rpcapi.CTXT_EVALUATION_ID: running}
        with pytest.raises(dispatcher.ExpectedException) as refused:
            manager.rank_host_columns(ctxt, rpc_contract.REQUEST, COLUMNS,
                                      10.0, history_only=True, record=True)
        error = refused.value.exc_info[1]
        assert isinstance(error, exception.InvalidRequest)
        assert '%s is still running' % running in str(error)
        # Before: the answer from history took its place in memory ...
        assert manager.get_evaluation({}, running)['status'] == 'running'
        assert manager._running == 1
        # ... and the stop did not reach it: its shadows ran on.
        manager.cancel_evaluations()
        service_support.wait_for(lambda: manager._running == 0, timeout=30)
        assert parts.driver.list_shadows() == []
        assert manager.get_evaluation({}, running)['status'] == 'cancelled'
    finally:
        _cancel(parts, running)


def _refused(call):
    with pytest.raises(dispatcher.ExpectedException) as refused:
        call()
    return refused.value.exc_info[1]


def test_an_evaluation_asked_after_the_shutdown_is_refused_and_holds_nothing(
        parts):
    manager = parts.manager
    manager.shutdown()
    hosts = [{'host': h} for h in COLUMNS['host']]
    # Before: an untyped RuntimeError ("cannot schedule new futures after
    # shutdown"), its slot taken for good and the evaluation pending in
    # memory for ever.
    error = _refused(lambda: manager.start_evaluation(
        {}, rpc_contract.REQUEST, hosts, 10.0))
    assert isinstance(error, exception.ServiceStopping)
    # Callers that fall back on a busy service fall back alike.
    assert isinstance(error, exception.ServiceBusy)
    assert 'stopping' in str(error)
    assert manager._running == 0
    assert manager._evaluations == {}
    # Ranking a request boots shadows too: refused alike.
    error = _refused(lambda: manager.rank_host_columns(
        {}, rpc_contract.REQUEST, COLUMNS, 10.0))
    assert isinstance(error, exception.ServiceStopping)
    assert manager._running == 0
    # Asked of history only, it boots nothing: still answered (the
    # weigher's records waiting when the service stops are recorded).
    assert _answer_from_history(manager) in manager._evaluations


def test_an_evaluation_admitted_as_the_workers_stop_gives_its_slot_back(
        parts):
    manager = parts.manager
    # The shutdown stopped the workers between the admission and the
    # hand-over to them.
    manager._pool.shutdown(wait=True)
    hosts = [{'host': h} for h in COLUMNS['host']]
    error = _refused(lambda: manager.start_evaluation(
        {}, rpc_contract.REQUEST, hosts, 10.0))
    assert isinstance(error, exception.ServiceStopping)
    assert manager._running == 0
    assert manager._evaluations == {}
