"""A budget that leaves no time to measure boots no shadow on a real
cloud: ``[openstack] cleanup_reserve`` seconds of every budget are kept
for deleting shadows, and when they (or the caller's deadline) take all
of it, the answer comes from history at once, saying why the hosts were
not measured.  The compute API is the fake of
:mod:`tests.compute_api_support`, which counts the servers made."""

import time

import pytest

from shadow_service import rpcapi
from shadow_service import service
from shadow_service.history import memory
from tests import compute_api_support
from tests import service_support

REQUEST = {'flavor': {'vcpus': 2, 'ram_mb': 2048}, 'profile': 'web',
           'image_id': '155d900f-4e14-4e4c-a73d-069cbf4541e6'}
HOSTS = [{'host': 'h%d' % i} for i in range(3)]


@pytest.fixture
def nova():
    fake = compute_api_support.FakeNova()
    yield fake
    fake.close()


@pytest.mark.parametrize('schedule', ['racing', 'pool', 'full'])
def test_no_shadow_boots_when_the_budget_leaves_no_time_to_measure(
        nova, schedule):
    history = memory.MemoryStore()
    driver = compute_api_support.make_driver(
        nova, history=history, cleanup_reserve=3.0,
        shadow={'evaluation_schedule': schedule, 'min_run_time': 0.0})
    parts = service.build(driver.conf, history=history, driver=driver)
    try:
        started = time.monotonic()
        # The caller waits 2 s: 1.5 s of budget, all of it kept back for
        # deleting shadows.
        ranking = parts.manager.rank_hosts(
            rpcapi.with_deadline({}, 2.0), REQUEST, HOSTS, 30.0)
        took = time.monotonic() - started
    finally:
        parts.close()
    # Before: three servers were made, never measured, and deleted
    # while the caller waited.
    assert 'POST /v2.1/servers' not in nova.calls
    assert nova.servers == {}
    assert ranking['status'] == 'finished'
    assert ranking['source'] == 'history'
    assert ranking['shadow_host_seconds'] == 0.0
    for entry in ranking['hosts']:
        assert entry['reasons'] == [
            'not measured: the budget of 1.5s left no time to measure '
            '(3.0s kept back for deleting shadows); neutral score']
    # Generous for a loaded 2-core machine; the caller waits 2 s.
    assert took < 2.0, took


def test_a_cancel_while_shadows_come_up_deletes_them_at_once(nova):
    """The fake's servers stay in BUILD: a cancel (or the service's stop)
    stops the wait for them and deletes them then, not once the budget
    is spent."""
    history = memory.MemoryStore()
    driver = compute_api_support.make_driver(nova, history=history)
    parts = service.build(driver.conf, history=history, driver=driver)
    manager = parts.manager
    try:
        evaluation_id = manager.start_evaluation({}, REQUEST, HOSTS, 60.0)
        service_support.wait_for(lambda: len(nova.servers) == len(HOSTS),
                                 timeout=10)
        manager.cancel_evaluation({}, evaluation_id)
        # Before: the evaluation waited for them for its whole budget.
        service_support.wait_for(lambda: manager._running == 0,
                                 timeout=10)
        assert nova.servers == {}
        state = manager.get_evaluation({}, evaluation_id)
        assert state['status'] == 'cancelled'
        for entry in state['ranking']['hosts']:
            assert entry['reasons'] == [
                'not measured: the evaluation was cancelled before its '
                'shadow was up; neutral score']
    finally:
        parts.close()
