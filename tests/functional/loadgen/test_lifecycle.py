"""SIGTERM, patterns over a real run, the zipapp and the user-data."""

import base64
import gzip
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from loadgen import profiles
from loadgen import userdata
from tests.functional.loadgen.conftest import TEST_BEARER
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


def _running(pid):
    """True while ``pid`` exists and is not a zombie (a zombie holds no
    memory or files; reaping it is its new parent's business)."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            state = f.read().rsplit(')', 1)[1].split()[0]
    except OSError:
        return False
    return state not in ('Z', 'X')


def _open_files_under(pid, directory):
    """Targets of ``pid``'s descriptors that point into ``directory``."""
    found = []
    try:
        names = os.listdir('/proc/%d/fd' % pid)
    except OSError:
        return found
    for name in names:
        try:
            target = os.readlink('/proc/%d/fd/%s' % (pid, name))
        except OSError:
            continue
        if target.startswith(str(directory) + os.sep):
            found.append(target)
    return found


def _anyone_holding(directory):
    """(pid, target) of every process with a file open in ``directory``."""
    held = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            held += [(int(entry), target) for target in
                     _open_files_under(int(entry), directory)]
    return held


def _wait_for(predicate, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


def _start(profile, tmp_path, *extra):
    spec = profile if isinstance(profile, str) else json.dumps(profile)
    return subprocess.Popen(
        loadgen_command('run', spec, '--workdir', tmp_path, *extra),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=loadgen_env())


def test_sigterm_stops_workers_removes_files_and_summarises(tmp_path):
    process = _start('db-oltp', tmp_path, '--duration', '60', '--scale',
                     '0.25')
    workers = _wait_for(lambda: len(_children(process.pid)) >= 3 and
                        _children(process.pid), 20)
    assert len(workers) >= 3      # cpu + memory + disk
    # The disk file is open in the workers but has no name on disk.
    assert _wait_for(lambda: _open_files_under(workers[-1], tmp_path), 5)
    assert os.listdir(tmp_path) == []
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
    assert not [pid for pid in workers if _running(pid)]
    assert _anyone_holding(tmp_path) == []


def test_sigterm_to_the_whole_process_group_is_a_clean_stop(tmp_path):
    # As systemd stops a service (every process of its cgroup) or
    # ``kill -- -PGID`` does: the workers get SIGTERM with their parent.
    profile = {'name': 'group', 'duration_s': 60, 'warmup_s': 0,
               'interval_s': 0.5,
               'components': {'cpu': {'workers': 2, 'duty_cycle': 0.2},
                              'memory': {'working_set_mb': 4,
                                         'duty_cycle': 0.2}}}
    process = subprocess.Popen(
        loadgen_command('run', json.dumps(profile), '--workdir', tmp_path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=loadgen_env(), start_new_session=True)
    workers = _wait_for(lambda: len(_children(process.pid)) >= 3 and
                        _children(process.pid), 20)
    assert workers
    time.sleep(1.0)
    os.killpg(process.pid, signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=20)
    summary = parse_output(stdout)[1]
    assert summary['status'] == 'SIGTERM'
    assert summary['dead_workers'] == [], summary['dead_workers']
    assert process.returncode == 0, stderr
    assert not [pid for pid in workers if _running(pid)]


_DISK_RUN = {
    'name': 'killed', 'duration_s': 60, 'warmup_s': 0, 'interval_s': 0.2,
    'components': {
        'disk': {'file_size_mb': 32, 'block_size_kb': 4, 'iodepth': 2,
                 'read_ratio': 0.5, 'direct': True},
        'network': {'mode': 'rr', 'target_rps': 100}}}


def test_sigkill_mid_run_leaves_no_files_and_no_workers(tmp_path):
    process = _start(_DISK_RUN, tmp_path)
    try:
        # Wait until the disk workers have done I/O (a disk_iops sample).
        for line in process.stdout:
            record = json.loads(line)
            if (record.get('tags', {}).get('metric') == 'disk_iops' and
                    record['fields']['value'] > 0):
                break
        workers = _children(process.pid)
        # 2 disk workers, 1 network worker, the echo server process.
        assert len(workers) == 4, workers
        assert all(_running(pid) for pid in workers)
        held = _anyone_holding(tmp_path)
        assert held and all(t.endswith('(deleted)') for _, t in held), held
        assert os.listdir(tmp_path) == []
    finally:
        process.kill()
        process.wait(10)
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    assert _wait_for(lambda: not [p for p in workers if _running(p)], 5), \
        [p for p in workers if _running(p)]
    assert os.listdir(tmp_path) == []
    # No process keeps the nameless file (so its blocks are freed).
    assert _wait_for(lambda: _anyone_holding(tmp_path) == [], 5)


def test_sigkill_while_the_disk_file_is_written_leaves_nothing(tmp_path):
    profile = dict(_DISK_RUN, components={
        'disk': {'file_size_mb': 512, 'block_size_kb': 4}})
    process = _start(profile, tmp_path)
    try:
        # Kill while prepare() is still filling the file: no worker yet.
        assert _wait_for(lambda: _open_files_under(process.pid, tmp_path),
                         20)
        assert _children(process.pid) == []
    finally:
        process.kill()
        process.communicate(timeout=10)
    assert process.returncode == -signal.SIGKILL
    assert os.listdir(tmp_path) == []
    assert _anyone_holding(tmp_path) == []


def test_ramp_pattern_raises_achieved_cpu_over_time(run_loadgen):
    samples, _ = run_loadgen({
        'name': 'ramp', 'duration_s': 4, 'warmup_s': 0, 'interval_s': 1,
        'pattern': {'type': 'ramp', 'start': 0.1, 'end': 0.9,
                    'over_s': 4},
        'components': {'cpu': {'workers': 1, 'duty_cycle': 1.0}}})
    utilisation = metric_values(samples, 'cpu_worker_util_pct')
    assert utilisation[-1] > utilisation[0] + 20, utilisation


def _apply_cloud_config(encoded):
    """Do what cloud-init does with our subset: base64 -> gunzip -> parse,
    ``write_files`` (b64 or gzip+base64, permissions), then ``runcmd``."""
    text = gzip.decompress(base64.b64decode(encoded)).decode('utf-8')
    assert text.startswith('#cloud-config\n')
    config = yaml.safe_load(text)
    for entry in config['write_files']:
        data = base64.b64decode(entry['content'])
        if entry['encoding'] == 'gzip+base64':
            data = gzip.decompress(data)
        os.makedirs(os.path.dirname(entry['path']), exist_ok=True)
        with open(entry['path'], 'wb') as f:
            f.write(data)
        os.chmod(entry['path'], int(entry['permissions'], 8))
    for argv in config['runcmd']:
        subprocess.run(argv, check=True, timeout=30, cwd='/')
    return config


def test_user_data_runs_the_embedded_zipapp_with_system_python(
        tmp_path, collector, monkeypatch):
    install_dir = tmp_path / 'opt' / 'shadow-loadgen'
    log_path = tmp_path / 'shadow-loadgen.log'
    samples = tmp_path / 'samples.jsonl'
    encoded = userdata.encoded_user_data(
        {'name': 'tiny', 'duration_s': 1.5, 'warmup_s': 0.5,
         'interval_s': 0.5, 'components': {'cpu': {'duty_cycle': 0.2}}},
        'file://%s' % samples,
        {'evaluation': 'ev 1', 'shadow': 's-1', 'host': 'node,1'},
        collector_url=collector.url, token=TEST_BEARER,
        install_dir=str(install_dir), log_path=str(log_path))
    assert len(encoded) < 48000
    # The guest has only the standard library: no PYTHONPATH to this tree.
    monkeypatch.delenv('PYTHONPATH', raising=False)
    _apply_cloud_config(encoded)
    assert oct(os.stat(install_dir / 'collector.token').st_mode)[-3:] == \
        '600'
    assert _wait_for(lambda: log_path.exists() and
                     '"summary"' in log_path.read_text(), 30), \
        log_path.read_text() if log_path.exists() else 'no log'
    summary = json.loads(log_path.read_text().splitlines()[-1])['summary']
    assert summary['status'] == 'completed'
    points = [json.loads(line) for line in samples.read_text().splitlines()]
    assert {p['tags']['metric'] for p in points} >= {
        'cpu_ops_per_s', 'cpu_util_pct', 'cpu_steal_pct'}
    assert all(p['tags']['evaluation'] == 'ev 1' for p in points)
    assert collector.lines() == points
    assert all(r['headers']['Authorization'] == 'Bearer ' + TEST_BEARER
               for r in collector.requests)
    assert TEST_BEARER not in log_path.read_text()


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


_ORPHAN_SCRIPT = '''
import os, sys, time
from loadgen.components import base

def grandchild(parent):
    base.die_with_parent(parent)
    time.sleep(120)       # one long sleep: no polling of the parent

worker = base._CTX.Process(target=grandchild, args=(os.getpid(),))
worker.start()
print(worker.pid, flush=True)
time.sleep(120)
'''


def test_worker_is_killed_by_the_kernel_when_its_parent_is_killed():
    parent = subprocess.Popen(
        [sys.executable, '-c', _ORPHAN_SCRIPT], stdout=subprocess.PIPE,
        text=True, env=loadgen_env())
    try:
        worker = int(parent.stdout.readline())
        time.sleep(0.3)       # the worker has called prctl by now
        assert _running(worker)
    finally:
        parent.kill()
        parent.communicate(timeout=10)
    # Gone long before its 120 s sleep ends: PR_SET_PDEATHSIG fired.
    assert _wait_for(lambda: not _running(worker), 3)
