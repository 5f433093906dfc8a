"""Turn an instance's user-data into the plan the in-sandbox init runs.

The subset of cloud-init that nova-shadow's shadows use:

- ``instance.user_data`` is the base64 text as posted to Nova; inside it
  plain or gzipped content (cloud-init accepts both);
- ``#cloud-config`` YAML (JSON is YAML) with ``write_files`` (``path``,
  ``content``, ``encoding`` in absent/``text``, ``b64``/``base64``,
  ``gzip``/``gz``, ``gzip+base64``/``gz+base64``/``gzip+b64``/``gz+b64``,
  ``permissions``, ``append``, ``defer``; ``owner`` is ignored) and
  ``runcmd`` (strings are shell lines, lists are argv, quoted; together one
  ``sh`` script, as cloud-init writes it); other modules are ignored and
  listed in the plan;
- ``#!`` scripts, run as they are.

As in cloud-init, a bad module fails alone: a malformed ``write_files``
writes nothing, while a valid ``runcmd`` still runs. The plan (files'
contents and the ``runcmd`` script together, each YAML alias counted as
the content it repeats) holds at most ``MAX_DECODED_BYTES``: a module
that would take it past that fails alone, where it does. Errors name the field
(``write_files[1].encoding``) and end up in the plan, the console and the
instance's log. :func:`build_plan` returns plain JSON-serialisable data;
file contents travel base64-encoded.
"""

import base64
import binascii
import gzip
import io
import shlex
import zlib

import yaml

MAX_DECODED_BYTES = 16 * 1024 * 1024
_ENCODINGS = {
    None: (), 'text': (), 'text/plain': (),
    'b64': ('base64',), 'base64': ('base64',),
    'gz': ('gzip',), 'gzip': ('gzip',),
    'gz+b64': ('base64', 'gzip'), 'gz+base64': ('base64', 'gzip'),
    'gzip+b64': ('base64', 'gzip'), 'gzip+base64': ('base64', 'gzip'),
}
_WRITE_FILE_KEYS = ('path', 'content', 'source', 'encoding', 'permissions',
                    'owner', 'append', 'defer')
SUPPORTED_MODULES = ('write_files', 'runcmd')


class _Budget:
    """What the plan may still hold, in bytes. YAML aliases repeat their
    anchor's content without repeating its text, so a few kB of
    cloud-config can name gigabytes: every piece is counted as it is
    made."""

    def __init__(self, limit=MAX_DECODED_BYTES):
        self.limit = limit
        self.left = limit

    def take(self, size, field):
        self.left -= size
        if self.left < 0:
            raise UserDataError(
                field, 'the user-data expands to more than %d bytes (files '
                'and commands together; YAML aliases count as what they '
                'repeat)' % self.limit)


class UserDataError(ValueError):
    """User-data the lab cannot run; ``field`` names what is wrong."""

    def __init__(self, field, message):
        self.field = field
        self.message = message
        super().__init__('%s: %s' % (field, message))


