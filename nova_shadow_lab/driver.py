"""``LabDriver``: a Nova virt driver whose instances are confined processes.

A ``nova.virt.fake.FakeDriver`` for everything Nova needs from a
hypervisor (nodes, inventory and the migrations' bookkeeping are the
fake's; a moved guest boots afresh on its destination and stops on its
source), plus real
instances: ``spawn`` runs the instance's user-data the way cloud-init
would (:mod:`nova_shadow_lab.userdata`, :mod:`nova_shadow_lab.guest_init`)
inside bubblewrap in the instance's cgroups below its host's
(:mod:`nova_shadow_lab.host`); ``destroy`` kills and removes them;
``get_console_output`` returns what the instance wrote to its console;
the server diagnostics API returns the instance's cgroup figures;
``rescue`` runs a rescue system in the guest's place
(:meth:`nova_shadow_lab.host.LabHost.rescue`); a resize on the guest's own
host (or a cold migration, with ``[nova_shadow_lab]
same_host_cold_migrate``) boots it again with the new flavor's limits; a
flavor with less memory than a guest needs (:data:`MIN_GUEST_MEMORY_MB`)
fails a build and is refused by a resize; a server of a host
whose compute restarted is taken as a stopped guest
(:meth:`LabDriver._held`), and ``resume_state_on_host_boot`` boots it
afresh.

One driver object per nova-compute service, one emulated host each:
``init_host(host)`` reads the host's resources (reported to Placement) and
share of this machine from the lab config (``[nova_shadow_lab]
config_file`` in nova.conf) and starts the host's background tenants;
``cleanup_host`` stops everything of the host. Per-host state is on
``self`` and the host name is ``self._host``, never ``CONF.host`` (Nova's
harness rewrites it for every compute it starts).

Load it with ``compute_driver = shadowlab.LabDriver`` after importing this
module (it registers itself as ``nova.virt.shadowlab``, since Nova imports
drivers from the ``nova.virt`` namespace).

Diagnostics (``GET /servers/{id}/diagnostics``):

- microversion >= 2.48: ``cpu_details`` has one entry (``id`` 0, ``time``
  = the instance cgroup's CPU time in ns, ``utilisation`` null),
  ``memory_details`` in MiB (``maximum`` = the memory limit, ``used`` =
  cgroup usage), one ``disk_details`` entry from blkio accounting, no
  NICs (instances share the host's network namespace); that schema has no
  place for throttling.
- microversions 2.1-2.47 (a free-form map): every figure of
  :func:`nova_shadow_lab.cgroups.figures` for the instance, including
  ``cpu_throttled_ns`` (the steal analogue), and the same for its host
  prefixed ``host_`` (the host's own load, tenants included), plus
  ``lab_host`` and ``uptime_s``.
"""

import sys

from nova import conf as nova_conf
from nova import exception
from nova.compute import power_state
from nova.compute import task_states
from nova.objects import diagnostics as diagnostics_obj
from nova.virt import fake
from nova.virt import hardware
from oslo_config import cfg
from oslo_log import log as logging

from nova_shadow_lab import cgroups
from nova_shadow_lab import config as lab_config
from nova_shadow_lab import host as lab_host
from nova_shadow_lab import runtime
from nova_shadow_lab import userdata

LOG = logging.getLogger(__name__)
CONF = nova_conf.CONF
DRIVER_NAME = 'shadowlab.LabDriver'
MAX_CONSOLE_BYTES = 100 * 1024
# The least memory of a flavor the lab boots while instance memory limits
# come from flavors (``instance_memory_from_flavor``; as the least host
# share): the lab's init running a shell script peaked at 6.7 MB of its
# cgroup's memory, and under a 4 MB limit it was killed as it started.
MIN_GUEST_MEMORY_MB = 16

lab_group = cfg.OptGroup(
    'nova_shadow_lab', title='nova-shadow lab driver',
    help='The lab virt driver (a test and demo rig, never for production).')
