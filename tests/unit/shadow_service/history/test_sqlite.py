"""SQLite store behaviour beyond the contract: roll-up, retention, WAL,
sharing one file, clear errors."""

import json
import os
import sqlite3
import subprocess
import sys
import threading

import pytest
from oslo_config import cfg

from shadow_service.conf import history as history_conf
from shadow_service.history import base
from shadow_service.history import sqlite
from shadow_service.learners import drift

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))))
DAY = 86400
NOW = 1_700_000_000.0


def _metric(value, time_s, host='h1', measurement='host_metric'):
    return base.Point(measurement, {'host': host, 'metric': 'm'},
                      {'value': value}, time_s)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / 'history.sqlite')


def test_compaction_rolls_old_points_up_and_keeps_the_aggregates(path):
    store = sqlite.SQLiteStore(path=path, raw_retention_days=1,
                               rollup_interval_s=3600)
    old = NOW - 3 * DAY - (NOW % 3600)
    store.write([_metric(v, old + i * 600)
                 for i, v in enumerate([4.0, 1.0, 7.0, 2.0, 3.0, 6.0])])
    store.write([_metric(9.0, NOW - 60)])
    queries = {agg: store.query_series('host_metric', 'value', {},
                                       old, old + 3600, 3600, agg=agg)
               for agg in base.AGGREGATES}

    removed = store.compact(now=NOW)

    assert removed == 6
    for agg, before in queries.items():
        after = store.query_series('host_metric', 'value', {}, old,
                                   old + 3600, 3600, agg=agg)
        assert after.values == before.values, agg
    assert queries['last'].values == [6.0]
    assert len(store.query_points('host_metric')) == 1


def test_compacting_twice_merges_into_the_same_rollup_bucket(path):
    store = sqlite.SQLiteStore(path=path, raw_retention_days=1,
                               rollup_interval_s=3600)
    old = NOW - 3 * DAY - (NOW % 3600)
    store.write([_metric(2.0, old), _metric(4.0, old + 60)])
    store.compact(now=NOW)
    store.write([_metric(9.0, old + 120)])  # arrives late
    store.compact(now=NOW)

    series = store.query_series('host_metric', 'value', {}, old,
                                old + 3600, 3600)
    last = store.query_series('host_metric', 'value', {}, old, old + 3600,
                              3600, agg='last')

    assert series.values == [5.0]
    assert last.values == [9.0]


def test_rollups_expire_and_records_outlive_the_raw_retention(path):
    store = sqlite.SQLiteStore(path=path, raw_retention_days=1,
                               rollup_retention_days=10,
                               record_retention_days=30)
    store.write([_metric(1.0, NOW - 20 * DAY), _metric(1.0, NOW - 5 * DAY),
                 base.Point('scaling_decision', {'instance': 'young'},
                            {'record': '{}'}, NOW - 5 * DAY),
                 base.Point('scaling_decision', {'instance': 'old'},
                            {'record': '{}'}, NOW - 40 * DAY)])
    store.put_evaluation({'evaluation_id': 'e-young'}, when=NOW - 5 * DAY)

    store.compact(now=NOW)

    assert [p.tags['instance'] for p in
            store.query_points('scaling_decision')] == ['young']
    assert store.get_evaluation('e-young') == {'evaluation_id': 'e-young'}
    kept = store.query_series('host_metric', 'value', {}, NOW - 30 * DAY,
                              NOW, DAY)
    assert [v for v in kept.values if v is not None] == [1.0]


def test_zero_raw_retention_keeps_everything(path):
    store = sqlite.SQLiteStore(path=path, raw_retention_days=0)
    store.write([_metric(1.0, 0.0)])

    assert store.compact(now=NOW) == 0
    assert len(store.query_points('host_metric')) == 1


def test_database_is_in_wal_mode_and_shared_between_stores(path):
    writer = sqlite.SQLiteStore(path=path)
    reader = sqlite.SQLiteStore(path=path)
    reader.query_points('host_metric')  # loads its series catalogue

    writer.write([_metric(1.0, NOW, host='new-host')])

    assert reader.latest('host_metric', 'value') == {'new-host': (NOW, 1.0)}
    with sqlite3.connect(path) as db:
        assert db.execute('PRAGMA journal_mode').fetchone()[0] == 'wal'


