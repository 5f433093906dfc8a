"""Read a file a profile names: regular files only, and never too much.

A profile (or its trace pattern) may name any path, and whoever wrote it
may not be whoever runs loadgen. ``read_text(path, field, limit)`` opens
the path without blocking (a FIFO cannot stall the reader), refuses what
is not a regular file (``/dev/zero`` would never end), reads at most
``limit`` bytes (after gunzipping, when the file is gzip), and decodes
UTF-8. Every error is a :class:`loadgen.errors.ProfileError` that names
``field`` or ``path:line`` and never quotes the file's content. Change a
limit where it is passed (``loadgen.traces.MAX_TRACE_BYTES``,
``loadgen.profiles.MAX_PROFILE_BYTES``).
"""

import gzip
import io
import os
import stat
import zlib

from loadgen.errors import ProfileError

GZIP_MAGIC = b'\x1f\x8b'


def describe_bytes(count):
    """``16 MiB`` style text for a limit."""
    if count % 2 ** 20 == 0:
        return '%d MiB' % (count // 2 ** 20)
    return '%d bytes' % count


def _read_raw(path, field, limit):
    flags = os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0) | \
        getattr(os, 'O_NOCTTY', 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ProfileError(field, 'cannot read %s: %s'
                           % (path, exc.strerror or exc)) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ProfileError(field, '%s is not a regular file' % path)
        raw = _read_fd(fd, limit + 1)
    except OSError as exc:
        raise ProfileError(field, 'cannot read %s: %s'
                           % (path, exc.strerror or exc)) from None
    finally:
        os.close(fd)
    if len(raw) > limit:
        raise ProfileError(field, '%s is larger than the %s limit'
                           % (path, describe_bytes(limit)))
    return raw


def _read_fd(fd, count):
    """Up to ``count`` bytes of ``fd`` with ``os.read`` (no file object:
    a green ``os.fdopen``, where eventlet patches ``os``, closes the
    descriptor whatever ``closefd`` says)."""
    chunks = []
    while count > 0:
        chunk = os.read(fd, min(count, READ_CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        count -= len(chunk)
    return b''.join(chunks)


#: Bytes asked of one ``os.read``.
READ_CHUNK = 2 ** 20


def _gunzip(raw, path, field, limit):
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
            data = f.read(limit + 1)
    except (OSError, EOFError, zlib.error):
        raise ProfileError(path, 'not valid gzip data') from None
    if len(data) > limit:
        raise ProfileError(field, '%s is larger than the %s limit once '
                           'uncompressed' % (path, describe_bytes(limit)))
    return data


def read_text(path, field, limit):
    """The text of the regular file ``path`` (gunzipped if gzip).

    Parameters
    ----------
    path : str
    field : str
        the profile field that named the file, for errors about it.
    limit : int
        most bytes read (and, for gzip, most bytes uncompressed).

    Raises
    ------
    ProfileError
        naming ``field`` (missing, not a regular file, over the limit)
        or ``path:line`` (not UTF-8); no error quotes the content.
    """
    raw = _read_raw(path, field, limit)
    if raw[:2] == GZIP_MAGIC:
        raw = _gunzip(raw, path, field, limit)
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError as exc:
        line = raw.count(b'\n', 0, exc.start) + 1
        raise ProfileError('%s:%d' % (path, line), 'not UTF-8 text') \
            from None
