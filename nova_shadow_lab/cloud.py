"""``LabCloud``: Nova in this process, with lab computes, reachable over HTTP.

A ``fixtures.Fixture`` (``with LabCloud(...) as cloud:`` in a script,
``self.useFixture(LabCloud(...))`` or a pytest fixture in tests) that
assembles the installed ``nova`` package's functional-test pieces: the
API and cell databases (SQLite files), fake RPC, Placement, fake Glance,
Neutron and Cinder, the conductor, the scheduler and one nova-compute per
host of the lab config, each with :class:`nova_shadow_lab.driver.LabDriver`.
No test case is needed and nothing is poisoned or mocked beyond what those
fixtures do themselves (stubbed Keystone, Glance, Neutron and Cinder);
the cell databases' lock is replaced by :class:`ReaderPreferringLock`.

It serves, each on a free 127.0.0.1 port:

- the compute API (``compute_url``, ``http://127.0.0.1:<port>/v2.1``),
- Placement (``placement_url``),
- the lab's own read-only JSON (``lab_url``: ``/hosts``, ``/hosts/<name>``,
  ``/servers/<uuid>``),

behind a middleware that adds the admin identity of the lab's project
when a request has none, and writes ``clouds.yaml`` (``auth_type: none``
plus endpoint overrides) so that another process can do
``openstack.connect(cloud='nova-shadow-lab')`` with
``OS_CLIENT_CONFIG_FILE=<cloud.clouds_yaml>``. ``lab.json`` next to it
holds the URLs, the image id, flavors and hosts.

Nova is configured through the global ``nova.conf.CONF``, so one LabCloud
runs per process at a time. Eventlet must stay unpatched: this module sets
``OS_NOVA_DISABLE_EVENTLET_PATCHING=True`` unless set, and calls
``nova.monkey_patch.patch()``, before importing Nova; import it before
anything else imports Nova.
"""

import os

os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', 'True')
from nova import monkey_patch  # noqa: E402

monkey_patch.patch()

import contextlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import fixtures  # noqa: E402
import yaml  # noqa: E402
from nova import conf as nova_conf  # noqa: E402
from nova import context  # noqa: E402
from nova import objects  # noqa: E402
from nova.api.openstack import wsgi_app  # noqa: E402
from nova.compute import api as compute_api  # noqa: E402
from nova.compute import rpcapi as compute_rpcapi  # noqa: E402
from nova.objects import base as objects_base  # noqa: E402
from nova.scheduler import utils as scheduler_utils  # noqa: E402
from nova.scheduler.client import report  # noqa: E402
from nova.tests import fixtures as nova_fixtures  # noqa: E402
from nova.tests.functional import fixtures as func_fixtures  # noqa: E402
from oslo_config import fixture as config_fixture  # noqa: E402
from oslo_utils.fixture import uuidsentinel  # noqa: E402
from placement import deploy as placement_deploy  # noqa: E402

from nova_shadow_lab import config as lab_config  # noqa: E402
from nova_shadow_lab import driver as lab_driver  # noqa: E402
from nova_shadow_lab import http as lab_http  # noqa: E402
from nova_shadow_lab import runtime  # noqa: E402
from nova_shadow_lab import tempdirs  # noqa: E402

LOG = logging.getLogger(__name__)
CONF = nova_conf.CONF
CLOUD_NAME = 'nova-shadow-lab'
PROJECT_ID = nova_fixtures.PROJECT_ID
IMAGE_ID = nova_fixtures.GlanceFixture.image1['id']
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              'etc', 'lab.yaml')


