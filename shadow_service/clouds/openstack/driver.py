"""``openstack``: shadows on a real cloud, through openstacksdk.

Each shadow is a server in the shadow project (the credentials'
project), booted from the request's image or ``[openstack] image`` with a
private flavor of the shadow's size (created once per size and extra
specs, then reused), pinned to the candidate host it measures
(``host=`` with compute microversion 2.74, else
``availability_zone=<zone>:<host>``), tagged ``nova-shadow`` and
``nova-shadow-eval-<evaluation id>`` and carrying the evaluation, the
service and the expiry time in its metadata.  Its user-data runs loadgen
(:mod:`shadow_service.clouds.openstack.userdata`) with a write-only token
of the sample collector (:mod:`shadow_service.collector`), which this
driver starts when shadows have a network (:meth:`OpenStackDriver.start`);
the console log is the fallback for shadows that send nothing.

What fails degrades to "this host stays unmeasured", never to an
exception out of :meth:`~OpenStackDriver.boot_shadows`: quota exhausted,
a host the scheduler refuses (the server goes to ERROR with
NoValidHost), API errors and time-outs.  At most
``max_shadows_per_host`` shadows run on one host at a time.  Deletion
waits until the servers are gone and their Placement allocations
released; one a deferred delete keeps SOFT_DELETED (Nova's
``reclaim_instance_interval``) is force-deleted.  A garbage collector
(at start and every ``gc_interval``) deletes shadows this service left
behind and any expired shadow, SOFT_DELETED ones too; one whose deletion
is under way (asked by this driver, or shown by Nova) is left to finish
for twice ``delete_timeout``, then deleted again; one Nova still shows
with task state ``deleting`` or ``soft-deleting`` (a deletion, a
deferred delete or a SOFT_DELETED one's force-delete, that its compute
host never completed) has its state reset first, since Nova ignores
another delete of it.

Every other failure is raised as
:class:`~shadow_service.clouds.base.CloudError`, never as an
openstacksdk or keystoneauth exception.  Options: ``[openstack]``
(``shadow_service/conf/openstack.py``) and ``[collector]``; the guide is
``doc/source/openstack.rst``.
"""

import collections
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import math
import re
import socket
import threading
import time
import uuid

from shadow_service import hostfacts as facts
from shadow_service.clouds import base
from shadow_service.clouds.openstack import userdata
from shadow_service.collector import ingest
from shadow_service.collector import server as collector_server
from shadow_service.collector import tokens
from shadow_service.conf import openstack as os_conf

LOG = logging.getLogger(__name__)

#: Every shadow carries this tag; the garbage collector lists by it.
SHADOW_TAG = 'nova-shadow'
#: Plus one naming its evaluation.
EVALUATION_TAG = 'nova-shadow-eval-%s'
META_EVALUATION = 'nova_shadow_evaluation'
META_SERVICE = 'nova_shadow_service'
META_HOST = 'nova_shadow_host'
META_EXPIRES = 'nova_shadow_expires_at'
#: Connections scoped to tenants' projects (siblings) kept at most; one
#: dropped past that is closed.
MAX_PROJECT_CONNECTIONS = 64
#: Seconds a project where the driver could not authenticate (its user
#: holds no role there), or whose token Nova refused at a boot, is not
#: asked of Keystone or Nova again: a scale-out of another of its VMs
#: meanwhile is refused for the same reason.  Well
#: under shadow-watcher's ``interval`` (300 s by default), so a role
#: granted since counts at the next run.
REFUSAL_MEMORY_S = 60.0
#: Projects whose refusal the driver remembers at most; past that the
#: one refused longest ago is forgotten.
MAX_REFUSED_PROJECTS = 1024
#: The role an operator grants the driver's user in a tenant's project.
SIBLING_ROLE = 'member'
#: Compute microversion of ``host=`` on server create.
HOST_PARAM_MICROVERSION = '2.74'
#: Compute microversion of a block device mapping's ``volume_type``.
VOLUME_TYPE_MICROVERSION = '2.67'
#: Last microversion whose hypervisor details carry usage figures.
HYPERVISOR_STATS_MICROVERSION = '2.87'
_UUID = re.compile(r'^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}\Z')
_RETRYABLE_STATUSES = frozenset((408, 409, 429, 500, 502, 503, 504))
#: What Nova shows of a server whose deletion is under way.
DELETING_TASK_STATE = 'deleting'
#: ... and of one whose deferred delete is under way (Nova's
#: ``reclaim_instance_interval`` above 0), until it is SOFT_DELETED.
SOFT_DELETING_TASK_STATE = 'soft-deleting'
#: Task states in which Nova ignores another delete of a server while
#: its compute service is up (``nova.compute.api.API._delete``): a
#: deletion its host never completes leaves the server so for good.
DELETE_IGNORED_TASK_STATES = frozenset((DELETING_TASK_STATE,
                                        SOFT_DELETING_TASK_STATE))
DELETED_STATUS = 'DELETED'
#: A server a deferred delete keeps (Nova's ``[DEFAULT]
#: reclaim_instance_interval`` above 0) until it is reclaimed: hidden
#: from the default server list, yet holding its allocations.
SOFT_DELETED_STATUS = 'SOFT_DELETED'
#: Nova's policy of the ``forceDelete`` server action.
FORCE_DELETE_POLICY = 'os_compute_api:os-deferred-delete:force'
#: Nova's policy of the ``os-resetState`` server action.
RESET_STATE_POLICY = 'os_compute_api:os-admin-actions:reset_state'
#: Deletions under way the driver remembers at most; past that the oldest
#: is forgotten (the garbage collector then goes by what Nova shows).
MAX_REMEMBERED_DELETIONS = 1024
#: Remembered deletions the garbage collector looks up by id in one pass
#: at most (those Nova's list hides: SOFT_DELETED), the ones looked up
#: longest ago first; the rest wait for a later pass.
MAX_HELD_LOOKUPS = 32


def _remember_now(times, server_id, warned=None):
    """Set ``times[server_id]`` to now (``time.monotonic()``), newest
    last; past ``MAX_REMEMBERED_DELETIONS`` the oldest are forgotten, and
    dropped from ``warned`` too.  The caller holds the lock."""
    times.pop(server_id, None)
    times[server_id] = time.monotonic()
    while len(times) > MAX_REMEMBERED_DELETIONS:
        dropped, _since = times.popitem(last=False)
        if warned is not None:
            warned.discard(dropped)


def _host_name(host):
    return host['host'] if isinstance(host, dict) else str(host)


def _state(server):
    """``status X[, task state Y]`` of ``server``, for the logs."""
    if server.task_state:
        return 'status %s, task state %s' % (server.status,
                                             server.task_state)
    return 'status %s' % server.status


def _kept(server):
    """``server`` is SOFT_DELETED, whatever its task state: only a
    ``forceDelete`` (which Nova takes in any task state) or the end of
    ``reclaim_instance_interval`` ends it."""
    return server.status == SOFT_DELETED_STATUS


def _kept_soft_deleted(refused):
    """Why the shadows of ``refused`` (``{id: CloudError}``, Nova's
    refusals to force-delete them) stay, and what lets the driver
    force-delete them."""
    return ('shadows %s stay SOFT_DELETED, holding their Placement '
            'allocations, their hosts\' RAM and CPU and the shadow '
            'project\'s quota until Nova reclaims them ([DEFAULT] '
            'reclaim_instance_interval): Nova refused to force-delete them '
            '(%s); let the [openstack] user force-delete its servers '
            '(policy %s; Nova\'s default allows project members and '
            'admins), or set reclaim_instance_interval = 0 in Nova'
            % (', '.join(sorted(refused)),
               '; '.join(str(refused[i]) for i in sorted(refused)),
               FORCE_DELETE_POLICY))


def _message(exc):
    details = getattr(exc, 'details', None)
    text = str(details or exc).strip().replace('\n', ' ')
    return text[:500]


def _call_or_explain(what, call, explain=None):
    """``call()`` as ``what`` (:func:`cloud_errors`), a server Nova no
    longer shows (404) counting as done; a refusal (a CloudError that
    may not pass) raised again as one whose message is
    ``explain(error)`` (as raised when ``explain`` is None)."""
    from openstack import exceptions as sdk_exc

    try:
        with cloud_errors(what):
            try:
                call()
            except sdk_exc.NotFoundException:
                pass
    except base.CloudError as e:
        if e.retryable or explain is None:
            raise
        raise base.CloudError(explain(e), retryable=False) from None


@contextlib.contextmanager
def cloud_errors(what, host=None):
    """Raise what fails inside as :class:`base.CloudError` saying
    ``what`` was attempted (and on which ``host``)."""
    from keystoneauth1 import exceptions as ks_exc
    from openstack import exceptions as sdk_exc

    try:
        yield
    except base.CloudError:
        raise
    except sdk_exc.HttpException as e:
        status = e.status_code
        text = _message(e)
        retryable = status is None or status in _RETRYABLE_STATUSES
        if 'quota exceeded' in text.lower():
            retryable = False
        raise base.CloudError('%s failed (HTTP %s): %s'
                              % (what, status, text), host=host,
                              retryable=retryable,
                              credentials_refused=status == 401,
                              status=status) from None
    except (sdk_exc.ResourceTimeout, ks_exc.ConnectionError,
            ks_exc.RequestTimeout, ks_exc.DiscoveryFailure) as e:
        # (Version discovery fails when the endpoint does not answer.)
        raise base.CloudError('%s failed: %s: %s'
                              % (what, type(e).__name__, _message(e)),
                              host=host, retryable=True,
                              unreachable=True) from None
    except (sdk_exc.SDKException, ks_exc.ClientException) as e:
        # Keystone refusing the credentials: keystoneauth's Unauthorized.
        status = getattr(e, 'http_status', None)
        raise base.CloudError('%s failed: %s: %s'
                              % (what, type(e).__name__, _message(e)),
                              host=host, retryable=False,
                              credentials_refused=status == 401,
                              status=status) from None
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        # openstacksdk parsing an answer that is not what the API returns
        # (HTML with 200, a list where an object belongs): the cloud's
        # fault, maybe passing, not a crash of ours.
        raise base.CloudError('%s failed: an answer (or a setting) not '
                              'of the shape the API has (%s: %s)'
                              % (what, type(e).__name__, _message(e)),
                              host=host, retryable=True) from None


def _raise_for_status(response):
    """The SDK's HttpException for an error answer to a raw call (which
    the proxies do not raise themselves)."""
    from openstack import exceptions as sdk_exc

    sdk_exc.raise_from_response(response)


def _close_all(conns):
    """Release what the connections ``conns`` hold open (their HTTP
    connection pools); one that fails to is only logged."""
    for conn in conns:
        try:
            conn.close()
        except Exception:  # a connection's resources vary
            LOG.debug('Closing a connection failed', exc_info=True)


def _application_credential(auth):
    """Whether the keystoneauth plugin ``auth`` authenticates with an
    application credential (alone or among other methods): Keystone
    scopes its tokens to the credential's project and refuses a request
    that names another scope."""
    from keystoneauth1.identity import v3

    if isinstance(auth, v3.ApplicationCredential):
        return True
    return any(isinstance(method, v3.ApplicationCredentialMethod)
               for method in getattr(auth, 'auth_methods', None) or ())


