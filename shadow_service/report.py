"""The HTML report of a placement on the twin: figures and tables.

Pure rendering: every function takes plain data (rankings as the manager
returns them, series as lists, action records) and returns a matplotlib
figure or an HTML fragment; :func:`render_page` puts the fragments into one
self-contained page (figures inline as SVG with their text kept as text, no
external file or script).  Nothing here reads a store or drives a cloud:
``shadow_service.demo`` gathers the data, and the watcher can mark its own
scaling actions on a VM's plot with :func:`mark_actions` and list them with
:func:`scaling_actions_section`.

Figures are drawn with matplotlib on the Agg canvas (no display, no
``pyplot`` global state).  Change how a metric's unit is written in
:data:`METRIC_UNITS`, when an axis switches to a log scale in
:data:`LOG_SCALE_RATIO`, and when a QoS target is drawn on the axis rather
than noted as off-scale in :data:`TARGET_NEAR`.
"""

import collections
import functools
import html
import io
import logging
import math

import matplotlib
import numpy as np
from matplotlib import figure as mpl_figure
from matplotlib import ticker
from matplotlib.backends import backend_agg

LOG = logging.getLogger(__name__)

#: ``{metric: unit}`` of the metric catalogue
#: (``doc/source/contributor/contracts.rst``).
METRIC_UNITS = {
    'cpu_ops_per_s': 'ops/s',
    'cpu_util_pct': '%',
    'cpu_steal_pct': '%',
    'cpu_worker_util_pct': '% of a core',
    'mem_bandwidth_gbps': 'GB/s',
    'mem_latency_ns': 'ns',
    'disk_iops': 'IOPS',
    'disk_mbps': 'MB/s',
    'disk_p50_latency_ms': 'ms',
    'disk_p95_latency_ms': 'ms',
    'disk_p99_latency_ms': 'ms',
    'net_rps': 'requests/s',
    'net_mbps': 'MB/s',
    'net_p50_rtt_ms': 'ms',
    'net_p95_rtt_ms': 'ms',
    'net_p99_rtt_ms': 'ms',
}
#: Units of metrics outside the catalogue, by the name's suffix.
SUFFIX_UNITS = (('_per_s', '/s'), ('_pct', '%'), ('_gbps', 'GB/s'),
                ('_mbps', 'MB/s'), ('_iops', 'IOPS'), ('_ms', 'ms'),
                ('_ns', 'ns'))
#: A positive series whose largest value is this many times its smallest
#: is drawn on a log axis (and the axis label says so).
LOG_SCALE_RATIO = 20.0
#: A QoS target further from the data than this many times the data's
#: range is not drawn on the axis (the data would be squashed into a line);
#: an arrow notes where it is instead.
TARGET_NEAR = 1.0
#: Series colours (matplotlib's ``tab10``); the placed host gets the first.
COLOURS = ('#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd',
           '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf')
OTHER_HOSTS_COLOUR = '#b0b0b0'
#: Hosts drawn in colour (by rank) in the per-host figures; the rest grey.
COLOURED_HOSTS = 5
FIGURE_WIDTH_IN = 9.5
#: Most ticks on a linear axis (fewer ticks: less to draw, less clutter).
TICKS = 6

#: One scaling action on a VM: ``time`` on the cloud driver's clock
#: (seconds), ``action`` (a ``ScalingPolicy`` action such as
#: ``resize_up``), ``reason`` (free text).
ActionRecord = collections.namedtuple('ActionRecord',
                                      ('time', 'action', 'reason'))


# -- words and numbers --------------------------------------------------------
def unit_of(metric):
    """The unit ``metric`` is measured in ('' when unknown)."""
    if metric in METRIC_UNITS:
        return METRIC_UNITS[metric]
    for suffix, unit in SUFFIX_UNITS:
        if metric.endswith(suffix):
            return unit
    return ''


def with_unit(metric):
    """``'disk_p95_latency_ms (ms)'``: a metric as an axis label."""
    unit = unit_of(metric)
    return '%s (%s)' % (metric, unit) if unit else metric