lab_opts = [
    cfg.StrOpt('config_file',
               help='Path of the lab config (YAML): the emulated hosts, '
                    'their resources, share of this machine and tenants. '
                    'See doc/source/lab.rst.\n\n'
                    'Possible values:\n\n'
                    '* an absolute path to a lab YAML file\n\n'
                    'Related options:\n\n'
                    '* ``compute_driver = shadowlab.LabDriver``'),
    cfg.BoolOpt('same_host_cold_migrate', default=False,
                help='Whether the lab driver claims that a server can be '
                     'cold migrated to its own host (Nova\'s '
                     '``COMPUTE_SAME_HOST_COLD_MIGRATE`` trait on the '
                     'host\'s resource provider, sent to Placement when '
                     'the compute next reports its resources). Nova '
                     'then lets the scheduler keep a cold-migrated '
                     'server where it is: its guest stops and boots '
                     'again, its root kept. A migration naming the '
                     'server\'s own host is refused by Nova\'s API '
                     'either way.\n\n'
                     'Possible values:\n\n'
                     '* False: the current host is never a cold '
                     'migration\'s destination (as libvirt)\n'
                     '* True: it may be (as VMware)\n\n'
                     'Related options:\n\n'
                     '* ``[DEFAULT] allow_resize_to_same_host`` (a '
                     'resize\'s, not a cold migration\'s)'),
]


def register_opts(conf):
    conf.register_group(lab_group)
    conf.register_opts(lab_opts, group=lab_group)


def list_opts():
    return {lab_group: lab_opts}


register_opts(CONF)
sys.modules.setdefault('nova.virt.shadowlab', sys.modules[__name__])

_configs = {}


def _load_config(path):
    if not path:
        raise lab_config.LabConfigError(
            'file', 'set [nova_shadow_lab] config_file in nova.conf')
    if path not in _configs:
        _configs[path] = lab_config.load_config(path)
    return _configs[path]


def forget_configs():
    """Drop cached configs (a LabCloud rewrites its file on start)."""
    _configs.clear()


