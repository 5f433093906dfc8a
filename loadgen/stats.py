"""Measurement helpers: latency histograms and /proc readers.

Workers record each operation's latency into a shared array of
log-spaced buckets (``BUCKETS_PER_OCTAVE`` per doubling, i.e. ~4.4 %
resolution, from 1 ns to ~18 minutes); the sampler diffs snapshots and
reads percentiles from the difference. Recording is one ``log2`` and an
increment, so it costs well under a microsecond and needs no locks (each
worker owns its array).

CPU figures come from ``/proc/stat`` (guest-wide busy and steal) and
``/proc/<pid>/stat`` (a worker's own utime+stime).
"""

import math
import os

BUCKETS_PER_OCTAVE = 16
OCTAVES = 40
NUM_BUCKETS = BUCKETS_PER_OCTAVE * OCTAVES
_CLOCK_TICKS = os.sysconf('SC_CLK_TCK') if hasattr(os, 'sysconf') else 100


def bucket_of(latency_ns):
    """Index of the histogram bucket holding ``latency_ns``."""
    if latency_ns <= 1:
        return 0
    index = int(math.log2(latency_ns) * BUCKETS_PER_OCTAVE)
    return index if index < NUM_BUCKETS else NUM_BUCKETS - 1


def bucket_value_ns(index):
    """Representative latency (geometric middle) of bucket ``index``."""
    return 2.0 ** ((index + 0.5) / BUCKETS_PER_OCTAVE)


def diff_counts(now, before):
    return [a - b for a, b in zip(now, before)]


def add_counts(total, counts):
    for index, count in enumerate(counts):
        if count:
            total[index] += count
    return total


def percentiles_ns(counts, quantiles):
    """Latency at each quantile (0..1) of a bucket-count list.

    Returns a dict quantile -> ns, empty when no operation was recorded.
    """
    total = sum(counts)
    if total <= 0:
        return {}
    wanted = sorted(quantiles)
    result = {}
    seen = 0
    position = 0
    for index, count in enumerate(counts):
        if not count:
            continue
        seen += count
        while position < len(wanted) and seen >= wanted[position] * total:
            result[wanted[position]] = bucket_value_ns(index)
            position += 1
        if position == len(wanted):
            break
    return result


def read_cpu_times():
    """Guest-wide CPU jiffies ``(total, idle_incl_iowait, steal)``."""
    try:
        with open('/proc/stat') as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields]
    values += [0] * (8 - len(values))
    # guest/guest_nice are already counted in user/nice.
    total = sum(values[:8])
    idle = values[3] + values[4]
    steal = values[7]
    return total, idle, steal


def cpu_percentages(now, before):
    """``(busy_pct, steal_pct)`` of all CPUs between two readings."""
    if now is None or before is None:
        return None, None
    total = now[0] - before[0]
    if total <= 0:
        return None, None
    idle = now[1] - before[1]
    steal = now[2] - before[2]
    busy = total - idle - steal
    return 100.0 * busy / total, 100.0 * steal / total


def process_cpu_seconds(pid):
    """utime+stime of process ``pid`` in seconds, or None if it is gone."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(')') + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
