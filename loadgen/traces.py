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

Limits (a trace path may point anywhere): only regular files are read,
at most ``MAX_TRACE_BYTES`` (16 MiB, also after gunzipping), and a trace
holds at most ``MAX_TRACE_POINTS`` (1,000,000) values. Every parse error
is a :class:`loadgen.errors.ProfileError` naming ``path:line``, never the
line's content. Add a format by adding a ``_read_<name>`` function and an
entry in ``READERS``.
"""

import csv
import io
import math

from loadgen import files
from loadgen.errors import ProfileError

FORMATS = ('planetlab', 'bitbrains', 'csv')
MAX_TRACE_BYTES = 16 * 2 ** 20
MAX_TRACE_POINTS = 1_000_000


def too_many_values(field):
    return ProfileError(field, 'more than the limit of %d values'
                        % MAX_TRACE_POINTS)


def _lines(text):
    """(line number, line) without building a list of every line."""
    return enumerate(io.StringIO(text), 1)


def _number(text, path, lineno):
    try:
        value = float(text.strip())
    except ValueError:
        raise ProfileError('%s:%d' % (path, lineno),
                           'not a number') from None
    if not math.isfinite(value) or value < 0:
        raise ProfileError('%s:%d' % (path, lineno),
                           'not a finite number >= 0')
    return value


def _read_planetlab(text, path, column, step_s, field):
    values = []
    for lineno, line in _lines(text):
        if line.strip():
            if len(values) >= MAX_TRACE_POINTS:
                raise too_many_values(field + '.path')
            values.append(_number(line, path, lineno))
    return values


def _column_index(header, column, path, field):
    if column is None:
        return None
    if isinstance(column, int):
        if not 0 <= column < len(header):
            raise ProfileError(field + '.column', 'index %d out of range: '
                               '%s has %d columns'
                               % (column, path, len(header)))
        return column
    wanted = str(column).strip().lower()
    for index, name in enumerate(header):
        if name.strip().lower() == wanted:
            return index
    # The header is the file's content: say how many columns, not which.
    raise ProfileError(field + '.column', 'no column %r in the header of '
                       '%s (it has %d columns)' % (column, path, len(header)))


def _bitbrains_rows(text, path, field):
    lines = _lines(text)
    try:
        header = [h.strip() for h in next(lines)[1].split(';')]
    except StopIteration:
        raise ProfileError('%s:1' % path, 'empty trace file') from None
    rows = 0
    for lineno, line in lines:
        if not line.strip():
            continue
        fields = line.rstrip('\r\n').split(';')
        if len(fields) != len(header):
            raise ProfileError('%s:%d' % (path, lineno),
                               'expected %d fields, got %d'
                               % (len(header), len(fields)))
        rows += 1
        if rows > MAX_TRACE_POINTS:
            raise too_many_values(field + '.path')
        yield header, lineno, fields
    if not rows:
        raise ProfileError('%s:2' % path, 'no data rows')


def _bitbrains_value(fields, index, path, lineno):
    if index is not None:
        return _number(fields[index], path, lineno)
    usage = _number(fields[3], path, lineno)
    capacity = _number(fields[2], path, lineno)
    if capacity <= 0:
        return 0.0
    return min(100.0, usage / capacity * 100.0)


def _resample(points, step_s, field):
    """Linear interpolation of sorted (t, v) points onto a step_s grid."""
    start, end = points[0][0], points[-1][0]
    count = int((end - start) // step_s) + 1
    if count > MAX_TRACE_POINTS:
        raise ProfileError(field + '.step_s', 'the trace would resample to '
                           '%d points, more than the limit of %d; use a '
                           'larger step_s' % (count, MAX_TRACE_POINTS))
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


def bitbrains_rows(path, columns, field='trace'):
    """The rows of a Bitbrains file, by the rules every reader of it
    applies: de-duplicated timestamps (the last row wins), in time order.

    Parameters
    ----------
    path : str
    columns : dict
        ``{name: column}``: a 0-based index, a header name, or ``'cpu'``
        (usage MHz / capacity MHz x 100, at most 100).
    field : str
        The profile field that named the file, for errors.

    Returns
    -------
    (list of float, dict)
        The timestamps and ``{name: values}`` at them.
    """
    text = files.read_text(path, field + '.path', MAX_TRACE_BYTES)
    by_time = {}
    indexes = None
    for header, lineno, fields in _bitbrains_rows(text, path, field):
        if indexes is None:
            indexes = {name: (None if column == 'cpu' else _column_index(
                header, column, path, field))
                for name, column in columns.items()}
            if None in indexes.values() and len(header) < 4:
                raise ProfileError('%s:1' % path, 'not a bitbrains header: '
                                   'needs the CPU capacity and usage [MHZ] '
                                   'columns')
        by_time[_number(fields[0], path, lineno)] = [
            _bitbrains_value(fields, index, path, lineno)
            for index in indexes.values()]
    times = sorted(by_time)
    return times, {name: [by_time[t][i] for t in times]
                   for i, name in enumerate(columns)}


def resample(times, values, step_s, field='trace'):
    """``values`` at sorted ``times`` linearly interpolated onto a
    ``step_s`` grid from the first time to the last."""
    return _resample(list(zip(times, values)), step_s, field)


def planetlab_values(path, field='trace'):
    """The CPU percentages of a PlanetLab file, one per 300 s."""
    text = files.read_text(path, field + '.path', MAX_TRACE_BYTES)
    return _read_planetlab(text, path, None, 300.0, field)


def _read_bitbrains(text, path, column, step_s, field):
    by_time = {}
    index = None
    for header, lineno, fields in _bitbrains_rows(text, path, field):
        if not by_time:
            index = None if column in (None, 'cpu') else _column_index(
                header, column, path, field)
            if index is None and len(header) < 4:
                raise ProfileError('%s:1' % path, 'not a bitbrains header: '
                                   'needs the CPU capacity and usage [MHZ] '
                                   'columns')
        timestamp = _number(fields[0], path, lineno)
        by_time[timestamp] = _bitbrains_value(fields, index, path, lineno)
    points = sorted(by_time.items())
    return _resample(points, step_s, field)


def _read_csv(text, path, column, step_s, field):
    first = text.split('\n', 1)[0]
    delimiter = ';' if ';' in first else ('\t' if '\t' in first else ',')
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise ProfileError('%s:1' % path, 'empty trace file') from None
    except csv.Error as exc:
        raise ProfileError('%s:1' % path, 'bad CSV: %s' % exc) from None
    index = _column_index(header, 0 if column is None else column, path,
                          field)
    values = []
    try:
        for row in reader:
            lineno = reader.line_num
            if not row or not any(cell.strip() for cell in row):
                continue
            if index >= len(row):
                raise ProfileError('%s:%d' % (path, lineno),
                                   'row has no column %d' % index)
            if len(values) >= MAX_TRACE_POINTS:
                raise too_many_values(field + '.path')
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


def read_trace(path, fmt, column=None, step_s=300.0, field='pattern'):
    """Return the trace at ``path`` as a list of floats, one per step.

    ``field`` is the pattern's place in the profile (``pattern``,
    ``components.cpu.pattern``), named in errors about its keys.

    Raises
    ------
    ProfileError
        if the file is missing, not a regular file, over the size or
        value limits, empty, or has a bad line (named, never quoted).
    """
    if fmt not in READERS:
        raise ProfileError(field + '.format', 'unknown trace format %r; '
                           'known: %s' % (fmt, ', '.join(FORMATS)))
    text = files.read_text(path, field + '.path', MAX_TRACE_BYTES)
    values = READERS[fmt](text, path, column, step_s, field)
    if not values:
        raise ProfileError('%s' % path, 'trace has no values')
    return values
