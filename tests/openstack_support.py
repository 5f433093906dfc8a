"""The ``openstack`` driver against Nova's own functional harness.

:class:`OpenStackHarnessTestBase` starts real Nova (API, conductor,
scheduler, Placement, three computes with the fake virt driver) from the
installed ``nova`` package and gives the test an openstacksdk connection
to its in-process API: a keystoneauth no-auth session carrying the
identity headers the harness reads, and endpoint overrides for compute
and Placement.  Keystone is the one part left out:
:class:`HarnessKeystone` says which projects the harness's user holds a
role in, and a connection re-scoped to another project
(``connect_as_project``) carries that project's id and the roles held
there (Nova's request context an admin's only with ``admin``), or is
refused a token as Keystone refuses it; the connections reach Nova's
API through a stand-in of its auth_token middleware, which answers 401
to the tokens of a project :meth:`HarnessKeystone.nova_refuses`.  The
fake virt driver runs nothing, so :class:`FakeGuest` plays the guests:
it reads each shadow's user-data through the API (the collector URL and
the token the driver put there) and posts samples to the collector as
loadgen's collector sink does.
Nova's Cinder fixture keeps the volumes Nova sees;
:class:`FakeCinderAPI` shows them at the HTTP edge to openstacksdk's
block storage proxy, and volumes Nova deletes
(``delete_on_termination``) leave it, recorded in ``deleted_volumes``.
"""

import base64
import collections
import gzip
import importlib
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
import warnings
from unittest import mock

import fixtures
import pytest
import yaml

pytest.importorskip('nova.tests.functional.integrated_helpers')

from keystoneauth1 import exceptions as ks_exc  # noqa: E402
from keystoneauth1 import noauth  # noqa: E402
from keystoneauth1 import session as ks_session  # noqa: E402
from nova.compute import rpcapi as compute_rpcapi  # noqa: E402
from nova.tests import fixtures as nova_fixtures  # noqa: E402
from nova.tests.functional import integrated_helpers  # noqa: E402
from nova.tests.functional.api import client  # noqa: E402
from openstack import connection as sdk_connection  # noqa: E402
from sqlalchemy import exc as sqla_exc  # noqa: E402
from wsgi_intercept import interceptor  # noqa: E402

from shadow_service.clouds.openstack import driver as os_driver  # noqa
from tests import service_support  # noqa: E402

HOSTS = ('host1', 'host2', 'host3')
IMAGE_ID = nova_fixtures.GlanceFixture.image1['id']
NETWORK_ID = nova_fixtures.NeutronFixture.network_1['id']
#: cpu_ops_per_s each host's fake guest reports (host2 is best).
HOST_SPEED = {'host1': 1000.0, 'host2': 3000.0, 'host3': 1500.0}


def decode_user_data(encoded):
    data = base64.b64decode(encoded)
    if data[:2] == b'\x1f\x8b':
        data = gzip.decompress(data)
    text = data.decode('utf-8')
    assert text.startswith('#cloud-config\n'), text[:40]
    return json.loads(text.partition('\n')[2])


def collector_access(config):
    """``(collector URL, token)`` a guest finds in its cloud-config."""
    token = None
    for item in config.get('write_files', []):
        if item['path'].endswith('/collector.token'):
            token = base64.b64decode(item['content']).decode('ascii')
            if item.get('encoding', '').startswith('gzip'):
                token = gzip.decompress(base64.b64decode(
                    item['content'])).decode('ascii')
    command = ' '.join(' '.join(c) if isinstance(c, list) else c
                       for c in config.get('runcmd', []))
    url = None
    words = command.split()
    for i, word in enumerate(words[:-1]):
        if word == '--sink' and words[i + 1].startswith('http'):
            url = words[i + 1]
    return url, token


def post(url, token, lines, timeout=5.0):
    """POST ``lines`` (dicts or str) as NDJSON; returns (status, body)."""
    body = ''.join((json.dumps(line) if isinstance(line, dict) else line)
                   + '\n' for line in lines).encode('utf-8')
    request = urllib.request.Request(url, data=body, method='POST', headers={
        'Content-Type': 'application/x-ndjson',
        'Authorization': 'Bearer %s' % token})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, json.loads(reply.read() or b'{}')
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b'{}')


