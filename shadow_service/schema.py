"""JSON schemas of what crosses the RPC boundary, and their validation.

The shadow service validates every request before it boots anything; a
failure raises :class:`shadow_service.exception.InvalidRequest` naming the
offending field.  Beyond the JSON schemas every request is bounded: no
number may be NaN or infinite, nothing may nest deeper than
:data:`MAX_DEPTH`, an inline profile may take at most
:data:`MAX_INLINE_PROFILE_BYTES` of JSON, flavor extra specs and host
entries have bounded counts and lengths.
"""

import json
import math
import re

import jsonschema

from shadow_service import exception
from shadow_service import logsafe

#: Deepest nesting of dicts and lists in a request (an inline profile's
#: pattern sits five levels down).
MAX_DEPTH = 12
#: Largest inline profile, as JSON.
MAX_INLINE_PROFILE_BYTES = 64 * 1024
#: Longest evaluation id (a UUID has 36 characters).
MAX_EVALUATION_ID = 64
#: Names and ids never hold control characters (a newline in a host name
#: would forge a log line). ``(?!\n)``: Python's ``$`` also matches
#: before a final newline, which would let ``"name\n"`` through.
PRINTABLE = r'^[^\x00-\x1f\x7f]*$(?!\n)'


def _text(max_length, nullable=False, min_length=0):
    return {'type': ['string', 'null'] if nullable else 'string',
            'minLength': min_length, 'maxLength': max_length,
            'pattern': PRINTABLE}

#: Why the scheduler asks: a boot may run shadows; a move is answered from
#: history alone (see ``doc/source/weigher.rst``).
PURPOSES = ('boot', 'resize', 'migrate', 'live-migrate', 'unshelve', 'move')

FLAVOR = {
    'type': 'object',
    'properties': {
        'name': _text(255),
        'vcpus': {'type': 'integer', 'minimum': 1, 'maximum': 1024},
        'ram_mb': {'type': 'integer', 'minimum': 1, 'maximum': 16777216},
        'disk_gb': {'type': 'integer', 'minimum': 0, 'maximum': 1048576},
        # Nova's own limits: 255 characters per key and value.
        'extra_specs': {'type': 'object', 'maxProperties': 256,
                        'propertyNames': _text(255),
                        'additionalProperties': _text(255)},
    },
    'required': ['vcpus', 'ram_mb'],
    'additionalProperties': False,
}

REQUEST = {
    'type': 'object',
    'properties': {
        'flavor': FLAVOR,
        'image_id': _text(255, nullable=True),
        'profile': {'oneOf': [
            _text(255, min_length=1),
            {'type': 'object'},
        ]},
        # loadgen's own range of a profile's scale.
        'profile_scale': {'type': 'number', 'minimum': 1e-06,
                          'maximum': 64},
        'project_id': _text(255, nullable=True),
        'instance_uuid': _text(36, nullable=True),
        'num_instances': {'type': 'integer', 'minimum': 1,
                          'maximum': 10000},
        'purpose': {'enum': list(PURPOSES)},
        'availability_zone': {'type': ['string', 'null'],
                              'maxLength': 255},
    },
    'required': ['flavor', 'profile'],
    'additionalProperties': False,
}

#: Largest magnitude of a host's number (vCPUs, MB, cost): far beyond any
#: real host, and every value within it converts to a float (an integer
#: JSON allows, as 10**400, does not).
MAX_HOST_NUMBER = 1e15


def _host_number(**bounds):
    schema = {'type': 'number', 'minimum': -MAX_HOST_NUMBER,
              'maximum': MAX_HOST_NUMBER}
    schema.update(bounds)
    return schema


HOSTS = {
    'type': 'array',
    'minItems': 1,
    'maxItems': 10000,
    'items': {
        'type': 'object',
        'properties': {
            'host': _text(255, min_length=1),
            'nodename': _text(255, nullable=True),
            'vcpus': _host_number(minimum=0),
            'vcpus_used': _host_number(minimum=0),
            'free_ram_mb': _host_number(),
            'total_ram_mb': _host_number(minimum=0),
            'free_disk_mb': _host_number(),
            'num_instances': _host_number(type='integer', minimum=0),
            'cost': _host_number(minimum=0),
        },
        'required': ['host'],
        # What newer weighers may add: a few short scalars.
        'maxProperties': 32,
        'propertyNames': _text(64),
        'additionalProperties': {
            'type': ['number', 'string', 'boolean', 'null'],
            'minimum': -MAX_HOST_NUMBER, 'maximum': MAX_HOST_NUMBER,
            'maxLength': 255, 'pattern': PRINTABLE},
    },
}

