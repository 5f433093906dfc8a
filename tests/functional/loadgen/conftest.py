"""Run the real ``shadow-loadgen`` CLI in a subprocess for the tests."""

import json
import os
import subprocess
import sys
import time

import pytest

# The collector token the tests write to a 0600 file.
TEST_BEARER = 's3cr3t-token-for-tests'
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


def loadgen_command(*args):
    return [sys.executable, '-m', 'loadgen'] + [str(a) for a in args]


def loadgen_env():
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    return env


def parse_output(stdout):
    samples, summary = [], None
    for line in stdout.splitlines():
        record = json.loads(line)
        if 'summary' in record:
            summary = record['summary']
        else:
            samples.append(record)
    return samples, summary


def metric_values(samples, metric):
    return [s['fields']['value'] for s in samples
            if s['tags']['metric'] == metric]


@pytest.fixture
def run_loadgen(tmp_path):
    """Run a profile to completion; returns (samples, summary)."""
    def run(profile, *extra, timeout=60):
        spec = profile if isinstance(profile, str) else json.dumps(profile)
        result = subprocess.run(
            loadgen_command('run', spec, '--workdir', tmp_path, *extra),
            capture_output=True, text=True, timeout=timeout,
            env=loadgen_env())
        assert result.returncode == 0, result.stderr
        assert os.listdir(tmp_path) == [], 'temporary files left behind'
        return parse_output(result.stdout)
    return run


class RecordingCollector:
    """A real HTTP server (stdlib) standing in for the service's sample
    collector: records every request and answers from a script.

    ``answers`` is a list of ``(status, headers)`` used one per request;
    once it is empty every request gets ``default``.  ``answer_for``, when
    set, is called with each request's body first and answers it unless
    it returns None.
    """

    def __init__(self, default=(200, {}), port=0):
        import http.server
        import threading
        collector = self
        self.requests = []
        self.answers = []
        self.default = default
        self.answer_for = None
        self._lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get('Content-Length', 0))
                body = self.rfile.read(length)
                with collector._lock:
                    collector.requests.append({
                        'path': self.path, 'headers': dict(self.headers),
                        'body': body, 'at': time.monotonic()})
                    answer = (collector.answer_for(body)
                              if collector.answer_for else None)
                    if answer is None:
                        answer = (collector.answers.pop(0)
                                  if collector.answers
                                  else collector.default)
                    status, headers = answer
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header('Content-Length', '0')
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', port),
                                                      Handler)
        self.port = self.server.server_address[1]
        self.url = 'http://127.0.0.1:%d/v1/samples' % self.port
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={'poll_interval': 0.05},
                                        daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def lines(self):
        """Every JSON object received (in order)."""
        out = []
        for request in self.requests:
            out += [json.loads(line) for line in
                    request['body'].decode('utf-8').splitlines()]
        return out


@pytest.fixture
def collector():
    server = RecordingCollector().start()
    yield server
    server.stop()


@pytest.fixture
def token_file(tmp_path_factory):
    path = tmp_path_factory.mktemp('token') / 'collector.token'
    path.write_text(TEST_BEARER + '\n')
    path.chmod(0o600)
    return path
