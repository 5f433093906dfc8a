"""The user-data a shadow boots with: loadgen, its profile and its token.

:func:`encoded_user_data` is the one place the driver renders user-data:
it calls :func:`loadgen.userdata.render_user_data` and returns the base64
text Nova takes, gzipped (cloud-init unzips it) and checked against
Nova's limit of :data:`NOVA_USER_DATA_LIMIT` characters.

The guest writes the collector token to ``/opt/shadow-loadgen/
collector.token`` (mode 0600) and runs ``loadgen.pyz run profile.json
--sink <collector URL> --sink-token-file <that file>`` (plus the console
sink when asked); a ``loadgen`` whose ``render_user_data`` takes the
``collector_url``/``token`` keywords writes that itself, an older one gets
the token file and the argument added here.
"""

import base64
import gzip
import inspect
import json
import shlex

from loadgen import userdata as loadgen_userdata

#: Nova's API refuses longer ``user_data`` (base64 characters).
NOVA_USER_DATA_LIMIT = 65535
INSTALL_DIR = '/opt/shadow-loadgen'
TOKEN_PATH = INSTALL_DIR + '/collector.token'


class UserDataTooLarge(ValueError):
    """The rendered user-data is longer than Nova accepts."""


def _gzip(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


def _supports(function, *names):
    parameters = inspect.signature(function).parameters
    return all(name in parameters for name in names) or any(
        p.kind is p.VAR_KEYWORD for p in parameters.values())


def _add_token(document, collector_url, token):
    """Put the token file and ``--sink-token-file`` into a plain
    ``#cloud-config`` document an older loadgen rendered."""
    header, _, body = document.partition('\n')
    config = json.loads(body)
    config.setdefault('write_files', []).append({
        'path': TOKEN_PATH, 'encoding': 'b64', 'permissions': '0600',
        'content': base64.b64encode(token.encode('ascii')).decode('ascii')})
    sink = '--sink %s' % shlex.quote(collector_url)
    config['runcmd'] = [
        [word.replace(sink, '%s --sink-token-file %s'
                      % (sink, shlex.quote(TOKEN_PATH)))
         if isinstance(word, str) else word for word in command]
        for command in config.get('runcmd', [])]
    return header + '\n' + json.dumps(config, separators=(',', ':')) + '\n'


def encoded_user_data(profile, tags, collector_url=None, token=None,
                      console=True, preinstalled=False):
    """Base64 user-data that runs ``profile`` in a shadow.

    Parameters
    ----------
    profile : loadgen.profiles.Profile
    tags : dict
        Tags of every sample (the collector replaces ``evaluation``,
        ``shadow``, ``host`` and ``profile`` with the token's anyway).
    collector_url : str, optional
        ``http(s)://HOST:PORT/v1/samples``; with ``token``.
    token : str, optional
        The shadow's collector token.
    console : bool
        Also write the samples to the console (read back through Nova's
        console log).
    preinstalled : bool
        The image already holds loadgen.

    Raises
    ------
    UserDataTooLarge
    """
    render = loadgen_userdata.render_user_data
    if _supports(render, 'collector_url', 'token', 'console',
                 'preinstalled'):
        rendered = render(profile, tags=tags, collector_url=collector_url,
                          token=token, console=console,
                          preinstalled=preinstalled)
    else:
        rendered = render(profile, collector_url or '-', tags)
        if collector_url and token:
            rendered = _add_token(rendered, collector_url, token)
    if isinstance(rendered, str):
        rendered = _gzip(rendered.encode('utf-8'))
    encoded = base64.b64encode(rendered).decode('ascii')
    if len(encoded) > NOVA_USER_DATA_LIMIT:
        raise UserDataTooLarge(
            'the shadow user-data is %d base64 characters; Nova accepts '
            'at most %d: use an image with loadgen preinstalled '
            '([openstack] loadgen_preinstalled) or a profile with a '
            'shorter trace' % (len(encoded), NOVA_USER_DATA_LIMIT))
    return encoded


def decode(encoded):
    """The ``#cloud-config`` text of ``encoded`` (for tests and
    operators inspecting a shadow)."""
    data = base64.b64decode(encoded)
    if data[:2] == b'\x1f\x8b':
        data = gzip.decompress(data)
    return data.decode('utf-8')
