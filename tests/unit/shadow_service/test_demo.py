"""The demo's terminal output and report path (the run itself is in
``tests/functional/shadow_service/clouds/test_sim_twin.py``)."""

import os
import subprocess
import sys
import tempfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadow_service import demo
from shadow_service.cmd import cli

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


def _refused(monkeypatch, tmp_path, capsys, argv):
    """Run ``nova-shadow demo ARGV`` (with no waiting) as the console
    entry does; ``the one error line`` after checking it exited 2 before
    the simulation was assembled and wrote no report."""
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path / 'tmp'))
    os.mkdir(tmp_path / 'tmp')

    def build(options):
        raise AssertionError('the simulation was assembled')

    monkeypatch.setattr(demo, 'build', build)
    with pytest.raises(SystemExit) as exited:
        cli.main(['demo', '--speedup', '0', '--hours', '1'] + argv)
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert 'Traceback' not in captured.err
    errors = [line for line in captured.err.splitlines() if 'error' in line]
    assert len(errors) == 1
    assert captured.err.splitlines()[-1] == errors[0]
    assert 'report:' not in captured.out
    assert os.listdir(tmp_path / 'tmp') == []
    return errors[0]


@pytest.mark.parametrize('where,problem', [
    ('missing/report.html', 'does not exist'),
    ('a-file/report.html', 'is not a directory'),
    ('a-directory', 'got the directory'),
])
def test_an_out_that_cannot_be_written_is_refused_before_the_run(
        where, problem, tmp_path, monkeypatch, capsys):
    (tmp_path / 'a-file').write_text('kept')
    (tmp_path / 'a-directory').mkdir()
    out = str(tmp_path / where)
    error = _refused(monkeypatch, tmp_path, capsys, ['--out', out])
    assert error.startswith('nova-shadow demo: error: argument --out: ')
    assert problem in error and repr(out) in error
    assert not os.path.exists(out) or os.path.isdir(out)
    assert (tmp_path / 'a-file').read_text() == 'kept'
    assert os.listdir(tmp_path / 'a-directory') == []


@pytest.mark.skipif(not os.path.isdir('/proc/self'), reason='no /proc')
def test_an_out_where_no_file_can_be_created_is_refused(
        tmp_path, monkeypatch, capsys):
    error = _refused(monkeypatch, tmp_path, capsys,
                     ['--out', '/proc/nova-shadow-demo.html'])
    assert error.startswith("nova-shadow demo: error: argument --out: "
                            "cannot write the report to "
                            "'/proc/nova-shadow-demo.html': ")


def test_a_negative_seed_is_refused_by_name(tmp_path, monkeypatch, capsys):
    error = _refused(monkeypatch, tmp_path, capsys, ['--seed', '-1'])
    assert error == ("nova-shadow demo: error: argument --seed: must be a "
                     "whole number >= 0, got '-1'")


def test_a_writable_out_is_kept_as_it_was_until_the_report(tmp_path):
    existing = tmp_path / 'old.html'
    existing.write_text('old')
    new = tmp_path / 'new.html'
    for out in (existing, new):
        assert demo.parse_args(['--out', str(out)]).out == str(out)
    # Checked without being written: the old report stays, no new file.
    assert existing.read_text() == 'old'
    assert not new.exists()
    # No --out (or an empty one): a new file in the temporary directory.
    assert demo.parse_args([]).out is None
    assert demo.report_path(demo.parse_args(['--out', '']).out,
                            directory=str(tmp_path)) != ''


def test_the_console_entry_refuses_bad_values_without_running(tmp_path):
    entry = os.path.join(os.path.dirname(sys.executable), 'nova-shadow')
    if not os.path.exists(entry):
        pytest.skip('the nova-shadow console entry is not installed')
    env = dict(os.environ, TMPDIR=str(tmp_path))
    for argv, name in ((['--out', str(tmp_path / 'no' / 'x.html')], '--out'),
                       (['--seed', '-1'], '--seed')):
        done = subprocess.run([entry, 'demo', '--speedup', '0'] + argv,
                              capture_output=True, text=True, env=env,
                              timeout=120)
        assert done.returncode == 2, done.stderr
        assert 'Traceback' not in done.stderr
        assert done.stderr.splitlines()[-1].startswith(
            'nova-shadow demo: error: argument %s: ' % name)
        # Nothing ran: the demo prints once it has assembled the twin.
        assert done.stdout == ''
    assert os.listdir(tmp_path) == []


def test_the_demo_reads_no_configuration_file(tmp_path, monkeypatch):
    # A machine whose daemons are configured (here, the user's own
    # ~/.nova-shadow/nova-shadow.conf, which oslo.config looks for as it
    # does for /etc/nova-shadow/nova-shadow.conf): the demo runs on the
    # embedded default all the same.
    monkeypatch.setenv('HOME', str(tmp_path))
    (tmp_path / '.nova-shadow').mkdir()
    (tmp_path / '.nova-shadow' / 'nova-shadow.conf').write_text(
        '[watcher]\ncooldown = 7\n[sim]\ncluster_file = /nonexistent\n')
    parts = demo.build(demo.parse_args([]))
    try:
        conf = parts.parts.conf
        assert conf.watcher.cooldown == 1800.0
        assert conf.sim.cluster_file != '/nonexistent'
        assert conf.config_file == []
    finally:
        parts.close()


def test_a_report_that_cannot_be_written_leaves_out_as_it_was(tmp_path):
    # The disk fills up while the report is written (here the process may
    # write files of at most 64 kB; the report is larger): the run fails
    # with one line and an existing --out keeps what it held, with no
    # half-written file beside it.
    import resource
    import signal

    out = tmp_path / 'report.html'
    out.write_text('the report of an earlier run')

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))

    done = subprocess.run(
        [sys.executable, '-m', 'shadow_service.cmd.cli', 'demo',
         '--speedup', '0', '--hours', '1', '--out', str(out)],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE='1'),
        preexec_fn=limit_file_size)
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1].startswith(
        'nova-shadow demo: error: cannot write the report: ')
    assert 'Traceback' not in done.stderr
    assert out.read_text() == 'the report of an earlier run'
    assert os.listdir(tmp_path) == ['report.html']
