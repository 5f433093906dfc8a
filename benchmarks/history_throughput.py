"""History store throughput: points/s written and 7-day series read latency.

Writes 7 days of 5-minute points (2,016 per series) for 1,000 host_metric
series to each store, then reads one series' 7-day window at 5-minute
resolution repeatedly.  Measured in the same run as baselines:

* ``points_only``: building the same Point objects without storing them
  (the part of the write figure the caller pays anyway);
* ``influxdb-python 5.3.2``: the ``influxdb`` client writing pre-built line
  protocol in batches of 5,000 (what the server takes without our
  validation, escaping, buffering and counting), on a subset.

Runs its own ``influxd`` (Debian ``influxdb``) on loopback.  Usage::

    nice -n 5 python benchmarks/history_throughput.py [--series N]

Prints a table and writes ``benchmarks/results/history.json``.
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import benchlib  # noqa: E402

from shadow_service.history import base  # noqa: E402
from shadow_service.history import influxdb  # noqa: E402
from shadow_service.history import lineprotocol  # noqa: E402
from shadow_service.history import sqlite  # noqa: E402
from tests.fixtures import influxdb as influxdb_fixture  # noqa: E402

STEP_S = 300
WINDOW_S = 7 * 86400
METRICS = ('cpu_ops_per_s', 'cpu_util_pct', 'cpu_steal_pct',
           'mem_bandwidth_gbps', 'mem_latency_ns', 'disk_iops', 'disk_mbps',
           'disk_p95_latency_ms', 'net_rps', 'net_p95_rtt_ms')
AIM_WRITE_POINTS_PER_S = 100_000
AIM_READ_MS = 50.0
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       'results', 'history.json')


def series_tags(index):
    return {'host': 'node-%03d' % (index // len(METRICS)),
            'metric': METRICS[index % len(METRICS)]}


def series_points(index, end):
    tags = series_tags(index)
    steps = WINDOW_S // STEP_S
    start = end - steps * STEP_S
    return [base.Point('host_metric', tags,
                       {'value': 100.0 + (index * 7 + i) % 50},
                       start + i * STEP_S)
            for i in range(steps)]


def time_points_only(series, end):
    started = time.perf_counter()
    count = sum(len(series_points(i, end)) for i in range(series))
    return count, time.perf_counter() - started


def time_writes(store, series, end):
    """Wall time to write and flush every point, point creation included;
    also the time spent inside write()/flush() alone."""
    inside = 0.0
    count = 0
    started = time.perf_counter()
    for index in range(series):
        points = series_points(index, end)
        call = time.perf_counter()
        store.write(points)
        inside += time.perf_counter() - call
        count += len(points)
    call = time.perf_counter()
    if not store.flush(timeout=600):
        raise RuntimeError('flush did not finish')
    inside += time.perf_counter() - call
    return count, time.perf_counter() - started, inside


def time_reads(store, series, end, repeats):
    latencies = []
    for n in range(repeats):
        tags = series_tags((n * 37) % series)
        call = time.perf_counter()
        found = store.query_series('host_metric', 'value', tags,
                                   end - WINDOW_S, end, STEP_S)
        latencies.append((time.perf_counter() - call) * 1000)
        holes = sum(v is None for v in found.values)
        if len(found.values) != WINDOW_S // STEP_S or holes:
            raise RuntimeError('read %d values with %d holes'
                               % (len(found.values), holes))
    latencies.sort()
    return {'p50_ms': round(statistics.median(latencies), 2),
            'p95_ms': round(latencies[int(0.95 * (len(latencies) - 1))], 2),
            'max_ms': round(latencies[-1], 2), 'repeats': repeats}


def baseline_client(server, series, end):
    from influxdb import InfluxDBClient  # the 5.3.2 client library
    client = InfluxDBClient(host='127.0.0.1', port=server.http_port,
                            database='baseline')
    client.create_database('baseline')
    lines = [lineprotocol.point_to_line(base.prepare_point(p))
             for i in range(series) for p in series_points(i, end)]
    started = time.perf_counter()
    client.write_points(lines, protocol='line', batch_size=5000,
                        time_precision='u')
    elapsed = time.perf_counter() - started
    client.close()
    return len(lines), elapsed


def rate(count, seconds):
    return round(count / seconds) if seconds else None


def run(series, repeats):
    end = float(int(time.time()) // STEP_S * STEP_S)
    results = {'series': series, 'points_per_series': WINDOW_S // STEP_S,
               'step_s': STEP_S, 'window_days': 7,
               'aims': {'influxdb_write_points_per_s':
                        AIM_WRITE_POINTS_PER_S,
                        'read_one_7day_series_ms': AIM_READ_MS},
               'machine': {'python': platform.python_version(),
                           'cpus': os.cpu_count(),
                           'loadavg_at_start': os.getloadavg()[0]},
               'stores': {}}
    count, seconds = time_points_only(series, end)
    results['points_only'] = {'points': count, 'seconds': round(seconds, 2),
                              'points_per_s': rate(count, seconds)}

    server = influxdb_fixture.InfluxDBServer().start()
    try:
        store = influxdb.InfluxDBStore(url=server.url, database='bench',
                                       buffer_size=1_000_000)
        count, seconds, inside = time_writes(store, series, end)
        reads = time_reads(store, series, end, repeats)
        counters = store.counters()
        store.close()
        results['stores']['influxdb'] = {
            'points': count, 'seconds': round(seconds, 2),
            'points_per_s': rate(count, seconds),
            'points_per_s_inside_store_calls': rate(count, inside),
            'read_7day_series': reads, 'counters': counters,
            'server': 'influxd 1.6.7 (Debian), loopback'}
        subset = max(1, series // 10)
        count, seconds = baseline_client(server, subset, end)
        results['baseline_influxdb_python_5_3_2'] = {
            'points': count, 'seconds': round(seconds, 2),
            'points_per_s': rate(count, seconds)}
    finally:
        server.cleanup()

    with tempfile.TemporaryDirectory() as tmp:
        store = sqlite.SQLiteStore(path=os.path.join(tmp, 'bench.sqlite'))
        count, seconds, inside = time_writes(store, series, end)
        reads = time_reads(store, series, end, repeats)
        results['stores']['sqlite'] = {
            'points': count, 'seconds': round(seconds, 2),
            'points_per_s': rate(count, seconds),
            'points_per_s_inside_store_calls': rate(count, inside),
            'read_7day_series': reads, 'counters': store.counters(),
            'file_mb': round(os.path.getsize(
                os.path.join(tmp, 'bench.sqlite')) / 1e6, 1)}
        store.close()
    return results


def print_table(results):
    print('%-30s %12s %10s %14s %10s %10s' % (
        'what', 'points', 'seconds', 'points/s', 'read p50', 'read p95'))
    rows = [('points only (no store)', results['points_only'], None)]
    for name, found in results['stores'].items():
        rows.append((name + ' store', found, found['read_7day_series']))
    rows.append(('influxdb-python 5.3.2 (subset)',
                 results['baseline_influxdb_python_5_3_2'], None))
    for name, found, reads in rows:
        print('%-30s %12d %10.2f %14d %10s %10s' % (
            name, found['points'], found['seconds'], found['points_per_s'],
            '%.1f ms' % reads['p50_ms'] if reads else '-',
            '%.1f ms' % reads['p95_ms'] if reads else '-'))
    influx = results['stores']['influxdb']
    print('aim >= %d points/s to InfluxDB: %s (%d)' % (
        AIM_WRITE_POINTS_PER_S,
        'met' if influx['points_per_s'] >= AIM_WRITE_POINTS_PER_S
        else 'NOT met', influx['points_per_s']))
    for name, found in results['stores'].items():
        p50 = found['read_7day_series']['p50_ms']
        print('aim <= %.0f ms to read one 7-day series (%s): %s (p50 %.1f '
              'ms)' % (AIM_READ_MS, name,
                       'met' if p50 <= AIM_READ_MS else 'NOT met', p50))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--series', type=int, default=1000)
    parser.add_argument('--repeats', type=int, default=30)
    parser.add_argument('--output', default=RESULTS)
    args = parser.parse_args()
    results = run(args.series, args.repeats)
    print_table(results)
    benchlib.write_results(args.output, results)


if __name__ == '__main__':
    main()
