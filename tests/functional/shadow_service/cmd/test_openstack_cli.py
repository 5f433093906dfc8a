"""``openstack shadow ...``: the real ``openstack`` command (python-
openstackclient with this plugin installed) against a real shadow-service
process over the real RabbitMQ.

The service's history (SQLite) starts with the decision records of a real
watcher run over the twin (dry-run, so it records what it would do), and
its ``[shadow] profile_dirs`` holds one operator profile.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest
import yaml

from shadow_service.history import sqlite as sqlite_store
from shadow_service.watcher import records
from tests import service_support
from tests import watcher_support
from tests.functional.shadow_service.cmd import test_service_daemon

pytestmark = pytest.mark.rabbit

OPENSTACK = os.path.join(os.path.dirname(sys.executable), 'openstack')
HOSTS = ('node-01', 'node-16')
OPERATOR_PROFILE = """\
name: nightly-report
description: the finance team's nightly report run
components:
  cpu: {workers: 2}
"""


def _watcher_records(tmp_path, history_path):
    """Run the real watcher (reactive policy, dry-run) over the twin for
    a day and a few hours, started three days ago so its records fall in
    the service's recent past; its history is ``history_path``."""
    conf = watcher_support.make_conf(
        tmp_path, watcher={'policy': 'reactive', 'dry_run': True},
        sim={'start_time': time.time() - 3 * 86400.0})
    history = sqlite_store.SQLiteStore(path=str(history_path))
    from shadow_service.clouds.sim import driver as sim_driver

    driver = sim_driver.SimDriver(conf, history)
    day = int(86400 / watcher_support.STEP_S)
    watcher_support.place(driver, 'vm-1', [1.0] * day + [6.0] * 200)
    assembled = watcher_support.build(conf, driver, history)
    driver.fast_forward(day * watcher_support.STEP_S)
    watcher_support.run(assembled, driver, 12)
    found = records.read(history, 0, driver.now() + 1)
    assembled.close()
    return found


@pytest.fixture(scope='module')
def daemon(tmp_path_factory, rabbit_url):
    if not os.path.exists(OPENSTACK):
        pytest.fail('python-openstackclient is not installed next to %s'
                    % sys.executable)
    tmp_path = tmp_path_factory.mktemp('openstack-cli')
    written = _watcher_records(tmp_path_factory.mktemp('watcher'),
                               tmp_path / 'history.sqlite')
    profiles = tmp_path / 'profiles'
    profiles.mkdir()
    (profiles / 'nightly-report.yaml').write_text(OPERATOR_PROFILE)
    running = test_service_daemon.Daemon(tmp_path, rabbit_url,
                                         service_support.unique_topic())
    with open(running.conf_path, 'a') as f:
        f.write('[shadow]\nprofile_dirs = %s\n' % profiles)
    running.start()
    running.decisions = written
    yield running
    if running.proc.poll() is None:
        running.stop()


def openstack(daemon, *args):
    """Run ``openstack <args>`` with the service's configuration file."""
    env = {k: v for k, v in test_service_daemon._env().items()
           if not k.startswith('OS_')}
    env['OS_SHADOW_CONFIG_FILE'] = str(daemon.conf_path)
    return _run([OPENSTACK] + list(args), env)


def _run(argv, env):
    import subprocess

    return subprocess.run(argv, capture_output=True, text=True, env=env,
                          timeout=300)


def _ok(result):
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def test_evaluate_waits_with_a_progress_bar_then_shows_and_lists(daemon):
    args = ['shadow', 'evaluate', '--budget', '4', '--wait',
            '--progress', 'always', '-f', 'json']
    for host in HOSTS:
        args += ['--host', host]
    result = openstack(daemon, *args)
    shown = json.loads(_ok(result))
    assert shown['status'] == 'finished'
    assert {h['host'] for h in shown['ranking']} == set(HOSTS)
    assert shown['best_host'] == shown['ranking'][0]['host']
    assert shown['hint'] == 'shadow_evaluation=%s' % shown['id']
    assert '100%' in result.stderr and '[#' in result.stderr

    again = yaml.safe_load(_ok(openstack(
        daemon, 'shadow', 'evaluation', 'show', shown['id'], '-f',
        'yaml')))
    assert again['status'] == 'finished'
    assert again['ranking'] == shown['ranking']

    table = _ok(openstack(daemon, 'shadow', 'evaluation', 'list'))
    assert shown['id'] in table and 'Best Host' in table
    values = _ok(openstack(daemon, 'shadow', 'evaluation', 'list',
                           '--since', '2h', '-f', 'value', '-c', 'ID',
                           '-c', 'Status', '-c', 'Best Host'))
    assert '%s finished %s' % (shown['id'], shown['best_host']) in \
        values.splitlines()


