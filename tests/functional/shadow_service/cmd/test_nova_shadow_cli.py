"""``nova-shadow`` as an operator runs it, in its own process: what it
says about a configuration it cannot use."""

import os
import signal
import subprocess
import time

import pytest

from tests import service_support
from tests.functional.shadow_service.cmd import test_service_daemon as d


def _run(*args, timeout=60):
    return subprocess.run(d.CLI + list(args), capture_output=True,
                          text=True, env=d._env(), timeout=timeout)


def test_a_missing_config_file_is_a_bad_argument(tmp_path):
    missing = tmp_path / 'no-such.conf'
    done = _run('--config-file', str(missing), 'evaluate', '--hosts',
                'node-01')
    assert done.returncode == 2, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith('error: cannot read the configuration')
    assert str(missing) in lines[0]


def test_an_unparsable_config_file_is_a_bad_argument(tmp_path):
    broken = tmp_path / 'broken.conf'
    broken.write_text('[shadow\ntopic = x\n')
    done = _run('--config-file', str(broken), 'show',
                '3f2b1c4e-0000-4000-8000-000000000000')
    assert done.returncode == 2, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert 'cannot read the configuration' in lines[0]
    assert str(broken) in lines[0]


def test_remote_commands_without_a_broker_stop_at_once(tmp_path):
    # A configuration without transport_url: oslo.messaging would fall
    # back to a guest on localhost and wait 30 s for no service.
    conf = tmp_path / 'no-broker.conf'
    conf.write_text('[shadow]\ntopic = shadow-nobody-%s\n' % tmp_path.name)
    for args in (['evaluate', '--remote', '--hosts', 'node-01'],
                 ['show', '3f2b1c4e-0000-4000-8000-000000000000']):
        done = _run('--config-file', str(conf), *args, timeout=20)
        assert done.returncode == 2, done
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith('error: no message broker')
        assert 'transport_url' in lines[0]
        assert 'evaluation' not in done.stdout


def test_a_bad_transport_url_is_a_bad_argument_naming_its_file(tmp_path):
    # Before: "error: InvalidTransportURL: No scheme specified", exit 1.
    conf = tmp_path / 'shadow-service.conf'
    conf.write_text('[DEFAULT]\ntransport_url = rabbit//guest:s3cret@ctl/\n')
    done = _run('--config-file', str(conf), 'show',
                '3f2b1c4e-0000-4000-8000-000000000000', timeout=20)
    assert done.returncode == 2, done
    assert done.stderr.splitlines() == [
        'error: transport_url (in %s) rabbit//guest:***@ctl/ cannot be '
        'used: it has no driver name before "://"; a valid one looks like '
        'rabbit://user:pass@host:port/vhost' % conf]


@pytest.mark.rabbit
def test_a_service_that_does_not_answer_is_named_by_its_topic(tmp_path,
                                                              rabbit_url):
    topic = service_support.unique_topic()
    conf = tmp_path / 'nobody.conf'
    conf.write_text('[DEFAULT]\ntransport_url = %s\n[shadow]\ntopic = %s\n'
                    % (rabbit_url, topic))
    done = _run('--config-file', str(conf), '--rpc-wait', '2.5', 'show',
                '3f2b1c4e-0000-4000-8000-000000000000', timeout=90)
    assert done.returncode == 1, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0] == ('error: shadow-service did not answer within 2.5 s '
                        'on topic %s (is it running, on this broker?)'
                        % topic)


def test_a_wait_that_is_not_a_positive_number_is_refused():
    done = _run('--rpc-wait', 'inf', 'show',
                '3f2b1c4e-0000-4000-8000-000000000000', timeout=20)
    assert done.returncode == 2, done
    assert 'Traceback' not in done.stderr
    assert ("argument --rpc-wait: must be a number of seconds above 0 and "
            "at most 3600, got 'inf'") in done.stderr


