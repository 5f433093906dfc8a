"""Trace files a hostile profile may point at: bounded, and never echoed.

A trace ``path`` is read on the machine that loads the profile, so the
reader must stop at a documented size, refuse what is not a regular
file, and name the file and line of a bad value without printing the
line (it may be someone's secret).
"""

import gzip
import os
import subprocess
import sys
import time

import pytest

from loadgen import profiles
from loadgen import traces
from loadgen.profiles import ProfileError

SHADOW_LINE = 'root:$6$saltsalt$hashedsecretpassword:19000:0:99999:7:::'


def _trace_profile(path, fmt='planetlab', **extra):
    pattern = dict({'type': 'trace', 'path': str(path), 'format': fmt},
                   **extra)
    return {'name': 't', 'duration_s': 10,
            'components': {'cpu': {'pattern': pattern}}}


def _validate(spec):
    """``shadow-loadgen validate`` in a subprocess, bounded in time."""
    return subprocess.run(
        [sys.executable, '-m', 'loadgen', 'validate', spec],
        capture_output=True, text=True, timeout=15)


def test_endless_device_as_trace_is_refused_in_bounded_time():
    started = time.monotonic()
    result = _validate(
        '{"components": {"cpu": {"pattern": {"type": "trace", '
        '"format": "planetlab", "path": "/dev/zero"}}}}')
    assert result.returncode == 2, result.stderr
    assert 'components.cpu.pattern.path' in result.stderr
    assert 'regular file' in result.stderr
    assert time.monotonic() - started < 10


def test_trace_file_over_the_size_limit_names_field_and_limit(tmp_path):
    path = tmp_path / 'huge'
    with open(path, 'wb') as f:
        f.truncate(traces.MAX_TRACE_BYTES + 1)      # sparse: cheap
    with pytest.raises(ProfileError) as info:
        profiles.load_profile(_trace_profile(path))
    assert info.value.field == 'components.cpu.pattern.path'
    assert '16 MiB' in info.value.message


def test_gzip_bomb_trace_is_stopped_at_the_limit(tmp_path):
    path = tmp_path / 'bomb.csv.gz'
    with gzip.open(path, 'wb', compresslevel=9) as f:
        chunk = b'1\n' * (1 << 19)
        for _ in range(traces.MAX_TRACE_BYTES // len(chunk) + 2):
            f.write(chunk)
    assert os.path.getsize(path) < 200_000
    with pytest.raises(ProfileError) as info:
        profiles.load_profile(_trace_profile(path))
    assert info.value.field == 'components.cpu.pattern.path'
    assert '16 MiB' in info.value.message


def test_too_many_values_names_the_limit(tmp_path, monkeypatch):
    with pytest.raises(ProfileError, match='1000000 values') as info:
        profiles.load_profile({'pattern': {
            'type': 'trace',
            'values': [1.0] * (traces.MAX_TRACE_POINTS + 1)}})
    assert info.value.field == 'pattern.values'
    # Files stop at the same limit (a smaller one here, to stay fast).
    monkeypatch.setattr(traces, 'MAX_TRACE_POINTS', 1000)
    for fmt, text in (('planetlab', '1\n' * 1001),
                      ('csv', 'load\n' + '1\n' * 1001)):
        path = tmp_path / fmt
        path.write_text(text)
        with pytest.raises(ProfileError, match='1000 values') as info:
            profiles.load_profile(_trace_profile(path, fmt))
        assert info.value.field == 'components.cpu.pattern.path'
        path.write_text(text[:-2])
        profiles.load_profile(_trace_profile(path, fmt))


@pytest.mark.parametrize('fmt, text', [
    ('planetlab', '10\n%s\n' % SHADOW_LINE),
    ('csv', 'load\n10\n%s\n' % SHADOW_LINE.replace(':', ';')),
    ('bitbrains', 'Timestamp [ms];\tCPU cores;\tCPU capacity provisioned '
                  '[MHZ];\tCPU usage [MHZ]\n0;\t1;\t1000;\t100\n'
                  '%s;\t1;\t1000;\t100\n' % SHADOW_LINE.replace(';', '')),
])
def test_bad_trace_line_is_named_but_never_printed(tmp_path, fmt, text):
    path = tmp_path / 'shadow'
    path.write_text(text)
    with pytest.raises(ProfileError) as info:
        profiles.load_profile(_trace_profile(path, fmt))
    assert info.value.field == '%s:%d' % (path, 2 if fmt == 'planetlab'
                                          else 3)
    for fragment in ('hashed', 'secret', 'root', '$6$', '19000'):
        assert fragment not in info.value.message


def test_secret_file_through_the_cli_shows_only_the_line(tmp_path):
    path = tmp_path / 'shadow'
    path.write_text('%s\n%s\n' % (SHADOW_LINE, SHADOW_LINE))
    result = _validate('{"pattern": {"type": "trace", "format": '
                       '"planetlab", "path": "%s"}}' % path)
    assert result.returncode == 2
    assert '%s:1' % path in result.stderr
    shown = result.stderr.replace(str(path), '<path>')
    assert 'secret' not in shown and 'root' not in shown


def test_unknown_column_does_not_list_the_header(tmp_path):
    path = tmp_path / 'passwd'
    path.write_text('%s\n1\n' % SHADOW_LINE.replace(':', ','))
    with pytest.raises(ProfileError) as info:
        profiles.load_profile(_trace_profile(path, 'csv', column='load'))
    assert info.value.field == 'components.cpu.pattern.column'
    shown = info.value.message.replace(str(path), '<path>')
    assert 'secret' not in shown and 'root' not in shown


def test_bad_gzip_and_non_utf8_errors_carry_no_bytes(tmp_path):
    broken = tmp_path / 'broken.gz'
    broken.write_bytes(b'\x1f\x8bSECRETBYTES')
    latin = tmp_path / 'latin'
    latin.write_bytes(b'10\n\xe9SECRET\n')
    for path in (broken, latin):
        with pytest.raises(ProfileError) as info:
            profiles.load_profile(_trace_profile(path))
        assert 'SECRET' not in str(info.value)
        assert '0xe9' not in str(info.value)
        assert '\\x' not in str(info.value)