def test_an_evaluation_started_without_wait_can_be_deleted(daemon):
    started = _ok(openstack(
        daemon, 'shadow', 'evaluate', '--host', HOSTS[0], '--host',
        HOSTS[1], '--budget', '3', '-f', 'value', '-c', 'id'))
    evaluation_id = started.strip()
    assert uuid.UUID(evaluation_id)
    deleted = openstack(daemon, 'shadow', 'evaluation', 'delete',
                        evaluation_id, str(uuid.UUID(int=1)))
    assert deleted.returncode == 1
    assert '1 of 2 evaluations failed to delete' in deleted.stderr
    missing = openstack(daemon, 'shadow', 'evaluation', 'show',
                        evaluation_id)
    assert missing.returncode == 1
    assert 'Evaluation %s was not found.' % evaluation_id in missing.stderr
    assert 'Traceback' not in missing.stderr


@pytest.fixture
def strict_daemon(tmp_path, rabbit_url):
    """A service that cancels an evaluation not polled for 2 s, on a
    twin paced at real time, whose evaluations measure their whole
    budget."""
    running = test_service_daemon.Daemon(tmp_path, rabbit_url,
                                         service_support.unique_topic())
    with open(running.conf_path, 'a') as f:
        f.write('[shadow]\nunpolled_evaluation_timeout = 2\n'
                'min_run_time = 60\nconfidence_target = 1.0\n'
                'evaluation_schedule = pool\n[sim]\nspeedup = 1\n')
    running.start()
    yield running
    if running.proc.poll() is None:
        running.stop()


def test_the_clients_evaluations_are_not_cancelled_as_unpolled(
        strict_daemon):
    hosts = ['--host', HOSTS[0], '--host', HOSTS[1]]
    # Not waiting (for a later shadow_evaluation hint), through both
    # clients: nothing polls them, and they run on.  (Each its own
    # workload: none is answered from another's history.)
    started = [_ok(openstack(strict_daemon, 'shadow', 'evaluate',
                             '--profile', 'db-oltp', '--budget', '120',
                             '-f', 'value', '-c', 'id', *hosts)).strip()]
    remote = strict_daemon.cli('evaluate', '--remote', '--hosts',
                               ','.join(HOSTS), '--profile', 'batch-cpu',
                               '--budget', '120')
    assert remote.returncode == 0, remote.stderr
    started.append(remote.stdout.split()[1])
    # Waiting: polled every 0.5 s, it runs to its end.
    shown = json.loads(_ok(openstack(
        strict_daemon, 'shadow', 'evaluate', '--profile', 'web',
        '--budget', '5', '--wait', '-f', 'json', *hosts)))
    assert shown['status'] == 'finished'
    for evaluation_id in started:
        state = strict_daemon.api.get_evaluation({}, evaluation_id,
                                                 timeout=30)
        assert state['status'] == 'running', state
    for evaluation_id in started:
        strict_daemon.api.cancel_evaluation({}, evaluation_id)
    assert 'not polled' not in strict_daemon.read_log()



def _recorded(running, evaluation_id):
    """The service's own history record of ``evaluation_id``, if any."""
    history = sqlite_store.SQLiteStore(
        path=str(running.tmp_path / 'history.sqlite'))
    try:
        return history.get_evaluation(evaluation_id)
    finally:
        history.close()


