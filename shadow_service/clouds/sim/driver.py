"""``sim``: the CloudDriver of the digital twin.

Shadows boot instantly on the cluster file's hosts (with ``[sim]
unknown_hosts = derive`` also on any other name, which gets a class and
tenants derived from the seed and the name), run their loadgen
profile against the host's replayed tenants, and write ``shadow_sample``
points to the history store while :meth:`SimDriver.wait` moves the virtual
clock.  :meth:`SimDriver.host_facts` returns only what host monitoring
and an inventory could tell a real deployment; the twin's hidden state is
reachable through :attr:`SimDriver.oracle`, which exists for benchmarks and
must never feed a placement decision.

Full VMs (:meth:`SimDriver.place_vm`) can be acted on as the watcher does
on a real cloud: resized, live-migrated, given a sibling, deleted.  A VM
that changes flavor or host continues as a new twin workload under the
same instance id, so its history is one series.

Configure it in the ``[sim]`` group (``shadow_service/conf/sim.py``).
"""

import logging
import math
import time
import uuid

import numpy as np

from loadgen import profiles as loadgen_profiles
from shadow_service import hostfacts as facts
from shadow_service.clouds import base
from shadow_service.clouds.sim import cluster
from shadow_service.clouds.sim import engine
from shadow_service.clouds.sim import oracle as oracle_mod
from shadow_service.conf import sim as sim_conf
from shadow_service.workloads import catalogue
from shadow_service.workloads import profiles

LOG = logging.getLogger(__name__)

FEATURE_WINDOW_S = 86400.0
FEATURE_STEP_S = 300.0


def _migration_profile(opts):
    """The load a live migration's copy puts on each of its two hosts."""
    cpu = min(1.0, opts.migration_cpu_vcpus)
    streams = max(1, min(256, int(round(
        opts.migration_bandwidth_mbps / 100.0))))
    return loadgen_profiles.load_profile({
        'name': 'live-migration',
        'components': {
            'cpu': {'workers': 1, 'duty_cycle': cpu},
            'network': {'mode': 'stream', 'connections': streams}}})


def _host_name(host):
    return host['host'] if isinstance(host, dict) else str(host)