class ReaderPreferringLock:
    """The cell lock of Nova's ``CellDatabases`` fixture, without its
    deadlock under concurrent builds.

    The fixture's lock is writer-preferring: readers queue behind a waiting
    writer. Threads inside a cell read section take the per-database write
    lock of ``DatabaseWriteLock`` for SQLite writes, and a thread holding
    that database lock may ask for a read section (``get_context_manager``):
    with a writer waiting, that thread, the readers it blocks and the writer
    wait for each other (seen with a dozen concurrent boots). Here readers
    wait only while a writer *holds* the lock; the fixture's writers hold it
    just to swap the current cell, never across database work, so nothing
    waits in a cycle. Readers and writers are re-entrant per thread, as
    with fasteners' lock. A reader still holds its lock across its
    database work, so one that waits there for a writer's thread would
    hold it forever: a writer that has waited ``WRITER_PATIENCE_S`` for
    the readers takes the lock past them, with a warning.
    """

    #: Seconds a writer waits for the readers before it takes the lock
    #: past them (see :meth:`write_lock`).
    WRITER_PATIENCE_S = 30.0

    def __init__(self):
        self._cond = threading.Condition()
        self._readers = {}
        self._writer = None
        self._writer_depth = 0

    @contextlib.contextmanager
    def read_lock(self):
        me = threading.get_ident()
        with self._cond:
            while self._writer not in (None, me):
                self._cond.wait()
            self._readers[me] = self._readers.get(me, 0) + 1
        try:
            yield self
        finally:
            with self._cond:
                self._readers[me] -= 1
                if not self._readers[me]:
                    del self._readers[me]
                self._cond.notify_all()

    @contextlib.contextmanager
    def write_lock(self):
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                self._writer_depth += 1
            else:
                if me in self._readers:
                    raise RuntimeError('a reader cannot become a writer')
                give_up = time.monotonic() + self.WRITER_PATIENCE_S
                while self._writer is not None or (
                        self._readers and time.monotonic() < give_up):
                    self._cond.wait(1.0)
                if self._readers:
                    # A reader holds its lock across its cell's database
                    # work and may be waiting for this thread: the
                    # writers only swap which cell untargeted access
                    # reaches, so going past it ends the cycle.
                    LOG.warning('The cell lock\'s writer waited %.0f s for '
                                '%d reader(s); taking the lock past them',
                                self.WRITER_PATIENCE_S, len(self._readers))
                self._writer, self._writer_depth = me, 1
        try:
            yield self
        finally:
            with self._cond:
                self._writer_depth -= 1
                if not self._writer_depth:
                    self._writer = None
                self._cond.notify_all()


