"""Whatever a caller sends, the service answers or refuses with a typed
error: requests, host columns and budgets drawn by Hypothesis, most of
them one change away from a good request (so they get past the first
check), through the real manager (twin, memory store), asked of history
only so that no shadow boots."""

import copy

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from oslo_messaging.rpc import dispatcher

from shadow_service import exception
from shadow_service import service
from shadow_service.history import memory
from tests import service_support

GOOD_REQUEST = {
    'flavor': {'name': 'm1.small', 'vcpus': 2, 'ram_mb': 2048,
               'disk_gb': 20, 'extra_specs': {'hw:cpu_policy': 'shared'}},
    'profile': 'web', 'purpose': 'boot', 'profile_scale': 1.0,
}
GOOD_COLUMNS = {'host': ['node-1', 'node-2'], 'vcpus': [32, 16],
                'free_ram_mb': [65536, 1024]}

JSON_SCALARS = (st.none() | st.booleans() | st.integers()
                | st.floats(allow_nan=True, allow_infinity=True)
                | st.text(max_size=20))
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (st.lists(inner, max_size=4)
                   | st.dictionaries(st.text(max_size=10), inner,
                                     max_size=4)),
    max_leaves=12)


def _paths(value, prefix=()):
    """Every path to a value inside ``value`` (dict keys, list indexes)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


@st.composite
def one_change(draw, good):
    """``good`` with the value at one of its paths replaced, removed or,
    in a dict, a key added beside it."""
    value = copy.deepcopy(good)
    path = draw(st.sampled_from(list(_paths(value))))
    if not path:
        return draw(JSON_VALUES)
    parent = value
    for step in path[:-1]:
        parent = parent[step]
    how = draw(st.sampled_from(['replace', 'remove', 'add']))
    if how == 'remove':
        del parent[path[-1]]
    elif how == 'add' and isinstance(parent, dict):
        parent[draw(st.text(max_size=10))] = draw(JSON_VALUES)
    else:
        parent[path[-1]] = draw(JSON_VALUES)
    return value


@pytest.fixture(scope='module')
def manager():
    built = service.build(service_support.make_conf(),
                          history=memory.MemoryStore())
    yield built.manager
    built.close()


def _ask(manager, request, columns, budget):
    try:
        return manager.rank_host_columns({}, request, columns, budget,
                                         history_only=True, record=False)
    except dispatcher.ExpectedException as wrapped:
        raise wrapped.exc_info[1] from None


def test_the_good_request_is_answered(manager):
    reply = _ask(manager, GOOD_REQUEST, GOOD_COLUMNS, 10.0)
    assert len(reply['scores']) == 2


@st.composite
def calls(draw):
    """``(request, columns, budget)`` with one of them changed."""
    which = draw(st.sampled_from(['request', 'columns', 'budget']))
    request, columns, budget = GOOD_REQUEST, GOOD_COLUMNS, 10.0
    if which == 'request':
        request = draw(one_change(GOOD_REQUEST))
    elif which == 'columns':
        columns = draw(one_change(GOOD_COLUMNS))
    else:
        budget = draw(JSON_VALUES)
    return request, columns, budget


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(call=calls())
def test_any_call_is_answered_or_refused_with_a_typed_error(manager, call):
    request, columns, budget = call
    try:
        reply = _ask(manager, request, columns, budget)
    except exception.ShadowException as e:
        # Refused: one line, naming what was wrong.
        assert str(e) and '\n' not in str(e)
        return
    assert isinstance(reply, dict)
    assert len(reply['scores']) == len(columns['host'])