@pytest.mark.rabbit
def test_remote_wait_for_an_interrupted_evaluation_fails(tmp_path,
                                                         rabbit_url):
    daemon = d.Daemon(tmp_path, rabbit_url, service_support.unique_topic())
    with open(daemon.conf_path, 'a') as f:
        # The evaluation measures its whole budget at real time, so it is
        # still running when its service is killed.
        f.write('[shadow]\nmin_run_time = 120\nconfidence_target = 1.0\n'
                'evaluation_schedule = pool\n[sim]\nspeedup = 1\n')
    daemon.start()
    waiting = subprocess.Popen(
        d.CLI + ['--config-file', str(daemon.conf_path), 'evaluate',
                 '--remote', '--hosts', 'node-01,node-02', '--budget',
                 '300', '--wait', '--json'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # The test reads the first line while the command waits (on
        # standard error: with --json standard output is JSON alone).
        env=dict(d._env(), PYTHONUNBUFFERED='1'))
    try:
        started = waiting.stderr.readline()
        assert 'started' in started, started
        evaluation_id = started.split()[1]
        deadline = time.monotonic() + 60
        while True:
            state = daemon.api.get_evaluation({}, evaluation_id, timeout=30)
            if state['status'] == 'running' and state['progress'] > 0:
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.5)
        os.killpg(daemon.proc.pid, signal.SIGKILL)
        daemon.proc.wait(30)
        daemon.log.close()
        daemon.start()
        out, err = waiting.communicate(timeout=120)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait(10)
        if daemon.proc.poll() is None:
            daemon.stop()
    assert waiting.returncode == 1, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith('error: ShadowException: evaluation %s ended '
                               'interrupted: the service stopped'
                               % evaluation_id), err
    assert out == ''


def test_ctrl_c_ends_an_evaluation_with_one_line(tmp_path):
    conf = tmp_path / 'real-time.conf'
    # The twin at real time: the evaluation is still running at Ctrl-C.
    conf.write_text('[sim]\nspeedup = 1\n')
    running = subprocess.Popen(
        d.CLI + ['--config-file', str(conf), 'evaluate', '--hosts',
                 'node-01,node-02', '--budget', '60', '--history', 'memory',
                 '--progress', 'always'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=d._env())
    try:
        seen = b''
        deadline = time.monotonic() + 60
        while b'running' not in seen:
            assert time.monotonic() < deadline, seen
            chunk = os.read(running.stderr.fileno(), 4096)
            assert chunk, seen
            seen += chunk
        running.send_signal(signal.SIGINT)
        out, err = running.communicate(timeout=60)
    finally:
        if running.poll() is None:
            running.kill()
            running.wait(10)
    err = err.decode()
    assert running.returncode == 130, err
    assert 'Traceback' not in err
    assert err.splitlines()[-1] == 'error: interrupted'
    assert out == b''


def _closed_port():
    """A loopback port nothing listens on (connections are refused)."""
    import socket

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.parametrize('args', [
    ['show', '3f2b1c4e-0000-4000-8000-000000000000'],
    ['evaluate', '--remote', '--hosts', 'node-01'],
], ids=['show', 'evaluate-remote'])
def test_a_broker_that_cannot_be_reached_stops_the_command(tmp_path, args):
    # Before, the call never returned: oslo.messaging retries the
    # connection forever, whatever the call's timeout.
    conf = tmp_path / 'unreachable.conf'
    conf.write_text('[DEFAULT]\ntransport_url = rabbit://guest:guest@'
                    '127.0.0.1:%d/\n[shadow]\ntopic = %s\n'
                    % (_closed_port(), service_support.unique_topic()))
    started = time.monotonic()
    done = _run('--config-file', str(conf), '--rpc-wait', '1', *args,
                timeout=45)
    took = time.monotonic() - started
    assert done.returncode == 1, done
    assert 'Traceback' not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        'error: no answer from shadow-service within 1 s: is the message '
        'broker reachable?')
    # The wait, the deadline's 5 s, and the interpreter's start.
    assert took < 30, took
    assert 'evaluation' not in done.stdout
