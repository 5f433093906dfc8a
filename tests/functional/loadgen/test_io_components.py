"""Memory, disk and network components, run for real for a few seconds."""

import json
import os
import subprocess

import pytest

from loadgen import profiles
from loadgen import runner
from loadgen.components import aio
from loadgen.components import disk
from tests.functional.loadgen.conftest import loadgen_command
from tests.functional.loadgen.conftest import loadgen_env
from tests.functional.loadgen.conftest import metric_values


def _profile(components, duration=2.5):
    return {'name': 'io-test', 'duration_s': duration, 'warmup_s': 0.5,
            'interval_s': 0.5, 'components': components}


def _ordered_percentiles(summary, prefix, suffix):
    overall = summary['overall']
    p50, p95, p99 = (overall['%s_p%d_%s' % (prefix, q, suffix)]
                     for q in (50, 95, 99))
    assert 0 < p50 <= p95 <= p99
    return p50, p95, p99


def test_memory_reports_plausible_bandwidth_and_latency(run_loadgen):
    samples, summary = run_loadgen(_profile(
        {'memory': {'working_set_mb': 32, 'target_gbps': 0.5}}))
    overall = summary['overall']
    assert 0.2 < overall['mem_bandwidth_gbps'] < 500
    assert 0 <= overall['mem_latency_ns'] < 10000
    # The pace was met: chunks moved (2 MiB each, read+write) per second.
    moved_gbps = (summary['components']['memory']['ops'] * 2 * 2 ** 20 /
                  summary['measured_s'] / 1e9)
    assert 0.5 * 0.7 < moved_gbps < 0.5 * 1.15, moved_gbps
    assert len(metric_values(samples, 'mem_bandwidth_gbps')) >= 3


def test_disk_random_rw_is_self_consistent(run_loadgen):
    samples, summary = run_loadgen(_profile(
        {'disk': {'file_size_mb': 16, 'block_size_kb': 4, 'iodepth': 2,
                  'read_ratio': 0.7, 'direct': True}}))
    overall = summary['overall']
    assert overall['disk_iops'] > 50
    assert overall['disk_mbps'] == pytest.approx(
        overall['disk_iops'] * 4096 / 1e6, rel=1e-6)
    assert summary['components']['disk']['errors'] == 0
    assert summary['components']['disk']['workers'] == 2
    p50, p95, p99 = _ordered_percentiles(summary, 'disk', 'latency_ms')
    assert p99 < 1000
    assert metric_values(samples, 'disk_p95_latency_ms')


@pytest.mark.parametrize('read_ratio, access', [
    (1.0, 'random'), (0.7, 'random'), (0.0, 'sequential')])
def test_disk_aio_engine_keeps_iodepth_in_flight_from_one_worker(
        run_loadgen, read_ratio, access):
    _, summary = run_loadgen(_profile(
        {'disk': {'file_size_mb': 16, 'block_size_kb': 4, 'iodepth': 4,
                  'read_ratio': read_ratio, 'pattern': access,
                  'direct': True, 'engine': 'aio'}}, duration=2))
    disk_summary = summary['components']['disk']
    assert disk_summary['engine'] == 'aio'
    assert disk_summary['workers'] == 1
    assert disk_summary['errors'] == 0
    overall = summary['overall']
    assert overall['disk_iops'] > 50
    assert overall['disk_iops'] == pytest.approx(
        disk_summary['ops'] / summary['measured_s'], rel=1e-3)
    p50, p95, p99 = _ordered_percentiles(summary, 'disk', 'latency_ms')
    assert p99 < 1000


def test_disk_aio_engine_under_a_duty_cycle_drains_before_sleeping(
        run_loadgen):
    # 2 ms busy, 98 ms idle per period: the requests still in flight when
    # the busy part ends (a large share of them) are waited for, so no
    # latency includes the ~98 ms sleep.
    _, summary = run_loadgen(_profile(
        {'disk': {'file_size_mb': 16, 'block_size_kb': 4, 'iodepth': 4,
                  'read_ratio': 1.0, 'direct': True, 'engine': 'aio',
                  'duty_cycle': 0.02}}, duration=2))
    assert summary['components']['disk']['errors'] == 0
    p50, p95, p99 = _ordered_percentiles(summary, 'disk', 'latency_ms')
    assert summary['components']['disk']['ops'] > 20
    assert p99 < 40     # a sleep inside the latencies would show here


