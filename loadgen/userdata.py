"""Render cloud-init user-data that runs loadgen inside a shadow VM.

Nova refuses user-data longer than ``NOVA_USER_DATA_LIMIT`` (65,535)
base64 characters, so the user-data is a **gzipped** ``#cloud-config``
(cloud-init unzips it) that carries the *guest* zipapp (docstrings and
comments stripped, stored entries, see ``loadgen.build``) gzipped once
more. With the largest built-in profile and a long tag set it encodes to
about 40,500 characters (``tests/unit/loadgen/test_userdata.py`` asserts
the size of every built-in).

The document uses only this cloud-config subset: ``write_files`` (with
``path``, ``content``, ``encoding`` ``b64`` or ``gzip+base64`` and
``permissions``) and ``runcmd`` (an argv list). It is JSON, which YAML
parsers accept, so no quoting surprises. It writes, under ``install_dir``
(``/opt/shadow-loadgen``):

``loadgen.pyz`` (0755)
    unless ``preinstalled=True``: then the image must already have it
    there (see ``doc/source/loadgen.rst``), and the user-data is only a
    few hundred bytes plus the profile.
``profile.json`` (0644)
    the profile (trace patterns carry their values inline).
``collector.token`` (0600)
    the collector's bearer token, when ``collector_url`` is given.

and starts ``python3 loadgen.pyz run profile.json`` in the background
with a ``--sink`` per destination (``sink_url``, the collector, and the
console when ``console=True``) and the tags, logging to ``log_path``
(``/var/log/shadow-loadgen.log``).

``render_user_data`` returns the gzipped bytes, ``encoded_user_data`` the
base64 text to post to Nova (checked against the limit),
``render_cloud_config`` the readable document.
"""

import base64
import gzip
import json
import shlex

from loadgen import profiles

INSTALL_DIR = '/opt/shadow-loadgen'
LOG_PATH = '/var/log/shadow-loadgen.log'
NOVA_USER_DATA_LIMIT = 65535
PYZ_NAME = 'loadgen.pyz'
PROFILE_NAME = 'profile.json'
AUTH_FILE_NAME = 'collector.token'


class UserDataTooLarge(ValueError):
    """The encoded user-data is longer than Nova accepts."""


def _gzip(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


def _b64(data):
    return base64.b64encode(data).decode('ascii')


def sink_urls(sink_url=None, collector_url=None, console=False):
    """The ``--sink`` values a guest run gets, in order."""
    urls = [url for url in (sink_url, collector_url) if url]
    if console:
        urls.append('console:')
    if not urls:
        raise ValueError('give sink_url, collector_url or console=True: '
                         'the samples must go somewhere')
    return urls


def run_command(sink_url=None, tags=None, install_dir=INSTALL_DIR,
                collector_url=None, console=False):
    """The shell command line that starts the run in the guest."""
    argv = ['python3', '%s/%s' % (install_dir, PYZ_NAME), 'run',
            '%s/%s' % (install_dir, PROFILE_NAME)]
    for url in sink_urls(sink_url, collector_url, console):
        argv += ['--sink', url]
    if collector_url:
        argv += ['--sink-token-file', '%s/%s' % (install_dir, AUTH_FILE_NAME)]
    for key, value in sorted((tags or {}).items()):
        argv += ['--tag', '%s=%s' % (key, value)]
    return ' '.join(shlex.quote(arg) for arg in argv)


def _file(path, data, permissions, encoding='gzip+base64'):
    content = _gzip(data) if encoding == 'gzip+base64' else data
    return {'path': path, 'encoding': encoding,
            'permissions': permissions, 'content': _b64(content)}


def cloud_config(profile, sink_url=None, tags=None, collector_url=None,
                 token=None, console=False, preinstalled=False,
                 pyz_bytes=None, install_dir=INSTALL_DIR,
                 log_path=LOG_PATH):
    """The ``#cloud-config`` mapping (see :func:`render_user_data`)."""
    from loadgen import collector
    profile = profiles.load_profile(profile)
    if collector_url:
        collector.check_url(collector_url)
        collector.check_token(token)
    elif token:
        raise ValueError('a token is only for the collector: give '
                         'collector_url too')
    tags = {str(key): str(value) for key, value in (tags or {}).items()}
    command = run_command(sink_url, tags, install_dir, collector_url,
                          console)
    files = []
    if not preinstalled:
        if pyz_bytes is None:
            from loadgen import build
            pyz_bytes = build.guest_pyz_bytes()
        files.append(_file('%s/%s' % (install_dir, PYZ_NAME), pyz_bytes,
                           '0755'))
    text = json.dumps(profile.to_dict(), sort_keys=True,
                      separators=(',', ':'))
    files.append(_file('%s/%s' % (install_dir, PROFILE_NAME),
                       text.encode('utf-8'), '0644'))
    if collector_url:
        files.append(_file('%s/%s' % (install_dir, AUTH_FILE_NAME),
                           token.encode('ascii'), '0600', 'b64'))
    return {'write_files': files,
            'runcmd': [['sh', '-c', 'nohup %s >> %s 2>&1 &'
                        % (command, shlex.quote(log_path))]]}


def render_cloud_config(profile, sink_url=None, tags=None, **options):
    """The readable ``#cloud-config`` document (str, not compressed)."""
    config = cloud_config(profile, sink_url, tags, **options)
    return '#cloud-config\n' + json.dumps(config, separators=(',', ':')) + \
        '\n'


def render_user_data(profile, sink_url=None, tags=None, **options):
    """Return gzipped cloud-init user-data (bytes) that runs ``profile``.

    Parameters
    ----------
    profile : str or dict or loadgen.profiles.Profile
    sink_url : str, optional
        a ``--sink`` for the samples (see ``loadgen.sinks.make_sink``).
    tags : dict
        ``evaluation``, ``shadow``, ``host``... added to every sample.
    collector_url : str, optional
        the service's collector, ``http(s)://HOST:PORT/v1/samples``.
    token : str, optional
        the collector's bearer token (required with ``collector_url``);
        written to a 0600 file, never put on the command line.
    console : bool
        also write every sample to the console (``console:`` sink), for
        reading back with Nova's console log when the guest has no route
        to the collector.
    preinstalled : bool
        the image already has the zipapp at ``install_dir``: do not ship
        it.
    pyz_bytes : bytes, optional
        the zipapp to ship (default: ``loadgen.build.guest_pyz_bytes()``).
    install_dir, log_path : str
        where the files go in the guest, and the run's log.

    Raises
    ------
    ProfileError
        for a bad profile; ValueError for a bad collector URL or token,
        or no destination for the samples.
    """
    text = render_cloud_config(profile, sink_url, tags, **options)
    return _gzip(text.encode('utf-8'))


def encoded_user_data(profile, sink_url=None, tags=None, **options):
    """The exact base64 text to post to Nova as ``user_data``.

    Raises
    ------
    UserDataTooLarge
        if it is longer than ``NOVA_USER_DATA_LIMIT``: use an image with
        loadgen preinstalled (``preinstalled=True``), or a smaller
        profile (long trace patterns are the usual cause).
    """
    encoded = _b64(render_user_data(profile, sink_url, tags, **options))
    if len(encoded) > NOVA_USER_DATA_LIMIT:
        raise UserDataTooLarge(
            'user_data is %d base64 characters; Nova accepts at most %d. '
            'Use an image with loadgen preinstalled (preinstalled=True) '
            'or a profile with a shorter trace' % (len(encoded),
                                                    NOVA_USER_DATA_LIMIT))
    return encoded
