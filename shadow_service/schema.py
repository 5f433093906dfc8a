"""JSON schemas of what crosses the RPC boundary, and their validation.

The shadow service validates every request before it boots anything; a
failure raises :class:`shadow_service.exception.InvalidRequest` naming the
offending field.
"""

import jsonschema

from shadow_service import exception

#: Why the scheduler asks: a boot may run shadows; a move is answered from
#: history alone (see ``doc/source/weigher.rst``).
PURPOSES = ('boot', 'resize', 'migrate', 'live-migrate', 'unshelve', 'move')

FLAVOR = {
    'type': 'object',
    'properties': {
        'name': {'type': 'string', 'maxLength': 255},
        'vcpus': {'type': 'integer', 'minimum': 1, 'maximum': 1024},
        'ram_mb': {'type': 'integer', 'minimum': 1, 'maximum': 16777216},
        'disk_gb': {'type': 'integer', 'minimum': 0, 'maximum': 1048576},
        'extra_specs': {'type': 'object',
                        'additionalProperties': {'type': 'string'}},
    },
    'required': ['vcpus', 'ram_mb'],
    'additionalProperties': False,
}

REQUEST = {
    'type': 'object',
    'properties': {
        'flavor': FLAVOR,
        'image_id': {'type': ['string', 'null'], 'maxLength': 255},
        'profile': {'oneOf': [
            {'type': 'string', 'minLength': 1, 'maxLength': 255},
            {'type': 'object'},
        ]},
        'profile_scale': {'type': 'number', 'exclusiveMinimum': 0,
                          'maximum': 100},
        'project_id': {'type': ['string', 'null'], 'maxLength': 255},
        'instance_uuid': {'type': ['string', 'null'], 'maxLength': 36},
        'num_instances': {'type': 'integer', 'minimum': 1,
                          'maximum': 10000},
        'purpose': {'enum': list(PURPOSES)},
        'availability_zone': {'type': ['string', 'null'],
                              'maxLength': 255},
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
            'host': {'type': 'string', 'minLength': 1, 'maxLength': 255},
            'nodename': {'type': ['string', 'null'], 'maxLength': 255},
            'vcpus': {'type': 'number', 'minimum': 0},
            'vcpus_used': {'type': 'number', 'minimum': 0},
            'free_ram_mb': {'type': 'number'},
            'total_ram_mb': {'type': 'number', 'minimum': 0},
            'free_disk_mb': {'type': 'number'},
            'num_instances': {'type': 'integer', 'minimum': 0},
            'cost': {'type': 'number', 'minimum': 0},
        },
        'required': ['host'],
    },
}

BUDGET = {'type': 'number', 'exclusiveMinimum': 0, 'maximum': 86400}


def _where(error):
    path = '.'.join(str(p) for p in error.absolute_path)
    return path or '(top level)'


def _check(schema, value, name):
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(value),
                    key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        raise exception.InvalidRequest(
            reason='%s.%s: %s' % (name, _where(first), first.message))


def validate_request(request):
    _check(REQUEST, request, 'request')


def validate_hosts(hosts):
    _check(HOSTS, hosts, 'hosts')
    names = [h['host'] for h in hosts]
    if len(set(names)) != len(names):
        raise exception.InvalidRequest(reason='hosts: duplicate host names')


def validate_budget(budget_s):
    _check(BUDGET, budget_s, 'budget_s')