def number(value):
    """A value as a person reads it: thousands separated, three
    significant digits below 1000, never scientific notation between
    1e-3 and 1e9."""
    if value is None or not math.isfinite(float(value)):
        return 'n/a'
    value = float(value)
    if abs(value) >= 1e9 or (0 < abs(value) < 1e-3):
        return '%.3g' % value
    if abs(value) >= 1000:
        return f'{value:,.0f}'
    return '%.3g' % value


def quantity(value, metric):
    """``'0.237 ms'``: a value with its metric's unit."""
    unit = unit_of(metric)
    return '%s %s' % (number(value), unit) if unit else number(value)


def target_text(metric, target):
    """``'disk_p95_latency_ms <= 5 ms'`` for ``(comparison, threshold)``."""
    comparison, threshold = target
    return '%s %s %s' % (metric, comparison, quantity(threshold, metric))


# -- axes ---------------------------------------------------------------------
def value_limits(values, target=None, margin=0.08):
    """Axis limits for ``values`` (and a QoS ``target`` threshold).

    The axis spans the data plus ``margin`` of its range on each side.
    The target is put on the axis when it lies within :data:`TARGET_NEAR`
    ranges of the data; otherwise the axis stays on the data, and the
    second element says on which side the target is off the axis.

    Returns
    -------
    tuple
        ``((low, high), off_scale)`` with ``off_scale`` None, ``'above'``
        or ``'below'``.
    """
    data = np.asarray([v for v in values if v is not None], dtype=float)
    data = data[np.isfinite(data)]
    if data.size == 0:
        data = np.asarray([0.0 if target is None else float(target)])
    low, high = float(data.min()), float(data.max())
    spread = high - low if high > low else abs(high)
    off_scale = None
    if target is not None:
        target = float(target)
        if spread == 0 or low - TARGET_NEAR * spread <= target <= \
                high + TARGET_NEAR * spread:
            low, high = min(low, target), max(high, target)
        else:
            off_scale = 'above' if target > high else 'below'
    # A constant series gets a range of its own size (at least 1 unit).
    pad = margin * (high - low) if high > low else max(abs(high) * margin,
                                                        1.0)
    floor = low - pad
    if low > 0 > floor:
        floor = 0.0         # nothing measured is negative: no axis below 0
    elif low == 0:
        # Values at 0 would hide under the axis line: a sliver below.
        floor = -0.02 * (high - low or 1.0)
    return (floor, high + pad), off_scale


def wants_log_scale(values):
    """True when every value is positive and they span more than
    :data:`LOG_SCALE_RATIO` times."""
    data = np.asarray([v for v in values if v is not None], dtype=float)
    data = data[np.isfinite(data)]
    return bool(data.size and data.min() > 0
                and data.max() / data.min() > LOG_SCALE_RATIO)


def note_off_scale_target(ax, metric, target, off_scale, shown, axis='y'):
    """Write on ``ax`` where a target left off the axis is, with an arrow
    pointing its way and how far it is from the data ``shown``."""
    comparison, threshold = target
    data = np.asarray([v for v in shown if v is not None], dtype=float)
    data = data[np.isfinite(data)]
    edge = float(data.max() if off_scale == 'above' else data.min()) \
        if data.size else 0.0
    far = ''
    if edge > 0 and threshold > 0:
        far = ' (%s\u00d7 the %s value shown)' % (
            number(threshold / edge if off_scale == 'above'
                   else edge / threshold),
            'highest' if off_scale == 'above' else 'lowest')
    text = 'QoS target %s %s is off this axis, %s%s' % (
        comparison, quantity(threshold, metric), off_scale, far)
    if axis == 'y':
        tip, tail = ((0.985, 0.99), (0.985, 0.80)) if off_scale == 'above' \
            else ((0.985, 0.01), (0.985, 0.20))
        ax.annotate('', xy=tip, xytext=tail, xycoords='axes fraction',
                    arrowprops={'arrowstyle': '->', 'color': '#c00000'})
        ax.text(0.97, tail[1], text, transform=ax.transAxes, ha='right',
                va='center', fontsize=8, color='#c00000',
                bbox={'facecolor': 'white', 'edgecolor': 'none',
                      'alpha': 0.85, 'pad': 1.5})
    else:
        tip, tail, align = ((0.99, 0.02), (0.80, 0.02), 'right') \
            if off_scale == 'above' else ((0.01, 0.02), (0.20, 0.02), 'left')
        ax.annotate('', xy=tip, xytext=tail, xycoords='axes fraction',
                    arrowprops={'arrowstyle': '->', 'color': '#c00000'})
        ax.text(tail[0] + (-0.02 if align == 'right' else 0.02), tail[1],
                'target %s %s off-axis' % (comparison,
                                           quantity(threshold, metric)),
                transform=ax.transAxes, ha=align, va='bottom', fontsize=7,
                color='#c00000')
    return text


