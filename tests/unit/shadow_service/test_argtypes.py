"""The commands' numeric arguments are bounded exactly as the service
bounds what they become: at each edge the command and the service agree
(the bounds are read from the service's schema, not copied)."""

import argparse

import pytest

from nova_shadow_filter import request as request_lib
from shadow_service import argtypes
from shadow_service import exception
from shadow_service import schema


def _service_takes_flavor(**flavor):
    values = {'vcpus': 4, 'ram_mb': 8192, 'disk_gb': 40}
    values.update(flavor)
    try:
        schema.validate_request(request_lib.build_request(values, 'web'))
    except exception.InvalidRequest:
        return False
    return True


def _service_takes_budget(budget_s):
    try:
        schema.validate_budget(budget_s)
    except exception.InvalidRequest:
        return False
    return True


def _command_takes(parse, text):
    try:
        parse(text)
    except argparse.ArgumentTypeError:
        return False
    return True


@pytest.mark.parametrize('field, parse', [
    ('vcpus', argtypes.vcpus), ('ram_mb', argtypes.ram_mb),
    ('disk_gb', argtypes.disk_gb)])
def test_each_flavor_number_has_the_services_edges(field, parse):
    low, high = argtypes._flavor_bounds(field)
    for value in (low - 1, low, high, high + 1):
        assert _command_takes(parse, str(value)) == \
            _service_takes_flavor(**{field: value}), (field, value)
    assert _command_takes(parse, str(low))
    assert not _command_takes(parse, str(high + 1))


def test_every_vcpu_count_the_schema_takes_becomes_a_request_it_takes():
    # The profile scale is capped at loadgen's maximum (64): 129 vCPUs
    # and more are measured with a 128 vCPU VM's load, not refused.
    low, high = argtypes._flavor_bounds('vcpus')
    assert (low, high) == (1, 1024)
    for vcpus in (128, 129, 200, high):
        assert _service_takes_flavor(vcpus=vcpus), vcpus


@pytest.mark.parametrize('value', [
    -5.0, 0.0, 1e-09, 30.0, schema.BUDGET['maximum'],
    schema.BUDGET['maximum'] + 0.001, float('nan'), float('inf')])
def test_the_budget_has_the_services_edges(value):
    assert _command_takes(argtypes.budget, repr(value)) == \
        _service_takes_budget(value), value


@pytest.mark.parametrize('parse, text, says', [
    (argtypes.budget, 'soon', "must be a number of seconds above 0 and at "
     "most 86400, got 'soon'"),
    (argtypes.vcpus, '2.5', "must be a whole number from 1 to 1024, got "
     "'2.5'"),
    (argtypes.ram_mb, '', "must be a whole number from 1 to 16777216, got "
     "''"),
])
def test_a_value_that_is_not_a_number_says_what_is_wanted(parse, text,
                                                           says):
    with pytest.raises(argparse.ArgumentTypeError) as info:
        parse(text)
    assert str(info.value) == says
