"""The twin end to end: a real evaluation, the demo and the benchmark."""

import json
import os
import subprocess
import sys

from shadow_service import demo
from shadow_service import service
from shadow_service.history import memory
from tests import service_support

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))))


def test_evaluation_on_nova_style_host_names_ranks_and_cleans_up():
    conf = service_support.make_conf(shadow={'sample_interval': 5.0,
                                             'max_budget': 30.0},
                                     sim={'unknown_hosts': 'derive'})
    store = memory.MemoryStore()
    parts = service.build(conf, history=store)
    driver = parts.driver
    hosts = [{'host': h} for h in ('compute1', 'compute2', 'compute3')]
    ranking = parts.manager.evaluate(
        {'flavor': {'vcpus': 4, 'ram_mb': 8192, 'disk_gb': 40},
         'profile': 'web'}, hosts, 30.0)
    assert {h['host'] for h in ranking['hosts']} == {'compute1', 'compute2',
                                                      'compute3'}
    assert ranking['shadow_host_seconds'] > 0
    assert driver.list_shadows() == []
    assert store.query_points('shadow_sample',
                              {'evaluation': ranking['evaluation_id']})


def test_demo_prints_a_ranking_and_writes_an_html_report(tmp_path, capsys):
    out = tmp_path / 'report.html'
    code = demo.run_demo(['--hours', '3', '--speedup', '0', '--budget',
                          '20', '--out', str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert 'placed demo-vm on node-' in printed
    assert 'report: %s' % out in printed
    report = out.read_text()
    assert report.count('<svg') >= 4
    assert 'Forecast:' in report and 'http://' not in report.replace(
        'http://www.w3.org/2000/svg', '')


def test_benchmark_scores_every_policy_in_every_mode(tmp_path):
    out = tmp_path / 'pq.json'
    subprocess.run(
        [sys.executable, os.path.join(REPO, 'benchmarks',
                                      'placement_quality.py'),
         '--requests', '4', '--seed', '3', '--mode', 'all',
         '--budget', '20', '--out', str(out)],
        check=True, cwd=REPO, capture_output=True, timeout=300)
    result = json.loads(out.read_text())
    assert result['ranker'] == 'shadow_service.analysis.analyzer.Analyzer'
    assert set(result['modes']) == {'arrivals', 'fill', 'independent'}
    for summary in result['modes'].values():
        policies = summary['policies']
        assert set(policies) == {'nova', 'random', 'shadow', 'shadow_only',
                                 'oracle'}
        assert policies['oracle']['ratio_to_oracle'] == 1.0
        assert policies['shadow']['shadow_host_seconds'] > 0
        assert policies['shadow_only']['shadow_host_seconds'] > 0
        assert policies['nova']['shadow_host_seconds'] == 0
        for row in policies.values():
            assert row['ratio_to_oracle'] > 0
            assert 0 <= row['qos_met'] <= 1
    # Independent requests share the oracle's candidates: nothing beats it.
    for row in result['modes']['independent']['policies'].values():
        assert row['ratio_to_oracle'] <= 1.0
    # In arrivals and fill modes the placed VMs stay on their twin (for
    # their lifetime in arrivals mode, for ever in fill mode).
    for mode in ('arrivals', 'fill'):
        placed = result['modes'][mode]['final_instances_per_host']
        assert sum(placed['nova'].values()) == 4
    workload = result['modes']['arrivals']['workload']
    assert workload['lifetime_mean_h'] > 0
    assert workload['arrivals_per_h'] > 0
    assert 'lifetime_mean_h' not in result['modes']['fill']['workload']
