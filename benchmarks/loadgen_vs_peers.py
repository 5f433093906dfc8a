"""loadgen next to fio and stress-ng on the same jobs, measured now.

Disk: the same 4 KiB random jobs (same file size, same queue depth,
O_DIRECT) with fio (``libaio``, ``iodepth=N``; and ``psync`` with N jobs,
the same mechanism loadgen uses) and with loadgen (N worker processes
doing synchronous ``preadv``/``pwritev``). The main ratio is against fio
libaio, the stricter reference. CPU: the same duty
(1 worker at 50 %, 2 workers at 100 %) with ``stress-ng --cpu-load`` and
loadgen, compared by the CPU time each achieved (the kernel's rusage of
the whole process tree). Overhead: CPU burnt by ``shadow-loadgen run
idle``. Prints a table and writes ``benchmarks/results/
loadgen_vs_peers.json`` with both tools' figures and the ratio
loadgen/peer per job. Aims: disk IOPS and latency within 25 % of fio;
idle overhead under 2 % of a core. Each pair of runs alternates the two
tools ``--repeats`` times and the medians are compared (other work on
the machine shifts single runs). fio's latency is its total latency
(``lat_ns``: submission + completion), which is what loadgen times around
each system call.

Usage: ``python benchmarks/loadgen_vs_peers.py [--seconds 8] [--file-mb 256]
[--dir /var/tmp]``. Installs fio/stress-ng with apt-get when missing.
"""

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, 'benchmarks', 'results',
                       'loadgen_vs_peers.json')
DISK_JOBS = [
    # name, read ratio, queue depth, compare latency
    ('randread-qd1', 1.0, 1, True),
    ('randread-qd4', 1.0, 4, True),
    ('randwrite-qd1', 0.0, 1, True),
    ('randrw70-qd4', 0.7, 4, False),
]
CPU_JOBS = [('cpu-1x50pct', 1, 0.5), ('cpu-2x100pct', 2, 1.0)]


def ensure_tools():
    missing = [t for t in ('fio', 'stress-ng') if not shutil.which(t)]
    if missing:
        env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
        subprocess.run(['apt-get', 'update'], check=True, env=env)
        subprocess.run(['apt-get', 'install', '-y'] + missing, check=True,
                       env=env)


def children_cpu_s():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_loadgen(profile, workdir):
    summary_path = os.path.join(workdir, 'summary.json')
    env = dict(os.environ, PYTHONPATH=REPO)
    before, started = children_cpu_s(), time.monotonic()
    subprocess.run([sys.executable, '-m', 'loadgen', 'run',
                    json.dumps(profile), '--sink', os.devnull,
                    '--workdir', workdir, '--summary-file', summary_path],
                   check=True, env=env)
    cpu_s, wall_s = children_cpu_s() - before, time.monotonic() - started
    with open(summary_path) as f:
        summary = json.load(f)['summary']
    os.unlink(summary_path)
    return summary, cpu_s, wall_s


def fio_job(name, read_ratio, depth, seconds, file_mb, workdir,
            engine='libaio'):
    """One fio run; ``psync`` gets ``depth`` jobs (loadgen's mechanism),
    ``libaio`` one job with ``iodepth=depth``."""
    rw = {1.0: 'randread', 0.0: 'randwrite'}.get(read_ratio, 'randrw')
    path = os.path.join(workdir, 'fio.dat')
    command = ['fio', '--name=%s' % name, '--filename=%s' % path,
               '--size=%dM' % file_mb, '--bs=4k', '--rw=%s' % rw,
               '--ioengine=%s' % engine, '--direct=1',
               '--time_based', '--runtime=%d' % seconds, '--ramp_time=1',
               '--output-format=json', '--randrepeat=0',
               '--lat_percentiles=1', '--group_reporting']
    if engine == 'psync':
        command.append('--numjobs=%d' % depth)
    else:
        command.append('--iodepth=%d' % depth)
    if rw == 'randrw':
        command.append('--rwmixread=%d' % round(read_ratio * 100))
    output = subprocess.run(command, check=True, capture_output=True,
                            text=True).stdout
    os.unlink(path)
    job = json.loads(output[output.index('{'):])['jobs'][0]
    direction = 'read' if read_ratio >= 0.5 else 'write'
    # Total latency (submission + completion), what loadgen times too.
    percentiles = job[direction]['lat_ns'].get('percentile', {})
    figures = {'iops': job['read']['iops'] + job['write']['iops']}
    for q in (50, 95, 99):
        value = percentiles.get('%.6f' % q)
        if value is not None:
            figures['p%d_ms' % q] = value / 1e6
    return figures