def plain_ticks(axis, log=False):
    """Tick labels written as :func:`tick_number` writes values (no
    offset, no scientific notation); on a log axis, ticks at 1, 2 and 5 of
    every decade."""
    if log:
        axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_minor_locator(ticker.NullLocator())
    else:
        axis.set_major_locator(ticker.MaxNLocator(
            TICKS, steps=(1, 2, 2.5, 5, 10)))
    axis.set_major_formatter(_PlainFormatter(log))


class _PlainFormatter(ticker.Formatter):
    """Plain tick labels with as many decimals as the tick spacing
    needs, so neighbouring ticks never read alike."""

    def __init__(self, log=False):
        self.log = log

    def set_locs(self, locs):
        super().set_locs(locs)
        finite = sorted(v for v in locs if math.isfinite(v))
        steps = [b - a for a, b in zip(finite, finite[1:]) if b > a]
        self.step = None if self.log or not steps else min(steps)

    def __call__(self, value, pos=None):
        return tick_number(value, getattr(self, 'step', None))


def tick_number(value, step=None):
    """A tick label: ``k`` and ``M`` for thousands and millions so crowded
    axes stay legible; with ``step`` (the tick spacing) as many decimals as
    it needs, else as :func:`number` writes it."""
    scale, suffix = 1.0, ''
    if abs(value) >= 1e6 and (step is None or step >= 1e5):
        scale, suffix = 1e6, 'M'
    elif abs(value) >= 1e4 and (step is None or step >= 100):
        scale, suffix = 1e3, 'k'
    if step is None:
        return number(value / scale) + suffix
    # The fewest decimals that write the spacing exactly (0.0025: 4).
    step /= scale
    decimals = next((d for d in range(10)
                     if abs(round(step, d) - step) <= step * 1e-6), 10)
    return '{:,.{}f}'.format(value / scale, decimals) + suffix


def short_model(model, limit=40):
    """A forecaster's model name short enough for a legend: an ensemble
    (``auto:a+b+c``) is named by its size."""
    model = str(model)
    if len(model) <= limit:
        return model
    head, _sep, members = model.partition(':')
    if members and '+' in members:
        return '%s: ensemble of %d forecasters' % (
            head, members.count('+') + 1)
    return model[:limit].rsplit(' ', 1)[0] + '...'


# -- figures ------------------------------------------------------------------
#: Text on figures is drawn as written: a ``$`` (in a host's name, say)
#: never starts matplotlib's math notation.
PLAIN_TEXT = {'text.parse_math': False}


def plain_text(draw):
    """Decorate a function that draws a figure so that every text it
    creates is drawn as written (:data:`PLAIN_TEXT`)."""
    @functools.wraps(draw)
    def drawn(*args, **kwargs):
        with matplotlib.rc_context(PLAIN_TEXT):
            return draw(*args, **kwargs)
    return drawn


def new_figure(height_in, width_in=FIGURE_WIDTH_IN, **subplots):
    """A figure on the Agg canvas with constrained layout; ``subplots``
    go to :meth:`matplotlib.figure.Figure.subplots`."""
    fig = mpl_figure.Figure(figsize=(width_in, height_in),
                            layout='constrained')
    backend_agg.FigureCanvasAgg(fig)
    return fig, fig.subplots(**subplots) if subplots else fig.subplots()


def figure_svg(fig):
    """The figure as an inline ``<svg>`` element: text kept as text (so
    labels can be searched and read), no XML prolog, no metadata."""
    buffer = io.StringIO()
    with matplotlib.rc_context(dict(PLAIN_TEXT, **{'svg.fonttype':
                                                   'none'})):
        fig.savefig(buffer, format='svg', metadata={
            'Creator': None, 'Date': None, 'Format': None, 'Type': None})
    text = buffer.getvalue()
    return text[text.index('<svg'):]


