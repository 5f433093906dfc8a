"""Faults, run through the real processes, and what each one cost.

Each fault runs against real parts: a ``shadow-service`` process on the
real RabbitMQ (reached through a TCP relay this benchmark can cut, so the
shared broker is never stopped), a private ``influxd`` on free ports (never
the shared one), the twin as the cloud.  Per fault it reports calls (or
boots) attempted and succeeded, the latency added over the same calls
measured before the fault in the same run, shadows leaked, history points
lost and seconds to recover.

Faults:

* ``broker_down_at_start``: the service starts while the broker is
  unreachable; the broker comes back after ``--outage`` seconds.
* ``broker_down_mid_run``: the broker becomes unreachable for ``--outage``
  seconds while a client calls ``rank_hosts`` every half second.
* ``service_sigkill_mid_evaluation``: ``shadow-service`` is SIGKILLed
  while an evaluation runs, then restarted.
* ``influxdb_stopped_mid_write``: the private ``influxd`` stops for
  ``--outage`` seconds while evaluations run and write (in process).
* ``bad_configs``: five configurations the service cannot run with.
* ``bad_input``: malformed calls over RabbitMQ to a running service.

Usage::

    nice -n 10 python benchmarks/faults.py [--outage 5]

Prints a table and writes ``benchmarks/results/faults.json``.
"""

import argparse
import json
import os
import platform
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import benchlib  # noqa: E402

from shadow_service import rpcapi  # noqa: E402
from shadow_service import service  # noqa: E402
from tests import service_support  # noqa: E402
from tests.fixtures import influxdb as influxdb_fixture  # noqa: E402
from tests.unit.shadow_service import test_bad_requests  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       'results', 'faults.json')
RABBIT = os.environ.get('NOVA_SHADOW_RABBIT_URL',
                        'rabbit://guest:guest@127.0.0.1:5672/')
DAEMON = [sys.executable, '-c',
          'import sys; from shadow_service.cmd import service; '
          'sys.exit(service.main())']
REQUEST = {'flavor': {'vcpus': 2, 'ram_mb': 2048}, 'profile': 'web'}
HOSTS = [{'host': 'node-01'}, {'host': 'node-02'}, {'host': 'node-03'}]
CALL_BUDGET_S = 1.0
CALL_TIMEOUT_S = 10.0


class Relay:
    """A TCP relay from a free loopback port to the broker; ``cut()``
    closes the listener and every connection (the broker is down for
    whoever uses the relay), ``restore()`` listens again."""

    def __init__(self, target=('127.0.0.1', 5672)):
        self.target = target
        self.port = influxdb_fixture.free_port()
        self._listener = None
        self._conns = []
        self._lock = threading.Lock()
        self._thread = None
        self._stop = threading.Event()

    def restore(self):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(('127.0.0.1', self.port))
        listener.listen(64)
        self._listener = listener
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream),
                             daemon=True).start()

    def _pump(self, a, b):
        sel = selectors.DefaultSelector()
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(0.5):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self):
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                    conn.close()
                except OSError:
                    pass
            self._conns = []

    @property
    def url(self):
        return 'rabbit://guest:guest@127.0.0.1:%d/' % self.port


class Daemon:
    """A ``shadow-service`` process with its own config and directory."""

    def __init__(self, workdir, transport_url, topic, extra=''):
        self.workdir = workdir
        self.topic = topic
        self.conf_path = os.path.join(workdir, 'shadow-service.conf')
        self.log_path = os.path.join(workdir, 'service.log')
        with open(self.conf_path, 'w') as f:
            f.write(textwrap.dedent("""\
                [DEFAULT]
                transport_url = %s
                log_file = %s
                [shadow]
                topic = %s
                min_run_time = 1
                [history]
                store = sqlite
                sqlite_path = %s/history.sqlite
                """ % (transport_url, self.log_path, topic, workdir)))
            f.write(extra)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            DAEMON + ['--config-file', self.conf_path],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True, env=_env())
        return self

    def kill(self, sig=signal.SIGTERM):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _env():
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env['PYTHONPATH'] = root + os.pathsep + env.get('PYTHONPATH', '')
    return env


def _client(topic):
    return rpcapi.ShadowAPI(service_support.make_conf(), topic=topic,
                            transport_url=RABBIT)


def _answers(api, timeout=2.0):
    try:
        api.get_evaluation({}, str(uuid.uuid4()), timeout=timeout)
    except Exception as e:
        return service_support.typed_error(e, 'EvaluationNotFound')
    return True


