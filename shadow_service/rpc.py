"""Messaging transports shared by the RPC client and server, and the
server's dispatcher.

Transports are cached per URL so that a client and a server in one process
share one ``fake://`` transport (the fake driver only connects parties that
use the same transport object).  Of the project, only its exceptions and
:mod:`shadow_service.logsafe` are imported here.
"""

import importlib
import importlib.util
import logging
import re
import threading

import oslo_messaging as messaging
from oslo_messaging.rpc import dispatcher as rpc_dispatcher
from oslo_messaging.rpc import server as rpc_server

from shadow_service import exception
from shadow_service import logsafe

LOG = logging.getLogger(__name__)

ALLOWED_EXMODS = ['shadow_service.exception']

_TRANSPORTS = {}
_LOCK = threading.Lock()


# Option groups oslo.messaging registers on the global cfg.CONF only (as of
# 18.x): (module, attribute holding the options, group).
_GLOBAL_ONLY_OPTS = (
    ('oslo_messaging._metrics.client', 'oslo_messaging_metrics',
     'oslo_messaging_metrics'),
    ('oslo_messaging._tracing.client', 'oslo_messaging_tracing',
     'oslo_messaging_tracing'),
)


def register_opts(conf):
    """Make a private ``ConfigOpts`` usable for RPC.

    oslo.messaging registers its metrics and tracing option groups on the
    global ``cfg.CONF`` only, and every RPC call reads them: a command-line
    client with its own ``ConfigOpts`` fails with ``NoSuchOptError:
    oslo_messaging_tracing`` unless they are registered on it too (the same
    thing ``oslo_messaging.conffixture.ConfFixture`` does for tests).
    """
    for module_name, attribute, group in _GLOBAL_ONLY_OPTS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        opts = getattr(module, attribute, None)
        if opts:
            conf.register_opts(opts, group=group)


#: What a transport URL the RPC calls can use looks like.
TRANSPORT_URL_FORM = 'rabbit://user:pass@host:port/vhost'


class BadTransportURL(ValueError):
    """A transport URL the RPC calls cannot use; the message names the
    option, shows the URL (its passwords masked), says what is wrong
    and what a valid one looks like."""


def _drivers(notifications=False):
    """The oslo.messaging drivers installed that carry RPC calls (with
    ``notifications``: notifications)."""
    from importlib import metadata

    names = {entry.name for entry in metadata.entry_points(
        group='oslo.messaging.drivers')}
    return sorted(names if notifications else names - {'kafka'})


def _transport_url_problem(raw, parsed, notifications=False):
    """Why the URL ``raw`` (parsed: ``parsed``) cannot carry RPC calls
    (with ``notifications``: notifications), or None."""
    if parsed.transport == 'kafka':
        if not notifications:
            return ('the kafka driver carries notifications only, not RPC '
                    'calls')
        if importlib.util.find_spec('confluent_kafka') is None:
            return ('the kafka driver needs the Python module '
                    'confluent_kafka, which is not installed')
    drivers = _drivers(notifications)
    if parsed.transport not in drivers:
        if '://' not in raw:
            # "localhost:5672": the host taken for the driver.
            return 'it has no driver name before "://"'
        return 'there is no message driver named %s (installed: %s)' % (
            logsafe.clip(parsed.transport), ', '.join(drivers))
    for host in parsed.hosts:
        if host.port is not None and not 1 <= host.port <= 65535:
            return 'port %d is not from 1 to 65535' % host.port
    return None


def transport_url_option(conf, group=None):
    """How an error names ``conf``'s ``transport_url`` (of ``group``,
    None: ``[DEFAULT]``): with the configuration file that set it, when
    one did."""
    name = 'transport_url' if group is None else (
        '[%s] transport_url' % group)
    try:
        where = conf.get_location('transport_url', group).detail
    except AttributeError:  # NoSuchOptError: not registered yet
        where = None
    if where and where.startswith('/'):
        return '%s (in %s)' % (name, where)
    return name


