"""Inline profiles a hostile tenant could send: rejected, never crashing.

Each case raised something other than ``ProfileError`` (a traceback, or
a service-side error other than "invalid request") before it was fixed.
"""

import subprocess
import sys

import pytest

from loadgen import profiles
from loadgen.profiles import ProfileError

HUGE = 10 ** 400    # JSON can carry it; float() cannot


@pytest.mark.parametrize('spec, field', [
    ({'duration_s': HUGE}, 'duration_s'),
    ({'components': {'cpu': {'workers': HUGE}}}, 'components.cpu.workers'),
    ({'components': {'cpu': {'duty_cycle': -HUGE}}},
     'components.cpu.duty_cycle'),
    ({'pattern': {'type': 'constant', 'level': HUGE}}, 'pattern.level'),
    ({'pattern': {'type': 'trace', 'values': [1, HUGE]}},
     'pattern.values[1]'),
    ({'sensitivity': {'cpu': HUGE}}, 'sensitivity.cpu'),
])
def test_integer_too_large_for_a_float_names_the_field(spec, field):
    with pytest.raises(ProfileError) as info:
        profiles.load_profile(spec)
    assert info.value.field == field


def test_scaled_by_a_huge_integer_is_a_profile_error():
    with pytest.raises(ProfileError) as info:
        profiles.load_profile('web').scaled(HUGE)
    assert info.value.field == 'scale'


def test_deeply_nested_inline_json_is_a_profile_error():
    with pytest.raises(ProfileError) as info:
        profiles.load_profile('{"a": ' + '[' * 100000)
    assert info.value.field == '<inline>'


def test_profile_file_that_never_ends_is_refused():
    result = subprocess.run(
        [sys.executable, '-m', 'loadgen', 'validate', '/dev/zero'],
        capture_output=True, text=True, timeout=15)
    assert result.returncode == 2
    assert 'profile: /dev/zero is not a regular file' in result.stderr


def test_profile_file_over_the_limit_names_the_limit(tmp_path):
    path = tmp_path / 'big.json'
    with open(path, 'wb') as f:
        f.truncate(profiles.MAX_PROFILE_BYTES + 1)
    with pytest.raises(ProfileError) as info:
        profiles.load_profile(str(path))
    assert '16 MiB' in info.value.message


# Text that must never appear in an error about a file holding it.
MARK = 'hunter2-not-for-logs'


@pytest.mark.parametrize('content, where', [
    # a file that is not a profile at all: YAML reads its first line as
    # a key (/etc/shadow printed root's hash line this way)
    ('root:%s:20228:0:99999:7:::\n' % MARK, ':1: unknown field'),
    ('name: x\napi_token: %s\n' % MARK, ':2: unknown field'),
    ('name: x\ncomponents:\n  cpu:\n    %s: 2\n' % MARK,
     ':4: unknown parameter in components.cpu'),
    ('duration_s: %s\n' % MARK, 'duration_s: must be a number'),
    ('name: x\npattern: {type: trace, path: t.csv, column: %s}\n' % MARK,
     'pattern.column'),
])
def test_profile_file_errors_name_the_line_never_the_content(
        tmp_path, content, where):
    (tmp_path / 't.csv').write_text('cpu\n0.5\n')
    path = tmp_path / 'profile.yaml'
    path.write_text(content)
    result = subprocess.run(
        [sys.executable, '-m', 'loadgen', 'validate', str(path)],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert where in result.stderr
    assert MARK not in result.stderr + result.stdout
    assert 'Traceback' not in result.stderr


def test_inline_profile_errors_still_show_the_value():
    # The tenant wrote it: quoting it back helps and leaks nothing.
    with pytest.raises(ProfileError) as info:
        profiles.load_profile('{"duration_s": "%s"}' % MARK)
    assert MARK in info.value.message


@pytest.mark.parametrize('content, where', [
    # YAML keys need not be strings: a number next to a word used to
    # make the unknown-key check compare them (TypeError), and any
    # number in a trace pattern failed on ``startswith`` (AttributeError).
    ('pattern: {type: constant, 1: 2, a: 3}\n', 'pattern: keys must be '
     'strings'),
    ('pattern: {type: trace, values: [1], 7: x}\n', 'pattern: keys must be '
     'strings'),
    ('components:\n  cpu:\n    pattern: {type: ramp, 2: 1, b: 1}\n',
     'components.cpu.pattern: keys must be strings'),
    # A port of digits Python reads as digits but not as a number.
    ('components:\n  network: {peer: "host:\u00b2"}\n',
     'components.network.peer: must be self or host:port'),
])
def test_profile_file_with_odd_keys_or_digits_names_the_field(
        tmp_path, content, where):
    path = tmp_path / 'profile.yaml'
    path.write_text(content, encoding='utf-8')
    result = subprocess.run(
        [sys.executable, '-m', 'loadgen', 'validate', '--no-machine-check',
         str(path)], capture_output=True, text=True, timeout=30)
    assert 'Traceback' not in result.stderr
    assert result.returncode == 2
    assert where in result.stderr


@pytest.mark.parametrize('spec, field', [
    # A lone surrogate cannot be written as UTF-8: a name holding one
    # passed validation, and the InfluxDB sink's sender then died on
    # the first batch, losing every point after it.
    ({'name': 'web\ud800'}, 'name'),
    ({'description': '\udcff'}, 'description'),
    ({'components': {'network': {'peer': 'h\ud800:80'}}},
     'components.network.peer'),
    ({'components': {'disk': {'dir': '/tmp/\ud800'}}},
     'components.disk.dir'),
])
def test_text_that_is_not_unicode_names_the_field(spec, field):
    with pytest.raises(ProfileError) as info:
        profiles.load_profile(spec)
    assert info.value.field == field
    assert 'not valid Unicode' in info.value.message
