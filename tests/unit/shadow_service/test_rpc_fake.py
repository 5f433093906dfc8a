"""The RPC contract over oslo.messaging's in-process ``fake://``."""

from tests import rpc_contract


class TestRPCOverFakeTransport(rpc_contract.RPCContract):
    transport_url = 'fake:/'
