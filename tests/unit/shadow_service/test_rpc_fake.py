"""The RPC contract over oslo.messaging's in-process ``fake://``."""

from tests import rpc_contract


class TestRPCOverFakeTransport(rpc_contract.RPCContract):
    transport_url = 'fake:/'


def test_client_and_service_meet_whatever_their_control_exchange():
    """nova-scheduler's processes default to the "nova" control exchange,
    a stand-alone shadow-service to "openstack"; both must still meet."""
    import uuid

    import pytest

    from shadow_service import exception
    from shadow_service import rpcapi
    from tests import service_support

    service = service_support.RunningService('fake:/')
    service.conf.set_override('control_exchange', 'openstack')
    service.start()
    try:
        scheduler_conf = service_support.make_conf()
        scheduler_conf.set_override('control_exchange', 'nova')
        api = rpcapi.ShadowAPI(scheduler_conf, topic=service.topic,
                               transport_url='fake:/')
        with pytest.raises(exception.EvaluationNotFound):
            api.get_evaluation({}, str(uuid.uuid4()), timeout=5)
    finally:
        service.stop()
