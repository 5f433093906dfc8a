"""The history metrics source over a real SQLite history store, and the
digital twin's host monitoring read through it."""

import numpy as np
import pytest

from shadow_service import metrics
from shadow_service.clouds.sim import engine
from shadow_service.history import base as history_base
from shadow_service.history import sqlite
from shadow_service.metrics import base
from shadow_service.metrics import history
from tests.unit.shadow_service.metrics.conftest import make_conf

T0 = 1700000000.0


@pytest.fixture
def store(tmp_path):
    made = sqlite.SQLiteStore(path=str(tmp_path / 'history.sqlite'))
    yield made
    made.close()


def _host_points(host, metric, values, every=10.0):
    return [history_base.Point('host_metric',
                               {'host': host, 'metric': metric},
                               {'value': float(v)}, T0 + i * every)
            for i, v in enumerate(values)]


def test_host_series_are_bucket_means_and_missing_buckets_are_none(store):
    store.write(_host_points('cmp1', 'cpu_util_pct',
                             [10, 20, 30, 40, 50, 60]))
    source = history.HistorySource(make_conf(), history=store)

    series = source.host_series('cmp1', 'cpu_util_pct', T0, T0 + 80, 20.0)

    assert series.times == [T0, T0 + 20, T0 + 40, T0 + 60]
    assert series.values == [15.0, 35.0, 55.0, None]


def test_many_hosts_and_an_unknown_host(store):
    store.write(_host_points('cmp1', 'disk_iops', [100, 300])
                + _host_points('cmp2', 'disk_iops', [7, 9])
                + _host_points('cmp1', 'net_mbps', [1, 1]))
    source = history.HistorySource(make_conf(), history=store)

    found = source.host_series_many(['cmp2', 'cmp1', 'cmp9', 'cmp2'],
                                    'disk_iops', T0, T0 + 20, 20.0)

    assert list(found) == ['cmp2', 'cmp1', 'cmp9']
    assert found['cmp1'].values == [200.0]
    assert found['cmp2'].values == [8.0]
    assert found['cmp9'].values == [None]


def test_instance_series_read_instance_metric_points_across_hosts(store):
    uuid = '8a3f5f0e-51a5-4bb1-9d2b-3a1d2c5a0f11'
    store.write([
        history_base.Point('instance_metric',
                           {'instance': uuid, 'host': host,
                            'metric': 'cpu_ops_per_s'},
                           {'value': value}, T0 + offset)
        for host, value, offset in (('cmp1', 100.0, 0), ('cmp1', 200.0, 30),
                                    ('cmp2', 50.0, 70))])
    source = history.HistorySource(make_conf(), history=store)

    series = source.instance_series(uuid, 'cpu_ops_per_s', T0, T0 + 90,
                                    30.0)
    other = source.instance_series('no-such-instance', 'cpu_ops_per_s', T0,
                                   T0 + 90, 30.0)

    assert series.values == [100.0, 200.0, 50.0]
    assert other.values == [None, None, None]


def test_the_twins_host_monitoring_reaches_the_source(tmp_path):
    store = sqlite.SQLiteStore(path=str(tmp_path / 'twin.sqlite'))
    twin = engine.build_twin(history=store, noise_pct=0.0)
    hosts = ['node-01', 'node-02']
    twin.backfill_host_metrics(3600, interval_s=300.0, hosts=hosts)
    times = engine.grid_times(twin.clock - 3600, twin.clock, 300.0)
    source = metrics.load_source(make_conf(metrics={'source': 'history'}),
                                 history=store)

    for metric in base.TWIN_HOST_METRICS:
        found = source.host_series_many(hosts, metric, times[0],
                                        times[-1] + 300.0, 300.0)
        for host in hosts:
            expected = twin.host_observation(host, times)[metric]
            assert np.allclose(found[host].values, expected), (host, metric)
    store.close()


def test_the_history_store_is_built_from_the_configuration(tmp_path):
    path = tmp_path / 'configured.sqlite'
    conf = make_conf(metrics={'source': 'history'},
                     history={'store': 'sqlite', 'sqlite_path': str(path)})
    writer = sqlite.SQLiteStore(path=str(path))
    writer.write(_host_points('cmp1', 'mem_used_pct', [42.0]))
    writer.close()

    source = metrics.load_source(conf)
    try:
        series = source.host_series('cmp1', 'mem_used_pct', T0, T0 + 10,
                                    10.0)
    finally:
        source.close()

    assert series.values == [42.0]


def test_an_unusable_history_store_is_a_metrics_error(tmp_path):
    conf = make_conf(history={
        'store': 'sqlite',
        'sqlite_path': str(tmp_path / 'missing-dir' / 'h.sqlite')})

    with pytest.raises(base.MetricsError, match=r'\[history\] store'):
        history.HistorySource(conf)


@pytest.mark.parametrize('metric', ['', 'CPU util', 'cpu-util', None, 5])
def test_a_malformed_metric_name_is_refused(store, metric):
    source = history.HistorySource(make_conf(), history=store)

    with pytest.raises(ValueError, match='metric'):
        source.host_series('cmp1', metric, T0, T0 + 10, 10.0)


def test_an_instance_uuid_no_query_can_carry_is_a_clear_value_error(store):
    # A lone surrogate (a byte that was not UTF-8) failed deep in the
    # store's driver with a UnicodeEncodeError.
    source = history.HistorySource(make_conf(), history=store)

    with pytest.raises(ValueError, match=r"instance_uuid 'lone\\ud800x' "
                       r'is not valid UTF-8'):
        source.instance_series('lone\ud800x', 'cpu_util_pct', T0,
                               T0 + 20, 20.0)
