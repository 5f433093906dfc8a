"""Every start-up error of ``shadow-service``: exit status 2, one clear
line on stderr and in ``log_file``, no worker restarted; a broker that is
down at start is waited for with backoff."""

import os
import signal
import subprocess
import time

import pytest

from tests.fixtures import influxdb as influxdb_fixture
from tests.functional.shadow_service.cmd import test_service_daemon as d

pytestmark = pytest.mark.rabbit


def _conf(tmp_path, rabbit_url, extra):
    path = tmp_path / 'shadow-service.conf'
    d._write_conf(path, rabbit_url, 'startup-errors', tmp_path)
    with open(path, 'a') as f:
        f.write('[DEFAULT]\nlog_file = %s\n' % (tmp_path / 'service.log'))
        f.write(extra)
    return path


def _run(tmp_path, rabbit_url, extra, timeout=120):
    path = _conf(tmp_path, rabbit_url, extra)
    return subprocess.run(d.DAEMON + ['--config-file', str(path)],
                          capture_output=True, text=True, env=d._env(),
                          timeout=timeout)


def _with_password(url, password):
    scheme, rest = url.split('://', 1)
    rest = rest.split('@', 1)[-1]
    return '%s://guest:%s@%s' % (scheme, password, rest)


@pytest.mark.parametrize('extra, says', [
    ('[sim]\ncluster_file = /nonexistent/cluster.yaml\n',
     '[sim] cluster_file: cannot read cluster file '
     '/nonexistent/cluster.yaml'),
    ('[DEFAULT]\ntransport_url = nosuch://x:y@127.0.0.1/\n',
     'nosuch://x:***@127.0.0.1/ cannot be used: there is no message '
     'driver named nosuch'),
    # Before: "transport_url: No scheme specified".
    ('[DEFAULT]\ntransport_url = rabbit//guest:not-the-password@h/\n',
     'rabbit//guest:***@h/ cannot be used: it has no driver name before '
     '"://"; a valid one looks like rabbit://user:pass@host:port/vhost'),
    ('[shadow]\nmax_concurrent_evaluations = 0\n',
     '[shadow] max_concurrent_evaluations: Should be greater than or '
     'equal to 1'),
    ('[shadow]\nconfidence_target = 5\n',
     '[shadow] confidence_target: Should be less than or equal to 1'),
    ('[sim]\nmetric_noise_scale = disk_iopz:2\n',
     '[sim] metric_noise_scale: unknown metric disk_iopz (known: '),
    ('[sim]\nmetric_noise_scale = disk_iops:x\n',
     'metric_noise_scale'),
    ('[analysis]\nage_drift_per_metric = disk_iops:1.5\n',
     'age_drift_per_metric'),
    ('[analysis]\nage_drift_per_metric = disk_latency:0.2\n',
     '[analysis] age_drift_per_metric: unknown metric disk_latency '
     '(known: '),
    ('WRONG_PASSWORD', 'refused the credentials of user guest'),
    # Before: "could not convert string to float: 'cheap'" (NaN and
    # infinity: tests/unit/shadow_service/test_hostchoice.py).
    ('[shadow]\nhost_costs = node-1:cheap\n',
     '[shadow] host_costs: the cost of node-1, cheap, is not a finite '
     'number'),
], ids=['cluster-file', 'transport-driver', 'transport-scheme',
        'max-concurrent', 'confidence',
        'noise-metric', 'noise-scale', 'drift-figure', 'drift-metric',
        'broker-password', 'cost-word'])
def test_startup_error_exits_2_with_one_line(tmp_path, rabbit_url, extra,
                                             says):
    if extra == 'WRONG_PASSWORD':
        extra = '[DEFAULT]\ntransport_url = %s\n' % _with_password(
            rabbit_url, 'not-the-password')
    result = _run(tmp_path, rabbit_url, extra)
    assert result.returncode == 2, result.stderr[-3000:]
    ours = [line for line in result.stderr.splitlines()
            if line.startswith('shadow-service:')]
    assert len(ours) == 1, result.stderr[-3000:]
    assert 'cannot start' in ours[0] and says in ours[0], ours
    assert 'Traceback' not in result.stderr
    assert 'not-the-password' not in result.stderr
    log = (tmp_path / 'service.log').read_text()
    errors = [line for line in log.splitlines() if ' ERROR ' in line]
    assert len(errors) == 1 and says in errors[0], log[-3000:]
    assert 'Child' not in log