def _host_styles(hosts, placed):
    """``{host: (colour, linewidth, label or None, zorder)}``: the first
    :data:`COLOURED_HOSTS` hosts by rank in colour (the placed host
    thickest), the others grey under one legend entry."""
    styles = {}
    others = len(hosts) - COLOURED_HOSTS
    for index, host in enumerate(hosts):
        if index < COLOURED_HOSTS:
            label = '#%d %s%s' % (index + 1, host,
                                  ' (placed)' if host == placed else '')
            styles[host] = (COLOURS[index % len(COLOURS)],
                            2.4 if host == placed else 1.3, label, 3)
        else:
            first_other = index == COLOURED_HOSTS
            styles[host] = (OTHER_HOSTS_COLOUR, 0.9, 'other %d host%s' % (
                others, 's' if others > 1 else '') if first_other else None,
                2)
    return styles


@plain_text
def ranking_figure(ranking, placed):
    """Horizontal bars: each host's Performance Score, best at the top,
    with its confidence written beside the bar."""
    hosts = ranking['hosts']
    fig, ax = new_figure(0.6 + 0.24 * max(len(hosts), 1))
    names = [h['host'] for h in hosts]
    scores = [h['score'] for h in hosts]
    colours = [COLOURS[2] if n == placed else COLOURS[0] for n in names]
    positions = np.arange(len(hosts))
    ax.barh(positions, scores, color=colours, height=0.7)
    for position, host in zip(positions, hosts):
        ax.text(host['score'] + 1, position, '%.1f  (confidence %.2f)' % (
            host['score'], host.get('confidence', 0.0)), va='center',
            fontsize=8)
    ax.set_yticks(positions, ['#%d %s' % (i + 1, n)
                              for i, n in enumerate(names)])
    ax.invert_yaxis()
    ax.set_xlim(0, 125)
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel('Performance Score (0-100, higher is better; from the '
                  'full-VM predictions)')
    ax.set_ylabel('host, by rank')
    ax.set_title('Ranking of the %d candidate hosts (green: where the VM '
                 'was placed)' % len(hosts), fontsize=10)
    return fig


