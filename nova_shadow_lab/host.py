"""One emulated lab host: its cgroup share, instances and tenants.

``LabHost.start`` creates ``<run>/<host>`` in every cgroup hierarchy and
applies the host's share of this machine (CFS quota/period, cpu.shares,
cpuset, memory limit, pids limit, blkio throttles and weight where the
kernel and disk allow) and starts its background tenants. Instances live
in ``<run>/<host>/<uuid>``: cpu.shares 1024 per vCPU, an optional CFS
quota (``cpu_per_vcpu``), memory limited to the flavor (capped at the
host's), ``pids.max``. Tenants live in ``<run>/<host>/tenant-<name>``.
``LabHost.stop`` kills and removes all of it.

cgroup v1 applies blkio throttles to the group they are written to only,
not to its children, so each instance and tenant gets the host's blkio
throttles as its own limits (N busy instances may together move N times
the host's figure); CPU, memory and pids limits are hierarchical. A host
with a disk of its own (``share.disk``, :mod:`nova_shadow_lab.hostdisk`)
instead has its instances and tenants join the host's blkio group, so
the throttles on that disk are one budget for all of the host's I/O.

What could not be applied (for example blkio on a disk without a block
device) is logged and listed in :meth:`LabHost.status` under ``notes``.
"""

import contextlib
import json
import logging
import os
import shutil
import threading
import time

from nova_shadow_lab import cgroups
from nova_shadow_lab import hostdisk
from nova_shadow_lab import sandbox
from nova_shadow_lab import userdata

LOG = logging.getLogger(__name__)
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
GUEST_INIT = os.path.join(_PACKAGE_DIR, 'guest_init.py')
SYSTEM_PYTHON = '/usr/bin/python3'
# Where a rescue system sees the rescued guest's root.
RESCUE_MOUNT = '/mnt/guest'
# How long a pause may wait for every task of an instance to stop.
PAUSE_TIMEOUT_S = 10.0


class InstanceGone(LookupError):
    """The instance is not (or no longer) one of the host's."""


class InstanceNotRunning(RuntimeError):
    """The change needs the instance's guest running (a pause or
    suspend), and it is off."""


class LabInstance:
    """An instance's sandbox plus what the driver needs to report.

    ``lock`` orders the changes of its sandbox (power off and on, reboot,
    pause, the stop of a delete): each runs alone, in the order they take
    it.

    ``rescue`` is the sandbox of its rescue system while it is rescued
    (see :meth:`LabHost.rescue`), else None.
    """

    def __init__(self, uuid, vcpus, memory_mb, sandbox_):
        self.uuid = uuid
        self.vcpus = vcpus
        self.memory_mb = memory_mb
        self.sandbox = sandbox_
        self.created_at = time.time()
        self.powered_on = True
        self.paused = False
        # A pause that Nova calls a suspend.
        self.suspended = False
        self.rescue = None
        self.lock = threading.Lock()

    @property
    def directory(self):
        return self.sandbox.directory


def block_device(path):
    """``major:minor`` of the whole disk holding ``path``, or None."""
    dev = os.stat(path).st_dev
    major, minor = os.major(dev), os.minor(dev)
    if major == 0:
        return None
    sysdir = '/sys/dev/block/%d:%d' % (major, minor)
    if not os.path.exists(sysdir):
        return None
    if os.path.exists(os.path.join(sysdir, 'partition')):
        parent = os.path.dirname(os.path.realpath(sysdir))
        try:
            return cgroups.read_file(os.path.join(parent, 'dev')).strip()
        except OSError:
            return None
    return '%d:%d' % (major, minor)


def start_host(run, host_config, settings):
    """Start lab host ``host_config`` in ``run`` and track it there;
    returns the :class:`LabHost`. Raises RuntimeError, starting nothing,
    when a host of that name runs or is starting (one lab host per name:
    a second would share the first's cgroups and directory, and its
    failure would remove them under the first)."""
    run.claim_host(host_config.name)
    try:
        lab = LabHost(run, host_config, settings).start()
        run.add_host(lab)
    finally:
        run.release_claim(host_config.name)
    return lab