def measured_hosts(ranking):
    """Hosts of ``ranking`` that were measured (the others are listed
    with a neutral score and a "not measured" reason)."""
    return [h['host'] for h in ranking['hosts']
            if h.get('predicted') or not any(
                r.startswith(('not measured', 'may not take the VM'))
                for r in h['reasons'])]


def sample(metric, value, when=None, **tags):
    base_tags = {'evaluation': 'guest-says', 'shadow': 'guest-says',
                 'host': 'guest-says', 'profile': 'batch-cpu',
                 'metric': metric}
    base_tags.update(tags)
    return {'measurement': 'shadow_sample',
            'time': time.time() if when is None else when,
            'tags': base_tags, 'fields': {'value': value}}


class FakeGuest(threading.Thread):
    """Posts samples for every ACTIVE shadow, as its loadgen would."""

    def __init__(self, admin_api, speeds=HOST_SPEED, interval=0.3):
        super().__init__(name='fake-guests', daemon=True)
        self.api = admin_api
        self.speeds = speeds
        self.interval = interval
        self.stopped = threading.Event()
        self.access = {}
        self.answers = []
        #: server id -> what the API said of each shadow it saw
        self.seen = {}

    def _shadows(self):
        servers = self.api.get_servers(
            detail=True, search_opts={'tags': os_driver.SHADOW_TAG})
        return [s for s in servers if s['status'] == 'ACTIVE']

    def run(self):
        while not self.stopped.wait(self.interval):
            try:
                shadows = self._shadows()
            except Exception as e:  # the API is busy: try again
                self.answers.append(repr(e))
                continue
            for server in shadows:
                self.seen.setdefault(server['id'], {
                    'host': server['OS-EXT-SRV-ATTR:host'],
                    'tags': sorted(server['tags']),
                    'metadata': dict(server['metadata'])})
                if server['id'] not in self.access:
                    self.access[server['id']] = collector_access(
                        decode_user_data(
                            server['OS-EXT-SRV-ATTR:user_data']))
                url, token = self.access[server['id']]
                host = server['OS-EXT-SRV-ATTR:host']
                status, _ = post(url, token, [
                    sample('cpu_ops_per_s', self.speeds[host]),
                    sample('cpu_steal_pct', 1.0)])
                self.answers.append(status)

    def stop(self):
        """Stop posting; fail loudly if the thread does not end.

        A thread still calling the API when the test tears Nova's services
        down can deadlock the harness's locks: the test fails here, with the
        thread's stack, instead.
        """
        self.stopped.set()
        self.join(30)
        if self.is_alive():
            frame = sys._current_frames().get(self.ident)
            stack = ''.join(traceback.format_stack(frame)) if frame else ''
            raise AssertionError(
                'the fake guest thread did not stop within 30 s:\n' + stack)


class _ReaderPreferringLock(nova_fixtures.ReaderWriterLock):
    """Nova's cell lock of the harness, without writer preference.

    With a cloud used from several threads at once (server lists while the
    conductor builds), the harness's own locks deadlock: a thread holding
    the cell read lock waits for the database write lock, whose holder asks
    for a read lock, which waits behind a pending writer (a server list
    switching cells), which waits for the first reader.  Readers that do
    not wait for pending writers break that cycle; the writers still get
    the lock alone.
    """

    #: Seconds a writer waits for the readers before it takes the lock
    #: anyway (see ``_acquire_write_lock``).
    WRITER_PATIENCE_S = 30.0

    @property
    def has_pending_writers(self):
        return False

    def _acquire_write_lock(self, me):
        """fasteners' writer, which waits until no thread reads, except
        that after ``WRITER_PATIENCE_S`` it takes the lock anyway and
        prints where the readers wait.

        A reader holds its read lock across its cell's database work (the
        fixture yields inside it); a reader waiting there for this writer
        (through a database lock or a call it made) can never leave, and
        the whole run would hang until pytest-timeout ends it.  The
        writers only swap which cell untargeted database access reaches,
        so taking the lock past such readers ends the cycle.
        """
        if self.is_reader():
            raise RuntimeError('Reader %s to writer privilege escalation '
                               'not allowed' % me)
        give_up = time.monotonic() + self.WRITER_PATIENCE_S
        with self._cond:
            self._pending_writers.append(me)
            while True:
                if self._writer is None and self._pending_writers[0] == me:
                    if not self._readers or time.monotonic() >= give_up:
                        if self._readers:
                            sys.stderr.write(_reader_stacks(self._readers))
                        self._writer = self._pending_writers.popleft()
                        self._writer_entries = 1
                        return
                self._cond.wait(1.0)


