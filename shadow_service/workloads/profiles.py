"""Resolving the workload profile a request names.

A request's ``profile`` is a built-in profile name, the name of a file in
one of the operator's ``[shadow] profile_dirs`` (``<name>.yaml``, ``.yml``
or ``.json``), or an inline profile (a dict in loadgen's format).  A
tenant never names a path: names are matched against
:data:`PROFILE_NAME`, and an inline profile may not name files on the
service's host (trace replay must carry its values inline).

:func:`resolve_profile` is the only way the evaluation loop, the drivers
and the benchmarks turn a request into a ``loadgen.profiles.Profile``; it
raises :class:`shadow_service.exception.InvalidRequest` naming the field.
"""

import os
import re

from loadgen import profiles as lg_profiles
from shadow_service import exception

PROFILE_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$')
PROFILE_SUFFIXES = ('.yaml', '.yml', '.json')

Profile = lg_profiles.Profile
ProfileError = lg_profiles.ProfileError


def _has_path(value):
    if isinstance(value, dict):
        return any(k == 'path' or _has_path(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_path(v) for v in value)
    return False


def named_profile(name, profile_dirs=()):
    """A built-in profile or ``<dir>/<name>.{yaml,yml,json}`` of an
    operator's profile directory; never any other path."""
    if name in lg_profiles.BUILTIN_PROFILES:
        return lg_profiles.load_profile(name)
    if PROFILE_NAME.match(name):
        for directory in profile_dirs:
            for suffix in PROFILE_SUFFIXES:
                path = os.path.join(directory, name + suffix)
                if os.path.isfile(path):
                    return lg_profiles.load_profile(path)
    raise exception.ProfileNotFound(profile=name)


def resolve_profile(request, profile_dirs=()):
    """The loadgen ``Profile`` a request asks for, scaled by its
    ``profile_scale``; :class:`~shadow_service.exception.InvalidRequest`
    (or its subclass ``ProfileNotFound``) otherwise."""
    spec = request['profile']
    if isinstance(spec, dict) and _has_path(spec):
        raise exception.InvalidRequest(
            reason='profile: an inline profile may not name files ("path")')
    try:
        if isinstance(spec, str):
            profile = named_profile(spec.strip(), profile_dirs)
        else:
            profile = lg_profiles.load_profile(spec)
    except lg_profiles.ProfileError as e:
        raise exception.InvalidRequest(reason='profile: %s' % e)
    scale = request.get('profile_scale', 1.0)
    return profile.scaled(scale) if scale != 1.0 else profile


def builtin_names():
    """Names of the built-in profiles."""
    return list(lg_profiles.BUILTIN_PROFILES)


def operator_names(profile_dirs=()):
    """Names of the profiles in the operator's ``profile_dirs`` (files
    ``<name>.yaml``, ``.yml`` or ``.json`` whose name a request may use),
    in the order :func:`named_profile` finds them; a built-in name wins
    over a file of the same name, as in :func:`named_profile`."""
    found = []
    for directory in profile_dirs:
        try:
            entries = sorted(os.listdir(directory))
        except OSError:
            continue
        for entry in entries:
            name, suffix = os.path.splitext(entry)
            if (suffix in PROFILE_SUFFIXES and PROFILE_NAME.match(name)
                    and name not in lg_profiles.BUILTIN_PROFILES
                    and name not in found
                    and os.path.isfile(os.path.join(directory, entry))):
                found.append(name)
    return found
