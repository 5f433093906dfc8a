"""loadgen next to fio and stress-ng on the same jobs, measured now.

Disk: the same 4 KiB random jobs (same queue depth, O_DIRECT) in two
like-for-like pairs: fio ``libaio`` (one process, ``iodepth=N`` in
flight) against loadgen ``engine: aio`` (one process keeping N requests in
flight with native AIO), and fio ``psync`` with N jobs against loadgen
``engine: sync`` (N processes, synchronous ``preadv``/``pwritev``); all
four on **one** file written once at the start
with random data and synced (no unwritten extents, nothing sparse), used
in place by every run (loadgen's disk ``file`` parameter, fio's
``--filename``), with the page cache dropped before each run (fio's
default ``invalidate=1``; loadgen drops it in ``prepare``). fio runs with
``--norandommap`` so both tools pick offsets uniformly at random with
replacement (fio's default random map visits each block once per pass,
loadgen does not), and with the same 1 s ramp/warm-up. ``ratio`` is
loadgen-aio / fio-libaio, ``ratio_vs_fio_psync`` loadgen-sync / fio-psync.

CPU: the same demand (1 worker at 50 %, 2 workers at 100 %) with
``stress-ng --cpu N --cpu-load P --cpu-method int64`` and loadgen,
compared by the CPU time each achieved (the kernel's rusage of the whole
process tree over the wall time). ``int64`` is a pure integer loop like
loadgen's work unit; stress-ng's default ``--cpu-method all`` rotates
through methods whose busy/idle slicing undershoots (35-37 % of a core for
``--cpu-load 50`` on the development VM), which is a property of that
method mix, not of the demand. Overhead: CPU burnt by ``shadow-loadgen
run idle``.

Every repetition runs each tool once, in a rotated order (so no tool
always runs first or after the same neighbour), ``--repeats`` times; the
medians are compared and each figure's min/max spread is recorded, along
with the load average before each run (other work on the machine shifts
single runs). fio's latency is its total latency (``lat_ns``: submission
+ completion), which is what loadgen times around each system call.
Prints a table and writes ``benchmarks/results/loadgen_vs_peers.json``
with both tools' figures and the ratio loadgen/peer per job. Aims: disk
IOPS and latency within 25 % of fio; idle overhead under 2 % of a core.

Usage: ``python benchmarks/loadgen_vs_peers.py [--seconds 8] [--file-mb 256]
[--repeats 5] [--dir /var/tmp]``. Installs fio/stress-ng with apt-get when
missing.
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

import benchlib

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
FIO_COMMON = ['--bs=4k', '--direct=1', '--time_based', '--ramp_time=1',
              '--output-format=json', '--randrepeat=0', '--norandommap',
              '--lat_percentiles=1', '--group_reporting']
STRESS_NG_METHOD = 'int64'


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


def write_job_file(path, file_mb):
    """The one file every disk run uses: random bytes, synced."""
    block = os.urandom(1 << 20)
    with open(path, 'wb') as f:
        for _ in range(file_mb):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())


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


def fio_command(name, read_ratio, depth, seconds, file_mb, path,
                engine='libaio'):
    """fio's side of a job; ``psync`` gets ``depth`` jobs (loadgen's
    mechanism), ``libaio`` one job with ``iodepth=depth``."""
    rw = {1.0: 'randread', 0.0: 'randwrite'}.get(read_ratio, 'randrw')
    command = ['fio', '--name=%s' % name, '--filename=%s' % path,
               '--size=%dM' % file_mb, '--rw=%s' % rw,
               '--ioengine=%s' % engine, '--runtime=%d' % seconds
               ] + FIO_COMMON
    if engine == 'psync':
        command.append('--numjobs=%d' % depth)
    else:
        command.append('--iodepth=%d' % depth)
    if rw == 'randrw':
        command.append('--rwmixread=%d' % round(read_ratio * 100))
    return command


def fio_job(name, read_ratio, depth, seconds, file_mb, path,
            engine='libaio'):
    size_before = os.path.getsize(path)
    result = subprocess.run(
        fio_command(name, read_ratio, depth, seconds, file_mb, path,
                    engine), check=True, capture_output=True, text=True)
    output = result.stdout
    if 'Laying out' in output + result.stderr or \
            os.path.getsize(path) != size_before:
        raise RuntimeError('fio re-laid out the shared job file')
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


def loadgen_disk_profile(read_ratio, depth, seconds, file_mb, path,
                         engine='aio'):
    return {
        'name': 'bench-disk', 'duration_s': seconds + 1, 'warmup_s': 1,
        'interval_s': 1,
        'components': {'disk': {
            'file': path, 'file_size_mb': file_mb, 'block_size_kb': 4,
            'pattern': 'random', 'read_ratio': read_ratio,
            'iodepth': depth, 'direct': True, 'engine': engine}}}


def loadgen_disk_job(read_ratio, depth, seconds, file_mb, path, workdir,
                     engine='aio'):
    summary, _, _ = run_loadgen(loadgen_disk_profile(
        read_ratio, depth, seconds, file_mb, path, engine), workdir)
    overall = summary['overall']
    disk = summary['components']['disk']
    if disk['engine'] != engine or not disk['direct']:
        raise RuntimeError('loadgen ran %s direct=%s, not %s direct' % (
            disk['engine'], disk['direct'], engine))
    figures = {'iops': overall['disk_iops'], 'direct': disk['direct'],
               'engine': disk['engine']}
    for q in (50, 95, 99):
        figures['p%d_ms' % q] = overall.get('disk_p%d_latency_ms' % q)
    return figures


def stress_ng_command(workers, duty, seconds):
    return ['stress-ng', '--cpu', str(workers), '--cpu-load',
            str(round(duty * 100)), '--cpu-method', STRESS_NG_METHOD,
            '--timeout', '%ds' % seconds, '--quiet']


def stress_ng_cpu(workers, duty, seconds):
    before, started = children_cpu_s(), time.monotonic()
    subprocess.run(stress_ng_command(workers, duty, seconds), check=True)
    wall_s = time.monotonic() - started
    return {'cpu_pct_of_core': 100 * (children_cpu_s() - before) / wall_s}


def loadgen_cpu_profile(workers, duty, seconds):
    return {'name': 'bench-cpu', 'duration_s': seconds, 'warmup_s': 1,
            'interval_s': 1,
            'components': {'cpu': {'workers': workers,
                                   'duty_cycle': duty}}}


def loadgen_cpu(workers, duty, seconds, workdir):
    summary, cpu_s, wall_s = run_loadgen(
        loadgen_cpu_profile(workers, duty, seconds), workdir)
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


def _numbers(runs, key):
    values = [r.get(key) for r in runs]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool)
           for v in values):
        return values
    return None


def median_figures(runs):
    """Per-key median over repeated runs (numbers only)."""
    merged = {}
    for key in runs[0]:
        if key == 'load_average_1m':
            continue
        values = _numbers(runs, key)
        merged[key] = (statistics.median(values) if values is not None
                       else runs[0][key])
    return merged


def spread(runs):
    """Per numeric key: min, max and (max - min) / median over runs."""
    result = {}
    for key in runs[0]:
        values = _numbers(runs, key)
        if values is None or key == 'load_average_1m':
            continue
        middle = statistics.median(values)
        result[key] = {'min': min(values), 'max': max(values),
                       'range_over_median': ((max(values) - min(values)) /
                                             middle if middle else None)}
    return result


def ratio(ours, theirs):
    if ours is None or not theirs:
        return None
    return ours / theirs


def within(value, tolerance=0.25):
    return value is not None and abs(value - 1) <= tolerance


def interleaved(tools, repeats):
    """Run every tool once per repetition, rotating the order; returns
    tool name -> list of figures (each tagged with the load average)."""
    names = list(tools)
    runs = {name: [] for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            load = os.getloadavg()[0]
            figures = tools[name]()
            figures['load_average_1m'] = load
            runs[name].append(figures)
    return runs


def disk_results(args, path, workdir):
    results = {}
    for name, read_ratio, depth, latency in DISK_JOBS:
        job = (name, read_ratio, depth, args.seconds, args.file_mb, path)
        runs = interleaved({
            'fio': lambda job=job: fio_job(*job),
            'fio_psync': lambda job=job: fio_job(*job, engine='psync'),
            'loadgen': lambda job=job: loadgen_disk_job(*job[1:],
                                                        workdir=workdir),
            'loadgen_sync': lambda job=job: loadgen_disk_job(
                *job[1:], workdir=workdir, engine='sync'),
        }, args.repeats)
        fio, psync, ours, ours_sync = (
            median_figures(runs[t]) for t in
            ('fio', 'fio_psync', 'loadgen', 'loadgen_sync'))
        keys = ['iops'] + (['p50_ms', 'p95_ms', 'p99_ms'] if latency
                           else [])
        ratios = {k: ratio(ours.get(k), fio.get(k)) for k in keys}
        psync_ratios = {k: ratio(ours_sync.get(k), psync.get(k))
                        for k in keys}
        results[name] = {
            'commands': {
                'fio': ' '.join(fio_command(*job)),
                'fio_psync': ' '.join(fio_command(*job, engine='psync')),
                'loadgen': json.dumps(loadgen_disk_profile(*job[1:]),
                                      sort_keys=True),
                'loadgen_sync': json.dumps(loadgen_disk_profile(
                    *job[1:], engine='sync'), sort_keys=True)},
            'pairs': {'ratio': 'loadgen (engine aio, 1 process, iodepth '
                               'in flight) / fio libaio',
                      'ratio_vs_fio_psync': 'loadgen_sync (iodepth '
                                            'processes) / fio psync '
                                            '(numjobs=iodepth)'},
            'fio': fio, 'fio_psync': psync, 'loadgen': ours,
            'loadgen_sync': ours_sync,
            'ratio': ratios, 'ratio_vs_fio_psync': psync_ratios,
            'spread': {t: spread(r) for t, r in runs.items()},
            'runs': runs,
            'within_25pct': all(within(r) for r in ratios.values()),
            'within_25pct_of_fio_psync': all(
                within(r) for r in psync_ratios.values())}
    return results


def cpu_results(args, workdir):
    results = {}
    for name, workers, duty in CPU_JOBS:
        runs = interleaved({
            'stress_ng': lambda w=workers, d=duty: stress_ng_cpu(
                w, d, args.seconds),
            'loadgen': lambda w=workers, d=duty: loadgen_cpu(
                w, d, args.seconds, workdir),
        }, args.repeats)
        peer, ours = median_figures(runs['stress_ng']), median_figures(
            runs['loadgen'])
        results[name] = {
            'commands': {
                'stress_ng': ' '.join(stress_ng_command(workers, duty,
                                                        args.seconds)),
                'loadgen': json.dumps(loadgen_cpu_profile(
                    workers, duty, args.seconds), sort_keys=True)},
            'target_pct_of_core': 100 * workers * duty,
            'stress_ng': peer, 'loadgen': ours,
            'spread': {t: spread(r) for t, r in runs.items()},
            'runs': runs,
            'ratio': {'cpu_pct_of_core': ratio(
                ours['cpu_pct_of_core'], peer['cpu_pct_of_core'])}}
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=int, default=8,
                        help='measured seconds per run (after 1 s ramp)')
    parser.add_argument('--file-mb', type=int, default=256)
    parser.add_argument('--dir', default='/var/tmp',
                        help='file system holding the shared job file')
    parser.add_argument('--repeats', type=int, default=5,
                        help='interleaved runs per tool; medians reported')
    parser.add_argument('--skip-cpu', action='store_true')
    parser.add_argument('--output', default=RESULTS,
                        help='results file (default: %(default)s)')
    args = parser.parse_args()
    ensure_tools()
    workdir = tempfile.mkdtemp(prefix='loadgen-bench-', dir=args.dir)
    path = os.path.join(workdir, 'job.dat')
    results = {'host': platform.node(), 'cpus': os.cpu_count(),
               'started': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
               'seconds_per_run': args.seconds, 'file_mb': args.file_mb,
               'repeats': args.repeats,
               'method': __doc__.strip(),
               'load_average_before': os.getloadavg(),
               'fio': subprocess.run(['fio', '--version'],
                                     capture_output=True,
                                     text=True).stdout.strip(),
               'stress_ng': subprocess.run(
                   ['stress-ng', '--version'], capture_output=True,
                   text=True).stdout.strip(),
               'python': platform.python_version(),
               'disk': {}, 'cpu': {}}
    try:
        write_job_file(path, args.file_mb)
        results['disk'] = disk_results(args, path, workdir)
        if not args.skip_cpu:
            results['cpu'] = cpu_results(args, workdir)
        results['idle_overhead'] = idle_overhead(max(20, args.seconds),
                                                 workdir)
        results['idle_overhead']['aim_met'] = (
            results['idle_overhead']['steady_state_pct_of_core'] < 2.0)
        results['load_average_after'] = os.getloadavg()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(results)
    benchlib.write_results(args.output, results)


def _fmt(value, digits=3):
    return '-' if value is None else ('%.*g' % (digits, value))


def _range(job, tool, key):
    entry = job['spread'][tool].get(key)
    if not entry:
        return '-'
    return '%s-%s' % (_fmt(entry['min']), _fmt(entry['max']))


def print_table(results):
    print('%-14s %-7s %9s %17s %9s %17s %6s | %9s %9s %6s' % (
        'job', 'figure', 'fio', '(min-max)', 'lg-aio', '(min-max)',
        'ratio', 'fio-psync', 'lg-sync', 'ratio'))
    for name, job in results['disk'].items():
        for key, value in job['ratio'].items():
            print('%-14s %-7s %9s %17s %9s %17s %6s | %9s %9s %6s' % (
                name, key, _fmt(job['fio'].get(key)),
                _range(job, 'fio', key), _fmt(job['loadgen'].get(key)),
                _range(job, 'loadgen', key), _fmt(value),
                _fmt(job['fio_psync'].get(key)),
                _fmt(job['loadgen_sync'].get(key)),
                _fmt(job['ratio_vs_fio_psync'][key])))
    for name, job in results['cpu'].items():
        key = 'cpu_pct_of_core'
        print('%-14s %-7s %9s %17s %9s %17s %6s' % (
            name, 'cpu%', _fmt(job['stress_ng'][key]),
            _range(job, 'stress_ng', key), _fmt(job['loadgen'][key]),
            _range(job, 'loadgen', key), _fmt(job['ratio'][key])))
    idle = results['idle_overhead']
    print('idle overhead: %.2f %% of a core steady state, %.2f %% whole run '
          'including Python start-up' % (
              idle['steady_state_pct_of_core'],
              idle['whole_run_incl_startup_pct_of_core']))


if __name__ == '__main__':
    main()