def _reader_stacks(readers):
    """Where the threads holding ``readers`` are, for the log of a writer
    that stopped waiting for them."""
    frames = sys._current_frames()
    out = ['The cell lock\'s writer waited %.0f s for %d reader(s); taking '
           'the lock past them.  The readers:\n'
           % (_ReaderPreferringLock.WRITER_PATIENCE_S, len(readers))]
    for reader in readers:
        ident = getattr(reader, 'ident', None)
        frame = frames.get(ident)
        out.append('--- %r\n%s' % (reader, ''.join(
            traceback.format_stack(frame)) if frame else '(no frame)\n'))
    return ''.join(out)


def _context_by_roles(env, **kwargs):
    """Nova's request context of the harness's identity headers, an
    admin's only with the ``admin`` role."""
    from nova import context as nova_context

    roles = env['HTTP_X_ROLES'].split(',')
    return nova_context.RequestContext(
        env['HTTP_X_AUTH_USER'], env['HTTP_X_AUTH_PROJECT_ID'],
        is_admin='admin' in roles, roles=roles, **kwargs)


class _Identity:
    """Adds the harness's admin identity headers to every request."""

    def __init__(self, app, project_id):
        self.app = app
        self.headers = {
            'HTTP_X_AUTH_USER': 'admin', 'HTTP_X_USER_ID': 'admin',
            'HTTP_X_AUTH_PROJECT_ID': project_id,
            'HTTP_X_PROJECT_ID': project_id,
            'HTTP_X_ROLES': 'reader,member,admin',
            'HTTP_X_AUTH_TOKEN': 'admin'}

    def __call__(self, environ, start_response):
        environ.update(self.headers)
        return self.app(environ, start_response)


def _placement_app(fixture):
    from placement import deploy

    def load():
        return deploy.loadapp(fixture.conf_fixture.conf)
    return load


class FakeCinderAPI:
    """Cinder's block storage API, as far as the openstack driver reads
    it (version discovery, ``GET /v3/volumes/<id>``), answering from the
    volumes of Nova's Cinder fixture ``cinder``; ``answers`` replaces the
    answer to ``'<METHOD> <path>'`` with ``(status, body)``; ``calls``
    lists every ``'<METHOD> <path>'`` it was asked."""

    VERSION = {'id': 'v3.0', 'status': 'CURRENT', 'version': '3.71',
               'min_version': '3.0'}

    def __init__(self, cinder):
        self.cinder = cinder
        self.answers = {}
        self.calls = []

    def __call__(self, environ, start_response):
        method = environ['REQUEST_METHOD']
        path = environ['PATH_INFO'].rstrip('/')
        call = '%s %s' % (method, path)
        self.calls.append(call)
        status, body = self.answers.get(call) or self.answer(
            method, path, 'http://%s/v3/' % environ['HTTP_HOST'])
        data = json.dumps(body, default=str).encode('utf-8')
        start_response('%d %s' % (status, 'OK' if status < 400 else 'Error'),
                       [('Content-Type', 'application/json'),
                        ('Content-Length', str(len(data)))])
        return [data]

    def answer(self, method, path, url):
        from nova import exception as nova_exc

        version = dict(self.VERSION, links=[{'rel': 'self', 'href': url}])
        if method == 'GET' and path == '':
            return 300, {'versions': [version]}
        if method == 'GET' and path == '/v3':
            return 200, {'version': version}
        one = re.match(r'/v3/volumes/([^/]+)$', path)
        if method == 'GET' and one:
            try:
                volume = dict(self.cinder.fake_get(None, one.group(1)))
            except nova_exc.VolumeNotFound:
                return 404, {'itemNotFound': {'code': 404,
                                              'message': path}}
            volume.setdefault('name', volume.get('display_name'))
            return 200, {'volume': volume}
        return 404, {'itemNotFound': {'code': 404, 'message': path}}