def test_disk_target_iops_is_paced(run_loadgen):
    _, summary = run_loadgen(_profile(
        {'disk': {'file_size_mb': 8, 'block_size_kb': 4,
                  'pattern': 'sequential', 'target_iops': 200,
                  'fsync': True, 'read_ratio': 0.5}}))
    assert 140 < summary['overall']['disk_iops'] < 215


def test_network_rr_against_its_own_echo_peer(run_loadgen):
    samples, summary = run_loadgen(_profile(
        {'network': {'mode': 'rr', 'target_rps': 300,
                     'payload_bytes': 256}}))
    overall = summary['overall']
    assert 220 < overall['net_rps'] < 315
    _ordered_percentiles(summary, 'net', 'rtt_ms')
    # Bytes are counted as they move: an exchange the stop cut short
    # counts its bytes but not as an exchange (at most one per
    # connection, 512 bytes against about 300 kB).
    assert overall['net_mbps'] == pytest.approx(
        overall['net_rps'] * 512 / 1e6, rel=0.01)
    assert summary['components']['network']['errors'] == 0


def test_network_stream_against_a_separate_serve_process(run_loadgen):
    server = subprocess.Popen(loadgen_command('serve', '--port', '0'),
                              stdout=subprocess.PIPE, text=True,
                              env=loadgen_env())
    try:
        address = json.loads(server.stdout.readline())['listening']
        _, summary = run_loadgen(_profile(
            {'network': {'mode': 'stream', 'payload_bytes': 262144,
                         'peer': address, 'connections': 1,
                         'duty_cycle': 0.5}}))
    finally:
        server.terminate()
        assert server.wait(10) == 0
    assert summary['overall']['net_mbps'] > 5
    assert 'net_rps' not in summary['overall']


def test_unreachable_peer_fails_before_starting(tmp_path):
    profile = _profile({'network': {'peer': '127.0.0.1:1',
                                    'timeout_s': 1}})
    result = subprocess.run(
        loadgen_command('run', json.dumps(profile), '--workdir', tmp_path),
        capture_output=True, text=True, timeout=30, env=loadgen_env())
    assert result.returncode == 1
    assert 'cannot start' in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_disk_file_has_no_name_even_without_o_tmpfile(tmp_path,
                                                     monkeypatch):
    # The fallback path (no O_TMPFILE): a named file unlinked at once.
    monkeypatch.delattr(os, 'O_TMPFILE', raising=False)
    fd = disk.open_anonymous(str(tmp_path))
    try:
        assert os.listdir(tmp_path) == []
        assert os.pwrite(fd, b'x' * 4096, 0) == 4096
        assert os.pread(fd, 4096, 0) == b'x' * 4096
        assert os.fstat(fd).st_nlink == 0
    finally:
        os.close(fd)


def test_disk_uses_an_existing_file_in_place(tmp_path, run_loadgen):
    existing = tmp_path.parent / ('%s-existing.dat' % tmp_path.name)
    content = os.urandom(6 * 2 ** 20)
    existing.write_bytes(content)
    try:
        _, summary = run_loadgen(_profile(
            {'disk': {'file': str(existing), 'file_size_mb': 4,
                      'block_size_kb': 4, 'read_ratio': 1.0,
                      'direct': True}}, duration=1.5))
        assert summary['components']['disk']['ops'] > 0
        assert summary['components']['disk']['errors'] == 0
        assert existing.read_bytes() == content   # kept, untouched
    finally:
        existing.unlink()


def test_disk_existing_file_that_is_missing_is_bad_input(tmp_path):
    profile = _profile({'disk': {'file': str(tmp_path / 'nope.dat')}})
    result = subprocess.run(
        loadgen_command('run', json.dumps(profile), '--workdir', tmp_path),
        capture_output=True, text=True, timeout=30, env=loadgen_env())
    assert result.returncode == 2
    assert 'components.disk.file' in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_disk_aio_falls_back_to_sync_workers_where_unavailable(
        tmp_path, monkeypatch):
    # As on a platform without native AIO (no syscall numbers known).
    monkeypatch.setattr(aio, '_SYSCALLS', {})
    profile = profiles.load_profile(_profile(
        {'disk': {'file_size_mb': 8, 'iodepth': 2, 'read_ratio': 1.0,
                  'direct': True, 'engine': 'aio'}}, duration=1.5))
    summary = runner.Runner(profile, [], None, str(tmp_path)).run()
    disk_summary = summary['components']['disk']
    assert disk_summary['engine'] == 'sync'
    assert disk_summary['workers'] == 2
    assert disk_summary['ops'] > 0 and disk_summary['errors'] == 0
    assert list(tmp_path.iterdir()) == []
