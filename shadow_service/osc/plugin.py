"""The ``openstack shadow ...`` plugin of python-openstackclient.

The ``openstack`` command imports this module at every start to read its
options, so it imports nothing but the standard library and osc-lib;
the client (oslo.config, oslo.messaging) is built the first time a
``shadow`` command runs (:func:`make_client`).

The commands talk to ``shadow-service`` over the message bus, as the
weigher does, not to an HTTP API: they need no Keystone token and no
catalog entry, but they need the broker's ``transport_url``, read from
the service's configuration file (``--os-shadow-config-file``, default
``/etc/nova-shadow/shadow-service.conf`` when it exists) or given as
``--os-shadow-transport-url``.
"""

import logging
import os
import sys

from osc_lib import utils

from shadow_service import rpcwait

LOG = logging.getLogger(__name__)

DEFAULT_API_VERSION = '1'
API_VERSION_OPTION = 'os_shadow_api_version'
API_NAME = 'shadow'
API_VERSIONS = ('1',)

#: The service's configuration file, read when it exists and no other
#: file is named.
DEFAULT_CONFIG_FILE = '/etc/nova-shadow/shadow-service.conf'


def _option(instance, name):
    """A ``--os-shadow-*`` option as openstack.config handed it over."""
    config = getattr(instance, '_cli_options', None)
    config = getattr(config, 'config', None) or {}
    return config.get(name)


def make_client(instance):
    """The shadow client of the ``openstack`` command's ClientManager."""
    from osc_lib import exceptions

    version = str(instance._api_version[API_NAME])
    if version not in API_VERSIONS:
        raise exceptions.UnsupportedVersion(
            'shadow API version %s is not supported; use one of %s'
            % (version, ', '.join(sorted(API_VERSIONS))))
    from shadow_service.osc import client as client_mod

    client_class = client_mod.ShadowClient
    config_file = _option(instance, 'shadow_config_file')
    if config_file is None and os.path.exists(DEFAULT_CONFIG_FILE):
        config_file = DEFAULT_CONFIG_FILE
    LOG.debug('shadow client: config file %s', config_file)
    try:
        return client_class(
            config_files=[config_file] if config_file else [],
            transport_url=_option(instance, 'shadow_transport_url'),
            topic=_option(instance, 'shadow_topic'),
            # Named "wait": openstack.config takes every option whose
            # name ends in "timeout" for its own HTTP timeout.
            timeout=float(_option(instance, 'shadow_rpc_wait')
                          or rpcwait.DEFAULT_S))
    except client_mod.BadArgument as e:
        # A usage error, as argparse's own (exit 2).  Checked here, when
        # a shadow command first needs the broker, not by the parser:
        # the parser checks the environment's default too, for every
        # openstack command, and the check imports oslo.messaging.
        sys.stderr.write('openstack: error: argument %s\n' % e)
        sys.stderr.flush()
        raise SystemExit(2) from None


def build_option_parser(parser):
    """The ``--os-shadow-*`` options (each also from an environment
    variable)."""
    parser.add_argument(
        '--os-shadow-api-version', metavar='<shadow-api-version>',
        default=utils.env('OS_SHADOW_API_VERSION'),
        help='shadow-service API version, default=%s '
             '(Env: OS_SHADOW_API_VERSION)' % DEFAULT_API_VERSION)
    parser.add_argument(
        '--os-shadow-config-file', metavar='<path>',
        default=utils.env('OS_SHADOW_CONFIG_FILE'),
        help='nova-shadow configuration file holding the broker\'s '
             'transport_url and [shadow] topic; default: %s if it exists '
             '(Env: OS_SHADOW_CONFIG_FILE)' % DEFAULT_CONFIG_FILE)
    parser.add_argument(
        '--os-shadow-transport-url', metavar='<url>',
        default=utils.env('OS_SHADOW_TRANSPORT_URL'),
        help='message broker URL of shadow-service, for example '
             'rabbit://user:password@host:5672/; overrides the '
             'configuration file\'s (Env: OS_SHADOW_TRANSPORT_URL)')
    parser.add_argument(
        '--os-shadow-topic', metavar='<topic>',
        default=utils.env('OS_SHADOW_TOPIC'),
        help='RPC topic of shadow-service; overrides the configuration '
             'file\'s [shadow] topic (Env: OS_SHADOW_TOPIC)')
    parser.add_argument(
        '--os-shadow-rpc-wait', metavar='<seconds>', type=rpcwait.seconds,
        default=utils.env('OS_SHADOW_RPC_WAIT'),
        help='seconds to wait for each answer of shadow-service, '
             'default=%g (Env: OS_SHADOW_RPC_WAIT)' % rpcwait.DEFAULT_S)
    return parser
