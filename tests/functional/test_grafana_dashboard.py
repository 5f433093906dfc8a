"""The Grafana dashboard (``etc/grafana/nova-shadow.json``), checked
without Grafana (no registry here offers a Grafana server): every
InfluxQL query runs against the real InfluxDB holding what the real
service and watcher wrote, every PromQL query against the real Prometheus
scraping the real exporter (and through ``promtool check rules``), after
Grafana's macros and variables are replaced the way Grafana replaces them
for "All" and for one chosen value.  Each must parse and return data.
"""

import json
import os
import re
import subprocess
import time
import uuid

import pytest

from shadow_service import exporter
from shadow_service import service
from shadow_service.history import influxdb as influxdb_store
from tests import service_support
from tests import watcher_support
from tests.fixtures import influxdb as influxdb_fixture
from tests.fixtures import prometheus as prometheus_fixture

DASHBOARD = os.path.join(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))), 'etc', 'grafana',
    'nova-shadow.json')
REQUEST = {'flavor': {'vcpus': 2, 'ram_mb': 2048}, 'profile': 'web'}
HOSTS = [{'host': 'node-01'}, {'host': 'node-02'}, {'host': 'node-03'}]
#: Grafana's own variables and the InfluxDB alias patterns.
BUILTINS = {'timeFilter', '__interval', '__rate_interval', '__range',
            '__all', 'col'}


def _load():
    with open(DASHBOARD) as f:
        return json.load(f)


def _panels(dashboard):
    for panel in dashboard['panels']:
        yield panel
        yield from panel.get('panels', [])


def _queries(dashboard):
    """``[(where, kind, query)]``: every query of the dashboard, kind
    ``influxdb`` or ``prometheus``."""
    found = []
    for panel in _panels(dashboard):
        for target in panel.get('targets', []):
            kind = (target.get('datasource') or panel['datasource'])['type']
            text = target['query'] if kind == 'influxdb' else target['expr']
            found.append(('panel %r %s' % (panel['title'], target['refId']),
                          kind, text))
    for annotation in dashboard['annotations']['list']:
        if annotation['datasource']['type'] == 'influxdb':
            found.append(('annotation %r' % annotation['name'], 'influxdb',
                          annotation['query']))
    return found


def _variables(dashboard):
    return {v['name']: v for v in dashboard['templating']['list']}


def test_the_dashboard_is_well_formed():
    dashboard = _load()
    inputs = {'${%s}' % i['name']: i['pluginId']
              for i in dashboard['__inputs']}
    ids = [p['id'] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids))
    variables = set(_variables(dashboard))
    for panel in _panels(dashboard):
        assert {'h', 'w', 'x', 'y'} <= set(panel['gridPos'])
        assert panel['gridPos']['x'] + panel['gridPos']['w'] <= 24
        if panel['type'] == 'row':
            continue
        source = panel['datasource']
        assert inputs[source['uid']] == source['type'], panel['title']
        assert panel['description'] and panel['targets']
    for where, _kind, query in _queries(dashboard):
        used = set(re.findall(r'\$(\w+)', query))
        used = {u for u in used if not u.startswith('tag_')}
        assert used <= variables | BUILTINS, (where, used)
    kinds = {kind for _where, kind, _query in _queries(dashboard)}
    assert kinds == {'influxdb', 'prometheus'}


@pytest.fixture(scope='module')
def written(tmp_path_factory, influxdb_server):
    """Two evaluations and a day and a half of a watched VM (the real
    service and the real watcher over the twin), in a database of the
    real InfluxDB; the in-process counters they moved on ``/metrics``."""
    database = 'dashboard_%s' % uuid.uuid4().hex[:8]
    history_opts = {'store': 'influxdb', 'influx_url': influxdb_server.url,
                    'influx_database': database,
                    'influx_create_database': True}
    conf = service_support.make_conf(
        history=history_opts,
        shadow={'sample_interval': 1.0, 'min_run_time': 2.0})
    parts = service.build(conf)
    exporter.watch_history(parts.history, 'influxdb')
    try:
        for _ in range(2):
            parts.manager.rank_hosts({}, REQUEST, HOSTS, 5.0)
        parts.history.flush(timeout=30)
    finally:
        parts.close()

    tmp_path = tmp_path_factory.mktemp('dashboard-watcher')
    watcher_conf = watcher_support.make_conf(
        tmp_path, watcher={'policy': 'reactive', 'dry_run': True},
        sim={'start_time': time.time() - 2 * 86400.0},
        history=history_opts)
    store = influxdb_store.InfluxDBStore(watcher_conf)
    from shadow_service.clouds.sim import driver as sim_driver

    driver = sim_driver.SimDriver(watcher_conf, store)
    day = int(86400 / watcher_support.STEP_S)
    watcher_support.place(driver, 'vm-1', [1.0] * day + [6.0] * 200)
    assembled = watcher_support.build(watcher_conf, driver, store)
    exporter.watch_watcher(assembled.watcher)
    exporter.watch_history(store, 'influxdb')
    driver.fast_forward(day * watcher_support.STEP_S)
    watcher_support.run(assembled, driver, 12)
    store.flush(timeout=30)
    yield {'database': database, 'start': time.time() - 3 * 86400.0,
           'end': max(time.time(), driver.now()) + 86400.0}
    assembled.close()
    exporter.forget()