def test_a_waited_evaluation_its_service_lost_is_a_failure(strict_daemon):
    # The service is killed while the command waits, and started again:
    # the evaluation it ran ended without a ranking (interrupted).
    env = {k: v for k, v in test_service_daemon._env().items()
           if not k.startswith('OS_')}
    env['OS_SHADOW_CONFIG_FILE'] = str(strict_daemon.conf_path)
    waiting = subprocess.Popen(
        [OPENSTACK, '--os-shadow-rpc-wait', '60', 'shadow', 'evaluate',
         '--host', HOSTS[0], '--host', HOSTS[1], '--budget', '60',
         '--wait', '-f', 'json'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        # Killed once the evaluation runs and its start is recorded.
        deadline = time.monotonic() + 60
        while True:
            running = strict_daemon.api.list_evaluations(
                {}, status='running', timeout=30)
            if running and _recorded(strict_daemon,
                                     running[0]['evaluation_id']):
                break
            assert time.monotonic() < deadline, strict_daemon.read_log()
            time.sleep(0.2)
        os.killpg(strict_daemon.proc.pid, signal.SIGKILL)
        strict_daemon.proc.wait(30)
        strict_daemon.log.close()
        strict_daemon.start()
        out, err = waiting.communicate(timeout=240)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 1, (out, err)
    assert out == ''
    assert 'Traceback' not in err
    last = err.splitlines()[-1]
    assert last.startswith('evaluation ') and last.endswith(
        ' ended interrupted: the service stopped before the evaluation '
        'finished'), err

@pytest.fixture
def paced_daemon(tmp_path, rabbit_url):
    """A service on a twin paced at real time, whose evaluations measure
    their whole budget."""
    running = test_service_daemon.Daemon(tmp_path, rabbit_url,
                                         service_support.unique_topic())
    with open(running.conf_path, 'a') as f:
        f.write('[shadow]\nmin_run_time = 60\nconfidence_target = 1.0\n'
                'evaluation_schedule = pool\n[sim]\nspeedup = 1\n')
    running.start()
    yield running
    if running.proc.poll() is None:
        os.killpg(running.proc.pid, signal.SIGCONT)
        running.stop()


def _paused_while_waiting(running, command, env, pause_s):
    """``(returncode, out, err)`` of ``command``, a wait for an
    evaluation, while ``running`` (the service) is paused for ``pause_s``
    once the evaluation runs."""
    waiting = subprocess.Popen(command, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not running.api.list_evaluations({}, status='running',
                                               timeout=30):
            assert time.monotonic() < deadline, running.read_log()
            time.sleep(0.2)
        os.killpg(running.proc.pid, signal.SIGSTOP)
        time.sleep(pause_s)
        os.killpg(running.proc.pid, signal.SIGCONT)
        out, err = waiting.communicate(timeout=120)
    finally:
        os.killpg(running.proc.pid, signal.SIGCONT)
        if waiting.poll() is None:
            waiting.kill()
    return waiting.returncode, out, err


def test_a_wait_goes_on_through_looks_the_service_does_not_answer(
        paced_daemon):
    # The service stops answering for longer than a call may wait (it is
    # paused here; a restart or a lost answer look the same to the
    # client), then answers again: the wait goes on to the ranking.
    env = {k: v for k, v in test_service_daemon._env().items()
           if not k.startswith('OS_')}
    env['OS_SHADOW_CONFIG_FILE'] = str(paced_daemon.conf_path)
    # Two looks' time and more: at least one goes unanswered.
    returncode, out, err = _paused_while_waiting(
        paced_daemon,
        [OPENSTACK, '--os-shadow-rpc-wait', '2', 'shadow', 'evaluate',
         '--host', HOSTS[0], '--host', HOSTS[1], '--budget', '15',
         '--wait', '-f', 'json'], env, 5.0)
    assert returncode == 0, (out, err)
    assert 'did not answer within 2 s' in err and 'asking again' in err
    assert 'Traceback' not in err
    shown = json.loads(out)
    assert shown['status'] == 'finished'
    assert shown['best_host'] in HOSTS


def test_nova_shadow_remote_wait_goes_on_through_a_look_not_answered(
        paced_daemon):
    # The same through nova-shadow evaluate --remote --wait.
    returncode, out, err = _paused_while_waiting(
        paced_daemon,
        test_service_daemon.CLI + [
            '--config-file', str(paced_daemon.conf_path), '--rpc-wait', '2',
            'evaluate', '--remote', '--wait', '--hosts', ','.join(HOSTS[:2]),
            '--budget', '15', '--format', 'json'],
        test_service_daemon._env(), 5.0)
    assert returncode == 0, (out, err)
    assert ('warning: shadow-service did not answer within 2 s; asking '
            'again') in err
    assert 'Traceback' not in err
    ranking = json.loads(out)
    assert ranking['hosts'][0]['host'] in HOSTS


def test_profiles_are_listed_and_shown(daemon):
    listed = json.loads(_ok(openstack(daemon, 'shadow', 'profile', 'list',
                                      '-f', 'json')))
    by_name = {row['Name']: row for row in listed}
    assert by_name['web']['Source'] == 'builtin'
    assert by_name['nightly-report'] == {
        'Name': 'nightly-report', 'Source': 'operator',
        'Description': "the finance team's nightly report run"}
    shown = json.loads(_ok(openstack(daemon, 'shadow', 'profile', 'show',
                                     'nightly-report', '-f', 'json')))
    assert shown['source'] == 'operator'
    assert shown['components']['cpu']['workers'] == 2


def test_the_watchers_decisions_are_listed(daemon):
    assert daemon.decisions, 'the watcher run recorded no decision'
    listed = json.loads(_ok(openstack(
        daemon, 'shadow', 'decision', 'list', '--since', '7d', '--long',
        '-f', 'json')))
    newest_first = sorted(daemon.decisions, key=lambda r: r['at'],
                          reverse=True)
    assert [row['Decision ID'] for row in listed] == [
        r['decision_id'] for r in newest_first]
    first = listed[0]
    assert first['Instance'] == 'vm-1'
    assert first['Outcome'] in ('dry_run', 'suppressed')
    assert first['Policy'] == 'ReactivePolicy'
    assert first['Why']
    ups = json.loads(_ok(openstack(
        daemon, 'shadow', 'decision', 'list', '--since', '7d',
        '--action', 'resize_up', '--long', '-f', 'json')))
    expected = [r['decision_id'] for r in newest_first
                if r['action'] == 'resize_up']
    assert expected and [r['Decision ID'] for r in ups] == expected


def test_a_missing_broker_says_what_is_wrong():
    # A bad --since or --limit is a usage error of the parser, exit 2:
    # tests/unit/shadow_service/osc/test_arguments.py runs the openstack
    # command in-process for those.
    env = {k: v for k, v in test_service_daemon._env().items()
           if not k.startswith('OS_')}
    env['OS_SHADOW_CONFIG_FILE'] = os.devnull
    nowhere = _run([OPENSTACK, 'shadow', 'profile', 'list'], env)
    assert nowhere.returncode == 1
    assert 'no message broker' in nowhere.stderr


@pytest.mark.parametrize('wait', ['nan', 'inf', '-1', '0', 'soon'])
def test_a_wait_that_is_not_a_positive_number_is_refused(wait):
    env = {k: v for k, v in os.environ.items() if not k.startswith('OS_')}
    result = _run([OPENSTACK, '--os-shadow-rpc-wait', wait, 'shadow',
                   'profile', 'list'], env)
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    assert ("argument --os-shadow-rpc-wait: must be a number of seconds "
            "above 0 and at most 3600, got '%s'" % wait) in result.stderr


@pytest.mark.parametrize('progress', ['always', 'auto'])
def test_progress_without_wait_is_refused_before_the_broker(progress):
    # Before, it was silently ignored: the evaluation started and nothing
    # was drawn.  The broker is never asked: none is configured here.
    env = {k: v for k, v in os.environ.items() if not k.startswith('OS_')}
    env['OS_SHADOW_CONFIG_FILE'] = os.devnull
    result = _run([OPENSTACK, 'shadow', 'evaluate', '--host', 'node-01',
                   '--progress', progress], env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ''
    assert 'Traceback' not in result.stderr
    assert result.stderr.startswith('usage: openstack shadow evaluate')
    assert ('openstack shadow evaluate: error: argument --progress: only '
            'applies with --wait') in result.stderr
    assert 'no message broker' not in result.stderr


def test_the_openstack_command_finds_the_plugin():
    assert shutil.which('openstack') or os.path.exists(OPENSTACK)
    result = _run([OPENSTACK, 'help', 'shadow', 'evaluate'],
                  {k: v for k, v in os.environ.items()
                   if not k.startswith('OS_')})
    assert result.returncode == 0, result.stderr
    assert '--wait' in result.stdout and '--host' in result.stdout


def test_interrupted_evaluations_can_be_listed(tmp_path, rabbit_url):
    # What a killed service leaves: the record written when the
    # evaluation started, status running, and no later one.
    interrupted_id = str(uuid.uuid4())
    history = sqlite_store.SQLiteStore(path=str(tmp_path / 'history.sqlite'))
    history.put_evaluation(
        {'evaluation_id': interrupted_id, 'status': 'running',
         'request': {'flavor': {'vcpus': 2, 'ram_mb': 2048},
                     'profile': 'web'}}, when=time.time() - 60)
    history.close()
    running = test_service_daemon.Daemon(tmp_path, rabbit_url,
                                         service_support.unique_topic())
    running.start()
    try:
        listed = _ok(openstack(running, 'shadow', 'evaluation', 'list',
                               '--status', 'interrupted', '-f', 'value',
                               '-c', 'ID', '-c', 'Status'))
    finally:
        running.stop()
    assert listed.splitlines() == ['%s interrupted' % interrupted_id]


def test_a_recorded_evaluation_shows_when_it_ran(tmp_path, rabbit_url):
    running = test_service_daemon.Daemon(tmp_path, rabbit_url,
                                         service_support.unique_topic())
    running.start()
    try:
        shown = json.loads(_ok(openstack(
            running, 'shadow', 'evaluate', '--host', HOSTS[0], '--host',
            HOSTS[1], '--budget', '3', '--wait', '-f', 'json')))
        assert shown['started_at'] and shown['finished_at']
        # Started again, the service reads it from its history store.
        running.stop()
        running.start()
        again = json.loads(_ok(openstack(
            running, 'shadow', 'evaluation', 'show', shown['id'], '-f',
            'json')))
    finally:
        running.stop()
    assert again['status'] == 'finished'
    assert again['ranking'] == shown['ranking']
    assert (again['started_at'], again['finished_at']) == (
        shown['started_at'], shown['finished_at'])