def connect(conf, project_id=None):
    """An openstacksdk connection from ``[openstack]``: the clouds.yaml
    cloud ``cloud``, else the group's keystoneauth options; with
    ``project_id``, the same user's credentials scoped to that project
    instead of theirs (nothing is asked of Keystone until the first
    call)."""
    import openstack
    from keystoneauth1 import loading as ks_loading

    opts = conf.openstack
    extra = {}
    if opts.region_name:
        extra['region_name'] = opts.region_name
    if opts.interface:
        extra['interface'] = opts.interface
    with cloud_errors('Loading the [openstack] credentials'):
        if opts.cloud:
            conn = openstack.connect(cloud=opts.cloud,
                                     api_timeout=opts.api_timeout, **extra)
            if project_id:
                conn = conn.connect_as_project({'id': project_id})
            return conn
        scope = {}
        if project_id:
            scope = _conf_scope(conf, project_id)
        try:
            auth = ks_loading.load_auth_from_conf_options(
                conf, os_conf.openstack_group.name, **scope)
        except Exception as e:  # keystoneauth's option errors vary
            raise base.CloudError('[openstack] auth options: %s' % e) \
                from None
        if auth is None:
            raise base.CloudError(
                '[openstack] needs either cloud (a clouds.yaml entry) or '
                'auth_type with its options (auth_url, username, ...)')
        session = ks_loading.load_session_from_conf_options(
            conf, os_conf.openstack_group.name, auth=auth)
        if session.timeout is None:
            session.timeout = opts.api_timeout
        elif not (isinstance(session.timeout, (int, float))
                  and 0 < session.timeout < math.inf):
            raise base.CloudError('[openstack] timeout: must be a number '
                                  'of seconds above 0, got %r'
                                  % (session.timeout,))
        from openstack import connection

        return connection.Connection(session=session, **extra)


#: keystoneauth options that say what a token is scoped to.
_SCOPE_OPTIONS = ('project_id', 'project_name', 'project_domain_id',
                  'project_domain_name', 'domain_id', 'domain_name',
                  'system_scope')


def _conf_scope(conf, project_id):
    """keystoneauth options of ``[openstack]``'s auth plugin that scope
    its credentials to ``project_id`` rather than to their own project."""
    from keystoneauth1 import loading as ks_loading

    group = conf.openstack.auth_section or os_conf.openstack_group.name
    auth_type = conf[group].auth_type
    try:
        options = {opt.dest for opt in
                   ks_loading.get_plugin_loader(auth_type).get_options()}
    except Exception as e:  # keystoneauth's plugin errors vary
        raise base.CloudError('[openstack] auth_type %s: %s'
                              % (auth_type, e)) from None
    if 'project_id' not in options:
        raise base.CloudError(
            '[openstack] auth_type %s cannot be scoped to a project: '
            'siblings can only be booted with [openstack] '
            'sibling_project = service' % auth_type)
    return {name: project_id if name == 'project_id' else None
            for name in _SCOPE_OPTIONS if name in options}


class _HostSlots:
    """At most ``limit`` shadows per host at a time."""

    def __init__(self, limit):
        self.limit = limit
        self._lock = threading.Lock()
        self._used = {}

    def take(self, host):
        with self._lock:
            if self._used.get(host, 0) >= self.limit:
                return False
            self._used[host] = self._used.get(host, 0) + 1
            return True

    def give_back(self, host):
        with self._lock:
            left = self._used.get(host, 0) - 1
            if left > 0:
                self._used[host] = left
            else:
                self._used.pop(host, None)


class _Tracked:
    """What the driver remembers of a shadow it booted."""

    def __init__(self, shadow, grant):
        self.shadow = shadow
        self.grant = grant
        self.active = False
        self.next_console_poll = 0.0


class _AskedDeletions:
    """The deletions of one kind of server (:attr:`noun`) that the driver
    asked and follows until the server is gone: when each was asked (or
    first seen under way, or asked again), newest last, at most
    ``MAX_REMEMBERED_DELETIONS`` (:func:`_remember_now`), and those whose
    repeat was warned of (once).  What differs between kinds (what the
    server holds, how it is force-deleted) is the subclass's; the repeat
    itself is :meth:`OpenStackDriver._delete_again`."""

    noun = None

    def __init__(self, driver):
        self.driver = driver
        self.times = collections.OrderedDict()
        self.warned = set()

    def asked(self, server_id):
        with self.driver._lock:
            _remember_now(self.times, server_id, self.warned)

    def since(self, server_id):
        """Seconds since the deletion of ``server_id`` was asked, or
        None when none is remembered."""
        with self.driver._lock:
            since = self.times.get(server_id)
        return None if since is None else time.monotonic() - since

    def first_repeat(self, server_id):
        """Whether this repeat of ``server_id``'s deletion is its first
        (warned of; later ones are logged at debug level)."""
        with self.driver._lock:
            first = server_id not in self.warned
            self.warned.add(server_id)
        return first

    def done(self, server_ids):
        """Forget the deletions of ``server_ids`` (Nova holds them no
        more)."""
        with self.driver._lock:
            for server_id in server_ids:
                self.times.pop(server_id, None)
                self.warned.discard(server_id)

    def holds(self, server):
        """What ``server`` holds while it stays, for the logs."""
        raise NotImplementedError

    def force_delete(self, server):
        raise NotImplementedError

    def force_refused(self, server_id, error):
        """Note that Nova refused to force-delete ``server_id`` (kept
        SOFT_DELETED); the warning that says so."""
        return str(error)

    def force_asked(self, server_id):
        """Note that a force-delete of ``server_id`` was asked (its
        failure may pass)."""


class _ShadowDeletions(_AskedDeletions):
    noun = 'shadow'

    def done(self, server_ids):
        self.driver._deletions_done(server_ids)

    def holds(self, server):
        return ('holding its Placement allocations and the shadow '
                'project\'s quota')

    def force_delete(self, server):
        self.driver._force_delete(server.id)

    def force_refused(self, server_id, error):
        self.driver._force_refused(server_id)
        return _kept_soft_deleted({server_id: error})

    def force_asked(self, server_id):
        self.driver._force_asked(server_id)


class _SiblingDeletions(_AskedDeletions):
    noun = 'sibling'

    def holds(self, server):
        return _sibling_holds(server)

    def force_delete(self, server):
        self.driver._force_delete_sibling(server)


def _sibling_holds(server):
    return ('holding its Placement allocations, its host\'s RAM and CPU '
            'and project %s\'s quota' % (server.project_id or '(not shown)'))


