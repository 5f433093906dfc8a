"""CLI: listing, validation and bad input (exit 2, nothing started)."""

import json
import os
import time

import pytest

from loadgen import cli


def test_profiles_lists_every_builtin(capsys):
    assert cli.main(['profiles']) == 0
    out = capsys.readouterr().out
    for name in ('web', 'db-oltp', 'batch-cpu', 'cache', 'analytics',
                 'idle'):
        assert name in out


def test_validate_prints_the_normalised_scaled_profile(capsys):
    assert cli.main(['validate', 'db-oltp', '--scale', '0.5']) == 0
    data = json.loads(capsys.readouterr().out)
    assert data['components']['disk']['iodepth'] == 2


@pytest.mark.parametrize('argv, field', [
    (['validate', '{"components": {"gpu": {}}}'], 'components.gpu'),
    (['run', '{"components": {"cpu": {"duty_cycle": -1}}}'],
     'components.cpu.duty_cycle'),
    (['run', 'web', '--duration', '-5'], 'duration_s'),
    (['run', 'web', '--scale', '1000'], 'scale'),
    (['run', 'web', '--sink', 'ftp://nowhere'], '--sink'),
])
def test_bad_input_exits_2_naming_the_field(argv, field, capsys, tmp_path):
    argv = argv + (['--workdir', str(tmp_path)] if argv[0] == 'run' else [])
    assert cli.main(argv) == 2
    assert field in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_unknown_subcommand_exits_2(capsys):
    assert cli.main(['explode']) == 2


def test_sink_in_a_missing_directory_exits_2_naming_the_option(capsys):
    assert cli.main(['run', 'idle', '--duration', '1', '--sink',
                     '/nonexistent/dir/out.jsonl']) == 2
    err = capsys.readouterr().err
    assert '--sink' in err and '/nonexistent/dir/out.jsonl' in err
    assert 'Traceback' not in err


def test_summary_file_in_a_missing_directory_exits_2_before_the_run(
        capsys):
    assert cli.main(['run', 'idle', '--duration', '1', '--summary-file',
                     '/nonexistent/dir/summary.json']) == 2
    captured = capsys.readouterr()
    assert '--summary-file' in captured.err
    assert '"summary"' not in captured.out


def test_missing_workdir_exits_2_naming_the_option(capsys):
    assert cli.main(['run', '{"components": {"disk": {}}}', '--duration',
                     '1', '--workdir', '/nonexistent/dir']) == 2
    assert '--workdir' in capsys.readouterr().err


def _mem_available_mb():
    with open('/proc/meminfo') as f:
        for line in f:
            if line.startswith('MemAvailable:'):
                return int(line.split()[1]) / 1024.0
    pytest.skip('no MemAvailable in /proc/meminfo')


def _free_mb(path):
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize / 2.0 ** 20


def test_memory_beyond_mem_available_is_refused_by_validate_and_run(
        capsys, tmp_path):
    size_mb = min(1024.0 * 1024, 2 * _mem_available_mb())
    spec = json.dumps({'duration_s': 2, 'components': {
        'memory': {'working_set_mb': size_mb}}})
    assert cli.main(['validate', spec]) == 2
    err = capsys.readouterr().err
    assert 'components.memory.working_set_mb' in err
    assert 'MemAvailable' in err
    started = time.monotonic()
    assert cli.main(['run', spec, '--workdir', str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert 'components.memory.working_set_mb' in captured.err
    assert '"summary"' not in captured.out      # nothing was started
    assert time.monotonic() - started < 5


def test_disk_file_beyond_free_space_is_refused_naming_the_field(
        capsys, tmp_path):
    free_mb = _free_mb(str(tmp_path))
    if 2 * free_mb > 1024 * 1024:
        pytest.skip('more than 512 GiB free: beyond the schema maximum')
    spec = json.dumps({'components': {'disk': {
        'file_size_mb': 2 * free_mb, 'dir': str(tmp_path)}}})
    assert cli.main(['validate', spec]) == 2
    err = capsys.readouterr().err
    assert 'components.disk.file_size_mb' in err and 'free' in err
    assert os.listdir(tmp_path) == []


def test_validate_says_how_many_cpu_workers_will_run(capsys):
    assert cli.main(['validate', '{"components": {"cpu": '
                     '{"workers": 1024}}}']) == 0
    captured = capsys.readouterr()
    cpus = len(os.sched_getaffinity(0))
    assert 'components.cpu.workers' in captured.err
    assert '1024' in captured.err and ('%d CPU' % cpus) in captured.err
    # stdout stays the normalised profile, as asked
    assert json.loads(captured.out)['components']['cpu']['workers'] == 1024


def test_validate_without_the_machine_check_says_it_did_not_check(capsys):
    # 1 TiB of working set: no machine here has it, and validate cannot
    # know about the one that will run it, so it says so.
    spec = json.dumps({'components': {'memory': {
        'working_set_mb': 1024 * 1024}}})
    assert cli.main(['validate', '--no-machine-check', spec]) == 0
    err = capsys.readouterr().err
    assert 'machine not checked' in err and 'run' in err


def test_influxdb_sink_without_a_host_exits_2_naming_the_option(capsys):
    assert cli.main(['run', 'idle', '--duration', '1',
                     '--sink', 'http://:8086?db=x']) == 2
    err = capsys.readouterr().err
    assert 'invalid option: --sink:' in err and 'HOST' in err
    assert 'Traceback' not in err
