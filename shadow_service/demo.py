"""``nova-shadow demo``: one placement on the digital twin, end to end.

Evaluates a request (flavor and loadgen profile) with shadows on every host
of the default twin while a progress bar runs, prints the ranked table
(score, confidence, reasons), places the VM on the best host, lets 24
simulated hours pass for the placed VM, forecasts its key metric against
its QoS target, and writes a self-contained HTML report with inline SVG
plots.
Takes well under two minutes.

Change what it evaluates with the command-line options (``--profile``,
``--flavor``, ``--seed``, ``--budget``, ``--hours``, ``--out``).
"""

import argparse
import html
import logging
import os
import sys
import tempfile
import time

import numpy as np
from oslo_config import cfg

from shadow_service import conf as shadow_conf
from shadow_service import measurements as names
from shadow_service import service
from shadow_service.history import memory
from shadow_service.watcher import forecast as watch_forecast
from shadow_service.workloads import qos

LOG = logging.getLogger(__name__)

FLAVORS = {
    'm1.small': {'name': 'm1.small', 'vcpus': 1, 'ram_mb': 2048,
                 'disk_gb': 20},
    'm1.medium': {'name': 'm1.medium', 'vcpus': 2, 'ram_mb': 4096,
                  'disk_gb': 40},
    'm1.large': {'name': 'm1.large', 'vcpus': 4, 'ram_mb': 8192,
                 'disk_gb': 80},
    'm1.xlarge': {'name': 'm1.xlarge', 'vcpus': 8, 'ram_mb': 16384,
                  'disk_gb': 160},
}
WATCH_STEP_S = 300.0
FORECAST_HOURS = 6
COLOURS = ('#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd',
           '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf')


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='nova-shadow demo',
        description='Place one VM on the digital twin with shadows.')
    parser.add_argument('--profile', default='db-oltp',
                        help='loadgen profile (default: db-oltp)')
    parser.add_argument('--flavor', default='m1.large',
                        choices=sorted(FLAVORS))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--budget', type=float, default=60.0,
                        help='simulated seconds the shadows run')
    parser.add_argument('--hours', type=float, default=24.0,
                        help='simulated hours the placed VM runs')
    parser.add_argument('--speedup', type=float, default=30.0,
                        help='simulated seconds per real second while '
                        'the shadows run (0: no waiting)')
    parser.add_argument('--out', help='HTML report path (default: a file '
                        'in the temporary directory)')
    return parser.parse_args(argv)


# -- terminal output -------------------------------------------------------
def progress_bar(fraction, width=40, label=''):
    filled = int(round(width * max(0.0, min(1.0, fraction))))
    return '\r[%s%s] %3d%% %s' % ('#' * filled, '.' * (width - filled),
                                  int(100 * fraction), label)


def ranking_table(ranking):
    lines = ['%-4s %-10s %7s %6s  %s' % ('rank', 'host', 'score', 'conf',
                                         'reasons')]
    for number, host in enumerate(ranking['hosts'], 1):
        lines.append('%-4d %-10s %7.1f %6.2f  %s' % (
            number, host['host'], host['score'], host.get('confidence', 0),
            '; '.join(host.get('reasons') or [])[:70]))
    return '\n'.join(lines)