class OpenStackDriver(base.CloudDriver):
    """Shadows, host facts and instance actions on an OpenStack cloud.

    Parameters
    ----------
    conf : oslo_config.cfg.ConfigOpts
        With ``[openstack]``, ``[collector]`` and ``[shadow]`` registered.
    history : shadow_service.history.base.HistoryStore
        Where the collector writes what shadows send.
    connection : openstack.connection.Connection, optional
        An open connection (tests, tools); made from ``[openstack]``
        otherwise.
    """

    config_group = os_conf.openstack_group

    @classmethod
    def get_config_opts(cls):
        return os_conf.all_opts()

    @classmethod
    def get_sample_config_opts(cls):
        return os_conf.sample_opts()

    @classmethod
    def check_config(cls, conf):
        """Raise CloudError when ``[openstack]`` or ``[collector]`` cannot
        work (no credentials, an unknown cloud, a collector guests cannot
        be told the address of); contacts nothing."""
        connect(conf)
        collector = conf.collector
        network = conf.openstack.network
        if (network and network != 'none' and collector.enabled
                and not collector.advertised_url
                and collector.host in collector_server.WILDCARDS):
            raise base.CloudError(
                '[collector] advertised_url is required when host is %r: '
                'guests on [openstack] network need an address they can '
                'reach' % (collector.host,))

    @classmethod
    def sibling_warning(cls, conf):
        """What ``shadow-watcher`` warns of at start, or None: with
        ``[openstack] sibling_project = owner`` and application-credential
        auth, no sibling can be booted in a project other than the
        credential's (:meth:`why_no_sibling` says so at each scale-out).
        Contacts nothing."""
        if conf.openstack.sibling_project != 'owner':
            return None
        conn = connect(conf)
        try:
            if not _application_credential(conn.session.auth):
                return None
        finally:
            _close_all([conn])
        return ('[openstack] authenticates with an application credential, '
                'which Keystone keeps to the project it was created in: '
                'with [openstack] sibling_project = owner the watcher can '
                'boot no sibling of a VM in any other project, and each '
                'such scale-out will be suppressed; give [openstack] a '
                'user\'s password (a user with the %s role in the projects '
                'whose VMs are scaled out), or set [openstack] '
                'sibling_project = service to boot siblings in the '
                'driver\'s own project' % SIBLING_ROLE)

    def __init__(self, conf, history, connection=None):
        super().__init__(conf, history)
        self.opts = conf.openstack
        self.conn = connection if connection is not None else connect(conf)
        # Credentials given as [openstack] keystoneauth options are
        # scoped anew from them; an SDK connection re-scopes itself.
        self._scoped_from_conf = connection is None and not self.opts.cloud
        self._project_conns = collections.OrderedDict()
        self._project_conns_lock = threading.Lock()
        # Project id -> (time.monotonic() of Keystone's last refusal, or
        # Nova's 401 at a boot, the CloudError it was), until
        # authenticating there succeeds; warned of once, asked again
        # after refusal_memory_s.
        self._refused_projects = collections.OrderedDict()
        #: Seconds a refusal of a project is answered from memory.
        self.refusal_memory_s = REFUSAL_MEMORY_S
        self.service_id = self.opts.service_id or socket.gethostname()
        self.cleanup_reserve_s = self.opts.cleanup_reserve
        self.lifetime_s = conf.shadow.max_budget + self.opts.expiry_margin
        self.grants = tokens.Grants(
            retention_s=conf.collector.token_retention)
        self.intake = ingest.Intake(
            history, max_clock_skew=conf.collector.max_clock_skew,
            max_line_bytes=conf.collector.max_line_bytes)
        self.collector = None
        self.collector_url = None
        self._slots = _HostSlots(self.opts.max_shadows_per_host)
        self._lock = threading.Lock()
        self._tracked = {}
        self._booting_names = set()
        self._deleting = set()
        # Shadows' deletions: server id -> time.monotonic() when asked
        # (or first seen under way), until Nova no longer lists it.
        self._shadows_asked = _ShadowDeletions(self)
        self._deletions = self._shadows_asked.times
        # Server id -> time.monotonic() when Nova refused to force-delete
        # it (kept SOFT_DELETED), until it is gone.
        self._force_refusals = collections.OrderedDict()
        # Server id -> time.monotonic() when this driver force-deleted it
        # (or first saw a force-delete under way), until it is gone: the
        # garbage collector asks again only after deletion_grace_s.
        self._forced = collections.OrderedDict()
        # Servers whose deletion (or force-delete) the collector repeated
        # and said so (once; later repeats are logged at debug level).
        self._repeat_warned = self._shadows_asked.warned
        # Siblings' deletions: sibling id -> time.monotonic() when
        # delete_instance asked it (or first saw it under way, or
        # finish_deletions asked again), until it is seen gone.
        self._siblings_asked = _SiblingDeletions(self)
        self._sibling_deletions = self._siblings_asked.times
        # Siblings handed by resume_deletions(under_way_only=True): their
        # first look-up carries on only a deletion under way.
        self._if_under_way = set()
        # Server id -> time.monotonic() of the collector's last look-up
        # of a remembered deletion (the ones looked up longest ago, or
        # never, go first).
        self._held_looked_up = {}
        #: Remembered deletions looked up by id in one pass at most.
        self.held_lookups_per_pass = MAX_HELD_LOOKUPS
        self._soft_list_warned = False
        #: Seconds a deletion under way is left to finish before the
        #: garbage collector asks again.
        self.deletion_grace_s = 2 * self.opts.delete_timeout
        self._flavors = {}
        self._flavor_lock = threading.Lock()
        self._zones = {}
        self._host_param = None
        self._project_id = None
        self._gc_stop = threading.Event()
        self._gc_thread = None

    # -- lifecycle --------------------------------------------------------
    def start(self):
        """Start the collector (when shadows have a network and
        ``[collector] enabled``) and the periodic garbage collector."""
        if (self.opts.network and self.opts.network != 'none'
                and self.conf.collector.enabled
                and self.collector is None):
            self.collector = collector_server.Collector(
                self.conf.collector, self.intake, self.grants).start()
            self.collector_url = self.collector.advertised_url
        elif not self.opts.console_samples:
            LOG.warning('Shadows have no way to send samples: set '
                        '[openstack] network (and the [collector] options) '
                        'or [openstack] console_samples')
        if self.opts.gc_interval > 0 and self._gc_thread is None:
            self._gc_stop.clear()
            self._gc_thread = threading.Thread(
                target=self._gc_loop, name='shadow-gc', daemon=True)
            self._gc_thread.start()

    def stop(self):
        self._gc_stop.set()
        if self._gc_thread is not None:
            self._gc_thread.join(10)
            self._gc_thread = None
        if self.collector is not None:
            self.collector.stop()
            self.collector = None
        with self._project_conns_lock:
            dropped = list(self._project_conns.values())
            self._project_conns.clear()
        _close_all(dropped)

    def check_access(self):
        """Authenticate once (a token from Keystone, which the SDK keeps
        for the calls that follow)."""
        with cloud_errors('Authenticating to the cloud'):
            # The session's own call: Connection.authorize() turns
            # keystoneauth's Unauthorized into an untyped SDKException.
            self.conn.session.get_token()

    def _gc_loop(self):
        while not self._gc_stop.wait(self.opts.gc_interval):
            try:
                self.collect_garbage()
            except base.CloudError as e:
                LOG.warning('Shadow garbage collection failed (%s); '
                            'retrying in %ss', e, self.opts.gc_interval)
            except Exception:
                LOG.exception('Shadow garbage collection failed; retrying '
                              'in %ss', self.opts.gc_interval)

    def collect_garbage(self):
        """Delete :meth:`garbage_shadows` (one warning naming each and
        why it is deleted); returns how many.  One whose deletion has
        not completed in ``deletion_grace_s`` and that Nova still shows
        with task state ``deleting`` or ``soft-deleting`` (a DELETE, a
        deferred delete, or a force-delete of a SOFT_DELETED one, its
        compute host never completed), and one
        this driver force-deleted that Nova still keeps SOFT_DELETED,
        are deleted again (:meth:`_delete_again`), without a wait: the
        next pass sees whether they went."""
        garbage = self._garbage()
        repeats = [(shadow, why) for shadow, why, again in garbage
                   if again]
        fresh = [(shadow, why) for shadow, why, again in garbage
                 if not again]
        self._delete_again(repeats)
        if fresh:
            LOG.warning('Deleting %d left-over shadows: %s', len(fresh),
                        ', '.join('%s (%s)' % (shadow.shadow_id, why)
                                  for shadow, why in fresh))
            self.delete_shadows([shadow for shadow, _why in fresh])
        return len(garbage)

    def _delete_again(self, garbage):
        """Delete again the ``(shadow, why)`` of ``garbage``, whose
        deletion (a SOFT_DELETED one's force-delete) has not completed
        (:meth:`_repeat_deletion`)."""
        for shadow, why in garbage:
            self._repeat_deletion(
                self._shadows_asked, shadow.shadow_id, why,
                kept=shadow.status == SOFT_DELETED_STATUS, host=shadow.host)

    def _repeat_deletion(self, asked, server_id, why, kept=False,
                         host=None):
        """Delete again ``server_id``, a shadow or a sibling (``asked``,
        its kind's deletions), whose deletion (a SOFT_DELETED one's
        force-delete) has not completed (``why``; None: said from what
        Nova shows): one warning, later repeats at debug level; the next
        time ``deletion_grace_s`` later.  One Nova no longer holds is
        forgotten.

        Nova ignores a delete of a server that shows task state
        ``deleting`` or ``soft-deleting`` while its compute service is
        up (and never reclaims a SOFT_DELETED one): such a server's state
        is reset first (``os-resetState`` to ``error``, which clears the
        task state), so that the delete reaches its host again.  Where
        Nova refuses the reset, the warning says what an admin runs.
        Failures are logged, never raised."""
        noun = asked.noun
        pending_s = asked.since(server_id) or 0.0
        first = asked.first_repeat(server_id)
        level = logging.WARNING if first else logging.DEBUG
        said = ' (said once)' if first else ''
        # Also the wait for a deletion under way starts again.
        asked.asked(server_id)
        try:
            server = self._held(server_id, noun)
            if server is None:
                asked.done([server_id])
                return
            kept = _kept(server)
            if why is None:
                why = ('its %s has not completed in %.0fs: %s'
                       % ('force-delete' if kept and server.task_state
                          else 'deletion', pending_s, _state(server)))
            holds = asked.holds(server)
            if server.task_state in DELETE_IGNORED_TASK_STATES:
                try:
                    self._reset_state(server_id, kept, what=noun)
                except base.CloudError as e:
                    if e.retryable:
                        raise
                    if kept:
                        asked.force_refused(server_id, e)
                    LOG.log(level, '%s %s stays (%s), %s; asked again '
                            'every %.0fs while Nova keeps it%s: %s',
                            noun.capitalize(), server_id, why, holds,
                            self.deletion_grace_s, said, e)
                    return
            LOG.log(level, '%s %s %s again (%s), %s; asked again every '
                    '%.0fs while Nova keeps it%s',
                    'Force-deleting' if kept else 'Deleting', noun,
                    server_id, why, holds, self.deletion_grace_s, said)
            if kept:
                asked.force_delete(server)
            else:
                with cloud_errors('Deleting %s %s' % (noun, server_id),
                                  host=host):
                    self.conn.compute.delete_server(
                        server_id, ignore_missing=True)
        except base.CloudError as e:
            if kept:
                if not e.retryable:
                    LOG.warning('%s', asked.force_refused(server_id, e))
                    return
                # Asked again after deletion_grace_s all the same.
                asked.force_asked(server_id)
            LOG.log(level, '%s: %s', 'Shadow garbage collection'
                    if noun == 'shadow' else 'Deleting siblings', e)

    def _reset_state(self, server_id, kept, what='shadow'):
        """Clear the task state ``deleting`` or ``soft-deleting`` of
        ``server_id`` (SOFT_DELETED when ``kept``), which Nova keeps while
        a deletion it will not take again never ends (``os-resetState``
        to ``error``)."""
        _call_or_explain(
            'Resetting the state of %s %s, which Nova shows as being '
            'deleted and ignores deleting again (policy %s)'
            % (what, server_id, RESET_STATE_POLICY),
            lambda: self.conn.compute.reset_server_state(server_id,
                                                         'error'),
            lambda e: '%s; an admin can run: openstack server set --state '
            'error %s; openstack server delete %s%s (or restart '
            'nova-compute on its host, which completes the deletion)'
            % (e, server_id, '--force ' if kept else '', server_id))

    # -- the clock ----------------------------------------------------------
    def now(self):
        """Wall-clock time minus ``[openstack] sample_lag``: samples up to
        this time have arrived."""
        return time.time() - self.opts.sample_lag

    def wait(self, seconds):
        """Sleep ``seconds``, reading the console log of shadows that sent
        nothing to the collector on the way."""
        deadline = time.monotonic() + max(0.0, seconds)
        if self.opts.console_samples:
            self._poll_consoles(deadline)
        left = deadline - time.monotonic()
        if left > 0:
            time.sleep(left)

    # -- what shadows boot from ------------------------------------------
    def _project(self):
        if self._project_id is None:
            with cloud_errors('Finding the shadow project'):
                self._project_id = self.conn.current_project_id
        return self._project_id

    @staticmethod
    def flavor_name(prefix, flavor):
        """The private flavor's name for a shadow ``flavor`` (sizes and
        a hash of the extra specs)."""
        specs = flavor.get('extra_specs') or {}
        digest = hashlib.sha256(json.dumps(
            specs, sort_keys=True).encode('utf-8')).hexdigest()[:8]
        return '%s-%dc-%dm-%dg-%s' % (
            prefix, int(flavor['vcpus']), int(flavor['ram_mb']),
            int(flavor.get('disk_gb') or 0), digest)

    def flavor_for(self, flavor):
        """The id of the private flavor of the shadow-sized ``flavor``,
        created (with its extra specs, for the shadow project) the first
        time."""
        name = self.flavor_name(self.opts.flavor_prefix, flavor)
        with self._flavor_lock:
            if name in self._flavors:
                return self._flavors[name]
            found = self._find_flavor(name)
            if found is None:
                try:
                    found = self._create_flavor(name, flavor)
                except base.CloudError:
                    # Another shadow-service may have created it.
                    found = self._find_flavor(name)
                    if found is None:
                        raise
            self._flavors[name] = found.id
            return found.id

    def _find_flavor(self, name, conn=None):
        """The flavor called ``name`` that ``conn`` (the driver's own
        connection by default) may use, or None: with the ``admin``
        role any flavor, else the public ones and the private ones
        shared with its project."""
        from openstack import exceptions as sdk_exc

        conn = conn or self.conn
        with cloud_errors('Finding flavor %s' % name):
            try:
                # is_public=none: private flavors too (the admin view;
                # Nova ignores it for others).
                return conn.compute.find_flavor(
                    name, ignore_missing=False, is_public='none')
            except sdk_exc.NotFoundException:
                return None

    def _create_flavor(self, name, flavor):
        with cloud_errors('Creating flavor %s' % name):
            created = self.conn.compute.create_flavor(
                name=name, vcpus=int(flavor['vcpus']),
                ram=int(flavor['ram_mb']),
                disk=int(flavor.get('disk_gb') or 0), is_public=False,
                description='nova-shadow shadow size')
        try:
            with cloud_errors('Setting up flavor %s' % name):
                project = self._project()
                if project:
                    self.conn.compute.flavor_add_tenant_access(created,
                                                               project)
                specs = flavor.get('extra_specs') or {}
                if specs:
                    self.conn.compute.create_flavor_extra_specs(
                        created, dict(specs))
        except base.CloudError:
            with cloud_errors('Deleting half-made flavor %s' % name):
                self.conn.compute.delete_flavor(created,
                                                ignore_missing=True)
            raise
        LOG.info('Created private flavor %s (%s) for shadows', name,
                 created.id)
        return created

    def image_for(self, request):
        """The image id a shadow of ``request`` boots from."""
        requested = request.get('image_id')
        configured = self.opts.image
        if configured and not (self.opts.prefer_requested_image
                               and requested):
            image = configured
        else:
            image = requested or configured
        if not image:
            raise base.CloudError('no image for shadows: the request names '
                                  'none and [openstack] image is unset')
        if _UUID.match(image):
            return image
        with cloud_errors('Finding image %s' % image):
            return self.conn.image.find_image(image,
                                              ignore_missing=False).id

    def networks(self):
        """The ``networks`` argument of server create."""
        network = self.opts.network
        if not network or network == 'none':
            return 'none'
        if network == 'auto':
            return 'auto'
        if _UUID.match(network):
            return [{'uuid': network}]
        with cloud_errors('Finding network %s' % network):
            found = self.conn.network.find_network(network,
                                                   ignore_missing=False)
        return [{'uuid': found.id}]

    def config_drive(self, networks):
        """Whether shadows attached to ``networks`` get a config drive
        (``[openstack] config_drive``)."""
        choice = self.opts.config_drive
        if choice == 'auto':
            return networks == 'none'
        return choice == 'true'

    def _pin_by_host(self):
        method = self.opts.pin_method
        if method != 'auto':
            return method == 'host'
        if self._host_param is None:
            from openstack import utils as sdk_utils

            with cloud_errors('Reading the compute API version'):
                self._host_param = sdk_utils.supports_microversion(
                    self.conn.compute, HOST_PARAM_MICROVERSION)
            if not self._host_param:
                LOG.info('The compute API lacks microversion %s: pinning '
                         'shadows through availability zones',
                         HOST_PARAM_MICROVERSION)
        return self._host_param

    def _pin(self, host):
        """Server create arguments that put the server on ``host``."""
        if self._pin_by_host():
            return {'host': host}
        if host not in self._zones:
            self.list_hosts()
        return {'availability_zone': '%s:%s'
                % (self._zones.get(host) or 'nova', host)}

    # -- shadows ----------------------------------------------------------
    def boot_shadows(self, evaluation_id, request, hosts, profile):
        names = [_host_name(h) for h in hosts]
        flavor = dict(request.get('flavor') or {})
        try:
            flavor_id = self.flavor_for(flavor)
            image_id = self.image_for(request)
            networks = self.networks()
            self._pin_by_host()
        except base.CloudError as e:
            LOG.error('Evaluation %s: no shadow can boot: %s',
                      evaluation_id, e)
            return []
        except Exception:
            LOG.exception('Evaluation %s: no shadow can boot',
                          evaluation_id)
            return []
        spec = {'flavor_id': flavor_id, 'image_id': image_id,
                'networks': networks, 'flavor': flavor,
                'config_drive': self.config_drive(networks)}
        workers = max(1, min(self.opts.boot_concurrency, len(names)))
        with concurrent.futures.ThreadPoolExecutor(
                max_workers=workers,
                thread_name_prefix='shadow-boot') as pool:
            booted = list(pool.map(
                lambda host: self._boot_one(evaluation_id, host, profile,
                                            spec), names))
        shadows = [s for s in booted if s is not None]
        if not shadows:
            # Look the flavor up again next time (it may have been
            # deleted behind the service's back).
            with self._flavor_lock:
                self._flavors.clear()
        LOG.info('Evaluation %s: %d of %d shadows booting (%s)',
                 evaluation_id, len(shadows), len(names),
                 ', '.join(s.host for s in shadows) or 'none')
        return shadows

    def _boot_one(self, evaluation_id, host, profile, spec):
        """One shadow on ``host``, or None (logged) if it cannot boot."""
        if not self._slots.take(host):
            LOG.warning('Evaluation %s: %s already runs %d shadows; it '
                        'stays unmeasured', evaluation_id, host,
                        self.opts.max_shadows_per_host)
            return None
        expires_wall = time.time() + self.lifetime_s
        token, grant = self.grants.issue(evaluation_id, host, profile.name,
                                         expires_wall)
        name = ('nova-shadow-%s-%s' % (evaluation_id[:8], host))[:200]
        name = '%s-%s' % (name, uuid.uuid4().hex[:6])
        with self._lock:
            self._booting_names.add(name)
        try:
            server = self._create_server(evaluation_id, host, profile,
                                         spec, name, token, expires_wall)
            if not (isinstance(server.id, str) and server.id):
                raise base.CloudError('Creating the shadow on %s: the cloud '
                                      'answered without a server id' % host,
                                      host=host)
        except Exception as e:
            self.grants.revoke(grant)
            self._slots.give_back(host)
            # The server may exist anyway (a create that failed after the
            # cloud made it, an answer without an id): by its name.
            self._delete_by_name(name)
            with self._lock:
                self._booting_names.discard(name)
            if isinstance(e, base.CloudError):
                LOG.warning('Evaluation %s: no shadow on %s: %s',
                            evaluation_id, host, e)
            else:
                LOG.exception('Evaluation %s: no shadow on %s',
                              evaluation_id, host)
            return None
        shadow = None
        try:
            grant.shadow_id = server.id
            shadow = base.Shadow(
                shadow_id=server.id, host=host, evaluation_id=evaluation_id,
                created_at=self.now(), flavor=dict(spec['flavor']),
                status=server.status or 'BUILD',
                expires_at=expires_wall - self.opts.sample_lag)
        finally:
            # Tracked by its id before its name stops marking it as
            # booting: the garbage collector always finds it as one or
            # the other.
            with self._lock:
                if shadow is not None:
                    self._tracked[server.id] = _Tracked(shadow, grant)
                self._booting_names.discard(name)
        return shadow

    def _create_server(self, evaluation_id, host, profile, spec, name,
                       token, expires_wall):
        tags = {'evaluation': evaluation_id, 'host': host,
                'profile': profile.name}
        try:
            user_data = userdata.encoded_user_data(
                profile, tags, collector_url=self.collector_url,
                token=token if self.collector_url else None,
                console=self.opts.console_samples,
                preinstalled=self.opts.loadgen_preinstalled)
        except ValueError as e:
            raise base.CloudError('user-data: %s' % e, host=host) from None
        with cloud_errors('Creating the shadow on %s' % host, host=host):
            return self.conn.compute.create_server(
                name=name, flavor_id=spec['flavor_id'],
                image_id=spec['image_id'], networks=spec['networks'],
                user_data=user_data,
                **({'config_drive': True} if spec['config_drive'] else {}),
                tags=[SHADOW_TAG, EVALUATION_TAG % evaluation_id],
                metadata={META_EVALUATION: evaluation_id,
                          META_SERVICE: self.service_id[:255],
                          META_HOST: host[:255],
                          META_EXPIRES: '%.0f' % expires_wall},
                **self._pin(host))

    def _delete_by_name(self, name):
        """Delete the servers called ``name`` (a shadow whose create did
        not say it succeeded), if any; failures are left to the garbage
        collector."""
        try:
            with cloud_errors('Deleting the half-made shadow %s' % name):
                for server in self.conn.compute.servers(
                        name='^%s$' % name, tags=SHADOW_TAG):
                    if (server.name == name and isinstance(server.id, str)
                            and server.id):
                        self.conn.compute.delete_server(server.id,
                                                        ignore_missing=True)
                        self._deletion_asked(server.id)
        except base.CloudError as e:
            LOG.warning('%s; the garbage collector deletes it later', e)

    def _list_servers(self, evaluation_ids=None):
        """Shadow servers (one list call): of one evaluation when
        ``evaluation_ids`` holds one id, else every shadow."""
        ids = set(evaluation_ids or ())
        tag = (EVALUATION_TAG % ids.pop()) if len(ids) == 1 else SHADOW_TAG
        with cloud_errors('Listing shadows'):
            servers = list(self.conn.compute.servers(details=True, tags=tag))
            # A server without an id cannot be followed nor deleted.
            return [s for s in servers if isinstance(s.id, str) and s.id]

    honours_cancel = True

    def wait_until_active(self, shadows, timeout_s, cancelled=None):
        """Poll (one list call every ``poll_interval``) until every shadow
        is ACTIVE on its host, gone, or in ERROR, ``timeout_s`` passed,
        or ``cancelled()`` is true; returns the active ones."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        pending = {s.shadow_id: s for s in shadows}
        active = set()
        evaluations = {s.evaluation_id for s in shadows}
        while pending:
            try:
                servers = {srv.id: srv for srv in
                           self._list_servers(evaluations)}
            except base.CloudError as e:
                LOG.warning('Waiting for shadows: %s', e)
                servers = None
            if servers is not None:
                for shadow_id, shadow in list(pending.items()):
                    if self._settled(shadow, servers.get(shadow_id)):
                        del pending[shadow_id]
                        if shadow.status == 'ACTIVE':
                            active.add(shadow_id)
            left = deadline - time.monotonic()
            if not pending or left <= 0:
                break
            if cancelled is not None and cancelled():
                LOG.info('Evaluation %s cancelled while %d of its shadows '
                         'were coming up', ', '.join(sorted(evaluations)),
                         len(pending))
                return [s for s in shadows if s.shadow_id in active]
            time.sleep(min(self.opts.poll_interval, left))
        for shadow in pending.values():
            LOG.warning('Evaluation %s: the shadow on %s is not active '
                        'after %.1fs', shadow.evaluation_id, shadow.host,
                        timeout_s)
        return [s for s in shadows if s.shadow_id in active]

    def _settled(self, shadow, server):
        """Update ``shadow`` from ``server``; True once it is ACTIVE on
        the right host or can no longer be."""
        if server is None:
            LOG.warning('Evaluation %s: the shadow on %s disappeared',
                        shadow.evaluation_id, shadow.host)
            shadow.status = 'DELETED'
            return True
        shadow.status = server.status
        if server.status == 'ERROR':
            fault = server.fault or {}
            LOG.warning('Evaluation %s: the shadow on %s failed: %s',
                        shadow.evaluation_id, shadow.host,
                        fault.get('message') or 'no fault recorded')
            return True
        if server.status != 'ACTIVE':
            return False
        if server.compute_host and server.compute_host != shadow.host:
            LOG.warning('Evaluation %s: the shadow for %s landed on %s',
                        shadow.evaluation_id, shadow.host,
                        server.compute_host)
            shadow.status = 'MISPLACED'
            return True
        with self._lock:
            tracked = self._tracked.get(shadow.shadow_id)
            if tracked is not None:
                tracked.active = True
        return True

    def delete_shadows(self, shadows):
        """Delete ``shadows`` and wait (up to ``delete_timeout``) until the
        servers are gone and Placement holds no allocation for them.

        A shadow Nova keeps SOFT_DELETED (a deferred delete: ``[DEFAULT]
        reclaim_instance_interval`` above 0) is force-deleted, so that it
        frees its host and quota now rather than when Nova reclaims it.

        Raises CloudError (after trying every shadow) naming those that
        are still there; the garbage collector retries them.  A
        ``forceDelete`` Nova refuses is not waited for: the error says
        so at once, with what lets the driver force-delete.
        """
        shadows = list(shadows)
        if not shadows:
            return
        deadline = time.monotonic() + self.opts.delete_timeout
        ids = {s.shadow_id for s in shadows}
        with self._lock:
            self._deleting |= ids
        try:
            self._delete(shadows, deadline)
        finally:
            with self._lock:
                self._deleting -= ids

    def _delete(self, shadows, deadline):
        failed = {}
        for shadow in shadows:
            self._forget(shadow)
            if shadow.status == SOFT_DELETED_STATUS:
                # Deleted already: _wait_gone force-deletes it (a second
                # DELETE would only soft-delete it again).
                self._deletion_asked(shadow.shadow_id)
                continue
            try:
                with cloud_errors('Deleting shadow %s' % shadow.shadow_id,
                                  host=shadow.host):
                    self.conn.compute.delete_server(shadow.shadow_id,
                                                    ignore_missing=True)
                self._deletion_asked(shadow.shadow_id)
            except base.CloudError as e:
                failed[shadow.shadow_id] = str(e)
        remaining, refused = self._wait_gone(
            [s for s in shadows if s.shadow_id not in failed], deadline)
        remaining |= set(failed)
        problems = []
        if remaining:
            problems.append('shadows not gone after %.0fs: %s'
                            % (self.opts.delete_timeout,
                               ', '.join(sorted(remaining))))
        if refused:
            problems.append(_kept_soft_deleted(refused))
        if problems:
            raise base.CloudError('; '.join(problems),
                                  retryable=bool(remaining))

    def _forget(self, shadow):
        with self._lock:
            tracked = self._tracked.pop(shadow.shadow_id, None)
        if tracked is not None:
            self.grants.revoke(tracked.grant)
            self._slots.give_back(tracked.shadow.host)
        self.intake.forget(shadow.shadow_id)

    def _wait_gone(self, shadows, deadline):
        """``(ids, refused)``: the ids of ``shadows`` still there (server
        or allocation) at ``deadline``, and ``{id: CloudError}`` of those
        Nova keeps SOFT_DELETED and refused to force-delete (not waited
        for: they stay until Nova reclaims them).

        One server list every ``poll_interval``; a shadow it no longer
        shows is looked up by id once (Nova's list hides SOFT_DELETED
        servers), and force-deleted if Nova keeps it SOFT_DELETED.
        """
        waiting = {s.shadow_id for s in shadows}
        forced = set()
        refused = {}
        while waiting:
            try:
                listed = {srv.id for srv in self._list_servers()}
            except base.CloudError as e:
                LOG.warning('Waiting for deleted shadows: %s', e)
                listed = waiting
            for server_id in sorted(waiting - listed):
                try:
                    server = self._held(server_id)
                except base.CloudError as e:
                    LOG.warning('Waiting for deleted shadows: %s', e)
                    continue
                if server is None:
                    waiting.discard(server_id)
                    continue
                if server_id in forced or not _kept(server):
                    continue
                try:
                    self._force_delete(server_id)
                    forced.add(server_id)
                except base.CloudError as e:
                    if e.retryable:
                        LOG.warning('Waiting for deleted shadows: %s', e)
                        continue
                    refused[server_id] = e
                    waiting.discard(server_id)
                    self._force_refused(server_id)
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(self.opts.poll_interval)
        allocated = {s.shadow_id for s in shadows} - waiting - set(refused)
        self._deletions_done(allocated)
        while allocated and time.monotonic() < deadline:
            allocated = {i for i in allocated if self._allocated(i)}
            if allocated:
                time.sleep(self.opts.poll_interval)
        return waiting | allocated, refused

    def _held(self, server_id, noun='shadow'):
        """The server ``server_id`` (a ``noun``), shown by id (Nova shows
        one it keeps SOFT_DELETED, which its list hides), or None once it
        is gone."""
        from openstack import exceptions as sdk_exc

        with cloud_errors('Looking up %s %s' % (noun, server_id)):
            try:
                return self.conn.compute.get_server(server_id)
            except sdk_exc.NotFoundException:
                return None

    def _force_delete(self, server_id):
        """Have Nova delete ``server_id``, which it keeps SOFT_DELETED, now
        rather than when ``reclaim_instance_interval`` has passed
        (``forceDelete``; one already gone is fine)."""
        _call_or_explain(
            'Force-deleting shadow %s' % server_id,
            lambda: self.conn.compute.delete_server(server_id, force=True))
        self._force_asked(server_id)
        LOG.debug('Shadow %s was kept SOFT_DELETED by Nova (deferred '
                  'delete): force-deleted it', server_id)

    def _force_asked(self, server_id):
        """Remember that ``server_id`` was force-deleted now (or first
        seen being force-deleted): the garbage collector leaves it for
        ``deletion_grace_s``."""
        with self._lock:
            _remember_now(self._forced, server_id, self._repeat_warned)

    def _since_forced(self, server_id):
        """Seconds since ``server_id`` was force-deleted (or first seen
        being force-deleted), or None."""
        with self._lock:
            since = self._forced.get(server_id)
        return None if since is None else time.monotonic() - since

    def _force_refused(self, server_id):
        """Remember that Nova refused to force-delete ``server_id`` now
        (the garbage collector asks again after ``deletion_grace_s``)."""
        with self._lock:
            _remember_now(self._force_refusals, server_id)

    def _allocated(self, consumer):
        """True while Placement holds allocations of ``consumer``; False
        when it holds none or cannot be asked (logged once)."""
        try:
            with cloud_errors('Reading allocations of %s' % consumer):
                response = self.conn.placement.get(
                    '/allocations/%s' % consumer)
                _raise_for_status(response)
                return bool(response.json().get('allocations'))
        except Exception as e:
            if not getattr(self, '_placement_warned', False):
                self._placement_warned = True
                LOG.warning('Cannot check Placement allocations of '
                            'deleted shadows (%s); relying on the servers '
                            'being gone', e)
            return False

    def list_shadows(self):
        """Every server tagged ``nova-shadow`` in the shadow project."""
        return [self._shadow_of(server)
                for server in self._list_servers()]

    def _shadow_of(self, server):
        metadata = server.metadata or {}
        try:
            expires_wall = float(metadata.get(META_EXPIRES))
        except (TypeError, ValueError):
            expires_wall = None
        return base.Shadow(
            shadow_id=server.id,
            host=server.compute_host or metadata.get(META_HOST),
            evaluation_id=metadata.get(META_EVALUATION),
            created_at=None, status=server.status,
            expires_at=(None if expires_wall is None
                        else expires_wall - self.opts.sample_lag))

    def garbage_shadows(self):
        """Shadows to delete now: this service's that it is not running
        (left behind), and anyone's that expired; not those whose
        deletion is under way, unless for ``deletion_grace_s`` already.
        Those Nova keeps SOFT_DELETED are among them (unless Nova
        refused to force-delete them less than ``deletion_grace_s``
        ago)."""
        return [shadow for shadow, _why, _again in self._garbage()]

    def _garbage(self):
        """:meth:`garbage_shadows` as ``(shadow, why, again)``: ``again``
        when its deletion is to be asked again without a wait
        (:meth:`_delete_again`): one Nova shows with task state
        ``deleting`` or ``soft-deleting`` past ``deletion_grace_s`` (that
        deletion never completes), or a force-delete of this driver's
        past it."""
        # What runs is read before and after the (slow) list calls: a
        # shadow whose boot completes during them is listed and tracked
        # by the time of the second look; one deleted during them was
        # tracked at the first.
        listed_at = time.monotonic()
        running, booting = self._running_shadows()
        servers = self._list_servers()
        servers += self._list_soft_deleted({s.id for s in servers})
        servers += self._held_deletions(listed_at,
                                        {s.id for s in servers})
        now_wall = time.time()
        running_after, booting_after = self._running_shadows()
        running |= running_after
        booting |= booting_after
        garbage = []
        for server in servers:
            if server.id in running or server.name in booting:
                continue
            metadata = server.metadata or {}
            shadow = self._shadow_of(server)
            mine = metadata.get(META_SERVICE) == self.service_id[:255]
            expired = (shadow.expires_at is None or
                       shadow.expires_at + self.opts.sample_lag < now_wall)
            if not (mine or expired):
                continue
            why = self._why_garbage(server, mine)
            if why is None:
                continue
            if _kept(server):
                again = self._since_forced(server.id) is not None
            else:
                # (Shown as being deleted: past deletion_grace_s, else
                # left.)
                again = server.task_state in DELETE_IGNORED_TASK_STATES
            garbage.append((shadow, why, again))
        return garbage

    def _why_garbage(self, server, mine):
        """Why the collector deletes ``server`` (this service's when
        ``mine``, else an expired one), or None when it leaves it."""
        if _kept(server):
            return self._why_kept_garbage(server)
        pending_s = self._deletion_pending(server)
        if pending_s is None:
            return ('left behind by this service' if mine else
                    'expired, booted by service %s'
                    % ((server.metadata or {}).get(META_SERVICE)
                       or 'unknown'))
        return self._past_the_grace(server, pending_s, 'deleted',
                                    'deletion')

    def _past_the_grace(self, server, under_way_s, being, what):
        """None, with a debug line, while ``server``'s deletion (``what``,
        under way for ``under_way_s``) is within ``deletion_grace_s``;
        then why the collector asks again."""
        if under_way_s < self.deletion_grace_s:
            LOG.debug('Shadow %s is being %s (for %.0fs: %s); leaving it '
                      'to finish', server.id, being, under_way_s,
                      _state(server))
            return None
        return ('its %s has not completed in %.0fs: %s'
                % (what, under_way_s, _state(server)))

    def _why_kept_garbage(self, server):
        """Why the collector force-deletes ``server``, which Nova keeps
        SOFT_DELETED, or None when it leaves it: Nova refused to
        force-delete it, or a force-delete is under way (task state
        ``deleting``, or asked by this driver), less than
        ``deletion_grace_s`` ago.  A force-delete under way longer than
        that is asked again (Nova takes one in any task state)."""
        refused_s = self._since_force_refused(server.id)
        if refused_s is not None and refused_s < self.deletion_grace_s:
            LOG.debug('Shadow %s stays SOFT_DELETED: Nova refused to '
                      'force-delete it %.0fs ago', server.id, refused_s)
            return None
        forced_s = self._since_forced(server.id)
        if forced_s is None and server.task_state == DELETING_TASK_STATE:
            # Someone's force-delete under way, first seen now.
            self._force_asked(server.id)
            forced_s = 0.0
        if forced_s is None:
            return ('deleted, but kept SOFT_DELETED by Nova until '
                    'reclaim_instance_interval passes')
        return self._past_the_grace(server, forced_s, 'force-deleted',
                                    'force-delete')

    def _list_soft_deleted(self, listed):
        """Shadows Nova keeps SOFT_DELETED (its default list hides them),
        but those in ``listed``: ``deleted`` with status SOFT_DELETED,
        which Nova lets admins list (for others it lists none).  Empty,
        with one warning, when the cloud refuses the list."""
        try:
            with cloud_errors('Listing SOFT_DELETED shadows'):
                servers = list(self.conn.compute.servers(
                    details=True, tags=SHADOW_TAG, deleted_only=True,
                    status=SOFT_DELETED_STATUS))
        except base.CloudError as e:
            if not self._soft_list_warned:
                self._soft_list_warned = True
                LOG.warning('%s; the garbage collector finds only the '
                            'SOFT_DELETED shadows this service deleted', e)
            return []
        return [s for s in servers
                if isinstance(s.id, str) and s.id and s.id not in listed
                and s.status == SOFT_DELETED_STATUS]

    def _held_deletions(self, listed_at, listed):
        """Servers of the deletions remembered since before ``listed_at``
        that are not in ``listed``, looked up by id: those Nova still
        holds (SOFT_DELETED, hidden from its list).  The deletions of
        those gone are forgotten.

        At most :attr:`held_lookups_per_pass` look-ups, the deletions
        looked up longest ago (or never) first; none of those the
        collector would leave anyway (Nova refused to force-delete them,
        or they were force-deleted, less than ``deletion_grace_s``
        ago)."""
        due = []
        for server_id in self._deletions_before(listed_at) - listed:
            waiting_s = min(
                (s for s in (self._since_force_refused(server_id),
                             self._since_forced(server_id))
                 if s is not None), default=None)
            if waiting_s is None or waiting_s >= self.deletion_grace_s:
                due.append(server_id)
        now = time.monotonic()
        with self._lock:
            due.sort(key=lambda i: (self._held_looked_up.get(i, -1.0), i))
            due = due[:max(0, self.held_lookups_per_pass)]
            for server_id in due:
                self._held_looked_up[server_id] = now
            for server_id in set(self._held_looked_up) - set(
                    self._deletions):
                del self._held_looked_up[server_id]
        gone = set()
        held = []
        for server_id in due:
            try:
                server = self._held(server_id)
            except base.CloudError as e:
                LOG.warning('Shadow garbage collection: %s', e)
                continue
            if server is None:
                gone.add(server_id)
            else:
                held.append(server)
        self._deletions_done(gone)
        return held

    def _deletion_asked(self, server_id):
        """Remember that Nova was asked to delete ``server_id`` now."""
        with self._lock:
            _remember_now(self._deletions, server_id, self._repeat_warned)

    def _deletion_pending(self, server):
        """Seconds since the deletion of ``server`` was asked (or first
        seen under way: a task state ``deleting`` or ``soft-deleting``, a
        status DELETED), or
        None when none is under way."""
        with self._lock:
            since = self._deletions.get(server.id)
        if since is None:
            if not (server.task_state in DELETE_IGNORED_TASK_STATES
                    or server.status == DELETED_STATUS):
                return None
            self._deletion_asked(server.id)
            return 0.0
        return time.monotonic() - since

    def _since_force_refused(self, server_id):
        """Seconds since Nova refused to force-delete ``server_id``, or
        None."""
        with self._lock:
            since = self._force_refusals.get(server_id)
        return None if since is None else time.monotonic() - since

    def _deletions_before(self, moment):
        """Ids of the deletions remembered since before ``moment``."""
        with self._lock:
            return {server_id for server_id, since in self._deletions.items()
                    if since < moment}

    def _deletions_done(self, server_ids):
        """Forget the deletions of ``server_ids`` (Nova holds them no
        more)."""
        with self._lock:
            for server_id in server_ids:
                self._deletions.pop(server_id, None)
                self._force_refusals.pop(server_id, None)
                self._forced.pop(server_id, None)
                self._repeat_warned.discard(server_id)
                self._held_looked_up.pop(server_id, None)

    def _running_shadows(self):
        """``(ids, names)``: the shadows this service runs or deletes, by
        server id, and those it is creating, by name."""
        with self._lock:
            return (set(self._tracked) | self._deleting,
                    set(self._booting_names))

    # -- console fallback ---------------------------------------------------
    def _poll_consoles(self, deadline):
        """Read the console log of active shadows that have sent nothing
        to the collector, at most every ``console_poll_interval``."""
        now = time.monotonic()
        with self._lock:
            due = [t for t in self._tracked.values()
                   if t.active and t.grant.last_seen is None
                   and t.next_console_poll <= now]
            for tracked in due:
                tracked.next_console_poll = (
                    now + self.opts.console_poll_interval)
        for tracked in due:
            if time.monotonic() >= deadline:
                break
            self.read_console(tracked)

    def read_console(self, tracked):
        """Write the samples in ``tracked``'s console log; returns how
        many were new."""
        shadow = tracked.shadow
        try:
            with cloud_errors('Reading the console of %s'
                              % shadow.shadow_id, host=shadow.host):
                output = self.conn.compute.get_server_console_output(
                    shadow.shadow_id, length=self.opts.console_lines)
            text = (output or {}).get('output') or ''
            accepted, _rejected = self.intake.accept_console(
                tracked.grant, text, time.time())
        except Exception as e:
            LOG.warning('Evaluation %s: console samples of the shadow on '
                        '%s: %s', shadow.evaluation_id, shadow.host, e)
            return 0
        return accepted

    # -- facts -------------------------------------------------------------
    def list_hosts(self):
        """Compute services: up (and not forced down), disabled, zone."""
        with cloud_errors('Listing compute services'):
            services = list(self.conn.compute.services(
                binary='nova-compute'))
        hosts = [base.HostInfo(
            host=svc.host,
            up=svc.state == 'up' and not svc.is_forced_down,
            disabled=svc.status == 'disabled',
            availability_zone=svc.availability_zone) for svc in services]
        self._zones.update({h.host: h.availability_zone for h in hosts})
        return hosts

    def _hypervisors(self):
        """Hypervisor details with their usage figures (microversion
        2.87, the last that has them): one call for every host."""
        with cloud_errors('Listing hypervisors'):
            response = self.conn.compute.get(
                '/os-hypervisors/detail',
                microversion=HYPERVISOR_STATS_MICROVERSION)
            _raise_for_status(response)
            return response.json().get('hypervisors') or []

    @staticmethod
    def _hardware_class(hypervisor):
        cpu_info = hypervisor.get('cpu_info')
        if isinstance(cpu_info, str):
            try:
                cpu_info = json.loads(cpu_info)
            except ValueError:
                cpu_info = None
        model = cpu_info.get('model') if isinstance(cpu_info, dict) else None
        return model or hypervisor.get('hypervisor_type')

    def host_facts(self, hosts, hosts_info=None):
        """What the hypervisors report (cores, memory, allocated vCPUs and
        RAM, instances, CPU model as the hardware class), overridden by
        the scheduler's own figures in ``hosts_info``."""
        names = [_host_name(h) for h in hosts]
        found = {name: {} for name in names}
        try:
            hypervisors = self._hypervisors()
        except base.CloudError as e:
            LOG.warning('Host facts from hypervisors unavailable: %s', e)
            hypervisors = []
        for hypervisor in hypervisors:
            host = (hypervisor.get('service') or {}).get('host')
            if host not in found:
                continue
            known = found[host]
            hardware = self._hardware_class(hypervisor)
            if hardware:
                known.setdefault(facts.HARDWARE_CLASS, hardware)
            for fact, key in ((facts.CORES, 'vcpus'),
                              (facts.MEMORY_MB, 'memory_mb'),
                              (facts.VCPUS_USED, 'vcpus_used'),
                              (facts.MEMORY_MB_USED, 'memory_mb_used'),
                              (facts.RUNNING_VMS, 'running_vms')):
                value = hypervisor.get(key)
                if isinstance(value, (int, float)):
                    # A host with several nodes (Ironic): sum them.
                    known[fact] = known.get(fact, 0) + value
            if facts.RUNNING_VMS in known:
                known[facts.NUM_INSTANCES] = known[facts.RUNNING_VMS]
        for entry in hosts_info or ():
            known = found.get(entry.get('host'))
            if known is not None:
                known.update(_scheduler_facts(entry))
        return {name: known for name, known in found.items() if known}

    # -- instance actions (the watcher) -----------------------------------
    def _server(self, instance_id):
        try:
            with cloud_errors('Looking up instance %s' % instance_id):
                return self.conn.compute.get_server(instance_id)
        except base.CloudError as e:
            if e.status == 404:
                # A sibling whose deletion the watcher follows: done.
                self._siblings_asked.done([instance_id])
            raise

    def get_instance(self, instance_id):
        return _instance(self._server(instance_id), extra_specs=True)

    def _flavor_id(self, flavor, conn=None, project_id=None):
        """The id of ``flavor`` (its name) as ``conn`` (of
        ``project_id``; the driver's own by default) finds it."""
        name = flavor.get('name') if isinstance(flavor, dict) else flavor
        if not name:
            raise base.CloudError('a flavor to resize to needs a name')
        found = self._find_flavor(name, conn)
        if found is None and conn is not None and conn is not self.conn:
            raise base.CloudError(
                'no flavor %s that project %s may use: Nova shows a '
                'project the public flavors and the private ones shared '
                'with it (openstack flavor set --project %s %s shares '
                'one)' % (name, project_id, project_id, name))
        if found is None:
            raise base.CloudError('no flavor %s' % name)
        return found.id

    def resize(self, instance_id, flavor):
        flavor_id = self._flavor_id(flavor)
        with cloud_errors('Resizing %s' % instance_id):
            self.conn.compute.resize_server(instance_id, flavor_id)

    def confirm_resize(self, instance_id):
        with cloud_errors('Confirming the resize of %s' % instance_id):
            self.conn.compute.confirm_server_resize(instance_id)

    def live_migrate(self, instance_id, host):
        with cloud_errors('Live-migrating %s to %s' % (instance_id, host),
                          host=host):
            self.conn.compute.live_migrate_server(
                instance_id, host=host, block_migration='auto')

    def _root_volume(self, server):
        """The Cinder volume ``server`` boots from: the one attached at
        its root device (the only one attached when Nova does not show
        the root device)."""
        with cloud_errors('Listing the volumes of %s' % server.id):
            attached = list(self.conn.compute.volume_attachments(server.id))
        root = _device(server.root_device_name)
        found = [a for a in attached if root and _device(a.device) == root]
        if not found and not root and len(attached) == 1:
            found = attached
        if not found:
            raise _NoRootVolume(
                'Nova shows no volume of %s at its root device %s '
                '(attached: %s)' % (
                    server.id, server.root_device_name or '(not shown)',
                    ', '.join('%s at %s' % (a.volume_id, a.device)
                              for a in attached) or 'none'))
        volume_id = found[0].volume_id
        with cloud_errors('Reading volume %s, the root disk of %s'
                          % (volume_id, server.id)):
            return self.conn.block_storage.get_volume(volume_id)

    def _sibling_volume(self, server):
        """``(block device mapping, None)`` that boots a sibling of
        ``server`` (booted from a volume) from a new volume of the image
        its root volume was made from, as large and of the same type,
        deleted with the sibling; ``(None, why not)`` when that volume
        was not made from an image.  CloudError when Nova or Cinder
        cannot say."""
        volume = self._root_volume(server)
        image_id = (volume.volume_image_metadata or {}).get('image_id')
        if not image_id:
            made_from = ('snapshot %s' % volume.snapshot_id
                         if volume.snapshot_id else
                         'volume %s' % volume.source_volume_id
                         if volume.source_volume_id else None)
            return None, base.no_sibling_image(volume.id, made_from)
        mapping = {'boot_index': 0, 'uuid': image_id,
                   'source_type': 'image', 'destination_type': 'volume',
                   'volume_size': volume.size,
                   'delete_on_termination': True}
        if volume.volume_type:
            if self._volume_type_param():
                mapping['volume_type'] = volume.volume_type
            else:
                LOG.info('The compute API lacks microversion %s: the '
                         'volume of a sibling of %s gets the default '
                         'volume type, not %s', VOLUME_TYPE_MICROVERSION,
                         server.id, volume.volume_type)
        return mapping, None

    def _volume_type_param(self):
        """Nova takes a block device mapping's ``volume_type``."""
        from openstack import utils as sdk_utils

        with cloud_errors('Reading the compute API version'):
            return sdk_utils.supports_microversion(
                self.conn.compute, VOLUME_TYPE_MICROVERSION)

    # -- the project a sibling is booted in --------------------------------
    def _sibling_connection(self, project_id):
        """The connection a sibling of a VM of ``project_id`` is booted
        with: the driver's own with ``[openstack] sibling_project =
        service`` or for a VM of the driver's project, else the same
        user's credentials scoped to ``project_id``
        (:meth:`_project_connection`)."""
        if self.opts.sibling_project == 'service':
            return self.conn
        if not project_id:
            raise base.CloudError('Nova does not say which project the VM '
                                  'is in: no project to boot its sibling in')
        if project_id == self._project():
            return self.conn
        if _application_credential(self.conn.session.auth):
            # Keystone answers such a request with its 401, which would
            # read as a missing role.
            raise base.CloudError(
                'the driver authenticates with an application credential, '
                'which Keystone keeps to the project it was created in '
                '(%s): it gives no token of project %s, the VM\'s project, '
                'where its sibling is booted, whatever roles the user '
                'holds there; give [openstack] a user\'s password (a user '
                'with the %s role in the projects whose VMs are scaled '
                'out), or set [openstack] sibling_project = service to '
                'boot siblings in the driver\'s own project instead'
                % (self._project(), project_id, SIBLING_ROLE))
        return self._project_connection(project_id)

    def _project_connection(self, project_id):
        """The driver's user's credentials scoped to ``project_id``,
        authenticated (Keystone gives the token only to a user with a
        role in the project), kept for the next sibling: at most
        :data:`MAX_PROJECT_CONNECTIONS` projects, the least recently used
        dropped first.  A kept one is authenticated again each time
        (keystoneauth answers with its token, asking Keystone only for
        one about to expire), so a role removed since is said as such.
        CloudError naming the project and the role to grant when
        Keystone refuses; for :data:`REFUSAL_MEMORY_S` after that, the
        same CloudError without asking Keystone again (one login per
        project, not one per VM, in a watcher run)."""
        refusal = self._remembered_refusal(project_id)
        if refusal is not None:
            raise base.CloudError(
                str(refusal), retryable=refusal.retryable,
                credentials_refused=refusal.credentials_refused)
        with self._project_conns_lock:
            conn = self._project_conns.get(project_id)
            if conn is not None:
                self._project_conns.move_to_end(project_id)
        if conn is not None:
            try:
                self._authenticate_in(conn, project_id)
            except base.CloudError:
                self._forget_project(project_id)
                raise
            return conn
        if self._scoped_from_conf:
            conn = connect(self.conf, project_id=project_id)
        else:
            with cloud_errors('Scoping the credentials to project %s'
                              % project_id):
                conn = self.conn.connect_as_project({'id': project_id})
        try:
            self._authenticate_in(conn, project_id)
        except base.CloudError:
            _close_all([conn])
            raise
        dropped = []
        with self._project_conns_lock:
            kept = self._project_conns.get(project_id)
            if kept is not None and kept is not conn:
                # Another thread scoped one meanwhile.
                dropped.append(kept)
            self._project_conns[project_id] = conn
            self._project_conns.move_to_end(project_id)
            while len(self._project_conns) > MAX_PROJECT_CONNECTIONS:
                dropped.append(self._project_conns.popitem(last=False)[1])
        _close_all(dropped)
        return conn

    def _forget_project(self, project_id):
        """Authenticate in ``project_id`` anew next time (Keystone may
        have revoked the role)."""
        with self._project_conns_lock:
            conn = self._project_conns.pop(project_id, None)
        if conn is not None:
            _close_all([conn])

    def _remembered_refusal(self, project_id):
        """The CloudError of Keystone's refusal of ``project_id`` when
        it is younger than :attr:`refusal_memory_s`, else None."""
        with self._project_conns_lock:
            refused = self._refused_projects.get(project_id)
        if refused is None:
            return None
        refused_at, refusal = refused
        if time.monotonic() - refused_at < self.refusal_memory_s:
            return refusal
        return None

    def _remember_refusal(self, project_id, refusal):
        """Remember ``refusal`` of ``project_id``; True the first time
        since the driver last authenticated there."""
        with self._project_conns_lock:
            first = project_id not in self._refused_projects
            self._refused_projects[project_id] = (time.monotonic(), refusal)
            self._refused_projects.move_to_end(project_id)
            while len(self._refused_projects) > MAX_REFUSED_PROJECTS:
                self._refused_projects.popitem(last=False)
        return first

    def _authenticate_in(self, conn, project_id):
        """Have Keystone scope ``conn`` to ``project_id`` now, so that a
        refusal is said before a boot, in words an operator can act on."""
        from keystoneauth1 import exceptions as ks_exc

        try:
            with cloud_errors('Authenticating in project %s' % project_id):
                try:
                    conn.session.get_token()
                    scoped = conn.session.get_project_id()
                except ks_exc.Unauthorized as e:
                    raise base.CloudError(self._no_role(project_id, e)) \
                        from None
            if scoped != project_id:
                raise base.CloudError(
                    'Keystone scoped the driver\'s credentials to project '
                    '%s, not to %s, the VM\'s project: credentials bound '
                    'to their own project (an application credential, a '
                    'trust) cannot boot siblings in a tenant\'s project; '
                    'use a user\'s password, or set [openstack] '
                    'sibling_project = service' % (scoped, project_id))
        except base.CloudError as e:
            if self._remember_refusal(project_id, e):
                LOG.warning('No sibling can be booted in project %s: %s',
                            project_id, e)
            raise
        with self._project_conns_lock:
            self._refused_projects.pop(project_id, None)

    def _no_role(self, project_id, exc):
        """Why Keystone refused a token of ``project_id`` (what it says
        itself hides the cause), and what grants one."""
        user = self._user_id() or '<the [openstack] user>'
        return ('the driver\'s user %s has no role in project %s, the '
                'VM\'s project, where its sibling is booted (Keystone '
                'refused a token of that project: %s); grant one with: '
                'openstack role add --user %s --project %s %s'
                % (user, project_id, _message(exc), user, project_id,
                   SIBLING_ROLE))

    def _refused_at_boot(self, project_id, error):
        """The CloudError of the token of ``project_id`` refused while
        booting a sibling (``error``: Nova's 401, or Keystone refusing
        a new token when keystoneauth asked for one after it), remembered
        as Keystone's refusals are (:meth:`_remember_refusal`): the
        project's other scale-outs are suppressed meanwhile rather than
        tried again."""
        self._forget_project(project_id)
        user = self._user_id() or '<the [openstack] user>'
        refusal = base.CloudError(
            'the token of project %s, the VM\'s project, where its sibling '
            'is booted, was refused (%s): the driver\'s user %s may have '
            'lost its role there since Keystone gave the token; check '
            'with: openstack role assignment list --user %s --project %s; '
            'grant one with: openstack role add --user %s --project %s %s'
            % (project_id, error, user, user, project_id, user, project_id,
               SIBLING_ROLE))
        if self._remember_refusal(project_id, refusal):
            LOG.warning('No sibling can be booted in project %s: %s',
                        project_id, refusal)
        return refusal

    def _user_id(self):
        """The driver's user's id, or None when Keystone does not say."""
        try:
            with cloud_errors('Finding the driver\'s user'):
                return self.conn.session.get_user_id()
        except base.CloudError:
            return None

    def why_no_sibling(self, instance):
        """Why no sibling of ``instance`` can be booted: the driver's user
        holds no role in its project; for a VM booted from a volume, its
        root volume gives no image, or that cannot be told (the VM or
        its root volume not found, forbidden to the driver, or the cloud
        not answering: :func:`_unread`).  None otherwise."""
        try:
            self._sibling_connection(instance.project_id)
        except base.CloudError as e:
            return str(e)
        if not instance.volume_backed:
            return None
        try:
            server = self._server(instance.instance_id)
        except base.CloudError as e:
            return _unread('the VM', e)
        try:
            _mapping, refusal = self._sibling_volume(server)
        except base.CloudError as e:
            return _unread('its root volume', e)
        return refusal

    def boot_sibling(self, instance_id, name=None, metadata=None):
        """A server like ``instance_id``: same image, flavor, networks,
        server group, zone and metadata (with ``metadata`` added), placed
        by Nova's scheduler, in the VM's project
        (:meth:`_sibling_connection`).  The VM's key pair only when the
        sibling is booted as the user who owns it (Nova keeps key pairs
        per user); otherwise the returned instance's ``notes`` say it
        was left out.  A server booted from a volume gets a sibling
        booted from a new volume of the image its root volume was made
        from (:meth:`_sibling_volume`)."""
        server = self._server(instance_id)
        instance = _instance(server, extra_specs=True)
        conn = self._sibling_connection(instance.project_id)
        kwargs = {}
        notes = []
        if instance.volume_backed:
            mapping, refusal = self._sibling_volume(server)
            if refusal:
                raise base.CloudError('%s: %s' % (instance_id, refusal))
            kwargs['block_device_mapping'] = [mapping]
        else:
            kwargs['image_id'] = instance.image_id
        wanted = dict(instance.metadata or {})
        wanted.update(metadata or {})
        with cloud_errors('Reading the ports of %s' % instance_id):
            ports = list(self.conn.compute.server_interfaces(instance_id))
        networks = ([{'uuid': p.net_id} for p in ports] if ports
                    else 'none')
        if instance.server_group:
            kwargs['scheduler_hints'] = {'group': instance.server_group}
        if server.availability_zone:
            kwargs['availability_zone'] = server.availability_zone
        try:
            if server.key_name:
                with cloud_errors('Finding the user siblings are booted '
                                  'as'):
                    booting_user = conn.session.get_user_id()
                if server.user_id and server.user_id == booting_user:
                    kwargs['key_name'] = server.key_name
                else:
                    notes.append(
                        'without the key pair %s: Nova keeps key pairs per '
                        'user, and it is user %s\'s, not %s\'s, whom the '
                        'sibling is booted as' % (
                            server.key_name, server.user_id, booting_user))
                    LOG.info('A sibling of %s boots %s', instance_id,
                             notes[-1])
            # As the project sees it: a private flavor is the project's
            # to use only when shared with it, whatever the driver's
            # own credentials see.
            flavor_id = self._flavor_id(instance.flavor, conn,
                                        instance.project_id)
            with cloud_errors('Booting a sibling of %s in project %s'
                              % (instance_id, instance.project_id)):
                sibling = conn.compute.create_server(
                    name=name or '%s-sibling-%s' % (server.name,
                                                    uuid.uuid4().hex[:6]),
                    flavor_id=flavor_id, networks=networks,
                    metadata=wanted, **kwargs)
        except base.CloudError as e:
            if e.credentials_refused and conn is not self.conn:
                raise self._refused_at_boot(instance.project_id, e) \
                    from None
            raise
        return base.Instance(
            instance_id=sibling.id, host=sibling.compute_host,
            flavor=instance.flavor, status=sibling.status,
            name=sibling.name, image_id=instance.image_id,
            metadata=wanted, server_group=instance.server_group,
            project_id=(self._project() if conn is self.conn
                        else instance.project_id),
            volume_backed=instance.volume_backed, notes=notes)

    def delete_instance(self, instance_id):
        """Delete ``instance_id`` (a sibling the watcher booted) as shadows
        are deleted; no error when it is gone already.

        On a cloud that defers deletes (Nova's ``reclaim_instance_interval``
        above 0) Nova answers the DELETE by soft-deleting the server
        (task state ``soft-deleting``), then keeps it SOFT_DELETED,
        holding its project's quota and its host, until the interval
        passes: the driver waits for that (one look-up every
        ``poll_interval``, ``delete_timeout`` at most) and force-deletes
        it.  Elsewhere the first look-up shows the deletion under way
        (task state ``deleting``) or done, and nothing is waited for.
        CloudError saying what the sibling holds and what frees it when
        Nova refuses the force-delete.

        The deletion is remembered until the sibling is seen gone (here,
        by :meth:`get_instance` or by :meth:`finish_deletions`).  Asked
        again (the watcher following the scale-in) of a sibling whose
        deletion is under way (task state ``deleting`` or
        ``soft-deleting``, which Nova shows for good when its compute
        host lost the request, ignoring further deletes), it only
        remembers it, from now if it did not already:
        :meth:`finish_deletions` deletes it again once that deletion has
        not completed in ``deletion_grace_s``."""
        server = self._held(instance_id, 'instance')
        if server is None:
            self._siblings_asked.done([instance_id])
            return
        if server.task_state in DELETE_IGNORED_TASK_STATES:
            if self._siblings_asked.since(instance_id) is None:
                # Under way before this driver looked (a restarted
                # watcher).
                self._siblings_asked.asked(instance_id)
            return
        if not _kept(server):
            with cloud_errors('Deleting %s' % instance_id):
                self.conn.compute.delete_server(instance_id,
                                                ignore_missing=True)
            self._siblings_asked.asked(instance_id)
            deadline = time.monotonic() + self.opts.delete_timeout
            while True:
                server = self._held(instance_id, 'instance')
                if (server is None or _kept(server)
                        or server.task_state == DELETING_TASK_STATE):
                    break
                if time.monotonic() >= deadline:
                    # Still soft-deleting: the watcher follows it, and
                    # deletes it again once it is SOFT_DELETED.
                    return
                time.sleep(self.opts.poll_interval)
        if server is None:
            self._siblings_asked.done([instance_id])
            return
        if not _kept(server) or server.task_state:
            return
        self._force_delete_sibling(server)
        self._siblings_asked.asked(instance_id)
        LOG.info('%s was kept SOFT_DELETED by Nova (deferred delete): '
                 'force-deleted it', instance_id)

    def _force_delete_sibling(self, server):
        """Force-delete the sibling ``server``, which Nova keeps
        SOFT_DELETED; CloudError saying what it holds and what frees it
        when Nova refuses."""
        instance_id = server.id
        _call_or_explain(
            'Force-deleting %s' % instance_id,
            lambda: self.conn.compute.delete_server(instance_id, force=True),
            lambda e: '%s stays SOFT_DELETED, %s until Nova reclaims it '
            '([DEFAULT] reclaim_instance_interval): Nova refused to '
            'force-delete it (%s); let the [openstack] user force-delete '
            'servers (policy %s; Nova\'s default allows project members '
            'and admins), or set reclaim_instance_interval = 0 in Nova'
            % (instance_id, _sibling_holds(server), e,
               FORCE_DELETE_POLICY))

    def finish_deletions(self):
        """Delete again the siblings whose deletion (:meth:`delete_instance`)
        has not completed in ``deletion_grace_s``, as the garbage
        collector does a shadow's (:meth:`_repeat_deletion`: its state
        reset first when Nova shows it being deleted, force-deleted when
        SOFT_DELETED, one warning), whether or not the watcher still
        follows the scale-in; forget those gone.  At most
        :attr:`held_lookups_per_pass` look-ups, the deletions asked
        longest ago first (one asked again goes last).  Returns how many
        were looked up."""
        now = time.monotonic()
        with self._lock:
            due = [instance_id for instance_id, since
                   in self._sibling_deletions.items()
                   if now - since >= self.deletion_grace_s]
            # (Pruned with the deletions remembered.)
            self._if_under_way &= set(self._sibling_deletions)
        due = due[:max(0, self.held_lookups_per_pass)]
        for instance_id in due:
            with self._lock:
                check = instance_id in self._if_under_way
                self._if_under_way.discard(instance_id)
            if check and not self._deletion_under_way(instance_id):
                continue
            self._repeat_deletion(self._siblings_asked, instance_id, None)
        return len(due)

    def _deletion_under_way(self, instance_id):
        """Whether Nova shows the sibling ``instance_id`` (handed by
        :meth:`resume_deletions` ``under_way_only``) being deleted or
        SOFT_DELETED; if not (gone, or not being deleted: Nova refused
        its deletion), it is forgotten.  True when it cannot be looked
        up (the repeat looks again)."""
        try:
            server = self._held(instance_id, 'instance')
        except base.CloudError:
            return True
        if server is not None and (
                _kept(server)
                or server.task_state in DELETE_IGNORED_TASK_STATES):
            return True
        if server is not None:
            LOG.info('Sibling %s is not being deleted (status %s): the '
                     'scale-in whose start failed left it as it was',
                     instance_id, server.status)
        self._siblings_asked.done([instance_id])
        return False

    def resume_deletions(self, instance_ids, under_way_only=False):
        """Remember the deletions of ``instance_ids`` (siblings) asked
        before this driver was built, from now: :meth:`finish_deletions`
        looks each up once ``deletion_grace_s`` has passed, forgets it if
        it is gone and deletes it again otherwise; with
        ``under_way_only``, forgets too one Nova shows neither being
        deleted nor SOFT_DELETED (it refused the deletion: the server is
        left as it is)."""
        for instance_id in instance_ids:
            if self._siblings_asked.since(instance_id) is None:
                self._siblings_asked.asked(instance_id)
                if under_way_only:
                    with self._lock:
                        self._if_under_way.add(instance_id)

    def list_instances(self, project_ids=None):
        """Every server of ``project_ids`` (all projects the credentials
        see when None), shadows left out, with their metadata: how the
        watcher finds the VMs opted in."""
        found = []
        with cloud_errors('Listing instances'):
            if project_ids:
                servers = []
                for project_id in project_ids:
                    servers.extend(self.conn.compute.servers(
                        details=True, all_projects=True,
                        project_id=project_id))
            else:
                servers = list(self.conn.compute.servers(
                    details=True, all_projects=True))
        for server in servers:
            if SHADOW_TAG in (server.tags or []):
                continue
            found.append(_instance(server))
        return found


