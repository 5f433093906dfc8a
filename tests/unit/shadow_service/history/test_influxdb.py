"""InfluxDB store behaviour beyond the contract: start-up errors,
retention policies and continuous queries, roll-up reads (real influxd)."""

import http.server
import threading
import time

import pytest
import requests

from shadow_service.history import base
from shadow_service.history import influxdb
from tests.fixtures import influxdb as influxdb_fixture
from tests.unit.shadow_service.history import conftest


@pytest.mark.parametrize('url', ['127.0.0.1:8086', 'ftp://host/',
                                 'http://', 'http://host:notaport'])
def test_malformed_url_is_a_clear_startup_error(url):
    with pytest.raises(base.HistoryError, match='influx_url'):
        influxdb.InfluxDBStore(url=url)


def test_unreachable_server_is_a_clear_startup_error():
    url = 'http://127.0.0.1:%d' % influxdb_fixture.free_port()
    started = time.monotonic()

    with pytest.raises(base.HistoryError,
                       match='cannot reach InfluxDB .* is the server'):
        influxdb.InfluxDBStore(url=url, startup_timeout_s=0.3)

    assert time.monotonic() - started < 10


class _NotInflux(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_server_that_is_not_influxdb_is_a_clear_startup_error():
    server = http.server.HTTPServer(('127.0.0.1', 0), _NotInflux)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(base.HistoryError,
                           match='does not look like InfluxDB'):
            influxdb.InfluxDBStore(
                url='http://127.0.0.1:%d' % server.server_port)
    finally:
        server.shutdown()
        server.server_close()


def test_missing_database_is_an_error_when_creation_is_off(influxdb_server):
    with pytest.raises(base.HistoryError, match='does not exist'):
        conftest.make_influx_store(influxdb_server, database='absent_db',
                                   create_database=False)


def test_missing_database_is_created_when_allowed(influxdb_server):
    store = conftest.make_influx_store(influxdb_server,
                                       database='created_db')
    store.close()

    reply = influxdb_server.query('created_db', 'SHOW DATABASES')
    names = [row[0] for row in reply['results'][0]['series'][0]['values']]
    assert 'created_db' in names


def test_retention_policies_and_rollup_queries_are_created(influxdb_server):
    store = conftest.make_influx_store(
        influxdb_server, database='retention_db', raw_retention_days=7,
        rollup_retention_days=90, rollup_interval_s=600)
    store.close()

    rps = influxdb_server.query('retention_db',
                                'SHOW RETENTION POLICIES ON retention_db')
    rows = {row[0]: row for row in rps['results'][0]['series'][0]['values']}
    assert rows[influxdb.RAW_RP][1] == '168h0m0s'
    assert rows[influxdb.RAW_RP][-1] is True  # the default policy
    assert rows[influxdb.ROLLUP_RP][1] == '2160h0m0s'
    cqs = influxdb_server.query('retention_db', 'SHOW CONTINUOUS QUERIES')
    mine = [s for s in cqs['results'][0]['series']
            if s['name'] == 'retention_db'][0]
    names = {row[0] for row in mine['values']}
    assert names == {'nova_shadow_rollup_%s' % m
                     for m in influxdb.ROLLUP_MEASUREMENTS}
    assert all('GROUP BY time(10m)' in row[1] for row in mine['values'])


def _continuous_queries(server, database):
    """``{name: query}`` of ``database``'s continuous queries."""
    reply = server.query(database, 'SHOW CONTINUOUS QUERIES')
    return {row[0]: row[1] for series in reply['results'][0]['series']
            if series['name'] == database
            for row in series.get('values', [])}


def _operator_query(server, database):
    # A continuous query of the operator's own: never the store's.
    server.query(database,
                 'CREATE CONTINUOUS QUERY operator_cq ON %s BEGIN SELECT '
                 'mean(value) INTO operator_mean FROM host_metric GROUP BY '
                 'time(1h) END' % database)


def test_roll_ups_turned_off_drop_the_queries_made_before(influxdb_server,
                                                          caplog):
    conftest.make_influx_store(
        influxdb_server, database='cq_off_db', raw_retention_days=7,
        rollup_interval_s=600).close()
    _operator_query(influxdb_server, 'cq_off_db')
    assert len(_continuous_queries(influxdb_server, 'cq_off_db')) == (
        len(influxdb.ROLLUP_MEASUREMENTS) + 1)

    with caplog.at_level('WARNING', logger=influxdb.__name__):
        conftest.make_influx_store(
            influxdb_server, database='cq_off_db',
            raw_retention_days=0).close()

    assert set(_continuous_queries(influxdb_server, 'cq_off_db')) == {
        'operator_cq'}
    dropped = [r.getMessage() for r in caplog.records
               if 'Dropped the continuous query' in r.getMessage()]
    assert len(dropped) == len(influxdb.ROLLUP_MEASUREMENTS)
    assert all('raw_retention_days = 0' in m for m in dropped)


def test_a_changed_rollup_interval_replaces_the_queries(influxdb_server,
                                                        caplog):
    conftest.make_influx_store(
        influxdb_server, database='cq_interval_db', raw_retention_days=7,
        rollup_interval_s=600).close()
    _operator_query(influxdb_server, 'cq_interval_db')
    # One an earlier release made for a measurement no longer rolled up.
    influxdb_server.query(
        'cq_interval_db',
        'CREATE CONTINUOUS QUERY %sgone_metric ON cq_interval_db BEGIN '
        'SELECT count(value) AS value_count INTO nova_shadow_rollup.'
        'gone_metric FROM nova_shadow_raw.gone_metric GROUP BY time(10m), * '
        'END' % influxdb.CQ_PREFIX)

    with caplog.at_level('INFO', logger=influxdb.__name__):
        conftest.make_influx_store(
            influxdb_server, database='cq_interval_db',
            raw_retention_days=7, rollup_interval_s=3600).close()

    found = _continuous_queries(influxdb_server, 'cq_interval_db')
    assert set(found) == {'operator_cq'} | {
        influxdb.CQ_PREFIX + m for m in influxdb.ROLLUP_MEASUREMENTS}
    assert all('GROUP BY time(1h)' in query
               for name, query in found.items() if name != 'operator_cq')
    messages = [r.getMessage() for r in caplog.records]
    assert any('Dropped the continuous query %sgone_metric'
               % influxdb.CQ_PREFIX in m for m in messages)
    assert sum('Replaced the continuous query' in m for m in messages) == (
        len(influxdb.ROLLUP_MEASUREMENTS))


def test_restarting_the_store_keeps_retention_setup_idempotent(
        influxdb_server):
    for _ in range(2):
        conftest.make_influx_store(
            influxdb_server, database='again_db',
            raw_retention_days=7).close()


def test_old_windows_are_read_from_the_rollup_policy(influxdb_server):
    store = conftest.make_influx_store(
        influxdb_server, database='rollup_read_db', raw_retention_days=1,
        rollup_interval_s=3600)
    hour = 3600
    old = (int(time.time()) // hour - 72) * hour   # three days ago
    lines = '\n'.join(
        'host_metric,host=h1,metric=m value_count=%di,value_sum=%r,'
        'value_min=%r,value_max=%r,value_last=%r %d'
        % (count, total, low, high, last, (old + i * hour) * 10 ** 6)
        for i, (count, total, low, high, last) in enumerate(
            [(2, 4.0, 1.0, 3.0, 3.0), (1, 5.0, 5.0, 5.0, 5.0)]))
    reply = requests.post(influxdb_server.url + '/write', params={
        'db': 'rollup_read_db', 'rp': influxdb.ROLLUP_RP,
        'precision': 'u'}, data=lines, timeout=30)
    assert reply.status_code == 204
    store.write([base.Point('host_metric', {'host': 'h1', 'metric': 'm'},
                            {'value': 9.0}, time.time() - 60)])
    assert store.flush(timeout=30)
    try:
        two_hours = store.query_series('host_metric', 'value', {'host': 'h1'},
                                       old, old + 2 * hour, 2 * hour)
        last_hour = store.query_series(
            'host_metric', 'value', {'host': 'h1'}, old + hour,
            old + 2 * hour, hour, agg='max')
        now = time.time()
        recent = store.query_series('host_metric', 'value', {'host': 'h1'},
                                    now - 120, now, 120)
    finally:
        store.close()

    assert two_hours.values == [3.0]    # (4 + 5) / (2 + 1)
    assert last_hour.values == [5.0]
    assert recent.values == [9.0]


def test_reads_while_the_server_is_down_raise_history_error():
    server = influxdb_fixture.InfluxDBServer().start()
    try:
        store = conftest.make_influx_store(server, raw_retention_days=0)
        server.stop()
        with pytest.raises(base.HistoryError, match='unreachable'):
            store.query_points('host_metric')
        store._opts['influx_close_timeout_s'] = 0.1
        store.close()
    finally:
        server.cleanup()


def test_evaluation_is_readable_while_still_buffered(influxdb_server):
    store = conftest.make_influx_store(influxdb_server,
                                       flush_interval_s=30, batch_size=1000)
    try:
        store.put_evaluation({'evaluation_id': 'e9', 'status': 'running'})
        assert store.counters()['buffered'] == 1

        assert store.get_evaluation('e9') == {'evaluation_id': 'e9',
                                              'status': 'running'}
        assert store.flush(timeout=30)
        assert store.get_evaluation('e9')['status'] == 'running'
    finally:
        store.close()


def test_shadow_samples_roll_up_without_evaluation_and_shadow_tags(
        influxdb_server):
    # Every evaluation and shadow is a series of its own in the raw
    # policy; the roll-up keeps one series per host, profile and metric,
    # so the series count does not grow with every evaluation for as
    # long as the roll-ups live.
    store = conftest.make_influx_store(
        influxdb_server, database='rollup_tags_db', raw_retention_days=7,
        rollup_interval_s=1)
    # Two seconds ahead: the continuous query (every second, over the
    # last two) rolls the points up once their second has passed, however
    # long the write takes to arrive.
    when = time.time() + 2.0
    try:
        store.write([base.Point(
            'shadow_sample', {'evaluation': 'e%d' % i, 'shadow': 's%d' % i,
                              'host': 'h1', 'profile': 'web',
                              'metric': 'cpu_ops_per_s'},
            {'value': float(i + 1)}, when) for i in range(3)])
        assert store.flush(timeout=30)
        deadline = time.monotonic() + 30
        series = []
        while time.monotonic() < deadline:
            reply = influxdb_server.query(
                'rollup_tags_db', 'SELECT value_count, value_sum FROM '
                '"rollup_tags_db"."%s"."shadow_sample" GROUP BY *'
                % influxdb.ROLLUP_RP)
            series = reply['results'][0].get('series') or []
            if series and sum(row[1] for s in series
                              for row in s['values']) >= 3:
                break
            time.sleep(0.5)
    finally:
        store.close()
    # (GROUP BY * names every tag key of the measurement, empty where a
    # series has none.)
    assert [{k: v for k, v in s['tags'].items() if v} for s in series] == [
        {'host': 'h1', 'metric': 'cpu_ops_per_s', 'profile': 'web'}]
    assert sum(row[2] for row in series[0]['values']) == 6.0


def test_records_outlive_the_raw_retention(influxdb_server):
    # [history] record_retention_days keeps evaluation records (and the
    # other record measurements) however short raw_retention_days is,
    # as the SQLite store does; metric points still follow the raw
    # retention.
    store = conftest.make_influx_store(
        influxdb_server, database='records_rp_db', raw_retention_days=1,
        record_retention_days=30)
    two_days_ago = time.time() - 2 * 86400
    try:
        store.put_evaluation({'evaluation_id': 'old', 'status': 'done'},
                             when=two_days_ago)
        store.write([
            base.Point('scaling_decision', {'instance': 'i1'},
                       {'record': '{}'}, two_days_ago),
            base.Point('host_metric', {'host': 'h1', 'metric': 'm'},
                       {'value': 1.0}, two_days_ago)])
        assert store.flush(timeout=30)

        assert store.get_evaluation('old') == {'evaluation_id': 'old',
                                               'status': 'done'}
        assert len(store.query_points('scaling_decision')) == 1
        assert [p.fields['record'] for p in store.query_points(
            'evaluation', start=two_days_ago - 1)] == [
            '{"evaluation_id": "old", "status": "done"}']
        assert store.query_points('host_metric') == []
        assert store.counters()['dropped'] == 1
    finally:
        store.close()
    rps = influxdb_server.query('records_rp_db',
                                'SHOW RETENTION POLICIES ON records_rp_db')
    rows = {row[0]: row for row in rps['results'][0]['series'][0]['values']}
    assert rows[influxdb.RECORDS_RP][1] == '720h0m0s'
    assert rows[influxdb.RAW_RP][-1] is True  # still the default policy


def test_records_written_before_their_policy_existed_are_still_read(
        influxdb_server):
    # Earlier versions wrote records to the raw (default) policy; they
    # stay readable there, and a newer record of the same evaluation in
    # the records policy wins.
    store = conftest.make_influx_store(
        influxdb_server, database='records_upgrade_db',
        raw_retention_days=7)
    now = time.time()
    reply = requests.post(influxdb_server.url + '/write', params={
        'db': 'records_upgrade_db', 'rp': influxdb.RAW_RP,
        'precision': 'u'}, data='\n'.join([
            'evaluation,evaluation=e1,status=running record="{\\"evaluation'
            '_id\\": \\"e1\\", \\"status\\": \\"running\\"}" %d'
            % int((now - 60) * 1e6),
            'evaluation,evaluation=e2,status=done record="{\\"evaluation'
            '_id\\": \\"e2\\", \\"status\\": \\"done\\"}" %d'
            % int((now - 50) * 1e6)]), timeout=30)
    assert reply.status_code == 204
    try:
        store.put_evaluation({'evaluation_id': 'e1', 'status': 'done'},
                             when=now - 10)
        assert store.flush(timeout=30)

        assert store.get_evaluation('e1')['status'] == 'done'
        assert store.get_evaluation('e2')['status'] == 'done'
        assert [(p.tags['evaluation'], p.tags['status'])
                for p in store.query_points('evaluation')] == [
            ('e1', 'running'), ('e2', 'done'), ('e1', 'done')]
        assert set(store.latest('evaluation', 'record',
                                group_by='evaluation')) == {'e1', 'e2'}
        assert store.latest('evaluation', 'record', group_by='evaluation')[
            'e1'][0] == pytest.approx(now - 10, abs=1e-5)
    finally:
        store.close()


def _write_requests(server):
    stats = server.query(None, 'SHOW STATS FOR \'httpd\'')
    series = stats['results'][0]['series'][0]
    return series['values'][0][series['columns'].index('writeReq')]


def test_interleaved_records_and_points_go_out_in_one_write_per_policy(
        influxdb_server):
    # Records and metric points go to different retention policies; a
    # batch that mixes them is one /write per policy, not one per run of
    # points between two records.
    store = conftest.make_influx_store(
        influxdb_server, database='records_batch_db', raw_retention_days=7,
        flush_interval_s=60, batch_size=1000)
    now = time.time()
    try:
        before = _write_requests(influxdb_server)
        for i in range(50):
            store.write([
                base.Point('host_metric', {'host': 'h1', 'metric': 'm'},
                           {'value': float(i)}, now - 100 + i),
                base.Point('scaling_decision', {'instance': 'i%d' % i},
                           {'record': '{}'}, now - 100 + i)])
        assert store.flush(timeout=30)
        assert _write_requests(influxdb_server) - before == 2
        assert len(store.query_points('host_metric')) == 50
        assert len(store.query_points('scaling_decision')) == 50
    finally:
        store.close()


def test_write_through_refuses_points_older_than_their_retention(
        influxdb_server):
    # InfluxDB drops a point older than its retention policy keeps as it
    # arrives: writing it again cannot help, and the caller must not
    # retry it (nor take a drop elsewhere for its own).
    store = conftest.make_influx_store(
        influxdb_server, manage_retention=True, raw_retention_days=1,
        record_retention_days=2)
    try:
        now = float(int(time.time()))
        old_record = base.Point('instance_event', {'instance': 'vm-1'},
                                {'record': '{}'}, now - 3 * 86400)
        with pytest.raises(base.PointsRejected, match='2 days'):
            store.write_through([old_record])
        old_metric = base.Point('host_metric', {'host': 'h1'},
                                {'value': 1.0}, now - 1.5 * 86400)
        with pytest.raises(base.PointsRejected, match='1 days'):
            store.write_through([old_metric])
        # Within the records' retention, though past the raw one.
        kept = base.Point('instance_event', {'instance': 'vm-1'},
                          {'record': '{}'}, now - 1.5 * 86400)
        store.write_through([kept])
        assert store.counters()['dropped'] == 0
        assert store.query_points('instance_event') == [kept]
    finally:
        store.close()


@pytest.mark.parametrize('database', ['nova\rshadow', 'nova\x00shadow'])
def test_a_database_name_no_influxql_name_holds_is_a_startup_error(
        influxdb_server, database):
    # It raised quote_ident's ValueError, which the service does not take
    # for a store it cannot open (HistoryError).
    with pytest.raises(base.HistoryError,
                       match=r'\[history\] influx_database'):
        conftest.make_influx_store(influxdb_server, database=database)
