"""Reading the files a profile names: bounded, and working where eventlet
patches ``os`` (Nova's processes in eventlet mode), whose green
``os.fdopen`` closes the descriptor whatever ``closefd`` says."""

import gzip
import os
import subprocess
import sys
import textwrap

import pytest

from loadgen import files
from loadgen.errors import ProfileError


def test_reads_plain_and_gzip_text_within_the_limit(tmp_path):
    plain = tmp_path / 'trace.txt'
    plain.write_text('1\n2\n3\n')
    packed = tmp_path / 'trace.txt.gz'
    packed.write_bytes(gzip.compress(b'4\n5\n'))
    assert files.read_text(str(plain), 'trace.path', 100) == '1\n2\n3\n'
    assert files.read_text(str(packed), 'trace.path', 100) == '4\n5\n'


def test_a_file_over_the_limit_names_the_field(tmp_path):
    big = tmp_path / 'big.txt'
    big.write_bytes(b'7\n' * (files.READ_CHUNK + 10))
    with pytest.raises(ProfileError) as caught:
        files.read_text(str(big), 'trace.path', files.READ_CHUNK)
    assert 'trace.path' in str(caught.value)
    assert 'larger than' in str(caught.value)


def test_reads_where_eventlet_patches_os(tmp_path):
    # In a process of its own: Nova forbids eventlet in one it runs in
    # threading mode (this one).
    path = tmp_path / 'trace.txt'
    path.write_text('42\n')
    script = textwrap.dedent('''
        import eventlet
        eventlet.monkey_patch()
        import sys
        from loadgen import files
        sys.stdout.write(files.read_text(sys.argv[1], 'trace.path', 100))
    ''')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.getcwd()] + sys.path))
    done = subprocess.run([sys.executable, '-W', 'ignore', '-c', script,
                           str(path)], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == '42\n'
