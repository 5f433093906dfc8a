"""Losing nothing: a real influxd goes away in the middle of a stream.

These tests own their ``influxd`` (not the shared session server) because
they stop and start it.
"""

import logging
import time

import pytest

from shadow_service.history import base
from shadow_service.history import influxdb
from tests.fixtures import influxdb as influxdb_fixture

T0 = 1_700_000_000.0
STREAM_POINTS = 100_000
CHUNK = 1_000


@pytest.fixture
def private_influxd(influxdb_server):
    # Depending on the session server makes the test skip (or fail) the
    # same way when influxd is not installed.
    server = influxdb_fixture.InfluxDBServer().start()
    yield server
    server.cleanup()


def _store(server, database, **overrides):
    options = dict(url=server.url, database=database, batch_size=5000,
                   flush_interval_s=0.1, retry_backoff_s=0.1,
                   retry_backoff_max_s=1.0, startup_timeout_s=10,
                   raw_retention_days=0, timeout_s=5)
    options.update(overrides)
    return influxdb.InfluxDBStore(**options)


def _chunk(first):
    return [base.Point('shadow_sample',
                       {'evaluation': 'e1', 'shadow': 's%d' % (i % 4),
                        'host': 'h%d' % (i % 4), 'profile': 'web',
                        'metric': 'cpu_ops_per_s'},
                       {'value': float(i)}, T0 + i * 0.001)
            for i in range(first, first + CHUNK)]


def _count(server, database, measurement):
    reply = server.query(database, 'SELECT count(value) FROM %s'
                         % measurement)
    series = reply['results'][0].get('series', [])
    return series[0]['values'][0][1] if series else 0


def test_stream_survives_influxd_stopped_in_the_middle(private_influxd):
    store = _store(private_influxd, 'outage', buffer_size=STREAM_POINTS)
    try:
        for first in range(0, STREAM_POINTS // 2, CHUNK):
            store.write(_chunk(first))
        private_influxd.stop()
        stopped_at = time.monotonic()
        for first in range(STREAM_POINTS // 2, STREAM_POINTS, CHUNK):
            store.write(_chunk(first))
            time.sleep(0.05)
        time.sleep(max(0.0, 4.0 - (time.monotonic() - stopped_at)))
        assert store.counters()['buffered'] > 0
        private_influxd.start()

        assert store.flush(timeout=60)
        counters = store.counters()
    finally:
        store.close()

    assert _count(private_influxd, 'outage', 'shadow_sample') == STREAM_POINTS
    assert counters['written'] == STREAM_POINTS
    assert counters['dropped'] == 0
    assert counters['buffered'] == 0
    assert counters['retried'] > 0


def test_buffer_overflow_drops_oldest_points_counted_and_logged(
        private_influxd, caplog):
    store = _store(private_influxd, 'overflow', buffer_size=2_000)
    try:
        private_influxd.stop()
        with caplog.at_level(logging.WARNING, logger=influxdb.__name__):
            for first in range(0, 5_000, CHUNK):
                store.write(_chunk(first))
        counters_while_down = store.counters()
        private_influxd.start()
        assert store.flush(timeout=60)
        counters = store.counters()
    finally:
        store.close()

    kept = counters_while_down['buffered']
    assert counters_while_down['dropped'] == 5_000 - kept
    assert 2_000 <= kept <= 4_000  # a full buffer plus a batch in flight
    assert counters['written'] == kept
    assert counters['dropped'] + counters['written'] == 5_000
    assert _count(private_influxd, 'overflow', 'shadow_sample') == kept
    assert any('History buffer full' in r.getMessage()
               and 'dropped' in r.getMessage() for r in caplog.records)


def test_closing_while_influxd_is_down_counts_and_logs_the_loss(
        private_influxd, caplog):
    store = _store(private_influxd, 'closing', close_timeout_s=0.5)
    private_influxd.stop()
    store.write(_chunk(0))
    with caplog.at_level(logging.ERROR, logger=influxdb.__name__):
        store.close()

    counters = store.counters()
    assert (counters['written'], counters['dropped'],
            counters['buffered']) == (0, CHUNK, 0)
    assert any('not written' in r.getMessage() or 'Dropped' in
               r.getMessage() for r in caplog.records)