# -- SVG --------------------------------------------------------------------
def svg_plot(series, title, ylabel, width=640, height=260, bands=()):
    """A line plot: ``series`` is ``[(label, xs, ys)]``, ``bands`` is
    ``[(xs, lower, upper)]`` shaded behind the lines."""
    left, right, top, bottom = 60, 150, 28, 36
    xs_all = np.concatenate([np.asarray(s[1], float) for s in series]
                            + [np.asarray(b[0], float) for b in bands])
    ys_all = np.concatenate([np.asarray(s[2], float) for s in series]
                            + [np.asarray(b[1], float) for b in bands]
                            + [np.asarray(b[2], float) for b in bands])
    x0, x1 = float(xs_all.min()), float(xs_all.max()) or 1.0
    y0, y1 = min(0.0, float(np.nanmin(ys_all))), float(np.nanmax(ys_all))
    y1 = y1 if y1 > y0 else y0 + 1.0

    def px(x, y):
        return (left + (x - x0) / ((x1 - x0) or 1) * (width - left - right),
                height - bottom - (y - y0) / (y1 - y0)
                * (height - top - bottom))

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="11">' % (width, height),
           '<text x="%d" y="16" font-size="13" font-weight="bold">%s</text>'
           % (left, html.escape(title)),
           '<text x="4" y="%d" transform="rotate(-90 10,%d)">%s</text>'
           % (height // 2, height // 2, html.escape(ylabel))]
    for tick in np.linspace(y0, y1, 5):
        _x, y = px(x0, tick)
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" '
                   'stroke="#ddd"/><text x="%d" y="%.1f" '
                   'text-anchor="end">%.3g</text>'
                   % (left, width - right, y, y, left - 4, y + 4, tick))
    for tick in np.linspace(x0, x1, 5):
        x, _y = px(tick, y0)
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%.3g</text>'
                   % (x, height - bottom + 14, tick))
    for xs, lower, upper in bands:
        edge = [px(x, y) for x, y in zip(xs, upper)] + \
            [px(x, y) for x, y in zip(xs[::-1], lower[::-1])]
        out.append('<polygon points="%s" fill="#ff7f0e" opacity="0.2"/>'
                   % ' '.join('%.1f,%.1f' % p for p in edge))
    for index, (label, xs, ys) in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        points = ' '.join('%.1f,%.1f' % px(x, y) for x, y in zip(xs, ys))
        out.append('<polyline points="%s" fill="none" stroke="%s" '
                   'stroke-width="1.5"/>' % (points, colour))
        out.append('<text x="%d" y="%d" fill="%s">%s</text>'
                   % (width - right + 8, top + 14 * (index + 1), colour,
                      html.escape(label)))
    out.append('</svg>')
    return '\n'.join(out)


def svg_bars(items, title, width=640):
    """Horizontal bars for ``[(label, value 0..100)]``."""
    height = 30 + 18 * len(items)
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="11">' % (width, height),
           '<text x="8" y="16" font-size="13" font-weight="bold">%s</text>'
           % html.escape(title)]
    for index, (label, value) in enumerate(items):
        y = 26 + 18 * index
        out.append('<text x="8" y="%d">%s</text><rect x="90" y="%d" '
                   'width="%.1f" height="13" fill="%s"/><text x="%.1f" '
                   'y="%d">%.1f</text>'
                   % (y + 11, html.escape(label), y, 4.5 * value,
                      COLOURS[0] if index else COLOURS[2],
                      95 + 4.5 * value, y + 11, value))
    out.append('</svg>')
    return '\n'.join(out)


# -- the steps ---------------------------------------------------------------
def build(options, hosts_wanted=None):
    """The service as the daemon assembles it, on the twin with an
    in-memory history, set up for one demo evaluation."""
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf([], project='nova-shadow')
    for name, value, group in (
            ('seed', options.seed, 'sim'),
            ('speedup', options.speedup, 'sim'),
            ('cloud_driver', 'sim', 'shadow'),
            # Shadows on every candidate, samples every 5 simulated
            # seconds, until 95 % confident or out of budget.
            ('max_shadow_hosts', 64, 'shadow'),
            ('sample_interval', 5.0, 'shadow'),
            ('max_budget', max(1.0, options.budget), 'shadow'),
            ('confidence_target', 0.95, 'shadow')):
        conf.set_override(name, value, group=group)
    return service.build(conf, history=memory.MemoryStore())


def evaluate(parts, request, hosts, budget):
    """Start the evaluation through the service's RPC endpoint (in
    process) and show its progress until it is done."""
    manager = parts.manager
    evaluation_id = manager.start_evaluation(
        {}, request, [{'host': h} for h in hosts], budget)
    while True:
        state = manager.get_evaluation({}, evaluation_id)
        sys.stdout.write(progress_bar(
            state['progress'], label='shadows on %d hosts' % len(hosts)))
        sys.stdout.flush()
        if state['status'] not in ('pending', 'running'):
            break
        time.sleep(0.1)
    sys.stdout.write(progress_bar(1.0, label='done') + '\n')
    if state['status'] != 'finished' or not state.get('ranking'):
        raise RuntimeError('evaluation %s ended %s: %s' % (
            evaluation_id, state['status'], state.get('error')))
    return state['ranking']


