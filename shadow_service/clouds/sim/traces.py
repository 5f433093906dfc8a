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
import gzip
import logging
import os

import numpy as np

LOG = logging.getLogger(__name__)

STEP_S = 300.0
BUNDLED_TRACE_DIR = os.path.join(os.path.dirname(__file__), 'data',
                                 'traces')
# Column indexes of the Bitbrains files.
_BB_TIME, _BB_CORES, _BB_CAP_MHZ, _BB_USE_MHZ = 0, 1, 2, 3
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


def _bitbrains_rows(path):
    try:
        with gzip.open(path, 'rt') if path.endswith('.gz') else \
                open(path) as handle:
            next(handle)
            rows = [line.replace('\t', '').split(';') for line in handle
                    if line.strip()]
        return np.array(rows, dtype=float)
    except (OSError, ValueError, StopIteration, EOFError) as exc:
        raise TraceError('cannot read Bitbrains trace %s: %s'
                         % (path, exc)) from None


def _regular(times, values):
    grid = np.arange(times[0], times[-1] + 1, STEP_S)
    return np.interp(grid, times, values)


def read_bitbrains(path):
    """A :class:`TenantTrace` from one Bitbrains ``.csv[.gz]`` file."""
    rows = _bitbrains_rows(path)
    if rows.ndim != 2 or rows.shape[1] < 11 or len(rows) < 2:
        raise TraceError('%s: expected 11 columns and 2+ rows' % path)
    # De-duplicate timestamps, keeping the last row of each.
    rows = rows[np.argsort(rows[:, _BB_TIME], kind='stable')]
    keep = np.append(rows[1:, _BB_TIME] != rows[:-1, _BB_TIME], True)
    rows = rows[keep]
    times = rows[:, _BB_TIME]
    capacity = rows[:, _BB_CAP_MHZ]
    util = np.clip(np.divide(rows[:, _BB_USE_MHZ], capacity,
                             out=np.zeros_like(capacity),
                             where=capacity > 0), 0.0, 1.0)
    cores = rows[:, _BB_CORES]
    vcpus = int(max(1, np.median(cores[cores > 0]) if (cores > 0).any()
                    else 1))
    mem_kb = rows[:, _BB_MEM_CAP_KB]
    ram_mb = int(max(512, np.median(mem_kb[mem_kb > 0]) / 1024
                     if (mem_kb > 0).any() else 2048))
    return TenantTrace(
        name='bitbrains-%s' % os.path.basename(path).split('.')[0],
        source=path, vcpus=vcpus, ram_mb=ram_mb,
        cpu_util=_regular(times, util),
        disk_kbps=_regular(times, rows[:, _BB_DISK_R] + rows[:, _BB_DISK_W]),
        net_kbps=_regular(times, rows[:, _BB_NET_RX] + rows[:, _BB_NET_TX]))


def read_planetlab(path, vcpus=1, ram_mb=2048):
    """A :class:`TenantTrace` from one PlanetLab file (CPU only)."""
    try:
        with open(path) as handle:
            percent = np.array([float(line) for line in handle
                                if line.strip()])
    except (OSError, ValueError) as exc:
        raise TraceError('cannot read PlanetLab trace %s: %s'
                         % (path, exc)) from None
    if not len(percent):
        raise TraceError('%s: no readings' % path)
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