def test_concurrent_writers_lose_nothing(path):
    store = sqlite.SQLiteStore(path=path)

    def write_host(host):
        for i in range(50):
            store.write([_metric(float(i), NOW + i, host=host)])

    threads = [threading.Thread(target=write_host, args=('h%d' % n,))
               for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(store.query_points('host_metric')) == 200
    assert store.counters()['written'] == 200


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(base.HistoryError, match='does not exist'):
        sqlite.SQLiteStore(path=str(tmp_path / 'nope' / 'h.sqlite'))


def test_a_file_that_is_not_sqlite_is_a_clear_error(tmp_path):
    bad = tmp_path / 'junk.sqlite'
    bad.write_bytes(b'this is not a database' * 100)

    with pytest.raises(base.HistoryError, match='cannot be used'):
        sqlite.SQLiteStore(path=str(bad))


def _sample(evaluation, time_s, profile='web', value=1.0):
    return base.Point('shadow_sample', {
        'evaluation': evaluation, 'shadow': 's-' + evaluation, 'host': 'h1',
        'profile': profile, 'metric': 'm'}, {'value': value}, time_s)


def _window_series(store, start):
    return store._matching_series('shadow_sample', {'profile': 'web'},
                                  base.time_to_us(start))


def test_a_windowed_read_looks_only_at_series_written_since(path):
    store = sqlite.SQLiteStore(path=path)
    store.write([_sample('old-%d' % i, NOW - 2 * DAY + i)
                 for i in range(50)])
    store.write([_sample('recent', NOW - 60, value=5.0)])
    # Points written late into an old series do not move it back.
    store.write([_sample('recent', NOW - 10 * DAY, value=7.0)])

    considered = _window_series(store, NOW - DAY)
    assert [tags['evaluation'] for tags in considered.values()] == [
        'recent']
    found = store.query_points('shadow_sample', {'profile': 'web'},
                               start=NOW - DAY, end=NOW)
    assert [(p.tags['evaluation'], p.fields['value']) for p in found] == [
        ('recent', 5.0)]
    # Without a start every series is read.
    assert len(store.query_points('shadow_sample')) == 52
    # Windows in the past read the series written then.
    assert store.query_series('shadow_sample', 'value', {}, NOW - 3 * DAY,
                              NOW - DAY, 2 * DAY).values == [1.0]
    assert store.query_series('shadow_sample', 'value', {},
                              NOW - 11 * DAY, NOW - 9 * DAY,
                              2 * DAY).values == [7.0]


def test_a_series_another_store_opens_is_read_in_a_window(path):
    reader = sqlite.SQLiteStore(path=path)
    reader.write([_sample('first', NOW - 60)])
    assert len(_window_series(reader, NOW - DAY)) == 1
    writer = sqlite.SQLiteStore(path=path)
    writer.write([_sample('second', NOW - 30)])
    assert sorted(tags['evaluation'] for tags in _window_series(
        reader, NOW - DAY).values()) == ['first', 'second']


def test_a_database_from_before_last_written_is_upgraded(path):
    # The layout before series.last_us, with a series and its points.
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE series (id INTEGER PRIMARY KEY,
            measurement TEXT NOT NULL, tags TEXT NOT NULL,
            UNIQUE (measurement, tags));
        CREATE TABLE points (series_id INTEGER NOT NULL,
            field TEXT NOT NULL, time_us INTEGER NOT NULL, value,
            PRIMARY KEY (series_id, field, time_us)) WITHOUT ROWID;
        INSERT INTO series VALUES (1, 'host_metric',
                                   '{"host": "h1", "metric": "m"}');
        INSERT INTO series VALUES (2, 'host_metric',
                                   '{"host": "h2", "metric": "m"}');
    """)
    db.executemany('INSERT INTO points VALUES (1, ?, ?, ?)', [
        ('value', base.time_to_us(NOW - 3 * DAY), 1.0),
        ('value', base.time_to_us(NOW - 60), 2.0)])
    db.commit()
    db.close()

    store = sqlite.SQLiteStore(path=path)
    rows = dict(store._db.execute('SELECT id, last_us FROM series'))
    assert rows == {1: base.time_to_us(NOW - 60), 2: 0}
    found = store.query_points('host_metric', start=NOW - DAY, end=NOW)
    assert [(p.tags['host'], p.fields['value']) for p in found] == [
        ('h1', 2.0)]
    # Opening it again changes nothing.
    sqlite.SQLiteStore(path=path).close()
    assert dict(store._db.execute('SELECT id, last_us FROM series')) == rows


def _catalogue_entries(store):
    """Entries in the store's in-memory catalogue structures."""
    return sum(len(value) for value in vars(store).values()
               if isinstance(value, (dict, list, set)))


def test_the_in_memory_catalogue_stays_bounded(path):
    store = sqlite.SQLiteStore(path=path, series_cache_size=50)
    for batch in range(20):  # 2,000 series, 40 times the cache
        store.write([_sample('e%d-%d' % (batch, i), NOW - 2 * DAY + i,
                             profile='web' if i % 2 else 'db',
                             value=float(batch * 100 + i))
                     for i in range(100)])
        store.write([_metric(float(batch), NOW - 60, host='h%d' % batch)])

    assert _catalogue_entries(store) <= 2 * 50
    # Series long out of the cache are read, and written, as before.
    assert [p.fields['value'] for p in store.query_points(
        'shadow_sample', {'evaluation': 'e0-1'})] == [1.0]
    assert len(store.query_points('shadow_sample', {'profile': 'web'},
                                  start=NOW - 3 * DAY, end=NOW)) == 1000
    assert store.latest('host_metric', 'value')['h0'] == (NOW - 60, 0.0)
    store.write([_sample('e0-1', NOW - 30, value=9.0)])
    assert [p.fields['value'] for p in store.query_points(
        'shadow_sample', {'evaluation': 'e0-1'}, start=NOW - DAY,
        end=NOW)] == [9.0]
    assert store._db.execute('SELECT count(*) FROM series').fetchone()[
        0] == 2020
    assert _catalogue_entries(store) <= 2 * 50


def test_the_series_cache_size_is_an_option(path):
    conf = cfg.ConfigOpts()
    history_conf.register_opts(conf)
    conf([], project='nova-shadow-test', default_config_files=[])
    assert sqlite.SQLiteStore(conf, path=path)._series_cache_size == \
        sqlite.SERIES_CACHE_SIZE
    conf.set_override('sqlite_series_cache_size', 3, group='history')
    store = sqlite.SQLiteStore(conf, path=path)
    store.write([_sample('e%d' % i, NOW - 30, value=float(i))
                 for i in range(10)])

    assert _catalogue_entries(store) <= 2 * 3
    assert len(store.query_points('shadow_sample')) == 10
    # The constructor's argument still wins over the option.
    assert sqlite.SQLiteStore(conf, path=path,
                              series_cache_size=7)._series_cache_size == 7


def test_a_store_reads_series_other_stores_write_after_it(path):
    reader = sqlite.SQLiteStore(path=path, series_cache_size=2)
    writer = sqlite.SQLiteStore(path=path, series_cache_size=2)
    reader.write([_sample('first', NOW - 60)])
    writer.write([_sample('e%d' % i, NOW - 30, value=float(i))
                  for i in range(5)])
    reader.write([_sample('e4', NOW - 20, value=7.0)])

    found = reader.query_points('shadow_sample', {'evaluation': 'e4'})
    assert [p.fields['value'] for p in found] == [4.0, 7.0]
    assert len(writer.query_points('shadow_sample')) == 7


def _catalogue_of_a_process(tmp_path, hash_seed):
    """The ``series`` table a new process writes, with Python's string
    hashing seeded with ``hash_seed``."""
    path = tmp_path / ('seed-%s.sqlite' % hash_seed)
    script = (
        'from shadow_service.history import base, sqlite\n'
        'store = sqlite.SQLiteStore(path=%r)\n'
        'store.write([base.Point("host_metric", {"host": "h%%d" %% i,'
        ' "metric": "m"}, {"value": 1.0}, %r) for i in range(40)])\n'
        % (str(path), NOW))
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed),
               PYTHONPATH=REPO + os.pathsep + os.environ.get(
                   'PYTHONPATH', ''))
    subprocess.run([sys.executable, '-c', script], check=True, env=env,
                   cwd=REPO)
    with sqlite3.connect(path) as db:
        return db.execute(
            'SELECT id, measurement, tags FROM series ORDER BY id').fetchall()


