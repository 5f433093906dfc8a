"""shadow-service runs the history store's retention passes by itself."""

import time

from shadow_service.history import base
from shadow_service.history import sqlite
from tests import service_support

DAY = 86400


def _old_and_new_points(store):
    now = time.time()
    old = now - 3 * DAY
    store.write([base.Point('host_metric', {'host': 'h1', 'metric': 'cpu'},
                            {'value': float(v)}, old + i * 60)
                 for i, v in enumerate([4, 1, 7, 2])])
    store.write([base.Point('host_metric', {'host': 'h1', 'metric': 'cpu'},
                            {'value': 9.0}, now - 60)])
    return old


def _serve(store, interval):
    return service_support.RunningService(
        'fake://', store=store,
        history={'compact_interval_s': interval}).start()


def test_the_service_compacts_the_store_when_it_starts(tmp_path):
    store = sqlite.SQLiteStore(path=str(tmp_path / 'h.sqlite'),
                               raw_retention_days=1, rollup_interval_s=3600)
    old = _old_and_new_points(store)
    running = _serve(store, 3600)
    try:
        compactor = running.server.compactor
        service_support.wait_for(lambda: compactor.passes >= 1)
        assert compactor.failures == 0
        raw = store.query_points('host_metric')
        assert [p.fields['value'] for p in raw] == [9.0]
        rolled = store.query_series('host_metric', 'value', {'host': 'h1'},
                                    old - 3600, old + 3600, 7200, agg='max')
        assert 7.0 in rolled.values
    finally:
        running.stop()
    assert running.server.compactor._thread is None


def test_an_interval_of_zero_leaves_retention_to_the_operator(tmp_path):
    store = sqlite.SQLiteStore(path=str(tmp_path / 'h.sqlite'),
                               raw_retention_days=1, rollup_interval_s=3600)
    _old_and_new_points(store)
    running = _serve(store, 0)
    try:
        running.wait_until_serving()
        assert running.server.compactor.passes == 0
        assert len(store.query_points('host_metric')) == 5
    finally:
        running.stop()


class _BrokenCompaction(sqlite.SQLiteStore):
    """A real store whose retention pass fails (a locked or full disk)."""

    def compact(self, now=None):
        raise OSError('database or disk is full')


def test_a_failing_pass_is_counted_and_the_service_keeps_serving(tmp_path):
    store = _BrokenCompaction(path=str(tmp_path / 'h.sqlite'))
    running = _serve(store, 1)
    try:
        compactor = running.server.compactor
        service_support.wait_for(lambda: compactor.failures >= 2)
        running.wait_until_serving()
        passes = compactor.passes
        service_support.wait_for(lambda: compactor.passes > passes)
    finally:
        running.stop()
