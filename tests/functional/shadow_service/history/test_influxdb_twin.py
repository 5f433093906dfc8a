"""The twin over a real InfluxDB stores what it measures; a point the
server drops is counted and reported, never silent."""

import logging
import time

import pytest

from shadow_service import service
from shadow_service.history import base
from shadow_service.history import influxdb
from tests import service_support


def _count(server, database, measurement):
    reply = server.query(database, 'SELECT count(value) FROM %s'
                         % measurement)
    series = reply['results'][0].get('series', [])
    return series[0]['values'][0][1] if series else 0


def test_an_evaluation_on_the_twin_is_stored_in_influxdb(influxdb_server):
    conf = service_support.make_conf(
        shadow={'min_run_time': 1},
        history={'store': 'influxdb', 'influx_url': influxdb_server.url,
                 'influx_database': 'twin_stored'})
    parts = service.build(conf)
    try:
        hosts = [{'host': h} for h in parts.driver.host_names()[:3]]
        ranking = parts.manager.evaluate(
            {'flavor': {'vcpus': 2, 'ram_mb': 2048}, 'profile': 'web'},
            hosts, 4.0)
        assert parts.history.flush(timeout=30)
        counts = parts.history.counters()
    finally:
        parts.close()
    assert counts['dropped'] == 0, counts
    assert counts['written'] > 0
    assert _count(influxdb_server, 'twin_stored', 'shadow_sample') > 0
    assert ranking['status'] == 'finished'


def test_a_point_beyond_retention_is_counted_and_logged(influxdb_server,
                                                        caplog):
    caplog.set_level(logging.WARNING)
    store = influxdb.InfluxDBStore(url=influxdb_server.url,
                                   database='beyond_retention',
                                   raw_retention_days=30)
    try:
        old = time.time() - 40 * 86400
        store.write([base.Point('host_metric', {'host': 'h%d' % i},
                                {'value': 1.0}, old + i)
                     for i in range(5)]
                    + [base.Point('host_metric', {'host': 'new'},
                                  {'value': 1.0}, time.time())])
        assert store.flush(timeout=30)
        counts = store.counters()
    finally:
        store.close()
    assert counts['dropped'] == 5 and counts['written'] == 1, counts
    assert any('dropped 5 of 6 points' in r.getMessage()
               for r in caplog.records)


def test_a_driver_clock_beyond_retention_is_refused(influxdb_server):
    store = influxdb.InfluxDBStore(url=influxdb_server.url,
                                   database='clock_refused',
                                   raw_retention_days=30)
    try:
        store.check_clock(time.time())
        with pytest.raises(base.HistoryError, match='raw_retention_days'):
            store.check_clock(1372669200.0)
    finally:
        store.close()
