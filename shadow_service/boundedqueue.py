"""A first-in first-out queue bounded by what its items hold.

The records of requests answered from the weigher's cache wait for one
thread, in the scheduler (``nova_shadow_filter.weigher``) and in the
service (``shadow_service.manager``).  What a record holds in memory
grows with its candidate hosts, so a bound on the number of records
alone is either small for a small cloud (a burst of boots on ten hosts
drops records the calibration learner needs) or large for a big one.
This queue is bounded by both: at most ``max_items`` items, and at most
``max_weight`` summed over their weights (a record's weight is its
number of hosts).
"""

import collections
import queue
import threading
import time

# The exceptions of the standard library's queue, so that a caller
# catches one kind whichever queue it holds.
Empty = queue.Empty
Full = queue.Full


class BoundedQueue:
    """FIFO of at most ``max_items`` items whose weights add up to at
    most ``max_weight``.  ``put_nowait`` never waits: an item that does
    not fit raises :class:`Full` (an item heavier than ``max_weight``
    never fits); ``get`` waits for an item."""

    def __init__(self, max_items, max_weight):
        if max_items < 1 or max_weight < 1:
            raise ValueError('a bounded queue holds at least one item of '
                             'weight 1 (max_items=%r, max_weight=%r)'
                             % (max_items, max_weight))
        self.max_items = max_items
        self.max_weight = max_weight
        self._items = collections.deque()
        self._weight = 0
        self._ready = threading.Condition(threading.Lock())

    def put_nowait(self, item, weight=1):
        weight = max(1, int(weight))
        with self._ready:
            if (len(self._items) >= self.max_items
                    or self._weight + weight > self.max_weight):
                raise Full()
            self._items.append((item, weight))
            self._weight += weight
            self._ready.notify()

    def get(self, timeout=None):
        """The oldest item, waiting at most ``timeout`` seconds (None:
        for ever) for one; :class:`Empty` when none came."""
        with self._ready:
            if timeout is None:
                while not self._items:
                    self._ready.wait()
            else:
                end = time.monotonic() + timeout
                while not self._items:
                    left = end - time.monotonic()
                    if left <= 0:
                        raise Empty()
                    self._ready.wait(left)
            item, weight = self._items.popleft()
            self._weight -= weight
            return item

    def qsize(self):
        """Items waiting."""
        with self._ready:
            return len(self._items)

    def weight(self):
        """The summed weight of the items waiting."""
        with self._ready:
            return self._weight
