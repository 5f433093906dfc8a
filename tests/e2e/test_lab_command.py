"""``nova-shadow lab`` when things go wrong: stopped by a signal, as a CI
time-out or a service manager stops it (the lab and shadow-service stop
in order, however many more signals come meanwhile, the summary is
written and the command's temporary directory goes), also when the
signal comes while the lab stops at the end of its run (exit 143 all
the same), and a lab that cannot start (the error says why).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

from nova_shadow_lab import cgroups
from tests import lab_support

pytestmark = [pytest.mark.nova, pytest.mark.rabbit, pytest.mark.slow]

LAB = {'hosts': [{'name': 'term-solo', 'share': {'cpu': 0.2}}]}


def _start_lab(tmp_path, rabbit_url, *args, **environ):
    """``(process, summary path)`` of ``nova-shadow lab`` started on the
    one-host lab, its output piped."""
    lab_support.require_lab()
    config = tmp_path / 'lab.yaml'
    config.write_text(yaml.safe_dump(LAB))
    summary_path = tmp_path / 'summary.json'
    env = dict(os.environ, PYTHONPATH=lab_support.REPO,
               NOVA_SHADOW_RABBIT_URL=rabbit_url, PYTHONUNBUFFERED='1',
               **environ)
    command = subprocess.Popen(
        [sys.executable, '-m', 'shadow_service.cmd.cli', 'lab',
         '--config', str(config), '--summary', str(summary_path)]
        + list(args),
        cwd=lab_support.REPO, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    return command, summary_path


def test_sigterm_stops_the_lab_in_order_and_removes_its_files(
        tmp_path, rabbit_url):
    temp = tmp_path / 'tmp'
    temp.mkdir()
    # With a pre-flight evaluation (its shadows run --min-run-time, 10 s)
    # the SIGTERM lands while the lab runs, not after its run, when the
    # lab is already stopping by itself and only notes signals.
    command, summary_path = _start_lab(tmp_path, rabbit_url, '--preflight',
                                       TMPDIR=str(temp))
    try:
        up = command.stdout.readline()
        match = re.search(r'shadow-service pid (\d+) .* files in (\S+)$',
                          up.strip())
        assert match, up + command.stderr.read()[-2000:]
        service_pid, directory = int(match.group(1)), match.group(2)
        assert os.path.isdir(directory)
        run = json.loads(open(os.path.join(directory, 'lab.json')).read())
        command.send_signal(signal.SIGTERM)
        # More signals while the lab stops (an impatient service manager,
        # a Ctrl-C): noted, and the clean-up goes on.
        time.sleep(0.5)
        command.send_signal(signal.SIGINT)
        time.sleep(0.2)
        command.send_signal(signal.SIGTERM)
        out, err = command.communicate(timeout=120)
    finally:
        if command.poll() is None:
            command.kill()
            command.wait()
    assert command.returncode == 128 + signal.SIGTERM, (out, err)
    assert 'Traceback' not in err, err
    assert 'terminated' in err
    assert err.count('still stopping the lab in order') == 2, err
    assert not os.path.exists(directory)
    assert not lab_support.pid_alive(service_pid)
    mounts = cgroups.hierarchies()
    prefix = run['cgroup'].rsplit('/', 1)[0]
    assert run['run'] not in cgroups.run_names(mounts, prefix)
    summary = json.loads(summary_path.read_text())
    assert summary['hosts'] == ['term-solo']


def test_a_sigterm_while_the_lab_stops_by_itself_exits_143(
        tmp_path, rabbit_url):
    command, summary_path = _start_lab(tmp_path, rabbit_url)
    try:
        lines = []
        # The run is over and the lab's own stop has begun (it lasts
        # seconds: the service and Nova's services stop in order).
        while not lines or lines[-1] != 'stopping the lab\n':
            line = command.stdout.readline()
            assert line, ''.join(lines) + command.stderr.read()[-2000:]
            lines.append(line)
        command.send_signal(signal.SIGTERM)
        out, err = command.communicate(timeout=120)
    finally:
        if command.poll() is None:
            command.kill()
            command.wait()
    assert command.returncode == 128 + signal.SIGTERM, (out, err)
    assert 'Traceback' not in err, err
    assert 'SIGTERM: still stopping the lab in order' in err, err
    assert err.endswith('nova-shadow lab: terminated (SIGTERM) while it '
                        'stopped; the lab was stopped\n'), err
    # The stop it interrupted was carried out in full.
    assert out.startswith('lab stopped: shadow-service exit 0; 0 lab '
                          'cgroup directories left'), out
    summary = json.loads(summary_path.read_text())
    assert summary['boot']['host'] == 'term-solo'
    assert summary['lab_cgroups_after_stop'] == []


def test_a_lab_that_cannot_start_says_why(tmp_path, rabbit_url):
    lab_support.require_lab()
    not_a_directory = tmp_path / 'file'
    not_a_directory.write_text('')
    config = tmp_path / 'lab.yaml'
    config.write_text(yaml.safe_dump(dict(
        LAB, lab={'state_dir': str(not_a_directory / 'state')})))
    env = dict(os.environ, PYTHONPATH=lab_support.REPO,
               NOVA_SHADOW_RABBIT_URL=rabbit_url)
    done = subprocess.run(
        [sys.executable, '-m', 'shadow_service.cmd.cli', 'lab',
         '--config', str(config), '--directory', str(tmp_path / 'stack')],
        cwd=lab_support.REPO, env=env, capture_output=True, text=True,
        timeout=300)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stderr.strip() == (
        "nova-shadow lab: NotADirectoryError: [Errno 20] Not a directory: "
        "'%s'" % (not_a_directory / 'state')), done.stderr
