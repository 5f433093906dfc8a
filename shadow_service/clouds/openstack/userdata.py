"""The user-data a shadow boots with: loadgen, its profile and its token.

:func:`encoded_user_data` is the one place the driver renders user-data:
it calls :func:`loadgen.userdata.encoded_user_data`, which returns the
base64 text Nova takes (a gzipped ``#cloud-config``, checked against
Nova's limit of :data:`NOVA_USER_DATA_LIMIT` characters).

The guest writes the collector token to ``/opt/shadow-loadgen/
collector.token`` (mode 0600) and runs ``loadgen.pyz run profile.json
--sink <collector URL> --sink console: --sink-token-file <that file>``
(the console sink when asked); see ``doc/source/loadgen.rst``.
"""

import base64
import gzip

from loadgen import userdata as loadgen_userdata

#: Nova's API refuses longer ``user_data`` (base64 characters).
NOVA_USER_DATA_LIMIT = loadgen_userdata.NOVA_USER_DATA_LIMIT
TOKEN_PATH = '%s/%s' % (loadgen_userdata.INSTALL_DIR,
                        loadgen_userdata.AUTH_FILE_NAME)


class UserDataTooLarge(ValueError):
    """The rendered user-data is longer than Nova accepts."""


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
    ValueError
        for a bad collector URL or token, or no destination for samples.
    """
    try:
        return loadgen_userdata.encoded_user_data(
            profile, tags=tags, collector_url=collector_url, token=token,
            console=console, preinstalled=preinstalled)
    except loadgen_userdata.UserDataTooLarge as e:
        raise UserDataTooLarge(
            '%s ([openstack] loadgen_preinstalled with an image that holds '
            'loadgen avoids shipping it)' % e) from None


def decode(encoded):
    """The ``#cloud-config`` text of ``encoded`` (for tests and
    operators inspecting a shadow)."""
    data = base64.b64decode(encoded)
    if data[:2] == b'\x1f\x8b':
        data = gzip.decompress(data)
    return data.decode('utf-8')
