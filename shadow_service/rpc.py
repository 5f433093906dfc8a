"""Messaging transports shared by the RPC client and server.

Transports are cached per URL so that a client and a server in one process
share one ``fake://`` transport (the fake driver only connects parties that
use the same transport object).  Only oslo.messaging is imported here.
"""

import threading

import oslo_messaging as messaging

ALLOWED_EXMODS = ['shadow_service.exception']

_TRANSPORTS = {}
_LOCK = threading.Lock()


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