def loadgen_disk_job(read_ratio, depth, seconds, file_mb, workdir):
    summary, _, _ = run_loadgen({
        'name': 'bench-disk', 'duration_s': seconds + 1, 'warmup_s': 1,
        'interval_s': 1,
        'components': {'disk': {
            'file_size_mb': file_mb, 'block_size_kb': 4,
            'pattern': 'random', 'read_ratio': read_ratio,
            'iodepth': depth, 'direct': True}}}, workdir)
    overall = summary['overall']
    figures = {'iops': overall['disk_iops'],
               'direct': summary['components']['disk']['direct']}
    for q in (50, 95, 99):
        figures['p%d_ms' % q] = overall.get('disk_p%d_latency_ms' % q)
    return figures


def stress_ng_cpu(workers, duty, seconds):
    before, started = children_cpu_s(), time.monotonic()
    subprocess.run(['stress-ng', '--cpu', str(workers), '--cpu-load',
                    str(round(duty * 100)), '--timeout', '%ds' % seconds,
                    '--quiet'], check=True)
    wall_s = time.monotonic() - started
    return {'cpu_pct_of_core': 100 * (children_cpu_s() - before) / wall_s}


def loadgen_cpu(workers, duty, seconds, workdir):
    summary, cpu_s, wall_s = run_loadgen({
        'name': 'bench-cpu', 'duration_s': seconds, 'warmup_s': 1,
        'interval_s': 1,
        'components': {'cpu': {'workers': workers, 'duty_cycle': duty}}},
        workdir)
    return {'cpu_pct_of_core': 100 * cpu_s / wall_s,
            'self_reported_worker_pct':
                summary['overall']['cpu_worker_util_pct'],
            'ops_per_s': summary['overall']['cpu_ops_per_s']}


def idle_overhead(seconds, workdir):
    env = dict(os.environ, PYTHONPATH=REPO)
    before, started = children_cpu_s(), time.monotonic()
    process = subprocess.Popen(
        [sys.executable, '-m', 'loadgen', 'run', 'idle', '--duration',
         str(seconds), '--warmup', '0', '--sink', os.devnull, '--workdir',
         workdir, '--summary-file', os.path.join(workdir, 's.json')],
        env=env)
    time.sleep(2)
    steady_start = (_proc_cpu_s(process.pid), time.monotonic())
    time.sleep(seconds - 3)
    steady_end = (_proc_cpu_s(process.pid), time.monotonic())
    process.wait()
    total_pct = 100 * (children_cpu_s() - before) / (
        time.monotonic() - started)
    steady_pct = 100 * (steady_end[0] - steady_start[0]) / (
        steady_end[1] - steady_start[1])
    os.unlink(os.path.join(workdir, 's.json'))
    return {'steady_state_pct_of_core': steady_pct,
            'whole_run_incl_startup_pct_of_core': total_pct}


def _proc_cpu_s(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def median_figures(runs):
    """Per-key median over repeated runs (numbers only)."""
    merged = {}
    for key in runs[0]:
        values = [r.get(key) for r in runs]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool)
               for v in values):
            merged[key] = statistics.median(values)
        else:
            merged[key] = values[0]
    return merged


def ratio(ours, theirs):
    if ours is None or not theirs:
        return None
    return ours / theirs


