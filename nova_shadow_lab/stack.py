"""The whole real path on one machine: the lab's Nova with the
ShadowWeigher, a ``shadow-service`` process with the ``openstack`` driver
and its sample collector, and real shadows in lab instances.

:class:`LabStack` starts, in this order,

1. a :class:`nova_shadow_lab.cloud.LabCloud` whose scheduler weighs with
   Nova's default weighers plus ``nova_shadow_filter.weigher.ShadowWeigher``
   (``[shadow_weigher] transport_url`` and ``topic`` point at the broker
   and a topic of this stack's own);
2. ``shadow-service`` as its own process (``python -m
   shadow_service.cmd.service``, its own session) with a config file the
   stack writes: ``[shadow] cloud_driver = openstack``, ``[openstack]
   cloud`` the lab's ``clouds.yaml`` cloud and ``network`` the lab's one
   network (so the driver starts the collector on 127.0.0.1 and the
   shadows post their samples to it), ``[collector] port = 0`` (the
   collector binds a free port itself and gives the shadows its URL:
   no port is chosen beforehand, which another process could take
   before the service binds it), ``[history] store = sqlite``;

and then boots VMs through the compute API with a ``shadow_profile``
hint: with the ``openstack`` command line when it is installed, else with
openstacksdk. The evaluation the scheduler asked for is read back from
the service's history (its record carries the instance's uuid).

Import this module before anything imports Nova (it imports
:mod:`nova_shadow_lab.cloud`).
"""

import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

# Before anything imports Nova (it chooses Nova's eventlet mode).
from nova_shadow_lab import cloud as lab_cloud

LOG = logging.getLogger(__name__)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TRANSPORT_URL = 'rabbit://guest:guest@127.0.0.1:5672/'
SHADOW_TAG = 'nova-shadow'
#: Nova's default weighers plus the ShadowWeigher (what the README asks
#: operators to configure).
WEIGHERS = ['nova.scheduler.weights.all_weighers',
            'nova_shadow_filter.weigher.ShadowWeigher']
UUID_LENGTH = 36
#: ``[shadow_weigher] deadline_margin``: seconds the scheduler waits
#: beyond the budget for the answer.
DEADLINE_MARGIN = 15.0

SERVICE_CONF = """\
[DEFAULT]
transport_url = %(transport_url)s
debug = %(debug)s

[shadow]
cloud_driver = openstack
topic = %(topic)s
sample_interval = %(sample_interval)s
min_run_time = %(min_run_time)s
max_budget = %(max_budget)s

[openstack]
cloud = %(cloud)s
image = %(image)s
network = %(network)s
service_id = %(service_id)s
poll_interval = 0.2
sample_lag = 2.0
cleanup_reserve = 8.0
gc_interval = 0
console_samples = %(console_samples)s

[collector]
host = 127.0.0.1
port = 0

[history]
store = sqlite
sqlite_path = %(history)s

[nova_notifications]
listen = false
"""


class LabStackError(RuntimeError):
    """The stack could not start or a step of it failed (says which)."""


def broker_reachable(url):
    """True when something listens at the broker URL's host and port."""
    from urllib import parse

    parsed = parse.urlparse(url.split(',')[0])
    try:
        with socket.create_connection((parsed.hostname or '127.0.0.1',
                                       parsed.port or 5672), timeout=2):
            return True
    except OSError:
        return False


def openstack_cli():
    """The path of the ``openstack`` command (python-openstackclient) next
    to this Python or on ``PATH``, or None."""
    beside = os.path.join(os.path.dirname(sys.executable), 'openstack')
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which('openstack')


