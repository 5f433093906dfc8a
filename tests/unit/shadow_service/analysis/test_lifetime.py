"""Lifetime ranking: host load history from a real store, forecast, and
moved through a fitted contention model into the ranking."""

import math
import socket
import threading
import time
import urllib.request

import numpy as np
import pytest

from shadow_service.analysis import analyzer as analyzer_lib
from shadow_service.analysis import contention
from shadow_service.analysis import lifetime
from shadow_service.history import base
from shadow_service.history import sqlite
from shadow_service.metrics import history as history_source

# 2026-12-01 07:00 UTC: the evening host is quiet now and peaks at 19:00.
NOW = 1_796_108_400.0
HOUR = 3600.0


def _evening_load(t):
    """CPU % of a host that is quiet by day and busy around 19:00 UTC."""
    hour = (t % 86400.0) / HOUR
    return 15.0 + 65.0 * math.exp(-((hour - 19.0) ** 2) / 32.0)


def _write_history(store, days=4, step=900.0, until=NOW):
    rng = np.random.default_rng(3)
    points = []
    for t in np.arange(NOW - days * 86400.0, until, step):
        for host, value in (('evening', _evening_load(t)
                             + rng.normal(0, 3)),
                            ('steady', 30.0 + rng.normal(0, 1))):
            points.append(base.Point(
                'host_metric', {'host': host, 'metric': 'cpu_util_pct'},
                {'value': float(value)}, float(t)))
    store.write(points)


def _ops_model():
    """CPU ops/s falls by 5 per point of host CPU busy."""
    rng = np.random.default_rng(0)
    util = rng.uniform(0, 90, 200)
    ops = 1000 - 5.0 * util + rng.normal(0, 5, 200)
    return contention.ContentionModel(features=('cpu_util_pct',)).fit(
        {'cpu_util_pct': util}, ops)


@pytest.fixture
def store(tmp_path):
    store = sqlite.SQLiteStore(path=str(tmp_path / 'history.sqlite'))
    _write_history(store)
    yield store
    store.close()


def _forecaster(store, **options):
    options.setdefault('forecaster', 'seasonal_naive')
    return lifetime.LoadForecaster(
        history_source.HistorySource(history=store), lambda: NOW,
        **options)


def test_outlook_sees_the_evening_peak_in_the_hosts_history(store):
    outlooks = _forecaster(store).outlook(['evening', 'steady', 'unknown'])

    cpu = outlooks['evening'].loads['cpu_util_pct']
    assert cpu.now < 25
    assert cpu.peak > 70
    assert time.gmtime(cpu.peak_at).tm_hour in (18, 19, 20)
    assert cpu.mean > cpu.now + 10
    assert cpu.lower <= cpu.mean <= cpu.upper
    assert outlooks['steady'].loads['cpu_util_pct'].mean == \
        pytest.approx(30.0, abs=1.0)
    # A host the monitoring never saw is forecast from nothing: said so.
    assert outlooks['unknown'].loads == {}
    assert any('too little CPU history' in n
               for n in outlooks['unknown'].notes)
    reason = outlooks['evening'].reasons()[0]
    assert 'quiet now (CPU' in reason and 'forecast peak' in reason
    assert 'UTC' in reason


@pytest.mark.parametrize('forecaster', ['seasonal_naive', 'auto'])
def test_a_host_whose_monitoring_stopped_is_forecast_from_then(
        tmp_path, forecaster):
    # The history ends 12 hours ago, at 19:00 yesterday: the forecast
    # runs on from there, so the evening peak still comes at 19:00, not
    # at the first hours after now.
    stale = sqlite.SQLiteStore(path=str(tmp_path / 'stale.sqlite'))
    try:
        _write_history(stale, until=NOW - 12 * HOUR)
        outlooks = _forecaster(stale, forecaster=forecaster).outlook(
            ['evening'])
    finally:
        stale.close()

    cpu = outlooks['evening'].loads['cpu_util_pct']
    assert time.gmtime(cpu.peak_at).tm_hour in (18, 19, 20)
    assert cpu.peak_at > NOW + 10 * HOUR


def test_forecasts_are_reused_within_a_step(store):
    forecaster = _forecaster(store)
    forecaster.outlook(['evening', 'steady'])
    fitted = forecaster.forecasts
    forecaster.outlook(['evening', 'steady'])
    assert forecaster.forecasts == fitted == 2