def test_series_ids_are_the_same_whatever_the_hash_seed(tmp_path):
    # The series one write opens are numbered in the order of its points,
    # so the same writes give the same file in every process.
    first = _catalogue_of_a_process(tmp_path, 1)
    assert len(first) == 40
    assert [json.loads(tags)['host'] for _, _, tags in first] == [
        'h%d' % i for i in range(40)]
    assert _catalogue_of_a_process(tmp_path, 2) == first


def _record(evaluation_id, time_s, status='finished'):
    return base.Point('evaluation', {'evaluation': evaluation_id,
                                     'status': status},
                      {'record': '{"at": %r}' % time_s}, time_s)


def _seen(points):
    return [(p.time, p.tags, p.fields) for p in points]


def test_the_newest_points_are_found_whichever_series_hold_them(path):
    # Series written minutes apart (more than series.last_us may lag),
    # one of them written to over and over, and windows that leave out
    # the series written last: the newest points are still exactly the
    # tail of the full read.
    store = sqlite.SQLiteStore(path=path)
    store.write([_record('e%02d' % i, NOW + 600 * i) for i in range(20)])
    store.write([_record('busy', NOW + 7 * 600 + 30 * i, 'running')
                 for i in range(40)])
    store.write([_record('e%02d' % i, NOW + 600 * i + 1, 'deleted')
                 for i in range(0, 20, 3)])
    for start, end in [(None, None), (NOW, NOW + 20 * 600),
                       (NOW + 1200, NOW + 5000), (NOW + 3000, NOW + 9000),
                       (NOW + 4200, NOW + 4201), (None, NOW + 4300)]:
        everything = store.query_points('evaluation', start=start, end=end)
        for limit in (1, 2, 3, 5, 8, 13, 40, 70, 100):
            newest = store.query_points('evaluation', start=start, end=end,
                                        limit=limit)
            assert _seen(newest) == _seen(everything[-limit:]), (
                start, end, limit)