def within(value, tolerance=0.25):
    return value is not None and abs(value - 1) <= tolerance


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=int, default=8)
    parser.add_argument('--file-mb', type=int, default=256)
    parser.add_argument('--dir', default='/var/tmp')
    parser.add_argument('--repeats', type=int, default=3,
                        help='alternating runs per tool; medians reported')
    args = parser.parse_args()
    ensure_tools()
    workdir = tempfile.mkdtemp(prefix='loadgen-bench-', dir=args.dir)
    results = {'host': platform.node(), 'cpus': os.cpu_count(),
               'started': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
               'seconds_per_run': args.seconds, 'file_mb': args.file_mb,
               'load_average_before': os.getloadavg(),
               'fio': subprocess.run(['fio', '--version'],
                                     capture_output=True,
                                     text=True).stdout.strip(),
               'disk': {}, 'cpu': {}}
    try:
        for name, read_ratio, depth, latency in DISK_JOBS:
            fio_runs, psync_runs, our_runs = [], [], []
            for _ in range(args.repeats):
                fio_runs.append(fio_job(name, read_ratio, depth,
                                        args.seconds, args.file_mb,
                                        workdir))
                psync_runs.append(fio_job(name, read_ratio, depth,
                                          args.seconds, args.file_mb,
                                          workdir, engine='psync'))
                our_runs.append(loadgen_disk_job(read_ratio, depth,
                                                 args.seconds, args.file_mb,
                                                 workdir))
            fio, ours = median_figures(fio_runs), median_figures(our_runs)
            keys = ['iops'] + (['p50_ms', 'p95_ms', 'p99_ms'] if latency
                               else [])
            ratios = {k: ratio(ours.get(k), fio.get(k)) for k in keys}
            psync = median_figures(psync_runs)
            psync_ratios = {k: ratio(ours.get(k), psync.get(k))
                            for k in keys}
            results['disk'][name] = {
                'fio': fio, 'fio_psync': psync, 'loadgen': ours,
                'ratio': ratios, 'ratio_vs_fio_psync': psync_ratios,
                'runs': {'fio': fio_runs, 'fio_psync': psync_runs,
                         'loadgen': our_runs},
                'within_25pct': all(within(r) for r in ratios.values()),
                'within_25pct_of_fio_psync': all(
                    within(r) for r in psync_ratios.values())}
        for name, workers, duty in CPU_JOBS:
            peer_runs, our_runs = [], []
            for _ in range(args.repeats):
                peer_runs.append(stress_ng_cpu(workers, duty, args.seconds))
                our_runs.append(loadgen_cpu(workers, duty, args.seconds,
                                            workdir))
            peer, ours = median_figures(peer_runs), median_figures(our_runs)
            results['cpu'][name] = {
                'target_pct_of_core': 100 * workers * duty,
                'stress_ng': peer, 'loadgen': ours,
                'runs': {'stress_ng': peer_runs, 'loadgen': our_runs},
                'ratio': {'cpu_pct_of_core': ratio(
                    ours['cpu_pct_of_core'], peer['cpu_pct_of_core'])}}
        results['idle_overhead'] = idle_overhead(max(20, args.seconds),
                                                 workdir)
        results['idle_overhead']['aim_met'] = (
            results['idle_overhead']['steady_state_pct_of_core'] < 2.0)
        results['load_average_after'] = os.getloadavg()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(results)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, 'w') as f:
        json.dump(results, f, indent=2, sort_keys=True)
        f.write('\n')
    print('wrote %s' % RESULTS)


def _fmt(value, digits=3):
    return '-' if value is None else ('%.*g' % (digits, value))


def print_table(results):
    print('%-15s %-8s %10s %10s %7s %10s %7s' % (
        'job', 'figure', 'peer', 'loadgen', 'ratio', 'fio-psync', 'ratio'))
    for name, job in results['disk'].items():
        for key, value in job['ratio'].items():
            print('%-15s %-8s %10s %10s %7s %10s %7s' % (
                name, key, _fmt(job['fio'].get(key)),
                _fmt(job['loadgen'].get(key)), _fmt(value),
                _fmt(job['fio_psync'].get(key)),
                _fmt(job['ratio_vs_fio_psync'][key])))
    for name, job in results['cpu'].items():
        print('%-15s %-8s %10s %10s %7s' % (
            name, 'cpu%core', _fmt(job['stress_ng']['cpu_pct_of_core']),
            _fmt(job['loadgen']['cpu_pct_of_core']),
            _fmt(job['ratio']['cpu_pct_of_core'])))
    idle = results['idle_overhead']
    print('idle overhead: %.2f %% of a core steady state, %.2f %% whole run '
          'including Python start-up' % (
              idle['steady_state_pct_of_core'],
              idle['whole_run_incl_startup_pct_of_core']))


if __name__ == '__main__':
    main()
