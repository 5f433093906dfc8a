"""``nova-shadow demo``: one placement on the digital twin, end to end.

Assembles the service as the daemon does (``shadow_service.service.build``)
on the twin with an in-memory history, asks its manager (through the
request schema of the RPC endpoint) to evaluate a VM request with shadows
on every host of the twin while a progress bar runs, prints the ranked
table (score, confidence, reasons), places the VM on the best host, lets
simulated hours pass for it while ``shadow-watcher``'s loop (assembled as
the daemon does, ``shadow_service.service.build_watcher``, with the
``forecast`` policy, not in dry-run) watches it every five simulated
minutes and scales it ahead of its bottleneck on the twin, forecasts its
key QoS metric against the profile's target
(``shadow_service.watcher.forecast``) and writes a self-contained HTML
report (``shadow_service.report``) to a new file per run, whose path it
prints; the report marks every scaling action on the VM's plot.

Change what it evaluates with the command-line options (``--profile``,
``--flavor``, ``--seed``, ``--budget``, ``--hours``, ``--speedup``), where
the report goes with ``--out``, and how the terminal table shows reasons
with ``--wide``.
"""

import argparse
import html
import logging
import os
import shutil
import sys
import tempfile
import textwrap
import time

from oslo_config import cfg

from nova_shadow_filter import request as request_lib
from shadow_service import conf as shadow_conf
from shadow_service import demo_options
from shadow_service import exception
from shadow_service import measurements as names
from shadow_service import report
from shadow_service import service
from shadow_service.history import memory
from shadow_service.watcher import forecast as watch_forecast
from shadow_service.workloads import profiles
from shadow_service.workloads import qos

LOG = logging.getLogger(__name__)

FLAVORS = demo_options.FLAVORS
#: The demo's command line (a module of its own, light to import: bad
#: values are refused before the twin's libraries load).
parse_args = demo_options.parse_args
#: Simulated seconds between the placed VM's (and its host's) samples.
WATCH_STEP_S = 300.0
#: How far ahead the placed VM's key metric is forecast.
FORECAST_HOURS = 6
#: The watcher's scaling policy in the demo.
POLICY = 'forecast'
#: Hours of host monitoring shown before the placement.
HOST_HOURS_BEFORE = 24.0
#: The placed VM's instance id (the watcher watches it).
DEMO_VM = 'demo-vm'
#: Terminal width when the output is not a terminal.
DEFAULT_WIDTH = 100



def _actions_text(count):
    """``'1 scaling action'``, ``'3 scaling actions'``."""
    return '%d scaling action%s' % (count, '' if count == 1 else 's')


# -- terminal output ----------------------------------------------------------
def progress_bar(fraction, width=40, label=''):
    filled = int(round(width * max(0.0, min(1.0, fraction))))
    return '\r[%s%s] %3d%% %s' % ('#' * filled, '.' * (width - filled),
                                  int(100 * fraction), label)


def show_progress(fraction, label, done=False):
    """Redraw the progress bar on a terminal; elsewhere (a pipe, a log
    file) write only the last state, once, as a line of its own."""
    if sys.stdout.isatty():
        sys.stdout.write(progress_bar(fraction, label=label)
                         + ('\n' if done else ''))
    elif done:
        sys.stdout.write(progress_bar(fraction, label=label)[1:] + '\n')
    sys.stdout.flush()


def _reasons_that_fit(reasons, room):
    """The leading whole reasons whose ``'; '``-joined text fits in
    ``room`` columns (at least the first)."""
    shown = reasons[:1]
    for reason in reasons[1:]:
        if len('; '.join(shown + [reason])) > room:
            break
        shown.append(reason)
    return shown


