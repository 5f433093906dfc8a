"""Serve the lab's WSGI apps on localhost ports for other processes.

- :class:`Server`: ``wsgiref`` with one thread per request, bound to a free
  port on 127.0.0.1 (or a given port), quiet, stoppable.
- :class:`IdentityMiddleware`: the in-process compute API runs without
  Keystone and reads the caller from ``X-Auth-User``,
  ``X-Auth-Project-Id`` and ``X-Roles`` (Placement from
  ``X-Auth-Token``). The middleware adds the lab's admin identity when a
  request carries none, so an openstacksdk client with ``auth_type: none``
  works; a request that sends its own headers keeps them.
- :func:`lab_app`: read-only JSON about the lab (``GET /hosts``,
  ``GET /hosts/<name>``, ``GET /servers/<uuid>``): each host's share,
  tenants, notes and cgroup figures, and an instance's figures.
"""

import json
import logging
import socketserver
import threading
import wsgiref.simple_server

LOG = logging.getLogger(__name__)


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    """One request per connection (HTTP/1.0), logged at debug level."""

    def log_message(self, format, *args):
        LOG.debug('%s %s', self.address_string(), format % args)


class _ThreadingServer(socketserver.ThreadingMixIn,
                       wsgiref.simple_server.WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class Server:
    """A WSGI app served on ``host:port`` (port 0: a free one)."""

    def __init__(self, app, host='127.0.0.1', port=0, name='lab'):
        self.name = name
        self._server = wsgiref.simple_server.make_server(
            host, port, app, server_class=_ThreadingServer,
            handler_class=_QuietHandler)
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={'poll_interval': 0.1},
            name='nova-shadow-lab-http-%s' % name, daemon=True)

    @property
    def url(self):
        return 'http://%s:%d' % (self.host, self.port)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class IdentityMiddleware:
    """Add the lab's admin identity to requests that carry none."""

    def __init__(self, app, project_id, user='admin',
                 roles='reader,member,admin'):
        self.app = app
        self.defaults = {'HTTP_X_AUTH_USER': user,
                         'HTTP_X_USER_ID': user,
                         'HTTP_X_AUTH_PROJECT_ID': project_id,
                         'HTTP_X_PROJECT_ID': project_id,
                         'HTTP_X_ROLES': roles,
                         'HTTP_X_AUTH_TOKEN': user}

    def __call__(self, environ, start_response):
        if 'HTTP_X_AUTH_USER' not in environ and \
                'HTTP_X_AUTH_TOKEN' not in environ:
            environ.update(self.defaults)
        else:
            for key, value in self.defaults.items():
                environ.setdefault(key, value)
        return self.app(environ, start_response)


def _json(start_response, status, body):
    data = json.dumps(body, indent=1, sort_keys=True).encode('utf-8')
    start_response(status, [('Content-Type', 'application/json'),
                            ('Content-Length', str(len(data)))])
    return [data]


def lab_app(hosts):
    """WSGI app over ``hosts()`` (a callable returning {name: LabHost})."""

    def app(environ, start_response):
        if environ['REQUEST_METHOD'] != 'GET':
            return _json(start_response, '405 Method Not Allowed',
                         {'error': 'read-only'})
        parts = [p for p in environ.get('PATH_INFO', '').split('/') if p]
        current = hosts()
        if parts == ['hosts'] or not parts:
            return _json(start_response, '200 OK', {
                'hosts': {name: host.status()
                          for name, host in sorted(current.items())}})
        if len(parts) == 2 and parts[0] == 'hosts':
            host = current.get(parts[1])
            if host is None:
                return _json(start_response, '404 Not Found',
                             {'error': 'no lab host %s' % parts[1]})
            return _json(start_response, '200 OK', host.status())
        if len(parts) == 2 and parts[0] == 'servers':
            for host in current.values():
                if host.get(parts[1]) is None:
                    continue
                # None: deleted since the lookup.
                figures = host.instance_figures(parts[1])
                if figures is not None:
                    figures['lab_host'] = host.name
                    return _json(start_response, '200 OK', figures)
                break
            return _json(start_response, '404 Not Found',
                         {'error': 'no lab instance %s' % parts[1]})
        return _json(start_response, '404 Not Found',
                     {'error': 'try /hosts, /hosts/<name>, '
                               '/servers/<uuid>'})
    return app