class LabCloud(fixtures.Fixture):
    """Nova with lab computes, in this process, served on localhost.

    Parameters
    ----------
    config : str or dict, optional
        a lab config file or mapping (:mod:`nova_shadow_lab.config`);
        default ``nova_shadow_lab/etc/lab.yaml``.
    weight_classes : list of str, optional
        ``[filter_scheduler] weight_classes`` (read when the scheduler
        starts); default: Nova's.
    flags : dict, optional
        extra nova.conf options, ``{group: {option: value}}`` with
        ``'DEFAULT'`` for the default group; applied before any service
        starts.
    serve : bool
        serve the APIs over HTTP and write ``clouds.yaml`` (default True).
    directory : str, optional
        where ``clouds.yaml``, ``lab.json`` and the effective lab config
        go (default: a temporary directory removed on clean-up; see
        :mod:`nova_shadow_lab.tempdirs`).
    cloud_name : str
        the cloud's name in ``clouds.yaml``.

    Attributes (after ``setUp``)
    ----------------------------
    compute_url, placement_url, lab_url, clouds_yaml, lab_json,
    project_id, image_id, hosts (names), computes ({host: Service}),
    api (an admin client of Nova's functional harness, microversion
    'latest'), placement (Nova's Placement test client), config.
    """

    def __init__(self, config=None, weight_classes=None, flags=None,
                 serve=True, directory=None, cloud_name=CLOUD_NAME):
        super().__init__()
        self._config_source = DEFAULT_CONFIG if config is None else config
        self.weight_classes = weight_classes
        self.extra_flags = flags or {}
        self.serve = serve
        self.directory = directory
        self.cloud_name = cloud_name
        self.project_id = PROJECT_ID
        self.image_id = IMAGE_ID
        self.computes = {}
        self.compute_url = self.placement_url = self.lab_url = None
        self.clouds_yaml = self.lab_json = None
        self._cell_mappings = {}
        self._host_mappings = {}

    # The fixtures taking a test case call these on it.
    def stub_out(self, old, new):
        self.useFixture(fixtures.MonkeyPatch(old, new))

    def flags(self, **kw):
        group = kw.pop('group', None)
        for key, value in kw.items():
            self._conf.config(group=group, **{key: value})

    def id(self):
        return 'nova-shadow-lab'

    # -- set-up --------------------------------------------------------------

    def _setUp(self):
        self.config = self._load_config()
        problems = runtime.environment_problems()
        if problems:
            raise runtime.LabUnavailable('; '.join(problems))
        self.hosts = self.config.host_names
        self._use_own_tempdir()
        if self.directory is None:
            self.directory = self.useFixture(fixtures.TempDir()).path
        os.makedirs(self.directory, exist_ok=True)
        config_path = self._write_config()

        # One lab run for the whole cloud: its reaper outlives this process.
        self.run = runtime.acquire(self.config.lab)
        self.addCleanup(runtime.release, self.run)

        self._setup_nova_globals()
        self._apply_flags(config_path)
        self.placement_fixture = self.useFixture(
            func_fixtures.PlacementFixture())
        self.placement = self.placement_fixture.api
        # Nova's report client finds Placement here without Keystone
        # (PlacementFixture intercepts that URL).
        self.flags(auth_type='none',
                   endpoint_override=self.placement_fixture.endpoint,
                   group='placement')
        self.useFixture(nova_fixtures.NeutronFixture(self))
        self.useFixture(nova_fixtures.CinderFixture(self))
        self.useFixture(nova_fixtures.GlanceFixture(self))
        self.useFixture(nova_fixtures.RealPolicyFixture())

        self.flags(transport_url=self._cell_mappings['cell1'].transport_url)
        self._start_service('conductor')
        self._start_service('scheduler')
        for host in self.hosts:
            self.start_compute(host)
        self.api_fixture = self.useFixture(nova_fixtures.OSAPIFixture(
            api_version='v2.1', use_project_id_in_urls=False,
            stub_keystone=True))
        self.api = self.api_fixture.admin_api
        self.api.microversion = 'latest'
        if self.serve:
            self._serve()
        LOG.info('lab cloud up: hosts %s, compute API %s', self.hosts,
                 self.compute_url)

    def _use_own_tempdir(self):
        """Point :mod:`tempfile` at a directory of this lab's own (Nova's
        databases, lock files and the default ``directory`` go there),
        after removing those that SIGKILLed labs left behind."""
        tempdirs.sweep_stale()
        own = tempdirs.make()
        self.addCleanup(shutil.rmtree, own, ignore_errors=True)
        self.useFixture(fixtures.MonkeyPatch('tempfile.tempdir', own))

    def _load_config(self):
        if isinstance(self._config_source, dict):
            self._config_data = lab_config.with_absolute_trace_paths(
                self._config_source, os.getcwd())
            return lab_config.parse_config(self._config_data)
        path = os.path.abspath(self._config_source)
        config = lab_config.load_config(path)
        with open(path, encoding='utf-8') as f:
            self._config_data = lab_config.with_absolute_trace_paths(
                yaml.safe_load(f), os.path.dirname(path))
        return config

    def _write_config(self):
        path = os.path.join(self.directory, 'lab.yaml')
        with open(path, 'w', encoding='utf-8') as f:
            yaml.safe_dump(self._config_data, f, sort_keys=False)
        lab_driver.forget_configs()
        self.addCleanup(lab_driver.forget_configs)
        return path

    def _setup_nova_globals(self):
        """What nova.test.TestCase.setUp does for the services we start
        (without its poisons, mocks and logging capture)."""
        self.useFixture(nova_fixtures.IsolatedExecutorFixture(self.id()))
        # Idle pool threads poll for work this often; at futurist's 1 s
        # every executor takes a second to shut down (Nova's tests use
        # 0.01 s, which costs CPU the lab's instances should have).
        self.useFixture(fixtures.MonkeyPatch(
            'futurist._thread.ThreadWorker.MAX_IDLE_FOR', 0.1))
        self._conf = self.useFixture(nova_fixtures.ConfFixture(CONF))
        self.useFixture(nova_fixtures.RPCFixture('nova.test'))
        self._conf.config(driver=['noop'],
                          group='oslo_messaging_notifications')
        objects.register_all()
        objects_base.NovaObject.indirection_api = None
        objects.Service.clear_min_version_cache()
        compute_api.CELLS = []
        context.reset_globals()
        self.useFixture(nova_fixtures.Database(database='api'))
        self._setup_cells()
        self.useFixture(nova_fixtures.DefaultFlavorsFixture())
        compute_rpcapi.reset_globals()
        wsgi_app.init_global_data.reset()
        wsgi_app.init_application.reset()
        report.PLACEMENTCLIENT = None
        self.useFixture(nova_fixtures.ComputeNodeIdFixture())
        scheduler_utils.reset_globals()
        lock_path = self.useFixture(fixtures.TempDir()).path
        self.useFixture(config_fixture.Config()).config(
            lock_path=lock_path, group='oslo_concurrency')

    def _setup_cells(self):
        cell_databases = nova_fixtures.CellDatabases()
        cell_databases._cell_lock = ReaderPreferringLock()
        ctxt = context.get_context()
        for name, uuid in (('cell0', objects.CellMapping.CELL0_UUID),
                           ('cell1', uuidsentinel.cell1)):
            mapping = objects.CellMapping(
                context=ctxt, uuid=uuid, name=name,
                transport_url='fake://nowhere/', database_connection=uuid)
            mapping.create()
            self._cell_mappings[name] = mapping
            cell_databases.add_cell_database(uuid,
                                             default=(name == 'cell1'))
        self.useFixture(cell_databases)

    def _apply_flags(self, config_path):
        self.flags(build_failure_weight_multiplier=0.0,
                   group='filter_scheduler')
        self.flags(api_paste_config=os.path.join(
            sys.prefix, 'etc', 'nova', 'api-paste.ini'), group='wsgi')
        self.flags(compute_driver=lab_driver.DRIVER_NAME)
        self.flags(config_file=config_path, group='nova_shadow_lab')
        # Wait for cleanup_host (the lab's kill and sweep) when a compute
        # stops; Nova's test default (0) does not wait.
        self.flags(manager_shutdown_timeout=10)
        # No quotas: shadows and test VMs come and go in one project.
        self.flags(instances=-1, cores=-1, ram=-1, group='quota')
        if self.weight_classes is not None:
            self.flags(weight_classes=list(self.weight_classes),
                       group='filter_scheduler')
        for group, options in self.extra_flags.items():
            for key, value in options.items():
                self.flags(group=None if group == 'DEFAULT' else group,
                           **{key: value})

    # -- services ------------------------------------------------------------

    def _start_service(self, name, host=None):
        if host is not None:
            self.useFixture(nova_fixtures.ConfPatcher(host=host))
        kwargs = {}
        cell = None
        if name == 'compute':
            kwargs['topic_alt'] = compute_rpcapi.RPC_TOPIC_ALT
            cell = self._cell_mappings['cell1']
        fixture = self.useFixture(
            nova_fixtures.ServiceFixture(name, host, cell=cell, **kwargs))
        return fixture.service

    def start_compute(self, host):
        """Start (or, after :meth:`stop_compute`, start again) the
        nova-compute of lab host ``host``.

        Raises RuntimeError when it is already running: a second one
        would run a second lab host of that name beside the first.
        """
        if host not in self.hosts:
            raise lab_config.LabConfigError(
                'hosts', 'no host named %r (hosts: %s)'
                % (host, ', '.join(self.hosts)), self.config.source)
        if host in self.computes:
            raise RuntimeError(
                'lab host %s: its nova-compute is already running; '
                'stop_compute(%r) first to start it again' % (host, host))
        service = self._start_service('compute', host=host)
        if host in self._host_mappings:
            self._sync_power_states(service)
        else:
            ctxt = context.get_admin_context()
            cell = self._cell_mappings['cell1']
            mapping = objects.HostMapping(context=ctxt, host=host,
                                          cell_mapping=cell)
            mapping.create()
            self._host_mappings[host] = mapping
            with context.target_cell(ctxt, cell) as cctxt:
                node = objects.ComputeNode.get_by_service_id(
                    context=cctxt, service_id=service.service_ref.id)
                node.mapped = 1
                node.save()
        self.computes[host] = service
        return service

    @staticmethod
    def _sync_power_states(service, timeout=30.0):
        """Nova's power-state sync, once, as a real compute runs it soon
        after it starts (periodic tasks do not run here): the servers of
        a restarted host, which comes back empty, are seen off and
        stopped (SHUTOFF shortly after; a start or hard reboot boots
        them afresh)."""
        manager = service.manager
        manager._sync_power_states(context.get_admin_context())
        deadline = time.monotonic() + timeout
        while True:
            with manager.syncs_in_progress() as syncs:
                if not syncs:
                    return
            if time.monotonic() > deadline:
                LOG.warning('power-state sync of %s not done within %.0f s',
                            service.host, timeout)
                return
            time.sleep(0.02)

    def stop_compute(self, host):
        """Stop ``host``'s nova-compute: its instances and tenants are
        killed and its cgroups removed (the driver's ``cleanup_host``)."""
        service = self.computes.pop(host)
        service.stop()
        return service

    def lab_host(self, host):
        """The running :class:`nova_shadow_lab.host.LabHost` of ``host``."""
        return self.run.hosts[host]

    # -- HTTP ----------------------------------------------------------------

    def _serve(self):
        compute_app = lab_http.IdentityMiddleware(self.api_fixture.app(),
                                                  self.project_id)
        placement_app = lab_http.IdentityMiddleware(
            placement_deploy.loadapp(self.placement_fixture.conf_fixture.conf),
            self.project_id)
        run = self.run
        servers = {
            'compute': lab_http.Server(compute_app, name='compute'),
            'placement': lab_http.Server(placement_app, name='placement'),
            'lab': lab_http.Server(lab_http.lab_app(lambda: dict(run.hosts)),
                                   name='lab'),
        }
        for server in servers.values():
            server.start()
            self.addCleanup(server.stop)
        self.compute_url = servers['compute'].url + '/v2.1'
        self.placement_url = servers['placement'].url
        self.lab_url = servers['lab'].url
        self.clouds_yaml = os.path.join(self.directory, 'clouds.yaml')
        with open(self.clouds_yaml, 'w', encoding='utf-8') as f:
            yaml.safe_dump(self.clouds_config(), f, sort_keys=False)
        self.lab_json = os.path.join(self.directory, 'lab.json')
        with open(self.lab_json, 'w', encoding='utf-8') as f:
            json.dump(self.description(), f, indent=1, sort_keys=True)

    def clouds_config(self):
        """The ``clouds.yaml`` content for this cloud (a dict)."""
        return {'clouds': {self.cloud_name: {
            'auth_type': 'none',
            'region_name': 'RegionOne',
            'compute_endpoint_override': self.compute_url,
            'placement_endpoint_override': self.placement_url,
        }}}

    def description(self):
        """What ``lab.json`` holds: where things are and what exists."""
        return {
            'cloud': self.cloud_name, 'clouds_yaml': self.clouds_yaml,
            'compute_url': self.compute_url,
            'placement_url': self.placement_url, 'lab_url': self.lab_url,
            'project_id': self.project_id, 'image_id': self.image_id,
            'flavors': {f['name']: f['id'] for f in self.api.get_flavors()},
            'hosts': list(self.hosts), 'run': self.run.name,
            'cgroup': self.run.group.relpath,
            'state_dir': self.run.state_dir,
            'reaper_pid': self.run.reaper_pid, 'pid': os.getpid(),
        }

    def connect(self):
        """An openstacksdk connection to this cloud over HTTP."""
        import openstack

        return openstack.connect(
            load_yaml_config=False, load_envvars=False,
            **self.clouds_config()['clouds'][self.cloud_name])