def ranking_table(ranking, width=None, wide=False):
    """The ranking as text no wider than ``width`` columns (the terminal's
    when None) where words allow.

    Reasons are never cut: by default each host shows the whole reasons
    that fit one line (at least its first, wrapped at word boundaries) and
    how many more it has; with ``wide`` every reason, each from a new
    line, wrapped at word boundaries.
    """
    width = width or shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    hosts = ranking['hosts']
    host_width = max([4] + [len(h['host']) for h in hosts])
    header = '%4s  %-*s  %5s  %4s  ' % ('rank', host_width, 'host', 'score',
                                        'conf')
    indent = ' ' * len(header)
    room = max(width - len(header), 24)
    lines = [header + 'reasons (full-VM predicted values)']
    hidden = 0
    wrap = textwrap.TextWrapper(width=room, break_long_words=False,
                                break_on_hyphens=False)
    for number, host in enumerate(hosts, 1):
        reasons = list(host.get('reasons') or []) or ['-']
        if wide:
            chunks = [line for reason in reasons
                      for line in wrap.wrap(reason)]
        else:
            shown = _reasons_that_fit(reasons, room)
            more = len(reasons) - len(shown)
            hidden += more
            chunks = wrap.wrap('; '.join(shown)
                               + (' (+%d more)' % more if more else ''))
        prefix = '%4d  %-*s  %5.1f  %4.2f  ' % (
            number, host_width, host['host'], host['score'],
            host.get('confidence', 0.0))
        lines.append(prefix + chunks[0])
        lines.extend(indent + chunk for chunk in chunks[1:])
    if hidden:
        lines.extend(textwrap.wrap(
            '(%d more reasons: all are in the report; --wide prints them '
            'here)' % hidden, max(width, 40), break_long_words=False))
    return '\n'.join(lines)


def report_path(out=None, directory=None):
    """``out``, or a new file in ``directory`` (the temporary directory
    when None) named for the time, which no other run uses."""
    if out:
        return out
    handle, path = tempfile.mkstemp(
        prefix='nova-shadow-demo-%s-' % time.strftime('%Y%m%d-%H%M%S'),
        suffix='.html', dir=directory)
    os.close(handle)
    return path


# -- the steps ----------------------------------------------------------------
def ladder(flavors=None):
    """The flavor ladder the demo's watcher resizes along (``[watcher]
    flavor_ladder`` format), smallest first."""
    flavors = flavors or FLAVORS
    return ['%s:%d:%d:%d' % (f['name'], f['vcpus'], f['ram_mb'],
                             f['disk_gb'])
            for f in sorted(flavors.values(), key=lambda f: f['vcpus'])]


def build(options):
    """The service and the watcher as the daemons assemble them, on the
    twin with an in-memory history, set up for one demo evaluation and
    one watched VM."""
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    # The embedded default, whatever this machine's daemons read: no
    # configuration file (not /etc/nova-shadow/nova-shadow.conf either);
    # an OS_<GROUP>__<OPTION> variable still sets an option the demo
    # does not set itself.
    conf([], project='nova-shadow', default_config_files=[],
         default_config_dirs=[])
    for name, value, group in (
            ('seed', options.seed, 'sim'),
            ('speedup', options.speedup, 'sim'),
            ('cloud_driver', 'sim', 'shadow'),
            # Shadows on every candidate, samples every 5 simulated
            # seconds, until the race settles the ranking (95 %
            # confident) or the budget ends.
            ('max_shadow_hosts', 64, 'shadow'),
            ('sample_interval', 5.0, 'shadow'),
            ('max_budget', max(1.0, options.budget), 'shadow'),
            ('confidence_target', 0.95, 'shadow'),
            # The watcher acts on the placed VM (on the twin only).
            ('instances', [DEMO_VM], 'watcher'),
            ('dry_run', False, 'watcher'),
            ('policy', POLICY, 'watcher'),
            ('interval', WATCH_STEP_S, 'watcher'),
            ('flavor_ladder', ladder(), 'watcher')):
        conf.set_override(name, value, group=group)
    return service.build_watcher(conf, history=memory.MemoryStore())


