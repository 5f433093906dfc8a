"""Read utilisation traces into a regular series of floats.

Formats (see ``/work/shared/traces/README.md`` for the data sets):

``planetlab``
    one integer CPU % per line, one line per 5 minutes.
``bitbrains``
    GWA-T-12 Bitbrains: ``;`` plus a tab between fields, a header line,
    optionally gzipped. Column ``cpu`` (the default) is derived as
    ``CPU usage [MHZ] / CPU capacity provisioned [MHZ] * 100`` because the
    ``CPU usage [%]`` column exceeds 100 on some rows; any other column is
    taken by header name or 0-based index. Timestamps (Unix seconds despite
    the ``[ms]`` header) are de-duplicated (last row wins) and resampled to
    a regular ``step_s`` grid by linear interpolation across gaps.
``csv``
    a header line and comma- (or ``;``/tab-) separated numbers; ``column``
    is a header name or 0-based index; rows are taken as equally spaced.

Every parse error is a :class:`loadgen.errors.ProfileError` naming
``path:line``. Add a format by adding a ``_read_<name>`` function and an
entry in ``READERS``.
"""

import csv
import gzip
import io
import math

from loadgen.errors import ProfileError

FORMATS = ('planetlab', 'bitbrains', 'csv')
MAX_TRACE_POINTS = 10_000_000


def _open_text(path):
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except OSError as exc:
        raise ProfileError('pattern.path', 'cannot read trace %s: %s'
                           % (path, exc.strerror or exc)) from None
    if raw[:2] == b'\x1f\x8b':
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ProfileError('%s' % path, 'bad gzip data: %s' % exc) \
                from None
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise ProfileError('%s' % path, 'not UTF-8 text: %s' % exc) from None


def _number(text, path, lineno):
    try:
        value = float(text.strip())
    except ValueError:
        raise ProfileError('%s:%d' % (path, lineno),
                           'not a number: %r' % text.strip()[:40]) from None
    if not math.isfinite(value) or value < 0:
        raise ProfileError('%s:%d' % (path, lineno),
                           'value must be finite and >= 0, got %r' % value)
    return value


def _read_planetlab(path, column, step_s):
    values = []
    for lineno, line in enumerate(_open_text(path).splitlines(), 1):
        if line.strip():
            values.append(_number(line, path, lineno))
    return values


def _column_index(header, column, path):
    if column is None:
        return None
    if isinstance(column, int):
        if not 0 <= column < len(header):
            raise ProfileError('pattern.column', 'index %d out of range: '
                               '%s has %d columns'
                               % (column, path, len(header)))
        return column
    wanted = str(column).strip().lower()
    for index, name in enumerate(header):
        if name.strip().lower() == wanted:
            return index
    raise ProfileError('pattern.column', 'no column %r in %s; columns: %s'
                       % (column, path, ', '.join(h.strip() for h in header)))


def _bitbrains_rows(path):
    lines = _open_text(path).splitlines()
    if not lines:
        raise ProfileError('%s:1' % path, 'empty trace file')
    header = [h.strip() for h in lines[0].split(';')]
    rows = []
    for lineno, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        fields = line.split(';')
        if len(fields) != len(header):
            raise ProfileError('%s:%d' % (path, lineno),
                               'expected %d fields, got %d'
                               % (len(header), len(fields)))
        rows.append((lineno, fields))
    if not rows:
        raise ProfileError('%s:2' % path, 'no data rows')
    return header, rows


def _bitbrains_value(fields, index, path, lineno):
    if index is not None:
        return _number(fields[index], path, lineno)
    usage = _number(fields[3], path, lineno)
    capacity = _number(fields[2], path, lineno)
    if capacity <= 0:
        return 0.0
    return min(100.0, usage / capacity * 100.0)


def _resample(points, step_s):
    """Linear interpolation of sorted (t, v) points onto a step_s grid."""
    start, end = points[0][0], points[-1][0]
    count = int((end - start) // step_s) + 1
    if count > MAX_TRACE_POINTS:
        raise ProfileError('pattern.step_s', 'trace would resample to %d '
                           'points; use a larger step_s' % count)
    values = []
    j = 0
    for k in range(count):
        t = start + k * step_s
        while j + 1 < len(points) and points[j + 1][0] <= t:
            j += 1
        t0, v0 = points[j]
        if j + 1 == len(points) or t0 == t:
            values.append(v0)
            continue
        t1, v1 = points[j + 1]
        values.append(v0 + (v1 - v0) * (t - t0) / (t1 - t0))
    return values


def _read_bitbrains(path, column, step_s):
    header, rows = _bitbrains_rows(path)
    index = None if column in (None, 'cpu') else _column_index(
        header, column, path)
    if index is None and len(header) < 4:
        raise ProfileError('%s:1' % path, 'not a bitbrains header: needs '
                           'the CPU capacity and usage [MHZ] columns')
    by_time = {}
    for lineno, fields in rows:
        timestamp = _number(fields[0], path, lineno)
        by_time[timestamp] = _bitbrains_value(fields, index, path, lineno)
    points = sorted(by_time.items())
    return _resample(points, step_s)


def _read_csv(path, column, step_s):
    text = _open_text(path)
    first = text.split('\n', 1)[0]
    delimiter = ';' if ';' in first else ('\t' if '\t' in first else ',')
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise ProfileError('%s:1' % path, 'empty trace file') from None
    except csv.Error as exc:
        raise ProfileError('%s:1' % path, 'bad CSV: %s' % exc) from None
    index = _column_index(header, 0 if column is None else column, path)
    values = []
    try:
        for row in reader:
            lineno = reader.line_num
            if not row or not any(cell.strip() for cell in row):
                continue
            if index >= len(row):
                raise ProfileError('%s:%d' % (path, lineno),
                                   'row has no column %d' % index)
            values.append(_number(row[index], path, lineno))
    except csv.Error as exc:
        raise ProfileError('%s:%d' % (path, reader.line_num),
                           'bad CSV: %s' % exc) from None
    return values


READERS = {
    'planetlab': _read_planetlab,
    'bitbrains': _read_bitbrains,
    'csv': _read_csv,
}


def read_trace(path, fmt, column=None, step_s=300.0):
    """Return the trace at ``path`` as a list of floats, one per step.

    Raises
    ------
    ProfileError
        if the file is missing, empty or has a bad line (named).
    """
    if fmt not in READERS:
        raise ProfileError('pattern.format', 'unknown trace format %r; '
                           'known: %s' % (fmt, ', '.join(FORMATS)))
    values = READERS[fmt](path, column, step_s)
    if not values:
        raise ProfileError('%s' % path, 'trace has no values')
    return values
