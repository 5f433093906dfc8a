"""Resolving the profile a request names: built-ins, operator files,
inline profiles, and never any other path."""

import pytest

from shadow_service import exception
from shadow_service.workloads import profiles

REQUEST = {'flavor': {'name': 'm1.large', 'vcpus': 4, 'ram_mb': 8192,
                      'disk_gb': 40},
           'profile': 'db-oltp'}


def test_builtin_profiles_resolve_and_scale():
    profile = profiles.resolve_profile(dict(REQUEST, profile_scale=2.0))
    assert profile.name == 'db-oltp'
    base = profiles.resolve_profile(REQUEST)
    assert profile.to_dict() != base.to_dict()
    assert 'db-oltp' in profiles.builtin_names()


def test_operator_profiles_are_found_by_name_in_profile_dirs(tmp_path):
    (tmp_path / 'etl.json').write_text(
        '{"name": "etl", "components": {"cpu": {"workers": 1,'
        ' "duty_cycle": 0.5}}}')
    profile = profiles.resolve_profile(
        dict(REQUEST, profile='etl'), profile_dirs=[str(tmp_path)])
    assert profile.name == 'etl'
    with pytest.raises(exception.ProfileNotFound):
        profiles.resolve_profile(dict(REQUEST, profile='etl'))


@pytest.mark.parametrize('name', ['/etc/passwd', '../etl', 'a/b', '.hidden'])
def test_profile_names_never_reach_other_files(tmp_path, name):
    (tmp_path / 'etl.json').write_text('{"name": "etl"}')
    with pytest.raises(exception.ProfileNotFound):
        profiles.resolve_profile(dict(REQUEST, profile=name),
                                 profile_dirs=[str(tmp_path)])


def test_inline_profiles_may_not_name_files():
    inline = {'name': 'x', 'pattern': {'type': 'trace',
                                       'path': '/etc/shadow'},
              'components': {'cpu': {'workers': 1, 'duty_cycle': 0.5}}}
    with pytest.raises(exception.InvalidRequest, match='path'):
        profiles.resolve_profile(dict(REQUEST, profile=inline))
