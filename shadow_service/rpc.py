"""Messaging transports shared by the RPC client and server.

Transports are cached per URL so that a client and a server in one process
share one ``fake://`` transport (the fake driver only connects parties that
use the same transport object).  Only oslo.messaging is imported here.
"""

import importlib
import threading

import oslo_messaging as messaging

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
