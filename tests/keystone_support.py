"""A Keystone that answers token requests over HTTP, as far as the
``openstack`` driver asks one (``POST /v3/auth/tokens``).

:class:`TokenKeystone` knows one user (password ``secret``) with roles
in some projects, and one application credential of that user, made in
:data:`APP_CREDENTIAL_PROJECT`.  It gives a token as Keystone does: to
the user's password, scoped to a project where the user holds a role;
to the application credential, scoped to the credential's own project,
and only when the request names no scope (Keystone answers 401
``Application credentials cannot request a scope.`` otherwise).  What
it refuses gets Keystone's 401.  ``requests`` lists ``(methods, scoped
project id or None)`` of every token request.
"""

import datetime
import http.server
import json
import threading
import uuid

USER_ID = 'u-nova-shadow'
USER_NAME = 'nova-shadow'
PASSWORD = 'secret'  # noqa: S105 (a test's own throw-away value)
APP_CREDENTIAL_ID = 'ac-nova-shadow'
APP_CREDENTIAL_SECRET = 'ac-secret'  # noqa: S105 (throw-away)
APP_CREDENTIAL_PROJECT = 'p-shadows'
DOMAIN = {'id': 'default', 'name': 'Default'}


class TokenKeystone:
    """A Keystone on ``127.0.0.1`` (:attr:`url`, ending in ``/v3``);
    :attr:`roles` maps a project id to the user's roles there."""

    def __init__(self):
        self.roles = {APP_CREDENTIAL_PROJECT: ['member', 'admin']}
        self.requests = []
        keystone = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get('Content-Length') or 0)
                body = json.loads(self.rfile.read(length) or b'{}')
                status, token = keystone.issue(body.get('auth') or {})
                data = json.dumps(token if status == 201 else {'error': {
                    'code': status, 'title': 'Unauthorized',
                    'message': token}}).encode('utf-8')
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                if status == 201:
                    self.send_header('X-Subject-Token', uuid.uuid4().hex)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      Handler)
        self.url = 'http://127.0.0.1:%d/v3' % self.server.server_port
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def issue(self, auth):
        """``(201, token body)`` or ``(401, Keystone's message)``."""
        identity = auth.get('identity') or {}
        methods = identity.get('methods') or []
        scoped = ((auth.get('scope') or {}).get('project') or {}).get('id')
        self.requests.append((tuple(methods), scoped))
        refused = 'The request you have made requires authentication.'
        if methods == ['application_credential']:
            credential = identity['application_credential']
            if (credential.get('id') != APP_CREDENTIAL_ID
                    or credential.get('secret') != APP_CREDENTIAL_SECRET):
                return 401, refused
            if auth.get('scope'):
                return 401, ('Application credentials cannot request a '
                             'scope.')
            project = APP_CREDENTIAL_PROJECT
        elif methods == ['password']:
            user = identity['password']['user']
            if (user.get('name') != USER_NAME
                    or user.get('password') != PASSWORD):
                return 401, refused
            if not scoped or not self.roles.get(scoped):
                return 401, refused
            project = scoped
        else:
            return 401, refused
        now = datetime.datetime.now(datetime.UTC)
        return 201, {'token': {
            'methods': methods,
            'issued_at': now.strftime('%Y-%m-%dT%H:%M:%S.000000Z'),
            'expires_at': (now + datetime.timedelta(hours=1)).strftime(
                '%Y-%m-%dT%H:%M:%S.000000Z'),
            'user': {'id': USER_ID, 'name': USER_NAME, 'domain': DOMAIN},
            'project': {'id': project, 'name': project, 'domain': DOMAIN},
            'roles': [{'id': r, 'name': r} for r in self.roles[project]],
            'catalog': []}}