class HarnessKeystone:
    """What Keystone knows of the harness's one user (``admin``): the
    roles it holds in each project.  At first only in the harness's
    project (``admin``); :meth:`grant` is ``openstack role add``.
    :attr:`token_requests` counts, per project, the tokens asked of it
    (a password login each where the user holds no role: keystoneauth
    has no token to answer with there)."""

    USER_ID = 'admin'

    def __init__(self, project_id):
        self.roles = {project_id: ['reader', 'member', 'admin']}
        self.token_requests = collections.Counter()
        #: Projects whose tokens Nova refuses (:meth:`nova_refuses`).
        self.refused_by_nova = set()
        #: Per project, the requests Nova answered with 401.
        self.nova_refusals = collections.Counter()

    def grant(self, project_id, role='member'):
        self.roles.setdefault(project_id, [])
        if role not in self.roles[project_id]:
            self.roles[project_id].append(role)

    def nova_refuses(self, project_id, refuses=True):
        """Nova's auth_token middleware answers 401 to the tokens of
        ``project_id`` that Keystone still gives: Nova validates them
        against a Keystone that does not know them (its Fernet keys out
        of step with the one that issued them), or Keystone revoked the
        tokens given before a role was removed and granted again.
        ``refuses=False`` ends it."""
        if refuses:
            self.refused_by_nova.add(project_id)
        else:
            self.refused_by_nova.discard(project_id)

    def revoke(self, project_id):
        """``openstack role remove`` of every role in ``project_id``:
        Keystone revokes the tokens of that project it gave, so a
        connection scoped there is refused from its next call."""
        self.roles.pop(project_id, None)


class _NovaAuthToken:
    """Nova's auth_token middleware as far as the harness has one: a 401
    (keystonemiddleware's answer) to a token of a project whose tokens
    :class:`HarnessKeystone` ``keystone`` says Nova refuses.  The version
    documents (``/``, ``/v2.1``) need no token, as in Nova's pipeline."""

    BODY = json.dumps({'error': {
        'code': 401, 'title': 'Unauthorized',
        'message': 'The request you have made requires authentication.'}}
    ).encode('utf-8')

    def __init__(self, app, keystone):
        self.app = app
        self.keystone = keystone

    def __call__(self, environ, start_response):
        project = environ.get('HTTP_X_PROJECT_ID')
        versions = environ['PATH_INFO'].strip('/').count('/') == 0
        if project in self.keystone.refused_by_nova and not versions:
            self.keystone.nova_refusals[project] += 1
            start_response('401 Unauthorized', [
                ('Content-Type', 'application/json'),
                ('Content-Length', str(len(self.BODY))),
                ('WWW-Authenticate', 'Keystone uri="http://keystone/"')])
            return [self.BODY]
        return self.app(environ, start_response)


class _HarnessAuth(noauth.NoAuth):
    """No Keystone: the harness reads the identity from headers; the
    project id is the one those headers name.  ``refused``: Keystone
    refuses a token of that project (the user holds no role there), as
    keystoneauth reports it, at the first call that needs one, and at
    every call once :class:`HarnessKeystone` ``keystone`` says it holds
    none there any more (a role removed)."""

    def __init__(self, project_id, refused=False, keystone=None):
        super().__init__()
        self.project_id = project_id
        self.refused = refused
        self.keystone = keystone

    def _check(self):
        if self.keystone is not None and \
                not self.keystone.roles.get(self.project_id):
            self.refused = True
        if self.refused:
            # Keystone's answer: the cause stays in its own log.
            raise ks_exc.Unauthorized(
                message='The request you have made requires '
                        'authentication.', http_status=401)

    def get_token(self, session):
        if self.keystone is not None:
            self.keystone.token_requests[self.project_id] += 1
        self._check()
        return super().get_token(session)

    def get_project_id(self, session, **kwargs):
        self._check()
        return self.project_id

    def get_user_id(self, session, **kwargs):
        self._check()
        return HarnessKeystone.USER_ID


