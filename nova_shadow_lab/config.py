"""The lab configuration: emulated hosts, their share of this machine and
their background tenants.

A YAML (or JSON) file; every key is optional unless marked::

    lab:
      cgroup_prefix: nova-shadow-lab   # <mount>/<prefix>/<run>/<host>/...
      state_dir: /var/tmp/nova-shadow-lab  # runs keep instance roots here
      keep_state: false        # keep a run's files (logs) after it ends
      instance_pids_max: 512   # pids.max of each instance
      instance_memory_from_flavor: true  # instance memory limit = flavor
      console_max_bytes: 1048576         # console log kept per instance
      cpu_shares: 10240        # weight of the whole lab against the rest
                               # of the machine (so the hosts' quotas hold
                               # when the machine is busy)
    defaults:                  # merged into every host; the host wins
      resources: {vcpus: 8, memory_mb: 16384, disk_gb: 200}
      share: {cpu: 0.5, memory_mb: 2048, pids_max: 1024}
    hosts:                     # required, at least one
      - name: lab1             # required; the nova-compute host name
        resources:             # what Placement is told (emulated)
          vcpus: 8
          memory_mb: 16384
          disk_gb: 200
        share:                 # what this machine really gives the host
          cpu: 0.5             # CPUs: CFS quota = cpu * cpu_period_us
          cpu_period_us: 100000
          cpu_shares: 1024     # weight against the other hosts
          cpuset: "0"          # pin the host to these CPUs
          cpu_per_vcpu: null   # cap each instance at vcpus * this CPUs
          memory_mb: 2048      # memory.limit_in_bytes of the host
          pids_max: 1024
          blkio:               # on the disk holding lab.state_dir
            weight: null       # needs the bfq I/O scheduler
            read_bps: null
            write_bps: null
            read_iops: null
            write_iops: null
          disk:                # a disk of the host's own (instead of blkio)
            size_mb: null      # RAM-backed ext4 device of this size holding
                               # the host's instance and tenant disks
            read_iops: null    # throttles on that device, one budget for
            write_iops: null   # all of the host's I/O (its instances and
            read_bps: null     # tenants compete for it as on one disk)
            write_bps: null
        tenants:               # noisy neighbours in the host's cgroup
          - kind: cpu          # cpu | memory-bandwidth | disk | bursty
            name: burner       # default <kind>-<index>
            intensity: 0.5     # duty cycle of each worker, 0-1
            workers: 1
          - kind: cpu
            trace:             # intensity over time from a real trace
              path: /work/shared/traces/planetlab/20110303/<vm>
              format: planetlab    # planetlab | bitbrains | csv
              step_s: 300
              speedup: 60          # replay 60x faster than real time

Tenant keys per kind: ``memory-bandwidth`` takes ``working_set_mb``
(default 128); ``disk`` takes ``file_size_mb`` (64), ``block_size_kb``
(64), ``read_ratio`` (0.5), ``direct`` (true, so blkio throttling and
accounting apply); ``bursty`` takes ``every_s`` (10), ``length_s`` (2) and
``base`` (0.05: the intensity multiplier between bursts). Tenants run
loadgen (``loadgen/profiles``); a ``trace`` becomes loadgen's ``trace``
pattern with the values inline. Relative trace paths are resolved against
the config file's directory.

Errors raise :class:`LabConfigError` naming the field
(``hosts[1].share.cpu``). Add a key by extending the ``_*_KEYS`` tuple and
its parser below.
"""

import dataclasses
import os
import re

import yaml

_HOST_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z')
_TOP_KEYS = ('lab', 'defaults', 'hosts')
_LAB_KEYS = ('cgroup_prefix', 'state_dir', 'keep_state',
             'instance_pids_max', 'instance_memory_from_flavor',
             'console_max_bytes', 'cpu_shares')
_HOST_KEYS = ('name', 'resources', 'share', 'tenants')
_RESOURCE_KEYS = ('vcpus', 'memory_mb', 'disk_gb')
_SHARE_KEYS = ('cpu', 'cpu_period_us', 'cpu_shares', 'cpuset',
               'cpu_per_vcpu', 'memory_mb', 'pids_max', 'blkio', 'disk')
_BLKIO_KEYS = ('weight', 'read_bps', 'write_bps', 'read_iops',
               'write_iops')
_DISK_KEYS = ('size_mb', 'read_bps', 'write_bps', 'read_iops',
              'write_iops')
