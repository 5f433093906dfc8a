"""Build ``loadgen.pyz``: a single-file zipapp of this package.

``build_pyz(out_path)`` copies the ``loadgen`` package (sources and the
built-in profile JSON files, no ``__pycache__``) into a staging directory
and calls ``zipapp.create_archive`` with ``#!/usr/bin/env python3``. The
result needs only the standard library: ``python3 loadgen.pyz run web``.
``python -m loadgen.build OUT`` does the same from a shell.
"""

import os
import shutil
import sys
import tempfile
import zipapp

_MAIN = ('import sys\n'
         'from loadgen.cli import main\n'
         'sys.exit(main())\n')


def _package_dir():
    return os.path.dirname(os.path.abspath(__file__))


def build_pyz(out_path, interpreter='/usr/bin/env python3'):
    """Write the zipapp to ``out_path`` and return ``out_path``."""
    with tempfile.TemporaryDirectory(prefix='loadgen-pyz-') as staging:
        shutil.copytree(_package_dir(), os.path.join(staging, 'loadgen'),
                        ignore=shutil.ignore_patterns('__pycache__', '*.pyc',
                                                      '*.pyz'))
        with open(os.path.join(staging, '__main__.py'), 'w') as f:
            f.write(_MAIN)
        zipapp.create_archive(staging, out_path, interpreter=interpreter,
                              compressed=True)
    return out_path


def pyz_bytes():
    """The zipapp's bytes (built in a temporary file)."""
    with tempfile.TemporaryDirectory(prefix='loadgen-pyz-') as tmp:
        path = build_pyz(os.path.join(tmp, 'loadgen.pyz'))
        with open(path, 'rb') as f:
            return f.read()


if __name__ == '__main__':
    print(build_pyz(sys.argv[1] if len(sys.argv) > 1 else 'loadgen.pyz'))
