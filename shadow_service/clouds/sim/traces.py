"""Background tenants' demand, read from real utilisation traces.

Two formats are read (the same as ``/work/shared/traces``; the README next to
the bundled sample in ``data/traces`` gives their provenance):

``bitbrains_rnd/<month>/<vm>.csv.gz``
    GWA-T-12 Bitbrains.  CPU utilisation is derived as usage MHz divided by
    provisioned MHz (the ``CPU usage [%]`` column exceeds 100 on some rows)
    and clipped to [0, 1]; timestamps are Unix seconds (the header says ms),
    de-duplicated (last row wins) and resampled to a 300 s grid by linear
    interpolation.  The VM's size is the median of its ``CPU cores`` and
    ``Memory capacity provisioned`` columns.
``planetlab/<date>/<vm>``
    one CPU % per line every 300 s (one day).  PlanetLab records CPU only:
    the twin gives such a tenant no disk or network traffic.

Each trace becomes a :class:`TenantTrace` of per-step demand: busy vCPUs,
memory bandwidth (GB/s), disk IOPS and network MB/s.  Two conversions are
assumptions, not measurements, and are parameters of the cluster file:
memory traffic per busy core (``mem_gbps_per_busy_core``) and the mean I/O
size that turns KB/s into IOPS (``io_size_kb``).  Point the twin at a bigger
copy of the same layout with ``[sim] trace_dir``.
"""

import dataclasses
import logging
import os

import numpy as np

from loadgen import errors as lg_errors
from loadgen import traces as lg_traces

LOG = logging.getLogger(__name__)

STEP_S = 300.0
BUNDLED_TRACE_DIR = os.path.join(os.path.dirname(__file__), 'data',
                                 'traces')
# Column indexes of the Bitbrains files.
_BB_CORES = 1
_BB_MEM_CAP_KB, _BB_DISK_R, _BB_DISK_W, _BB_NET_RX, _BB_NET_TX = (
    5, 7, 8, 9, 10)


class TraceError(Exception):
    """A trace file could not be read."""


@dataclasses.dataclass
class TenantTrace:
    """Demand of one background tenant on a 300 s grid."""

    name: str
    source: str
    vcpus: int
    ram_mb: int
    cpu_util: np.ndarray        # 0..1 of the tenant's vCPUs
    disk_kbps: np.ndarray       # read + write KB/s
    net_kbps: np.ndarray        # received + transmitted KB/s

    @property
    def steps(self):
        return len(self.cpu_util)


#: Columns of a Bitbrains file the twin reads.
_BB_COLUMNS = {'cpu': 'cpu', 'cores': _BB_CORES, 'mem_kb': _BB_MEM_CAP_KB,
               'disk_r': _BB_DISK_R, 'disk_w': _BB_DISK_W,
               'net_rx': _BB_NET_RX, 'net_tx': _BB_NET_TX}


def read_bitbrains(path):
    """A :class:`TenantTrace` from one Bitbrains ``.csv[.gz]`` file, read
    with loadgen's trace reader (the same de-duplication and resampling
    rules as a profile's trace pattern)."""
    try:
        times, columns = lg_traces.bitbrains_rows(path, _BB_COLUMNS)
    except lg_errors.ProfileError as exc:
        raise TraceError('cannot read Bitbrains trace: %s' % exc) from None
    if len(times) < 2:
        raise TraceError('%s: expected 2+ rows' % path)
    cores = np.asarray(columns['cores'])
    vcpus = int(max(1, np.median(cores[cores > 0]) if (cores > 0).any()
                    else 1))
    mem_kb = np.asarray(columns['mem_kb'])
    ram_mb = int(max(512, np.median(mem_kb[mem_kb > 0]) / 1024
                     if (mem_kb > 0).any() else 2048))

    def grid(values):
        return np.asarray(lg_traces.resample(times, values, STEP_S))

    return TenantTrace(
        name='bitbrains-%s' % os.path.basename(path).split('.')[0],
        source=path, vcpus=vcpus, ram_mb=ram_mb,
        cpu_util=np.clip(grid(columns['cpu']) / 100.0, 0.0, 1.0),
        disk_kbps=grid(np.add(columns['disk_r'], columns['disk_w'])),
        net_kbps=grid(np.add(columns['net_rx'], columns['net_tx'])))


def read_planetlab(path, vcpus=1, ram_mb=2048):
    """A :class:`TenantTrace` from one PlanetLab file (CPU only)."""
    try:
        percent = np.asarray(lg_traces.planetlab_values(path))
    except lg_errors.ProfileError as exc:
        raise TraceError('cannot read PlanetLab trace: %s' % exc) from None
    zeros = np.zeros_like(percent)
    return TenantTrace(
        name='planetlab-%s' % os.path.basename(path), source=path,
        vcpus=vcpus, ram_mb=ram_mb,
        cpu_util=np.clip(percent / 100.0, 0.0, 1.0),
        disk_kbps=zeros, net_kbps=zeros.copy())


def discover(trace_dir):
    """``{'bitbrains': [paths], 'planetlab': [paths]}`` under a directory
    laid out like ``/work/shared/traces`` (sorted, so runs repeat)."""
    found = {'bitbrains': [], 'planetlab': []}
    for kind, sub in (('bitbrains', 'bitbrains_rnd'),
                      ('planetlab', 'planetlab')):
        root = os.path.join(trace_dir, sub)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for filename in sorted(filenames):
                if filename.startswith('.') or filename.endswith('.md'):
                    continue
                found[kind].append(os.path.join(dirpath, filename))
    if not found['bitbrains'] and not found['planetlab']:
        raise TraceError('no bitbrains_rnd/ or planetlab/ traces under %s'
                         % trace_dir)
    return found


class TraceLibrary:
    """Loads traces lazily; parsed traces are shared by every library in
    the process (keyed by path, size and modification time), so building
    many twins reads each file once."""

    _parsed = {}

    def __init__(self, trace_dir=None):
        self.trace_dir = trace_dir or BUNDLED_TRACE_DIR
        self.paths = discover(self.trace_dir)

    def load(self, kind, path):
        stat = os.stat(path)
        key = (kind, path, stat.st_size, stat.st_mtime)
        if key not in self._parsed:
            if kind == 'bitbrains':
                self._parsed[key] = read_bitbrains(path)
            else:
                self._parsed[key] = read_planetlab(path)
        return self._parsed[key]
