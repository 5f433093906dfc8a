"""Fuzzing the profile parser: anything in, Profile or ProfileError out.

What the fuzzer found (an unhashable pattern ``type`` raised TypeError)
is kept below as an explicit regression test, with other edge cases.
"""

import json

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from loadgen import profiles
from loadgen.profiles import ProfileError

_scalars = (st.none() | st.booleans() | st.integers() |
            st.floats(allow_nan=True, allow_infinity=True) |
            st.text(max_size=8))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) |
                       st.dictionaries(st.text(max_size=8), inner,
                                       max_size=3), max_leaves=10)
_keys = st.sampled_from(['name', 'duration_s', 'warmup_s', 'interval_s',
                         'sensitivity', 'pattern', 'components', 'scale',
                         'type', 'level', 'every_s', 'length_s', 'factor',
                         'cpu', 'memory', 'disk', 'network', 'workers',
                         'duty_cycle', 'values', 'peer', 'mode', 'iodepth',
                         'target_iops', 'block_size_kb', 'access'])
_pattern_types = st.sampled_from(['constant', 'ramp', 'diurnal', 'spikes',
                                  'trace', 'bogus'])
_profile_like = st.recursive(
    _scalars | _pattern_types,
    lambda inner: st.dictionaries(_keys, inner, max_size=5) |
    st.lists(inner, max_size=3), max_leaves=20)


def _accepts_or_rejects_cleanly(spec):
    try:
        profile = profiles.load_profile(spec)
    except ProfileError as exc:
        assert exc.field and str(exc)
        return
    data = profile.to_dict()
    json.dumps(data, allow_nan=False)
    assert profiles.load_profile(data).to_dict() == data
    for name in profile.components:
        assert profile.intensity(name, 1.5) >= 0


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(_profile_like)
def test_any_structure_gives_a_profile_or_a_profile_error(spec):
    _accepts_or_rejects_cleanly(spec)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=6))
def test_any_mapping_gives_a_profile_or_a_profile_error(spec):
    _accepts_or_rejects_cleanly(spec)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_inline_text_gives_a_profile_or_a_profile_error(text):
    _accepts_or_rejects_cleanly('{' + text)


# Pinned edge cases (add the fuzzer's finds here).
@pytest.mark.parametrize('spec', [
    # Found by the fuzzer: an unhashable pattern type raised TypeError.
    {'pattern': {'type': {}}},
    {'components': {'cpu': {'pattern': {'type': []}}}},
    {'components': {'cpu': {0: 1}}},                       # non-str key
    {'components': {'network': {'peer': ':0'}}},           # empty host
    {'pattern': {'type': 'trace', 'values': [True]}},     # bool as number
    {'pattern': {'type': 'spikes', 'every_s': 1e-300,
                 'length_s': 1e-300, 'factor': 1}},        # tiny period
    {'components': {'cpu': {'workers': float('inf')}}},    # inf to int
    {'pattern': {'type': 'trace', 'values': [0.0]}},      # all-zero trace
    {'name': None},
    {'sensitivity': {'cpu': 1e300, 'io': 1e300}},          # sum overflows
    '{"duration_s": 1e400}',
    [],
])
def test_fuzzer_regressions(spec):
    _accepts_or_rejects_cleanly(spec)
