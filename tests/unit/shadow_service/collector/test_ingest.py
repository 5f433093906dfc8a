"""Sample lines from guests: validated one by one, tagged from the token."""

import json
import math

from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from shadow_service.collector import ingest
from shadow_service.collector import tokens
from shadow_service.history import memory

NOW = 1_700_000_000.0


def _grant():
    grant = tokens.Grant(evaluation_id='eval-1', host='host7',
                         profile='web', expires_at=NOW + 600)
    grant.shadow_id = 'server-7'
    return grant


def _line(**changes):
    sample = {'measurement': 'shadow_sample', 'time': NOW - 1.0,
              'tags': {'evaluation': 'forged', 'shadow': 'forged',
                       'host': 'elsewhere', 'profile': 'idle',
                       'metric': 'cpu_ops_per_s', 'extra': 'x'},
              'fields': {'value': 12.5}}
    sample.update(changes)
    return json.dumps(sample)


def test_a_valid_line_is_tagged_from_the_token_not_the_guest():
    point, restamped = ingest.parse_sample(_line(), _grant(), NOW, 60.0)
    assert not restamped
    assert point.tags == {'evaluation': 'eval-1', 'shadow': 'server-7',
                          'host': 'host7', 'profile': 'web',
                          'metric': 'cpu_ops_per_s'}
    assert point.fields == {'value': 12.5}
    assert point.time == NOW - 1.0


def test_a_time_far_from_the_arrival_is_replaced_by_the_arrival():
    point, restamped = ingest.parse_sample(_line(time=NOW - 3600), _grant(),
                                           NOW, 60.0)
    assert restamped and point.time == NOW


def _reason(line):
    try:
        ingest.parse_sample(line, _grant(), NOW, 60.0)
    except ingest.BadSample as e:
        return e.reason
    return None


def test_each_kind_of_bad_line_is_named():
    assert _reason(b'\xff\xfe') == 'not_utf8'
    assert _reason('{') == 'not_json'
    assert _reason('[' * 5000 + ']' * 5000) == 'not_json'
    assert _reason('[1]') == 'not_an_object'
    assert _reason(json.dumps({'measurement': 'shadow_sample'})) == \
        'bad_keys'
    assert _reason(_line(measurement='host_metric')) == 'bad_measurement'
    assert _reason(_line(time='now')) == 'bad_time'
    assert _reason(_line(time=True)) == 'bad_time'
    assert _reason(_line(tags=[])) == 'bad_tags'
    assert _reason(_line(tags={'metric': 'cpu_ops_per_s', 'Bad Key': 'x'})) \
        == 'bad_tags'
    assert _reason(_line(tags={'metric': 'rm -rf'})) == 'bad_metric'
    # A final newline, which a pattern ending in ``$`` lets through.
    assert _reason(_line(tags={'metric': 'cpu_ops_per_s\n'})) == \
        'bad_metric'
    assert _reason(_line(tags={'metric': 'cpu_ops_per_s', 'key\n': 'x'})) \
        == 'bad_tags'
    assert _reason(_line(tags={'host': 'a'})) == 'bad_metric'
    assert _reason(_line(fields={'value': 'fast'})) == 'bad_value'
    assert _reason(_line(fields={'value': 1, 'other': 2})) == 'bad_value'
    assert _reason(_line().replace('12.5', 'NaN')) == 'bad_value'
    assert _reason(_line().replace('12.5', '1e999')) == 'bad_value'
    assert _reason(_line().replace('12.5', '9' * 5000)) == 'not_json'


def test_a_body_keeps_its_good_lines_and_counts_the_bad_ones():
    store = memory.MemoryStore()
    intake = ingest.Intake(store, max_clock_skew=60.0, max_line_bytes=512)
    grant = _grant()
    body = '\n'.join([_line(), '{oops', '', _line(time=NOW - 2.0),
                      'x' * 600]).encode()
    accepted, rejected = intake.accept_body(grant, body, NOW)
    assert accepted == 2 and grant.accepted == 2
    assert rejected == {'not_json': 1, 'line_too_long': 1}
    assert intake.counts['accepted'] == 2
    assert intake.counts['rejected_line_too_long'] == 1
    points = store.query_points('shadow_sample', {'shadow': 'server-7'})
    assert len(points) == 2


