"""What the ``openstack shadow`` commands share."""

import argparse

import pytest

from shadow_service import manager
from shadow_service import rpcapi
from shadow_service.osc.v1 import common


@pytest.mark.parametrize('text, seconds', [
    ('90', 90.0), ('90s', 90.0), ('90m', 5400.0), ('2h', 7200.0),
    ('1.5d', 129600.0), (' 2H ', 7200.0)])
def test_a_duration_is_seconds_or_a_number_with_a_unit(text, seconds):
    assert common.duration(text) == seconds


@pytest.mark.parametrize('text', ['', 'yesterday', '0', '-5m', 'h', '2w',
                                  'nan', 'inf', '367d', '31622401'])
def test_anything_else_is_refused_as_a_bad_argument(text):
    # argparse names the option (tests/unit/shadow_service/osc/
    # test_arguments.py).
    with pytest.raises(argparse.ArgumentTypeError) as info:
        common.duration(text)
    assert repr(text.strip().lower()) in str(info.value)


def test_the_longest_look_back_is_the_services():
    assert common.duration('366d') == rpcapi.MAX_SINCE_S
    assert manager.MAX_SINCE_S == rpcapi.MAX_SINCE_S


@pytest.mark.parametrize('text, count', [('1', 1), ('10000', 10000)])
def test_a_limit_within_the_services_bounds_is_passed_on(text, count):
    assert common.limit(text) == count
    assert manager.MAX_LIMIT == rpcapi.MAX_LIMIT == 10000


@pytest.mark.parametrize('text', ['0', '-3', '10001', 'abc', '1.5', ''])
def test_a_limit_out_of_bounds_is_refused_as_a_bad_argument(text):
    with pytest.raises(argparse.ArgumentTypeError) as info:
        common.limit(text)
    assert str(info.value) == (
        'must be a count from 1 to 10000, got %r' % text)


def test_times_are_iso_8601_utc():
    assert common.timestamp(0) == '1970-01-01T00:00:00+00:00'
    assert common.timestamp(None) is None


def test_a_ranking_reads_as_lines_and_stays_data_in_json():
    hosts = [{'host': 'a', 'score': 87.54, 'confidence': 0.9,
              'reasons': ['cpu_steal_pct 1.2 (best of 2)', 'other']},
             {'host': 'b', 'score': 40.0, 'confidence': None}]
    column = common.RankingColumn(hosts)
    assert column.human_readable().splitlines() == [
        '1. a score 87.5 confidence 0.90 (cpu_steal_pct 1.2 (best of 2))',
        '2. b score 40.0 confidence 0.00']
    assert column.machine_readable() == hosts
