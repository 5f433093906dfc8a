"""The InfluxDB sink against the real influxd the test setup starts."""

import json
import subprocess
import sys
import time
import urllib.parse

import pytest

from loadgen import sinks
from tests.functional.loadgen import conftest

pytestmark = pytest.mark.influxdb

TRICKY_VALUES = ['rack 1', 'a,b', 'k=v', 'say "hi"', "it's", 'line\nbreak',
                 'ünïcødé ☃', 'back\\slash', 'trailing\\', 'tab\there',
                 '=leading', ' spaced ']


def _point(metric, value, **tags):
    base = {'evaluation': 'ev', 'shadow': 'sh', 'host': 'h',
            'profile': 'web', 'metric': metric}
    base.update(tags)
    return {'measurement': 'shadow_sample', 'time': time.time(),
            'tags': base, 'fields': {'value': value}}


def _stored(server, db, query):
    reply = server.query(db, query)
    series = reply['results'][0].get('series', [])
    return series


def test_run_writes_every_metric_with_contract_tags(influxdb_server,
                                                    run_loadgen):
    db = 'loadgen_run'
    _, summary = run_loadgen(
        {'name': 'influx-run', 'duration_s': 2.5, 'warmup_s': 0.5,
         'interval_s': 0.5,
         'components': {'cpu': {'duty_cycle': 0.3},
                        'network': {'target_rps': 100}}},
        '--sink', '%s/write?db=%s' % (influxdb_server.url, db),
        '--tag', 'evaluation=ev-42', '--tag', 'shadow=shadow-7')
    stats = summary['sinks'][0]
    assert stats['dropped'] == 0
    assert stats['sent'] == summary['samples_emitted'] > 0
    series = _stored(influxdb_server, db,
                     'SELECT count(value) FROM shadow_sample '
                     "WHERE evaluation='ev-42' AND shadow='shadow-7' "
                     'GROUP BY metric, profile')
    counts = {s['tags']['metric']: s['values'][0][1] for s in series}
    assert {'cpu_ops_per_s', 'cpu_util_pct', 'net_rps',
            'net_p95_rtt_ms'} <= set(counts)
    assert sum(counts.values()) == summary['samples_emitted']
    assert {s['tags']['profile'] for s in series} == {'influx-run'}


def test_tricky_tag_values_survive_the_round_trip(influxdb_server):
    db = 'loadgen_escape'
    sink = sinks.InfluxDBSink('%s?db=%s' % (influxdb_server.url, db),
                              flush_interval_s=0.1)
    for index, value in enumerate(TRICKY_VALUES):
        sink.emit(_point('m%d' % index, float(index), host=value))
    sink.close()
    assert sink.stats()['sent'] == len(TRICKY_VALUES)
    series = _stored(influxdb_server, db,
                     'SELECT last(value) FROM shadow_sample GROUP BY *')
    stored = {s['tags']['metric']: s['tags']['host'] for s in series}
    for index, value in enumerate(TRICKY_VALUES):
        # Documented lossy cases: newline -> space, trailing '\' removed.
        expected = value.replace('\n', ' ').rstrip('\\')
        assert stored['m%d' % index] == expected, (value, stored)


def test_points_buffered_while_influxdb_is_down_arrive_after_it_returns(
        influxdb_server):
    db = 'loadgen_outage'
    sink = sinks.InfluxDBSink('%s?db=%s' % (influxdb_server.url, db),
                              batch_size=5, flush_interval_s=0.1,
                              retries=20, backoff_s=0.1, timeout_s=1,
                              close_timeout_s=30)
    influxdb_server.stop()
    try:
        for index in range(20):
            sink.emit(_point('outage', float(index)))
        time.sleep(1.0)
        assert sink.stats()['sent'] == 0
        assert sink.stats()['errors'] >= 1
    finally:
        influxdb_server.start()
    sink.close()
    stats = sink.stats()
    assert stats['sent'] == 20 and stats['dropped'] == 0
    assert stats['retries'] >= 1
    series = _stored(influxdb_server, db,
                     'SELECT count(value) FROM shadow_sample')
    assert series[0]['values'][0][1] == 20


