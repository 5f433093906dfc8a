"""SIGTERM, patterns over a real run, the zipapp and the user-data."""

import base64
import json
import os
import signal
import subprocess
import time

import pytest
import yaml

from loadgen import profiles
from loadgen import userdata
from tests.functional.loadgen.conftest import loadgen_command
from tests.functional.loadgen.conftest import loadgen_env
from tests.functional.loadgen.conftest import metric_values
from tests.functional.loadgen.conftest import parse_output


def _children(pid):
    try:
        with open('/proc/%d/task/%d/children' % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def test_sigterm_stops_workers_removes_files_and_summarises(tmp_path):
    process = subprocess.Popen(
        loadgen_command('run', 'db-oltp', '--duration', '60', '--scale',
                        '0.25', '--workdir', tmp_path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=loadgen_env())
    deadline = time.monotonic() + 20
    while len(_children(process.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = _children(process.pid)
    assert len(workers) >= 3      # cpu + memory + disk
    assert os.listdir(tmp_path)   # the disk file's directory exists
    time.sleep(1.5)
    stopped_at = time.monotonic()
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert time.monotonic() - stopped_at < 8
    summary = parse_output(stdout)[1]
    assert summary['status'] == 'SIGTERM'
    assert summary['temp_files_removed'] is True
    assert os.listdir(tmp_path) == []
    assert not [pid for pid in workers if os.path.exists('/proc/%d' % pid)]


def test_ramp_pattern_raises_achieved_cpu_over_time(run_loadgen):
    samples, _ = run_loadgen({
        'name': 'ramp', 'duration_s': 4, 'warmup_s': 0, 'interval_s': 1,
        'pattern': {'type': 'ramp', 'start': 0.1, 'end': 0.9,
                    'over_s': 4},
        'components': {'cpu': {'workers': 1, 'duty_cycle': 1.0}}})
    utilisation = metric_values(samples, 'cpu_worker_util_pct')
    assert utilisation[-1] > utilisation[0] + 20, utilisation


def test_user_data_runs_the_embedded_zipapp_with_system_python(tmp_path):
    text = userdata.render_user_data(
        {'name': 'tiny', 'duration_s': 1.5, 'warmup_s': 0.5,
         'interval_s': 0.5, 'components': {'cpu': {'duty_cycle': 0.2}}},
        'file://%s/out.jsonl' % tmp_path,
        {'evaluation': 'ev 1', 'shadow': 's-1', 'host': 'node,1'})
    assert text.startswith('#cloud-config\n')
    config = yaml.safe_load(text)
    files = {f['path']: f for f in config['write_files']}
    pyz = tmp_path / 'loadgen.pyz'
    pyz.write_bytes(base64.b64decode(
        files['/opt/shadow-loadgen/loadgen.pyz']['content']))
    profile = tmp_path / 'profile.json'
    profile.write_text(files['/opt/shadow-loadgen/profile.json']['content'])
    command = config['runcmd'][0][2]
    assert '/opt/shadow-loadgen/loadgen.pyz run' in command
    # Run it as the guest would, with only the standard library (-I).
    result = subprocess.run(
        ['python3', '-I', str(pyz), 'run', str(profile), '--sink',
         'file://%s/out.jsonl' % tmp_path, '--tag', 'evaluation=ev 1',
         '--workdir', str(tmp_path)],
        capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])['summary']
    assert summary['status'] == 'completed'
    points = [json.loads(line) for line in
              (tmp_path / 'out.jsonl').read_text().splitlines()]
    assert {p['tags']['metric'] for p in points} >= {
        'cpu_ops_per_s', 'cpu_util_pct', 'cpu_steal_pct'}
    assert all(p['tags']['evaluation'] == 'ev 1' for p in points)


@pytest.mark.parametrize('name', profiles.BUILTIN_PROFILES)
def test_every_builtin_profile_runs_scaled_down(name, run_loadgen):
    samples, summary = run_loadgen(name, '--duration', '1.5', '--warmup',
                                   '0.5', '--interval', '0.5', '--scale',
                                   '0.25')
    assert summary['status'] == 'completed'
    assert summary['dead_workers'] == []
    assert all(c['errors'] == 0 for c in summary['components'].values())
    metrics = {s['tags']['metric'] for s in samples}
    assert {'cpu_util_pct', 'cpu_steal_pct'} <= metrics
    assert all(s['tags']['profile'] == name for s in samples)
