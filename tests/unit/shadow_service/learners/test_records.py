"""The learners' reads of evaluation records and shadow samples: bounded
by what they keep, and exactly what reading the whole window and
trimming it gave (memory, SQLite and a real InfluxDB)."""

import collections
import json
import random

import hypothesis
import pytest
from hypothesis import strategies as st

from shadow_service import measurements as names
from shadow_service.history import base
from shadow_service.history import memory
from shadow_service.history import sqlite
from shadow_service.learners import base as learners_base
from shadow_service.learners import drift as drift_mod
from tests.unit.shadow_service.history import conftest as history_conftest

HOUR = 3600.0
STATUSES = ('running', 'finished', 'deleted')
PROFILES = ('web', 'db-oltp')
HOSTS = ('node-1', 'node-2', 'node-3')
_CASES = iter(range(1, 10 ** 6))


def _counting(store_class):
    """A real store that counts the points its reads return."""

    class Counting(store_class):
        def query_points(self, measurement, *args, **kwargs):
            found = super().query_points(measurement, *args, **kwargs)
            self.returned[measurement] += len(found)
            return found

    return Counting


@pytest.fixture(params=['memory', 'sqlite', 'influxdb'])
def store(request, tmp_path):
    """Each history store in turn, empty, counting the points read."""
    if request.param == 'memory':
        made = _counting(memory.MemoryStore)()
    elif request.param == 'sqlite':
        made = _counting(sqlite.SQLiteStore)(
            path=str(tmp_path / 'history.sqlite'))
    else:
        server = request.getfixturevalue('influxdb_server')
        made = history_conftest.make_influx_store(server)
        made.__class__ = _counting(type(made))
    made.returned = collections.Counter()
    yield made
    made.close()


# -- the reads as they were: everything in the window, then trimmed ------

def old_records(history, now, lookback_s, count):
    raw = {}
    for point in history.query_points(names.EVALUATION,
                                      start=now - lookback_s, end=now + 1.0):
        record = point.fields.get(names.FIELD_RECORD)
        if record:
            raw[point.tags.get(names.TAG_EVALUATION)] = record
    records = []
    for evaluation_id in list(raw)[-count:]:
        try:
            records.append((evaluation_id, json.loads(raw[evaluation_id])))
        except (TypeError, ValueError):
            pass
    return records


def old_runs(history, now, lookback_s, count):
    workloads = {}
    for evaluation_id, record in old_records(history, now, lookback_s,
                                             count):
        request = record.get('request') or {}
        profile = request.get('profile')
        if not isinstance(profile, str):
            profile = (profile or {}).get('name')
        workloads[evaluation_id] = learners_base.workload_key(request,
                                                              profile)
    return drift_mod.group_runs(history.query_points(
        names.SHADOW_SAMPLE, start=now - lookback_s, end=now + 1.0),
        workloads)


# -- histories -------------------------------------------------------------

def _record_text(evaluation_id, status, kind, profile, vcpus):
    if kind == 'empty':
        return ''
    if kind == 'broken':
        return '{not json'
    return json.dumps({'evaluation_id': evaluation_id, 'status': status,
                       'request': {'profile': profile,
                                   'flavor': {'vcpus': vcpus}}})


def write_history(store, evaluations, base_time, *, samples=True):
    """Write ``evaluations``: ``(number, [(status, offset_s, kind)],
    profile index)`` each; an evaluation's points may share their time
    with others', repeat a status, come before the window or be
    tombstones long after the run.  Samples: one run per host, between
    the evaluation's first and last record."""
    points = []
    for number, writes, profile in evaluations:
        evaluation_id = 'ev-%d' % number
        offsets = []
        for status, offset, kind in writes:
            offsets.append(offset)
            points.append(base.Point(
                names.EVALUATION,
                {names.TAG_EVALUATION: evaluation_id,
                 names.TAG_STATUS: status},
                {names.FIELD_RECORD: _record_text(
                    evaluation_id, status, kind, PROFILES[profile],
                    2 + profile)},
                base_time + offset))
        if not samples:
            continue
        rng = random.Random(number)
        first, last = min(offsets), max(offsets)
        for host in HOSTS:
            for index in range(4):
                points.append(base.Point(names.SHADOW_SAMPLE, {
                    names.TAG_EVALUATION: evaluation_id,
                    names.TAG_HOST: host,
                    names.TAG_PROFILE: PROFILES[profile],
                    names.TAG_METRIC: 'cpu_ops_per_s'},
                    {names.FIELD_VALUE: 1000.0 * (1 + 0.1 * rng.random())},
                    base_time + first + (last - first) * index / 3.0))
    store.write(points)
    assert store.flush(timeout=30)