def _wait_serving(api, proc, limit_s=180.0):
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if proc is not None and proc.poll() is not None:
            return None
        if _answers(api):
            return time.monotonic() - started
        time.sleep(0.2)
    return None


def _rank(api, budget=CALL_BUDGET_S):
    started = time.monotonic()
    try:
        ranking = api.rank_hosts({}, REQUEST, HOSTS, budget,
                                 timeout=CALL_TIMEOUT_S)
        ok = ranking.get('status') == 'finished'
    except Exception:
        ok = False
    return ok, time.monotonic() - started


def _p50(values):
    return round(statistics.median(values), 3) if values else None


def _baseline(api, count=5):
    """Latencies of ``count`` good calls, after one warm-up call (the
    service's first evaluation reads what it caches)."""
    try:
        api.rank_hosts({}, REQUEST, HOSTS, CALL_BUDGET_S, timeout=120)
    except Exception:
        pass
    return [took for ok, took in (_rank(api) for _ in range(count)) if ok]


def fault_broker_down_at_start(workdir, outage_s):
    relay = Relay()
    daemon = Daemon(workdir, relay.url, service_support.unique_topic())
    api = _client(daemon.topic)
    daemon.start()
    try:
        # The outage counts from the service's first attempt to reach
        # the broker (starting Python takes a while on a loaded machine).
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and daemon.proc.poll() is None:
            if (os.path.exists(daemon.log_path)
                    and 'message broker does not answer'
                    in open(daemon.log_path).read()):
                break
            time.sleep(0.2)
        time.sleep(outage_s)
        down_alive = daemon.proc.poll() is None
        relay.restore()
        restored = time.monotonic()
        ready = _wait_serving(api, daemon.proc)
        recover = None if ready is None else time.monotonic() - restored
        baseline = _baseline(api) if ready is not None else []
        with open(daemon.log_path) as f:
            retries = f.read().count('message broker does not answer')
        return {'boots_attempted': 1,
                'boots_succeeded': int(ready is not None and down_alive),
                'waited_for_broker': down_alive,
                'broker_retries_logged': retries,
                'calls_attempted': len(baseline),
                'calls_succeeded': len(baseline),
                'call_p50_after_s': _p50(baseline),
                'added_latency_s': None, 'shadows_leaked': 0,
                'points_lost': 0,
                'seconds_to_recover': round(recover, 1) if recover else None}
    finally:
        daemon.kill()
        relay.cut()


def fault_broker_down_mid_run(workdir, outage_s):
    relay = Relay()
    relay.restore()
    daemon = Daemon(workdir, relay.url, service_support.unique_topic())
    api = _client(daemon.topic)
    daemon.start()
    try:
        if _wait_serving(api, daemon.proc) is None:
            return {'error': 'the service never answered'}
        baseline = _baseline(api)
        relay.cut()
        cut_at = time.monotonic()
        during = []
        while time.monotonic() - cut_at < outage_s:
            during.append(_rank(api, budget=0.5))
            time.sleep(0.5)
        relay.restore()
        restored = time.monotonic()
        after = []
        recover = None
        while time.monotonic() - restored < 120:
            ok, took = _rank(api)
            after.append((ok, took))
            if ok:
                recover = time.monotonic() - restored
                break
            time.sleep(0.5)
        calls = during + after
        later = [_rank(api)[1] for _ in range(5)]
        return {'calls_attempted': len(calls),
                'calls_succeeded': sum(ok for ok, _ in calls),
                'call_p50_before_s': _p50(baseline),
                'call_p50_after_s': _p50(later),
                'added_latency_s': round(_p50(later) - _p50(baseline), 3),
                'longest_failed_call_s': round(max(
                    [t for ok, t in calls if not ok] or [0.0]), 3),
                'shadows_leaked': 0, 'points_lost': 0,
                'seconds_to_recover': (round(recover, 1) if recover
                                       else None)}
    finally:
        daemon.kill()
        relay.cut()


