"""Time-varying intensity: how hard a component works at time t.

A pattern is a pure function of the seconds since the run started that
returns a multiplier >= 0 applied to a component's configured intensity
(duty cycle, target rate). Patterns are cheap and deterministic so the
digital twin can evaluate them millions of times.

Types (``type`` key; others are validated by ``build_pattern``):

``constant``  ``level`` (default 1)
``ramp``      ``start`` -> ``end`` linearly over ``over_s`` (default: the
              run's duration), then holds ``end``
``diurnal``   ``mean * (1 + amplitude * sin(2 pi (t + phase_s) / period_s))``
``spikes``    ``factor`` for ``length_s`` every ``every_s`` (first spike at
              ``start_s``, default ``every_s``), else ``base`` (default 1)
``trace``     replay of a trace file (``path``, ``format``, ``column``) or of
              inline ``values``; each value lasts ``step_s / speedup``
              seconds, linearly interpolated, wrapping around; values are
              normalised by their ``max`` (default), ``mean`` or ``none``,
              then multiplied by ``scale``.

Add a type by writing a ``_build_<type>`` function and listing it in
``BUILDERS``.
"""

import math
import os

from loadgen import traces
from loadgen.errors import ProfileError

MAX_INTENSITY = 100.0
MAX_LEVEL = 20.0
MAX_SECONDS = 366 * 86400.0


def _number(spec, key, field, default=None, low=0.0, high=MAX_LEVEL,
            low_open=False):
    value = spec.get(key, default)
    name = '%s.%s' % (field, key)
    if value is None:
        raise ProfileError(name, 'is required')
    return _checked(value, name, low, high, low_open)