class LabDriver(fake.FakeDriver):
    """Fake hypervisor bookkeeping, real confined instances."""

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi, read_only=read_only)
        self._run = None
        self._lab = None
        # Servers resized on this host, until confirmed or reverted.
        self._same_host_resizes = set()

    # -- host ----------------------------------------------------------------

    def init_host(self, host):
        super().init_host(host)
        config = _load_config(CONF.nova_shadow_lab.config_file)
        host_config = config.host(host)
        resources = host_config.resources
        self.vcpus = resources.vcpus
        self.memory_mb = resources.memory_mb
        self.local_gb = resources.disk_gb
        self.resources = fake.Resources(vcpus=self.vcpus,
                                        memory_mb=self.memory_mb,
                                        local_gb=self.local_gb)
        run = runtime.acquire(config.lab)
        try:
            # A host that fails to start has stopped what it started.
            lab = lab_host.start_host(run, host_config, config.lab)
        except BaseException:
            runtime.release(run)
            raise
        self._run, self._lab = run, lab

    def cleanup_host(self, host):
        lab, run = self._lab, self._run
        self._lab = self._run = None
        if lab is not None:
            lab.stop()
            run.remove_host(lab)
        if run is not None:
            runtime.release(run)
        self.instances.clear()
        self._same_host_resizes.clear()
        super().cleanup_host(host)

    @property
    def lab_host(self):
        return self._lab

    @property
    def capabilities(self):
        """The fake's, and a cold migration to the same host as
        ``[nova_shadow_lab] same_host_cold_migrate`` says (a resize on
        it, and a cold migration, keep the guest: see
        :meth:`finish_migration`)."""
        return dict(
            fake.FakeDriver.capabilities,
            supports_migrate_to_same_host=(
                CONF.nova_shadow_lab.same_host_cold_migrate))

    # -- instances ---------------------------------------------------------

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        # One host for the whole spawn: a compute stop meanwhile drops
        # self._lab (cleanup_host) and stops this one.
        lab = self._lab
        if lab is None:
            raise exception.InstanceDeployFailure(
                reason='lab host %s is not running' % self._host,
                instance_id=instance.uuid)
        too_small = self._too_small(instance.flavor)
        if too_small:
            # Invalid input: Nova fails the build, not rescheduling it.
            raise exception.InvalidInput(reason=too_small)
        super().spawn(context, instance, image_meta, injected_files,
                      admin_password, allocations, network_info,
                      block_device_info, power_on, accel_info)
        plan = userdata.build_plan(instance.user_data)
        for error in plan['errors']:
            LOG.warning('user-data %s: %s (not run)', error['field'],
                        error['message'], instance=instance)
        flavor = instance.flavor
        try:
            lab.start_instance(instance.uuid, instance.hostname,
                               flavor.vcpus, flavor.memory_mb, plan)
            if not power_on:
                lab.power_off(instance.uuid)
        except Exception as exc:
            lab.stop_instance(instance.uuid)
            super().destroy(context, instance, network_info)
            if lab.stopped:
                # Its compute stops: nothing of the instance is left, and
                # the stop is no fault of the instance's.
                LOG.warning('lab host %s stopped during the spawn; the '
                            'instance did not start', lab.name,
                            instance=instance)
                raise exception.InstanceDeployFailure(
                    reason='lab host %s stopped during the spawn'
                    % lab.name, instance_id=instance.uuid) from None
            LOG.exception('lab instance failed to start', instance=instance)
            raise exception.InstanceDeployFailure(
                reason='lab sandbox: %s' % exc, instance_id=instance.uuid)

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        uuid = instance.uuid
        if (instance.task_state == task_states.RESIZE_REVERTING and
                uuid in self._same_host_resizes):
            # The revert of a resize on this host removes the resized
            # guest, which is also the one finish_revert_migration boots
            # again: it is only stopped, its root kept.
            self._same_host_resizes.discard(uuid)
            try:
                self._change(instance, 'power_off')
            except exception.InstanceNotFound:
                pass
        elif self._lab is not None:
            self._same_host_resizes.discard(uuid)
            self._lab.stop_instance(uuid)
        super().destroy(context, instance, network_info, block_device_info,
                        destroy_disks, destroy_secrets)

    def _too_small(self, flavor):
        """Why a guest cannot boot with ``flavor``'s memory, or None."""
        lab = self._lab
        if (lab is None or not lab.settings.instance_memory_from_flavor or
                flavor.memory_mb >= MIN_GUEST_MEMORY_MB):
            return None
        return ('flavor %s has %d MB of memory; a lab guest needs at '
                'least %d MB' % (flavor.name, flavor.memory_mb,
                                 MIN_GUEST_MEMORY_MB))

    def _lab_instance(self, instance):
        lab_instance = self._held(instance)
        if lab_instance is None:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        return lab_instance

    def _lost(self, instance):
        """True for an instance Nova places on this host that the running
        lab host does not hold: it ran before the host's compute
        restarted (a restart brings the host back empty). Nothing of it
        runs; it is a stopped guest (see :meth:`_held`)."""
        lab = self._lab
        return (lab is not None and instance.host == self._host and
                lab.get(instance.uuid) is None)

    def _held(self, instance):
        """The instance's :class:`~nova_shadow_lab.host.LabInstance`, or
        None. A lost instance (:meth:`_lost`) is taken back first as a
        stopped one with a new root, so that every action treats it as
        any stopped guest: a start or reboot boots it afresh (its
        user-data runs again), a stop does nothing, a pause is refused,
        its console is its last boot's."""
        lab = self._lab
        if lab is None:
            return None
        if not self._lost(instance):
            return lab.get(instance.uuid)
        flavor = instance.flavor
        try:
            lab_instance = lab.adopt(
                instance.uuid, instance.hostname, flavor.vcpus,
                flavor.memory_mb, userdata.build_plan(instance.user_data))
        except RuntimeError:
            return None  # the host stops
        if instance.uuid not in self.instances:
            # The fake's bookkeeping of a stopped guest (a snapshot needs
            # it), as a spawn with power_on=False leaves it.
            LOG.info('instance not on lab host %s (its compute restarted): '
                     'taken back as a stopped guest', self._host,
                     instance=instance)
            self.resources.claim(vcpus=flavor.vcpus, mem=flavor.memory_mb,
                                 disk=flavor.root_gb)
            self.instances[instance.uuid] = fake.FakeInstance(
                instance.name, power_state.SHUTDOWN, instance.uuid)
        return lab_instance

    def get_info(self, instance, use_cache=True):
        lab_instance = self._lab.get(instance.uuid) if self._lab else None
        if lab_instance is None:
            if self._lost(instance):
                # Off, as Nova's power-state sync then records (it stops
                # the server), rather than not found, which it ignores.
                return hardware.InstanceInfo(state=power_state.SHUTDOWN)
            return super().get_info(instance, use_cache)
        rescue = lab_instance.rescue
        # Dead is dead, paused or not (a frozen task cannot die, but one
        # that died before the freeze leaves an empty frozen group).
        if rescue is not None:
            state = (power_state.RUNNING if rescue.alive()
                     else power_state.CRASHED)
        elif not lab_instance.powered_on:
            state = power_state.SHUTDOWN
        elif not lab_instance.sandbox.alive():
            state = power_state.CRASHED
        elif lab_instance.paused:
            state = (power_state.SUSPENDED if lab_instance.suspended
                     else power_state.PAUSED)
        else:
            state = power_state.RUNNING
        return hardware.InstanceInfo(state=state)

    def _change(self, instance, change, *args):
        """``change(uuid, *args)``, a method of the lab host named
        ``change``, which takes the instance's turn after a delete or
        other change under way (see
        :class:`nova_shadow_lab.host.LabInstance`); a lost instance is
        taken back as a stopped one first (:meth:`_held`)."""
        lab = self._lab
        uuid = instance.uuid
        if lab is None or self._held(instance) is None:
            raise exception.InstanceNotFound(instance_id=uuid)
        try:
            getattr(lab, change)(uuid, *args)
        except lab_host.InstanceGone:
            raise exception.InstanceNotFound(instance_id=uuid) from None
        except lab_host.InstanceNotRunning:
            raise exception.InstanceNotRunning(instance_id=uuid) from None

    @staticmethod
    def _limits(instance):
        """The instance's flavor's vCPUs and memory: a guest boots with
        its server's current flavor (a resize, or its revert, changes
        it)."""
        return instance.flavor.vcpus, instance.flavor.memory_mb

    def power_off(self, instance, timeout=0, retry_interval=0):
        self._held(instance)
        super().power_off(instance, timeout, retry_interval)
        self._change(instance, 'power_off')

    def power_on(self, context, instance, network_info,
                 block_device_info=None, accel_info=None, share_info=None):
        self._held(instance)
        super().power_on(context, instance, network_info, block_device_info,
                         accel_info, share_info)
        self._change(instance, 'power_on', *self._limits(instance))

    def reboot(self, context, instance, network_info, reboot_type,
               block_device_info=None, bad_volumes_callback=None,
               accel_info=None, share_info=None):
        self._held(instance)
        if instance.uuid in self.instances:
            self.instances[instance.uuid].state = power_state.RUNNING
        self._change(instance, 'reboot', *self._limits(instance))

    def resume_state_on_host_boot(self, context, instance, network_info,
                                  share_info, block_device_info=None):
        # Nova asks this at compute start ([DEFAULT]
        # resume_guests_state_on_host_boot) for the servers that ran
        # before: the lab host came back empty, so they boot afresh (as
        # a hard reboot, which is what libvirt does here).
        LOG.info('booting the instance again on lab host %s, as it ran '
                 'before its compute restarted', self._host,
                 instance=instance)
        self.reboot(context, instance, network_info, 'HARD',
                    block_device_info)

    def pause(self, instance):
        self._change(instance, 'set_paused', True)

    def unpause(self, instance):
        self._change(instance, 'set_paused', False)

    def suspend(self, context, instance):
        # A suspended guest runs nothing and keeps its state: frozen, as
        # a pause, but Nova is told SUSPENDED. One that does not run is
        # refused, the server left as it was (not in ERROR).
        try:
            self._change(instance, 'set_paused', True, True)
        except exception.InstanceNotRunning as exc:
            raise exception.InstanceFaultRollback(inner_exception=exc)

    def resume(self, context, instance, network_info, block_device_info=None,
               share_info=None):
        lab_instance = self._held(instance)
        if lab_instance is not None and not lab_instance.powered_on:
            # Not frozen but off (its compute restarted since the
            # suspend): it boots, as a hypervisor's resume recreates the
            # guest.
            self.power_on(context, instance, network_info, block_device_info)
            return
        self._change(instance, 'set_paused', False)

    def soft_delete(self, instance):
        # Off until restored or reclaimed ([DEFAULT]
        # reclaim_instance_interval), as a hypervisor's soft delete.
        self._change(instance, 'power_off')

    def restore(self, instance):
        self._change(instance, 'power_on', *self._limits(instance))

    def snapshot(self, context, instance, image_id, update_task_state):
        self._held(instance)
        super().snapshot(context, instance, image_id, update_task_state)

    # -- rescue --------------------------------------------------------------

    def rescue(self, context, instance, network_info, image_meta,
               rescue_password, block_device_info, share_info):
        # The lab has no images: the rescue system is the lab's init with
        # no user-data (the rescue image and password are not used).
        self._change(instance, 'rescue')

    def unrescue(self, context, instance):
        self._change(instance, 'unrescue')
        if instance.uuid in self.instances:
            self.instances[instance.uuid].state = power_state.RUNNING

    # -- moves ---------------------------------------------------------------
    # A process tree cannot move between lab hosts: the guest stops on the
    # source and the destination boots it afresh (the fake's
    # finish_migration and post_live_migration_at_destination call spawn).
    # A resize on the guest's own host keeps it: it boots again with the
    # new flavor's limits.

    def migrate_disk_and_power_off(self, context, instance, dest, flavor,
                                   network_info, block_device_info=None,
                                   timeout=0, retry_interval=0):
        # Off, as a hypervisor leaves the source of a cold migration or
        # resize; its files stay for a revert, confirm_migration removes
        # it. A resize to a flavor too small for a guest is refused
        # first, the server left running as it was.
        too_small = self._too_small(flavor)
        if too_small:
            raise exception.InstanceFaultRollback(
                inner_exception=exception.ResizeError(reason=too_small))
        super().migrate_disk_and_power_off(
            context, instance, dest, flavor, network_info,
            block_device_info, timeout, retry_interval)
        if self._lab is not None and self._lab.get(instance.uuid):
            self._change(instance, 'power_off')

    def finish_migration(self, context, migration, instance, disk_info,
                         network_info, image_meta, resize_instance,
                         allocations, block_device_info=None, power_on=True,
                         share_info=None):
        if migration.source_compute != migration.dest_compute:
            super().finish_migration(
                context, migration, instance, disk_info, network_info,
                image_meta, resize_instance, allocations, block_device_info,
                power_on, share_info)
            return
        # A resize on this host ([DEFAULT] allow_resize_to_same_host):
        # the guest migrate_disk_and_power_off stopped is the resized one
        # (its root kept, as a hypervisor's disk); it boots again with
        # the new flavor's limits. A revert boots it with the old ones.
        self._same_host_resizes.add(instance.uuid)
        if power_on:
            self.power_on(context, instance, network_info, block_device_info)

    def confirm_migration(self, context, migration, instance, network_info):
        self._same_host_resizes.discard(instance.uuid)
        super().confirm_migration(context, migration, instance, network_info)

    def finish_revert_migration(self, context, instance, network_info,
                                migration, block_device_info=None,
                                power_on=True, share_info=None):
        super().finish_revert_migration(
            context, instance, network_info, migration, block_device_info,
            power_on, share_info)
        if power_on:
            self._change(instance, 'power_on', *self._limits(instance))

    def live_migration(self, context, instance, dest, post_method,
                       recover_method, block_migration=False,
                       migrate_data=None):
        # The guest leaves this host before the destination starts it:
        # nothing of it stays here (Nova cleans up no source guest after
        # a live migration on shared storage, which the fake claims).
        self.destroy(context, instance, None)
        super().live_migration(context, instance, dest, post_method,
                               recover_method, block_migration,
                               migrate_data)

    def get_console_output(self, context, instance):
        lab_instance = self._lab_instance(instance)
        box = lab_instance.rescue or lab_instance.sandbox
        return box.console_output(MAX_CONSOLE_BYTES).encode('utf-8')

    # -- diagnostics ---------------------------------------------------------

    def _instance_figures(self, instance):
        figures = self._lab.instance_figures(instance.uuid)
        if figures is None:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        return figures

    def get_diagnostics(self, instance):
        self._lab_instance(instance)
        figures = self._instance_figures(instance)
        host_figures = self._lab.figures()
        tenants = host_figures.pop('tenants')
        figures.update(('host_%s' % k, v) for k, v in host_figures.items())
        figures['host_tenants_cpu_usage_ns'] = sum(
            t['cpu_usage_ns'] or 0 for t in tenants.values())
        figures['lab_host'] = self._lab.name
        return figures

    def get_instance_diagnostics(self, instance):
        lab_instance = self._lab_instance(instance)
        figures = self._instance_figures(instance)
        state = self.get_info(instance).state
        diags = diagnostics_obj.Diagnostics(
            state=power_state.STATE_MAP[state], driver='libvirt',
            hypervisor='nova-shadow-lab', hypervisor_os=_kernel(),
            uptime=int(figures['uptime_s']), config_drive=False)
        diags.add_cpu(id=0, time=figures['cpu_usage_ns'], utilisation=None)
        diags.add_disk(read_bytes=figures['io_read_bytes'],
                       read_requests=figures['io_read_ops'],
                       write_bytes=figures['io_write_bytes'],
                       write_requests=figures['io_write_ops'],
                       errors_count=0)
        limit = figures['memory_limit_bytes']
        used = figures['memory_usage_bytes']
        diags.memory_details = diagnostics_obj.MemoryDiagnostics(
            maximum=(limit // (1024 * 1024) if limit is not None
                     else lab_instance.memory_mb),
            used=used // (1024 * 1024) if used is not None else None)
        return diags


def _kernel():
    # os.uname() is poisoned in Nova's test base.
    try:
        release = cgroups.read_file('/proc/sys/kernel/osrelease').strip()
    except OSError:
        return 'Linux'
    return 'Linux %s (cgroup v1, bubblewrap)' % release
