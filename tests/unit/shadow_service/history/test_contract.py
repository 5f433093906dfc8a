"""The contract every history store keeps: memory, SQLite, real InfluxDB.

The same tests run against each store (the ``store`` fixture), so the
stores answer alike and the analyzer and watcher need not care which one
is configured.
"""

import math
import uuid

import hypothesis
import pytest
from hypothesis import strategies as st

from shadow_service.history import base

T0 = 1_700_000_000.0


def sample(host, value, time_s, metric='cpu_ops_per_s', **tags):
    return base.Point('host_metric', {'host': host, 'metric': metric, **tags},
                      {'value': value}, time_s)


def write_all(store, points):
    store.write(points)
    assert store.flush(timeout=30)


def test_written_points_are_read_back_in_time_order(store):
    points = [sample('h1', 2.0, T0 + 2), sample('h1', 1.0, T0 + 1),
              sample('h2', 5.0, T0 + 3)]
    write_all(store, points)

    found = store.query_points('host_metric', {'host': 'h1'})

    assert [(p.time, p.fields['value']) for p in found] == [
        (T0 + 1, 1.0), (T0 + 2, 2.0)]
    assert found[0].tags == {'host': 'h1', 'metric': 'cpu_ops_per_s'}
    assert found[0].measurement == 'host_metric'


def test_reads_see_earlier_writes_without_a_flush(store):
    store.write([sample('h1', 1.0, T0)])

    assert len(store.query_points('host_metric')) == 1
    assert store.latest('host_metric', 'value') == {'h1': (T0, 1.0)}


def test_query_points_window_is_half_open(store):
    write_all(store, [sample('h1', float(i), T0 + i) for i in range(5)])

    found = store.query_points('host_metric', start=T0 + 1, end=T0 + 3)

    assert [p.time for p in found] == [T0 + 1, T0 + 2]


def test_unknown_measurement_or_tag_finds_nothing(store):
    write_all(store, [sample('h1', 1.0, T0)])

    assert store.query_points('instance_metric') == []
    assert store.query_points('host_metric', {'host': 'nope'}) == []


def test_series_is_a_regular_grid_with_none_for_empty_buckets(store):
    write_all(store, [sample('h1', 1.0, T0), sample('h1', 3.0, T0 + 30),
                      sample('h1', 10.0, T0 + 120)])

    series = store.query_series('host_metric', 'value', {'host': 'h1'},
                                T0, T0 + 240, 60)

    assert series.step_s == 60
    assert series.times == [T0, T0 + 60, T0 + 120, T0 + 180]
    assert series.values == [2.0, None, 10.0, None]


@pytest.mark.parametrize('agg, expected', [
    ('mean', 2.0), ('min', 1.0), ('max', 3.0), ('last', 3.0)])
def test_series_aggregates_each_bucket(store, agg, expected):
    write_all(store, [sample('h1', 1.0, T0 + 1), sample('h1', 2.0, T0 + 2),
                      sample('h1', 3.0, T0 + 3)])

    series = store.query_series('host_metric', 'value', {'host': 'h1'},
                                T0, T0 + 60, 60, agg=agg)

    assert series.values == [expected]


def test_series_grid_starts_at_an_unaligned_start(store):
    start = T0 + 7.5
    write_all(store, [sample('h1', 1.0, start), sample('h1', 2.0, start + 9),
                      sample('h1', 4.0, start + 10)])

    series = store.query_series('host_metric', 'value', {'host': 'h1'},
                                start, start + 20, 10)

    assert series.values == [1.5, 4.0]


def test_series_merges_every_series_matching_the_tags(store):
    write_all(store, [sample('h1', 1.0, T0, metric='a'),
                      sample('h2', 3.0, T0 + 1, metric='a'),
                      sample('h2', 100.0, T0 + 1, metric='b')])

    series = store.query_series('host_metric', 'value', {'metric': 'a'},
                                T0, T0 + 10, 10)

    assert series.values == [2.0]


def test_series_needs_a_bounded_window_and_a_known_aggregate(store):
    with pytest.raises(ValueError):
        store.query_series('host_metric', 'value', {}, None, T0, 60)
    with pytest.raises(ValueError):
        store.query_series('host_metric', 'value', {}, T0, T0 + 60, 60,
                           agg='median')


@pytest.mark.parametrize('step_s', [1e-7, 4.9e-7])
def test_a_step_finer_than_a_microsecond_is_refused(store, step_s):
    # The stores keep whole microseconds: such a step is no bucket at all.
    write_all(store, [sample('h1', 1.0, T0)])

    with pytest.raises(ValueError, match='step_s .* one microsecond'):
        store.query_series('host_metric', 'value', {}, T0, T0 + 1e-6,
                           step_s)