def _gunzip(data, field):
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
            out = f.read(MAX_DECODED_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise UserDataError(field, 'bad gzip data: %s' % exc)
    if len(out) > MAX_DECODED_BYTES:
        raise UserDataError(field, 'more than %d bytes once decompressed'
                            % MAX_DECODED_BYTES)
    return out


def _b64decode(text, field):
    if isinstance(text, str):
        text = text.encode('ascii', 'replace')
    try:
        return base64.b64decode(b''.join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UserDataError(field, 'not valid base64: %s' % exc)


def decode_user_data(user_data):
    """Bytes of the user-data as cloud-init would see them.

    ``user_data`` is the base64 text stored by Nova (or None). Gzipped
    content is decompressed.
    """
    if not user_data:
        return b''
    raw = _b64decode(user_data, 'user_data')
    if raw[:2] == b'\x1f\x8b':
        raw = _gunzip(raw, 'user_data')
    return raw


def _content(entry, field):
    encoding = entry.get('encoding')
    if isinstance(encoding, str):
        encoding = encoding.strip().lower()
    if encoding not in _ENCODINGS:
        raise UserDataError(field + '.encoding', 'unknown encoding %r; '
                            'known: %s' % (entry.get('encoding'), ', '.join(
                                sorted(e for e in _ENCODINGS if e))))
    content = entry.get('content', '')
    if content is None:
        content = ''
    if not isinstance(content, (str, bytes)):
        raise UserDataError(field + '.content', 'must be a string, got %s'
                            % type(content).__name__)
    data = content
    for step in _ENCODINGS[encoding]:
        if step == 'base64':
            data = _b64decode(data, field + '.content')
        else:
            if isinstance(data, str):
                data = data.encode('utf-8')
            data = _gunzip(data, field + '.content')
    if isinstance(data, str):
        data = data.encode('utf-8')
    return data


def _permissions(value, field):
    if value is None:
        return 0o644
    if isinstance(value, bool):
        raise UserDataError(field, 'must be an octal mode such as "0644"')
    if isinstance(value, int):
        mode = value
    elif isinstance(value, str):
        try:
            mode = int(value.strip(), 8)
        except ValueError:
            raise UserDataError(field, 'must be an octal mode such as '
                                '"0644", got %r' % value)
    else:
        raise UserDataError(field, 'must be an octal mode such as "0644"')
    if not 0 <= mode <= 0o7777:
        raise UserDataError(field, 'must be between 0000 and 7777, got %o'
                            % mode)
    return mode


def _write_files(spec, budget):
    if not isinstance(spec, list):
        raise UserDataError('write_files', 'must be a list of files')
    files = []
    for index, entry in enumerate(spec):
        field = 'write_files[%d]' % index
        if not isinstance(entry, dict):
            raise UserDataError(field, 'must be a mapping with a path')
        for key in entry:
            if key not in _WRITE_FILE_KEYS:
                raise UserDataError('%s.%s' % (field, key), 'unknown key; '
                                    'known: %s' % ', '.join(_WRITE_FILE_KEYS))
        if 'source' in entry:
            raise UserDataError(field + '.source', 'fetching files from a '
                                'URL is not supported by the lab')
        path = entry.get('path')
        if not isinstance(path, str) or not path.startswith('/'):
            raise UserDataError(field + '.path', 'must be an absolute path, '
                                'got %r' % (path,))
        if '\0' in path:
            raise UserDataError(field + '.path', 'must not contain NUL')
        for key in ('append', 'defer'):
            if not isinstance(entry.get(key, False), bool):
                raise UserDataError('%s.%s' % (field, key),
                                    'must be true or false')
        content = _content(entry, field)
        budget.take(len(path) + len(content), field)
        files.append({
            'path': path,
            'content_b64': base64.b64encode(content).decode('ascii'),
            'mode': _permissions(entry.get('permissions'),
                                 field + '.permissions'),
            'append': entry.get('append', False),
            'defer': entry.get('defer', False),
        })
    # cloud-init writes deferred files in a later stage, before runcmd.
    return ([f for f in files if not f['defer']] +
            [f for f in files if f['defer']])


def _runcmd(spec, budget):
    if not isinstance(spec, list):
        raise UserDataError('runcmd', 'must be a list of commands')
    lines = []
    for index, item in enumerate(spec):
        field = 'runcmd[%d]' % index
        if isinstance(item, str):
            budget.take(len(item) + 1, field)
            lines.append(item)
        elif isinstance(item, list) and item and all(
                isinstance(a, (str, int, float)) and not isinstance(a, bool)
                for a in item):
            argv = []
            for arg in item:
                argv.append(shlex.quote(str(arg)))
                budget.take(len(argv[-1]) + 1, field)
            lines.append(' '.join(argv))
        else:
            raise UserDataError(field, 'must be a string (a shell line) or '
                                'a non-empty list of strings (argv)')
    return '#!/bin/sh\n' + ''.join(line + '\n' for line in lines)


def _empty_plan(kind):
    return {'kind': kind, 'write_files': [], 'runcmd': None,
            'script_b64': None, 'ignored_modules': [], 'errors': []}


def _error(plan, exc):
    plan['errors'].append({'field': exc.field, 'message': exc.message})


def build_plan(user_data):
    """Return the plan for base64 ``user_data`` (str or None).

    ``kind`` is ``none``, ``cloud-config``, ``script`` or ``invalid``;
    ``errors`` lists ``{field, message}`` of what was not run.
    """
    try:
        raw = decode_user_data(user_data)
    except UserDataError as exc:
        plan = _empty_plan('invalid')
        _error(plan, exc)
        return plan
    if not raw.strip():
        return _empty_plan('none')
    if raw.startswith(b'#!'):
        plan = _empty_plan('script')
        plan['script_b64'] = base64.b64encode(raw).decode('ascii')
        return plan
    first_line = raw.split(b'\n', 1)[0].strip()
    if first_line != b'#cloud-config':
        plan = _empty_plan('invalid')
        _error(plan, UserDataError(
            'user_data', 'unsupported user-data starting with %r; the lab '
            'runs "#cloud-config" documents and "#!" scripts'
            % first_line[:40].decode('utf-8', 'replace')))
        return plan
    plan = _empty_plan('cloud-config')
    try:
        document = yaml.safe_load(raw.decode('utf-8'))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        _error(plan, UserDataError('user_data', 'not valid YAML/JSON: %s'
                                   % exc))
        return plan
    if document is None:
        return plan
    if not isinstance(document, dict):
        _error(plan, UserDataError('user_data', 'the cloud-config must be a '
                                   'mapping, got %s'
                                   % type(document).__name__))
        return plan
    plan['ignored_modules'] = sorted(str(k) for k in document
                                     if k not in SUPPORTED_MODULES)
    budget = _Budget()
    for module, build in (('write_files', _write_files),
                          ('runcmd', _runcmd)):
        if module not in document:
            continue
        left = budget.left
        try:
            plan[module] = build(document[module] or [], budget)
        except UserDataError as exc:
            # A module that fails is not run: what it took is free again.
            budget.left = left
            _error(plan, exc)
    return plan
