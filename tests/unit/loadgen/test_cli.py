"""CLI: listing, validation and bad input (exit 2, nothing started)."""

import json
import os

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