_WRITE = st.tuples(st.sampled_from(STATUSES), st.integers(-5, 40),
                   st.sampled_from(['json', 'json', 'json', 'empty',
                                    'broken']))
_EVALUATIONS = st.lists(
    st.tuples(st.integers(0, 30), st.lists(_WRITE, min_size=1, max_size=3),
              st.integers(0, 1)),
    min_size=1, max_size=30)


@hypothesis.settings(
    max_examples=60, deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(evaluations=_EVALUATIONS, count=st.integers(1, 12),
                  page_size=st.integers(1, 9))
def test_newest_records_are_what_reading_everything_kept(
        store, evaluations, count, page_size):
    # Records at the same time, an evaluation recorded again (later, at
    # the same time under another status, or the same point twice),
    # records before the window, empty and broken ones; pages small
    # enough that most answers take several.
    base_time = 1_700_000_000.0 + 1000 * next(_CASES)
    write_history(store, evaluations, base_time, samples=False)
    now, lookback = base_time + 40, 40.0

    raw = learners_base.newest_records(store, now - lookback, now + 1.0,
                                       count, page_size=page_size)
    learner = drift_mod.AgeDriftLearner(store, lookback_s=lookback,
                                        max_evaluations=count,
                                        clock=lambda: now)

    expected = old_records(store, now, lookback, count)
    assert learner.records() == expected
    assert [(e, json.loads(text)) for e, text in raw
            if text.startswith('{"')] == expected


def test_records_and_runs_of_a_busy_history_are_unchanged(store):
    # 600 evaluations, a few seconds apart and overlapping (each recorded
    # running, then finished, some deleted much later), with their
    # samples; the learners keep the newest 50.
    rng = random.Random(7)
    evaluations = []
    for number in range(600):
        started = number * 5 + rng.randrange(3)
        writes = [('running', started, 'json'),
                  ('finished', started + rng.randrange(1, 40), 'json')]
        if number % 37 == 0:
            writes.append(('deleted', 3200 + number % 5, 'json'))
        evaluations.append((number, writes, number % 2))
    base_time = 1_700_000_000.0
    write_history(store, evaluations, base_time)
    now = base_time + 3300
    for lookback in (3300.0, 2000.0):
        learner = drift_mod.AgeDriftLearner(
            store, lookback_s=lookback, max_evaluations=50,
            clock=lambda: now)

        assert learner.records() == old_records(store, now, lookback, 50)
        assert learner.runs() == old_runs(store, now, lookback, 50)


def test_the_reads_do_not_grow_with_the_window(store):
    # The same newest evaluations, behind 100 or 1000 older ones in the
    # window: the learner reads the same points.
    def points_read(earlier):
        base_time = 1_700_000_000.0 + 10 ** 6 * next(_CASES)
        evaluations = [(number, [('running', 3 * number, 'json'),
                                 ('finished', 3 * number + 2, 'json')], 0)
                       for number in range(earlier + 40)]
        write_history(store, evaluations, base_time)
        now = base_time + 3 * (earlier + 40)
        learner = drift_mod.AgeDriftLearner(
            store, lookback_s=now - base_time, max_evaluations=30,
            clock=lambda: now)
        store.returned.clear()
        runs = learner.runs()
        assert len(runs['cpu_ops_per_s']) == len(HOSTS)
        return dict(store.returned)

    few, many = points_read(100), points_read(1000)

    assert many == few
    # The newest page of records (and the earlier records of the few
    # evaluations running across its oldest time), and the samples of
    # the 30 kept.
    assert few[names.EVALUATION] <= 2 * 30 + 64 + 5
    assert few[names.SHADOW_SAMPLE] == 30 * len(HOSTS) * 4
