"""What a learner's refit reads, as the look-back window fills.

Writes N evaluations into the look-back window (each recorded
``running``, then ``finished``, a record of about 1.5 kB, with 16 shadow
samples: 2 hosts, 2 metrics, 4 samples) and times the age drift
learner's refit read: its newest ``max_evaluations`` (500) records, then
their samples.  ``before`` is the read as the learners made it until now,
written out here (every record of the window, trimmed; then every sample
of the window, filtered), measured in the same run on the same store;
``after`` is ``AgeDriftLearner.records()`` and ``runs()``.  Both return
the same records and runs (checked).  Points read are counted as the
store returns them.

With ``--learner calibration`` each evaluation also has a recorded
outcome (one ``ranking_outcome`` point) and the calibration learner's
refit read is timed instead: ``before`` is its read until now, written
out here (its newest records, then every outcome of the window),
``after`` is ``CalibrationLearner.training_pairs()`` without harvesting
(the outcomes of the newest ``max_evaluations`` evaluations with one, a
page at a time).  ``after`` equals ``before`` trimmed to those
evaluations (checked); ``pairs_before`` says how many ``before`` kept.

Stores: ``sqlite`` (the default store, on a file) and ``influxdb`` (its
own ``influxd`` on loopback, Debian's ``influxdb``).

Usage::

    nice -n 5 python benchmarks/learner_reads.py [--evaluations 1000,10000]
        [--learner drift|calibration]

Prints a table and writes ``benchmarks/results/learner_reads.json``
(``learner_reads-calibration.json`` for the calibration learner).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import benchlib  # noqa: E402

from shadow_service import hostfacts  # noqa: E402
from shadow_service import measurements as names  # noqa: E402
from shadow_service.history import base  # noqa: E402
from shadow_service.history import influxdb  # noqa: E402
from shadow_service.history import sqlite  # noqa: E402
from shadow_service.learners import base as learners_base  # noqa: E402
from shadow_service.learners import calibration  # noqa: E402
from shadow_service.learners import drift  # noqa: E402
from tests.fixtures import influxdb as influxdb_fixture  # noqa: E402

LOOKBACK_S = 86400.0
MAX_EVALUATIONS = 500
HOSTS = ('node-01', 'node-02')
METRICS = ('cpu_ops_per_s', 'disk_read_iops')
SAMPLES = 4
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       'results', 'learner_reads.json')


def _counting(store_class):
    """The store, counting the points its reads return."""

    class Counting(store_class):
        def query_points(self, measurement, *args, **kwargs):
            found = super().query_points(measurement, *args, **kwargs)
            self.returned += len(found)
            return found

    return Counting


def record(evaluation_id, status, number):
    return {'evaluation_id': evaluation_id, 'status': status,
            'request': {'profile': 'web', 'profile_scale': 1.0,
                        'flavor': {'vcpus': 2, 'ram_mb': 4096}},
            'hosts': [{'host': 'node-%02d' % host, 'score': 50.0 + host,
                       'confidence': 0.8, 'metrics': {
                           'cpu_ops_per_s': 1000.0 + number % 97,
                           'disk_read_iops': 300.0 + host}}
                      for host in range(16)]}


def write_window(store, count, now, outcomes=False):
    """``count`` evaluations spread over the look-back window (with a
    recorded outcome each when ``outcomes``)."""
    spacing = 0.9 * LOOKBACK_S / count
    for first in range(0, count, 1000):
        points = []
        for number in range(first, min(count, first + 1000)):
            evaluation_id = 'ev-%06d' % number
            started = now - LOOKBACK_S + 60 + number * spacing
            for status, offset in (('running', 0.0), ('finished', 30.0)):
                points.append(base.evaluation_point(
                    record(evaluation_id, status, number),
                    started + offset))
            for host in HOSTS:
                for metric in METRICS:
                    for sample in range(SAMPLES):
                        points.append(base.Point(names.SHADOW_SAMPLE, {
                            names.TAG_EVALUATION: evaluation_id,
                            names.TAG_HOST: host,
                            names.TAG_PROFILE: 'web',
                            names.TAG_METRIC: metric},
                            {names.FIELD_VALUE: 1000.0 + sample + number % 7},
                            started + 5.0 + 5.0 * sample))
            if outcomes:
                points.append(base.Point(names.RANKING_OUTCOME, {
                    names.TAG_EVALUATION: evaluation_id,
                    names.TAG_HOST: HOSTS[0]},
                    {names.FIELD_CONFIDENCE: 0.5 + (number % 50) / 100.0,
                     names.FIELD_OUTCOME: float(number % 3 != 0)},
                    started + 40.0))
        store.write(points)
    store.flush(timeout=600)


# -- the read as it was: the whole window, then trimmed ------------------

def old_records(history, now):
    raw = {}
    for point in history.query_points(names.EVALUATION,
                                      start=now - LOOKBACK_S, end=now + 1.0):
        text = point.fields.get(names.FIELD_RECORD)
        if text:
            raw[point.tags.get(names.TAG_EVALUATION)] = text
    return [(evaluation_id, json.loads(raw[evaluation_id]))
            for evaluation_id in list(raw)[-MAX_EVALUATIONS:]]


def old_runs(history, now):
    workloads = {}
    for evaluation_id, kept in old_records(history, now):
        request = kept.get('request') or {}
        workloads[evaluation_id] = learners_base.workload_key(
            request, request.get('profile'))
    return drift.group_runs(history.query_points(
        names.SHADOW_SAMPLE, start=now - LOOKBACK_S, end=now + 1.0),
        workloads)


def old_training_pairs(learner, history, now):
    """The calibration learner's refit read as it was: its records, then
    every recorded outcome of the window (without harvesting)."""
    records = learner.records()
    shares = {evaluation_id: hostfacts.allocated_ram_share(
        kept.get('host_features')) for evaluation_id, kept in records}
    recorded = {}
    for point in history.query_points(
            names.RANKING_OUTCOME, start=now - LOOKBACK_S, end=now + 1.0):
        confidence = point.fields.get(names.FIELD_CONFIDENCE)
        outcome = point.fields.get(names.FIELD_OUTCOME)
        if confidence is None or outcome is None:
            continue
        evaluation_id = point.tags.get(names.TAG_EVALUATION)
        recorded[evaluation_id] = (float(confidence), float(outcome),
                                   shares.get(evaluation_id))
    return list(recorded.values())


def measure_calibration(kind, store, count, now, repeats):
    learner = calibration.CalibrationLearner(
        store, lookback_s=LOOKBACK_S, max_evaluations=MAX_EVALUATIONS,
        harvest=False, clock=lambda: now)
    row = {'store': kind, 'evaluations_in_window': count}
    answers = {}
    for name, read in (
            ('pairs_before', lambda: old_training_pairs(learner, store,
                                                        now)),
            ('pairs_after', learner.training_pairs)):
        ms, returned, answers[name] = timed(store, read, repeats)
        row[name + '_ms'] = round(ms, 1)
        row[name + '_points_read'] = returned
        row[name] = len(answers[name])
    row['identical'] = (answers['pairs_after']
                        == answers['pairs_before'][-MAX_EVALUATIONS:])
    print('%-8s %6d evaluations: training pairs %8.1f -> %6.1f ms '
          '(%d -> %d points, %d -> %d pairs), %s' % (
              kind, count, row['pairs_before_ms'], row['pairs_after_ms'],
              row['pairs_before_points_read'],
              row['pairs_after_points_read'], row['pairs_before'],
              row['pairs_after'],
              'identical' if row['identical'] else 'DIFFERENT'),
          flush=True)
    return row


def timed(store, read, repeats):
    timings, answer = [], None
    for _ in range(repeats):
        store.returned = 0
        started = time.perf_counter()
        answer = read()
        timings.append(1000 * (time.perf_counter() - started))
    return statistics.median(timings), store.returned, answer


def measure(kind, store, count, now, repeats):
    learner = drift.AgeDriftLearner(store, lookback_s=LOOKBACK_S,
                                    max_evaluations=MAX_EVALUATIONS,
                                    clock=lambda: now)
    row = {'store': kind, 'evaluations_in_window': count}
    for name, read in (
            ('records_before', lambda: old_records(store, now)),
            ('records_after', learner.records),
            ('runs_before', lambda: old_runs(store, now)),
            ('runs_after', learner.runs)):
        ms, returned, answer = timed(store, read, repeats)
        row[name + '_ms'] = round(ms, 1)
        row[name + '_points_read'] = returned
        row.setdefault('answers', {})[name] = answer
    answers = row.pop('answers')
    row['identical'] = (
        answers['records_before'] == answers['records_after']
        and answers['runs_before'] == answers['runs_after'])
    print('%-8s %6d evaluations: records %8.1f -> %6.1f ms (%d -> %d '
          'points), runs %8.1f -> %6.1f ms (%d -> %d points), %s' % (
              kind, count, row['records_before_ms'],
              row['records_after_ms'], row['records_before_points_read'],
              row['records_after_points_read'], row['runs_before_ms'],
              row['runs_after_ms'], row['runs_before_points_read'],
              row['runs_after_points_read'],
              'identical' if row['identical'] else 'DIFFERENT'),
          flush=True)
    return row


def run_sqlite(counts, repeats, learner='drift'):
    rows = []
    for count in counts:
        directory = tempfile.mkdtemp(prefix='learner-reads-')
        store = _counting(sqlite.SQLiteStore)(
            path=os.path.join(directory, 'h.db'))
        now = time.time()
        write_window(store, count, now, outcomes=learner == 'calibration')
        rows.append(MEASURES[learner]('sqlite', store, count, now, repeats))
        store.close()
        os.remove(os.path.join(directory, 'h.db'))
    return rows


def run_influxdb(counts, repeats, learner='drift'):
    rows = []
    server = influxdb_fixture.InfluxDBServer().start()
    try:
        for count in counts:
            store = _counting(influxdb.InfluxDBStore)(
                url=server.url, database='learner_reads_%d' % count,
                timeout_s=300)
            now = time.time()
            write_window(store, count, now,
                         outcomes=learner == 'calibration')
            rows.append(MEASURES[learner]('influxdb', store, count, now,
                                          repeats))
            store.close()
    finally:
        server.cleanup()
    return rows


MEASURES = {'drift': measure, 'calibration': measure_calibration}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--evaluations', default='1000,10000,50000',
                        help='evaluations in the window per case, '
                        'comma-separated')
    parser.add_argument('--stores', default='sqlite,influxdb')
    parser.add_argument('--repeats', type=int, default=3,
                        help='reads per figure (the median is kept)')
    parser.add_argument('--learner', choices=sorted(MEASURES),
                        default='drift',
                        help='whose refit read to time')
    parser.add_argument('--output')
    args = parser.parse_args()
    output = args.output or (RESULTS if args.learner == 'drift' else
                             RESULTS.replace('.json',
                                             '-%s.json' % args.learner))
    counts = [int(c) for c in args.evaluations.split(',')]
    load_at_start = os.getloadavg()
    rows = []
    for kind in args.stores.split(','):
        rows.extend({'sqlite': run_sqlite, 'influxdb': run_influxdb}[kind](
            counts, args.repeats, args.learner))
    results = {'benchmark': 'learner_reads', 'learner': args.learner,
               'when': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
               'lookback_s': LOOKBACK_S,
               'max_evaluations': MAX_EVALUATIONS,
               'records_per_evaluation': 2,
               'samples_per_evaluation': len(HOSTS) * len(METRICS) * SAMPLES,
               'repeats': args.repeats,
               'machine': benchlib.machine(load_at_start),
               'rows': rows}
    if args.learner == 'calibration':
        print('load average at start %s, at end %s' % (
            ' '.join('%.2f' % v for v in load_at_start),
            ' '.join('%.2f' % v for v in os.getloadavg())))
        benchlib.write_results(output, results)
        return
    print()
    print('%-8s %7s  %-22s %-22s %-22s %-22s' % (
        'store', 'window', 'records ms (before)', 'records ms (after)',
        'runs ms (before)', 'runs ms (after)'))
    for row in rows:
        print('%-8s %7d  %8.1f %7d pts   %8.1f %7d pts   %8.1f %7d pts   '
              '%8.1f %7d pts' % (
                  row['store'], row['evaluations_in_window'],
                  row['records_before_ms'],
                  row['records_before_points_read'],
                  row['records_after_ms'], row['records_after_points_read'],
                  row['runs_before_ms'], row['runs_before_points_read'],
                  row['runs_after_ms'], row['runs_after_points_read']))
    benchlib.print_load(load_at_start)
    benchlib.write_results(output, results)


if __name__ == '__main__':
    main()