def evaluate(parts, request, hosts, budget):
    """Start the evaluation through the service's RPC endpoint (in
    process) and show its progress until it is done."""
    manager = parts.manager
    evaluation_id = manager.start_evaluation(
        {}, request, [{'host': h} for h in hosts], budget)
    while True:
        state = manager.get_evaluation({}, evaluation_id)
        if state['status'] not in ('pending', 'running'):
            break
        show_progress(state['progress'],
                      'shadows on %d hosts' % len(hosts))
        time.sleep(0.1)
    show_progress(1.0, 'shadows on %d hosts: done' % len(hosts), done=True)
    if state['status'] != 'finished' or not state.get('ranking'):
        raise RuntimeError('evaluation %s ended %s: %s' % (
            evaluation_id, state['status'], state.get('error')))
    return state['ranking']


def watch(driver, watcher, store, instance_id, hours, key_metric):
    """Run the placed VM ``hours`` simulated hours with the watcher
    watching it every ``WATCH_STEP_S``; ``(its key metric's series, the
    actions the watcher took)`` (each ``(time, action, reason)``)."""
    start = driver.now()
    steps = max(1, hours)
    per_hour = int(round(3600.0 / WATCH_STEP_S))
    actions = []
    for hour in range(steps):
        for _ in range(per_hour):
            driver.fast_forward(WATCH_STEP_S, sample_interval_s=WATCH_STEP_S,
                                host_metric_interval_s=WATCH_STEP_S)
            for step in watcher.run_once(driver.now()):
                if step.outcome in ('started', 'done'):
                    actions.append((driver.now(), step.decision.action,
                                    step.decision.reason))
        show_progress((hour + 1) / steps, 'simulated hour %d/%d, %s'
                      % (hour + 1, steps, _actions_text(len(actions))),
                      done=hour + 1 == steps)
    series = store.query_series(
        names.INSTANCE_METRIC, names.FIELD_VALUE,
        {names.TAG_INSTANCE: instance_id, names.TAG_METRIC: key_metric},
        start, driver.now() + 1, WATCH_STEP_S)
    return series, actions


def vm_means(store, instance_id):
    """``{metric: mean}`` of what the placed VM reported."""
    sums = {}
    for point in store.query_points(names.INSTANCE_METRIC,
                                    {names.TAG_INSTANCE: instance_id}):
        total, count = sums.get(point.tags[names.TAG_METRIC], (0.0, 0))
        sums[point.tags[names.TAG_METRIC]] = (
            total + float(point.fields[names.FIELD_VALUE]), count + 1)
    return {metric: total / count for metric, (total, count) in sums.items()}


def shadow_samples(store, evaluation_id):
    """``{metric: {host: (seconds since the first sample, values)}}`` of
    one evaluation's shadows (their time on the twin's clock)."""
    points = sorted(store.query_points(
        names.SHADOW_SAMPLE, {names.TAG_EVALUATION: evaluation_id}),
        key=lambda p: p.time)
    start = points[0].time if points else 0.0
    samples = {}
    for point in points:
        metric = point.tags[names.TAG_METRIC]
        host = point.tags[names.TAG_HOST]
        times, values = samples.setdefault(metric, {}).setdefault(
            host, ([], []))
        times.append(point.time - start)
        values.append(float(point.fields[names.FIELD_VALUE]))
    return samples


def ranking_weights(analyzer, profile, ranking):
    """``{metric: weight}`` as the ranking applied them: the profile's
    weights over the metrics the hosts were predicted on, summing to 1."""
    predicted = {m for h in ranking['hosts'] for m in h.get('predicted', {})}
    weights = {m: w for m, w in analyzer.weights(profile.sensitivity).items()
               if m in predicted}
    total = sum(weights.values())
    return {m: w / total for m, w in weights.items()} if total else {}


def _shadow_label(record):
    scale = (record or {}).get('scale') or {}
    if not scale:
        return 'flavor-minimal shadows'
    return ('%d vCPU, %d MB RAM, running 1/%g of the VM\'s load'
            % (scale['shadow_vcpus'], scale['shadow_ram_mb'],
               scale['load_ratio']))


def _flavor_label(flavor):
    return '%s: %d vCPU, %d MB RAM, %d GB disk' % (
        flavor['name'], flavor['vcpus'], flavor['ram_mb'], flavor['disk_gb'])