class LabHost:
    """A lab host's cgroups, instances and tenants for one compute."""

    def __init__(self, run, host_config, settings):
        self.run = run
        self.config = host_config
        self.settings = settings
        self.name = host_config.name
        self.group = run.group.child(host_config.name)
        self.directory = os.path.join(run.state_dir, host_config.name)
        self.instances = {}
        self.tenants = {}
        self.notes = []
        # Lifecycle (start, stop, instance starts); _tables guards the
        # instances and tenants maps, which readers copy (status, figures)
        # while another thread starts or stops them.
        self._lock = threading.RLock()
        self._tables = threading.Lock()
        self._stopped = False
        self._blkio_throttles = []
        self.disk_device = None
        self._disk_image = None

    def __repr__(self):
        return 'LabHost(%s)' % self.name

    @property
    def stopped(self):
        """True once :meth:`stop` began: no instance starts any more."""
        return self._stopped

    # -- share -------------------------------------------------------------

    def _note(self, message, *args):
        text = message % args
        LOG.warning('lab host %s: %s', self.name, text)
        self.notes.append(text)

    def _apply_share(self):
        share = self.config.share
        group = self.group
        if share.cpu is not None:
            group.write('cpu', 'cpu.cfs_period_us', share.cpu_period_us)
            group.write('cpu', 'cpu.cfs_quota_us',
                        int(round(share.cpu * share.cpu_period_us)))
        if share.cpu_shares is not None:
            group.write('cpu', 'cpu.shares', share.cpu_shares)
        if share.cpuset is not None:
            if group.has('cpuset'):
                group.write('cpuset', 'cpuset.cpus', share.cpuset)
            else:
                self._note('cpuset %s not applied: no cpuset hierarchy',
                           share.cpuset)
        if share.memory_mb is not None:
            group.write('memory', 'memory.limit_in_bytes',
                        share.memory_mb * 1024 * 1024)
        if share.pids_max is not None:
            group.write('pids', 'pids.max', share.pids_max)
        self._apply_blkio(share.blkio)

    def _apply_blkio(self, blkio):
        wanted = {k: v for k, v in vars(blkio).items() if v is not None}
        if not wanted:
            return
        if not self.group.has('blkio'):
            self._note('blkio %s not applied: no blkio hierarchy', wanted)
            return
        device = block_device(self.run.state_dir)
        weight = wanted.pop('weight', None)
        if weight is not None:
            for name in ('blkio.weight', 'blkio.bfq.weight'):
                if self.group.read('blkio', name) is not None:
                    self.group.write('blkio', name, weight)
                    break
            else:
                self._note('blkio weight %d not applied: the disk\'s I/O '
                           'scheduler has no weights (needs bfq)', weight)
        if not wanted:
            return
        if device is None:
            self._note('blkio throttles %s not applied: %s is not on a '
                       'block device', wanted, self.run.state_dir)
            return
        self._blkio_throttles = [
            ('blkio.throttle.%s_device' % key, '%s %d' % (device, value))
            for key, value in sorted(wanted.items())]
        self._throttle_io(self.group)

    def _throttle_io(self, group):
        # cgroup v1 blkio throttling is not hierarchical: a parent's
        # limits do not hold for its children, so each child gets them.
        for name, value in self._blkio_throttles:
            group.write('blkio', name, value)

    def _start_disk(self):
        """The host's own disk (``share.disk``) on its directory, its
        throttles on the host's blkio group."""
        disk = self.config.share.disk
        if disk.size_mb is None:
            return
        if self.group.joining('blkio', self.group) is None:
            raise RuntimeError(
                'lab host %s: share.disk needs a blkio hierarchy of its own '
                '(mounts: %s)' % (self.name, self.run.mounts))
        image = os.path.join(
            hostdisk.image_dir(self.run.prefix, self.run.name),
            '%s.img' % self.name)
        # create releases what it made when it fails.
        self.disk_device = hostdisk.create(image, self.directory,
                                           disk.size_mb)
        self._disk_image = image
        for key, value in sorted(disk.throttles.items()):
            self.group.write('blkio', 'blkio.throttle.%s_device' % key,
                             '%s %d' % (self.disk_device, value))
        LOG.info('lab host %s: own disk %s (%d MB in RAM), throttles %s',
                 self.name, self.disk_device, disk.size_mb, disk.throttles)

    def _stop_disk(self):
        if self._disk_image is None:
            return
        problems = hostdisk.release(self.directory, self._disk_image)
        if problems:
            LOG.warning('lab host %s: disk not released: %s', self.name,
                        '; '.join(problems))
        self._disk_image = self.disk_device = None

    def _child_group(self, name):
        """A group below the host's; with a disk of its own its processes
        join the host's blkio group (one I/O budget)."""
        group = self.group.child(name)
        if self.disk_device is not None:
            group = group.joining('blkio', self.group)
        return group

    # -- lifecycle -----------------------------------------------------------

    def start(self):
        """Create the host's cgroups and disk and start its tenants;
        returns self. When a step fails, what the earlier ones started
        is stopped (as :meth:`stop`) before the error is raised."""
        try:
            os.makedirs(self.directory, exist_ok=True)
            self.group.create()
            self._apply_share()
            self._start_disk()
            for tenant in self.config.tenants:
                self._start_tenant(tenant)
        except BaseException:
            LOG.error('lab host %s failed to start; stopping what it '
                      'started', self.name)
            try:
                self.stop()
            except Exception:
                LOG.exception('lab host %s: clean-up after a failed start '
                              'failed', self.name)
            raise
        LOG.info('lab host %s up: cgroup %s, share %s, %d tenant(s)',
                 self.name, self.group.relpath, self.config.share,
                 len(self.config.tenants))
        return self

    def stop(self):
        """Kill instances and tenants; remove the host's cgroups."""
        with self._lock:
            self._stopped = True
            for uuid in list(self.instances):
                self.stop_instance(uuid)
            for name in list(self.tenants):
                with self._tables:
                    box = self.tenants.pop(name)
                box.stop()
        survivors, left = cgroups.sweep(self.group)
        if survivors or left:
            LOG.warning('lab host %s: survivors %s, cgroups left %s',
                        self.name, sorted(survivors), left)
        self._stop_disk()
        LOG.info('lab host %s stopped', self.name)

    def _start_tenant(self, tenant):
        group = self._child_group('tenant-%s' % tenant.name)
        group.create()
        self._throttle_io(group)
        directory = os.path.join(self.directory, 'tenant-%s' % tenant.name)
        os.makedirs(directory, exist_ok=True)
        profile_path = os.path.join(directory, 'profile.json')
        with open(profile_path, 'w') as f:
            json.dump(tenant.profile, f)
        command = [SYSTEM_PYTHON, '/.lab/loadgen.pyz', 'run',
                   '/.lab/profile.json', '--sink', '/var/log/samples.jsonl',
                   '--workdir', '/var/tmp', '--tag', 'tenant=%s'
                   % tenant.name, '--tag', 'host=%s' % self.name,
                   '--summary-file', '/var/log/summary.json']
        box = sandbox.Sandbox(
            self.run, group, directory,
            hostname='%s-%s' % (self.name, tenant.name)[:63],
            command=command,
            binds=[(self.run.loadgen_pyz(), '/.lab/loadgen.pyz', False),
                   (profile_path, '/.lab/profile.json', False)],
            console_max_bytes=self.settings.console_max_bytes)
        box.start()
        with self._tables:
            self.tenants[tenant.name] = box

    # -- instances -----------------------------------------------------------

    def _instance_group(self, uuid, vcpus, memory_mb):
        group = self._child_group(uuid)
        group.create()
        group.write('cpu', 'cpu.shares', 1024 * max(1, vcpus))
        share = self.config.share
        if share.cpu_per_vcpu is not None:
            cpus = vcpus * share.cpu_per_vcpu
            if share.cpu is not None:
                cpus = min(cpus, share.cpu)
            period = share.cpu_period_us
            group.write('cpu', 'cpu.cfs_period_us', period)
            group.write('cpu', 'cpu.cfs_quota_us',
                        max(1000, int(round(cpus * period))))
        if self.settings.instance_memory_from_flavor and memory_mb:
            limit = memory_mb
            if share.memory_mb is not None:
                limit = min(limit, share.memory_mb)
            group.write('memory', 'memory.limit_in_bytes',
                        limit * 1024 * 1024)
        group.write('pids', 'pids.max', self.settings.instance_pids_max)
        self._throttle_io(group)
        return group

    def _guest_sandbox(self, directory, group, hostname, plan,
                       binds=()):
        """A sandbox running the lab's init on ``plan`` (written to
        ``directory``), not started."""
        os.makedirs(directory, exist_ok=True)
        plan_path = os.path.join(directory, 'plan.json')
        with open(plan_path, 'w') as f:
            json.dump(plan, f)
        init_log = os.path.join(directory, 'init.log')
        open(init_log, 'a').close()
        return sandbox.Sandbox(
            self.run, group, directory, hostname=hostname,
            command=[SYSTEM_PYTHON, '/.lab/init.py'],
            binds=[(GUEST_INIT, '/.lab/init.py', False),
                   (plan_path, '/.lab/plan.json', False),
                   (init_log, '/.lab/log', True)] + list(binds),
            console_max_bytes=self.settings.console_max_bytes)

    def _new_instance(self, uuid, hostname, vcpus, memory_mb, plan, group):
        """Track a new instance (not started); the caller holds
        ``_lock`` and has checked that the host runs and ``uuid`` is not
        one of its instances."""
        box = self._guest_sandbox(
            os.path.join(self.directory, uuid), group,
            hostname or uuid[:8], dict(plan, instance=uuid))
        instance = LabInstance(uuid, vcpus, memory_mb, box)
        with self._tables:
            self.instances[uuid] = instance
        return instance

    def _check_new(self, uuid):
        if self._stopped:
            raise RuntimeError('lab host %s is stopped' % self.name)
        if uuid in self.instances:
            raise RuntimeError('instance %s already runs on %s'
                               % (uuid, self.name))

    def start_instance(self, uuid, hostname, vcpus, memory_mb, plan):
        """Boot ``plan`` (see :mod:`nova_shadow_lab.userdata`) confined."""
        with self._lock:
            self._check_new(uuid)
            instance = self._new_instance(
                uuid, hostname, vcpus, memory_mb, plan,
                self._instance_group(uuid, vcpus, memory_mb))
            box = instance.sandbox
            try:
                box.launch()
            except BaseException:
                self._forget_failed(instance)
                raise
        # Other instances start and stop while this one sets up; a stop
        # of the host meanwhile kills it, and the wait says so.
        try:
            box.confirm_started()
        except BaseException:
            self._forget_failed(instance)
            raise
        return instance

    def adopt(self, uuid, hostname, vcpus, memory_mb, plan):
        """Track ``uuid`` as a stopped instance with a new, empty root:
        one that Nova places on this host and the host does not hold
        (it ran before the host's compute restarted). Nothing of it
        runs; :meth:`power_on` boots it as a first boot (its user-data
        runs). Returns the instance (the one already tracked, if any)."""
        with self._lock:
            instance = self.get(uuid)
            if instance is not None:
                return instance
            self._check_new(uuid)
            # A root left by the run before is not this boot's.
            shutil.rmtree(os.path.join(self.directory, uuid, 'root'),
                          ignore_errors=True)
            instance = self._new_instance(uuid, hostname, vcpus, memory_mb,
                                          plan, self._child_group(uuid))
            instance.powered_on = False
            return instance

    def _forget_failed(self, instance):
        """Nothing of an instance that never ran stays behind."""
        with self._tables:
            if self.instances.get(instance.uuid) is instance:
                del self.instances[instance.uuid]
        cgroups.sweep(instance.sandbox.group)
        shutil.rmtree(instance.directory, ignore_errors=True)

    def get(self, uuid):
        with self._tables:
            return self.instances.get(uuid)

    def stop_instance(self, uuid):
        """Kill the instance, remove its cgroup and its root; the logs
        (console, init, launch) stay until the run ends."""
        with self._lock, self._tables:
            instance = self.instances.pop(uuid, None)
        if instance is None:
            return False
        # After a power change under way: what it started is stopped here,
        # and the next one finds the instance gone.
        with instance.lock:
            self._stop_rescue(instance)
            survivors, left = instance.sandbox.stop()
            if survivors or left:
                LOG.warning('instance %s: survivors %s, cgroups left %s',
                            uuid, sorted(survivors), left)
            shutil.rmtree(instance.sandbox.root, ignore_errors=True)
        return True

    @contextlib.contextmanager
    def _changing(self, uuid):
        """The instance ``uuid`` with its lock held; raises
        :class:`InstanceGone` when it is not, or no longer once the lock
        is taken, one of the host's instances."""
        instance = self.get(uuid)
        if instance is None:
            raise InstanceGone(uuid)
        with instance.lock:
            if self.get(uuid) is not instance:
                raise InstanceGone(uuid)
            yield instance

    def power_off(self, uuid):
        """Stop the instance's processes (its root stays); raises
        :class:`InstanceGone`, as the other power changes do."""
        with self._changing(uuid) as instance:
            self._power_off(instance)

    def power_on(self, uuid, vcpus=None, memory_mb=None):
        """Start the instance's sandbox again unless it runs; with
        ``vcpus`` and ``memory_mb`` (its flavor's, which a resize
        changes) its cgroup gets their limits."""
        with self._changing(uuid) as instance:
            self._power_on(instance, vcpus, memory_mb)

    def reboot(self, uuid, vcpus=None, memory_mb=None):
        """Power off and on, with no other change in between."""
        with self._changing(uuid) as instance:
            self._power_off(instance)
            self._power_on(instance, vcpus, memory_mb)

    def _power_off(self, instance):
        self._stop_rescue(instance)
        instance.sandbox.stop()
        instance.powered_on = False
        instance.paused = instance.suspended = False

    def _power_on(self, instance, vcpus=None, memory_mb=None):
        if instance.powered_on and instance.sandbox.alive():
            return
        if vcpus is not None:
            instance.vcpus, instance.memory_mb = vcpus, memory_mb
        instance.sandbox.group = self._instance_group(
            instance.uuid, instance.vcpus, instance.memory_mb)
        instance.sandbox.start()
        instance.powered_on = True
        instance.created_at = time.time()

    # -- rescue --------------------------------------------------------------

    def rescue(self, uuid):
        """Stop the instance's guest and boot its rescue system in its
        place: the lab's init with no user-data in a new root
        (``<instance dir>/rescue``), in the instance's cgroup, with the
        guest's root (its ``/opt``, ``/var``, ``/etc``...) writable at
        ``/mnt/guest``. The console is the rescue system's until
        :meth:`unrescue`."""
        with self._changing(uuid) as instance:
            self._stop_rescue(instance)
            self._power_off(instance)
            directory = os.path.join(instance.directory, 'rescue')
            shutil.rmtree(directory, ignore_errors=True)
            os.makedirs(instance.sandbox.root, exist_ok=True)
            box = self._guest_sandbox(
                directory,
                self._instance_group(uuid, instance.vcpus,
                                     instance.memory_mb),
                instance.sandbox.fqdn,
                dict(userdata.build_plan(None), instance=uuid),
                binds=[(instance.sandbox.root, RESCUE_MOUNT, True)])
            try:
                box.start()
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise
            instance.rescue = box
            instance.created_at = time.time()

    def unrescue(self, uuid):
        """Stop the rescue system and boot the guest again (its root
        kept, so its user-data does not run again)."""
        with self._changing(uuid) as instance:
            self._stop_rescue(instance)
            self._power_on(instance)

    @staticmethod
    def _stop_rescue(instance):
        box, instance.rescue = instance.rescue, None
        if box is None:
            return
        box.stop()
        # Its console and init logs stay, as an instance's do.
        shutil.rmtree(box.root, ignore_errors=True)

    def set_paused(self, uuid, paused, suspended=False):
        """Freeze (``paused``) or thaw the instance; a freeze with
        ``suspended`` is reported as a suspend."""
        with self._changing(uuid) as instance:
            if not instance.powered_on or instance.rescue is not None:
                # Nothing of the guest runs: a hypervisor refuses to pause
                # or unpause a guest that is off.
                raise InstanceNotRunning(uuid)
            self._set_paused(instance, paused)
            instance.suspended = paused and suspended

    @staticmethod
    def _set_paused(instance, paused):
        group = instance.sandbox.group
        if not group.has('freezer'):
            raise RuntimeError('no freezer cgroup hierarchy')
        if paused:
            # Nova says PAUSED when this returns: wait for the kernel to
            # have stopped every task, as a hypervisor's suspend does.
            cgroups.freeze(group, timeout=PAUSE_TIMEOUT_S)
        else:
            cgroups.thaw(group)
        instance.paused = paused

    # -- figures -------------------------------------------------------------

    def _snapshot(self):
        """Copies of the instances and tenants maps."""
        with self._tables:
            return dict(self.instances), dict(self.tenants)

    def instance_figures(self, uuid):
        """The instance's cgroup figures, or None when it is not (or no
        longer, once they are read) one of this host's instances."""
        instance = self.get(uuid)
        if instance is None:
            return None
        figures = cgroups.figures(instance.sandbox.group)
        figures['uptime_s'] = round(time.time() - instance.created_at, 3)
        figures['processes'] = len(instance.sandbox.group.pids())
        if self.get(uuid) is not instance:
            return None
        return figures

    def figures(self, tenants=None):
        """The host's cgroup figures, and each tenant's (of ``tenants``,
        default: a copy of the host's) under ``tenants``."""
        if tenants is None:
            tenants = self._snapshot()[1]
        figures = cgroups.figures(self.group)
        figures['tenants'] = {name: cgroups.figures(box.group)
                              for name, box in tenants.items()}
        return figures

    def status(self):
        """What the lab's JSON says of the host: one copy of its
        instances and tenants, taken as this is called (a host that
        stops meanwhile shows its tenants not alive)."""
        instances, tenants = self._snapshot()
        share = self.config.share
        return {
            'name': self.name,
            'cgroup': self.group.relpath,
            'share': {k: v for k, v in vars(share).items()
                      if k not in ('blkio', 'disk')},
            'blkio': {k: v for k, v in vars(share.blkio).items()
                      if v is not None},
            'disk': ({'device': self.disk_device,
                      'size_mb': share.disk.size_mb,
                      'throttles': share.disk.throttles}
                     if self.disk_device else None),
            'resources': vars(self.config.resources),
            'instances': sorted(instances),
            'tenants': {name: {'alive': box.alive(),
                               'pid': box.popen.pid if box.popen else None}
                        for name, box in tenants.items()},
            'notes': list(self.notes),
            'figures': self.figures(tenants),
        }

