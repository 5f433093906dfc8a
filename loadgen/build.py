"""Build ``loadgen.pyz``: a single-file zipapp of this package.

``build_pyz(out_path)`` writes ``#!/usr/bin/env python3`` followed by a
zip of the ``loadgen`` package (sources and the built-in profile JSON
files, no ``__pycache__``, deflate-compressed). The result needs only the
standard library: ``python3 loadgen.pyz run web``.

``build_pyz(out_path, guest=True)`` (and :func:`guest_pyz_bytes`) builds
the smaller zipapp a shadow VM gets through cloud-init user-data, where
every byte counts against Nova's user-data limit:

* docstrings and comments are stripped (each module is parsed with
  ``ast`` and written back with ``ast.unparse``, indented by one space
  per level; the result is checked to parse to the same tree), JSON is
  minified;
* modules a guest never runs (``GUEST_SKIP``: this builder and the
  user-data renderer) are left out;
* entries are *stored*, not compressed, with fixed timestamps: the
  user-data gzips the zipapp as a whole, which compresses across files
  better than deflating each one, and the same sources always give the
  same bytes.

``python -m loadgen.build [--guest] OUT`` does the same from a shell.
Change ``GUEST_SKIP`` to ship more or less to guests.
"""

import argparse
import ast
import functools
import io
import json
import os
import threading
import zipfile

INTERPRETER = '/usr/bin/env python3'
GUEST_SKIP = ('loadgen/build.py', 'loadgen/userdata.py')
_MAIN = ('import sys\n'
         'from loadgen.cli import main\n'
         'sys.exit(main())\n')
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def _package_dir():
    return os.path.dirname(os.path.abspath(__file__))


def package_files():
    """(archive name, absolute path) of every file the package ships."""
    root = os.path.dirname(_package_dir())
    found = []
    for directory, subdirs, names in os.walk(_package_dir()):
        subdirs[:] = sorted(d for d in subdirs if d != '__pycache__')
        for name in sorted(names):
            if name.endswith(('.py', '.json')):
                path = os.path.join(directory, name)
                found.append((os.path.relpath(path, root).replace(
                    os.sep, '/'), path))
    return found


#: ``ast.parse`` is not safe in several threads at once on CPython 3.11
#: (``SystemError: AST constructor recursion depth mismatch``); shadows
#: are booted from several threads, each building its user data.
_AST_LOCK = threading.Lock()
#: Tries of one source: the lock cannot cover the ``ast.parse`` calls of
#: code that is not ours (Python 3.11's traceback formatting parses the
#: failing line in whichever thread logs an exception), and a parse that
#: overlaps one of them fails with that SystemError, which says nothing
#: about the source: it parses again.
_AST_TRIES = 5


def strip_source(source):
    """``source`` without docstrings or comments (same behaviour)."""
    with _AST_LOCK:
        for attempt in range(1, _AST_TRIES + 1):
            try:
                return _strip_source(source)
            except SystemError as e:
                if (attempt == _AST_TRIES
                        or 'recursion depth mismatch' not in str(e)):
                    raise


def _strip_source(source):
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                 ast.AsyncFunctionDef)):
            continue
        body = node.body
        if body and isinstance(body[0], ast.Expr) and \
                isinstance(body[0].value, ast.Constant) and \
                isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    text = ast.unparse(tree) + '\n'
    narrow = _one_space_indent(text)
    # ast.unparse writes one statement per line and strings on one line,
    # so re-indenting cannot change the program; check it anyway.
    if ast.dump(ast.parse(narrow)) == ast.dump(tree):
        return narrow
    return text


def _one_space_indent(text):
    lines = []
    for line in text.split('\n'):
        code = line.lstrip(' ')
        lines.append(' ' * ((len(line) - len(code)) // 4) + code)
    return '\n'.join(lines)


def _guest_text(name, path):
    with open(path, encoding='utf-8') as f:
        text = f.read()
    if name.endswith('.py'):
        return strip_source(text)
    return json.dumps(json.loads(text), separators=(',', ':'),
                      sort_keys=True)


def _archive(guest):
    buffer = io.BytesIO()
    buffer.write(b'#!' + INTERPRETER.encode() + b'\n')
    method = zipfile.ZIP_STORED if guest else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buffer, 'w', method) as archive:
        entries = [('__main__.py', _MAIN)]
        for name, path in package_files():
            if guest and name in GUEST_SKIP:
                continue
            if guest:
                entries.append((name, _guest_text(name, path)))
            else:
                with open(path, encoding='utf-8') as f:
                    entries.append((name, f.read()))
        for name, text in entries:
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = method
            info.external_attr = 0o644 << 16
            archive.writestr(info, text.encode('utf-8'),
                             compresslevel=9 if not guest else None)
    return buffer.getvalue()


def build_pyz(out_path, guest=False):
    """Write the zipapp (the guest variant if ``guest``) to ``out_path``
    (mode 0755) and return ``out_path``."""
    data = guest_pyz_bytes() if guest else pyz_bytes()
    with open(out_path, 'wb') as f:
        f.write(data)
    os.chmod(out_path, 0o755)  # noqa: S103 - an executable zipapp
    return out_path


def pyz_bytes():
    """The full zipapp's bytes."""
    return _archive(guest=False)


_GUEST_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _guest_pyz_bytes():
    return _archive(guest=True)


def guest_pyz_bytes():
    """The guest zipapp's bytes (built once per process, also when
    several threads ask first at once)."""
    with _GUEST_LOCK:
        return _guest_pyz_bytes()


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m loadgen.build', description='Build loadgen.pyz.')
    parser.add_argument('out', nargs='?', default='loadgen.pyz')
    parser.add_argument('--guest', action='store_true',
                        help='the stripped zipapp a shadow VM gets')
    args = parser.parse_args(argv)
    print(build_pyz(args.out, guest=args.guest))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