class _HarnessConnection(sdk_connection.Connection):
    """A harness connection that re-scopes as Keystone would: a
    connection of the same user in another project carries that
    project's id and the roles the user holds there, and none is given
    where the user holds none (:class:`HarnessKeystone`)."""

    harness = None
    #: Whether :meth:`close` released it.
    closed = False

    def close(self):
        self.closed = True
        super().close()

    def connect_as_project(self, project):
        project_id = project.get('id') if isinstance(project, dict) \
            else project
        return self.harness.connection(project_id)


class OpenStackHarnessTestBase(integrated_helpers._IntegratedTestBase):
    """Real Nova with three computes; ``self.conn`` reaches its API."""

    microversion = 'latest'
    ADMIN_API = True
    # Server create returns at once and builds run in the background, as
    # in a real cloud (with casts as calls, a NoValidHost would come back
    # from the create call itself).
    CAST_AS_CALL = False
    WEIGHERS = None
    #: nova.conf ``compute_driver`` of the computes.
    VIRT_DRIVER = 'fake.MediumFakeDriver'

    def setUp(self):
        if self.WEIGHERS:
            self.flags(weight_classes=self.WEIGHERS,
                       group='filter_scheduler')
            self.flags(ram_weight_multiplier=1.0, group='filter_scheduler')
        # The module object itself: the dotted name
        # ``nova.tests.fixtures.nova`` resolves, attribute by attribute, to
        # the ``nova`` package (the fixtures package binds that name), so
        # a MonkeyPatch by name never reached the cell databases' lock.
        self.useFixture(fixtures.MockPatchObject(
            importlib.import_module('nova.tests.fixtures.nova'),
            'ReaderWriterLock', _ReaderPreferringLock))
        self.flags(compute_driver=self.VIRT_DRIVER)
        # Servers buried in cell0 (NoValidHost, quota re-check) fail Nova
        # 34's own response schema of the server list; Nova's test base
        # answers 500 for that, production Nova (the default, warn) logs
        # it.  Shadows in ERROR are what these tests are about.
        self.flags(response_validation='warn', group='api')
        self.flags(api_paste_config=os.path.join(
            sys.prefix, 'etc', 'nova', 'api-paste.ini'), group='wsgi')
        super().setUp()
        # Nova's fixture makes every request of the user ``admin`` an
        # admin's, whatever its roles; Nova gives ``is_admin`` to the
        # ``admin`` role (policy ``context_is_admin``), so the driver's
        # user scoped to a tenant's project with ``member`` is a member
        # there, as in a cloud.
        self.useFixture(fixtures.MonkeyPatch(
            'nova.api.auth.NovaKeystoneContext._create_context',
            _context_by_roles))
        # Nova 34's NoValidHost path (burying the instance in cell0) uses
        # an option SQLAlchemy 2.1 deprecates; Nova's test base turns that
        # warning into an error, production Nova only logs it.
        warnings.filterwarnings('ignore', message='The noload',
                                category=sqla_exc.SADeprecationWarning)
        for host in HOSTS[1:]:
            self._start_compute(host)
        self.cinder_api = FakeCinderAPI(self.cinder)
        root = 'http://nova-shadow-cinder-%s:80/' % uuid.uuid4().hex[:8]
        self.cinder_url = root + 'v3'
        intercept = interceptor.RequestsInterceptor(
            lambda: self.cinder_api, url=root)
        intercept.install_intercept()
        self.addCleanup(intercept.uninstall_intercept)
        self.deleted_volumes = []
        self.useFixture(fixtures.MockPatch(
            'nova.volume.cinder.API.delete', side_effect=self._delete_volume,
            autospec=False))
        self.keystone = HarnessKeystone(self.api_fixture.project_id)
        # The connections reach Nova's API through its auth_token
        # middleware's stand-in (the tests' own clients do not).
        root = 'http://nova-shadow-compute-%s:80/' % uuid.uuid4().hex[:8]
        self.compute_url = root + self.api_fixture.api_version
        intercept = interceptor.RequestsInterceptor(
            lambda: _NovaAuthToken(self.api_fixture.app(), self.keystone),
            url=root)
        intercept.install_intercept()
        self.addCleanup(intercept.uninstall_intercept)
        self.conn = self.connection()

    def _delete_volume(self, context, volume_id):
        """Cinder deleting a volume for Nova (the fixture does not)."""
        self.cinder.volumes.pop(volume_id, None)
        self.deleted_volumes.append(volume_id)

    def _setup_compute_service(self):
        return self._start_compute(HOSTS[0])

    def _clear_attrs(self):
        # Nova's base deletes public attributes at clean-up; pytest still
        # needs some of them after the test.
        pass

    def connection(self, project_id=None):
        """The harness user's connection, in the harness's project or in
        ``project_id`` (with the roles :attr:`keystone` says it holds
        there; Keystone refuses it a token where it holds none)."""
        project = project_id or self.api_fixture.project_id
        roles = self.keystone.roles.get(project) or []
        user = HarnessKeystone.USER_ID
        session = ks_session.Session(
            auth=_HarnessAuth(project, refused=not roles,
                              keystone=self.keystone),
            additional_headers={
                'X-Auth-User': user, 'X-User-Id': user,
                'X-Auth-Project-Id': project, 'X-Project-Id': project,
                'X-Roles': ','.join(roles),
                # Placement's no-auth middleware reads the token.
                'X-Auth-Token': 'admin'})
        conn = _HarnessConnection(
            session=session, region_name='RegionOne',
            compute_endpoint_override=self.compute_url,
            placement_endpoint_override=self.placement_fixture.endpoint,
            block_storage_endpoint_override=self.cinder_url)
        conn.harness = self
        return conn

    def tenant_api(self, project_id, user='tenant'):
        """Nova's API as a member of another project ``project_id``."""
        api = client.TestOpenStackClient(
            user, self.api_fixture.base_url, project_id=project_id,
            roles=['reader', 'member'])
        api.microversion = self.api.microversion
        return api

    def make_conf(self, **groups):
        groups = {name: dict(values) for name, values in groups.items()}
        openstack = groups.setdefault('openstack', {})
        openstack.setdefault('image', IMAGE_ID)
        openstack.setdefault('network', NETWORK_ID)
        openstack.setdefault('gc_interval', 0)
        openstack.setdefault('poll_interval', 0.1)
        openstack.setdefault('sample_lag', 0.5)
        openstack.setdefault('cleanup_reserve', 2.0)
        openstack.setdefault('service_id', 'test-%s' % self.id()[-40:])
        collector = groups.setdefault('collector', {})
        collector.setdefault('host', '127.0.0.1')
        collector.setdefault('port', 0)
        shadow = groups.setdefault('shadow', {})
        shadow.setdefault('cloud_driver', 'openstack')
        shadow.setdefault('sample_interval', 0.5)
        shadow.setdefault('min_run_time', 1.0)
        return service_support.make_conf(**groups)

    def make_driver(self, history, **groups):
        conf = self.make_conf(**groups)
        return conf, os_driver.OpenStackDriver(conf, history,
                                               connection=self.conn)

    def clouds_yaml(self, directory, name='harness'):
        """A ``clouds.yaml`` (``auth_type: none``) whose cloud reaches this
        harness in this process: the APIs intercepted at new addresses
        behind a middleware that adds the harness's admin identity."""
        project = self.api_fixture.project_id
        urls = {}
        for service, app, mount, path in (
                ('compute', self.api_fixture.app, '/', '/v2.1'),
                ('placement', _placement_app(self.placement_fixture),
                 '/placement', '')):
            url = 'http://nova-shadow-%s-%s:80%s' % (
                service, uuid.uuid4().hex[:8], mount)
            intercept = interceptor.RequestsInterceptor(
                lambda app=app: _Identity(app(), project), url=url)
            intercept.install_intercept()
            self.addCleanup(intercept.uninstall_intercept)
            urls[service] = url.rstrip('/') + path
        path = os.path.join(directory, 'clouds.yaml')
        with open(path, 'w') as f:
            yaml.safe_dump({'clouds': {name: {
                'auth_type': 'none', 'region_name': 'RegionOne',
                'compute_endpoint_override': urls['compute'],
                'placement_endpoint_override': urls['placement']}}}, f)
        return path

    def shadow_servers(self):
        return self.admin_api.get_servers(
            detail=True, search_opts={'tags': os_driver.SHADOW_TAG})

    def allocations(self, consumer):
        return self.placement.get(
            '/allocations/%s' % consumer).body['allocations']

    def lose_deletions(self, soft_deletes=False):
        """The compute hosts never get a deletion's message (one
        restarted as it was sent, a lost cast): Nova shows the server
        with task state ``deleting`` for good (``SOFT_DELETED`` for a
        force-delete, its status before the delete otherwise).  With
        ``soft_deletes``, a deferred delete's message too (``[DEFAULT]
        reclaim_instance_interval`` above 0): task state
        ``soft-deleting``.  Returns the mock of the casts (its calls: the
        deletions Nova accepted) and an Event that, cleared, delivers
        them again."""
        losing = threading.Event()
        losing.set()
        lost = mock.Mock()
        casts = ['terminate_instance']
        if soft_deletes:
            casts.append('soft_delete_instance')
        for name in casts:
            real = getattr(compute_rpcapi.ComputeAPI, name)

            def cast(rpcapi, *args, _real=real, **kwargs):
                lost(*args, **kwargs)
                if not losing.is_set():
                    return _real(rpcapi, *args, **kwargs)
            self.useFixture(fixtures.MockPatchObject(
                compute_rpcapi.ComputeAPI, name, new=cast))
        return lost, losing

    @staticmethod
    def driver_warnings(records):
        """The messages of the openstack driver's log ``records`` at
        WARNING or above."""
        return [r.getMessage() for r in records
                if r.name == os_driver.__name__
                and r.levelno >= logging.WARNING]

    def server_gone(self, server_id):
        """Whether Nova's API no longer shows ``server_id``."""
        try:
            self.admin_api.get_server(server_id)
        except client.OpenStackApiNotFoundException:
            return True
        return False

    def collect_past_the_grace(self, driver, passes_within=1):
        """Run ``driver``'s garbage collector ``passes_within`` times
        within twice ``delete_timeout`` of its last deletion (a minute
        here, however busy the machine), which must collect and say
        nothing above debug level, then once past it, which must collect
        one shadow without waiting for it; returns that pass's one
        warning."""
        driver.deletion_grace_s = 60.0
        with self.assertLogs(os_driver.__name__, logging.DEBUG) as logs:
            for _ in range(passes_within):
                self.assertEqual(0, driver.collect_garbage())
        self.assertEqual([], self.driver_warnings(logs.records))
        driver.deletion_grace_s = 0.0
        # A pass that waited for the deletion would wait delete_timeout:
        # a minute here, far beyond the pass's own calls (half a second
        # under stress-ng --cpu 4, however many more a busier machine
        # takes), and paid only by a pass that waits.
        opts, driver.opts = driver.opts, _Overridden(driver.opts,
                                                     delete_timeout=60.0)
        try:
            with self.assertLogs(os_driver.__name__,
                                 logging.WARNING) as logs:
                started = time.monotonic()
                self.assertEqual(1, driver.collect_garbage())
                # Asked again without a wait: the next pass looks.
                self.assertLess(time.monotonic() - started, 30.0)
        finally:
            driver.opts = opts
        (warning,) = self.driver_warnings(logs.records)
        return warning

    def wait_for(self, predicate, timeout=10.0, what='condition'):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError('timed out waiting for %s' % what)
            time.sleep(0.1)


class _Overridden:
    """Config options ``opts`` (a group) with some values replaced."""

    def __init__(self, opts, **values):
        self._opts = opts
        self._values = values

    def __getattr__(self, name):
        if name in self._values:
            return self._values[name]
        return getattr(self._opts, name)
