"""The queue the weigher's records wait in, on both sides: bounded by
its items and by the hosts they name."""

import threading
import time

import pytest

from shadow_service import boundedqueue


def test_items_come_out_in_order_and_free_their_weight():
    q = boundedqueue.BoundedQueue(max_items=3, max_weight=10)
    q.put_nowait('a', weight=4)
    q.put_nowait('b', weight=6)
    assert (q.qsize(), q.weight()) == (2, 10)
    with pytest.raises(boundedqueue.Full):
        q.put_nowait('c', weight=1)
    assert q.get() == 'a'
    assert (q.qsize(), q.weight()) == (1, 6)
    q.put_nowait('c', weight=4)
    assert [q.get(), q.get()] == ['b', 'c']
    assert (q.qsize(), q.weight()) == (0, 0)


def test_the_item_bound_holds_whatever_the_weights():
    q = boundedqueue.BoundedQueue(max_items=2, max_weight=1000)
    q.put_nowait(1)
    q.put_nowait(2)
    with pytest.raises(boundedqueue.Full):
        q.put_nowait(3)
    # A weight below one counts as one: no item is free.
    q = boundedqueue.BoundedQueue(max_items=5, max_weight=2)
    q.put_nowait(1, weight=0)
    q.put_nowait(2, weight=-3)
    with pytest.raises(boundedqueue.Full):
        q.put_nowait(3, weight=0)


def test_an_item_heavier_than_the_bound_never_fits():
    q = boundedqueue.BoundedQueue(max_items=5, max_weight=10)
    with pytest.raises(boundedqueue.Full):
        q.put_nowait('big', weight=11)
    assert q.qsize() == 0


def test_get_waits_for_an_item_or_its_timeout():
    q = boundedqueue.BoundedQueue(max_items=1, max_weight=1)
    start = time.monotonic()
    with pytest.raises(boundedqueue.Empty):
        q.get(timeout=0.2)
    assert time.monotonic() - start >= 0.2
    got = []
    reader = threading.Thread(target=lambda: got.append(q.get()))
    reader.start()
    time.sleep(0.1)
    q.put_nowait('late')
    reader.join(5)
    assert got == ['late']


def test_bounds_below_one_are_refused():
    with pytest.raises(ValueError, match='max_items=0'):
        boundedqueue.BoundedQueue(max_items=0, max_weight=5)
    with pytest.raises(ValueError, match='max_weight=0'):
        boundedqueue.BoundedQueue(max_items=5, max_weight=0)
