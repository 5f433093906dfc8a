"""Workload profiles: what loadgen runs, validated before anything starts.

A profile is a mapping (YAML, JSON or a Python dict)::

    name: web
    duration_s: 60          # run length
    warmup_s: 2             # samples taken during warm-up are not emitted
    interval_s: 1           # sample interval
    sensitivity: {cpu: 0.3, memory: 0.1, io: 0.1, network: 0.2,
                  latency: 0.3}   # what the VM's owner cares about
    pattern: {type: constant}     # see loadgen.patterns
    components:
      cpu: {workers: 1, duty_cycle: 0.4}
      memory: {working_set_mb: 64, target_gbps: null}
      disk: {file_size_mb: 64, block_size_kb: 4, pattern: random,
             read_ratio: 0.7, iodepth: 1, target_iops: null,
             fsync: false, direct: false}
      network: {mode: rr, target_rps: 200, payload_bytes: 512,
                peer: "127.0.0.1:7777"}

A component may carry its own ``pattern`` mapping (intensity over time);
for ``disk`` a *string* ``pattern`` is the access pattern (``random`` or
``sequential``, also accepted as ``access``). Unknown keys are errors, so a
typo never silently runs a different load. Built-in profiles are the JSON
files next to this module; add one by dropping ``<name>.json`` here and
listing it in ``BUILTIN_PROFILES``. Parameter limits live in ``SCHEMAS``.

Only the standard library is needed; PyYAML is used for YAML files when
it is installed (JSON is accepted everywhere). A profile file must be a
regular file of at most ``MAX_PROFILE_BYTES`` (16 MiB).
"""

import copy
import json
import math
import os
import pkgutil
import re

from loadgen import files
from loadgen import patterns
from loadgen.errors import ProfileError

__all__ = ['BUILTIN_PROFILES', 'Profile', 'ProfileError', 'load_profile']

BUILTIN_PROFILES = ('web', 'db-oltp', 'batch-cpu', 'cache', 'analytics',
                    'idle')
SENSITIVITY_KEYS = ('cpu', 'memory', 'io', 'network', 'latency')
MAX_DURATION_S = 30 * 86400.0
MAX_SCALE = 64.0
MAX_PROFILE_BYTES = 16 * 2 ** 20
_TOP_KEYS = ('name', 'description', 'duration_s', 'warmup_s', 'interval_s',
             'sensitivity', 'pattern', 'components', 'scale')
_MIB = 1024 * 1024
# disk.iodepth x disk.block_size_kb: what a disk run has in flight. A
# stop waits for it (and native AIO cannot cancel it), so it bounds how
# long a run overruns its end: 256 x 16 MiB (4 GiB) took over 60 s to
# stop; 256 MiB drains in about 0.3 s at 820 MB/s, 2.6 s at 100 MB/s.
MAX_DISK_IN_FLIGHT_KB = 256 * 1024

# name -> (kind, default, low, high); kind: int, float, bool, choice,
# optfloat (None allowed), str.
SCHEMAS = {
    'cpu': {
        'workers': ('int', 1, 1, 1024),
        'duty_cycle': ('float', 1.0, 0.0, 1.0),
    },
    'memory': {
        'working_set_mb': ('float', 64.0, 1.0, 1024.0 * 1024),
        'target_gbps': ('optfloat', None, 0.001, 10000.0),
        'workers': ('int', 1, 1, 256),
        'duty_cycle': ('float', 1.0, 0.0, 1.0),
    },
    'disk': {
        'file_size_mb': ('float', 64.0, 1.0, 1024.0 * 1024),
        'block_size_kb': ('int', 4, 1, 16384),
        'access': ('choice', 'random', ('random', 'sequential'), None),
        'read_ratio': ('float', 0.7, 0.0, 1.0),
        'iodepth': ('int', 1, 1, 256),
        'target_iops': ('optfloat', None, 0.001, 1e7),
        'fsync': ('bool', False, None, None),
        'direct': ('bool', False, None, None),
        'dir': ('optstr', None, None, None),
        'file': ('optstr', None, None, None),
        'engine': ('choice', 'sync', ('sync', 'aio'), None),
        'duty_cycle': ('float', 1.0, 0.0, 1.0),
    },
    'network': {
        'mode': ('choice', 'rr', ('rr', 'stream'), None),
        'target_rps': ('optfloat', None, 0.001, 1e7),
        'payload_bytes': ('int', 512, 1, 64 * _MIB),
        'response_bytes': ('optint', None, 1, 64 * _MIB),
        'connections': ('int', 1, 1, 256),
        'peer': ('str', 'self', None, None),
        'timeout_s': ('float', 5.0, 0.01, 300.0),
        'duty_cycle': ('float', 1.0, 0.0, 1.0),
    },
}
COMPONENTS = tuple(SCHEMAS)