def test_latest_gives_the_newest_value_per_host(store):
    write_all(store, [sample('h1', 1.0, T0), sample('h1', 2.0, T0 + 5),
                      sample('h2', 7.0, T0 + 1),
                      sample('h3', 9.0, T0 + 9, metric='other')])

    newest = store.latest('host_metric', 'value',
                          {'metric': 'cpu_ops_per_s'})

    assert newest == {'h1': (T0 + 5, 2.0), 'h2': (T0 + 1, 7.0)}


def test_evaluation_lookup_returns_the_newest_record(store):
    store.put_evaluation({'evaluation_id': 'e1', 'status': 'running',
                          'hosts': []})
    store.put_evaluation({'evaluation_id': 'e1', 'status': 'finished',
                          'confidence': 0.8, 'duration_s': 4.1,
                          'hosts': [{'host': 'h1', 'score': 87.5}]})

    found = store.get_evaluation('e1')

    assert found == {'evaluation_id': 'e1', 'status': 'finished',
                     'confidence': 0.8, 'duration_s': 4.1,
                     'hosts': [{'host': 'h1', 'score': 87.5}]}
    assert store.get_evaluation('unknown') is None


def test_evaluation_is_also_an_evaluation_point(store):
    store.put_evaluation({'evaluation_id': 'e2', 'status': 'finished',
                          'confidence': 0.5})
    assert store.flush(timeout=30)

    points = store.query_points('evaluation', {'evaluation': 'e2'})

    assert len(points) == 1
    assert points[0].tags == {'evaluation': 'e2', 'status': 'finished'}
    assert points[0].fields['confidence'] == 0.5


def test_evaluation_record_is_stamped_with_the_callers_clock(store):
    # The twin's virtual clock runs years behind the wall clock: a record
    # stamped with it must be found in a window of that clock.
    store.put_evaluation({'evaluation_id': 'e3', 'status': 'finished'},
                         when=T0 + 42)
    assert store.flush(timeout=30)

    points = store.query_points('evaluation', {'evaluation': 'e3'},
                                start=T0, end=T0 + 60)

    assert [p.time for p in points] == [T0 + 42]
    assert store.get_evaluation('e3')['status'] == 'finished'


def test_counters_count_every_written_point(store):
    write_all(store, [sample('h1', float(i), T0 + i) for i in range(10)])

    assert store.counters() == {'written': 10, 'retried': 0, 'dropped': 0,
                                'buffered': 0}


@pytest.mark.parametrize('bad', [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_rejected_and_nothing_is_written(store, bad):
    with pytest.raises(ValueError, match='NaN and infinities'):
        store.write([sample('h1', 1.0, T0), sample('h1', bad, T0 + 1)])
    store.flush(timeout=30)

    assert store.query_points('host_metric') == []
    assert store.counters()['written'] == 0


@pytest.mark.parametrize('where', ['tag', 'field'])
def test_a_lone_surrogate_is_rejected_and_other_writes_are_kept(store,
                                                                 where):
    # JSON's "\ud800" escape decodes to a lone surrogate, which no store
    # can encode as UTF-8: InfluxDB's writer lost the whole batch around
    # it (points of other writers too).
    bad = 'x\ud800'
    tags = {'instance': bad if where == 'tag' else 'i1'}
    fields = {'record': bad if where == 'field' else 'ok'}
    store.write([sample('h1', 1.0, T0)])
    with pytest.raises(ValueError, match='not valid Unicode'):
        store.write([sample('h2', 2.0, T0),
                     base.Point('scaling_decision', tags, fields, T0)])
    store.write([sample('h3', 3.0, T0)])
    assert store.flush(timeout=30)

    assert [p.tags['host'] for p in store.query_points('host_metric')] == [
        'h1', 'h3']
    assert store.query_points('scaling_decision') == []
    assert store.counters()['dropped'] == 0


def test_numbers_become_floats_and_bools_and_strings_stay(store):
    write_all(store, [base.Point('scaling_decision', {'instance': 'i1'},
                                 {'count': 3, 'ok': True,
                                  'record': 'say "hi"\n\\ok'}, T0)])

    found, = store.query_points('scaling_decision')

    assert found.fields == {'count': 3.0, 'ok': True,
                            'record': 'say "hi"\n\\ok'}
    assert isinstance(found.fields['count'], float)


def test_same_series_and_time_merges_fields_like_influxdb(store):
    write_all(store, [sample('h1', 1.0, T0)])
    write_all(store, [base.Point('host_metric',
                                 {'host': 'h1', 'metric': 'cpu_ops_per_s'},
                                 {'value': 2.0, 'extra': 1.0}, T0)])

    found = store.query_points('host_metric')

    assert [p.fields for p in found] == [{'value': 2.0, 'extra': 1.0}]


def test_empty_tag_values_are_treated_as_absent(store):
    write_all(store, [sample('h1', 1.0, T0, profile='')])

    found, = store.query_points('host_metric', {'profile': ''})

    assert 'profile' not in found.tags


def test_times_keep_microseconds(store):
    write_all(store, [sample('h1', 1.0, T0 + 0.123456)])

    found, = store.query_points('host_metric')

    assert found.time == T0 + 0.123456


_TAG_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(' ,="\'\\\n\r\t=%é中🙂'),
        st.characters(blacklist_categories=('Cs',))),
    min_size=1, max_size=30)


