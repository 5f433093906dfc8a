"""Line protocol and InfluxQL quoting, without a server."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadow_service.history import base
from shadow_service.history import lineprotocol as lp


def test_a_point_becomes_one_line_with_microseconds():
    point = base.prepare_point(base.Point(
        'host metric', {'host': 'a b', 'metric': 'x,y=z'},
        {'value': 1, 'ok': True, 'note': 'say "hi"'}, 1.5))

    assert lp.point_to_line(point) == (
        'host\\ metric,host=a\\ b,metric=x\\,y\\=z '
        'value=1.0,ok=true,note="say \\"hi\\"" 1500000')


@pytest.mark.parametrize('raw, stored', [
    ('a\\b', 'a%5Cb'), ('100%', '100%25'), ('two\nlines', 'two%0Alines'),
    ('plain', 'plain'), ('é中', 'é中')])
def test_tag_values_are_percent_encoded_only_where_needed(raw, stored):
    assert lp.encode_tag_value(raw) == stored
    assert lp.decode_tag_value(stored) == raw


def test_foreign_percent_signs_are_left_alone():
    assert lp.decode_tag_value('50%off') == '50%off'


@given(st.text(st.characters(blacklist_categories=('Cs',))))
def test_tag_value_encoding_round_trips(text):
    encoded = lp.encode_tag_value(text)

    assert '\n' not in encoded and '\\' not in encoded
    assert lp.decode_tag_value(encoded) == text


def test_influxql_quoting():
    assert lp.quote_ident('a"b') == '"a\\"b"'
    assert lp.quote_literal("it's") == "'it\\'s'"
    assert lp.tag_condition({'b': '1', 'a': 'x\\'}) == (
        "\"a\" = 'x%5C' AND \"b\" = '1'")
    assert lp.tag_condition(None) == ''


def test_an_identifier_escapes_a_newline_and_refuses_cr_and_nul():
    # A raw newline ends an InfluxQL quoted identifier (InfluxDB 1.6.7:
    # "error parsing query"); escaped, it parses (the metrics source's
    # host_tag test runs it on a server).  CR and NUL parse in no form.
    assert lp.quote_ident('a\nb') == '"a\\nb"'
    assert lp.quote_ident('a\\n"b') == '"a\\\\n\\"b"'
    for name in ('a\rb', 'a\x00b'):
        with pytest.raises(ValueError, match='carriage return or NUL'):
            lp.quote_ident(name)


def test_a_value_no_influxql_literal_can_hold_is_matched_by_a_regex():
    # InfluxDB 1.6.7 rejects a string literal holding CR or NUL, and a
    # raw newline; the regex and the escaped newline are what it accepts
    # (the metrics source's odd host name tests run them on a server).
    assert lp.quote_literal('a\nb') == "'a\\nb'"
    assert lp.tag_equals('host', 'a\nb') == "\"host\" = 'a\\nb'"
    for value in ('a\rb', 'a\x00b'):
        with pytest.raises(ValueError, match='carriage return or NUL'):
            lp.quote_literal(value)
    assert lp.tag_equals('host', 'c\rr/x.9_') == (
        '"host" =~ /^c\\x{d}r\\x{2f}x\\x{2e}9_$/')


@pytest.mark.parametrize('point, problem', [
    (base.Point('', {}, {'v': 1.0}, 0), 'empty measurement'),
    (base.Point('m', {}, {}, 0), 'no fields'),
    (base.Point('m', {'time': 'x'}, {'v': 1.0}, 0), 'reserved'),
    (base.Point('m', {'v': 'x'}, {'v': 1.0}, 0), 'both a tag and a field'),
    (base.Point('m', {'a\nb': 'x'}, {'v': 1.0}, 0), 'newline'),
    (base.Point('m', {}, {'v': [1]}, 0), 'unsupported type'),
    (base.Point('m', {}, {'v': 1.0}, float('nan')), 'finite'),
    (base.Point('m', {'t': 1}, {'v': 1.0}, 0), 'must be a string'),
])
def test_points_that_cannot_be_stored_are_rejected(point, problem):
    with pytest.raises(ValueError, match=problem):
        base.prepare_point(point)


def test_fast_path_gives_the_same_line_and_the_same_checks():
    point = base.Point('host_metric', {'host': 'fast path'},
                       {'value': 2.5}, 10.25)
    slow = lp.format_line(point.measurement, *base.normalise(point))

    assert lp.line_for(point, base.normalise) == slow
    assert lp.line_for(point, base.normalise) == slow  # cached shape
    for bad in (float('nan'), float('inf')):
        with pytest.raises(ValueError):
            lp.line_for(base.Point('host_metric', {'host': 'fast path'},
                                   {'value': bad}, 10.0), base.normalise)
    with pytest.raises(ValueError):
        lp.line_for(base.Point('host_metric', {'host': 'fast path'},
                               {'value': 1.0}, float('nan')), base.normalise)