@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_non_finite_values_are_skipped_and_counted(influxdb_server, bad):
    sink = sinks.InfluxDBSink('%s?db=loadgen_nan' % influxdb_server.url,
                              flush_interval_s=0.1)
    sink.emit(_point('x', bad))
    sink.emit(_point('y', 1.0))
    sink.close()
    assert sink.stats()['skipped_nonfinite'] == 1
    assert sink.stats()['sent'] == 1


def test_a_tag_that_is_not_utf8_loses_no_point(influxdb_server, tmp_path):
    # Python reads a command-line byte that is not UTF-8 as a lone
    # surrogate; the sender thread used to die encoding the first batch
    # holding it, and every point after was lost (most uncounted).
    db = 'loadgen_not_utf8'
    profile = tmp_path / 'p.json'
    profile.write_text(json.dumps(
        {'name': 'not-utf8', 'duration_s': 1.5, 'warmup_s': 0,
         'interval_s': 0.5, 'components': {'cpu': {'duty_cycle': 0.1}}}))
    summary_file = tmp_path / 'summary.json'
    result = subprocess.run(
        [sys.executable.encode(), b'-m', b'loadgen', b'run', bytes(profile),
         b'--sink', ('%s/write?db=%s' % (influxdb_server.url, db)).encode(),
         b'--tag', b'shadow=sh\xff7', b'--summary-file', bytes(summary_file)],
        capture_output=True, timeout=60, env=conftest.loadgen_env())
    assert b'Traceback' not in result.stderr, result.stderr
    summary = json.loads(summary_file.read_text())['summary']
    stats = summary['sinks'][0]
    assert stats['sent'] == summary['samples_emitted'] > 0
    assert stats['dropped'] == 0
    series = _stored(influxdb_server, db,
                     'SELECT count(value) FROM shadow_sample GROUP BY shadow')
    assert sum(s['values'][0][1] for s in series) == stats['sent']
    # The byte is kept as an escape, not dropped.
    assert [s['tags']['shadow'] for s in series] == ['sh\\udcff7']


def test_an_odd_database_name_is_created_as_written(influxdb_server):
    # CREATE DATABASE dropped the quotes from the name, so the writes went
    # on finding no such database: every point was dropped.
    db = 'loadgen_quo"te'
    sink = sinks.InfluxDBSink(
        '%s?%s' % (influxdb_server.url, urllib.parse.urlencode({'db': db})),
        flush_interval_s=0.1)
    sink.emit(_point('odd', 1.0))
    sink.close()
    stats = sink.stats()
    assert (stats['sent'], stats['dropped']) == (1, 0), stats
    series = _stored(influxdb_server, db,
                     'SELECT count(value) FROM shadow_sample')
    assert series[0]['values'][0][1] == 1


def test_a_database_name_influxdb_refuses_is_rejected_at_once(
        influxdb_server, caplog):
    # InfluxDB answers CREATE DATABASE for a name it cannot hold (a
    # backslash: "invalid name") with HTTP 200 and an error in the
    # result: the sink took that for created and sent the batch again.
    caplog.set_level('WARNING', logger='loadgen.sinks')
    sink = sinks.InfluxDBSink(
        '%s?%s' % (influxdb_server.url,
                   urllib.parse.urlencode({'db': 'loadgen_back\\slash'})),
        flush_interval_s=0.1, backoff_s=0.01)
    sink.emit(_point('odd', 1.0))
    sink.close()
    stats = sink.stats()
    assert (stats['sent'], stats['dropped'], stats['rejected'],
            stats['retries']) == (0, 1, 1, 0), stats
    (said,) = [r.getMessage() for r in caplog.records]
    assert 'invalid name' in said, said