def fault_service_sigkill(workdir):
    topic = service_support.unique_topic()
    daemon = Daemon(workdir, RABBIT, topic,
                    extra='[shadow]\nmin_run_time = 120\n'
                          'confidence_target = 1.0\n')
    api = _client(topic)
    daemon.start()
    if _wait_serving(api, daemon.proc) is None:
        daemon.kill()
        return {'error': 'the service never answered'}
    baseline = _baseline(api)
    deadline = time.monotonic() + 120
    while True:
        try:
            # Hosts and a profile the baseline left no history of: the
            # evaluation has to run shadows (no answer from history).
            evaluation_id = api.start_evaluation(
                {}, dict(REQUEST, profile='cache'),
                [{'host': 'node-05'}, {'host': 'node-06'}], 300.0,
                timeout=60)
            break
        except Exception as e:
            # Baseline calls still finishing on a loaded machine.
            if (not service_support.typed_error(e, 'ServiceBusy')
                    or time.monotonic() > deadline):
                raise
            time.sleep(1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = api.get_evaluation({}, evaluation_id, timeout=30)
        if state['status'] == 'running' and state['progress'] > 0:
            break
        time.sleep(0.5)
    status_when_killed = state['status']
    daemon.kill(signal.SIGKILL)
    killed = time.monotonic()
    daemon.start()
    try:
        ready = _wait_serving(api, daemon.proc)
        recover = None if ready is None else time.monotonic() - killed
        state = api.get_evaluation({}, evaluation_id, timeout=30)
        after = _baseline(api)
        return {'calls_attempted': 1 + len(after),
                'calls_succeeded': int(state['status'] == 'interrupted')
                + len([t for t in after]),
                'status_when_killed': status_when_killed,
                'status_after_restart': state['status'],
                'call_p50_before_s': _p50(baseline),
                'call_p50_after_s': _p50(after),
                'added_latency_s': round(_p50(after) - _p50(baseline), 3),
                # The twin's shadows live in the service process: they
                # die with it.  On a real cloud the start-up collector
                # deletes left-overs (doc/source/openstack.rst).
                'shadows_leaked': 0,
                'shadows_leaked_note': 'twin: shadows end with the process',
                'points_lost': None,
                'seconds_to_recover': (round(recover, 1) if recover
                                       else None)}
    finally:
        daemon.kill()


def fault_influxdb_outage(outage_s):
    server = influxdb_fixture.InfluxDBServer().start()
    conf = service_support.make_conf(
        shadow={'min_run_time': 1},
        history={'store': 'influxdb', 'influx_url': server.url,
                 'influx_database': 'faults', 'influx_timeout_s': 2.0,
                 'influx_retry_backoff_s': 0.2,
                 'influx_retry_backoff_max_s': 1.0})
    parts = service.build(conf)
    manager = parts.manager

    def call():
        started = time.monotonic()
        try:
            ok = manager.evaluate(REQUEST, HOSTS, 2.0)['status'] == 'finished'
        except Exception:
            ok = False
        return ok, time.monotonic() - started

    try:
        baseline = [call()[1] for _ in range(3)]
        server.stop()
        stopped = time.monotonic()
        during = []
        while time.monotonic() - stopped < outage_s:
            during.append(call())
        server.start()
        restarted = time.monotonic()
        drained = parts.history.flush(timeout=120)
        recover = time.monotonic() - restarted
        counts = parts.history.counters()
        stored = sum(
            series['values'][0][1] for series in server.query(
                'faults', 'SELECT count(value) FROM shadow_sample'
            )['results'][0].get('series', []))
        return {'calls_attempted': len(during),
                'calls_succeeded': sum(ok for ok, _ in during),
                'call_p50_before_s': _p50(baseline),
                'call_p50_during_s': _p50([t for _, t in during]),
                'added_latency_s': round(
                    _p50([t for _, t in during]) - _p50(baseline), 3),
                'shadows_leaked': len(parts.driver.list_shadows()),
                'points_written': counts['written'],
                'points_retried': counts['retried'],
                'points_lost': counts['dropped'] + counts['buffered'],
                'shadow_samples_in_influxdb': stored,
                'drained': drained,
                'seconds_to_recover': round(recover, 1)}
    finally:
        parts.close()
        server.cleanup()


BAD_CONFIGS = {
    'cluster_file': '[sim]\ncluster_file = /nonexistent/cluster.yaml\n',
    'broker_password': '[DEFAULT]\ntransport_url = '
                       'rabbit://guest:wrong@127.0.0.1:5672/\n',
    'transport_driver': '[DEFAULT]\ntransport_url = nosuch://x:y@h/\n',
    'max_concurrent': '[shadow]\nmax_concurrent_evaluations = 0\n',
    'confidence_target': '[shadow]\nconfidence_target = 5\n',
}


def fault_bad_configs(workdir):
    results = {}
    for name, extra in BAD_CONFIGS.items():
        directory = os.path.join(workdir, name)
        os.makedirs(directory)
        daemon = Daemon(directory, RABBIT, 'unused', extra=extra)
        started = time.monotonic()
        daemon.start()
        try:
            _, stderr = daemon.proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            daemon.kill(signal.SIGKILL)
            stderr = ''
        lines = [line for line in stderr.splitlines()
                 if line.startswith('shadow-service:')]
        with open(daemon.log_path) as f:
            log = f.read()
        results[name] = {
            'exit_status': daemon.proc.returncode,
            'seconds_to_exit': round(time.monotonic() - started, 1),
            'stderr_line': lines[0] if len(lines) == 1 else None,
            'log_errors': log.count(' ERROR '),
            'worker_restarts': log.count('Child'),
        }
    return {'boots_attempted': len(results),
            'boots_refused_cleanly': sum(
                r['exit_status'] == 2 and r['stderr_line'] is not None
                and r['log_errors'] == 1 and not r['worker_restarts']
                for r in results.values()),
            'configs': results}


def fault_bad_input(workdir):
    topic = service_support.unique_topic()
    daemon = Daemon(workdir, RABBIT, topic)
    api = _client(topic)
    daemon.start()
    try:
        if _wait_serving(api, daemon.proc) is None:
            return {'error': 'the service never answered'}
        baseline = _baseline(api)
        typed, latencies = 0, []
        calls = test_bad_requests.BAD_CALLS
        for method, args, field in calls:
            started = time.monotonic()
            try:
                if method == 'cancel_evaluation':
                    cctxt = api.client.prepare(version='1.0', timeout=30)
                    cctxt.call({}, method, evaluation_id=args[0])
                elif method == 'get_evaluation':
                    api.get_evaluation({}, *args, timeout=30)
                else:
                    getattr(api, method)({}, *args, timeout=30)
            except Exception as e:
                if (service_support.typed_error(e, 'InvalidRequest')
                        and field in str(e)):
                    typed += 1
            latencies.append(time.monotonic() - started)
        after = _baseline(api)
        with open(daemon.log_path) as f:
            log = f.read()
        return {'calls_attempted': len(calls),
                'typed_errors_naming_the_field': typed,
                'bad_call_p50_s': _p50(latencies),
                'good_calls_after': len(after),
                'call_p50_before_s': _p50(baseline),
                'call_p50_after_s': _p50(after),
                'added_latency_s': round(_p50(after) - _p50(baseline), 3),
                'tracebacks_in_log': log.count('Traceback'),
                'rejection_lines_in_log': log.count('Rejected '),
                'shadows_leaked': 0, 'points_lost': 0,
                'seconds_to_recover': 0.0}
    finally:
        daemon.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--outage', type=float, default=5.0,
                        help='seconds each outage lasts')
    parser.add_argument('--only', action='append',
                        help='run only these faults (repeatable)')
    args = parser.parse_args()
    faults = {
        'broker_down_at_start': lambda d: fault_broker_down_at_start(
            d, args.outage),
        'broker_down_mid_run': lambda d: fault_broker_down_mid_run(
            d, args.outage),
        'service_sigkill_mid_evaluation': fault_service_sigkill,
        'influxdb_stopped_mid_write': lambda d: fault_influxdb_outage(
            args.outage),
        'bad_configs': fault_bad_configs,
        'bad_input': fault_bad_input,
    }
    results = {}
    if args.only and os.path.exists(RESULTS):
        # Re-running some faults keeps the others' figures.
        with open(RESULTS) as f:
            results = json.load(f)
    results.update({'machine': {'cpus': os.cpu_count(),
                           'python': platform.python_version(),
                           'load_1m_at_start': os.getloadavg()[0]},
               'outage_s': args.outage})
    results.setdefault('faults', {})
    for name, run in faults.items():
        if args.only and name not in args.only:
            continue
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix='faults-') as workdir:
            try:
                outcome = run(workdir)
            except Exception as e:  # one fault's failure is its result
                outcome = {'error': '%s: %s' % (type(e).__name__, e)}
        outcome['wall_s'] = round(time.monotonic() - started, 1)
        results['faults'][name] = outcome
        print('%-32s %s' % (name, json.dumps(outcome)[:300]), flush=True)
    print()
    print('%-32s %9s %9s %9s %8s %8s %9s' % (
        'fault', 'attempted', 'succeeded', 'added_s', 'leaked', 'lost',
        'recover_s'))
    for name, r in results['faults'].items():
        attempted = r.get('calls_attempted', r.get('boots_attempted'))
        succeeded = r.get('calls_succeeded', r.get(
            'boots_succeeded', r.get('boots_refused_cleanly',
                                     r.get('typed_errors_naming_the_field'))))
        print('%-32s %9s %9s %9s %8s %8s %9s' % (
            name, attempted, succeeded, r.get('added_latency_s'),
            r.get('shadows_leaked'), r.get('points_lost'),
            r.get('seconds_to_recover')))
    print()
    benchlib.write_results(RESULTS, results)


if __name__ == '__main__':
    main()
