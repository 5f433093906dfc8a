"""Run the real ``shadow-loadgen`` CLI in a subprocess for the tests."""

import json
import os
import subprocess
import sys

import pytest

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
