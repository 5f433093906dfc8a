"""How the history stores' series catalogue grows with evaluations.

Every evaluation writes its shadows' samples as series of their own (the
``evaluation`` and ``shadow`` tags are part of a series' identity).  This
benchmark writes the samples of N earlier evaluations (16 shadows, one per
host, 10 metrics each, taken two days ago: outside the prior's look-back,
inside the raw retention), then one recent evaluation, and times the read
the service's prior makes (``query_points('shadow_sample', {'profile':
...})`` over ``[shadow] prior_lookback``, as ``shadow_service.priorsamples``
reads it) and the process's resident memory.  N = 0 is the baseline,
measured in the same run.  The recent evaluation's samples are the only
ones the read returns at every N.

Stores: ``sqlite`` (the default store, on a file) and ``memory``.

Usage::

    nice -n 5 python benchmarks/history_catalogue.py [--evaluations 0,250,1000]

Prints a table and writes ``benchmarks/results/history_catalogue.json``.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import benchlib  # noqa: E402

from shadow_service import measurements as names  # noqa: E402
from shadow_service.conf import service as service_conf  # noqa: E402
from shadow_service.history import base  # noqa: E402
from shadow_service.history import memory  # noqa: E402
from shadow_service.history import sqlite  # noqa: E402

HOSTS = 16
METRICS = 10
PROFILES = ('web', 'db-oltp', 'batch-cpu', 'analytics', 'cache')
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       'results', 'history_catalogue.json')


def _lookback():
    return next(o.default for o in service_conf.shadow_opts
                if o.name == 'prior_lookback')


def evaluation_points(evaluation_id, profile, when):
    return [base.Point(names.SHADOW_SAMPLE, {
        names.TAG_EVALUATION: evaluation_id,
        names.TAG_SHADOW: 'shadow-%s-%d' % (evaluation_id, host),
        names.TAG_HOST: 'node-%02d' % host, names.TAG_PROFILE: profile,
        names.TAG_METRIC: 'metric-%d' % metric},
        {names.FIELD_VALUE: 100.0 + metric}, when + second)
        for host in range(HOSTS) for metric in range(METRICS)
        for second in range(0, 60, 10)]


def rss_mb():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 1e6


def prior_read_ms(store, now, lookback, repeats=5):
    timings, count = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        count = len(store.query_points(
            names.SHADOW_SAMPLE, {names.TAG_PROFILE: 'web'},
            start=now - lookback, end=now))
        timings.append(1000 * (time.perf_counter() - started))
    return statistics.median(timings), count


def measure(kind, counts, lookback):
    rows = []
    for count in counts:
        directory = tempfile.mkdtemp(prefix='history-catalogue-')
        store = (sqlite.SQLiteStore(path=os.path.join(directory, 'h.db'))
                 if kind == 'sqlite' else memory.MemoryStore())
        now = time.time()
        before = rss_mb()
        started = time.perf_counter()
        for index in range(count):
            store.write(evaluation_points(
                'old-%d' % index, PROFILES[index % len(PROFILES)],
                now - 2 * 86400 + index))
        write_s = time.perf_counter() - started
        store.write(evaluation_points('recent', 'web', now - 600))
        read_ms, returned = prior_read_ms(store, now, lookback)
        rows.append({'store': kind, 'earlier_evaluations': count,
                     'series': count * HOSTS * METRICS + HOSTS * METRICS,
                     'prior_read_ms': round(read_ms, 2),
                     'points_returned': returned,
                     'rss_added_mb': round(rss_mb() - before, 1),
                     'write_s': round(write_s, 1)})
        print('%-7s %6d earlier evaluations: prior read %9.2f ms '
              '(%d points), +%.0f MB' % (kind, count, read_ms, returned,
                                         rows[-1]['rss_added_mb']),
              flush=True)
        store.close()
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--evaluations', default='0,250,1000',
                        help='earlier evaluations per case, comma-separated')
    parser.add_argument('--stores', default='sqlite,memory')
    parser.add_argument('--output', default=RESULTS)
    args = parser.parse_args()
    counts = [int(c) for c in args.evaluations.split(',')]
    lookback = _lookback()
    load_at_start = os.getloadavg()
    rows = []
    for kind in args.stores.split(','):
        rows.extend(measure(kind, counts, lookback))
    results = {'benchmark': 'history_catalogue',
               'when': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
               'prior_lookback_s': lookback,
               'shadows_per_evaluation': HOSTS,
               'metrics_per_shadow': METRICS,
               'machine': benchlib.machine(load_at_start),
               'rows': rows}
    print()
    print('%-7s %9s %9s %14s %10s' % ('store', 'earlier', 'series',
                                      'prior read ms', 'RSS +MB'))
    for row in rows:
        print('%-7s %9d %9d %14.2f %10.1f' % (
            row['store'], row['earlier_evaluations'], row['series'],
            row['prior_read_ms'], row['rss_added_mb']))
    benchlib.print_load(load_at_start)
    benchlib.write_results(args.output, results)


if __name__ == '__main__':
    main()
