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
#: would forge a log line).
PRINTABLE = r'^[^\x00-\x1f\x7f]*$'


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
    },
    'required': ['flavor', 'profile'],
    'additionalProperties': False,
}

HOSTS = {
    'type': 'array',
    'minItems': 1,
    'maxItems': 10000,
    'items': {
        'type': 'object',
        'properties': {
            'host': _text(255, min_length=1),
            'nodename': _text(255, nullable=True),
            'vcpus': {'type': 'number', 'minimum': 0},
            'vcpus_used': {'type': 'number', 'minimum': 0},
            'free_ram_mb': {'type': 'number'},
            'total_ram_mb': {'type': 'number', 'minimum': 0},
            'free_disk_mb': {'type': 'number'},
            'num_instances': {'type': 'integer', 'minimum': 0},
        },
        'required': ['host'],
        # What newer weighers may add: a few short scalars.
        'maxProperties': 32,
        'propertyNames': _text(64),
        'additionalProperties': {
            'type': ['number', 'string', 'boolean', 'null'],
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
    stack = [(value, name, 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            _reject(where, 'must be a finite number, got %r' % item)
        if not isinstance(item, (dict, list)):
            continue
        if depth >= MAX_DEPTH:
            _reject(where, 'nested deeper than %d levels' % MAX_DEPTH)
        pairs = (item.items() if isinstance(item, dict)
                 else enumerate(item))
        for key, child in pairs:
            stack.append((child, '%s.%s' % (where, key), depth + 1))


def _check(schema, value, name):
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


def validate_hosts(hosts):
    _check(HOSTS, hosts, 'hosts')
    names = [h['host'] for h in hosts]
    if len(set(names)) != len(names):
        raise exception.InvalidRequest(reason='hosts: duplicate host names')


def validate_budget(budget_s):
    _check(BUDGET, budget_s, 'budget_s')
