"""The twin's cluster description: hardware classes, hosts and tenants.

A cluster file is YAML (see ``data/cluster.yaml``, the default 16-host,
3-class cluster) with four sections: ``assumptions`` (conversion constants),
``classes`` (hardware), ``tenants`` (how background tenants are drawn) and
``hosts`` (name, class and optionally explicit tenants), and optionally a
fifth, ``neighbours``: synthetic noisy neighbours (a steady or bursty
demand of CPU, memory bandwidth, disk and network that no trace has) and
the share of hosts that carry each.  Load one with :func:`load_cluster`.

Any host name can be asked for, not only those in the file: an unknown host
gets a class and its tenants drawn from the seed and its name
(:meth:`Cluster.host_spec`), so the same name always becomes the same host.
"""

import dataclasses
import hashlib
import logging
import os

import numpy as np
import yaml

LOG = logging.getLogger(__name__)

DEFAULT_CLUSTER_FILE = os.path.join(os.path.dirname(__file__), 'data',
                                    'cluster.yaml')

CLASS_FIELDS = ('cores', 'clock_ghz', 'memory_mb', 'disk_gb',
                'mem_bandwidth_gbps', 'mem_idle_latency_ns', 'disk_iops',
                'disk_service_ms', 'nic_mbps', 'net_base_rtt_ms')

DEFAULT_ASSUMPTIONS = {
    'mem_gbps_per_busy_core': 1.0,
    'io_size_kb': 8.0,
    'worker_stream_gbps': 10.0,
    'ops_per_ghz': 1000.0,
    'cpu_memory_fraction': 0.2,
    'nic_service_ms': 0.02,
    'stream_mbps_per_connection': 100.0,
    'tenant_disk_gb_per_vcpu': 10.0,
    # CPU milliseconds one I/O of a workload's disk part costs its VM
    # (0: I/O costs no CPU; see shadow_service.clouds.sim.workload).
    'io_cpu_ms_per_op': 0.0,
    # Work lost per unit of CPU oversubscription (0: pure processor
    # sharing; see shadow_service.clouds.sim.contention).
    'cpu_sharing_overhead': 0.0,
    # Milliseconds added to every disk p95 latency: the wait a rate-
    # limited device's throttle adds even to a lone closed loop (0: none;
    # see shadow_service.clouds.sim.workload).
    'disk_p95_floor_ms': 0.0,
    # Milliseconds each I/O of a closed-loop disk job waits per unit of
    # the CPU steal its VM's co-tenants cause, before its thread issues
    # the next (0: a disk job's IOPS react to disk contention only; see
    # shadow_service.clouds.sim.contention.closed_loop_cpu_wait).
    'disk_steal_wait_ms': 0.0,
}

DEFAULT_TENANT_POLICY = {
    'vcpu_allocation_ratio': [0.8, 2.6],
    'max_ram_fill': 0.85,
    'bitbrains_share': 0.6,
    'planetlab_vcpus': [1, 2, 4],
    'planetlab_ram_mb_per_vcpu': 4096,
}


#: Fields of a noisy neighbour (``neighbours`` section); the demand
#: fields are the levels while it is busy.
NEIGHBOUR_FIELDS = ('vcpus', 'ram_mb', 'busy_vcpus', 'mem_gbps',
                    'disk_iops', 'net_mbps')
#: Optional fields: ``share`` of hosts drawn to carry one; a bursty
#: neighbour is busy ``burst_s`` of every ``period_s`` (at a phase drawn
#: per host) and at ``quiet`` times its levels otherwise.
NEIGHBOUR_OPTIONAL = ('share', 'period_s', 'burst_s', 'quiet')


class ClusterError(Exception):
    """A cluster file is missing, malformed or inconsistent."""


@dataclasses.dataclass(frozen=True)
class HostClass:
    """Hardware of one class of hosts (units in the field names)."""

    name: str
    cores: int
    clock_ghz: float
    memory_mb: int
    disk_gb: int
    mem_bandwidth_gbps: float
    mem_idle_latency_ns: float
    disk_iops: float
    disk_service_ms: float
    nic_mbps: float
    net_base_rtt_ms: float
    description: str = ''
    weight: float = 1.0
    # Tenants' vCPUs as a multiple of cores, [low, high]; None: the
    # cluster's ``tenants.vcpu_allocation_ratio``.
    vcpu_allocation_ratio: tuple = None