class _NoRootVolume(base.CloudError):
    """Nova shows no volume at a server's root device."""


def _unread(what, error):
    """Why ``what`` (``'its root volume'``) could not be read, from the
    CloudError ``error`` (the cloud's own words in it): not found,
    forbidden to the driver's user, the cloud not answering (the next
    run asks again), or else unreadable."""
    if error.unreachable:
        return ('%s cannot be read now, the cloud did not answer '
                '(unreachable or timed out; the next run asks again): %s'
                % (what, error))
    if error.status == 404 or isinstance(error, _NoRootVolume):
        return '%s cannot be found: %s' % (what, error)
    if error.status == 403:
        return ('%s may not be read by the driver\'s user (forbidden by '
                'the cloud\'s policy): %s' % (what, error))
    return '%s cannot be read: %s' % (what, error)


def _device(name):
    """A device name without ``/dev/`` (``/dev/vda`` and ``vda`` name one
    device)."""
    name = (name or '').strip()
    return name[len('/dev/'):] if name.startswith('/dev/') else name


def _boot_source(server):
    """``(image_id, volume_backed)`` of ``server``: Nova shows the image a
    server booted from, or an empty string when it booted from a volume
    (``(None, None)`` when the answer has no ``image`` at all)."""
    image = server.image
    if image is None:
        return None, None
    if isinstance(image, dict):
        image_id = image.get('id')
    else:
        image_id = getattr(image, 'id', None)
    return image_id or None, not image_id