BUDGET = {'type': 'number', 'exclusiveMinimum': 0, 'maximum': 86400}

EVALUATION_ID = _text(MAX_EVALUATION_ID, min_length=1)


def _where(error):
    path = '.'.join(str(p) for p in error.absolute_path)
    return path or '(top level)'


def _reject(where, why):
    raise exception.InvalidRequest(
        reason='%s: %s' % (logsafe.clip(where, 200), why))


def _check_shape(value, name):
    """No NaN or infinity anywhere, nothing nested deeper than
    ``MAX_DEPTH`` (checked without recursion)."""
    # (item, depth, path as a tuple: built into text only on error)
    stack = [(value, 0, (name,))]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                _reject('.'.join(map(str, path)),
                        'must be a finite number, got %r' % item)
            continue
        if isinstance(item, dict):
            pairs = item.items()
        elif isinstance(item, list):
            pairs = enumerate(item)
        else:
            continue
        if depth >= MAX_DEPTH:
            _reject('.'.join(map(str, path)),
                    'nested deeper than %d levels' % MAX_DEPTH)
        for key, child in pairs:
            if isinstance(child, (dict, list, float)):
                stack.append((child, depth + 1, path + (key,)))


def _check(schema, value, name, shape=True):
    if shape:
        _check_shape(value, name)
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(value),
                    key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        # The message quotes the bad value: keep it to one short line.
        _reject('%s.%s' % (name, _where(first)),
                logsafe.clip(first.message, 200))


def validate_request(request):
    _check(REQUEST, request, 'request')
    profile = request['profile']
    if isinstance(profile, dict):
        size = len(json.dumps(profile))
        if size > MAX_INLINE_PROFILE_BYTES:
            _reject('request.profile', 'an inline profile may take at most '
                    '%d bytes of JSON, got %d'
                    % (MAX_INLINE_PROFILE_BYTES, size))


def validate_evaluation_id(evaluation_id):
    _check(EVALUATION_ID, evaluation_id, 'evaluation_id')


_PRINTABLE = re.compile(PRINTABLE)
_HOST_NUMBERS = {'vcpus': 0, 'vcpus_used': 0, 'free_ram_mb': None,
                 'total_ram_mb': 0, 'free_disk_mb': None, 'cost': 0}
_HOST_ITEM = jsonschema.Draft7Validator(HOSTS['items'])


def _short_text(value, limit, nullable=False):
    if value is None:
        return nullable
    return (type(value) is str and len(value) <= limit
            and _PRINTABLE.match(value) is not None)


def _host_entry_ok(entry):
    """A fast check that ``entry`` obeys ``HOSTS['items']``; when it
    says no, jsonschema decides and words the error."""
    if type(entry) is not dict or len(entry) > 32:
        return False
    host = entry.get('host')
    if not (_short_text(host, 255) and host):
        return False
    for key, value in entry.items():
        if key == 'host':
            continue
        if key == 'nodename':
            if not _short_text(value, 255, nullable=True):
                return False
        elif key in _HOST_NUMBERS:
            if type(value) not in (int, float) or not (
                    -MAX_HOST_NUMBER <= value <= MAX_HOST_NUMBER):
                return False
            low = _HOST_NUMBERS[key]
            if low is not None and value < low:
                return False
        elif key == 'num_instances':
            if type(value) is not int or not 0 <= value <= MAX_HOST_NUMBER:
                return False
        elif not (_short_text(key, 64) and (
                type(value) is bool or value is None
                or (type(value) in (int, float)
                    and -MAX_HOST_NUMBER <= value <= MAX_HOST_NUMBER)
                or _short_text(value, 255))):
            return False
    return True


def validate_hosts(hosts):
    # Up to 10,000 entries: jsonschema only for the list and for entries
    # the fast check doubts (it would take seconds for all of them).
    _check_shape(hosts, 'hosts')
    _check({k: v for k, v in HOSTS.items() if k != 'items'}, hosts,
           'hosts', shape=False)
    for index, entry in enumerate(hosts):
        if _host_entry_ok(entry):
            continue
        errors = sorted(_HOST_ITEM.iter_errors(entry),
                        key=lambda e: list(e.absolute_path))
        if errors:
            _reject('hosts.%d.%s' % (index, _where(errors[0])),
                    logsafe.clip(errors[0].message, 200))
    names = [h['host'] for h in hosts]
    if len(set(names)) != len(names):
        raise exception.InvalidRequest(reason='hosts: duplicate host names')


def validate_budget(budget_s):
    _check(BUDGET, budget_s, 'budget_s')


