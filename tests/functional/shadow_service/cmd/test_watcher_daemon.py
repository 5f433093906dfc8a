"""The ``shadow-watcher`` daemon as operators run it: a real process with a
config file, over the twin and a SQLite history."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

DAEMON = [sys.executable, '-c',
          'import sys; from shadow_service.cmd import watcher; '
          'sys.exit(watcher.main())']


def _env():
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
    env['PYTHONPATH'] = root + os.pathsep + env.get('PYTHONPATH', '')
    return env


def _conf(tmp_path, watcher=''):
    path = tmp_path / 'shadow-watcher.conf'
    path.write_text(textwrap.dedent("""\
        [DEFAULT]
        log_file = %s/watcher.log
        [shadow]
        cleanup_on_start = false
        [history]
        store = sqlite
        sqlite_path = %s/history.sqlite
        [sim]
        speedup = 600
        backfill_hours = 0
        [watcher]
        interval = 60
        flavor_ladder = small:1:2048,medium:2:4096
        """ % (tmp_path, tmp_path)) + textwrap.dedent(watcher))
    return str(path)


@contextlib.contextmanager
def _daemon(tmp_path, config_path, until):
    """The daemon running ``config_path`` until its log shows ``until``;
    yields the log's path; SIGTERM at the end must exit 0."""
    proc = subprocess.Popen(DAEMON + ['--config-file', str(config_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=_env(), start_new_session=True)
    log = tmp_path / 'watcher.log'
    try:
        deadline = time.monotonic() + 60
        text = ''
        while time.monotonic() < deadline and until not in text:
            text = log.read_text() if log.exists() else ''
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.2)
        yield log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        rc = proc.wait(30)
    assert rc == 0, log.read_text()


def test_the_daemon_runs_its_loop_and_stops_on_sigterm(tmp_path):
    with _daemon(tmp_path, _conf(tmp_path), 'Run 3:') as log:
        text = log.read_text()
    assert 'policy forecast, every 60 s, dry-run' in text
    assert 'Run 3: 0 VMs watched, 0 decisions (none)' in text


#: Registered at start but no option of an operator's: oslo.config's
#: own command-line options, and the groups oslo.messaging registers
#: without listing them for the generator, and the lock options
#: oslo.concurrency registers when oslo.service imports it (the daemons
#: take no file locks).
NOT_IN_SAMPLE = {'config_dir', 'config_file', 'config_source',
                 'shell_completion'}
GROUPS_NOT_IN_SAMPLE = {'oslo_messaging_metrics', 'oslo_messaging_tracing',
                        'oslo_concurrency'}


def test_every_option_it_registers_is_in_the_sample(tmp_path):
    """The daemon's start-up dump of every registered option (``debug``
    with ``log_options``) against the sample ``tox -e genconfig``
    writes."""
    from tests.unit import test_genconfig

    config = _conf(tmp_path, '[DEFAULT]\ndebug = true\n')
    with _daemon(tmp_path, config, 'Run 1:') as log:
        dump = log.read_text().split('*' * 80)[1]
    registered = set(re.findall(
        r'\[-\] (?:([a-z_0-9]+)\.)?([a-z_0-9]+)\s+= ', dump))
    assert ('', 'graceful_shutdown_timeout') in registered
    assert len(registered) > 200
    sample = test_genconfig.sample_options(test_genconfig.service_sample())
    missing = sorted(
        '[%s] %s' % (group or 'DEFAULT', name)
        for group, name in registered
        if name not in sample.get(group or 'DEFAULT', ())
        and name not in NOT_IN_SAMPLE and group not in GROUPS_NOT_IN_SAMPLE)
    assert not missing


def _start_error(tmp_path, watcher):
    # In a session of its own: a daemon that did not stop (its worker
    # forked) is killed with every process it started.
    proc = subprocess.Popen(
        DAEMON + ['--config-file', _conf(tmp_path, watcher)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env(), start_new_session=True)
    try:
        _out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError('shadow-watcher did not stop at start')
    lines = [line for line in err.splitlines()
             if line.startswith('shadow-watcher:')]
    return proc.returncode, lines


def test_a_malformed_ladder_stops_it_at_start_with_one_line(tmp_path):
    rc, lines = _start_error(tmp_path, 'flavor_ladder = small:1\n')
    assert rc == 2
    assert lines == ['shadow-watcher: cannot start: flavor_ladder[0]: '
                     "'small:1' is not name:vcpus:ram_mb[:disk_gb]"]


def test_an_unknown_policy_stops_it_at_start(tmp_path):
    rc, lines = _start_error(tmp_path, 'policy = psychic\n')
    assert rc == 2 and len(lines) == 1
    assert "No plugin 'psychic' in nova_shadow.policies" in lines[0]
    assert 'forecast, oracle, reactive, rl' in lines[0]


def test_a_bad_option_value_stops_it_at_start_naming_the_option(tmp_path):
    rc, lines = _start_error(tmp_path, 'max_count = many\n')
    assert rc == 2
    assert lines == ["shadow-watcher: cannot start: [watcher] max_count: "
                     "invalid literal for int() with base 10: 'many'"]
    assert 'Traceback' not in (tmp_path / 'watcher.log').read_text()


def test_a_missing_config_file_stops_it_at_start_with_one_line(tmp_path):
    missing = str(tmp_path / 'nowhere.conf')
    proc = subprocess.run(DAEMON + ['--config-file', missing],
                          capture_output=True, text=True, env=_env(),
                          timeout=120)
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    lines = [line for line in proc.stderr.splitlines()
             if line.startswith('shadow-watcher:')]
    assert len(lines) == 1 and lines[0].startswith(
        'shadow-watcher: cannot start: ')
    assert missing in lines[0]


def test_a_nan_option_stops_it_at_start(tmp_path):
    # oslo.config's min and max let NaN through; the loop then never
    # waited between runs.
    rc, lines = _start_error(tmp_path, 'interval = nan\n')
    assert rc == 2
    assert lines == ['shadow-watcher: cannot start: [watcher] interval: '
                     'nan is not a finite number']


def test_a_host_cost_that_is_not_a_number_stops_it_at_start(tmp_path):
    # It was read only when a migration target was chosen: float() then
    # failed in the loop, run after run (NaN and infinity:
    # tests/unit/shadow_service/test_hostchoice.py).
    rc, lines = _start_error(tmp_path, 'host_costs = node-1:inf\n')
    assert rc == 2
    assert lines == ['shadow-watcher: cannot start: [watcher] host_costs: '
                     'the cost of node-1, inf, is not a finite number']


def test_a_recurring_look_back_shorter_than_its_days_stops_it_at_start(
        tmp_path):
    # With fewer days looked back than must agree, no demand ever
    # recurred: the look-back was silently off.
    rc, lines = _start_error(tmp_path, 'recurring_days = 3\n')
    assert rc == 2
    assert lines == ['shadow-watcher: cannot start: [watcher] '
                     'recurring_min_days 4 is above recurring_days 3']


def test_a_hold_window_longer_than_the_history_read_stops_it_at_start(
        tmp_path):
    # No VM ever showed a hold window of history: none was ever shrunk.
    rc, lines = _start_error(tmp_path, 'hold_window = 43200\n'
                             'history_window = 21600\n')
    assert rc == 2
    assert lines == ['shadow-watcher: cannot start: [watcher] hold_window '
                     '43200 is above history_window 21600']


def test_reactive_thresholds_that_cross_stop_it_at_start(tmp_path):
    rc, lines = _start_error(tmp_path, 'policy = reactive\n'
                             '[watcher_policy_reactive]\n'
                             'low_pct = 90\nhigh_pct = 80\n')
    assert rc == 2
    assert lines == ['shadow-watcher: cannot start: '
                     '[watcher_policy_reactive] low_pct 90 is not below '
                     'high_pct 80']


def test_an_unknown_forecaster_stops_it_at_start(tmp_path):
    rc, lines = _start_error(tmp_path, 'forecaster = nosuch\n')
    assert rc == 2 and len(lines) == 1
    assert lines[0].startswith("shadow-watcher: cannot start: [watcher] "
                               "forecaster: unknown forecaster 'nosuch'")


def test_an_unreadable_twin_cluster_stops_it_at_start(tmp_path):
    rc, lines = _start_error(
        tmp_path, '[sim]\ncluster_file = %s\n' % (tmp_path / 'none.yaml'))
    assert rc == 2 and len(lines) == 1
    assert lines[0].startswith('shadow-watcher: cannot start: [sim] '
                               'cluster_file: ')


def test_an_error_in_the_worker_stops_it_instead_of_restarting(tmp_path):
    # Found only when the worker builds the twin (after the fork): the
    # worker used to be restarted for ever, a traceback each time.
    started = time.monotonic()
    rc, lines = _start_error(
        tmp_path, '[sim]\ntrace_dir = %s\n' % (tmp_path / 'none'))
    assert rc == 2, lines
    assert len(lines) == 1 and lines[0].startswith(
        'shadow-watcher: cannot start: ')
    assert 'none' in lines[0]
    assert time.monotonic() - started < 60
    assert 'Traceback' not in (tmp_path / 'watcher.log').read_text()


def test_an_unreachable_coordination_backend_stops_it_at_start(tmp_path):
    rc, lines = _start_error(
        tmp_path, 'coordination_url = redis://127.0.0.1:1\n')
    assert rc == 2 and len(lines) == 1
    assert lines[0].startswith('shadow-watcher: cannot start: coordination '
                               'backend redis://127.0.0.1:1')


def test_a_lock_shorter_than_a_renewals_calls_stops_it_at_start(tmp_path):
    # A renewal makes up to four calls of up to coordination_timeout
    # each: a lock that expires sooner would be lost while they wait.
    rc, lines = _start_error(
        tmp_path, 'coordination_url = redis://127.0.0.1:1\n'
        'leader_timeout = 10\ncoordination_timeout = 3\n')
    assert rc == 2 and len(lines) == 1
    assert lines[0].startswith(
        'shadow-watcher: cannot start: [watcher] leader_timeout (10 s) '
        'must be at least 4 times the longest a coordination call may '
        'take (3 s'), lines


def test_an_unpaced_twin_runs_at_real_time_in_the_daemon(tmp_path):
    """``[sim] speedup 0`` (as fast as the machine can) would spin the
    loop and fill the history; the daemon paces the twin at real time."""
    path = tmp_path / 'unpaced.conf'
    path.write_text(open(_conf(tmp_path)).read()
                    .replace('speedup = 600', 'speedup = 0')
                    .replace('interval = 60', 'interval = 1'))
    with _daemon(tmp_path, path, 'Run 1:') as log:
        first = time.monotonic()
        time.sleep(3.0)
        text = log.read_text()
        runs = text.count('VMs watched')
        elapsed = time.monotonic() - first
    assert 'The twin runs at real time in the daemon' in text
    # One run a second (interval 1), not thousands.
    assert 2 <= runs <= elapsed + 3, runs


def _wait_for_log(log, text, count=1, timeout=90.0):
    deadline = time.monotonic() + timeout
    while log.read_text().count(text) < count:
        assert time.monotonic() < deadline, 'no %r in %s' % (
            text, log.read_text()[-3000:])
        time.sleep(0.2)
    return log.read_text()


def test_a_coordination_outage_means_not_leading_and_the_loop_goes_on(
        tmp_path, own_redis):
    # The watcher's own Redis stops answering for a while (SIGSTOP; with
    # a socket timeout each call fails within seconds).  The failed lock
    # renewal between runs used to end the loop for good while the
    # process and its leader metric stayed up.
    from tests.fixtures import influxdb as influxdb_fixture
    from tests.functional.shadow_service.cmd import test_exporter

    port = influxdb_fixture.free_port()
    config = _conf(tmp_path, 'coordination_url = %s?socket_timeout=1\n'
                   'leader_timeout = 120\n'
                   '[prometheus]\nenabled = true\nhost = 127.0.0.1\n'
                   'watcher_port = %d\n' % (own_redis.url, port))
    with _daemon(tmp_path, config, 'Run 2:') as log:
        _wait_for_log(log, 'is now the leader')
        scraped = test_exporter.scrape(port)
        assert test_exporter.value(scraped, 'nova_shadow_watcher_leader') \
            == 1
        own_redis.pause()
        try:
            text = _wait_for_log(log, 'Leader election failed')
            failures = text.count('Leader election failed')
            assert test_exporter.value(test_exporter.scrape(port),
                                       'nova_shadow_watcher_leader') == 0
            runs = test_exporter.value(test_exporter.scrape(port),
                                       'nova_shadow_watcher_runs_total')
            time.sleep(5.0)             # more renewals fail meanwhile
        finally:
            own_redis.resume()
        text = _wait_for_log(log, 'The coordination backend answers again')
        assert text.count('Leader election failed') == failures == 1
        deadline = time.monotonic() + 60
        while test_exporter.value(
                test_exporter.scrape(port),
                'nova_shadow_watcher_runs_total') < runs + 2:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        assert test_exporter.value(test_exporter.scrape(port),
                                   'nova_shadow_watcher_leader') == 1
    assert 'Renewing the leader lock failed' not in log.read_text()


@pytest.mark.parametrize('options, option', [
    # tooz finds no driver without the scheme's "://", and says the URL.
    ('coordination_url = redis//:s3cret@127.0.0.1:6379\n',
     'coordination_url'),
    # The history store's URL is not a URI (a host oslo.config cannot
    # read): the validator shows its authority.
    ('[history]\nstore = influxdb\n'
     'influx_url = http://admin:s3cret@[127.0.0.1/\n', '[history] influx_url'),
    ('scale_webhook = https://hook:s3cret@[heat/scale\n',
     '[watcher] scale_webhook'),
], ids=['coordination-url', 'influx-url', 'scale-webhook'])
def test_no_password_of_any_url_option_is_shown_when_it_cannot_start(
        tmp_path, options, option):
    # Before: only transport_url's password was masked; these were shown
    # as written, in the one line and in the log.
    rc, lines = _start_error(tmp_path, options)
    assert rc == 2 and len(lines) == 1, lines
    assert option in lines[0], lines[0]
    assert ':***@' in lines[0], lines[0]
    assert 's3cret' not in lines[0]
    assert 's3cret' not in (tmp_path / 'watcher.log').read_text()
