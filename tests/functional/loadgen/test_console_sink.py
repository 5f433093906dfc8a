"""The console sink in a real run: a real terminal (pty), the stdout
fallback, and every sample going to every sink at once."""

import json
import os
import select
import subprocess
import time

from tests.functional.loadgen.conftest import loadgen_command
from tests.functional.loadgen.conftest import loadgen_env
from tests.functional.loadgen.conftest import parse_output

PREFIX = 'nova-shadow-sample '
_RUN = {'name': 'console', 'duration_s': 1.5, 'warmup_s': 0.25,
        'interval_s': 0.25, 'components': {'cpu': {'duty_cycle': 0.1}}}


def _console_points(text):
    points = []
    for line in text.splitlines():
        line = line.strip('\r')
        if line.startswith(PREFIX):
            points.append(json.loads(line[len(PREFIX):]))
    return points


def _read_while_running(fd, process, timeout_s):
    """What a terminal shows until ``process`` ends (and a last drain)."""
    chunks = []
    until = time.monotonic() + timeout_s
    while time.monotonic() < until:
        running = process.poll() is None
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunks.append(os.read(fd, 65536))
        elif not running:
            break
    return b''.join(chunks).decode('utf-8')


def test_samples_reach_a_terminal_as_prefixed_compact_json(tmp_path):
    controller, terminal = os.openpty()
    tty_name = os.ttyname(terminal)
    try:
        process = subprocess.Popen(
            loadgen_command('run', json.dumps(_RUN), '--workdir', tmp_path,
                            '--sink', 'console:%s' % tty_name,
                            '--sink', 'file://%s/s.jsonl' % tmp_path),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=loadgen_env())
        shown = _read_while_running(controller, process, 30)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        os.close(controller)
        os.close(terminal)
    assert process.returncode == 0, stderr
    console = _console_points(shown)
    samples = [json.loads(line) for line in
               (tmp_path / 's.jsonl').read_text().splitlines()]
    assert console == samples and len(console) > 0
    lines = [line.strip('\r') for line in shown.splitlines() if line]
    assert all(line.startswith(PREFIX) and ', ' not in line
               for line in lines)
    stats = parse_output(stdout)[1]['sinks'][0]
    assert stats == {'sink': 'console:%s' % tty_name,
                     'sent': len(console), 'dropped': 0}
    (tmp_path / 's.jsonl').unlink()


def test_console_that_cannot_be_opened_falls_back_to_stdout(tmp_path):
    result = subprocess.run(
        loadgen_command('run', json.dumps(_RUN), '--workdir', tmp_path,
                        '--sink', 'console:/nonexistent/console'),
        capture_output=True, text=True, timeout=30, env=loadgen_env())
    assert result.returncode == 0, result.stderr
    assert result.stderr.count('console /nonexistent/console') == 1
    console = _console_points(result.stdout)
    summary = parse_output('\n'.join(
        line for line in result.stdout.splitlines()
        if not line.startswith(PREFIX)))[1]
    assert len(console) == summary['samples_emitted'] > 0
    assert summary['sinks'] == [{'sink': 'console:stdout',
                                 'sent': len(console), 'dropped': 0}]


def test_every_sample_goes_to_every_sink(tmp_path, collector, token_file):
    console_file = tmp_path / 'console.log'
    console_file.touch()
    result = subprocess.run(
        loadgen_command('run', json.dumps(_RUN), '--workdir', tmp_path,
                        '--sink', 'file://%s/a.jsonl' % tmp_path,
                        '--sink', 'console:%s' % console_file,
                        '--sink', collector.url,
                        '--sink-token-file', token_file, '--sink', '-'),
        capture_output=True, text=True, timeout=30, env=loadgen_env())
    assert result.returncode == 0, result.stderr
    stdout_samples, summary = parse_output(result.stdout)
    from_file = [json.loads(line) for line in
                 (tmp_path / 'a.jsonl').read_text().splitlines()]
    from_console = _console_points(console_file.read_text())
    assert len(from_file) == summary['samples_emitted'] > 0
    assert from_file == from_console == collector.lines() == \
        stdout_samples
    assert [s['sent'] for s in summary['sinks']] == [len(from_file)] * 4
    assert summary['points_dropped'] == 0
    for name in ('a.jsonl', 'console.log'):
        (tmp_path / name).unlink()
