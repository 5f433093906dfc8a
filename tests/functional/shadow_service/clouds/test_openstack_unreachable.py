"""A cloud that refuses connections, never answers, or answers every
call with 503: the openstack driver degrades to "nothing measured" within
its timeouts, raises only retryable CloudErrors, and an evaluation still
answers within its budget."""

import http.server
import socket
import threading
import time

import pytest
from keystoneauth1 import noauth
from keystoneauth1 import session as ks_session
from openstack import connection as sdk_connection

from loadgen import profiles
from shadow_service import service
from shadow_service.clouds import base
from shadow_service.clouds.openstack import driver as os_driver
from shadow_service.history import memory
from tests import service_support

REQUEST = {'flavor': {'vcpus': 1, 'ram_mb': 1024, 'disk_gb': 1},
           'profile': 'web',
           'image_id': '155d900f-4e14-4e4c-a73d-069cbf4541e6'}


def _closed_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


class _Silent:
    """Accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self):
        self.sock.close()
        for held in self.held:
            held.close()


class _Unavailable(http.server.BaseHTTPRequestHandler):
    """Answers everything with 503, as an overloaded API does."""

    def _answer(self):
        body = b'{"message": "Service Unavailable", "code": 503}'
        self.send_response(503)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

    def log_message(self, format, *args):
        pass


@pytest.fixture(params=['refused', 'silent', 'unavailable'])
def endpoint(request):
    if request.param == 'refused':
        yield 'http://127.0.0.1:%d/v2.1' % _closed_port()
        return
    if request.param == 'unavailable':
        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                 _Unavailable)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield 'http://127.0.0.1:%d/v2.1' % server.server_address[1]
        server.shutdown()
        server.server_close()
        return
    silent = _Silent()
    yield 'http://127.0.0.1:%d/v2.1' % silent.port
    silent.close()


def _driver(endpoint, store):
    conf = service_support.make_conf(
        shadow={'cloud_driver': 'openstack'},
        openstack={'gc_interval': 0, 'api_timeout': 0.5,
                   'delete_timeout': 1.0, 'cleanup_reserve': 0.5})
    session = ks_session.Session(auth=noauth.NoAuth(), timeout=0.5)
    conn = sdk_connection.Connection(
        session=session, compute_endpoint_override=endpoint,
        placement_endpoint_override=endpoint.replace('/v2.1', '/placement'),
        connect_retries=0, status_code_retries=0)
    return conf, os_driver.OpenStackDriver(conf, store, connection=conn)


def test_an_unreachable_cloud_raises_only_retryable_cloud_errors(endpoint):
    _conf, driver = _driver(endpoint, memory.MemoryStore())
    for call in (driver.list_shadows, driver.list_hosts,
                 lambda: driver.get_instance('abc'),
                 lambda: driver.delete_shadows([base.Shadow(
                     shadow_id='abc', host='h1', evaluation_id='e1',
                     created_at=0.0)])):
        started = time.monotonic()
        with pytest.raises(base.CloudError) as caught:
            call()
        assert caught.value.retryable
        assert time.monotonic() - started < 5.0


def test_booting_on_an_unreachable_cloud_measures_nothing(endpoint):
    _conf, driver = _driver(endpoint, memory.MemoryStore())
    started = time.monotonic()
    assert driver.boot_shadows('6b7a3c52-0b8f-4d0e-9a55-2f0d3f7d9a11',
                               REQUEST, ['h1', 'h2'],
                               profiles.load_profile('web')) == []
    assert time.monotonic() - started < 5.0
    # Host facts fall back to what the scheduler sent.
    assert driver.host_facts(['h1'], hosts_info=[
        {'host': 'h1', 'num_instances': 4}]) == {
        'h1': {'num_instances': 4, 'running_vms': 4}}


def test_an_evaluation_on_an_unreachable_cloud_answers_in_time(endpoint):
    store = memory.MemoryStore()
    conf, driver = _driver(endpoint, store)
    parts = service.build(conf, history=store, driver=driver)
    try:
        started = time.monotonic()
        ranking = parts.manager.evaluate(dict(REQUEST),
                                         [{'host': 'h1'}, {'host': 'h2'}],
                                         6.0)
        assert time.monotonic() - started < 6.0
    finally:
        parts.close()
    assert ranking['status'] == 'finished'
    assert ranking['hosts'] == []
