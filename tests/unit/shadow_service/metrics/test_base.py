"""What every metrics source shares: bounded queries, the missing-data
answer, loading by name, options, and keeping secrets out of messages."""

import io
import math

import pytest
from oslo_config import generator
from stevedore import extension

from shadow_service import metrics
from shadow_service.conf import metrics as metrics_conf
from shadow_service.metrics import base
from shadow_service.metrics import null
from tests.unit.shadow_service.metrics.conftest import make_conf

T0 = 1700000000.0


def _none_source(**limits):
    return null.NullSource(make_conf(metrics=limits))


@pytest.mark.parametrize('start, end, step, name', [
    (None, T0, 60, 'start'),
    (T0, None, 60, 'end'),
    (T0, T0 + 60, None, 'step_s'),
])
def test_an_open_range_is_an_error_naming_the_missing_bound(start, end,
                                                            step, name):
    with pytest.raises(ValueError, match='%s is required' % name):
        _none_source().host_series('cmp1', 'cpu_util_pct', start, end, step)


@pytest.mark.parametrize('start, end, step, message', [
    (T0, T0, 60, 'must be after start'),
    (T0 + 60, T0, 60, 'must be after start'),
    (T0, T0 + 60, 0, 'step_s must be positive'),
    (T0, T0 + 60, -5, 'step_s must be positive'),
    (T0, T0 + 60, 1e-7, 'step_s .* one microsecond'),
    (math.nan, T0, 60, 'start must be a finite number'),
    (T0, math.inf, 60, 'end must be a finite number'),
    (T0, T0 + 60, True, 'step_s must be a finite number'),
    ('yesterday', T0, 60, 'start must be a finite number'),
])
def test_a_malformed_range_is_an_error_naming_the_field(start, end, step,
                                                        message):
    with pytest.raises(ValueError, match=message):
        _none_source().host_series('cmp1', 'cpu_util_pct', start, end, step)


def test_a_range_longer_than_max_range_days_is_refused():
    source = _none_source(max_range_days=7)

    source.host_series('cmp1', 'cpu_util_pct', T0, T0 + 7 * 86400, 3600)
    with pytest.raises(ValueError, match=r'max_range_days = 7'):
        source.host_series('cmp1', 'cpu_util_pct', T0, T0 + 8 * 86400, 3600)


def test_more_steps_than_max_points_is_refused():
    source = _none_source(max_points=100)

    assert len(source.host_series('cmp1', 'cpu_util_pct', T0, T0 + 100,
                                  1.0).values) == 100
    with pytest.raises(ValueError, match=r'101 points.*max_points = 100'):
        source.host_series('cmp1', 'cpu_util_pct', T0, T0 + 101, 1.0)


def test_the_grid_covers_the_range_with_whole_steps():
    series = _none_source().host_series('cmp1', 'net_mbps', T0, T0 + 150,
                                        60.0)

    assert series.times == [T0, T0 + 60, T0 + 120]
    assert series.step_s == 60.0


def test_the_none_source_answers_missing_data_for_every_metric():
    source = _none_source()

    found = source.host_series_many(['cmp1', 'cmp2'], 'cpu_steal_pct', T0,
                                    T0 + 120, 60)
    instance = source.instance_series('8a3f5f0e', 'disk_iops', T0, T0 + 60,
                                      60)

    assert source.metrics() == ()
    assert found['cmp1'].values == found['cmp2'].values == [None, None]
    assert instance.values == [None]
    for metric in base.METRICS:
        assert source.host_series('cmp1', metric, T0, T0 + 60,
                                  60).values == [None]


def test_the_none_source_is_the_default():
    assert isinstance(metrics.load_source(make_conf()), null.NullSource)


def test_an_unknown_source_name_is_a_clear_error():
    conf = make_conf()

    with pytest.raises(metrics.MetricsError,
                       match=r"unknown metrics source 'graphite' "
                             r'\(\[metrics\] source\)'):
        metrics.load_source(conf, name='graphite')


def test_an_unknown_metric_is_an_unsupported_metric_error():
    with pytest.raises(base.UnsupportedMetric,
                       match="cannot read host metric 'gpu_util_pct'"):
        _none_source().host_series('cmp1', 'gpu_util_pct', T0, T0 + 60, 60)


@pytest.mark.parametrize('hosts, message', [
    ('cmp1', 'list of names'),
    (['cmp1', ''], 'non-empty string'),
    ([None], 'non-empty string'),
])
def test_hosts_must_be_a_list_of_names(hosts, message):
    with pytest.raises(ValueError, match=message):
        _none_source().host_series_many(hosts, 'cpu_util_pct', T0, T0 + 60,
                                        60)


def test_an_empty_host_list_reads_nothing():
    assert _none_source().host_series_many([], 'cpu_util_pct', T0, T0 + 60,
                                           60) == {}


@pytest.mark.parametrize('url, masked', [
    ('http://u:s3cret@host:9090/prom', 'http://u:***@host:9090/prom'),
    ('https://s3cret@host/', 'https://s3cret:***@host/'),
    ('http://host:9090', 'http://host:9090'),
    ('http://u:s3cret@[::1]:9090', 'http://u:***@[::1]:9090'),
    ('redis://h:26379?sentinel=m&sentinel_password=s3%40cret&db=1',
     'redis://h:26379?sentinel=m&sentinel_password=***&db=1'),
])
def test_mask_url_hides_the_password(url, masked):
    assert base.mask_url(url) == masked


def test_the_scrubber_hides_secrets_also_when_url_quoted():
    scrub = base.Scrubber('p@ss word', None, '')

    assert scrub('auth p@ss word and p%40ss%20word') == 'auth *** and ***'


def test_every_plugin_lists_its_options_in_its_own_group():
    listed = {group.name: opts
              for group, opts in metrics_conf.list_opts().items()}
    names = set()
    for ext in extension.ExtensionManager(metrics.NAMESPACE):
        names.add(ext.name)
        opts = ext.plugin.get_config_opts()
        group = metrics_conf.plugin_group_name(ext.name)
        if opts:
            assert listed[group] == list(opts)
        else:
            assert group not in listed

    assert names == {'none', 'history', 'prometheus', 'influxdb'}
    assert {'metrics', 'metrics_prometheus', 'metrics_influxdb'} <= set(
        listed)


def test_the_sample_config_shows_every_metrics_option():
    conf = generator.cfg.ConfigOpts()
    generator.register_cli_opts(conf)
    conf(['--namespace=nova_shadow.service', '--wrap-width=79'])
    out = io.StringIO()
    generator.generate(conf, output_file=out)
    sample = out.getvalue()

    for group, opts in metrics_conf.list_opts().items():
        section = sample.split('\n[%s]\n' % group.name, 1)[1].split(
            '\n[', 1)[0]
        for opt in opts:
            assert '\n#%s =' % opt.name in section, (group.name, opt.name)
    assert '#password = <None>' in sample
