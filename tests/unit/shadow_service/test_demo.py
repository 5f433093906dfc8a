"""The demo's terminal output and report path (the run itself is in
``tests/functional/shadow_service/clouds/test_sim_twin.py``)."""

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadow_service import demo

REASONS = [
    'disk_p95_latency_ms 0.2367 (99% of best, weight 29%)',
    'mem_latency_ns 79.34 (best of 16, weight 21%)',
    'disk_iops 9.952e+04 (100% of best, weight 18%)',
    'loses most on disk_p95_latency_ms 17.99 (1% of best, weight 29%)',
]


def _ranking(reasons_per_host):
    return {'hosts': [{'host': 'compute-%02d' % i, 'score': 90.0 - i,
                       'confidence': 0.9, 'reasons': list(reasons)}
                      for i, reasons in enumerate(reasons_per_host)]}


def _printed_reasons(table):
    """``[[reason text printed for host]]`` from a ranking table: each
    host's lines joined, the ``(+N more)`` marker split off."""
    lines = table.splitlines()
    column = lines[0].index('reasons')
    hosts, more = [], []
    for line in lines[1:]:
        if not line.startswith(' '):        # the closing hint
            break
        if line[:column].strip():
            hosts.append([])
            more.append(0)
        hosts[-1].append(line[column:])
    out = []
    for index, chunks in enumerate(hosts):
        text = ' '.join(chunks)
        if text.endswith(' more)'):
            text, _sep, marker = text.rpartition(' (+')
            more[index] = int(marker.split()[0])
        out.append((text, more[index]))
    return out


@given(width=st.integers(min_value=20, max_value=200),
       counts=st.lists(st.integers(min_value=0, max_value=4), min_size=1,
                       max_size=6))
def test_the_table_shows_whole_reasons_and_counts_the_rest(width, counts):
    ranking = _ranking([REASONS[:n] for n in counts])
    table = demo.ranking_table(ranking, width=width)
    for (text, more), count in zip(_printed_reasons(table), counts):
        if count == 0:
            assert text == '-'
            continue
        shown = text.split('; ')
        # Whole reasons only, in order, the rest counted.
        assert shown == REASONS[:len(shown)]
        assert more == count - len(shown)
    column = table.splitlines()[0].index('reasons')
    for line in table.splitlines()[1:]:
        # The reasons column keeps at least 24 columns, however narrow.
        assert len(line) <= max(width, column + 24, 40)


def test_a_wide_table_prints_every_reason_from_its_own_line():
    ranking = _ranking([REASONS, REASONS[:2]])
    table = demo.ranking_table(ranking, width=80, wide=True)
    assert 'more' not in table
    printed = _printed_reasons(table)
    for reason in REASONS:
        assert reason in printed[0][0]
    assert printed[1] == (' '.join(REASONS[:2]), 0)


def test_a_narrow_table_wraps_a_reason_at_word_boundaries():
    table = demo.ranking_table(_ranking([REASONS[:1]]), width=60)
    words = set(REASONS[0].split())
    column = table.splitlines()[0].index('reasons')
    printed = table.splitlines()[1:]
    assert len(printed) > 1
    for line in printed:
        assert len(line) <= 60
        for word in line[column:].split():
            assert word in words


def test_every_run_gets_a_new_report_unless_out_is_given(tmp_path):
    first = demo.report_path(directory=str(tmp_path))
    second = demo.report_path(directory=str(tmp_path))
    assert first != second
    assert sorted(os.listdir(tmp_path)) == sorted(
        [os.path.basename(first), os.path.basename(second)])
    assert os.path.basename(first).startswith('nova-shadow-demo-')
    assert first.endswith('.html')
    chosen = str(tmp_path / 'mine.html')
    assert demo.report_path(chosen, directory=str(tmp_path)) == chosen


@pytest.mark.parametrize('option,value', [('--hours', '0.5'),
                                          ('--budget', '0'),
                                          ('--speedup', '-1')])
def test_an_out_of_range_option_is_refused_by_name(option, value, capsys):
    with pytest.raises(SystemExit) as error:
        demo.parse_args([option, value])
    assert error.value.code == 2
    assert option in capsys.readouterr().err


def test_an_unknown_profile_is_refused_before_anything_runs(capsys):
    assert demo.run_demo(['--profile', 'no-such-profile']) == 2
    captured = capsys.readouterr()
    assert 'error: --profile:' in captured.err
    assert 'no-such-profile' in captured.err
    assert 'report:' not in captured.out