@hypothesis.settings(
    max_examples=40, deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(host=_TAG_TEXT, profile=_TAG_TEXT)
def test_tag_values_round_trip_exactly(store, host, profile):
    case = uuid.uuid4().hex
    write_all(store, [sample(host, 1.0, T0, case=case, profile=profile)])

    found = store.query_points('host_metric', {'case': case})
    by_host = store.query_points('host_metric', {'case': case, 'host': host})

    assert [p.tags for p in found] == [
        {'host': host, 'metric': 'cpu_ops_per_s', 'case': case,
         'profile': profile}]
    assert len(by_host) == 1
    assert store.latest('host_metric', 'value', {'case': case}) == {
        host: (T0, 1.0)}


@hypothesis.settings(
    max_examples=30, deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(
    text=st.text(st.characters(blacklist_categories=('Cs',)), max_size=40),
    number=st.floats(allow_nan=False, allow_infinity=False))
def test_field_values_round_trip_exactly(store, text, number):
    case = uuid.uuid4().hex
    write_all(store, [base.Point('scaling_decision', {'case': case},
                                 {'record': text, 'number': number}, T0)])

    found, = store.query_points('scaling_decision', {'case': case})

    assert found.fields == {'record': text, 'number': number}


def _evaluation(evaluation_id, status, time_s, text='{}'):
    return base.Point('evaluation', {'evaluation': evaluation_id,
                                     'status': status},
                      {'record': text}, time_s)


def _seen(points):
    return [(p.time, dict(p.tags), dict(p.fields)) for p in points]


_BATCHES = iter(range(1, 10 ** 6))


@hypothesis.settings(
    max_examples=40, deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(
    writes=st.lists(st.tuples(st.integers(0, 7), st.sampled_from(
        ['running', 'finished', 'deleted']), st.integers(0, 9)),
        min_size=1, max_size=40),
    limit=st.integers(1, 45), window=st.tuples(st.integers(0, 5),
                                               st.integers(5, 11)))
def test_limit_reads_exactly_the_newest_points_in_the_same_order(
        store, writes, limit, window):
    # Several evaluations at the same time, the same one again later and
    # the same point written twice: the newest points are the tail of the
    # full answer, ties in the same order.
    start = T0 + 1000 * next(_BATCHES)
    write_all(store, [
        _evaluation('e%d' % number, status, start + offset,
                    '{"write": %d}' % index)
        for index, (number, status, offset) in enumerate(writes)])
    lo, hi = start + window[0], start + window[1]

    everything = store.query_points('evaluation', start=lo, end=hi)
    newest = store.query_points('evaluation', start=lo, end=hi, limit=limit)

    assert _seen(newest) == _seen(everything[-limit:])
    assert len(newest) == min(limit, len(everything))


def test_limit_with_tags_and_without_a_window(store):
    case = uuid.uuid4().hex
    write_all(store, [sample('h%d' % (i % 3), float(i), T0 + i // 2,
                             case=case) for i in range(12)])

    everything = store.query_points('host_metric', {'case': case})
    newest = store.query_points('host_metric', {'case': case}, limit=5)
    one_host = store.query_points('host_metric', {'case': case,
                                                  'host': 'h1'}, limit=2)

    assert _seen(newest) == _seen(everything[-5:])
    assert [p.fields['value'] for p in one_host] == [7.0, 10.0]


@pytest.mark.parametrize('limit', [0, -1, 1.5, True])
def test_a_limit_that_is_not_a_positive_integer_is_refused(store, limit):
    with pytest.raises(ValueError, match='limit'):
        store.query_points('host_metric', limit=limit)


def test_a_tag_matches_any_of_several_wanted_values(store):
    case = uuid.uuid4().hex
    write_all(store, [sample('h%d' % i, float(i), T0 + i, case=case)
                      for i in range(5)])

    for wanted in (['h1', 'h3'], ('h3', 'h1'), {'h1', 'h3', 'absent'}):
        found = store.query_points('host_metric', {'case': case,
                                                   'host': wanted})
        assert [p.tags['host'] for p in found] == ['h1', 'h3']
    assert store.query_points('host_metric', {'case': case,
                                              'host': []}) == []
    assert store.latest('host_metric', 'value',
                        {'case': case, 'host': ['h4', 'h0']}) == {
        'h0': (T0, 0.0), 'h4': (T0 + 4, 4.0)}