def _unicode(text, field):
    """``text`` if it can be written as UTF-8 (no lone surrogate, which
    JSON's ``\\ud800`` escape or a file name can carry): every sink
    and the service's history write it so."""
    try:
        text.encode('utf-8')
    except UnicodeEncodeError as exc:
        raise ProfileError(field, 'not valid Unicode text (a lone '
                           'surrogate at character %d)' % exc.start) from None
    return text


def _check_number(value, field, kind, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProfileError(field, 'must be a number, got %r' % (value,))
    try:
        float(value)
    except OverflowError:
        raise ProfileError(field, 'must be between %g and %g, got an '
                           'integer too large for a float'
                           % (low, high)) from None
    if kind in ('int', 'optint'):
        if isinstance(value, float) and not value.is_integer():
            raise ProfileError(field, 'must be an integer, got %r' % value)
        if not math.isfinite(value):
            raise ProfileError(field, 'must be finite, got %r' % value)
        value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            raise ProfileError(field, 'must be finite, got %r' % value)
    if value < low or value > high:
        raise ProfileError(field, 'must be between %g and %g, got %g'
                           % (low, high, value))
    return value


def _check_param(value, field, rule):
    kind, default, low, high = rule
    if value is None and kind.startswith('opt'):
        return None
    if kind == 'bool':
        if not isinstance(value, bool):
            raise ProfileError(field, 'must be true or false, got %r'
                               % (value,))
        return value
    if kind == 'choice':
        if value not in low:
            raise ProfileError(field, 'must be one of %s, got %r'
                               % (', '.join(low), value))
        return value
    if kind in ('str', 'optstr'):
        if not isinstance(value, str) or not value:
            raise ProfileError(field, 'must be a non-empty string')
        return _unicode(value, field)
    return _check_number(value, field, kind, low, high)


def _check_peer(peer, field):
    if peer == 'self':
        return peer
    host, sep, port = peer.rpartition(':')
    if not sep or not host or not (port.isascii() and port.isdigit()) \
            or not 0 < int(port) < 65536:
        raise ProfileError(field, 'must be self or host:port, got %r'
                           % peer)
    return peer


def _validate_component(name, spec, duration_s, base_dir):
    field = 'components.%s' % name
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise ProfileError(field, 'must be a mapping of parameters')
    spec = dict(spec)
    schema = SCHEMAS[name]
    if name == 'disk' and isinstance(spec.get('pattern'), str):
        if 'access' in spec:
            raise ProfileError(field + '.pattern', 'give access or a '
                               'string pattern, not both')
        spec['access'] = spec.pop('pattern')
    params = {}
    for key, value in spec.items():
        if not isinstance(key, str):
            raise ProfileError(field, 'keys must be strings, got %r'
                               % (key,))
        if key == 'pattern':
            continue
        if key not in schema:
            raise ProfileError('%s.%s' % (field, key), 'unknown parameter; '
                               'known: %s' % ', '.join(sorted(schema)))
        params[key] = _check_param(value, '%s.%s' % (field, key),
                                   schema[key])
    for key, rule in schema.items():
        params.setdefault(key, rule[1])
    if name == 'network':
        _check_peer(params['peer'], field + '.peer')
    if name == 'disk' and params['engine'] == 'aio' and (
            params['fsync'] or params['target_iops'] is not None):
        raise ProfileError(field + '.engine', 'aio keeps iodepth requests '
                           'in flight flat out; it cannot be combined with '
                           'fsync or target_iops (use engine: sync)')
    if name == 'disk' and (params['iodepth'] * params['block_size_kb'] >
                           MAX_DISK_IN_FLIGHT_KB):
        raise ProfileError(field + '.iodepth', 'iodepth x block_size_kb '
                           'must be at most %d KiB (256 MiB in flight), got '
                           '%d x %d' % (MAX_DISK_IN_FLIGHT_KB,
                                        params['iodepth'],
                                        params['block_size_kb']))
    if 'pattern' in spec:
        params['pattern'] = patterns.build_pattern(
            spec['pattern'], field + '.pattern', duration_s, base_dir)
    return params


def _default_sensitivity(components):
    weights = dict.fromkeys(SENSITIVITY_KEYS, 0.0)
    if 'cpu' in components:
        weights['cpu'] = 1.0
    if 'memory' in components:
        weights['memory'] = 1.0
    if 'disk' in components:
        weights['io'] = 1.0
        weights['latency'] += 0.5
    if 'network' in components:
        weights['network'] = 1.0
        if components['network']['mode'] == 'rr':
            weights['latency'] += 0.5
    if not any(weights.values()):
        weights['cpu'] = 1.0
    return weights


def _validate_sensitivity(spec, components):
    if spec is None:
        spec = _default_sensitivity(components)
    if not isinstance(spec, dict):
        raise ProfileError('sensitivity', 'must be a mapping of weights')
    weights = dict.fromkeys(SENSITIVITY_KEYS, 0.0)
    for key, value in spec.items():
        if key not in weights:
            raise ProfileError('sensitivity.%s' % (key,), 'unknown; known: '
                               '%s' % ', '.join(SENSITIVITY_KEYS))
        weights[key] = _check_number(value, 'sensitivity.%s' % key,
                                     'float', 0.0, 1e6)
    total = sum(weights.values())
    if total <= 0:
        raise ProfileError('sensitivity', 'at least one weight must be > 0')
    return {key: round(value / total, 12) for key, value in weights.items()}


def _required_number(spec, key, default, low, high, kind='float'):
    value = spec.get(key, default)
    if value is None:
        raise ProfileError(key, 'is required')
    return _check_number(value, key, kind, low, high)


def _timing(spec):
    duration_s = _required_number(spec, 'duration_s', 60.0, 0.1,
                                  MAX_DURATION_S)
    interval_s = _required_number(spec, 'interval_s', 1.0, 0.05, 3600.0)
    if interval_s > duration_s:
        raise ProfileError('interval_s', 'must not exceed duration_s (%g)'
                           % duration_s)
    warmup_default = min(2.0, duration_s / 4.0)
    warmup_s = _required_number(spec, 'warmup_s', warmup_default, 0.0,
                                MAX_DURATION_S)
    if warmup_s >= duration_s:
        raise ProfileError('warmup_s', 'must be shorter than duration_s '
                           '(%g)' % duration_s)
    return duration_s, warmup_s, interval_s


def _text(spec, key, default, limit):
    value = spec.get(key, default)
    if not isinstance(value, str) or (key == 'name' and not value.strip()):
        raise ProfileError(key, 'must be a non-empty string' if key == 'name'
                           else 'must be a string')
    if len(value) > limit:
        raise ProfileError(key, 'longer than %d characters' % limit)
    return _unicode(value, key)


class Profile:
    """A validated workload profile.

    Attributes
    ----------
    name, description : str
    duration_s, warmup_s, interval_s : float
    sensitivity : dict
        weights for cpu, memory, io, network, latency; sum to 1.
    components : dict
        component name -> dict of validated parameters (defaults filled;
        ``pattern`` present only when the component overrides it, as a
        :class:`loadgen.patterns.Pattern`).
    pattern : loadgen.patterns.Pattern
        the profile-wide intensity pattern.
    """

    def __init__(self, spec, base_dir=None):
        if not isinstance(spec, dict):
            raise ProfileError('profile', 'must be a mapping, got %s'
                               % type(spec).__name__)
        for key in spec:
            if key not in _TOP_KEYS:
                raise ProfileError(str(key), 'unknown field; known: %s'
                                   % ', '.join(_TOP_KEYS))
        self.name = _text(spec, 'name', 'custom', 64)
        self.description = _text(spec, 'description', '', 2000)
        self.duration_s, self.warmup_s, self.interval_s = _timing(spec)
        self.scale = _required_number(spec, 'scale', 1.0, 1e-6, 1e6)
        self.pattern = patterns.build_pattern(
            spec.get('pattern'), 'pattern', self.duration_s, base_dir)
        self.components = self._components(spec.get('components', {}),
                                           base_dir)
        self.sensitivity = _validate_sensitivity(spec.get('sensitivity'),
                                                 self.components)
        self._patterns = {name: params.get('pattern', self.pattern)
                          for name, params in self.components.items()}

    def _components(self, spec, base_dir):
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise ProfileError('components', 'must be a mapping of '
                               'component name to parameters')
        components = {}
        for name, params in spec.items():
            if name not in SCHEMAS:
                raise ProfileError('components.%s' % (name,),
                                   'unknown component; known: %s'
                                   % ', '.join(COMPONENTS))
            components[name] = _validate_component(
                name, params, self.duration_s, base_dir)
        return components

    def intensity(self, component, t_s):
        """Multiplier (>= 0) of ``component``'s load at ``t_s`` seconds.

        Deterministic and cheap; the component's own pattern wins over
        the profile's. Unknown components raise ``KeyError``.
        """
        return self._patterns[component](t_s)

    def to_dict(self):
        """A JSON-serialisable dict that ``load_profile`` accepts back."""
        components = {}
        for name, params in self.components.items():
            out = {k: v for k, v in params.items() if k != 'pattern'}
            if 'pattern' in params:
                out['pattern'] = params['pattern'].to_dict()
            components[name] = out
        return {'name': self.name, 'description': self.description,
                'duration_s': self.duration_s, 'warmup_s': self.warmup_s,
                'interval_s': self.interval_s, 'scale': self.scale,
                'sensitivity': dict(self.sensitivity),
                'pattern': self.pattern.to_dict(),
                'components': components}

    def scaled(self, factor):
        """A copy running ``factor`` times this profile's load.

        Rate targets, working sets and file sizes scale directly; worker
        counts and queue depths scale with the rest going into the duty
        cycle, so total demand (workers x duty) follows ``factor``.
        """
        factor = _check_number(factor, 'scale', 'float', 1e-6, MAX_SCALE)
        spec = self.to_dict()
        spec['scale'] = min(1e6, max(1e-6, self.scale * factor))
        for name, params in spec['components'].items():
            _SCALERS[name](params, factor)
        return Profile(spec)

    def __repr__(self):
        return '<Profile %s %s>' % (self.name, sorted(self.components))


def _scale_concurrency(params, count_key, factor, high):
    demand = params[count_key] * params['duty_cycle'] * factor
    count = max(1, min(high, math.ceil(demand - 1e-9)))
    params[count_key] = count
    params['duty_cycle'] = min(1.0, demand / count)


def _scale_optional(params, key, factor, low, high):
    if params[key] is not None:
        params[key] = min(high, max(low, params[key] * factor))


def _scale_cpu(params, factor):
    _scale_concurrency(params, 'workers', factor, 1024)


def _scale_sized(params, factor, size_key, target_key, target_high,
                 count_key, count_high=256):
    """A component with a data size and either a rate target or a
    concurrency (workers, queue depth) that sets its load."""
    params[size_key] = min(1024.0 * 1024, max(
        1.0, params[size_key] * factor))
    if params[target_key] is not None:
        _scale_optional(params, target_key, factor, 0.001, target_high)
    else:
        _scale_concurrency(params, count_key, factor, count_high)


def _scale_memory(params, factor):
    _scale_sized(params, factor, 'working_set_mb', 'target_gbps', 10000.0,
                 'workers')


def _scale_disk(params, factor):
    _scale_sized(params, factor, 'file_size_mb', 'target_iops', 1e7,
                 'iodepth', max(1, min(256, MAX_DISK_IN_FLIGHT_KB //
                                       params['block_size_kb'])))


def _scale_network(params, factor):
    if params['target_rps'] is not None:
        _scale_optional(params, 'target_rps', factor, 0.001, 1e7)
    else:
        _scale_concurrency(params, 'connections', factor, 256)


_SCALERS = {'cpu': _scale_cpu, 'memory': _scale_memory,
            'disk': _scale_disk, 'network': _scale_network}


def _parse_text(text, source):
    try:
        return json.loads(text)
    except ValueError as exc:
        json_error = exc
    except RecursionError:
        raise ProfileError(source, 'nested too deeply') from None
    try:
        import yaml
    except ImportError:
        raise ProfileError('%s:%d' % (source, json_error.lineno),
                           'not valid JSON (%s); install PyYAML for YAML '
                           'profiles' % json_error.msg) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, 'problem_mark', None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, 'problem', None) or str(exc)
        raise ProfileError('%s:%d' % (source, line),
                           'not valid YAML: %s' % problem) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise ProfileError(source, 'not valid YAML: %s' % exc) from None


