"""``nova-shadow`` as an operator runs it, in its own process: what it
says about a configuration it cannot use."""

import subprocess

from tests.functional.shadow_service.cmd import test_service_daemon as d


def _run(*args, timeout=60):
    return subprocess.run(d.CLI + list(args), capture_output=True,
                          text=True, env=d._env(), timeout=timeout)


def test_a_missing_config_file_is_a_bad_argument(tmp_path):
    missing = tmp_path / 'no-such.conf'
    done = _run('--config-file', str(missing), 'evaluate', '--hosts',
                'node-01')
    assert done.returncode == 2, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith('error: cannot read the configuration')
    assert str(missing) in lines[0]


def test_an_unparsable_config_file_is_a_bad_argument(tmp_path):
    broken = tmp_path / 'broken.conf'
    broken.write_text('[shadow\ntopic = x\n')
    done = _run('--config-file', str(broken), 'show',
                '3f2b1c4e-0000-4000-8000-000000000000')
    assert done.returncode == 2, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert 'cannot read the configuration' in lines[0]
    assert str(broken) in lines[0]
