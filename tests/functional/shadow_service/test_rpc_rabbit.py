"""The RPC contract over the real RabbitMQ at 127.0.0.1:5672."""

import pytest

from tests import rpc_contract

pytestmark = pytest.mark.rabbit


class TestRPCOverRabbitMQ(rpc_contract.RPCContract):

    @pytest.fixture(autouse=True)
    def _rabbit(self, rabbit_url):
        self.transport_url = rabbit_url