def watch(driver, store, instance_id, hours, key_metric):
    """Run the placed VM ``hours`` simulated hours; its key metric's
    series."""
    start = driver.now()
    steps = int(hours)
    for hour in range(steps):
        driver.fast_forward(3600.0, sample_interval_s=WATCH_STEP_S,
                            host_metric_interval_s=WATCH_STEP_S)
        sys.stdout.write(progress_bar((hour + 1) / steps,
                                      label='simulated hour %d/%d'
                                      % (hour + 1, steps)))
        sys.stdout.flush()
    sys.stdout.write('\n')
    series = store.query_series(
        names.INSTANCE_METRIC, names.FIELD_VALUE,
        {names.TAG_INSTANCE: instance_id, names.TAG_METRIC: key_metric},
        start, driver.now() + 1, WATCH_STEP_S)
    return series


def vm_metrics(store, instance_id):
    """Metrics the placed VM reports (from its history)."""
    return {p.tags[names.TAG_METRIC] for p in store.query_points(
        names.INSTANCE_METRIC, {names.TAG_INSTANCE: instance_id})}


def _shadow_plots(store, ranking, profile_name):
    evaluation_id = ranking['evaluation_id']
    points = store.query_points(names.SHADOW_SAMPLE,
                                {names.TAG_EVALUATION: evaluation_id})
    t0 = min((p.time for p in points), default=0.0)
    metrics = sorted({p.tags['metric'] for p in points})
    shown = [h['host'] for h in ranking['hosts'][:5]]
    plots = []
    for metric in metrics:
        series = []
        for host in shown:
            mine = [p for p in points if p.tags['host'] == host
                    and p.tags['metric'] == metric]
            if mine:
                series.append((host, [p.time - t0 for p in mine],
                               [p.fields['value'] for p in mine]))
        if series:
            plots.append(svg_plot(series, '%s: shadows on the 5 best hosts'
                                  % metric, metric + ' (s since boot)'))
    return plots


def write_report(path, context):
    parts = ['<!DOCTYPE html><html><head><meta charset="utf-8">'
             '<title>nova-shadow demo</title><style>body{font-family:'
             'sans-serif;max-width:900px;margin:2em auto}td,th{padding:2px '
             '8px;text-align:left}.note{background:#fff3cd;padding:8px}'
             '</style></head><body>',
             '<h1>nova-shadow demo on the digital twin</h1>',
             '<p>Request: <code>%s</code>, profile <b>%s</b>; %d hosts; '
             'seed %d; ranker: %s.</p>' % (
                 html.escape(context['flavor']['name']),
                 html.escape(context['profile']), len(context['hosts']),
                 context['seed'], html.escape(context['ranker'])),
             '<h2>Ranking</h2>',
             svg_bars([(h['host'], h['score'])
                       for h in context['ranking']['hosts']],
                      'Performance Score (0-100)'),
             '<table><tr><th>rank</th><th>host</th><th>score</th>'
             '<th>confidence</th><th>reasons</th></tr>']
    for number, host in enumerate(context['ranking']['hosts'], 1):
        parts.append('<tr><td>%d</td><td>%s</td><td>%.1f</td><td>%.2f</td>'
                     '<td>%s</td></tr>' % (
                         number, html.escape(host['host']), host['score'],
                         host.get('confidence', 0), html.escape(
                             '; '.join(host.get('reasons') or []))))
    parts.append('</table><p>Shadow-host-seconds: %.0f (simulated).</p>'
                 % context['ranking'].get('shadow_host_seconds', 0))
    parts.append('<h2>Shadow measurements</h2>')
    parts.extend(context['shadow_plots'])
    parts.append('<h2>The placed VM on %s over %g simulated hours</h2>'
                 % (html.escape(context['placed_on']), context['hours']))
    parts.append(context['watch_plot'])
    parts.append('<p class="note">%s</p>' % html.escape(
        context['watch_note']))
    parts.append('<p>Host CPU utilisation of %s as monitoring saw it:</p>'
                 % html.escape(context['placed_on']))
    parts.append(context['host_plot'])
    parts.append('</body></html>')
    with open(path, 'w') as handle:
        handle.write('\n'.join(parts))
    return path