def _builtin_spec(name):
    data = pkgutil.get_data(__name__, '%s.json' % name)
    return json.loads(data.decode('utf-8'))


_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'" '|' r'"(?:[^"\\]|\\.)*"')


def _line_of(text, needle):
    """1-based number of the first line of ``text`` holding ``needle``."""
    for number, line in enumerate(text.splitlines(), 1):
        if needle and needle in line:
            return number
    return None


def _without_content(error, path, text):
    """``error`` about the profile file ``path`` with nothing read from
    the file in it: an unknown key becomes ``path:line`` and quoted values
    are left out (the file may be anything, ``/etc/shadow`` included)."""
    field, message = error.field, _QUOTED.sub('a value (not shown)',
                                               error.message)
    if message.startswith('unknown'):
        parent, _, key = field.rpartition('.')
        line = _line_of(text, key)
        field = path if line is None else '%s:%d' % (path, line)
        message = '%s %s' % (message.replace(';', ' in %s;' % (
            parent or 'the profile'), 1), '(the key is not shown)')
    return ProfileError(field, message)


def _load_path(path):
    text = files.read_text(path, 'profile', MAX_PROFILE_BYTES)
    spec = _parse_text(text, path)
    if isinstance(spec, dict) and 'name' not in spec:
        spec = dict(spec, name=os.path.splitext(os.path.basename(path))[0])
    try:
        return Profile(spec, base_dir=os.path.dirname(os.path.abspath(path)))
    except ProfileError as error:
        raise _without_content(error, path, text) from None