def _influx_rows(server, database, query):
    reply = server.query(database, query)
    results = reply.get('results') or [{}]
    assert 'error' not in reply and 'error' not in results[0], (query,
                                                                 reply)
    return results[0].get('series') or []


def _influxql(query, window, choices):
    """``query`` as Grafana sends it: the time filter in milliseconds,
    an interval, and each variable's regex."""
    text = query.replace(
        '$timeFilter', 'time >= %dms and time <= %dms'
        % (window['start'] * 1000, window['end'] * 1000))
    text = text.replace('$__interval', '5m')
    for name, regex in choices.items():
        text = text.replace('$' + name, regex)
    return text


def test_every_influxql_query_runs_and_finds_data(influxdb_server, written):
    dashboard = _load()
    variables = _variables(dashboard)
    chosen = {}
    for name, variable in variables.items():
        if variable['datasource']['type'] != 'influxdb':
            continue
        series = _influx_rows(influxdb_server, written['database'],
                              variable['query'])
        values = [row[1] for s in series for row in s['values']]
        assert values, 'variable %s has no values' % name
        chosen[name] = re.escape(values[0])
    influx = [(where, q) for where, kind, q in _queries(dashboard)
              if kind == 'influxdb']
    assert len(influx) >= 8
    for choices in ({name: '.*' for name in chosen}, chosen):
        for where, query in influx:
            text = _influxql(query, written, choices)
            assert _influx_rows(influxdb_server, written['database'],
                                text), '%s found nothing: %s' % (where,
                                                                text)


def _promql(expr):
    return (expr.replace('$__rate_interval', '1m')
            .replace('$__interval', '15s').replace('$__range', '1h')
            .replace('$job', '.*'))


def test_every_promql_query_parses_and_finds_data(written, tmp_path):
    if not (prometheus_fixture.prometheus_binary()
            and prometheus_fixture.node_exporter_binary()):
        pytest.fail('prometheus and prometheus-node-exporter are required')
    dashboard = _load()
    exprs = [(where, _promql(q)) for where, kind, q in _queries(dashboard)
             if kind == 'prometheus']
    assert len(exprs) >= 10
    rules = tmp_path / 'dashboard-rules.yml'
    rules.write_text('groups:\n  - name: dashboard\n    rules:\n' + ''.join(
        '      - record: dashboard:query_%d\n        expr: %s\n'
        % (i, json.dumps(expr)) for i, (_where, expr) in enumerate(exprs)))
    promtool = subprocess.run(['promtool', 'check', 'rules', str(rules)],
                              capture_output=True, text=True, timeout=60)
    assert promtool.returncode == 0, promtool.stdout + promtool.stderr

    metrics = exporter.Exporter('127.0.0.1',
                                influxdb_fixture.free_port()).start()
    server = prometheus_fixture.PrometheusServer(
        extra_targets=['127.0.0.1:%d' % metrics.port]).start()
    try:
        deadline = time.monotonic() + 60
        while True:
            scrapes = server.query(
                'count_over_time(up{job="nova_shadow"}[1h])')['result']
            if scrapes and float(scrapes[0]['value'][1]) >= 3:
                break
            assert time.monotonic() < deadline, 'too few scrapes'
            time.sleep(0.5)
        # The job variable's label_values(up, job), in PromQL.
        job = server.query('count by (job) (up)')['result']
        assert {r['metric']['job'] for r in job} == {'node', 'nova_shadow'}
        for where, expr in exprs:
            result = server.query(expr)['result']
            assert result, '%s found nothing: %s' % (where, expr)
    finally:
        server.cleanup()
        metrics.stop()