#: Columns of a columnar host list (``rank_host_columns``, RPC API 1.3):
#: ``{column: (kind, lowest allowed or None)}``; ``host`` is required.
HOST_COLUMNS = {
    'host': ('name', None),
    'nodename': ('text', None),
    'vcpus': ('number', 0),
    'vcpus_used': ('number', 0),
    'free_ram_mb': ('number', None),
    'total_ram_mb': ('number', 0),
    'free_disk_mb': ('number', None),
    'num_instances': ('integer', 0),
    'cost': ('number', 0),
}
_NUMBER_TYPES = {int, float, type(None)}
_INTEGER_TYPES = {int, type(None)}
_TEXT_TYPES = {str, type(None)}


def _column_ok(name, kind, low, values):
    """None when ``values`` (one column) are all of ``kind`` and at least
    ``low``; else the first bad value's index and why."""
    types = set(map(type, values))
    if kind in ('name', 'text'):
        allowed = {str} if kind == 'name' else _TEXT_TYPES
        if not types <= allowed:
            bad = next(i for i, v in enumerate(values)
                       if type(v) not in allowed)
            return bad, 'must be a string%s' % (
                '' if kind == 'name' else ' or null')
        present = values if type(None) not in types else [
            v for v in values if v is not None]
        if not present or (
                max(map(len, present)) <= 255
                and (kind != 'name' or min(map(len, present)) > 0)
                and _PRINTABLE.match(''.join(present)) is not None):
            # Every value at once (the pattern is one class of
            # characters); the loop below names the first bad one.
            return None
        for index, value in enumerate(values):
            if value is None:
                continue
            if (len(value) > 255 or (kind == 'name' and not value)
                    or _PRINTABLE.match(value) is None):
                return index, ('must be 1 to 255 printable characters'
                               if kind == 'name' else
                               'must be at most 255 printable characters')
        return None
    allowed = _INTEGER_TYPES if kind == 'integer' else _NUMBER_TYPES
    if not types <= allowed:
        bad = next(i for i, v in enumerate(values) if type(v) not in allowed)
        return bad, 'must be %s or null' % (
            'an integer' if kind == 'integer' else 'a number')
    if float in types:
        for index, value in enumerate(values):
            if type(value) is float and not math.isfinite(value):
                return index, 'must be a finite number'
    present = values if type(None) not in types else [
        v for v in values if v is not None]
    if present and (max(present) > MAX_HOST_NUMBER
                    or min(present) < -MAX_HOST_NUMBER):
        index = next(i for i, v in enumerate(values) if v is not None
                     and not -MAX_HOST_NUMBER <= v <= MAX_HOST_NUMBER)
        return index, 'must be within %g of 0' % MAX_HOST_NUMBER
    if low is not None:
        present = values if type(None) not in types else [
            v for v in values if v is not None]
        if present and min(present) < low:
            index = next(i for i, v in enumerate(values)
                         if v is not None and v < low)
            return index, 'must be at least %s' % low
    return None


def hosts_from_columns(columns):
    """The host list (``HOSTS``) of a columnar one: ``{column: [value per
    host]}`` with the columns of :data:`HOST_COLUMNS`, ``host`` required,
    every column as long as it, a null meaning the host has no value
    there.  InvalidRequest names the column and the host's index."""
    if type(columns) is not dict:
        _reject('hosts', 'must be an object of columns')
    unknown = sorted(set(columns) - set(HOST_COLUMNS), key=str)
    if unknown:
        _reject('hosts.%s' % unknown[0], 'not a host column (one of %s)'
                % ', '.join(HOST_COLUMNS))
    names = columns.get('host')
    if type(names) is not list:
        _reject('hosts.host', 'a list of host names is required')
    if not 1 <= len(names) <= HOSTS['maxItems']:
        _reject('hosts.host', 'must name 1 to %d hosts, got %d'
                % (HOSTS['maxItems'], len(names)))
    for name, (kind, low) in HOST_COLUMNS.items():
        values = columns.get(name)
        if values is None:
            continue
        if type(values) is not list or len(values) != len(names):
            _reject('hosts.%s' % name, 'must be a list as long as '
                    'hosts.host (%d)' % len(names))
        bad = _column_ok(name, kind, low, values)
        if bad is not None:
            _reject('hosts.%s.%d' % (name, bad[0]), bad[1])
    if len(set(names)) != len(names):
        raise exception.InvalidRequest(reason='hosts: duplicate host names')
    present = [(name, values) for name, values in columns.items()
               if name != 'host' and values is not None]
    rows = [{'host': host} for host in names]
    for name, values in present:
        for row, value in zip(rows, values):
            if value is not None:
                row[name] = value
    return rows