def test_lifetime_ranking_prefers_the_host_that_stays_quiet(store):
    # The shadows see the evening host a little faster now: it is quiet.
    observations = {'evening': {'cpu_ops_per_s': [930.0] * 20},
                    'steady': {'cpu_ops_per_s': [850.0] * 20}}
    features = {'evening': {'cpu_util_pct': 15.0},
                'steady': {'cpu_util_pct': 30.0}}
    model = _ops_model()
    now_only = analyzer_lib.Analyzer(
        contention={'cpu_ops_per_s': model}, cotenancy_horizon_s=0)
    lifetime_ranker = analyzer_lib.Analyzer(
        contention={'cpu_ops_per_s': model}, cotenancy_horizon_s=0,
        load_forecaster=_forecaster(store))

    before = now_only.rank({'cpu': 1}, observations,
                           host_features=features)
    after = lifetime_ranker.rank({'cpu': 1}, observations,
                                 host_features=features)

    assert [h.host for h in before.hosts] == ['evening', 'steady']
    assert [h.host for h in after.hosts] == ['steady', 'evening']
    evening = after.host('evening')
    # The forecast mean load over the day is higher: the model takes ops
    # away, about 5 per point of CPU.
    cpu = lifetime_ranker.load_forecaster.outlook(
        ['evening'])['evening'].loads['cpu_util_pct']
    assert evening.predicted['cpu_ops_per_s'] == pytest.approx(
        930.0 - 5.0 * (cpu.mean - cpu.now), rel=0.02)
    assert any('quiet now' in r and 'forecast peak' in r
               for r in evening.reasons)
    assert any("over the next 24 h from the host's forecast load" in r
               for r in evening.reasons)
    # The forecast's interval widens the uncertainty.
    assert evening.uncertainty['cpu_ops_per_s'] > \
        before.host('evening').uncertainty['cpu_ops_per_s']


def test_without_a_contention_model_the_outlook_only_explains(store):
    observations = {'evening': {'cpu_ops_per_s': [930.0] * 20},
                    'steady': {'cpu_ops_per_s': [850.0] * 20}}
    ranking = analyzer_lib.Analyzer(load_forecaster=_forecaster(store)).rank(
        {'cpu': 1}, observations,
        host_features={'evening': {'cpu_util_pct': 15.0},
                       'steady': {'cpu_util_pct': 30.0}})
    assert ranking.host('evening').predicted['cpu_ops_per_s'] == \
        pytest.approx(930.0)
    assert any('forecast peak' in r for r in ranking.host('evening').reasons)


class _BrokenSource(history_source.HistorySource):
    def query_hosts(self, hosts, metric, window):
        raise RuntimeError('monitoring is down')


def test_a_failing_metrics_source_degrades_to_the_shadows(store):
    source = _BrokenSource(history=store)
    forecaster = lifetime.LoadForecaster(source, lambda: NOW)
    ranking = analyzer_lib.Analyzer(
        contention={'cpu_ops_per_s': _ops_model()},
        load_forecaster=forecaster).rank(
        {'cpu': 1}, {'evening': {'cpu_ops_per_s': [930.0] * 20},
                     'steady': {'cpu_ops_per_s': [850.0] * 20}},
        host_features={'evening': {'cpu_util_pct': 15.0},
                       'steady': {'cpu_util_pct': 30.0}})
    assert [h.host for h in ranking.hosts] == ['evening', 'steady']
    assert forecaster.failures > 0
    assert any('CPU history unavailable' in r
               for r in ranking.host('evening').reasons)