TENANT_KINDS = ('cpu', 'memory-bandwidth', 'disk', 'bursty')
_TENANT_KEYS = {
    'cpu': ('workers',),
    'memory-bandwidth': ('workers', 'working_set_mb'),
    'disk': ('file_size_mb', 'block_size_kb', 'read_ratio', 'direct'),
    'bursty': ('workers', 'every_s', 'length_s', 'base'),
}
_TRACE_KEYS = ('path', 'format', 'column', 'step_s', 'speedup', 'scale',
               'normalise', 'offset_s')
DEFAULT_STATE_DIR = '/var/tmp/nova-shadow-lab'
TENANT_RUN_S = 30 * 86400.0 - 60.0
TENANT_INTERVAL_S = 5.0


class LabConfigError(ValueError):
    """A lab config that cannot be used; ``field`` names what is wrong."""

    def __init__(self, field, message, source=None):
        self.field = field
        self.message = message
        self.source = source
        where = 'lab config %s: ' % source if source else 'lab config: '
        super().__init__('%s%s: %s' % (where, field, message))


@dataclasses.dataclass(frozen=True)
class LabSettings:
    cgroup_prefix: str = 'nova-shadow-lab'
    state_dir: str = DEFAULT_STATE_DIR
    keep_state: bool = False
    instance_pids_max: int = 512
    instance_memory_from_flavor: bool = True
    console_max_bytes: int = 1024 * 1024
    cpu_shares: int = 10240


@dataclasses.dataclass(frozen=True)
class Resources:
    vcpus: int = 8
    memory_mb: int = 16384
    disk_gb: int = 200


@dataclasses.dataclass(frozen=True)
class Blkio:
    weight: int = None
    read_bps: int = None
    write_bps: int = None
    read_iops: int = None
    write_iops: int = None


@dataclasses.dataclass(frozen=True)
class Disk:
    """A host disk of its own: a RAM-backed block device of ``size_mb``
    whose throttles are one budget for all of the host's I/O."""

    size_mb: int = None
    read_bps: int = None
    write_bps: int = None
    read_iops: int = None
    write_iops: int = None

    @property
    def throttles(self):
        return {k: v for k, v in vars(self).items()
                if k != 'size_mb' and v is not None}


@dataclasses.dataclass(frozen=True)
class Share:
    cpu: float = None
    cpu_period_us: int = 100000
    cpu_shares: int = None
    cpuset: str = None
    cpu_per_vcpu: float = None
    memory_mb: int = None
    pids_max: int = None
    blkio: Blkio = Blkio()
    disk: Disk = Disk()


@dataclasses.dataclass(frozen=True)
class Tenant:
    name: str
    kind: str
    profile: dict  # a validated loadgen profile (``Profile.to_dict()``)


@dataclasses.dataclass(frozen=True)
class Host:
    name: str
    resources: Resources
    share: Share
    tenants: tuple


@dataclasses.dataclass(frozen=True)
class LabConfig:
    lab: LabSettings
    hosts: tuple
    source: str = None

    @property
    def host_names(self):
        return [h.name for h in self.hosts]

    def host(self, name):
        for host in self.hosts:
            if host.name == name:
                return host
        raise LabConfigError(
            'hosts', 'no host named %r (hosts: %s)'
            % (name, ', '.join(self.host_names)), self.source)