@dataclasses.dataclass(frozen=True)
class Neighbour:
    """A synthetic noisy neighbour: demand while busy (units in the field
    names) and, when ``period_s`` is set, a burst of ``burst_s`` every
    ``period_s`` with ``quiet`` times the levels in between."""

    name: str
    vcpus: int
    ram_mb: int
    busy_vcpus: float
    mem_gbps: float
    disk_iops: float
    net_mbps: float
    share: float = 0.0
    period_s: float = 0.0
    burst_s: float = 0.0
    quiet: float = 0.0

    def level(self, elapsed_s, phase_s=0.0):
        """Multiplier of the busy levels at ``elapsed_s`` (array)."""
        elapsed_s = np.asarray(elapsed_s, dtype=float)
        if not self.period_s:
            return np.ones_like(elapsed_s)
        position = np.mod(elapsed_s - phase_s, self.period_s)
        return np.where(position < self.burst_s, 1.0, self.quiet)


@dataclasses.dataclass(frozen=True)
class TenantSpec:
    """One background tenant: which trace, shifted by how many steps, or
    a synthetic :class:`Neighbour` (``kind`` 'neighbour', no path)."""

    kind: str           # 'bitbrains', 'planetlab' or 'neighbour'
    path: str
    offset_steps: int
    vcpus: int = 0      # 0: the trace's own size
    ram_mb: int = 0
    neighbour: Neighbour = None
    phase_s: float = 0.0


@dataclasses.dataclass(frozen=True)
class HostSpec:
    name: str
    host_class: HostClass
    tenants: tuple


def stable_rng(*parts):
    """A numpy Generator seeded from ``parts`` (stable across runs and
    Python versions, unlike ``hash()``)."""
    digest = hashlib.sha256(
        '\x1f'.join(str(p) for p in parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], 'little'))


def _parse_class(name, spec):
    if not isinstance(spec, dict):
        raise ClusterError('class %r must be a mapping' % name)
    missing = [f for f in CLASS_FIELDS if f not in spec]
    if missing:
        raise ClusterError('class %r lacks %s' % (name, ', '.join(missing)))
    values = {}
    for field in CLASS_FIELDS + ('weight',):
        if field not in spec:
            continue
        value = spec[field]
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or value <= 0:
            raise ClusterError('class %r: %s must be a positive number, '
                               'got %r' % (name, field, value))
        values[field] = value
    ratio = spec.get('vcpu_allocation_ratio')
    if ratio is not None:
        if not isinstance(ratio, (list, tuple)) or len(ratio) != 2 or \
                not 0 <= ratio[0] <= ratio[1]:
            raise ClusterError('class %r: vcpu_allocation_ratio must be '
                               '[low, high], got %r' % (name, ratio))
        ratio = (float(ratio[0]), float(ratio[1]))
    return HostClass(name=name, description=str(spec.get('description', '')),
                     vcpu_allocation_ratio=ratio, **values)


def _parse_neighbour(name, spec):
    if not isinstance(spec, dict):
        raise ClusterError('neighbour %r must be a mapping' % name)
    missing = [f for f in NEIGHBOUR_FIELDS if f not in spec]
    if missing:
        raise ClusterError('neighbour %r lacks %s'
                           % (name, ', '.join(missing)))
    unknown = sorted(set(spec) - set(NEIGHBOUR_FIELDS)
                     - set(NEIGHBOUR_OPTIONAL) - {'description'})
    if unknown:
        raise ClusterError('neighbour %r: unknown field(s) %s'
                           % (name, ', '.join(unknown)))
    values = {}
    for field in NEIGHBOUR_FIELDS + NEIGHBOUR_OPTIONAL:
        if field not in spec:
            continue
        value = spec[field]
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or value < 0:
            raise ClusterError('neighbour %r: %s must be a number >= 0, '
                               'got %r' % (name, field, value))
        values[field] = value
    if values['vcpus'] < 1 or values['ram_mb'] < 1:
        raise ClusterError('neighbour %r: vcpus and ram_mb must be >= 1'
                           % name)
    if values['busy_vcpus'] > values['vcpus']:
        raise ClusterError('neighbour %r: busy_vcpus exceeds vcpus' % name)
    if values.get('period_s') and not \
            0 < values.get('burst_s', 0) <= values['period_s']:
        raise ClusterError('neighbour %r: burst_s must be in (0, period_s]'
                           % name)
    if values.get('quiet', 0) > 1:
        raise ClusterError('neighbour %r: quiet must be in [0, 1]' % name)
    values['vcpus'] = int(values['vcpus'])
    values['ram_mb'] = int(values['ram_mb'])
    return Neighbour(name=name, **values)