def test_an_outlook_read_during_an_outage_is_read_again_after_its_ttl(
        tmp_path):
    # A real InfluxDB with a Telegraf host's CPU over the last hour, taken
    # away and brought back: the outlook read while it was away is reused
    # within failure_ttl_s, and read again once it has passed, inside the
    # same step (the clock stands still; the timer of the TTL is moved by
    # hand, so a slow restart of the server cannot end it early).
    from shadow_service.metrics import influxdb
    from tests.fixtures import influxdb as influxdb_fixture
    from tests.unit.shadow_service.metrics.conftest import make_conf

    now = float(int(time.time()))
    elapsed = [0.0]
    server = influxdb_fixture.InfluxDBServer(
        base_dir=str(tmp_path)).start()
    try:
        server.create_database('telegraf')
        lines = '\n'.join(
            'cpu,host=cmp1,cpu=cpu-total usage_idle=%s %d'
            % (70.0 + (t // 60) % 5, t)
            for t in range(int(now) - 3600, int(now), 20))
        urllib.request.urlopen(urllib.request.Request(
            server.url + '/write?db=telegraf&precision=s',
            data=lines.encode()), timeout=10).close()
        source = influxdb.InfluxDBSource(make_conf(metrics_influxdb={
            'url': server.url, 'database': 'telegraf'}))
        forecaster = lifetime.LoadForecaster(
            source, lambda: now, horizon_s=600.0, history_s=3000.0,
            step_s=60.0, forecaster='naive', min_points=3,
            metrics=['cpu_util_pct'], failure_ttl_s=60.0,
            timer=lambda: elapsed[0])
        model = contention.ContentionModel(features=('cpu_util_pct',)).fit(
            {'cpu_util_pct': np.arange(20.0)},
            1000.0 - 5.0 * np.arange(20.0))
        server.stop()

        failed = forecaster.outlook(['cmp1'])['cmp1']
        failed_shift = forecaster.shift('cpu_ops_per_s', model,
                                        {'cpu_util_pct': 27.0}, failed)
        read_failures = forecaster.failures
        elapsed[0] = 30.0
        reused = forecaster.outlook(['cmp1'])['cmp1']
        server.start()
        elapsed[0] = 59.9
        still_reused = forecaster.outlook(['cmp1'])['cmp1']
        elapsed[0] = 60.0
        recovered = forecaster.outlook(['cmp1'])['cmp1']
        recovered_shift = forecaster.shift(
            'cpu_ops_per_s', model, {'cpu_util_pct': 27.0}, recovered)
        elapsed[0] = 3600.0
        kept = forecaster.outlook(['cmp1'])['cmp1']
    finally:
        server.cleanup()

    assert failed.loads == {}
    assert failed.notes == ['CPU history unavailable']
    assert reused is failed and still_reused is failed
    assert read_failures == forecaster.failures == 1
    assert recovered.notes == []
    cpu = recovered.loads['cpu_util_pct']
    assert 26.0 <= cpu.now <= 30.0
    assert kept is recovered
    # The shift follows the outlook read again, not the failed one.
    assert failed_shift == (0.0, 0.0)
    assert recovered_shift[1] > 0.0


def test_bad_options_are_refused(store):
    with pytest.raises(ValueError, match='horizon_s'):
        _forecaster(store, horizon_s=0)
    with pytest.raises(ValueError, match='failure_ttl_s'):
        _forecaster(store, failure_ttl_s=-1.0)


def test_the_failure_ttl_is_the_analysis_option(store):
    from tests import service_support

    conf = service_support.make_conf(analysis={'lifetime_failure_ttl': 7.5})
    forecaster = lifetime.from_conf(
        conf, history_source.HistorySource(history=store), lambda: NOW)

    assert forecaster.failure_ttl_s == 7.5
    assert conf.analysis.lifetime_failure_ttl == 7.5


def test_the_assembled_service_ranks_for_the_lifetime_on_the_twin():
    """service.build wires the metrics source, the load forecaster and
    the calibration learner; an evaluation on the twin gives every
    measured host its load outlook."""
    from shadow_service import service
    from shadow_service.history import memory
    from tests import service_support

    conf = service_support.make_conf(
        metrics={'source': 'history'}, sim={'backfill_hours': 30},
        shadow={'cleanup_on_start': False})
    parts = service.build(conf, history=memory.MemoryStore())
    try:
        forecaster = parts.analyzer.load_forecaster
        assert forecaster is not None
        assert forecaster.horizon_s == 86400.0
        assert parts.analyzer.calibration is parts.learners.calibration
        hosts = parts.driver.host_names()[:3]
        ranking = parts.manager.evaluate(
            {'flavor': {'name': 'm1.small', 'vcpus': 1, 'ram_mb': 2048,
                        'disk_gb': 20}, 'profile': 'batch-cpu'},
            [{'host': h} for h in hosts], 20.0)
        assert forecaster.forecasts > 0
        measured = [h for h in ranking['hosts'] if h['predicted']]
        assert measured
        for host in measured:
            assert any(r.startswith('lifetime: ') for r in host['reasons'])
        assert 'raw_confidence' in ranking
    finally:
        parts.close()

    off = service_support.make_conf(analysis={'lifetime_horizon': 0},
                                    metrics={'source': 'history'})
    parts = service.build(off, history=memory.MemoryStore())
    try:
        assert parts.analyzer.load_forecaster is None
    finally:
        parts.close()


class _HungServer:
    """A real TCP server on 127.0.0.1 that accepts connections and never
    answers: a monitoring backend that hangs.  ``connections`` counts
    them."""

    def __init__(self):
        self._sock = socket.socket()
        self._sock.bind(('127.0.0.1', 0))
        self._sock.listen(64)
        self.url = 'http://127.0.0.1:%d' % self._sock.getsockname()[1]
        self.connections = 0
        self._held = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            self._held.append(conn)

    def close(self):
        self._sock.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def hung_server():
    server = _HungServer()
    yield server
    server.close()


def _prometheus_source(url, **limits):
    from shadow_service.metrics import prometheus
    from tests.unit.shadow_service.metrics.conftest import make_conf

    return prometheus.PrometheusSource(make_conf(
        metrics_prometheus={'url': url}, metrics=limits))


def test_a_hung_metrics_source_is_waited_for_once_per_outlook(hung_server):
    # cpu_util_pct, cpu_steal_pct and disk_iops: once the first has timed
    # out on every attempt, the others are not asked for.
    source = _prometheus_source(hung_server.url, query_timeout_s=0.3,
                                query_retries=1, query_retry_backoff_s=0.05)
    forecaster = lifetime.LoadForecaster(source, time.time)
    assert len(forecaster.metrics) == 3
    started = time.monotonic()

    outlook = forecaster.outlook(['cmp1', 'cmp2'])['cmp1']

    assert time.monotonic() - started < 1.5
    assert hung_server.connections == 2
    assert outlook.notes == ['CPU history unavailable',
                             'steal history unavailable',
                             'disk IOPS history unavailable']


def test_reading_a_hung_metrics_source_ends_at_the_deadline(hung_server):
    source = _prometheus_source(hung_server.url, query_timeout_s=5.0,
                                query_retries=2, query_retry_backoff_s=0.05)
    forecaster = lifetime.LoadForecaster(source, time.time)
    started = time.monotonic()

    ranking = analyzer_lib.Analyzer(load_forecaster=forecaster).rank(
        {'cpu': 1}, {'cmp1': {'cpu_ops_per_s': [930.0] * 20}},
        deadline=started + 0.5)

    assert time.monotonic() - started < 1.0
    assert any('CPU history unavailable' in r
               for r in ranking.host('cmp1').reasons)


def test_an_evaluation_waits_for_a_hung_metrics_source_within_its_budget(
        hung_server):
    from shadow_service import service
    from shadow_service.history import memory
    from tests import service_support

    conf = service_support.make_conf(
        metrics={'source': 'prometheus', 'query_timeout_s': 1.5,
                 'query_retries': 1, 'query_retry_backoff_s': 0.05},
        metrics_prometheus={'url': hung_server.url},
        sim={'unknown_hosts': 'derive', 'backfill_hours': 1})
    parts = service.build(conf, history=memory.MemoryStore())
    try:
        request = {'flavor': {'name': 'm1.small', 'vcpus': 1,
                              'ram_mb': 2048, 'disk_gb': 20},
                   'profile': 'web'}
        evaluator = parts.manager.evaluator
        profile = evaluator.resolve_profile(request)
        hosts = ['node-1', 'node-2', 'node-3']
        service_support.seed_evaluation(
            parts.history, 'seeded', request, profile.name,
            sorted(evaluator.analyzer.weights(profile.sensitivity)), hosts,
            parts.driver.now() - 600.0, lambda i, m, s: 20.0 + 10 * i)
        started = time.monotonic()

        ranking = parts.manager.evaluate(request,
                                         [{'host': h} for h in hosts], 3.0)

        elapsed = time.monotonic() - started
    finally:
        parts.close()
    assert hung_server.connections >= 1
    assert elapsed < 3.0, elapsed
    assert any('history unavailable' in r
               for h in ranking['hosts'] for r in h['reasons'])
