"""Every bad request gets a typed error, one log line and no traceback;
the schema bounds what a request may hold; an inline profile names no
file, directory or peer the operator did not allow; tenant text cannot
forge a log line.  Through the real manager (twin, memory store)."""

import logging

import pytest
from oslo_messaging.rpc import dispatcher

from shadow_service import exception
from shadow_service import service
from shadow_service.history import memory
from tests import service_support

REQUEST = {'flavor': {'vcpus': 2, 'ram_mb': 2048}, 'profile': 'web'}
HOSTS = [{'host': 'node-1'}]


def _deep(levels):
    top = current = {}
    for _ in range(levels):
        current['a'] = {}
        current = current['a']
    return top


def _call(manager, method, *args):
    """``manager.<method>({}, *args)``, unwrapping what oslo.messaging's
    ``expected_exceptions`` wraps for the RPC server."""
    try:
        return getattr(manager, method)({}, *args)
    except dispatcher.ExpectedException as wrapped:
        raise wrapped.exc_info[1] from None


def _inline(components):
    return {'name': 'mine', 'duration_s': 10, 'components': components}


@pytest.fixture(scope='module')
def parts():
    conf = service_support.make_conf(
        shadow={'min_run_time': 1,
                'inline_profile_allow': ['/srv/shadow-data',
                                         '10.0.0.5:5201']})
    built = service.build(conf, history=memory.MemoryStore())
    yield built
    built.close()


BAD_CALLS = [
    ('rank_hosts', (dict(REQUEST, profile_scale=100), HOSTS, 1),
     'profile_scale'),
    ('rank_hosts', (dict(REQUEST, profile_scale=float('nan')), HOSTS, 1),
     'profile_scale'),
    ('rank_hosts', (dict(REQUEST, profile=_deep(700)), HOSTS, 1),
     'nested deeper'),
    ('rank_hosts', (REQUEST, HOSTS, float('nan')), 'budget_s'),
    ('rank_hosts', (REQUEST, [{'host': 'a', 'vcpus': float('nan')}], 1),
     'hosts.0.vcpus'),
    ('rank_hosts', (REQUEST, [{'host': 'a', 'free_ram_mb': float('inf')}],
                    1), 'hosts.0.free_ram_mb'),
    ('rank_hosts', (dict(REQUEST, flavor={
        'vcpus': 2, 'ram_mb': 2048, 'extra_specs': {'x': 'a' * 2 ** 20}}),
        HOSTS, 1), 'request.flavor.extra_specs.x'),
    ('rank_hosts', (dict(REQUEST, flavor={
        'vcpus': 2, 'ram_mb': 2048,
        'extra_specs': {'k%d' % i: 'v' for i in range(1000)}}),
        HOSTS, 1), 'request.flavor.extra_specs'),
    ('rank_hosts', (REQUEST, [{'host': 'a', 'junk': 'x' * 2 ** 20}], 1),
     'hosts.0.junk'),
    ('rank_hosts', (REQUEST, [dict({'host': 'a'}, **{
        'k%d' % i: 1 for i in range(100)})], 1), 'hosts.0'),
    ('rank_hosts', (dict(REQUEST, profile=_inline(
        {'cpu': {'workers': 1}, 'disk': {'file': '/etc/passwd'}})),
        HOSTS, 1), 'profile.components.disk.file'),
    ('rank_hosts', (dict(REQUEST, profile=_inline(
        {'disk': {'dir': '/root'}})), HOSTS, 1),
     'profile.components.disk.dir'),
    ('rank_hosts', (dict(REQUEST, profile=_inline(
        {'disk': {'dir': '/srv/shadow-data/../../root'}})), HOSTS, 1),
     'profile.components.disk.dir'),
    ('rank_hosts', (dict(REQUEST, profile=_inline(
        {'network': {'peer': '169.254.169.254:80'}})), HOSTS, 1),
     'profile.components.network.peer'),
    ('rank_hosts', (dict(REQUEST, profile=_inline(
        {'cpu': {'pattern': {'kind': 'trace', 'path': '/etc/shadow'}}})),
        HOSTS, 1), 'path'),
    ('rank_hosts', (dict(REQUEST, profile=dict(
        _inline({'cpu': {}}), description='x' * 70000)), HOSTS, 1),
     'at most'),
    ('start_evaluation', (dict(REQUEST, profile_scale=0), HOSTS, 1),
     'profile_scale'),
    ('get_evaluation', (['not', 'an', 'id'],), 'evaluation_id'),
    ('get_evaluation', ({'id': 1},), 'evaluation_id'),
    ('cancel_evaluation', (['x'],), 'evaluation_id'),
    ('get_evaluation', ('x' * 1000,), 'evaluation_id'),
]


@pytest.mark.parametrize('method, args, field', BAD_CALLS,
                         ids=['%s-%d' % (c[0], i)
                              for i, c in enumerate(BAD_CALLS)])
def test_bad_call_gets_a_typed_error_and_one_log_line(parts, caplog,
                                                      method, args, field):
    caplog.set_level(logging.DEBUG, logger='shadow_service')
    with pytest.raises(exception.InvalidRequest) as info:
        _call(parts.manager, method, *args)
    message = str(info.value)
    assert field in message
    assert len(message) < 1000
    ours = [r for r in caplog.records
            if r.name.startswith('shadow_service')]
    assert len(ours) == 1, [r.getMessage() for r in ours]
    assert ours[0].exc_info is None
    assert '\n' not in ours[0].getMessage()


@pytest.mark.parametrize('components', [
    {'disk': {'dir': '/srv/shadow-data/run1'}},
    {'disk': {'file': '/srv/shadow-data/disk.img'}},
    {'network': {'peer': '10.0.0.5:5201'}},
    {'network': {'peer': 'self'}},
])
def test_inline_profile_may_name_what_the_operator_allows(parts,
                                                          components):
    profile = parts.evaluator.resolve_profile(
        dict(REQUEST, profile=_inline(components)))
    assert profile.name == 'mine'


@pytest.mark.parametrize('field, value', [
    ('host', 'node-1\n2026-12-01 ERROR forged line'),
    ('nodename', 'n\r1'),
])
def test_control_characters_in_host_names_are_rejected(parts, caplog,
                                                       field, value):
    caplog.set_level(logging.DEBUG, logger='shadow_service')
    entry = {'host': 'node-1'}
    entry[field] = value
    with pytest.raises(exception.InvalidRequest, match='hosts.0.' + field):
        _call(parts.manager, 'rank_hosts', REQUEST, [entry], 1)
    for record in caplog.records:
        assert '\n' not in record.getMessage()
        assert '\r' not in record.getMessage()


def test_unknown_profile_name_is_logged_escaped(parts, caplog):
    caplog.set_level(logging.DEBUG, logger='shadow_service')
    with pytest.raises(exception.InvalidRequest):
        _call(parts.manager, 'rank_hosts',
              dict(REQUEST, profile='no\nERROR forged'), HOSTS, 1)
    lines = [r.getMessage() for r in caplog.records]
    assert lines and all('\n' not in line for line in lines)