class SimDriver(base.CloudDriver):
    """Shadows and VMs in the twin.

    Parameters
    ----------
    conf : oslo_config.cfg.ConfigOpts
        With the ``[sim]`` group registered
        (``shadow_service.conf.register_opts``).
    history : shadow_service.history.base.HistoryStore or None
        Where the twin writes what it measures (the driver gives its twin
        this store).
    twin : shadow_service.clouds.sim.engine.Twin, optional
        An already built twin (benchmarks running several stores over one
        twin); built from ``conf`` otherwise.
    """

    config_group = sim_conf.sim_group
    # The twin's clock moves only as it is advanced.
    wall_clock = False

    @classmethod
    def get_config_opts(cls):
        return sim_conf.sim_opts

    @classmethod
    def check_config(cls, conf):
        """Raise CloudError when ``[sim] cluster_file`` cannot be read or
        is not a valid cluster, or ``[sim] metric_noise_scale`` names a
        metric the twin does not measure."""
        try:
            cluster.load_cluster(conf.sim.cluster_file, seed=conf.sim.seed)
        except Exception as e:
            raise base.CloudError('[sim] cluster_file: %s' % e) from None
        known = set(catalogue.METRIC_DIRECTIONS) | set(facts.HOST_METRICS)
        unknown = sorted(set(conf.sim.metric_noise_scale) - known)
        if unknown:
            raise base.CloudError(
                '[sim] metric_noise_scale: unknown metric %s (known: %s)'
                % (', '.join(unknown), ', '.join(sorted(known))))

    def __init__(self, conf, history, twin=None):
        super().__init__(conf, history)
        opts = conf.sim
        self.speedup = opts.speedup
        self.backfill_s = opts.backfill_hours * 3600.0
        if twin is None:
            twin = engine.build_twin(
                cluster_file=opts.cluster_file, trace_dir=opts.trace_dir,
                seed=opts.seed, history=history,
                start_time=opts.start_time,
                noise_pct=opts.noise_pct,
                metric_noise_scale=opts.metric_noise_scale,
                host_noise_pct=opts.host_noise_pct,
                noise_stream=opts.noise_stream,
                sample_interval_s=opts.sample_interval,
                host_metric_interval_s=opts.host_metric_interval)
        twin.history = history
        self.twin = twin
        self._backfilled = set()
        self._declared = set(twin.cluster.host_names)
        self._unknown_hosts = opts.unknown_hosts
        self._max_derived = opts.max_derived_hosts
        self._derived = 0
        # instance id -> the twin workload it currently runs as
        self._instances = {}
        self._segments = 0
        # Workloads that end or start a resize on the same host.
        self._not_departed = set()
        self._not_arrived = set()
        # instance id -> metadata, flavor name, action under way
        self._metadata = {}
        self._flavor_names = {}
        #: instance -> it boots from a volume (its root disk may shrink)
        self._volume_backed = {}
        #: instance id -> its project (siblings: their original's)
        self._projects = {}
        #: instance booted from a volume -> what its root volume was made
        #: from, when not from an image (``'snapshot <id>'``, ``''``:
        #: created empty)
        self._volume_not_from_image = {}
        self._pending = {}
        # instance id -> how many siblings of it were booted
        self._siblings_booted = {}

    # -- CloudDriver -----------------------------------------------------
    def start(self):
        """With ``[sim] unknown_hosts = derive``, read every trace the
        twin may draw tenants from now: a request that names unknown
        hosts then pays only for its hosts, within its budget."""
        if self._unknown_hosts != 'derive':
            return
        started = time.monotonic()
        library = self.twin.cluster.library
        for kind, paths in library.paths.items():
            for path in paths:
                library.load(kind, path)
        LOG.info('Twin: traces read in %.1fs for hosts made up on demand',
                 time.monotonic() - started)

    honours_deadline = True

    @property
    def first_sample_s(self):
        """Seconds a shadow's first sample may take, with margin: two of
        the twin's sample intervals (samples fall on its grid)."""
        return 2.0 * float(self.twin.sample_interval_s)

    def boot_shadows(self, evaluation_id, request, hosts, profile,
                     deadline=None):
        flavor = dict(request.get('flavor') or {})
        names = [_host_name(h) for h in hosts]
        known = self.ensure_hosts(names, deadline=deadline)
        shadows = []
        for name in names:
            if name not in known:
                LOG.warning('Twin: no host %s (not in the cluster file); '
                            'no shadow for evaluation %s', name,
                            evaluation_id)
                continue
            shadow_id = 'shadow-%s' % uuid.uuid5(
                uuid.NAMESPACE_URL, 'sim/%s/%s/%d' % (
                    evaluation_id, name, len(self.twin.workloads)))
            vcpus = max(1, int(flavor.get('vcpus') or 1))
            self.twin.start_workload(engine.Workload(
                workload_id=shadow_id, kind='shadow', host=name,
                profile=profile, vcpus=vcpus,
                ram_mb=int(flavor.get('ram_mb') or 512),
                disk_gb=int(flavor.get('disk_gb') or 1),
                started_at=self.twin.clock, evaluation_id=evaluation_id))
            shadows.append(base.Shadow(
                shadow_id=shadow_id, host=name,
                evaluation_id=evaluation_id, created_at=self.twin.clock,
                flavor=flavor))
        LOG.info('Twin booted %d shadows for evaluation %s',
                 len(shadows), evaluation_id)
        return shadows

    def delete_shadows(self, shadows):
        for shadow in shadows:
            self.twin.stop_workload(shadow.shadow_id)

    def list_shadows(self):
        return [base.Shadow(shadow_id=w.workload_id, host=w.host,
                            evaluation_id=w.evaluation_id,
                            created_at=w.started_at,
                            flavor={'vcpus': w.vcpus, 'ram_mb': w.ram_mb,
                                    'disk_gb': w.disk_gb})
                for w in self.twin.running(kind='shadow')]

    def now(self):
        return self.twin.clock

    def wait(self, seconds, sample_interval_s=None):
        if self.speedup > 0:
            time.sleep(seconds / self.speedup)
        self.twin.advance(seconds, sample_interval_s=sample_interval_s)

    def fast_forward(self, seconds, sample_interval_s=None,
                     host_metric_interval_s=None):
        """Move the twin's clock ``seconds`` on at once (no real-time
        pacing), writing what every workload and host reports on the way:
        the demo's and the benchmarks' simulated hours."""
        self.twin.advance(seconds, sample_interval_s=sample_interval_s,
                          host_metric_interval_s=host_metric_interval_s)

    def list_hosts(self):
        """The cluster file's hosts, all up and enabled, in zone nova."""
        return [base.HostInfo(host=name, availability_zone='nova')
                for name in self.host_names()]

    def host_facts(self, hosts, hosts_info=None, deadline=None):
        """Inventory and monitoring facts of ``hosts``: hardware data
        sheet figures, what tenants have allocated, and statistics of the
        host's own monitoring (with measurement noise) over the last day.
        ``hosts_info`` is ignored: the twin knows its hosts better.  Hosts
        the twin would have to make up after ``deadline`` are left out.
        """
        names = [_host_name(h) for h in hosts]
        known = self.ensure_hosts(names, deadline=deadline)
        times = np.arange(self.twin.clock - FEATURE_WINDOW_S,
                          self.twin.clock + 1e-9, FEATURE_STEP_S)
        return {name: self._features(name, times) for name in names
                if name in known}

    # -- beyond the ABC: the twin's own API ------------------------------
    def host_names(self):
        """Hosts the cluster file declares (the CLI's default candidates)."""
        return list(self.twin.cluster.host_names)

    def ensure_hosts(self, names, deadline=None):
        """Make the twin know ``names`` (backfilling their monitoring
        history); returns the set of them it knows.  A name the cluster
        file does not declare is made up only with ``[sim] unknown_hosts
        = derive``, at most ``[sim] max_derived_hosts`` of them, and none
        once ``deadline`` (a ``time.monotonic()`` reading) has passed:
        making one up costs a day of backfilled monitoring."""
        declared = self._declared
        backfill = self.backfill_s and self.history is not None
        new = []
        late = 0
        for name in dict.fromkeys(names):
            if name in self._backfilled:
                continue
            if name not in declared:
                if (self._unknown_hosts != 'derive'
                        or self._derived >= self._max_derived):
                    continue
                if deadline is not None and time.monotonic() >= deadline:
                    late += 1
                    continue
                self._derived += 1
            self.twin.host(name)
            self._backfilled.add(name)
            new.append(name)
            if backfill and name not in declared:
                # One at a time: the deadline is checked between hosts.
                self.twin.backfill_host_metrics(self.backfill_s,
                                                hosts=[name])
        declared_new = [n for n in new if n in declared]
        if declared_new and backfill:
            self.twin.backfill_host_metrics(self.backfill_s,
                                            hosts=declared_new)
        if late:
            LOG.info('Twin: %d unknown hosts not made up: the request\'s '
                     'budget was spent', late)
        return {n for n in names if n in self._backfilled}

    def place_vm(self, request, host, instance_id=None, lifetime_s=None,
                 profile=None, metadata=None, server_group=None,
                 starts_at=None, profile_start=None, volume_backed=False,
                 volume_made_from=None, project_id=None):
        """Start a full VM for ``request`` on ``host``; returns its id.

        With ``lifetime_s`` the VM is deleted by itself that many seconds
        later (the benchmark's departures); without, it stays.
        ``profile`` defaults to the one the request names.  ``metadata``
        is the server's metadata (how the watcher is told to watch it);
        VMs of one ``server_group`` share their profile's load evenly (a
        load-balanced group: a sibling takes its share).  ``starts_at``
        (default now) is when it is up; ``profile_start`` where the
        profile's own clock starts (default ``starts_at``).
        ``volume_backed``: it boots from a volume (its root disk may
        shrink); by default from an image, as Nova boots a server.  Its
        root volume was made from an image, unless ``volume_made_from``
        says what else (``'snapshot <id>'``, ``'volume <id>'``, ``''``:
        created empty): it then gets no sibling, as on a real cloud.
        ``project_id`` is its project (default: none, the twin's one).
        """
        if profile is None:
            profile = profiles.resolve_profile(request)
        flavor = request['flavor']
        instance_id = instance_id or 'vm-%d' % len(self.twin.workloads)
        starts_at = self.twin.clock if starts_at is None else starts_at
        if host not in self.ensure_hosts([host]):
            raise base.CloudError('the twin has no host %s' % host,
                                  host=host)
        self.twin.start_workload(engine.Workload(
            workload_id=instance_id, kind='vm', host=host, profile=profile,
            vcpus=int(flavor['vcpus']), ram_mb=int(flavor['ram_mb']),
            disk_gb=int(flavor.get('disk_gb', 0)),
            started_at=starts_at, profile_start=profile_start,
            stopped_at=(None if lifetime_s is None
                        else starts_at + float(lifetime_s)),
            group=server_group))
        self._instances[instance_id] = instance_id
        self._metadata[instance_id] = dict(metadata or {})
        self._flavor_names[instance_id] = flavor.get('name')
        self._volume_backed[instance_id] = bool(volume_backed)
        self._projects[instance_id] = project_id
        if volume_backed and volume_made_from is not None:
            self._volume_not_from_image[instance_id] = volume_made_from
        return instance_id

    # -- instance actions (CloudDriver) ------------------------------------
    def _workload(self, instance_id):
        """The instance's latest segment (it may start in the future while
        a resize, migration or boot is under way)."""
        workload = self.twin.workloads.get(
            self._instances.get(instance_id, instance_id))
        clock = self.twin.clock
        if (workload is None or workload.kind != 'vm'
                or (workload.stopped_at is not None
                    and workload.stopped_at <= clock)):
            raise base.CloudError('no instance %s in the twin'
                                  % instance_id)
        return workload

    def _status(self, instance_id, work):
        action = self._pending.get(instance_id)
        clock = self.twin.clock
        if action is not None:
            if clock < action['done_at']:
                return {'resize': 'RESIZE', 'live_migrate': 'MIGRATING',
                        'boot': 'BUILD'}[action['kind']]
            if action['kind'] == 'resize':
                return 'VERIFY_RESIZE'
        if clock < work.started_at:
            return 'BUILD'
        return 'ACTIVE'

    def get_instance(self, instance_id):
        """The instance as Nova would show it: ``RESIZE`` / ``MIGRATING``
        / ``BUILD`` while an action runs (old flavor and source host),
        ``VERIFY_RESIZE`` once a resize is done and not yet confirmed."""
        work = self._workload(instance_id)
        status = self._status(instance_id, work)
        action = self._pending.get(instance_id)
        shown = work
        if status in ('RESIZE', 'MIGRATING') and action:
            shown = action['previous']
        metadata = {'profile': work.profile.name}
        metadata.update(self._metadata.get(instance_id, {}))
        flavor = {'vcpus': shown.vcpus, 'ram_mb': shown.ram_mb,
                  'disk_gb': shown.disk_gb}
        name = self._flavor_names.get(instance_id)
        if name and shown is work:
            flavor['name'] = name
        return base.Instance(
            instance_id=instance_id, host=shown.host, flavor=flavor,
            status=status, name=instance_id, metadata=metadata,
            server_group=work.group,
            project_id=self._projects.get(instance_id),
            volume_backed=self._volume_backed.get(instance_id, False))

    def list_instances(self, project_ids=None):
        """Every full VM the twin runs (the twin has one project)."""
        ids = sorted({w.reported_id for w in self.twin.workloads.values()
                      if w.kind == 'vm' and (
                          w.stopped_at is None
                          or w.stopped_at > self.twin.clock)})
        return [self.get_instance(i) for i in ids
                if self._instances.get(i)]

    def _settle(self, instance_id):
        """Forget a finished migration or boot (a resize waits for its
        confirmation)."""
        action = self._pending.get(instance_id)
        if (action is not None and action['kind'] != 'resize'
                and self.twin.clock >= action['done_at']):
            del self._pending[instance_id]

    def _check_idle(self, instance_id):
        self._settle(instance_id)
        work = self._workload(instance_id)
        status = self._status(instance_id, work)
        if status != 'ACTIVE':
            raise base.CloudError(
                'instance %s is %s; it cannot start another action'
                % (instance_id, status), host=work.host, retryable=True)
        return work

    def _continue(self, instance_id, stop_at, start_at, **changes):
        """End the instance's current segment at ``stop_at`` and start its
        next one (new flavor or host) at ``start_at`` under the same
        instance id, the profile's clock running on."""
        work = self._workload(instance_id)
        fields = {'vcpus': work.vcpus, 'ram_mb': work.ram_mb,
                  'disk_gb': work.disk_gb, 'host': work.host}
        fields.update(changes)
        if fields['host'] not in self.ensure_hosts([fields['host']]):
            raise base.CloudError('the twin has no host %s'
                                  % fields['host'], host=fields['host'])
        departs_at = work.stopped_at
        if departs_at is None or departs_at > stop_at:
            work.stopped_at = stop_at
        self._segments += 1
        new = engine.Workload(
            workload_id='%s#%d' % (instance_id, self._segments), kind='vm',
            profile=work.profile, started_at=start_at,
            stopped_at=departs_at, instance_id=instance_id,
            profile_start=work.profile_origin, group=work.group,
            noise_name=work.noise_name, **fields)
        if new.host == work.host:
            # A resize in place is neither a departure nor an arrival.
            self._not_departed.add(work.workload_id)
            self._not_arrived.add(new.workload_id)
        self.twin.start_workload(new)
        self._instances[instance_id] = new.workload_id
        return work, new

    def resize(self, instance_id, flavor):
        """Resize in place, taking ``[sim] resize_duration`` seconds: the
        VM runs on its old flavor, is down for the last
        ``resize_downtime`` seconds (the guest shuts down and boots on the
        new flavor), then runs on ``flavor`` in ``VERIFY_RESIZE`` until
        :meth:`confirm_resize`."""
        self._check_idle(instance_id)
        work = self._workload(instance_id)
        disk = int(flavor.get('disk_gb', 0))
        if (not self._volume_backed.get(instance_id, False)
                and 0 < disk < work.disk_gb):
            # Nova's API: the image's copy on the host cannot shrink.
            raise base.CloudError(
                "Resizing %s failed: Flavor's disk is smaller than the "
                'minimum size specified in image metadata (%d GB < %d GB)'
                % (instance_id, disk, work.disk_gb), host=work.host)
        opts = self.conf.sim
        now = self.twin.clock
        done_at = now + opts.resize_duration
        down_at = done_at - min(opts.resize_downtime, opts.resize_duration)
        previous, _new = self._continue(
            instance_id, down_at, done_at, vcpus=int(flavor['vcpus']),
            ram_mb=int(flavor['ram_mb']),
            disk_gb=int(flavor.get('disk_gb', 0)))
        self._flavor_names[instance_id] = flavor.get('name')
        self._pending[instance_id] = {'kind': 'resize', 'done_at': done_at,
                                      'previous': previous}
        LOG.info('Twin: resizing %s to %s vCPUs, done at +%.0f s',
                 instance_id, flavor['vcpus'], done_at - now)

    def confirm_resize(self, instance_id):
        """Confirm a finished resize (the twin frees nothing more: the old
        flavor stopped when the guest went down)."""
        work = self._workload(instance_id)
        if self._status(instance_id, work) != 'VERIFY_RESIZE':
            raise base.CloudError('instance %s has no resize to confirm'
                                  % instance_id, host=work.host)
        del self._pending[instance_id]

    def migration_duration(self, ram_mb):
        """Seconds a live migration of ``ram_mb`` takes: set-up plus the
        memory copied once and its re-dirtied share again, over the
        migration bandwidth."""
        opts = self.conf.sim
        copied_mbit = ram_mb * 8.0 * (1.0 + opts.migration_dirty_ratio)
        return (opts.migration_setup
                + copied_mbit / opts.migration_bandwidth_mbps)

    def live_migrate(self, instance_id, host):
        """Live-migrate to ``host`` (None: the twin picks, as Nova's
        scheduler would): the VM keeps running on its source
        for :meth:`migration_duration` seconds while both hosts carry the
        copy's load (``[sim] migration_cpu_vcpus`` and a network stream of
        ``migration_bandwidth_mbps``), pauses for ``migration_pause``, and
        runs on ``host`` after."""
        work = self._check_idle(instance_id)
        if host is None:
            # Nova's scheduler picks: the twin's stand-in is the other
            # host with the most free RAM.
            host = max((h for h in self.host_names() if h != work.host),
                       key=lambda h: (self.nova_view(h)['free_ram_mb'], h))
        if host == work.host:
            raise base.CloudError('instance %s already runs on %s'
                                  % (instance_id, host), host=host)
        opts = self.conf.sim
        now = self.twin.clock
        done_at = now + self.migration_duration(work.ram_mb)
        previous, _new = self._continue(
            instance_id, done_at - opts.migration_pause, done_at, host=host)
        overhead = _migration_profile(opts)
        for side in (previous.host, host):
            self._segments += 1
            self.twin.start_workload(engine.Workload(
                workload_id='%s#migration-%d' % (instance_id,
                                                 self._segments),
                kind='overhead', host=side, profile=overhead,
                vcpus=max(1, int(math.ceil(opts.migration_cpu_vcpus))),
                ram_mb=0, disk_gb=0, started_at=now, stopped_at=done_at))
        self._pending[instance_id] = {'kind': 'live_migrate',
                                      'done_at': done_at,
                                      'previous': previous}
        LOG.info('Twin: live-migrating %s from %s to %s, done at +%.0f s',
                 instance_id, previous.host, host, done_at - now)

    def why_no_sibling(self, instance):
        """A VM booted from a volume not made from an image gets no
        sibling (the openstack driver's reason)."""
        made_from = self._volume_not_from_image.get(instance.instance_id)
        if made_from is None:
            return None
        return base.no_sibling_image('%s-root' % instance.instance_id,
                                     made_from or None)

    def boot_sibling(self, instance_id, name=None, host=None,
                     metadata=None):
        """Another VM like ``instance_id`` (same flavor, profile, server
        group, project and metadata, with ``metadata`` added) on ``host``
        (default: the host with the most free RAM, the twin's stand-in
        for Nova's scheduler), up after
        ``[sim] boot_duration`` seconds; it takes its share of the group's
        load from then on.  A sibling of a VM booted from a volume boots
        from a volume too (a new one of the image), unless the VM's root
        volume was not made from an image (:meth:`why_no_sibling`)."""
        work = self._workload(instance_id)
        refusal = self.why_no_sibling(self.get_instance(instance_id))
        if refusal is not None:
            raise base.CloudError('%s: %s' % (instance_id, refusal),
                                  host=work.host)
        if host is None:
            host = max(self.host_names(),
                       key=lambda h: (self.nova_view(h)['free_ram_mb'], h))
        sibling = name or '%s-sibling-%d' % (instance_id,
                                             len(self.twin.workloads))
        if work.group is None:
            work.group = instance_id
        request = {'flavor': {'vcpus': work.vcpus, 'ram_mb': work.ram_mb,
                              'disk_gb': work.disk_gb,
                              'name': self._flavor_names.get(instance_id)}}
        done_at = self.twin.clock + self.conf.sim.boot_duration
        self.place_vm(request, host, instance_id=sibling,
                      profile=work.profile, server_group=work.group,
                      metadata=dict(self._metadata.get(instance_id) or {},
                                    **(metadata or {})),
                      starts_at=done_at, profile_start=work.profile_origin,
                      volume_backed=self._volume_backed.get(instance_id,
                                                            False),
                      project_id=self._projects.get(instance_id))
        if name is None:
            # Its id counts every workload of the twin; keyed noise knows
            # it by a count of this instance's siblings alone, so another
            # group's scaling does not change its noise.
            count = self._siblings_booted.get(instance_id, 0) + 1
            self._siblings_booted[instance_id] = count
            self.twin.workloads[sibling].noise_name = '%s-sibling-%d' % (
                instance_id, count)
        self._pending[sibling] = {'kind': 'boot', 'done_at': done_at,
                                  'previous': self.twin.workloads[sibling]}
        return self.get_instance(sibling)

    def delete_instance(self, instance_id):
        current = self._instances.get(instance_id, instance_id)
        work = self.twin.workloads.get(current)
        clock = self.twin.clock
        if work is not None and (work.stopped_at is None
                                 or work.stopped_at > clock):
            # A sibling still booting never runs.
            work.started_at = min(work.started_at, clock)
            work.stopped_at = clock
        self._pending.pop(instance_id, None)

    def churn(self, host, window_s=FEATURE_WINDOW_S):
        """VMs created on and deleted from ``host`` in the last
        ``window_s`` (what Nova's instance actions or notifications tell a
        real deployment; the background tenants never change)."""
        now = self.twin.clock
        since = now - window_s
        arrived = departed = 0
        # (1 ms past now: the twin's clock is Unix seconds, where 1e-9
        # is below a float's resolution.)
        for work in self.twin.workloads_on(host, since, now + 1e-3):
            if work.kind != 'vm':
                continue
            arrived += (since < work.started_at <= now
                        and work.workload_id not in self._not_arrived)
            departed += (work.stopped_at is not None
                         and since < work.stopped_at <= now
                         and work.workload_id not in self._not_departed)
        return {facts.VM_ARRIVALS_24H: int(arrived),
                facts.VM_DEPARTURES_24H: int(departed)}

    def nova_view(self, host):
        """What Nova's resource tracker knows of ``host`` (allocations,
        not usage), as ComputeNode fields.  A VM still booting counts:
        its allocation was claimed when it was scheduled, so several VMs
        placed at once spread instead of piling onto the same host."""
        sim_host = self.twin.host(host)
        hc = sim_host.host_class
        per_vcpu_gb = self.twin.cluster.assumptions['tenant_disk_gb_per_vcpu']
        vms = self.twin.claimed(kind='vm', host=host)
        vcpus_used = sim_host.allocated_vcpus + sum(w.vcpus for w in vms)
        ram_used = sim_host.allocated_ram_mb + sum(w.ram_mb for w in vms)
        disk_used = int(sim_host.allocated_vcpus * per_vcpu_gb
                        + sum(w.disk_gb for w in vms))
        return {'vcpus': hc.cores, 'vcpus_used': vcpus_used,
                'memory_mb': hc.memory_mb, 'memory_mb_used': ram_used,
                'local_gb': hc.disk_gb, 'local_gb_used': disk_used,
                'free_ram_mb': hc.memory_mb - ram_used,
                'free_disk_gb': hc.disk_gb - disk_used,
                'running_vms': len(sim_host.tenants) + len(vms)}

    @property
    def oracle(self):
        """Hidden-state access for benchmarks only (never for ranking)."""
        return oracle_mod.Oracle(self.twin)

    def _contention_features(self, name, observed, recent):
        """The regressors of ``shadow_service.analysis.contention``
        (``hostfacts.CONTENTION_FEATURES``) from the last ``recent``
        monitoring steps."""
        hc = self.twin.host(name).host_class
        now = {m: float(np.mean(v[-recent:])) for m, v in observed.items()}
        return {
            facts.CPU_UTIL_PCT: now['cpu_util_pct'],
            facts.CPU_STEAL_PCT: now['cpu_steal_pct'],
            facts.MEM_BW_UTIL: (now['mem_bandwidth_gbps']
                                / hc.mem_bandwidth_gbps),
            facts.IO_UTIL: now['disk_iops'] / hc.disk_iops,
            facts.NUM_INSTANCES: self.nova_view(name)['running_vms'],
        }

    def _features(self, name, times):
        sim_host = self.twin.host(name)
        hc = sim_host.host_class
        observed = {metric: self.twin.noisy(values, self.twin.host_noise_pct,
                                            key=('host', name, metric),
                                            times=times)
                    for metric, values in
                    self.twin.host_observation(name, times).items()}
        recent = max(1, int(math.ceil(900.0 / FEATURE_STEP_S)))
        features = {
            facts.HARDWARE_CLASS: hc.name,
            facts.CORES: hc.cores,
            facts.CLOCK_GHZ: hc.clock_ghz,
            facts.MEMORY_MB: hc.memory_mb,
            facts.RATED_MEM_BANDWIDTH_GBPS: hc.mem_bandwidth_gbps,
            facts.RATED_DISK_IOPS: hc.disk_iops,
            facts.NIC_MBPS: hc.nic_mbps,
        }
        features.update({k: v for k, v in self.nova_view(name).items()
                         if k in (facts.VCPUS_USED, facts.MEMORY_MB_USED,
                                  facts.RUNNING_VMS)})
        features.update(self._contention_features(name, observed, recent))
        features.update(self.churn(name))
        for metric, values in observed.items():
            features[facts.stat(metric, facts.STAT_NOW)] = float(
                np.mean(values[-recent:]))
            features[facts.stat(metric, facts.STAT_MEAN_24H)] = float(
                np.mean(values))
            features[facts.stat(metric, facts.STAT_P95_24H)] = float(
                np.percentile(values, 95))
        return features