def _parse_assumptions(spec):
    """The ``assumptions`` section: every figure the twin knows
    (:data:`DEFAULT_ASSUMPTIONS`) is a number, none negative; a name the
    twin does not know (a typo would otherwise leave the default in force
    unnoticed) is an error naming it."""
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise ClusterError('assumptions must be a mapping')
    unknown = sorted(str(field) for field in spec
                     if field not in DEFAULT_ASSUMPTIONS)
    if unknown:
        raise ClusterError('assumptions: unknown %s %s (known: %s)' % (
            'field' if len(unknown) == 1 else 'fields',
            ', '.join(unknown), ', '.join(sorted(DEFAULT_ASSUMPTIONS))))
    for field in DEFAULT_ASSUMPTIONS:
        if field not in spec:
            continue
        value = spec[field]
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not value >= 0:
            raise ClusterError('assumptions: %s must be a non-negative '
                               'number, got %r' % (field, value))
    return spec


class Cluster:
    """Parsed cluster file plus the trace library its tenants replay."""

    def __init__(self, data, library, seed=0):
        if not isinstance(data, dict):
            raise ClusterError('a cluster file must be a mapping')
        self.library = library
        self.seed = seed
        self.assumptions = dict(DEFAULT_ASSUMPTIONS)
        self.assumptions.update(_parse_assumptions(data.get('assumptions')))
        self.tenant_policy = dict(DEFAULT_TENANT_POLICY)
        self.tenant_policy.update(data.get('tenants') or {})
        classes = data.get('classes') or {}
        if not classes:
            raise ClusterError('a cluster file needs at least one class')
        self.classes = {name: _parse_class(name, spec)
                        for name, spec in classes.items()}
        self.neighbours = {
            name: _parse_neighbour(name, spec)
            for name, spec in (data.get('neighbours') or {}).items()}
        if sum(n.share for n in self.neighbours.values()) > 1.0 + 1e-9:
            raise ClusterError('the neighbours\' shares add up to more '
                               'than 1')
        self._declared = {}
        for entry in data.get('hosts') or []:
            self._declare_host(entry)

    def _declare_host(self, entry):
        if not isinstance(entry, dict) or 'name' not in entry:
            raise ClusterError('each host needs a name: %r' % (entry,))
        class_name = entry.get('class')
        if class_name not in self.classes:
            raise ClusterError('host %s: unknown class %r (known: %s)'
                               % (entry['name'], class_name,
                                  ', '.join(sorted(self.classes))))
        for name in entry.get('neighbours') or ():
            if name not in self.neighbours:
                raise ClusterError('host %s: unknown neighbour %r (known: '
                                   '%s)' % (entry['name'], name, ', '.join(
                                       sorted(self.neighbours)) or 'none'))
        self._declared[str(entry['name'])] = entry

    @property
    def host_names(self):
        """Hosts declared in the file, in file order."""
        return list(self._declared)

    def host_spec(self, name):
        """The :class:`HostSpec` of ``name``, declared or derived."""
        entry = self._declared.get(name)
        if entry is None:
            host_class = self._derived_class(name)
        else:
            host_class = self.classes[entry['class']]
        neighbours = self._neighbours(name, entry)
        if entry is not None and entry.get('tenants') is not None:
            tenants = neighbours + tuple(self._explicit_tenant(name, t)
                                         for t in entry['tenants'])
        else:
            tenants = self._drawn_tenants(name, host_class, neighbours)
        return HostSpec(name=name, host_class=host_class, tenants=tenants)

    def _neighbours(self, name, entry):
        """The noisy neighbours of host ``name``: those its entry lists,
        else at most one drawn by the neighbours' shares (from the seed
        and the name); a bursty one gets a phase drawn the same way."""
        rng = stable_rng(self.seed, 'neighbours', name)
        draw, phase = rng.random(), rng.random()
        if entry is not None and entry.get('neighbours') is not None:
            chosen = [self.neighbours[n] for n in entry['neighbours']]
        else:
            chosen, edge = [], 0.0
            for kind in self.neighbours.values():
                edge += kind.share
                if draw < edge:
                    chosen = [kind]
                    break
        return tuple(TenantSpec(kind='neighbour', path='', offset_steps=0,
                                vcpus=kind.vcpus, ram_mb=kind.ram_mb,
                                neighbour=kind,
                                phase_s=phase * (kind.period_s or 0.0))
                     for kind in chosen)

    def _derived_class(self, name):
        names = sorted(self.classes)
        weights = np.array([self.classes[n].weight for n in names], float)
        rng = stable_rng(self.seed, 'class', name)
        return self.classes[names[rng.choice(len(names),
                                             p=weights / weights.sum())]]

    def _explicit_tenant(self, host, spec):
        path = os.path.join(self.library.trace_dir, spec['trace'])
        kind = 'planetlab' if 'planetlab' in spec['trace'] else 'bitbrains'
        if not os.path.exists(path):
            raise ClusterError('host %s: trace %s not found' % (host, path))
        return TenantSpec(kind=kind, path=path,
                          offset_steps=int(spec.get('offset_steps', 0)),
                          vcpus=int(spec.get('vcpus', 0)),
                          ram_mb=int(spec.get('ram_mb', 0)))

    def _drawn_tenants(self, name, host_class, neighbours=()):
        """Trace tenants drawn until the host's budgets are spent; the
        ``neighbours`` come first and count against the RAM budget, so a
        host with a noisy neighbour has as much RAM allocated as the
        others (its vCPUs allocated grow by the neighbour's)."""
        policy = self.tenant_policy
        rng = stable_rng(self.seed, 'tenants', name)
        low, high = (host_class.vcpu_allocation_ratio
                     or policy['vcpu_allocation_ratio'])
        vcpu_budget = host_class.cores * rng.uniform(low, high)
        ram_budget = host_class.memory_mb * policy['max_ram_fill']
        paths = self.library.paths
        tenants = list(neighbours)
        vcpus = 0
        ram_mb = sum(t.ram_mb for t in neighbours)
        for _attempt in range(64):
            tenant = self._draw_tenant(rng, paths)
            trace = self.library.load(tenant.kind, tenant.path)
            t_vcpus = tenant.vcpus or trace.vcpus
            t_ram = tenant.ram_mb or trace.ram_mb
            if vcpus + t_vcpus > vcpu_budget or ram_mb + t_ram > ram_budget:
                continue
            tenants.append(tenant)
            vcpus += t_vcpus
            ram_mb += t_ram
        return tuple(tenants)

    def _draw_tenant(self, rng, paths):
        policy = self.tenant_policy
        use_bitbrains = paths['bitbrains'] and (
            not paths['planetlab']
            or rng.random() < policy['bitbrains_share'])
        if use_bitbrains:
            path = paths['bitbrains'][rng.integers(len(paths['bitbrains']))]
            # Whole days keep the trace's time of day aligned with the clock.
            return TenantSpec('bitbrains', path,
                              offset_steps=int(rng.integers(0, 28)) * 288)
        path = paths['planetlab'][rng.integers(len(paths['planetlab']))]
        vcpus = int(rng.choice(policy['planetlab_vcpus']))
        return TenantSpec('planetlab', path, offset_steps=0, vcpus=vcpus,
                          ram_mb=vcpus * int(
                              policy['planetlab_ram_mb_per_vcpu']))


def load_cluster(path=None, library=None, seed=0):
    """Read a cluster YAML file (the bundled default when ``path`` is
    None) into a :class:`Cluster`."""
    from shadow_service.clouds.sim import traces
    path = path or DEFAULT_CLUSTER_FILE
    try:
        with open(path) as handle:
            data = yaml.safe_load(handle)
    except OSError as exc:
        raise ClusterError('cannot read cluster file %s: %s'
                           % (path, exc.strerror)) from None
    except yaml.YAMLError as exc:
        raise ClusterError('cluster file %s is not valid YAML: %s'
                           % (path, exc)) from None
    return Cluster(data, library or traces.TraceLibrary(), seed=seed)