@plain_text
def shadow_figure(samples, hosts, placed, shadow_label):
    """Small multiples, one per metric: what each host's shadow measured
    during the evaluation, at shadow scale.

    Parameters
    ----------
    samples : dict
        ``{metric: {host: (seconds since the first sample, values)}}``.
    hosts : list of str
        Hosts by rank (colours follow the rank).
    placed : str
    shadow_label : str
        What the shadow was (flavor and share of the load), for the title.
    """
    metrics = sorted(samples)
    columns = 2
    rows = max(1, math.ceil(len(metrics) / columns))
    fig, axes = new_figure(1.2 + 2.3 * rows, nrows=rows, ncols=columns,
                           squeeze=False)
    styles = _host_styles(hosts, placed)
    for ax in axes.flat[len(metrics):]:
        ax.set_visible(False)
    legend = {}
    for ax, metric in zip(axes.flat, metrics):
        values = []
        for host in reversed(hosts):        # the best drawn last, on top
            if host not in samples[metric]:
                continue
            times, series = samples[metric][host]
            colour, width, label, order = styles[host]
            line, = ax.plot(times, series, color=colour, linewidth=width,
                            zorder=order)
            if label:
                legend[label] = line
            values.extend(series)
        label = '%s, shadow' % with_unit(metric)
        log = wants_log_scale(values)
        if log:
            ax.set_yscale('log')
            label += ', log scale'
        else:
            ax.set_ylim(*value_limits(values)[0])
        plain_ticks(ax.yaxis, log=log)
        plain_ticks(ax.xaxis)
        ax.set_ylabel(label, fontsize=8)
        ax.set_xlabel('simulated time since the first shadow sample (s)',
                      fontsize=8)
        ax.set_title(metric, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(True, color='#eeeeee')
    order = sorted(legend, key=lambda label: (label.startswith('other'),
                                              int(label[1:].split()[0])
                                              if label[0] == '#' else 0))
    fig.legend([legend[label] for label in order], order,
               loc='outside lower center', ncols=min(6, len(order)),
               fontsize=8)
    fig.suptitle('Shadow measurements per host over the evaluation\n'
                 '(shadow scale: %s)' % shadow_label, fontsize=10)
    return fig


def _target_on_axis(ax, metric, target, data, log, axis='x'):
    """Draw a QoS target as a dashed line when it falls on the axis the
    data need; otherwise note where it is.  Sets the axis limits."""
    threshold = target[1] if target else None
    if log:
        if target and min(data) <= threshold <= max(data):
            off_scale = None
        elif target:
            off_scale = 'above' if threshold > max(data) else 'below'
        else:
            off_scale = None
    else:
        limits, off_scale = value_limits(data, threshold)
        (ax.set_xlim if axis == 'x' else ax.set_ylim)(*limits)
    if not target:
        return
    if off_scale is None:
        line = ax.axvline if axis == 'x' else ax.axhline
        line(threshold, color='#c00000', linestyle='--', linewidth=1)
        if axis == 'x':
            ax.text(threshold, -1.0, 'target %s %s ' % (
                target[0], quantity(threshold, metric)), color='#c00000',
                fontsize=7, ha='right', va='center')
    else:
        note_off_scale_target(ax, metric, target, off_scale, data,
                              axis=axis)


@plain_text
def prediction_figure(predicted, hosts, placed, weights, targets,
                      full_label):
    """One panel per weighed metric: the analyzer's prediction for the
    full VM on every host (dots, best-ranked host at the top).

    Parameters
    ----------
    predicted : dict
        ``{host: {metric: predicted full-VM value}}``.
    hosts : list of str
        Hosts by rank.
    weights : dict
        ``{metric: weight}`` of the ranking; panels in weight order.
    targets : dict
        ``{metric: (comparison, threshold)}`` QoS targets.
    full_label : str
        The full VM (flavor), for the title.
    """
    metrics = [m for m in sorted(weights, key=lambda m: (-weights[m], m))
               if any(m in predicted.get(h, {}) for h in hosts)]
    columns = 3
    rows = max(1, math.ceil(len(metrics) / columns))
    fig, axes = new_figure(0.9 + (0.8 + 0.16 * len(hosts)) * rows,
                           nrows=rows, ncols=columns, squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.set_visible(False)
    positions = np.arange(len(hosts))
    for index, (ax, metric) in enumerate(zip(axes.flat, metrics)):
        values = [predicted.get(h, {}).get(metric) for h in hosts]
        shown = [(p, v) for p, v in zip(positions, values) if v is not None]
        colours = [COLOURS[2] if hosts[p] == placed else COLOURS[0]
                   for p, _v in shown]
        ax.scatter([v for _p, v in shown], [p for p, _v in shown],
                   c=colours, s=18, zorder=3)
        data = [v for _p, v in shown]
        label = 'predicted, full VM (%s)' % (unit_of(metric) or 'value')
        log = wants_log_scale(data)
        if log:
            ax.set_xscale('log')
            label += ', log scale'
        _target_on_axis(ax, metric, targets.get(metric), data, log)
        plain_ticks(ax.xaxis, log=log)
        ax.set_xlabel(label, fontsize=8)
        ax.set_yticks(positions, ['#%d %s' % (i + 1, h)
                                  for i, h in enumerate(hosts)]
                      if index % columns == 0 else [])
        if index % columns == 0:
            ax.set_ylabel('host, by rank', fontsize=8)
        ax.set_ylim(len(hosts) - 0.5, -1.6)
        ax.set_title('%s, weight %.0f%%' % (metric, 100 * weights[metric]),
                     fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(True, axis='x', color='#eeeeee')
    fig.suptitle('Predicted figures of the full VM (%s) on each host '
                 '(green: placed)' % full_label, fontsize=10)
    return fig


@plain_text
def vm_day_figure(measured, forecast, metric, target, predicted=None,
                  actions=(), placed_at=0.0):
    """The placed VM's key metric over the simulated day, its forecast
    with the interval, the QoS target and any scaling actions.

    Parameters
    ----------
    measured : tuple
        ``(hours since placement, values)`` the VM reported.
    forecast : dict
        ``hours``, ``mean``, ``lower``, ``upper``, ``level`` (interval
        coverage, 0-1) and ``model``.
    metric : str
    target : tuple
        ``(comparison, threshold)``.
    predicted : float, optional
        The full-VM prediction for this host made before placement.
    actions : sequence of ActionRecord
        Marked with :func:`mark_actions`.
    placed_at : float
        The driver-clock time of the placement (hour 0).
    """
    fig, ax = new_figure(4.2)
    hours, values = measured
    ax.plot(hours, values, color=COLOURS[0], linewidth=1.0,
            label='measured, full VM (every %g min)' % _step_minutes(hours))
    ax.fill_between(forecast['hours'], forecast['lower'], forecast['upper'],
                    color=COLOURS[1], alpha=0.25, linewidth=0,
                    label='forecast interval (%.0f%% coverage)'
                    % (100 * forecast['level']))
    ax.plot(forecast['hours'], forecast['mean'], color=COLOURS[1],
            linestyle='--', linewidth=1.3,
            label='forecast (%s)' % short_model(forecast['model']))
    shown = list(values) + list(forecast['lower']) + list(forecast['upper'])
    if predicted is not None:
        ax.axhline(predicted, color=COLOURS[2], linestyle=':', linewidth=1.5,
                   label='predicted for this host before placement: %s'
                   % quantity(predicted, metric))
        shown.append(predicted)
    limits, off_scale = value_limits(shown, target[1])
    ax.set_ylim(*limits)
    if off_scale is None:
        ax.axhline(target[1], color='#c00000', linewidth=1.2,
                   label='QoS target %s %s' % (
                       target[0], quantity(target[1], metric)))
    else:
        note_off_scale_target(ax, metric, target, off_scale, shown)
    if forecast['hours']:
        start = forecast['hours'][0] - _step_hours(forecast['hours'])
        ax.axvline(start, color='#777777', linewidth=0.8)
        ax.text(start, 0.02, ' forecast from here', fontsize=7,
                color='#555555', va='bottom',
                transform=ax.get_xaxis_transform())
    mark_actions(ax, actions, placed_at)
    plain_ticks(ax.yaxis)
    ax.set_xlabel('simulated time since the VM was placed (h)')
    ax.set_ylabel(with_unit(metric) + ', full VM')
    ax.set_title('%s of the placed VM and its %g h forecast' % (
        metric, len(forecast['hours']) * _step_hours(forecast['hours'])),
        fontsize=10)
    ax.grid(True, color='#eeeeee')
    fig.legend(loc='outside lower center', ncols=2, fontsize=8)
    return fig


@plain_text
def host_cpu_figure(hours, values, host):
    """The placed host's CPU utilisation as host monitoring saw it, around
    the placement (hour 0)."""
    fig, ax = new_figure(2.8)
    ax.plot(hours, values, color=COLOURS[0], linewidth=1.2,
            label='host CPU utilisation (every %g min)'
            % _step_minutes(hours))
    ax.axvline(0.0, color=COLOURS[2], linewidth=1.2, label='VM placed')
    ax.set_ylim(0, 100)
    plain_ticks(ax.yaxis)
    ax.set_xlabel('simulated time relative to the placement (h)')
    ax.set_ylabel('cpu_util_pct (%), host')
    ax.set_title('CPU utilisation of host %s' % host, fontsize=10)
    ax.grid(True, color='#eeeeee')
    ax.legend(fontsize=8, loc='upper left')
    return fig


def mark_actions(ax, actions, placed_at=0.0):
    """Draw each :class:`ActionRecord` on ``ax`` (x in hours since
    ``placed_at``) as a vertical line labelled with its action."""
    for record in actions:
        record = ActionRecord(*record)
        hour = (float(record.time) - placed_at) / 3600.0
        ax.axvline(hour, color='#6a3d9a', linewidth=1.2, linestyle='-.')
        ax.text(hour, 0.98, ' ' + record.action, rotation=90, va='top',
                ha='right', fontsize=8, color='#6a3d9a',
                transform=ax.get_xaxis_transform())


def _step_hours(hours):
    return float(hours[1] - hours[0]) if len(hours) > 1 else 0.0


def _step_minutes(hours):
    return round(_step_hours(hours) * 60.0, 1)


# -- HTML fragments -----------------------------------------------------------
def table(header, rows, caption=None):
    """An HTML table; cells are escaped."""
    out = ['<table>']
    if caption:
        out.append('<caption>%s</caption>' % html.escape(caption))
    out.append('<tr>%s</tr>' % ''.join('<th>%s</th>' % html.escape(str(h))
                                       for h in header))
    for row in rows:
        out.append('<tr>%s</tr>' % ''.join(
            '<td>%s</td>' % html.escape(str(c)) for c in row))
    out.append('</table>')
    return '\n'.join(out)


def ranking_table_html(ranking, placed):
    """Every host with its score, confidence and all its reasons."""
    rows = []
    for number_, host in enumerate(ranking['hosts'], 1):
        rows.append(('%d' % number_, host['host']
                     + (' (placed)' if host['host'] == placed else ''),
                     '%.1f' % host['score'],
                     '%.2f' % host.get('confidence', 0.0),
                     '; '.join(host.get('reasons') or []) or '-'))
    return table(('rank', 'host', 'score (0-100)', 'confidence (0-1)',
                  'reasons: full-VM predicted value (share of the best '
                  'host\'s, weight of the metric)'), rows) + (
        '<p>Score: 0-100, from the full-VM predictions weighted by the '
        'profile\'s sensitivity. Confidence: the probability that the '
        'host\'s order against each other host is right (or the two are '
        'within the tie margin), averaged over the other hosts.</p>')


def scaling_actions_section(actions, placed_at=0.0):
    """The scaling actions taken on the VM: a table of
    :class:`ActionRecord` (time as simulated hours since ``placed_at``),
    or a sentence saying there were none."""
    out = [heading('Scaling actions taken')]
    actions = [ActionRecord(*a) for a in actions]
    if not actions:
        out.append('<p>None: no scaling action was taken on this VM '
                   'during the run, so none is marked on its plot.</p>')
        return '\n'.join(out)
    out.append(table(
        ('simulated time since placement (h)', 'action', 'reason'),
        [('%.2f' % ((float(a.time) - placed_at) / 3600.0), a.action,
          a.reason) for a in sorted(actions, key=lambda a: a.time)]))
    out.append('<p>Each action is marked on the VM\'s plot above.</p>')
    return '\n'.join(out)


def heading(text, level=2):
    """``<h2>`` (or ``level``) of ``text``, escaped: a heading may name a
    host, and a host's name is whatever its cloud calls it."""
    return '<h%d>%s</h%d>' % (level, html.escape(text), level)


def definition_list(items):
    """``<dl>`` of ``[(term, description)]``; both escaped."""
    return '<dl>%s</dl>' % ''.join(
        '<dt>%s</dt><dd>%s</dd>' % (html.escape(t), html.escape(d))
        for t, d in items)


STYLE = ('body{font-family:sans-serif;max-width:1000px;margin:2em auto;'
         'padding:0 1em;color:#222}'
         'table{border-collapse:collapse;margin:0.5em 0 1em}'
         'td,th{padding:3px 8px;text-align:left;vertical-align:top;'
         'border-bottom:1px solid #e4e4e4;font-size:0.9em}'
         'caption{text-align:left;font-weight:bold;padding:4px 0}'
         'dl{display:grid;grid-template-columns:max-content auto;'
         'gap:2px 1em}dt{font-weight:bold}dd{margin:0}'
         'svg{max-width:100%;height:auto;display:block;margin:0.5em 0}'
         '.note{background:#fff3cd;padding:8px}'
         '.advice{background:#e8f0fe;padding:8px}'
         'figure{margin:1em 0}figcaption{font-size:0.9em;color:#444}')


def render_page(title, sections):
    """One self-contained HTML page from HTML ``sections``."""
    return '\n'.join(
        ['<!DOCTYPE html><html><head><meta charset="utf-8">',
         '<title>%s</title><style>%s</style></head><body>'
         % (html.escape(title), STYLE),
         '<h1>%s</h1>' % html.escape(title)]
        + list(sections) + ['</body></html>'])


def figure_section(fig, caption):
    """A figure as inline SVG with an escaped caption."""
    return '<figure>%s<figcaption>%s</figcaption></figure>' % (
        figure_svg(fig), html.escape(caption))
