"""The report's figures and fragments: axes readable, numbers labelled,
scaling actions marked or honestly absent."""

import numpy as np

from shadow_service import report
from shadow_service.workloads import catalogue

HOSTS = ['node-%02d' % i for i in range(1, 9)]


def test_every_catalogue_metric_has_a_unit():
    for metric in catalogue.METRIC_DIRECTIONS:
        assert report.unit_of(metric), metric
    assert report.with_unit('disk_p95_latency_ms') == \
        'disk_p95_latency_ms (ms)'
    assert report.unit_of('cpu_ops_per_s') == 'ops/s'


def test_numbers_read_without_scientific_notation_in_the_usual_range():
    assert report.number(99519.47) == '99,519'
    assert report.number(0.23674) == '0.237'
    assert report.number(2.5e-5) == '2.5e-05'
    assert report.number(None) == 'n/a'
    assert report.tick_number(50000) == '50k'
    assert report.tick_number(1300) == '1,300'


def test_a_far_target_leaves_the_axis_on_the_data_and_says_where_it_is():
    latency = [0.22, 0.24, 0.26]
    (low, high), off_scale = report.value_limits(latency, target=5.0)
    assert off_scale == 'above'
    assert 0.2 < low < 0.22 and 0.26 < high < 0.3


def test_a_near_target_is_put_on_the_axis():
    (low, high), off_scale = report.value_limits([3.0, 4.0], target=5.0)
    assert off_scale is None and low < 3.0 and high > 5.0


def test_a_positive_series_gets_no_negative_axis():
    (low, _high), _off = report.value_limits([0.1, 5.0])
    assert low == 0.0


def test_a_series_at_zero_stays_visible_above_the_axis_line():
    (low, high), _off = report.value_limits([0.0, 0.0, 0.0])
    assert -0.1 < low < 0.0 and high >= 1.0


def test_neighbouring_ticks_never_read_alike():
    for ticks in ([0.1125, 0.115, 0.1175], [0.1, 0.1005, 0.101],
                  [10000, 10500, 11000], [425, 450, 475]):
        formatter = report._PlainFormatter()
        formatter.set_locs(ticks)
        labels = [formatter(t) for t in ticks]
        assert len(set(labels)) == len(ticks), labels
    assert [report.tick_number(v, 500) for v in (10000, 10500)] == \
        ['10.0k', '10.5k']


def test_log_scale_only_for_positive_series_spanning_decades():
    assert report.wants_log_scale([300, 25000])
    assert not report.wants_log_scale([300, 400])
    assert not report.wants_log_scale([0.0, 25000])


def test_the_shadow_figure_labels_every_axis_with_its_unit():
    samples = {'disk_iops': {h: ([0, 1, 2], [300.0 * (i + 1) ** 2] * 3)
                             for i, h in enumerate(HOSTS)},
               'mem_latency_ns': {h: ([0, 1, 2], [80.0 + i, 81.0, 79.0])
                                  for i, h in enumerate(HOSTS)}}
    fig = report.shadow_figure(samples, HOSTS, HOSTS[0], '1 vCPU')
    labels = [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes
              if ax.get_visible()]
    assert labels == [
        ('simulated time since the first shadow sample (s)',
         'disk_iops (IOPS), shadow, log scale'),
        ('simulated time since the first shadow sample (s)',
         'mem_latency_ns (ns), shadow')]
    svg = report.figure_svg(fig)
    assert svg.startswith('<svg') and 'disk_iops (IOPS)' in svg
    assert '#1 node-01 (placed)' in svg and 'other 3 hosts' in svg


def test_the_vm_figure_marks_scaling_actions_and_an_off_scale_target():
    hours = list(np.arange(0, 3, 1 / 12.0))
    values = [0.24 + 0.01 * np.sin(h) for h in hours]
    future = [hours[-1] + (i + 1) / 12.0 for i in range(6)]
    forecast = {'hours': future, 'mean': [0.24] * 6, 'lower': [0.23] * 6,
                'upper': [0.25] * 6, 'level': 0.9, 'model': 'holt'}
    actions = [report.ActionRecord(1000.0 + 3600.0, 'resize_up',
                                   'latency forecast above 5 ms')]
    fig = report.vm_day_figure((hours, values), forecast,
                               'disk_p95_latency_ms', ('<=', 5.0),
                               predicted=0.237, actions=actions,
                               placed_at=1000.0)
    ax = fig.axes[0]
    assert ax.get_ylim()[1] < 1.0           # the target did not squash it
    assert ax.get_xlabel() == 'simulated time since the VM was placed (h)'
    svg = report.figure_svg(fig)
    assert 'resize_up' in svg
    assert 'QoS target &lt;= 5 ms is off this axis, above' in svg
    assert 'forecast interval (90% coverage)' in svg


def test_no_scaling_action_is_said_plainly():
    section = report.scaling_actions_section([])
    assert '<table' not in section and 'no scaling action was taken' in \
        section


def test_scaling_actions_are_listed_in_time_order_since_placement():
    section = report.scaling_actions_section(
        [(7200.0 + 100, 'live_migrate', 'host steal rising'),
         (3600.0 + 100, 'resize_up', 'p95 <above> 5 ms')], placed_at=100.0)
    assert section.index('resize_up') < section.index('live_migrate')
    assert '<td>1.00</td>' in section and '<td>2.00</td>' in section
    assert 'p95 &lt;above&gt; 5 ms' in section


def test_a_long_ensemble_name_is_shortened_for_the_legend():
    name = 'auto:' + '+'.join('median_%d' % i for i in range(19))
    assert report.short_model(name) == 'auto: ensemble of 19 forecasters'
    assert report.short_model('holt_winters') == 'holt_winters'
