"""What the benchmark scripts share: a package, not a script of its own
(imported by path: ``benchmarks/`` is not a package, and each script runs
with its own folder on ``sys.path``)."""

import json
import os


def write_results(path, result, indent=2):
    """Write ``result`` as JSON to ``path`` (keys sorted, one trailing
    newline), creating its folder, and say where."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(result, f, indent=indent, sort_keys=True)
        f.write('\n')
    print('wrote %s' % path)


def machine(loadavg_at_start):
    """The results file's ``machine``: Python, CPUs, and the load average
    at the start (``os.getloadavg()`` taken then) and now, the end."""
    import platform
    return {'python': platform.python_version(), 'cpus': os.cpu_count(),
            'loadavg_at_start': loadavg_at_start,
            'loadavg_at_end': os.getloadavg()}


def print_load(loadavg_at_start, loadavg_at_end=None):
    """Print the load average at the start and at the end (now unless
    given), the line every benchmark's table ends with."""
    if loadavg_at_end is None:
        loadavg_at_end = os.getloadavg()
    print('load average at start %s, at end %s' % (
        ' '.join('%.2f' % v for v in loadavg_at_start),
        ' '.join('%.2f' % v for v in loadavg_at_end)))