def _checked(value, name, low=0.0, high=MAX_LEVEL, low_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProfileError(name, 'must be a number, got %r' % (value,))
    try:
        value = float(value)
    except OverflowError:
        raise ProfileError(name, 'must be <= %g, got an integer too '
                           'large for a float' % high) from None
    if not math.isfinite(value):
        raise ProfileError(name, 'must be finite, got %r' % value)
    if value < low or (low_open and value == low) or value > high:
        raise ProfileError(name, 'must be %s %g and <= %g, got %g'
                           % ('>' if low_open else '>=', low, high, value))
    return value


def _check_keys(spec, allowed, field):
    unknown = sorted(set(spec) - set(allowed) - {'type'})
    if unknown:
        raise ProfileError('%s.%s' % (field, unknown[0]),
                           'unknown key; allowed: %s'
                           % ', '.join(sorted(allowed)))


class Pattern:
    """A validated pattern: call it with ``t_s`` to get the multiplier."""

    def __init__(self, kind, params, function):
        self.kind = kind
        self.params = params
        self._function = function

    def __call__(self, t_s):
        value = self._function(t_s if t_s > 0 else 0.0)
        if value > 0:   # also false for NaN
            return value if value < MAX_INTENSITY else MAX_INTENSITY
        return 0.0

    def to_dict(self):
        return dict(self.params, type=self.kind)


def _build_constant(spec, field, duration_s, base_dir):
    _check_keys(spec, ('level',), field)
    level = _number(spec, 'level', field, default=1.0)
    return {'level': level}, lambda t: level


def _build_ramp(spec, field, duration_s, base_dir):
    _check_keys(spec, ('start', 'end', 'over_s'), field)
    start = _number(spec, 'start', field, default=0.0)
    end = _number(spec, 'end', field, default=1.0)
    over_s = _number(spec, 'over_s', field, default=duration_s,
                     high=MAX_SECONDS, low_open=True)

    def ramp(t):
        return start + (end - start) * min(1.0, t / over_s)
    return {'start': start, 'end': end, 'over_s': over_s}, ramp


def _build_diurnal(spec, field, duration_s, base_dir):
    _check_keys(spec, ('period_s', 'amplitude', 'phase_s', 'mean'), field)
    period_s = _number(spec, 'period_s', field, default=86400.0,
                       high=MAX_SECONDS, low_open=True)
    amplitude = _number(spec, 'amplitude', field, default=0.5, high=1.0)
    phase_s = _number(spec, 'phase_s', field, default=0.0, high=MAX_SECONDS)
    mean = _number(spec, 'mean', field, default=1.0)
    omega = 2.0 * math.pi / period_s

    def diurnal(t):
        return mean * (1.0 + amplitude * math.sin(omega * (t + phase_s)))
    params = {'period_s': period_s, 'amplitude': amplitude,
              'phase_s': phase_s, 'mean': mean}
    return params, diurnal


def _build_spikes(spec, field, duration_s, base_dir):
    _check_keys(spec, ('every_s', 'length_s', 'factor', 'start_s', 'base'),
                field)
    every_s = _number(spec, 'every_s', field, high=MAX_SECONDS,
                      low_open=True)
    length_s = _number(spec, 'length_s', field, high=every_s, low_open=True)
    factor = _number(spec, 'factor', field, high=MAX_INTENSITY)
    start_s = _number(spec, 'start_s', field, default=every_s,
                      high=MAX_SECONDS)
    base = _number(spec, 'base', field, default=1.0)

    def spikes(t):
        if t < start_s:
            return base
        return factor if (t - start_s) % every_s < length_s else base
    params = {'every_s': every_s, 'length_s': length_s, 'factor': factor,
              'start_s': start_s, 'base': base}
    return params, spikes


def _trace_values(spec, field, base_dir, step_s):
    if ('path' in spec) == ('values' in spec):
        raise ProfileError(field + '.path', 'give exactly one of path or '
                           'values')
    if 'values' in spec:
        values = spec['values']
        if not isinstance(values, list) or not values:
            raise ProfileError(field + '.values', 'must be a non-empty list')
        if len(values) > traces.MAX_TRACE_POINTS:
            raise traces.too_many_values(field + '.values')
        return [_checked(value, '%s.values[%d]' % (field, index),
                         high=1e12)
                for index, value in enumerate(values)]
    path = spec['path']
    if not isinstance(path, str) or not path:
        raise ProfileError(field + '.path', 'must be a file path')
    fmt = spec.get('format', 'csv')
    if fmt not in traces.FORMATS:
        raise ProfileError(field + '.format', 'unknown trace format %r; '
                           'known: %s' % (fmt, ', '.join(traces.FORMATS)))
    column = spec.get('column')
    if column is not None and (isinstance(column, bool) or
                               not isinstance(column, (int, str))):
        raise ProfileError(field + '.column', 'must be a name or an index')
    full_path = os.path.join(base_dir or '.', os.path.expanduser(path))
    return traces.read_trace(full_path, fmt, column, step_s, field)


def _normalised(values, how, field):
    if how == 'none':
        return list(values)
    if how not in ('max', 'mean'):
        raise ProfileError(field + '.normalise',
                           'must be max, mean or none, got %r' % (how,))
    divisor = max(values) if how == 'max' else sum(values) / len(values)
    if divisor <= 0:
        return [0.0] * len(values)
    return [v / divisor for v in values]


def _build_trace(spec, field, duration_s, base_dir):
    _check_keys(spec, ('path', 'values', 'format', 'column', 'step_s',
                       'speedup', 'normalise', 'scale', 'offset_s'), field)
    step_s = _number(spec, 'step_s', field, default=300.0, high=MAX_SECONDS,
                     low_open=True)
    speedup = _number(spec, 'speedup', field, default=1.0, high=1e6,
                      low_open=True)
    scale = _number(spec, 'scale', field, default=1.0)
    offset_s = _number(spec, 'offset_s', field, default=0.0,
                       high=MAX_SECONDS)
    normalise = spec.get('normalise', 'max')
    raw = _trace_values(spec, field, base_dir, step_s)
    values = [v * scale for v in _normalised(raw, normalise, field)]
    replay_step_s = step_s / speedup
    count = len(values)

    def trace(t):
        position = (t + offset_s) / replay_step_s
        index = int(position)
        frac = position - index
        v0 = values[index % count]
        v1 = values[(index + 1) % count]
        return v0 + (v1 - v0) * frac
    params = {'values': raw, 'step_s': step_s, 'speedup': speedup,
              'normalise': normalise, 'scale': scale, 'offset_s': offset_s}
    for key in ('path', 'format', 'column'):
        if key in spec:
            params['source_' + key] = spec[key]
    return params, trace


BUILDERS = {
    'constant': _build_constant,
    'ramp': _build_ramp,
    'diurnal': _build_diurnal,
    'spikes': _build_spikes,
    'trace': _build_trace,
}


def build_pattern(spec, field='pattern', duration_s=60.0, base_dir=None):
    """Validate a pattern spec and return a :class:`Pattern`.

    ``to_dict()`` of a trace pattern holds the trace's values inline, so a
    profile can travel to a guest without its trace file.
    """
    if spec is None:
        spec = {'type': 'constant'}
    if not isinstance(spec, dict):
        raise ProfileError(field, 'must be a mapping with a type')
    for key in spec:
        if not isinstance(key, str):
            # A YAML file's keys may be numbers (or null, true...).
            raise ProfileError(field, 'keys must be strings, got %r'
                               % (key,))
    kind = spec.get('type', 'constant')
    if not isinstance(kind, str) or kind not in BUILDERS:
        raise ProfileError(field + '.type', 'unknown pattern %r; known: %s'
                           % (kind, ', '.join(sorted(BUILDERS))))
    if kind == 'trace' and 'values' in spec and any(
            key.startswith('source_') for key in spec):
        spec = {k: v for k, v in spec.items() if not k.startswith('source_')}
    params, function = BUILDERS[kind](spec, field, duration_s, base_dir)
    return Pattern(kind, params, function)