def run_demo(argv_or_options=None):
    """Run the demo; ``argv_or_options`` is an argv list or a parsed
    ``argparse.Namespace``.  Returns the process exit code."""
    if isinstance(argv_or_options, argparse.Namespace):
        options = argv_or_options
    else:
        options = parse_args(argv_or_options if argv_or_options is not None
                             else sys.argv[1:])
    wall = time.monotonic()
    parts = build(options)
    driver, store, analyzer = parts.driver, parts.history, parts.analyzer
    ranker_name = '%s.%s' % (type(analyzer).__module__,
                             type(analyzer).__name__)
    hosts = [h.host for h in driver.list_hosts() if h.available]
    flavor = FLAVORS[options.flavor]
    request = {'flavor': dict(flavor), 'profile': options.profile,
               'profile_scale': max(0.5, flavor['vcpus'] / 2.0)}
    print('nova-shadow demo: %s running %s, %d candidate hosts (twin seed '
          '%d)' % (flavor['name'], options.profile, len(hosts),
                   options.seed))
    driver.host_facts(hosts)     # monitoring history for every host
    ranking = evaluate(parts, request, hosts, options.budget)
    print(ranking_table(ranking))
    best = ranking['hosts'][0]['host'] if ranking['hosts'] else hosts[0]
    instance_id = driver.place_vm(request, best, 'demo-vm')
    placed_at = driver.now()
    print('placed %s on %s' % (instance_id, best))

    driver.fast_forward(WATCH_STEP_S, sample_interval_s=WATCH_STEP_S)
    key_metric, target = qos.key_target(options.profile,
                                        vm_metrics(store, instance_id))
    comparison, threshold = target
    series = watch(driver, store, instance_id, options.hours, key_metric)
    horizon = int(FORECAST_HOURS * 3600 / WATCH_STEP_S)
    outlook = watch_forecast.forecast_breach(
        analyzer, series.values, metric=key_metric, target=target,
        step_s=WATCH_STEP_S, horizon_steps=horizon)
    predicted = {'mean': outlook.mean, 'lower': outlook.lower,
                 'upper': outlook.upper}
    hours = [(t - placed_at) / 3600.0 for t in series.times]
    future = [hours[-1] + (i + 1) * WATCH_STEP_S / 3600.0
              for i in range(horizon)]
    note = 'Forecast: %s.' % outlook.describe()
    print(note)
    host_series = store.query_series(
        names.HOST_METRIC, names.FIELD_VALUE,
        {names.TAG_HOST: best, names.TAG_METRIC: 'cpu_util_pct'},
        driver.now() - 48 * 3600, driver.now() + 1, WATCH_STEP_S)
    values = [v for v in series.values]
    context = {
        'flavor': flavor, 'profile': options.profile, 'hosts': hosts,
        'seed': options.seed, 'ranker': ranker_name, 'ranking': ranking,
        'placed_on': best, 'hours': options.hours, 'watch_note': note,
        'shadow_plots': _shadow_plots(store, ranking, options.profile),
        'watch_plot': svg_plot(
            [('measured', [h for h, v in zip(hours, values)
                           if v is not None],
              [v for v in values if v is not None]),
             ('forecast', future, predicted['mean']),
             ('QoS target', [0, future[-1]], [threshold, threshold])],
            '%s of the placed VM and its %d h forecast'
            % (key_metric, FORECAST_HOURS), key_metric + ' (h)',
            bands=[(future, predicted['lower'], predicted['upper'])]),
        'host_plot': svg_plot(
            [('cpu_util_pct', [(t - driver.now()) / 3600.0
                               for t, v in zip(host_series.times,
                                               host_series.values)
                               if v is not None],
              [v for v in host_series.values if v is not None])],
            'host %s CPU utilisation' % best, '% (h from now)'),
    }
    path = options.out or os.path.join(tempfile.gettempdir(),
                                       'nova-shadow-demo-%d.html'
                                       % options.seed)
    write_report(path, context)
    parts.close()
    print('report: %s  (%.1f s)' % (path, time.monotonic() - wall))
    return 0


if __name__ == '__main__':
    sys.exit(run_demo())
