"""A compute API that answers what the API does not: the openstack
driver raises retryable CloudErrors, never Python's own errors, and a
create that did not say it succeeded leaves no server and no taken slot
behind.  The API is a small fake of Nova's (the harness's real Nova never
answers like this)."""

import http.server
import json
import re
import threading
import uuid

import pytest
from keystoneauth1 import noauth
from keystoneauth1 import session as ks_session
from openstack import connection as sdk_connection

from loadgen import profiles
from shadow_service.clouds import base
from shadow_service.clouds.openstack import driver as os_driver
from shadow_service.history import memory
from tests import service_support

REQUEST = {'flavor': {'vcpus': 1, 'ram_mb': 1024, 'disk_gb': 1},
           'profile': 'web',
           'image_id': '155d900f-4e14-4e4c-a73d-069cbf4541e6'}
EVALUATION = '6b7a3c52-0b8f-4d0e-9a55-2f0d3f7d9a11'


class _Nova:
    """Servers and flavors in memory; ``answers`` replaces the answer to
    ``'<METHOD> <path>'`` with ``(status, body[, content type])``."""

    def __init__(self):
        self.servers = {}
        self.flavors = {}
        self.answers = {}
        nova = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def send(self, status, body, content_type='application/json'):
                if not isinstance(body, bytes):
                    body = json.dumps(body).encode()
                self.send_response(status)
                self.send_header('Content-Type', content_type)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def any(self):
                length = int(self.headers.get('Content-Length') or 0)
                data = self.rfile.read(length) if length else b''
                path = self.path.partition('?')[0].rstrip('/')
                self.send(*nova.answer(self.command, path, data,
                                       self.headers['Host']))

            do_GET = do_POST = do_PUT = do_DELETE = any

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()
        self.url = 'http://127.0.0.1:%d/v2.1' % self.server.server_address[1]

    def answer(self, method, path, data, host):
        created = None
        if method == 'POST' and path == '/v2.1/servers':
            body = json.loads(data)['server']
            created = str(uuid.uuid4())
            self.servers[created] = {
                'id': created, 'name': body['name'], 'status': 'BUILD',
                'tags': body.get('tags', []),
                'metadata': body.get('metadata', {}), 'links': []}
        fixed = self.answers.get('%s %s' % (method, path))
        if fixed is not None:
            return fixed
        if created is not None:
            return 202, {'server': {'id': created, 'links': []}}
        if path in ('/v2.1', ''):
            return 200, {'version': {
                'id': 'v2.1', 'status': 'CURRENT', 'version': '2.96',
                'min_version': '2.1', 'links': [
                    {'rel': 'self', 'href': 'http://%s/v2.1/' % host}]}}
        if path == '/v2.1/flavors' and method == 'POST':
            flavor = json.loads(data)['flavor']
            flavor.update(id=str(uuid.uuid4()),
                          **{'os-flavor-access:is_public': False})
            self.flavors[flavor['id']] = flavor
            return 200, {'flavor': flavor}
        if path in ('/v2.1/flavors', '/v2.1/flavors/detail'):
            return 200, {'flavors': list(self.flavors.values())}
        if path.startswith('/v2.1/flavors/'):
            if path.endswith(('/action', 'os-extra_specs')):
                return 200, {'flavor_access': [], 'extra_specs': {}}
            found = self.flavors.get(path.split('/')[3])
            return (200, {'flavor': found}) if found else (404, {})
        if path == '/v2.1/servers/detail':
            return 200, {'servers': list(self.servers.values())}
        one = re.match(r'/v2.1/servers/([^/]+)$', path)
        if one:
            if method == 'DELETE':
                gone = self.servers.pop(one.group(1), None)
                return (204, b'') if gone else (404, {})
            found = self.servers.get(one.group(1))
            return (200, {'server': found}) if found else (404, {})
        if path == '/placement':
            return 200, {'versions': [{
                'id': 'v1.0', 'max_version': '1.39', 'min_version': '1.0',
                'status': 'CURRENT', 'links': [{'rel': 'self',
                                                'href': ''}]}]}
        if path.startswith('/placement/allocations/'):
            return 200, {'allocations': {}}
        return 404, {'itemNotFound': {'code': 404, 'message': path}}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def nova():
    fake = _Nova()
    yield fake
    fake.close()


def _driver(nova, **options):
    opts = {'gc_interval': 0, 'api_timeout': 2, 'delete_timeout': 3.0,
            'pin_method': 'host', 'poll_interval': 0.1}
    opts.update(options)
    conf = service_support.make_conf(shadow={'cloud_driver': 'openstack'},
                                     openstack=opts)
    session = ks_session.Session(auth=noauth.NoAuth(), timeout=2)
    conn = sdk_connection.Connection(
        session=session, compute_endpoint_override=nova.url,
        placement_endpoint_override=nova.url.replace('/v2.1', '/placement'),
        connect_retries=0, status_code_retries=0)
    return os_driver.OpenStackDriver(conf, memory.MemoryStore(),
                                     connection=conn)


@pytest.mark.parametrize('answer', [
    (200, {'servers': 'nope'}),
    (200, {'servers': [1, 2]}),
    (200, {'other': []}),
    (200, b'<html>fine</html>', 'text/html'),
])
def test_a_server_list_the_api_never_gives_is_a_retryable_cloud_error(
        nova, answer):
    driver = _driver(nova)
    nova.answers['GET /v2.1/servers/detail'] = answer
    for call in (driver.list_shadows, driver.collect_garbage):
        with pytest.raises(base.CloudError) as info:
            call()
        assert info.value.retryable
        assert 'Listing shadows failed' in str(info.value)


@pytest.mark.parametrize('answer', [
    (202, {'server': {}}),
    (500, b'<html>oops</html>', 'text/html'),
])
def test_a_create_that_did_not_succeed_leaves_no_server_and_no_slot(
        nova, answer):
    # The fake makes the server, then answers without its id or with an
    # error, as a cloud failing half-way does.
    driver = _driver(nova, max_shadows_per_host=1)
    profile = profiles.load_profile('web')
    nova.answers['POST /v2.1/servers'] = answer
    assert driver.boot_shadows(EVALUATION, REQUEST, ['h1', 'h2'],
                               profile) == []
    assert nova.servers == {}
    del nova.answers['POST /v2.1/servers']
    # The hosts' slots were given back: the next evaluation measures both.
    shadows = driver.boot_shadows(str(uuid.uuid4()), REQUEST, ['h1', 'h2'],
                                  profile)
    assert sorted(s.host for s in shadows) == ['h1', 'h2']
    driver.delete_shadows(shadows)
    assert nova.servers == {}