@pytest.mark.parametrize('value', ['plain', 'quote"d', 'back\\slash',
                                   'caf\u00e9 \u4e2d', 'a,b=c d', '"'])
def test_series_are_found_by_their_first_tag_whatever_its_value(path,
                                                                value):
    store = sqlite.SQLiteStore(path=path)
    store.write([_record(value, NOW), _record(value + 'x', NOW + 1),
                 _record('x' + value, NOW + 2), _record(value, NOW + 3,
                                                        'running')])

    found = store.query_points('evaluation', {'evaluation': value})
    several = store.query_points('evaluation',
                                 {'evaluation': [value, 'x' + value]})

    assert [p.time for p in found] == [NOW, NOW + 3]
    assert [p.time for p in several] == [NOW, NOW + 2, NOW + 3]
    assert store.get_evaluation(value) == {'at': NOW + 3}


def test_a_series_without_the_first_tag_is_still_found(path):
    # One series lacks the tag the others lead with: the lookup by range
    # would miss nothing it should find, but the store reads them all.
    store = sqlite.SQLiteStore(path=path)
    store.write([_record('e1', NOW),
                 base.Point('evaluation', {'status': 'finished'},
                            {'record': '{}'}, NOW + 1),
                 base.Point('evaluation', {'a': 'b', 'evaluation': 'e1'},
                            {'record': '{}'}, NOW + 2)])

    found = store.query_points('evaluation', {'evaluation': 'e1'})
    absent = store.query_points('evaluation', {'evaluation': ['', 'e9']})

    assert [p.time for p in found] == [NOW, NOW + 2]
    assert [p.tags for p in absent] == [{'status': 'finished'}]


def _steps(store, read):
    """SQLite virtual machine steps (in hundreds) ``read`` takes: the
    work of its queries, whatever the machine's speed."""
    steps = [0]

    def count():
        steps[0] += 1
        return 0

    store._db.set_progress_handler(count, 100)
    try:
        read()
    finally:
        store._db.set_progress_handler(None, 100)
    return steps[0]


def test_the_newest_points_cost_the_same_however_long_the_window(tmp_path):
    # Records ten seconds apart: 500 or 5000 of them in the window; the
    # newest 50 (and those of one evaluation) are found with the same
    # work, while reading the whole window grows with it.
    def work(count):
        store = sqlite.SQLiteStore(path=str(tmp_path / ('%d.db' % count)))
        store.write([base.Point('evaluation', {
            'evaluation': 'e%05d' % i, 'status': status},
            {'record': 'x' * 2000}, NOW + 10 * i + offset)
            for i in range(count)
            for offset, status in ((0, 'running'), (5, 'finished'))])
        end = NOW + 10 * count
        newest = _steps(store, lambda: store.query_points(
            'evaluation', start=NOW, end=end, limit=50))
        one = _steps(store, lambda: store.query_points(
            'evaluation', {'evaluation': ['e00007', 'e00003']},
            start=NOW, end=end))
        everything = _steps(store, lambda: store.query_points(
            'evaluation', start=NOW, end=end))
        store.close()
        return newest, one, everything

    short, long = work(500), work(5000)

    assert long[0] <= short[0] * 1.2 + 2, (short, long)
    assert long[1] <= short[1] * 1.2 + 2, (short, long)
    assert long[2] > short[2] * 5, (short, long)