def load_profile(spec, base_dir=None):
    """Return a validated :class:`Profile`.

    Parameters
    ----------
    spec : str or dict or Profile
        a built-in name (``BUILTIN_PROFILES``), a path to a YAML/JSON file,
        inline JSON text, or a mapping in the profile format.
    base_dir : str, optional
        where relative trace paths of a mapping are resolved.

    Raises
    ------
    ProfileError
        naming the field or file line that is wrong.
    """
    if isinstance(spec, Profile):
        return spec
    if isinstance(spec, dict):
        try:
            return Profile(copy.deepcopy(spec), base_dir=base_dir)
        except RecursionError:
            raise ProfileError('profile', 'nested too deeply') from None
    if not isinstance(spec, str) or not spec.strip():
        raise ProfileError('profile', 'must be a built-in name, a path or '
                           'a mapping, got %r' % (spec,))
    if spec in BUILTIN_PROFILES:
        return Profile(_builtin_spec(spec))
    if spec.lstrip().startswith('{'):
        return Profile(_parse_text(spec, '<inline>'), base_dir=base_dir)
    if os.path.exists(spec):
        return _load_path(spec)
    raise ProfileError('profile', 'no built-in profile or file named %r; '
                       'built-ins: %s' % (spec, ', '.join(BUILTIN_PROFILES)))
