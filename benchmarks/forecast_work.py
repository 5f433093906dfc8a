"""Work of one ``auto`` forecast: wall time and peak memory per case.

Each case fits the ``auto`` forecaster to one series of ``points`` samples
every ``step`` seconds and forecasts ``steps`` ahead, in a fresh process
(so its peak resident memory is its own), twice: with the default
``max_cells`` budget and without one (``max_cells`` of 10**15, how every
selection ran before the budget existed).  The cases are the lifetime
outlook's defaults (hourly steps, three days of history, a day ahead) and
finer ``[analysis] lifetime_step`` values down to the option's minimum.
The series is a daily cycle plus noise: the work depends only on its
shape.  Unbounded runs of more than ``--unbounded-max-cells`` points x
steps are skipped (14,400 points x 1,440 steps took 35 s and 9.6 GB).

The accuracy section compares the two on real traces: Bitbrains VMs'
CPU utilisation at 5-minute steps, ten days of history (2,880 points), a
day ahead (288 steps, which the default budget selects on 2-step means):
mean absolute error of the forecast mean and of its mean over the day.

Usage::

    nice -n 5 python benchmarks/forecast_work.py [--traces DIR]

Prints a table and writes ``benchmarks/results/forecast_work.json``.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import benchlib  # noqa: E402

from shadow_service.analysis import forecasters  # noqa: E402
from shadow_service.analysis.forecasters import selector  # noqa: E402

RESULTS = os.path.join(HERE, 'results', 'forecast_work.json')
UNBOUNDED = 10 ** 15
#: (step s, history points, horizon steps): lifetime_step 3600 (default),
#: 300 and 60 with three days of history and a day ahead, and 60 with the
#: auto forecaster's ten days.
CASES = ((3600, 72, 24), (300, 864, 288), (60, 4320, 1440),
         (60, 14400, 1440))


def run_case(step, points, steps, max_cells):
    """Fit and forecast in this process; return the measurements."""
    rng = np.random.default_rng(0)
    t = np.arange(points) * step
    y = 40 + 20 * np.sin(2 * np.pi * t / 86400) + rng.normal(0, 2, points)
    forecasters.installed()
    started = time.perf_counter()
    forecast = forecasters.load(
        'auto', bounds=(0, 100), horizon_steps=steps,
        max_cells=max_cells).fit(y, step_s=step).forecast(steps)
    elapsed = time.perf_counter() - started
    bucket = selector.bucket_steps(points, steps, 86400 // step, max_cells)
    return {'seconds': round(elapsed, 3),
            'peak_rss_mb': round(resource.getrusage(
                resource.RUSAGE_SELF).ru_maxrss / 1024.0),
            'bucket': bucket,
            'selected_cells': -(-points // bucket) * -(-steps // bucket),
            'model': forecast.model}


def measure(step, points, steps, max_cells):
    out = subprocess.run(
        [sys.executable, __file__, '--case', json.dumps(
            [step, points, steps, max_cells])],
        check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def accuracy(traces, vms, points=2880, steps=288):
    sys.path.insert(0, HERE)
    import forecast_accuracy
    root = os.path.join(traces, 'bitbrains_rnd')
    errors = {'default': [], 'unbounded': []}
    day_errors = {'default': [], 'unbounded': []}
    used = 0
    for _name, values, missing in forecast_accuracy.load_bitbrains(root):
        if used >= vms:
            break
        if values.size < points + steps or missing.mean() > 0.05:
            continue
        used += 1
        history = values[-(points + steps):-steps]
        actual = values[-steps:]
        for label, cells in (('default', selector.MAX_CELLS),
                             ('unbounded', UNBOUNDED)):
            mean = forecasters.load(
                'auto', bounds=(0, 100), horizon_steps=steps,
                max_cells=cells).fit(history, step_s=300).forecast(
                    steps).mean
            errors[label].append(float(np.mean(np.abs(mean - actual))))
            day_errors[label].append(abs(float(mean.mean() - actual.mean())))
    return {'vms': used, 'points': points, 'steps': steps,
            'mae': {k: round(float(np.mean(v)), 3)
                    for k, v in errors.items()},
            'day_mean_abs_error': {k: round(float(np.mean(v)), 3)
                                   for k, v in day_errors.items()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--case', help=argparse.SUPPRESS)
    parser.add_argument('--traces', default='/work/shared/traces')
    parser.add_argument('--vms', type=int, default=20)
    parser.add_argument('--unbounded-max-cells', type=int,
                        default=7_000_000)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(*json.loads(args.case))))
        return
    load_start = os.getloadavg()
    rows = []
    print('%6s %7s %6s  %-9s %8s %8s %6s' % (
        'step', 'points', 'steps', 'budget', 'seconds', 'peak MB',
        'bucket'))
    for step, points, steps in CASES:
        for label, cells in (('default', selector.MAX_CELLS),
                             ('unbounded', UNBOUNDED)):
            if cells == UNBOUNDED and points * steps > \
                    args.unbounded_max_cells:
                continue
            row = dict(step_s=step, points=points, steps=steps,
                       budget=label, **measure(step, points, steps, cells))
            rows.append(row)
            print('%6d %7d %6d  %-9s %8.2f %8d %6d' % (
                step, points, steps, label, row['seconds'],
                row['peak_rss_mb'], row['bucket']))
    result = {'max_cells': selector.MAX_CELLS, 'cases': rows}
    if os.path.isdir(os.path.join(args.traces, 'bitbrains_rnd')):
        result['accuracy'] = accuracy(args.traces, args.vms)
        print('bitbrains, %(vms)d VMs, %(points)d points, %(steps)d steps '
              'ahead: MAE %(mae)s, error of the day mean '
              '%(day_mean_abs_error)s' % result['accuracy'])
    result['machine'] = benchlib.machine(load_start)
    benchlib.print_load(load_start)
    benchlib.write_results(RESULTS, result)


if __name__ == '__main__':
    main()
