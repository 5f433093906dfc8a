"""Resolving the workload profile a request names.

A request's ``profile`` is a built-in profile name, the name of a file in
one of the operator's ``[shadow] profile_dirs`` (``<name>.yaml``, ``.yml``
or ``.json``), or an inline profile (a dict in loadgen's format).  A
tenant never names a path: names are matched against
:data:`PROFILE_NAME`, and an inline profile may not name files on the
service's host, nor any directory or network peer, unless the operator
allows it in ``[shadow] inline_profile_allow`` (trace replay must carry its
values inline otherwise).  The twin never opens them, but a real shadow
runs them.

:func:`resolve_profile` is the only way the evaluation loop, the drivers
and the benchmarks turn a request into a ``loadgen.profiles.Profile``; it
raises :class:`shadow_service.exception.InvalidRequest` naming the field.
"""

import collections
import os
import re
import threading

from loadgen import profiles as lg_profiles
from shadow_service import exception
from shadow_service import logsafe

PROFILE_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z')
PROFILE_SUFFIXES = ('.yaml', '.yml', '.json')

Profile = lg_profiles.Profile
ProfileError = lg_profiles.ProfileError

#: Named profiles (at a scale) kept once read and validated; a file of the
#: operator's is read again when its size or modification time changes.
NAMED_KEPT = 256
_named = collections.OrderedDict()
_named_lock = threading.Lock()


def _named_resources(spec):
    """``[(field, kind, value)]``: every file (``path`` of a trace,
    ``disk.file``), directory (``disk.dir``) and network peer
    (``network.peer`` other than ``self``) an inline profile names."""
    found = []
    stack = [(spec, 'profile')]
    while stack:
        value, where = stack.pop()
        if isinstance(value, dict):
            for key, child in value.items():
                field = '%s.%s' % (where, key)
                if key == 'path':
                    found.append((field, 'file', child))
                stack.append((child, field))
        elif isinstance(value, list):
            stack.extend((child, '%s.%d' % (where, i))
                         for i, child in enumerate(value))
    components = spec.get('components')
    components = components if isinstance(components, dict) else {}
    disk = components.get('disk')
    if isinstance(disk, dict):
        for key, kind in (('file', 'file'), ('dir', 'directory')):
            if disk.get(key) is not None:
                found.append(('profile.components.disk.' + key, kind,
                              disk[key]))
    network = components.get('network')
    if isinstance(network, dict) and network.get('peer', 'self') != 'self':
        found.append(('profile.components.network.peer', 'peer',
                      network['peer']))
    return found


def _allowed(kind, value, allowed):
    if not isinstance(value, str):
        return False
    if kind == 'peer':
        return value in allowed
    if not value.startswith('/') or '..' in value.split('/'):
        return False
    path = os.path.normpath(value)
    for entry in allowed:
        if not entry.startswith('/'):
            continue
        directory = os.path.normpath(entry)
        if path == directory or path.startswith(directory.rstrip('/') + '/'):
            return True
    return False


def check_inline_resources(spec, allowed=()):
    """:class:`~shadow_service.exception.InvalidRequest` naming the field
    unless every file, directory and peer the inline profile ``spec``
    names is one ``allowed`` lists (absolute directories, which allow
    everything below them, and ``host:port`` peers)."""
    for field, kind, value in _named_resources(spec):
        if not _allowed(kind, value, allowed):
            raise exception.InvalidRequest(
                reason='%s: an inline profile may not name the %s %s; the '
                       'operator allows only what [shadow] '
                       'inline_profile_allow lists' % (
                           field, kind, logsafe.clip(value)))


def _named_source(name, profile_dirs):
    """Where a named profile comes from: ``(name,)`` for a built-in one,
    ``(path, size, mtime)`` for an operator's file; ProfileNotFound."""
    if name in lg_profiles.BUILTIN_PROFILES:
        return (name,)
    if PROFILE_NAME.match(name):
        for directory in profile_dirs:
            for suffix in PROFILE_SUFFIXES:
                path = os.path.join(directory, name + suffix)
                try:
                    stat = os.stat(path)
                except OSError:
                    continue
                if os.path.isfile(path):
                    return (path, stat.st_size, stat.st_mtime_ns)
    raise exception.ProfileNotFound(profile=logsafe.clip(name))


def named_profile(name, profile_dirs=()):
    """A built-in profile or ``<dir>/<name>.{yaml,yml,json}`` of an
    operator's profile directory; never any other path."""
    return lg_profiles.load_profile(_named_source(name, profile_dirs)[0])


def _kept_named_profile(name, profile_dirs, scale):
    """:func:`named_profile` at ``scale``, kept between requests (a
    profile is not changed once built)."""
    key = (_named_source(name, profile_dirs), scale)
    with _named_lock:
        profile = _named.get(key)
        if profile is not None:
            _named.move_to_end(key)
            return profile
    profile = lg_profiles.load_profile(key[0][0])
    if scale != 1.0:
        profile = profile.scaled(scale)
    with _named_lock:
        _named[key] = profile
        while len(_named) > NAMED_KEPT:
            _named.popitem(last=False)
    return profile


def resolve_profile(request, profile_dirs=(), allowed=()):
    """The loadgen ``Profile`` a request asks for, scaled by its
    ``profile_scale``; :class:`~shadow_service.exception.InvalidRequest`
    (or its subclass ``ProfileNotFound``) otherwise.  ``allowed``: what an
    inline profile may name (:func:`check_inline_resources`)."""
    spec = request['profile']
    if isinstance(spec, dict):
        check_inline_resources(spec, allowed)
    try:
        scale = request.get('profile_scale', 1.0)
        if isinstance(spec, str):
            return _kept_named_profile(spec.strip(), profile_dirs, scale)
        profile = lg_profiles.load_profile(spec)
        return profile.scaled(scale) if scale != 1.0 else profile
    except lg_profiles.ProfileError as e:
        raise exception.InvalidRequest(reason='profile: %s'
                                       % logsafe.clip(str(e), 300))


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