def write_report(path, run):
    """Write the HTML report of one demo ``run`` (a dict the demo fills
    in :func:`run_demo`) to ``path``."""
    ranking, placed = run['ranking'], run['placed_on']
    hosts = [h['host'] for h in ranking['hosts']]
    predicted = {h['host']: h.get('predicted', {}) for h in ranking['hosts']}
    metric, target = run['key_metric'], run['outlook'].target
    shadow_label = _shadow_label(run['record'])
    full_label = _flavor_label(run['flavor'])
    shadow_means = {m: sum(v) / len(v) for m, (_t, v) in (
        (m, s[placed]) for m, s in run['samples'].items() if placed in s)}
    add = report.figure_section

    sections = [
        '<p>What this run did, on the digital twin (a simulated cluster): '
        'an evaluation of one VM request with shadows on every candidate '
        'host, the placement on the best host, %g simulated hours of the '
        'placed VM, a forecast of its key QoS metric.</p>' % run['hours'],
        report.definition_list([
            ('VM request', '%s; profile %s (profile_scale %g)' % (
                full_label, run['profile'], run['request']['profile_scale'])),
            ('shadows', '%s, booted on each of the %d candidate hosts' % (
                shadow_label, len(run['hosts']))),
            ('twin', 'seed %d; speedup %g simulated s per wall-clock s while '
             'the shadows ran (0: no waiting)' % (run['seed'],
                                                  run['speedup'])),
            ('ranker', run['ranker']),
            ('evaluation', '%s; confidence %.2f (probability that the '
             'top host is within the tie margin of the truly best); %s '
             'shadow-host-seconds (simulated seconds summed over the '
             'shadows); %.2f s wall time' % (ranking['evaluation_id'],
                       ranking.get('confidence', 0.0),
                       report.number(ranking.get('shadow_host_seconds', 0)),
                       ranking.get('duration_s', 0.0))),
            ('placed on', '%s (rank 1)' % placed),
            ('QoS target', report.target_text(metric, target)
             + ' (the %s profile\'s key metric)' % run['profile']),
            ('this run', '%.1f s wall time before drawing this report; '
             'report written %s' % (
                 run['wall_s'], time.strftime('%Y-%m-%d %H:%M:%S %Z'))),
        ]),
        '<p><b>Shadow measurement</b>: what a shadow measured, at shadow '
        'scale (%s). <b>Full-VM prediction</b>: the analyzer\'s estimate '
        'for the full VM (%s) on that host, from the shadow\'s measurements '
        'scaled up and corrected for the host\'s contention. '
        '<b>Simulated time</b> is the twin\'s clock; <b>wall time</b> is '
        'what this run took.</p>' % (html.escape(shadow_label),
                                     html.escape(full_label)),
        report.heading('Ranking'),
        add(report.ranking_figure(ranking, placed),
            'Performance Score per host (0-100, computed from the full-VM '
            'predictions) and the confidence of the ranking at that host.'),
        report.ranking_table_html(ranking, placed),
        report.heading('Shadow measurements (shadow scale)'),
        add(report.shadow_figure(run['samples'], hosts, placed,
                                 shadow_label),
            'Every sample the shadows reported during the evaluation, per '
            'host, at shadow scale: a shadow runs 1/%g of the VM\'s load, so '
            'on a host with room its throughput is about that share of the '
            'full VM\'s; latencies are not scaled (see the full-VM '
            'predictions below).'
            % (run['record'] or {}).get('scale', {}).get('load_ratio', 1)),
        report.heading('Full-VM predictions per host'),
        add(report.prediction_figure(predicted, hosts, placed,
                                     run['weights'], run['targets'],
                                     full_label),
            'The analyzer\'s prediction for the full VM on each host, for '
            'every metric the ranking weighed (panels by weight).'),
        report.table(
            ('metric', 'shadow measurement on %s (mean, shadow scale)'
             % placed, 'full-VM prediction on %s' % placed,
             'placed VM measured (mean over %g simulated h)' % run['hours'],
             'QoS target'),
            [(report.with_unit(m),
              report.number(shadow_means.get(m)),
              report.number(predicted[placed].get(m)),
              report.number(run['vm_means'].get(m)),
              report.target_text(m, run['targets'][m])
              if m in run['targets'] else '-')
             for m in sorted(set(predicted[placed]) | set(shadow_means))],
            caption='The placed host: shadow measurement, prediction and '
            'what the VM then did'),
        '<details><summary>Every host\'s full-VM predictions (table)'
        '</summary>%s</details>' % report.table(
            ['host'] + [report.with_unit(m) for m in sorted(run['weights'])],
            [[h] + [report.number(predicted[h].get(m))
                    for m in sorted(run['weights'])] for h in hosts],
            caption='Full-VM predictions (%s)' % full_label),
        report.heading('The placed VM on %s over %g simulated hours'
                       % (placed, run['hours'])),
        add(report.vm_day_figure(
            run['measured'], run['forecast'], metric, target,
            predicted=predicted[placed].get(metric),
            actions=run['actions'], placed_at=run['placed_at']),
            'The placed VM\'s %s as it reported it (full VM, simulated '
            'time), the %g h forecast with its interval, and the QoS '
            'target.' % (metric, FORECAST_HOURS)),
        '<p class="note">Forecast: %s. Model: %s; interval of %.0f%% '
        'coverage.</p>' % (
            html.escape(run['outlook'].describe()),
            html.escape(report.short_model(run['outlook'].model)),
            100 * run['forecast']['level']),
        '<details><summary>The forecast model in full</summary><p>%s</p>'
        '</details>' % html.escape(
            str(run['outlook'].model).replace('+', ' + ')),
        '<p>The watcher (the %s policy, flavor ladder %s) read the VM\'s '
        'history every %g simulated minutes and acted on the twin.</p>'
        % (POLICY, ', '.join(f.split(':')[0] for f in ladder()),
           WATCH_STEP_S / 60.0),
        report.scaling_actions_section(run['actions'], run['placed_at']),
        report.heading('CPU utilisation of host %s' % placed),
        add(report.host_cpu_figure(*run['host_cpu'], placed),
            'Host monitoring of %s (simulated time, hour 0 is the '
            'placement).' % placed),
    ]
    page = report.render_page('nova-shadow demo on the digital twin',
                              sections)
    _replace_file(path, page)
    return path