class _Reader:
    """Validation helpers that know the file they report about."""

    def __init__(self, source):
        self.source = source

    def fail(self, field, message):
        raise LabConfigError(field, message, self.source)

    def mapping(self, value, field, allowed):
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(field, 'must be a mapping, got %s'
                      % type(value).__name__)
        for key in value:
            if key not in allowed:
                self.fail('%s.%s' % (field, key) if field else str(key),
                          'unknown key; known: %s' % ', '.join(allowed))
        return value

    def number(self, spec, key, field, default=None, low=None, high=None,
               integer=False, low_open=False):
        value = spec.get(key, default)
        name = '%s.%s' % (field, key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(name, 'must be a number, got %r' % (value,))
        if integer:
            if isinstance(value, float) and not value.is_integer():
                self.fail(name, 'must be an integer, got %r' % value)
            value = int(value)
        else:
            value = float(value)
        if value != value or value in (float('inf'), float('-inf')):
            self.fail(name, 'must be finite')
        if low is not None and (value < low or (low_open and value == low)):
            self.fail(name, 'must be %s %g, got %g'
                      % ('>' if low_open else '>=', low, value))
        if high is not None and value > high:
            self.fail(name, 'must be <= %g, got %g' % (high, value))
        return value

    def boolean(self, spec, key, field, default):
        value = spec.get(key, default)
        if not isinstance(value, bool):
            self.fail('%s.%s' % (field, key), 'must be true or false, '
                      'got %r' % (value,))
        return value

    def text(self, spec, key, field, default=None, pattern=None):
        value = spec.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            self.fail('%s.%s' % (field, key), 'must be a non-empty string')
        if pattern is not None and not pattern.match(value):
            self.fail('%s.%s' % (field, key), 'must match %s, got %r'
                      % (pattern.pattern, value))
        return value


def _merge(defaults, override):
    merged = dict(defaults or {})
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _lab_settings(r, spec):
    spec = r.mapping(spec, 'lab', _LAB_KEYS)
    d = LabSettings()
    prefix = r.text(spec, 'cgroup_prefix', 'lab', d.cgroup_prefix,
                    re.compile(r'^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*\Z'))
    state_dir = r.text(spec, 'state_dir', 'lab', d.state_dir)
    if not os.path.isabs(state_dir):
        r.fail('lab.state_dir', 'must be an absolute path, got %r'
               % state_dir)
    return LabSettings(
        cgroup_prefix=prefix, state_dir=state_dir,
        keep_state=r.boolean(spec, 'keep_state', 'lab', d.keep_state),
        instance_pids_max=r.number(spec, 'instance_pids_max', 'lab',
                                   d.instance_pids_max, 8, 1 << 22,
                                   integer=True),
        instance_memory_from_flavor=r.boolean(
            spec, 'instance_memory_from_flavor', 'lab',
            d.instance_memory_from_flavor),
        console_max_bytes=r.number(spec, 'console_max_bytes', 'lab',
                                   d.console_max_bytes, 4096, 1 << 30,
                                   integer=True),
        cpu_shares=r.number(spec, 'cpu_shares', 'lab', d.cpu_shares, 2,
                            262144, integer=True))


def _resources(r, spec, field):
    spec = r.mapping(spec, field, _RESOURCE_KEYS)
    d = Resources()
    return Resources(
        vcpus=r.number(spec, 'vcpus', field, d.vcpus, 1, 4096, True),
        memory_mb=r.number(spec, 'memory_mb', field, d.memory_mb, 64,
                           1 << 30, True),
        disk_gb=r.number(spec, 'disk_gb', field, d.disk_gb, 1, 1 << 30,
                         True))


def _cpu_list(r, text, field, cpus):
    """The CPU numbers of a cpuset list such as ``0-1,3``; each must be
    one of this machine's ``cpus`` (what the kernel accepts)."""
    if not re.match(r'^\d+(-\d+)?(,\d+(-\d+)?)*$', text):
        r.fail(field, 'must be a CPU list such as "0" or "0-1,3", got %r'
               % text)
    numbers = set()
    for part in text.split(','):
        first, _sep, last = part.partition('-')
        first, last = int(first), int(last or first)
        if last < first:
            r.fail(field, 'range %s runs backwards' % part)
        numbers.update(range(first, min(last, cpus) + 1))
        if last >= cpus:
            r.fail(field, 'CPU %d does not exist: this machine has CPUs '
                   '0-%d' % (max(first, cpus), cpus - 1))
    return numbers


def _share(r, spec, field):
    spec = r.mapping(spec, field, _SHARE_KEYS)
    cpus = os.cpu_count() or 1
    period = r.number(spec, 'cpu_period_us', field, 100000, 1000, 1000000,
                      True)
    cpu = r.number(spec, 'cpu', field, None, 0.0, float(cpus),
                   low_open=True)
    if cpu is not None and cpu * period < 1000:
        r.fail(field + '.cpu', 'quota %g x %d us is below the kernel '
               'minimum of 1000 us; raise cpu_period_us' % (cpu, period))
    cpuset = spec.get('cpuset')
    if cpuset is not None:
        cpuset = str(cpuset)
        cpuset_cpus = _cpu_list(r, cpuset, field + '.cpuset', cpus)
        if cpu is not None and cpu > len(cpuset_cpus):
            r.fail(field + '.cpu', '%g CPUs cannot run on the %d CPU(s) of '
                   'cpuset %s' % (cpu, len(cpuset_cpus), cpuset))
    blkio_spec = r.mapping(spec.get('blkio'), field + '.blkio', _BLKIO_KEYS)
    blkio = Blkio(
        weight=r.number(blkio_spec, 'weight', field + '.blkio', None, 10,
                        1000, True),
        **{key: r.number(blkio_spec, key, field + '.blkio', None, 1,
                         1 << 50, True)
           for key in _BLKIO_KEYS[1:]})
    disk_spec = r.mapping(spec.get('disk'), field + '.disk', _DISK_KEYS)
    disk = Disk(
        size_mb=r.number(disk_spec, 'size_mb', field + '.disk', None, 64,
                         1 << 20, True),
        **{key: r.number(disk_spec, key, field + '.disk', None, 1,
                         1 << 50, True)
           for key in _DISK_KEYS[1:]})
    if disk.throttles and disk.size_mb is None:
        r.fail(field + '.disk.size_mb', 'is required when the disk has '
               'throttles (%s)' % ', '.join(sorted(disk.throttles)))
    if disk.size_mb is not None and any(vars(blkio).values()):
        r.fail(field + '.blkio', 'cannot be combined with share.disk: '
               'the disk\'s throttles are the host\'s I/O budget')
    return Share(
        cpu=cpu, cpu_period_us=period,
        cpu_shares=r.number(spec, 'cpu_shares', field, None, 2, 262144,
                            True),
        cpuset=cpuset,
        cpu_per_vcpu=r.number(spec, 'cpu_per_vcpu', field, None, 0.0,
                              float(cpus), low_open=True),
        memory_mb=r.number(spec, 'memory_mb', field, None, 16, 1 << 30,
                           True),
        pids_max=r.number(spec, 'pids_max', field, None, 16, 1 << 22, True),
        blkio=blkio, disk=disk)


def _trace_pattern(r, spec, field, base_dir):
    spec = r.mapping(spec, field, _TRACE_KEYS)
    if 'path' not in spec:
        r.fail(field + '.path', 'is required')
    path = r.text(spec, 'path', field)
    path = os.path.expanduser(path)
    if not os.path.isabs(path):
        path = os.path.join(base_dir, path)
    pattern = dict(spec, type='trace', path=path)
    pattern.setdefault('format', 'planetlab')
    pattern.setdefault('speedup', 60.0)
    return pattern


def _tenant(r, spec, field, index, base_dir):
    from loadgen import profiles
    from loadgen.errors import ProfileError

    if not isinstance(spec, dict):
        r.fail(field, 'must be a mapping with a kind')
    kind = spec.get('kind')
    if kind not in TENANT_KINDS:
        r.fail(field + '.kind', 'must be one of %s, got %r'
               % (', '.join(TENANT_KINDS), kind))
    r.mapping(spec, field, ('kind', 'name', 'intensity', 'trace') +
              _TENANT_KEYS[kind])
    name = r.text(spec, 'name', field, '%s-%d' % (kind, index),
                  _HOST_NAME)
    intensity = r.number(spec, 'intensity', field, 0.5, 0.0, 1.0,
                         low_open=True)
    workers = r.number(spec, 'workers', field, 1, 1, 64, True)
    if kind in ('cpu', 'bursty'):
        component = 'cpu'
        params = {'workers': workers, 'duty_cycle': intensity}
    elif kind == 'memory-bandwidth':
        component = 'memory'
        params = {'workers': workers, 'duty_cycle': intensity,
                  'working_set_mb': r.number(spec, 'working_set_mb', field,
                                             128, 1, 1 << 20)}
    else:
        component = 'disk'
        params = {'duty_cycle': intensity,
                  'file_size_mb': r.number(spec, 'file_size_mb', field, 64,
                                           1, 1 << 20),
                  'block_size_kb': r.number(spec, 'block_size_kb', field,
                                            64, 1, 16384, True),
                  'read_ratio': r.number(spec, 'read_ratio', field, 0.5,
                                         0.0, 1.0),
                  'direct': r.boolean(spec, 'direct', field, True),
                  'access': 'random'}
    if 'trace' in spec:
        if kind == 'bursty':
            r.fail(field + '.trace', 'a bursty tenant follows its own '
                   'burst pattern; use kind cpu with a trace')
        params['pattern'] = _trace_pattern(r, spec['trace'],
                                           field + '.trace', base_dir)
    elif kind == 'bursty':
        every = r.number(spec, 'every_s', field, 10.0, 0.1, 86400.0)
        params['pattern'] = {
            'type': 'spikes', 'every_s': every, 'start_s': 0.0,
            'length_s': r.number(spec, 'length_s', field, 2.0, 0.0, every,
                                 low_open=True),
            'base': r.number(spec, 'base', field, 0.05, 0.0, 1.0),
            'factor': 1.0}
    profile = {'name': 'tenant-%s' % name,
               'description': 'lab background tenant (%s)' % kind,
               'duration_s': TENANT_RUN_S, 'warmup_s': 0.0,
               'interval_s': TENANT_INTERVAL_S,
               'components': {component: params}}
    try:
        validated = profiles.load_profile(profile, base_dir=base_dir)
    except ProfileError as exc:
        where = field + ('.trace' if 'trace' in spec and
                         'pattern' in str(exc.field) else '')
        r.fail(where, '%s (loadgen %s)' % (exc.message, exc.field))
    return Tenant(name=name, kind=kind, profile=validated.to_dict())


def _host(r, spec, field, defaults, base_dir):
    if not isinstance(spec, dict):
        r.fail(field, 'must be a mapping with a name')
    r.mapping(spec, field, _HOST_KEYS)
    name = r.text(spec, 'name', field, None, _HOST_NAME)
    if name is None:
        r.fail(field + '.name', 'is required')
    merged = _merge(defaults, spec)
    tenants = merged.get('tenants') or []
    if not isinstance(tenants, list):
        r.fail(field + '.tenants', 'must be a list')
    parsed = tuple(_tenant(r, t, '%s.tenants[%d]' % (field, i), i, base_dir)
                   for i, t in enumerate(tenants))
    names = [t.name for t in parsed]
    for tenant_name in names:
        if names.count(tenant_name) > 1:
            r.fail(field + '.tenants', 'duplicate tenant name %r'
                   % tenant_name)
    return Host(name=name,
                resources=_resources(r, merged.get('resources'),
                                     field + '.resources'),
                share=_share(r, merged.get('share'), field + '.share'),
                tenants=parsed)


def parse_config(data, source=None, base_dir=None):
    """Validate a config mapping; return a :class:`LabConfig`."""
    r = _Reader(source)
    data = r.mapping(data, '', _TOP_KEYS)
    base_dir = base_dir or (os.path.dirname(os.path.abspath(source))
                            if source else os.getcwd())
    lab = _lab_settings(r, data.get('lab'))
    defaults = r.mapping(data.get('defaults'), 'defaults',
                         ('resources', 'share', 'tenants'))
    hosts = data.get('hosts')
    if not isinstance(hosts, list) or not hosts:
        r.fail('hosts', 'must be a non-empty list of hosts')
    parsed = tuple(_host(r, h, 'hosts[%d]' % i, defaults, base_dir)
                   for i, h in enumerate(hosts))
    names = [h.name for h in parsed]
    for index, name in enumerate(names):
        if names.index(name) != index:
            r.fail('hosts[%d].name' % index, 'duplicate host %r' % name)
    return LabConfig(lab=lab, hosts=parsed, source=source)


def load_config(path):
    """Read and validate a lab config file (YAML or JSON)."""
    try:
        with open(path, encoding='utf-8') as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise LabConfigError('file', 'cannot read: %s'
                             % (exc.strerror or exc), path)
    except yaml.YAMLError as exc:
        raise LabConfigError('file', 'not valid YAML: %s' % exc, path)
    return parse_config(data, source=path)


def with_absolute_trace_paths(data, base_dir):
    """A copy of config mapping ``data`` whose relative tenant trace paths
    are resolved against ``base_dir`` (to write it somewhere else)."""
    import copy

    data = copy.deepcopy(data)
    sections = [data.get('defaults') or {}] + list(data.get('hosts') or [])
    for section in sections:
        if not isinstance(section, dict):
            continue
        for tenant in section.get('tenants') or []:
            trace = tenant.get('trace') if isinstance(tenant, dict) else None
            path = trace.get('path') if isinstance(trace, dict) else None
            if isinstance(path, str) and path:
                path = os.path.expanduser(path)
                trace['path'] = os.path.join(base_dir, path)
    return data