def check_transport_url(conf, url=None, option=None, notifications=False):
    """Check the transport URL ``url`` (None: ``conf.transport_url``)
    without connecting: :class:`BadTransportURL` naming ``option`` when
    it cannot carry RPC calls (no scheme, an unknown driver, one that
    carries only notifications, a port that is not a port); ``option``
    None names ``transport_url`` and its file.  With ``notifications``
    the URL is to carry notifications: ``kafka://`` is one, when the
    kafka driver's client library is installed.  An empty URL
    (oslo.messaging's default broker) passes."""
    reason = None
    try:
        # Registers transport_url on conf when url is None.
        parsed = messaging.TransportURL.parse(conf, url)
    except messaging.InvalidTransportURL as e:
        reason = ('it has no driver name before "://"'
                  if 'No scheme' in str(e) else str(e))
    except ValueError:
        # netutils.parse_host_port: int() of a port.
        reason = 'a port is not a number'
    raw = url if url else conf.transport_url
    if not raw:
        return
    if reason is None:
        reason = _transport_url_problem(raw, parsed, notifications)
    if reason is not None:
        option = option or transport_url_option(conf)
        raise BadTransportURL(
            '%s %s cannot be used: %s; a valid one looks like %s'
            % (option, logsafe.clip(logsafe.mask_url_text(raw), 200),
               reason, TRANSPORT_URL_FORM))


def get_transport(conf, url=None):
    """The RPC transport for ``url`` (``None``: ``conf.transport_url``)."""
    key = (id(conf), url)
    with _LOCK:
        transport = _TRANSPORTS.get(key)
        if transport is None:
            transport = messaging.get_rpc_transport(
                conf, url=url, allowed_remote_exmods=ALLOWED_EXMODS)
            _TRANSPORTS[key] = transport
        return transport


def cleanup():
    """Close every cached transport (tests and daemon shutdown)."""
    with _LOCK:
        for transport in _TRANSPORTS.values():
            transport.cleanup()
        _TRANSPORTS.clear()


#: An RPC version as oslo.messaging compares them (major.minor[.rev]).
_VERSION = re.compile(r'\A\d{1,6}\.\d{1,6}(\.\d{1,6})?\Z')


class CheckedDispatcher(rpc_dispatcher.RPCDispatcher):
    """oslo.messaging's dispatcher, refusing a call it cannot serve as an
    expected error: one escaped INFO line, no traceback.

    oslo.messaging logs a call of a method no endpoint has
    (``NoSuchMethod``) or of an RPC version none serves
    (``UnsupportedVersion``: a caller newer than the service) as an
    exception, with a traceback that holds the caller's method name
    unescaped, and a version that is not one (``"abc"``), a method name
    that is not a string or arguments that are not a mapping as the
    ``ValueError``, ``TypeError`` or ``AttributeError`` they raise in
    it.  The caller gets the same typed refusal as before
    (``UnsupportedVersion`` and ``NoSuchMethod`` for the first two, which
    an older service answers too and the weigher reads as "older
    service"; ``InvalidRequest`` for a message that is not a call)."""

    def dispatch(self, incoming):
        message = incoming.message
        method = message.get('method')
        version = message.get('version', '1.0')
        try:
            if not isinstance(method, str):
                raise exception.InvalidRequest(
                    reason='the RPC method name %s is not a string'
                    % logsafe.clip(method))
            if not isinstance(version, str) or not _VERSION.match(version):
                raise exception.InvalidRequest(
                    reason='the RPC version %s of %s is not a version'
                    % (logsafe.clip(version), logsafe.clip(method)))
            if not isinstance(message.get('args', {}), dict):
                raise exception.InvalidRequest(
                    reason='the arguments of %s are not a mapping'
                    % logsafe.clip(method))
            return super().dispatch(incoming)
        except (messaging.NoSuchMethod, messaging.UnsupportedVersion,
                exception.InvalidRequest) as e:
            LOG.info('Refused an RPC call of %s (version %s): %s: %s',
                     logsafe.clip(method), logsafe.clip(version),
                     type(e).__name__, logsafe.clip(str(e), 300))
            # Taken as expected: logged at debug with the original error,
            # which goes back to the caller unchanged.
            raise messaging.ExpectedException()


def get_rpc_server(transport, target, endpoints):
    """``oslo_messaging.get_rpc_server`` with :class:`CheckedDispatcher`
    (the default executor, serializer and access policy)."""
    return rpc_server.RPCServer(transport, target,
                                CheckedDispatcher(endpoints, None))