def _replace_file(path, text):
    """Write ``text`` to ``path`` whole or not at all: to a new file
    beside it, then renamed over it (a write that fails, on a full disk,
    leaves an existing file as it was and no half-written report)."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, scratch = tempfile.mkstemp(
        prefix='.%s.' % os.path.basename(path), suffix='.tmp',
        dir=directory)
    try:
        with os.fdopen(handle, 'w') as stream:
            stream.write(text)
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(scratch, mode)
        os.replace(scratch, path)
    except BaseException:
        try:
            os.remove(scratch)
        except OSError:
            pass
        raise


def run_demo(argv_or_options=None):
    """Run the demo; ``argv_or_options`` is an argv list or a parsed
    ``argparse.Namespace``.  Returns the process exit code."""
    if isinstance(argv_or_options, argparse.Namespace):
        options = argv_or_options
    else:
        options = parse_args(argv_or_options if argv_or_options is not None
                             else sys.argv[1:])
    wall = time.monotonic()
    flavor = FLAVORS[options.flavor]
    # What the deployed weigher sends: the shared request builder.
    request = request_lib.build_request(dict(flavor), options.profile)
    try:
        profile = profiles.resolve_profile(request)
    except exception.InvalidRequest as error:
        sys.stderr.write('nova-shadow demo: error: --profile: %s\n' % error)
        return 2
    assembled = build(options)
    parts, watcher = assembled.parts, assembled.watcher
    driver, store, analyzer = parts.driver, parts.history, parts.analyzer
    hosts = [h.host for h in driver.list_hosts() if h.available]
    print('nova-shadow demo: %s running %s, %d candidate hosts (twin seed '
          '%d)' % (flavor['name'], options.profile, len(hosts),
                   options.seed))
    driver.host_facts(hosts)     # monitoring history for every host
    ranking = evaluate(parts, request, hosts, options.budget)
    print(ranking_table(ranking, wide=options.wide))
    best = ranking['hosts'][0]['host'] if ranking['hosts'] else hosts[0]
    # Booted from a volume: its root disk may shrink along the ladder
    # (Nova refuses to shrink a disk copied from an image).
    instance_id = driver.place_vm(request, best, DEMO_VM,
                                  volume_backed=True)
    placed_at = driver.now()
    print('placed %s on %s (booted from a volume)' % (instance_id, best))

    driver.fast_forward(WATCH_STEP_S, sample_interval_s=WATCH_STEP_S)
    means = vm_means(store, instance_id)
    key_metric, target = qos.key_target(options.profile, set(means))
    series, actions = watch(driver, watcher, store, instance_id,
                            options.hours, key_metric)
    for when, action, reason in actions:
        print('  +%5.2f h  %s: %s' % ((when - placed_at) / 3600.0, action,
                                       reason))
    print('the watcher (%s policy) took %s'
          % (POLICY, _actions_text(len(actions))))
    horizon = int(FORECAST_HOURS * 3600 / WATCH_STEP_S)
    outlook = watch_forecast.forecast_breach(
        analyzer, series.values, metric=key_metric, target=target,
        step_s=WATCH_STEP_S, horizon_steps=horizon)
    print('Forecast: %s.' % outlook.describe())

    measured = [((t - placed_at) / 3600.0, v)
                for t, v in zip(series.times, series.values) if v is not None]
    last = measured[-1][0] if measured else 0.0
    host_series = store.query_series(
        names.HOST_METRIC, names.FIELD_VALUE,
        {names.TAG_HOST: best, names.TAG_METRIC: 'cpu_util_pct'},
        placed_at - HOST_HOURS_BEFORE * 3600, driver.now() + 1,
        WATCH_STEP_S)
    host_cpu = [((t - placed_at) / 3600.0, v)
                for t, v in zip(host_series.times, host_series.values)
                if v is not None]
    run = {
        'flavor': flavor, 'profile': options.profile, 'request': request,
        'hosts': hosts, 'seed': options.seed, 'speedup': options.speedup,
        'ranker': '%s.%s' % (type(analyzer).__module__,
                             type(analyzer).__name__),
        'ranking': ranking, 'record': store.get_evaluation(
            ranking['evaluation_id']),
        'samples': shadow_samples(store, ranking['evaluation_id']),
        'weights': ranking_weights(analyzer, profile, ranking),
        'targets': qos.targets_for(options.profile),
        'placed_on': best, 'placed_at': placed_at, 'hours': options.hours,
        'key_metric': key_metric, 'outlook': outlook,
        'vm_means': vm_means(store, instance_id),
        'measured': ([h for h, _v in measured], [v for _h, v in measured]),
        'forecast': {
            'hours': [last + (i + 1) * WATCH_STEP_S / 3600.0
                      for i in range(len(outlook.mean))],
            'mean': outlook.mean, 'lower': outlook.lower,
            'upper': outlook.upper, 'model': outlook.model,
            'level': analyzer.forecast_level},
        'actions': actions,
        'host_cpu': ([h for h, _v in host_cpu], [v for _h, v in host_cpu]),
    }
    parts.close()
    run['wall_s'] = time.monotonic() - wall
    try:
        path = write_report(report_path(options.out), run)
    except OSError as error:
        # --out was writable when the run began (parse_args checks it).
        sys.stderr.write('nova-shadow demo: error: cannot write the '
                         'report: %s\n' % error)
        return 1
    print('report: %s  (%.1f s wall)' % (path, time.monotonic() - wall))
    return 0


if __name__ == '__main__':
    sys.exit(run_demo())
