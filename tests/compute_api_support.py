"""A small fake of Nova's compute API (and Placement's allocations) at
the HTTP edge, for the ``openstack`` driver's tests that need what the
harness's real Nova never does: answers the API does not give, or
something happening while a call is under way.

:class:`FakeNova` keeps servers and flavors in memory; ``answers``
replaces the answer to ``'<METHOD> <path>'``, ``before`` runs a function
(once) before it answers one, and ``calls`` lists every
``'<METHOD> <path>'`` it was asked.  With ``linger_deletes`` a deleted
server stays listed, as Nova lists one whose deletion is under way,
until :meth:`FakeNova.finish_deletes`.  :func:`make_driver` builds the real
driver on an openstacksdk connection to it.
"""

import http.server
import json
import re
import threading
import uuid

from keystoneauth1 import noauth
from keystoneauth1 import session as ks_session
from openstack import connection as sdk_connection

from shadow_service.clouds.openstack import driver as os_driver
from shadow_service.history import memory
from tests import service_support


class FakeNova:
    """Servers and flavors in memory; ``answers`` replaces the answer to
    ``'<METHOD> <path>'`` with ``(status, body[, content type])``;
    ``before`` maps one to a function called (once, with no argument)
    before it is answered; ``calls`` lists the calls in order.

    ``linger_deletes``: a deleted server stays listed (status unchanged,
    task state ``deleting``) and a second delete is accepted, until
    :meth:`finish_deletes`, as Nova does while a compute host deletes
    it."""

    def __init__(self):
        self.servers = {}
        self.linger_deletes = False
        self.flavors = {}
        self.answers = {}
        self.before = {}
        self.calls = []
        self._lock = threading.Lock()
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
        call = '%s %s' % (method, path)
        with self._lock:
            self.calls.append(call)
            hook = self.before.pop(call, None)
        if hook is not None:
            hook()
        created = None
        if method == 'POST' and path == '/v2.1/servers':
            body = json.loads(data)['server']
            created = str(uuid.uuid4())
            self.servers[created] = {
                'id': created, 'name': body['name'], 'status': 'BUILD',
                'OS-EXT-STS:task_state': None,
                'tags': body.get('tags', []),
                'metadata': body.get('metadata', {}), 'links': []}
        fixed = self.answers.get(call)
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
            if method == 'DELETE' and self.linger_deletes:
                found = self.servers.get(one.group(1))
                if found:
                    found['OS-EXT-STS:task_state'] = 'deleting'
                return (204, b'') if found else (404, {})
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

    def finish_deletes(self):
        """Complete the deletions under way: those servers are gone."""
        for server_id, server in list(self.servers.items()):
            if server.get('OS-EXT-STS:task_state') == 'deleting':
                del self.servers[server_id]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def make_driver(nova, history=None, shadow=None, **options):
    """The ``openstack`` driver on ``nova`` (``options``: of
    ``[openstack]``; ``shadow``: of ``[shadow]``) over ``history`` (an
    in-memory store when None); its configuration is its ``conf``."""
    opts = {'gc_interval': 0, 'api_timeout': 2, 'delete_timeout': 3.0,
            'pin_method': 'host', 'poll_interval': 0.1}
    opts.update(options)
    conf = service_support.make_conf(
        shadow=dict(shadow or {}, cloud_driver='openstack'), openstack=opts)
    session = ks_session.Session(auth=noauth.NoAuth(), timeout=2)
    conn = sdk_connection.Connection(
        session=session, compute_endpoint_override=nova.url,
        placement_endpoint_override=nova.url.replace('/v2.1', '/placement'),
        connect_retries=0, status_code_retries=0)
    return os_driver.OpenStackDriver(
        conf, memory.MemoryStore() if history is None else history,
        connection=conn)