def _reads_of_a_busy_window(store, old):
    """What a read of :func:`test_reads_of_many_series_need_few_sql_
    variables`'s history returns, by read."""
    learner = drift.AgeDriftLearner(store, lookback_s=DAY,
                                    max_evaluations=100,
                                    clock=lambda: NOW + 1300)
    wanted = ['e%03d' % i for i in range(0, 120, 2)]
    reads = {
        'window': lambda: _seen(store.query_points(
            'shadow_sample', start=NOW - DAY, end=NOW + DAY)),
        'everything': lambda: _seen(store.query_points('evaluation')),
        'by tag': lambda: _seen(store.query_points(
            'shadow_sample', {'evaluation': wanted})),
        'series': lambda: [store.query_series(
            'shadow_sample', 'value', {}, start, start + 1200, 60,
            agg=agg).values for start in (old, NOW)
            for agg in base.AGGREGATES],
        'evaluation': lambda: store.get_evaluation('busy'),
        'records': learner.records,
        'runs': learner.runs}
    for limit in (1, 49, 51, 200, 1000):
        reads['newest %d' % limit] = lambda limit=limit: _seen(
            store.query_points('evaluation', start=NOW - DAY,
                               end=NOW + DAY, limit=limit))
    return {name: read() for name, read in reads.items()}


def test_reads_of_many_series_need_few_sql_variables(path):
    # SQLite builds may allow far fewer bound variables per statement
    # than this one (999 before SQLite 3.32): every read over a busy
    # window (each evaluation's shadows are series of their own) still
    # works, and answers as it does without the limit.
    store = sqlite.SQLiteStore(path=path, raw_retention_days=1)
    old = NOW - 2 * DAY
    for start in (old, NOW):
        store.write([point for i in range(120) for point in (
            _record('e%03d' % i, start + 10 * i, 'running'),
            _record('e%03d' % i, start + 10 * i + 5)) + tuple(
            _sample('e%03d' % i, start + 10 * i + k, profile,
                    value=(i + k) % 7)
            for k in range(1, 5) for profile in ('web', 'db'))])
    store.write([_record('busy', NOW + i, 'status-%02d' % i)
                 for i in range(60)])
    store.compact(now=NOW)  # the old samples are in roll-ups now
    unlimited = _reads_of_a_busy_window(store, old)
    assert len(store._matching_series('shadow_sample', {})) == 240
    assert len(unlimited['records']) == 100
    assert unlimited['runs']
    # A limit applies to the statements prepared after it is set.
    limited = sqlite.SQLiteStore(path=path)
    limited._db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 50)

    found = _reads_of_a_busy_window(limited, old)

    for name, answer in unlimited.items():
        assert found[name] == answer, name


def _locked_store(tmp_path, busy_timeout):
    """A store on a file, opened with ``[history] sqlite_busy_timeout``."""
    conf = cfg.ConfigOpts()
    history_conf.register_opts(conf)
    conf([], default_config_files=[])
    conf.set_override('sqlite_path', str(tmp_path / 'history.sqlite'),
                      group='history')
    conf.set_override('sqlite_busy_timeout', busy_timeout, group='history')
    return sqlite.SQLiteStore(conf)


def test_a_locked_file_fails_after_the_busy_timeout(tmp_path):
    # [history] sqlite_busy_timeout: how long a write waits for a file
    # another connection holds locked, then it fails with the store's own
    # error, which callers of every store handle (the listener of Nova's
    # notifications requeues, the service answers "history unavailable").
    import time

    store = _locked_store(tmp_path, 0.5)
    point = base.Point('host_metric', {'host': 'h1'}, {'value': 1.0},
                       time=1000.0)
    locker = sqlite3.connect(store.path, isolation_level=None)
    locker.execute('BEGIN IMMEDIATE')
    try:
        started = time.monotonic()
        with pytest.raises(base.HistoryError, match='locked'):
            store.write([point])
        waited = time.monotonic() - started
        assert 0.4 <= waited < 10.0
        with pytest.raises(base.HistoryError, match='locked'):
            store.put_evaluation({'evaluation_id': 'e1'}, when=1000.0)
        with pytest.raises(base.HistoryError, match='locked'):
            store.compact(now=1000.0 + 400 * 86400)
    finally:
        locker.execute('ROLLBACK')
        locker.close()
    store.write([point])        # and works again once the lock is gone
    assert store.query_points('host_metric') == [point]
    store.close()