def test_console_samples_are_read_once_among_the_guest_noise():
    store = memory.MemoryStore()
    intake = ingest.Intake(store)
    grant = _grant()
    console = '\r\n'.join([
        '[    1.234] cloud-init: running modules',
        ingest.CONSOLE_PREFIX + _line(),
        '[    2.0] ' + ingest.CONSOLE_PREFIX + _line(time=NOW - 2.0),
        ingest.CONSOLE_PREFIX + '{"measurement": "shadow_sample"}',
        'login: '])
    assert intake.accept_console(grant, console, NOW) == (
        2, {'bad_keys': 1})
    # The same log read again (it only grows) adds nothing.
    accepted, _ = intake.accept_console(grant, console, NOW + 5)
    assert accepted == 0
    assert len(store.query_points('shadow_sample')) == 2


class _DownStore(memory.MemoryStore):
    def write(self, points):
        raise OSError('store down')


def test_console_lines_are_read_again_when_the_store_was_down():
    intake = ingest.Intake(_DownStore())
    console = ingest.CONSOLE_PREFIX + _line()
    try:
        intake.accept_console(_grant(), console, NOW)
    except OSError:
        pass
    intake.history = memory.MemoryStore()
    assert intake.accept_console(_grant(), console, NOW)[0] == 1


_json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) |
    st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) |
    st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6)
_tags = st.dictionaries(
    st.sampled_from(['metric', 'host', 'shadow', 'Bad Key', 'x' * 40]),
    st.sampled_from(['cpu_ops_per_s', 'net_p95_rtt_ms', 'gpu_x', '',
                     'x' * 300]) | _json_values, max_size=4)
_fields = st.dictionaries(st.sampled_from(['value', 'other']),
                          st.floats(allow_nan=True) | _json_values,
                          max_size=2)


@st.composite
def _samples(draw):
    """Near-valid samples: each part either right or arbitrary."""
    sample = {
        'measurement': draw(st.sampled_from(['shadow_sample', 'other'])
                            | _json_values),
        'time': draw(st.floats(NOW - 120, NOW + 120) | _json_values),
        'tags': draw(_tags | _json_values),
        'fields': draw(_fields | _json_values),
    }
    for key in draw(st.sets(st.sampled_from(sorted(sample)), max_size=2)):
        del sample[key]
    if draw(st.booleans()):
        sample[draw(st.text(max_size=8))] = draw(_json_values)
    return sample


@settings(max_examples=100, deadline=None)
@given(_samples())
@example({'measurement': 'shadow_sample', 'time': NOW,
          'tags': {'metric': 'cpu_x'}, 'fields': {'value': 1}})
def test_any_json_object_is_either_a_sane_point_or_a_named_rejection(
        sample):
    try:
        point, _ = ingest.parse_sample(json.dumps(sample), _grant(), NOW,
                                       60.0)
    except ingest.BadSample as e:
        assert e.reason
        return
    assert point.measurement == 'shadow_sample'
    assert point.tags['shadow'] == 'server-7'
    assert ingest.METRIC_NAME.match(point.tags['metric'])
    assert math.isfinite(point.fields['value'])
    assert abs(point.time - NOW) <= 60.0


def test_a_shadow_writes_a_bounded_number_of_metric_names():
    # Each name is a series in the history store: a guest may not create
    # them without end.
    store = memory.MemoryStore()
    intake = ingest.Intake(store)
    grant = _grant()
    limit = ingest.MAX_METRICS_PER_SHADOW
    lines = [_line(tags={'metric': 'cpu_made_up_%d' % i})
             for i in range(limit + 5)]
    accepted, rejected = intake.accept_body(
        grant, '\n'.join(lines).encode(), NOW)
    assert (accepted, dict(rejected)) == (limit, {'too_many_metrics': 5})
    # The names it has are still written; another shadow has its own.
    assert intake.accept_body(grant, lines[0].encode(), NOW)[0] == 1
    assert intake.accept_body(_grant(), lines[-1].encode(), NOW)[0] == 1
    assert intake.counts['rejected_too_many_metrics'] == 5
