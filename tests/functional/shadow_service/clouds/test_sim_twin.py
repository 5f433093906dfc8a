"""The twin end to end: a real evaluation, the demo and the benchmark."""

import json
import os
import subprocess
import sys

from oslo_config import cfg

from shadow_service import demo
from shadow_service import evaluation
from shadow_service.clouds.sim import driver as sim_driver
from shadow_service.clouds.sim import ranker
from shadow_service.history import memory

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))))


def test_evaluation_on_nova_style_host_names_ranks_and_cleans_up():
    conf = cfg.ConfigOpts()
    conf([])
    store = memory.MemoryStore()
    driver = sim_driver.SimDriver(conf, store)
    evaluator = evaluation.Evaluator(driver, store, ranker.make_analyzer(),
                                     sample_interval=5.0, max_budget=30.0)
    hosts = [{'host': h} for h in ('compute1', 'compute2', 'compute3')]
    job = evaluator.new({'flavor': {'vcpus': 4, 'ram_mb': 8192,
                                    'disk_gb': 40},
                         'profile': 'web'}, hosts, 30.0)
    ranking = evaluator.run(job)
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
    assert 'watcher' in report and 'http://' not in report.replace(
        'http://www.w3.org/2000/svg', '')


def test_benchmark_scores_every_policy(tmp_path):
    out = tmp_path / 'pq.json'
    subprocess.run(
        [sys.executable, os.path.join(REPO, 'benchmarks',
                                      'placement_quality.py'),
         '--requests', '4', '--seed', '3', '--out', str(out)],
        check=True, cwd=REPO, capture_output=True, timeout=300)
    result = json.loads(out.read_text())
    assert set(result['policies']) == {'nova', 'random', 'shadow',
                                       'oracle'}
    assert result['policies']['oracle']['ratio_to_oracle'] == 1.0
    assert result['policies']['shadow']['shadow_host_seconds'] > 0
    for row in result['policies'].values():
        assert 0 < row['ratio_to_oracle'] <= 1.0