def _instance(server, extra_specs=False):
    """A :class:`~shadow_service.clouds.base.Instance` of an SDK server
    (with its flavor's extra specs when ``extra_specs``)."""
    flavor = server.flavor
    groups = server.server_groups or []
    image_id, volume_backed = _boot_source(server)
    wanted = {'name': getattr(flavor, 'original_name', None)
              or getattr(flavor, 'name', None),
              'vcpus': getattr(flavor, 'vcpus', None),
              'ram_mb': getattr(flavor, 'ram', None),
              'disk_gb': getattr(flavor, 'disk', None)}
    if extra_specs:
        wanted['extra_specs'] = dict(getattr(flavor, 'extra_specs', None)
                                     or {})
    return base.Instance(
        instance_id=server.id, host=server.compute_host, flavor=wanted,
        status=server.status, name=server.name, image_id=image_id,
        metadata=dict(server.metadata or {}),
        server_group=groups[0] if groups else None,
        project_id=server.project_id, volume_backed=volume_backed,
        deleting=server.task_state in DELETE_IGNORED_TASK_STATES)


def _scheduler_facts(entry):
    """Host facts from one host entry of the request (the scheduler's
    HostState as the weigher sent it)."""
    known = {}
    if isinstance(entry.get('vcpus'), (int, float)):
        known[facts.CORES] = entry['vcpus']
    if isinstance(entry.get('vcpus_used'), (int, float)):
        known[facts.VCPUS_USED] = entry['vcpus_used']
    total = entry.get('total_ram_mb')
    if isinstance(total, (int, float)):
        known[facts.MEMORY_MB] = total
        if isinstance(entry.get('free_ram_mb'), (int, float)):
            known[facts.MEMORY_MB_USED] = total - entry['free_ram_mb']
    if isinstance(entry.get('num_instances'), int):
        known[facts.NUM_INSTANCES] = entry['num_instances']
        known[facts.RUNNING_VMS] = entry['num_instances']
    return known