class ServiceProcess:
    """``shadow-service`` in a session of its own, logging to a file."""

    def __init__(self, config_file, env, log_path):
        self.config_file = config_file
        self.env = env
        self.log_path = log_path
        self.process = None

    def start(self):
        log = open(self.log_path, 'ab')
        try:
            self.process = subprocess.Popen(
                [sys.executable, '-m', 'shadow_service.cmd.service',
                 '--config-file', self.config_file],
                cwd=REPO, env=self.env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent)
        finally:
            log.close()
        return self

    @property
    def pid(self):
        return self.process.pid

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def send_signal(self, sig):
        """Send ``sig`` to the service's process group."""
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        """Stop it (SIGKILL if ``sig`` did not within ``timeout``);
        returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                self.process.wait(10)
        return self.process.returncode

    def log_tail(self, max_bytes=4000):
        try:
            with open(self.log_path, 'rb') as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - max_bytes))
                return f.read().decode('utf-8', 'replace')
        except OSError:
            return ''


class LabStack:
    """Nova (lab computes, ShadowWeigher), shadow-service and its
    collector, started together.

    Parameters
    ----------
    config : str or dict
        the lab config (:mod:`nova_shadow_lab.config`).
    directory : str
        where ``clouds.yaml``, ``lab.json``, ``shadow-service.conf``, its
        log and its history go (created).
    transport_url : str
        the broker the weigher and the service share (default: RabbitMQ
        on 127.0.0.1:5672).
    budget : float
        ``[shadow_weigher] default_budget``: seconds the scheduler waits
        for a ranking when the request says nothing.
    min_run_time, sample_interval : float
        the service's ``[shadow]`` options: how long every shadow runs
        before confidence may stop an evaluation, and the sampling step.
    console_samples : bool
        the fallback of samples through the console log; off, every
        sample comes through the collector.
    deadline_margin : float
        ``[shadow_weigher] deadline_margin``: seconds the scheduler waits
        beyond the budget for the ranking.
    """

    def __init__(self, config, directory, transport_url=None, budget=40.0,
                 min_run_time=10.0, sample_interval=1.0,
                 console_samples=False, debug=False,
                 deadline_margin=DEADLINE_MARGIN):
        self.config = config
        self.directory = os.path.abspath(directory)
        self.transport_url = transport_url or DEFAULT_TRANSPORT_URL
        self.budget = float(budget)
        self.min_run_time = float(min_run_time)
        self.sample_interval = float(sample_interval)
        self.console_samples = bool(console_samples)
        self.debug = debug
        self.deadline_margin = float(deadline_margin)
        self.topic = 'shadow-lab-%s' % uuid.uuid4().hex[:12]
        self.service_id = 'lab-%s' % uuid.uuid4().hex[:8]
        self.cloud = None
        self.service = None
        self._api = None
        self._conn = None

    # -- start and stop ----------------------------------------------------

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        if not broker_reachable(self.transport_url):
            raise LabStackError(
                'no message broker at %s: the weigher and shadow-service '
                'talk over it (tools/install-services.sh starts RabbitMQ)'
                % _redact(self.transport_url))
        os.makedirs(self.directory, exist_ok=True)
        # Registers [shadow_weigher] on Nova's CONF before the lab sets it.
        from nova_shadow_filter import weigher  # noqa: F401

        self.cloud = lab_cloud.LabCloud(
            self.config, weight_classes=WEIGHERS, directory=self.directory,
            flags={'DEFAULT': {'reserved_host_memory_mb': 256},
                   'shadow_weigher': {
                       'transport_url': self.transport_url,
                       'topic': self.topic,
                       'default_budget': self.budget,
                       # The service deletes its shadows before it
                       # answers; on a busy machine that can take the lab
                       # seconds beyond the budget.
                       'deadline_margin': self.deadline_margin,
                       'max_budget': max(self.budget, 120.0)}})
        try:
            self.cloud.setUp()
        except Exception as exc:
            # The fixture has cleaned up after itself (a second clean-up
            # fails); raise what went wrong, not the fixture's wrapper of
            # it and its own SetupError.
            self.cloud = None
            raise _setup_cause(exc) from None
        self.config_file = os.path.join(self.directory,
                                        'shadow-service.conf')
        self.history_path = os.path.join(self.directory, 'history.sqlite')
        self.log_path = os.path.join(self.directory, 'shadow-service.log')
        self._write_service_conf()
        self.start_service()
        return self

    def _write_service_conf(self):
        from nova.tests import fixtures as nova_fixtures

        text = SERVICE_CONF % {
            'transport_url': self.transport_url,
            'debug': 'true' if self.debug else 'false',
            'topic': self.topic,
            'sample_interval': self.sample_interval,
            'min_run_time': self.min_run_time,
            'max_budget': max(self.budget, 120.0),
            'cloud': self.cloud.cloud_name,
            'image': self.cloud.image_id,
            'network': nova_fixtures.NeutronFixture.network_1['id'],
            'service_id': self.service_id,
            'console_samples': 'true' if self.console_samples else 'false',
            'history': self.history_path,
        }
        with open(self.config_file, 'w', encoding='utf-8') as f:
            f.write(text)

    def service_env(self):
        env = dict(os.environ)
        env['OS_CLIENT_CONFIG_FILE'] = self.cloud.clouds_yaml
        env['PYTHONPATH'] = os.pathsep.join(
            [REPO] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep)
                      if p])
        return env

    def start_service(self, timeout=120.0):
        """Start ``shadow-service`` and wait until it answers over RPC."""
        self.service = ServiceProcess(self.config_file, self.service_env(),
                                      self.log_path).start()
        self.wait_serving(timeout)
        return self.service

    def wait_serving(self, timeout=120.0):
        api = self.rpc()
        deadline = time.monotonic() + timeout
        while True:
            if not self.service.alive():
                raise LabStackError('shadow-service exited (%s); its log:\n%s'
                                    % (self.service.process.returncode,
                                       self.service.log_tail()))
            try:
                api.get_evaluation({}, str(uuid.uuid4()), timeout=2)
                return
            except Exception as e:
                if type(e).__name__.startswith('EvaluationNotFound'):
                    return
                if time.monotonic() > deadline:
                    raise LabStackError(
                        'shadow-service did not answer in %.0f s (%s: %s); '
                        'its log:\n%s' % (timeout, type(e).__name__, e,
                                          self.service.log_tail())) from None

    def stop(self):
        """Delete this stack's servers, stop the service and the lab.
        Returns the service's exit code (None if it never ran)."""
        rc = None
        try:
            if self.cloud is not None and self.cloud.compute_url:
                try:
                    self.delete_servers()
                except Exception:
                    LOG.exception('deleting the lab servers failed')
        finally:
            try:
                if self.service is not None:
                    rc = self.service.stop()
            finally:
                if self._api is not None:
                    self._api = None
                if self.cloud is not None:
                    self.cloud.cleanUp()
                    self.cloud = None
        return rc

    # -- clients -----------------------------------------------------------

    def rpc(self):
        """The service's RPC client (what ``nova-shadow evaluate --remote``
        uses)."""
        if self._api is None:
            from oslo_config import cfg

            from shadow_service import conf as shadow_conf
            from shadow_service import rpc
            from shadow_service import rpcapi

            conf = cfg.ConfigOpts()
            shadow_conf.register_opts(conf)
            rpc.register_opts(conf)
            conf([], project='nova-shadow')
            self._api = rpcapi.ShadowAPI(conf, topic=self.topic,
                                         transport_url=self.transport_url)
        return self._api

    def connection(self):
        if self._conn is None:
            self._conn = self.cloud.connect()
        return self._conn

    # -- what the stack does ------------------------------------------------

    def evaluate(self, profile, flavor_name, hosts=None, budget=None):
        """A pre-flight evaluation over RPC, as ``nova-shadow evaluate
        --remote --wait`` does; returns the finished state."""
        from nova_shadow_filter import request as request_lib

        flavor = self.flavor(flavor_name)
        request = request_lib.build_request(
            {'name': flavor_name, 'vcpus': flavor['vcpus'],
             'ram_mb': flavor['ram'], 'disk_gb': flavor['disk']}, profile,
            image_id=self.cloud.image_id, project_id=self.cloud.project_id)
        hosts = [{'host': h} for h in (hosts or self.cloud.hosts)]
        budget = self.budget if budget is None else float(budget)
        api = self.rpc()
        evaluation_id = api.start_evaluation({}, request, hosts, budget,
                                             timeout=30)
        deadline = time.monotonic() + budget + 60
        while True:
            state = api.get_evaluation({}, evaluation_id, timeout=30)
            if state['status'] not in ('pending', 'running'):
                return state
            if time.monotonic() > deadline:
                raise LabStackError('evaluation %s did not finish'
                                    % evaluation_id)
            time.sleep(0.5)

    def flavor(self, name):
        for flavor in self.cloud.api.get_flavors():
            if name in (flavor['name'], flavor['id']):
                return self.cloud.api.get_flavor(flavor['id'])
        raise LabStackError('no flavor %r (flavors: %s)' % (
            name, ', '.join(f['name'] for f in self.cloud.api.get_flavors())))

    def create_server(self, name, flavor_name, hints, user_data=None,
                      client='auto'):
        """POST a server with scheduler ``hints`` through the ``openstack``
        command (``client='cli'``), openstacksdk (``'sdk'``) or whichever
        exists (``'auto'``: the command when installed); does not wait.
        Returns ``(server id, client used)``."""
        if client == 'auto':
            client = 'cli' if openstack_cli() else 'sdk'
        if client == 'cli':
            return self._create_with_cli(name, flavor_name, hints,
                                         user_data), 'cli'
        conn = self.connection()
        flavor = self.flavor(flavor_name)
        attrs = {'name': name, 'image_id': self.cloud.image_id,
                 'flavor_id': flavor['id'], 'networks': 'none',
                 'scheduler_hints': dict(hints)}
        if user_data is not None:
            attrs['user_data'] = user_data
        server = conn.compute.create_server(**attrs)
        return server.id, 'sdk'

    def _create_with_cli(self, name, flavor_name, hints, user_data):
        command = [openstack_cli(), '--os-cloud', self.cloud.cloud_name,
                   '--os-compute-api-version', '2.latest',
                   'server', 'create', '--image', self.cloud.image_id,
                   '--flavor', flavor_name, '--nic', 'none',
                   '-f', 'json']
        for key, value in hints.items():
            command += ['--hint', '%s=%s' % (key, value)]
        if user_data is not None:
            path = os.path.join(self.directory, 'user-data-%s' % name)
            with open(path, 'w', encoding='utf-8') as f:
                f.write(user_data)
            command += ['--user-data', path]
        command.append(name)
        done = subprocess.run(command, env=self.service_env(),
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise LabStackError('%s failed (exit %d): %s' % (
                ' '.join(command[:6]) + ' ...', done.returncode,
                done.stderr.strip()[-2000:]))
        return json.loads(done.stdout)['id']

    def wait_active(self, server_id, timeout=240.0):
        """The server once ACTIVE; raises on ERROR or time-out."""
        deadline = time.monotonic() + timeout
        while True:
            server = self.cloud.api.get_server(server_id)
            if server['status'] == 'ACTIVE':
                return server
            if server['status'] == 'ERROR':
                raise LabStackError('server %s went to ERROR: %s' % (
                    server_id, server.get('fault')))
            if time.monotonic() > deadline:
                raise LabStackError('server %s not ACTIVE after %.0f s '
                                    '(status %s)' % (server_id, timeout,
                                                     server['status']))
            time.sleep(0.2)

    def boot(self, name, profile, flavor_name, budget=None, client='auto'):
        """Boot a VM with ``--hint shadow_profile=<profile>`` and wait for
        it; returns ``(server, client used, seconds to ACTIVE)``."""
        hints = {'shadow_profile': profile}
        if budget is not None:
            hints['shadow_budget'] = str(int(budget))
        started = time.monotonic()
        server_id, used = self.create_server(name, flavor_name, hints,
                                             client=client)
        server = self.wait_active(server_id)
        return server, used, time.monotonic() - started

    def evaluation_of(self, server_id):
        """The service's record of the evaluation the scheduler asked for
        when placing ``server_id`` (None if there is none)."""
        from shadow_service.history import sqlite

        store = sqlite.SQLiteStore(path=self.history_path)
        try:
            found = None
            for point in store.query_points('evaluation'):
                record = json.loads(point.fields.get('record') or '{}')
                request = record.get('request') or {}
                if request.get('instance_uuid') == server_id:
                    found = record
            return found
        finally:
            store.close()

    def shadow_samples(self, evaluation_id):
        """``{host: {metric: [values]}}`` the shadows of an evaluation
        sent, as stored."""
        from shadow_service.history import sqlite

        store = sqlite.SQLiteStore(path=self.history_path)
        try:
            points = store.query_points('shadow_sample',
                                        {'evaluation': evaluation_id})
        finally:
            store.close()
        found = {}
        for point in points:
            found.setdefault(point.tags.get('host'), {}).setdefault(
                point.tags.get('metric'), []).append(point.fields['value'])
        return found

    def shadows(self):
        """Shadow servers that exist now."""
        return self.cloud.api.get_servers(
            detail=True, search_opts={'tags': SHADOW_TAG})

    def delete_server(self, server_id):
        """Delete one server; one already gone is not an error."""
        from nova.tests.functional.api import client as api_client

        try:
            self.cloud.api.delete_server(server_id)
        except api_client.OpenStackApiNotFoundException:
            pass

    def delete_servers(self, timeout=120.0):
        """Delete every server of the lab and wait until they are gone."""
        for server in self.cloud.api.get_servers():
            self.delete_server(server['id'])
        deadline = time.monotonic() + timeout
        while self.cloud.api.get_servers():
            if time.monotonic() > deadline:
                raise LabStackError('servers still there after %.0f s'
                                    % timeout)
            time.sleep(0.2)

    def leftovers(self, keep=()):
        """What exists beyond the lab's hosts, tenants and the servers in
        ``keep``: ``{'shadows': [ids], 'instances': [uuids the lab runs],
        'cgroups': [dirs], 'processes': [pids]}`` (all empty when clean).
        """
        keep = set(keep)
        found = {'shadows': sorted(s['id'] for s in self.shadows()
                                   if s['id'] not in keep),
                 'instances': [], 'cgroups': [], 'processes': []}
        for _name, host in sorted(self.cloud.run.hosts.items()):
            found['instances'].extend(sorted(
                u for u in host.instances if u not in keep))
            for directory in host.group.dirs():
                if not os.path.exists(directory):
                    continue
                for child in sorted(os.listdir(directory)):
                    path = os.path.join(directory, child)
                    if (len(child) == UUID_LENGTH and child not in keep
                            and os.path.isdir(path)):
                        found['cgroups'].append(path)
                        found['processes'].extend(_pids_under(path))
        found['processes'] = sorted(set(found['processes']))
        return found


#: libc's prctl, looked up before any fork (the child only calls it).
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """In the child before exec: SIGTERM when the thread that started it
    dies, so that a killed stack leaves no shadow-service behind."""
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _setup_cause(exc):
    """The error that failed a fixture's ``setUp``: fixtures raise
    ``MultipleExceptions`` of it, the clean-up's errors and their own
    ``SetupError``."""
    if type(exc).__name__ == 'MultipleExceptions' and exc.args and \
            isinstance(exc.args[0], tuple) and len(exc.args[0]) == 3:
        return exc.args[0][1]
    return exc


def _pids_under(directory):
    pids = set()
    for root, _dirs, _files in os.walk(directory):
        try:
            with open(os.path.join(root, 'cgroup.procs')) as f:
                pids.update(int(p) for p in f.read().split())
        except OSError:
            continue
    return pids


def _redact(url):
    if '@' in url and '://' in url:
        scheme, rest = url.split('://', 1)
        return '%s://***@%s' % (scheme, rest.rsplit('@', 1)[1])
    return url