_HISTORY_UNREACHABLE = ('[history]\nstore = influxdb\n'
                        'influx_url = http://127.0.0.1:1\n'
                        'influx_startup_timeout_s = 0\n')


def test_secret_option_values_are_masked_in_a_start_error(tmp_path,
                                                          rabbit_url):
    # The value of an option marked secret ([history] influx_token here,
    # of two lines: a continuation line in the file) went to stderr and
    # the log as the HTTP library quoted it, refusing the header.  Such a
    # token is now refused before any request, naming the option; the
    # value is in neither the error nor the log.
    value = 'sekrit-token-part\n  zweiteil'
    extra = _HISTORY_UNREACHABLE + 'influx_token = %s\n' % value
    result = _run(tmp_path, rabbit_url, extra)
    assert result.returncode == 2, result.stderr[-3000:]
    ours = [line for line in result.stderr.splitlines()
            if line.startswith('shadow-service:')]
    assert len(ours) == 1, result.stderr[-3000:]
    assert '[history] influx_token' in ours[0], ours
    log = (tmp_path / 'service.log').read_text()
    errors = [line for line in log.splitlines() if ' ERROR ' in line]
    assert len(errors) == 1 and 'influx_token' in errors[0], log[-3000:]
    for text in (result.stderr, log):
        assert 'sekrit' not in text and 'zweiteil' not in text


def test_worker_error_stops_the_service_instead_of_restarting(
        tmp_path, rabbit_url, influxdb_server):
    # The twin's clock in 2013 with InfluxDB's 30-day retention: found
    # only when the worker builds the parts.
    extra = ('[sim]\nstart_time = 1372669200\n[history]\nstore = influxdb\n'
             'influx_url = %s\ninflux_database = startup_clock\n'
             % influxdb_server.url)
    result = _run(tmp_path, rabbit_url, extra)
    assert result.returncode == 2, result.stderr[-3000:]
    says = "the cloud driver's clock is"
    ours = [line for line in result.stderr.splitlines()
            if line.startswith('shadow-service:')]
    assert len(ours) == 1 and says in ours[0], result.stderr[-3000:]
    log = (tmp_path / 'service.log').read_text()
    # One worker, never restarted: the manager may note its exit once
    # before the SIGTERM the worker sent it stops everything.
    assert log.count(' exited with status ') <= 1, log[-3000:]
    assert len([line for line in log.splitlines()
                if ' ERROR ' in line and says in line]) == 1, log[-3000:]


def test_broker_down_at_start_is_retried_with_backoff(tmp_path,
                                                      rabbit_url):
    closed = 'rabbit://guest:guest@127.0.0.1:%d/' % (
        influxdb_fixture.free_port())
    path = _conf(tmp_path, rabbit_url,
                 '[DEFAULT]\ntransport_url = %s\n' % closed)
    proc = subprocess.Popen(d.DAEMON + ['--config-file', str(path)],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=d._env(),
                            start_new_session=True)
    log_path = tmp_path / 'service.log'
    try:
        deadline = time.monotonic() + 120
        retries = []
        while len(retries) < 3 and time.monotonic() < deadline:
            assert proc.poll() is None, 'exited with %s' % proc.returncode
            time.sleep(0.5)
            text = log_path.read_text() if log_path.exists() else ''
            retries = [line for line in text.splitlines()
                       if 'message broker does not answer' in line]
        assert len(retries) >= 3, retries
        waits = [float(line.rsplit('retrying in ', 1)[1].rstrip('s'))
                 for line in retries]
        assert waits[:3] == sorted(waits[:3]) and waits[2] > waits[0]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def test_a_config_line_that_does_not_parse_is_not_quoted(tmp_path,
                                                         rabbit_url):
    # oslo.config quotes the line it cannot parse, and the daemon said
    # it as is: a password written without its "=" went to stderr.  The
    # line is named by its file and number instead.
    result = _run(tmp_path, rabbit_url,
                  '[history]\ninflux_password s3cr3t-value\n')
    assert result.returncode == 2, result.stderr[-3000:]
    ours = [line for line in result.stderr.splitlines()
            if line.startswith('shadow-service:')]
    assert len(ours) == 1, result.stderr[-3000:]
    conf = str(tmp_path / 'shadow-service.conf')
    assert 'cannot start: Failed to parse %s: at %s:' % (conf, conf) \
        in ours[0], ours
    assert "No ':' or '=' found in assignment" in ours[0], ours
    assert 's3cr3t' not in result.stderr
