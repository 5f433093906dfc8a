"""The twin end to end: a real evaluation, the demo and the benchmark."""

import html
import html.parser
import json
import os
import re
import subprocess
import sys
import tempfile

import pytest

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


def _table_reasons(printed):
    """``[(host, [printed reason])]`` from the demo's terminal table."""
    lines = printed.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.lstrip().startswith('rank'))
    column = lines[start].index('reasons')
    rows = []
    for line in lines[start + 1:]:
        if not line.startswith(' '):
            break
        if line[:column].strip():
            rows.append((line[:column].split()[1], []))
        rows[-1][1].append(line[column:])
    return [(host, ' '.join(chunks).split(' (+')[0].split('; '))
            for host, chunks in rows]


def test_demo_reports_labelled_figures_to_a_new_file_per_run(
        tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    # Four simulated hours: the watcher shrinks the over-sized VM after
    # its hold window of history (3 h).
    argv = ['--hours', '4', '--speedup', '0', '--budget', '20']
    printed = []
    for _run in range(2):
        assert demo.run_demo(argv) == 0
        printed.append(capsys.readouterr().out)
    paths = [line.split()[1] for out in printed
             for line in out.splitlines() if line.startswith('report: ')]
    # Two runs without --out: two reports, both kept.
    assert len(set(paths)) == 2
    assert sorted(str(p) for p in tmp_path.glob('nova-shadow-demo-*.html')) \
        == sorted(paths)
    assert 'placed demo-vm on node-' in printed[0]
    # Captured (not a terminal): each progress bar once, at its end, on
    # a line of its own; no carriage returns redrawing it.
    assert '\r' not in printed[0]
    assert re.findall(r'^\[#+\] 100% (.*)$', printed[0], re.M) == [
        'shadows on 16 hosts: done',
        'simulated hour 4/4, %s' % demo._actions_text(
            printed[0].count('\n  + '))]
    # With the lab's measurement noise a few samples per host leave
    # every host's stated confidence short of certainty.
    confidences = [float(line.split()[3]) for line in printed[0].splitlines()
                   if re.match(r'^\s+\d+\s+node-\d+\s', line)]
    assert len(confidences) == 16
    assert max(confidences) < 1.0
    actions = re.findall(r'^  \+\s*([0-9.]+) h  (\w+): (.*)$', printed[0],
                         re.M)
    assert actions, 'the watcher acted on the VM'
    assert 'the watcher (forecast policy) took %d scaling action%s' % (
        len(actions), '' if len(actions) == 1 else 's') in printed[0]
    report = open(paths[0]).read()

    # One self-contained page: five inline figures, nothing fetched.
    assert report.count('<svg') == 5
    assert not re.search(r'(src|href)="(https?:)?//', report)
    assert '<script' not in report
    # Every figure's axes are labelled with their units (SVG text).
    for label in (
            'Performance Score (0-100, higher is better',
            'host, by rank',
            'simulated time since the first shadow sample (s)',
            'disk_iops (IOPS), shadow',
            'predicted, full VM (ns)',
            'simulated time since the VM was placed (h)',
            'disk_p95_latency_ms (ms), full VM',
            'simulated time relative to the placement (h)',
            'cpu_util_pct (%), host'):
        assert label in report, label
    # Shadow measurements and full-VM predictions are named apart.
    assert 'Shadow measurements (shadow scale)' in report
    assert 'running 1/4 of the VM&#x27;s load' in report
    assert 'Full-VM predictions per host' in report
    assert 'shadow measurement on node-' in report
    assert 'full-VM prediction on node-' in report
    # The day, the forecast against the target, and what it would mean.
    assert 'QoS target &lt;= 5 ms is off this axis' in report
    assert 'forecast interval (90% coverage)' in report
    # Every action the watcher took is in the report's table (and marked
    # on the VM's plot).
    assert 'Scaling actions taken' in report
    for hours, action, reason in actions:
        assert '<td>%s</td><td>%s</td><td>%s</td>' % (
            hours, action, html.escape(reason)) in report

    # The terminal table shows whole reasons only: each one printed is a
    # whole reason of the report's table (which has them all).
    rows = _table_reasons(printed[0])
    assert len(rows) == 16
    for host, reasons in rows:
        for reason in reasons:
            assert re.search(r'(<td>|; )%s(; |</td>)' % re.escape(
                html.escape(reason)), report), (host, reason)



class _Elements(html.parser.HTMLParser):
    """The elements of a page and every attribute name they carry."""

    def __init__(self):
        super().__init__()
        self.tags, self.attributes = set(), set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attributes.update(name for name, _value in attrs)


def _demo_with_host_names(tmp_path, capsys, monkeypatch, pattern,
                          replacement):
    """``(placed host, report path)`` of a one-hour demo on a copy of the
    bundled cluster file whose host names ``re.sub(pattern,
    replacement)`` made (oslo.config reads [sim] cluster_file from the
    environment, as twin.rst describes)."""
    cluster = open(os.path.join(REPO, 'shadow_service', 'clouds', 'sim',
                                'data', 'cluster.yaml')).read()
    (tmp_path / 'cluster.yaml').write_text(
        re.sub(pattern, replacement, cluster))
    monkeypatch.setenv('OS_SIM__CLUSTER_FILE', str(tmp_path / 'cluster.yaml'))
    out = tmp_path / 'report.html'
    assert demo.run_demo(['--hours', '1', '--speedup', '0', '--budget', '20',
                          '--out', str(out)]) == 0
    placed = re.search(r'^placed demo-vm on (.*) \(booted',
                       capsys.readouterr().out, re.M).group(1)
    return placed, out


def test_demo_report_writes_host_names_as_text(tmp_path, capsys,
                                               monkeypatch):
    # A twin whose host names carry markup (a copy of the bundled cluster
    # file, as twin.rst describes; oslo.config reads [sim] cluster_file
    # from the environment too): the report shows them, never runs them.
    placed, out = _demo_with_host_names(
        tmp_path, capsys, monkeypatch, r'name: (node-\d+)',
        r'name: "\1<img src=x onerror=alert(1)>"')
    assert placed.endswith('<img src=x onerror=alert(1)>')
    report = out.read_text()
    elements = _Elements()
    elements.feed(report)
    assert 'img' not in elements.tags
    assert not [a for a in elements.attributes if a.startswith('on')]
    escaped = html.escape(placed)
    assert '<h2>The placed VM on %s over 1 simulated hours</h2>' % escaped \
        in report
    assert '<h2>CPU utilisation of host %s</h2>' % escaped in report


def test_demo_report_draws_host_names_as_written(tmp_path, capsys,
                                                 monkeypatch):
    # Host names with dollar signs: matplotlib would read "$...$" as
    # math (drawing other text, or failing after the whole run).
    placed, out = _demo_with_host_names(
        tmp_path, capsys, monkeypatch, r'name: node-(\d+)',
        r'name: "rack$\\\\\1$-node"')
    assert re.fullmatch(r'rack\$\\\d+\$-node', placed)
    report = out.read_text()
    # The ranking's tick label, the legend and the host CPU figure's
    # title write the name as it is.
    for text in ('#1 %s' % placed, '#1 %s (placed)' % placed,
                 'CPU utilisation of host %s' % placed):
        assert '>%s</text>' % text in report, text

@pytest.fixture(scope='module')
def benchmark_runs(tmp_path_factory):
    """The placement benchmark's runs of the two tests below, started
    together (independent processes; on 2 cores side by side they take
    about the time of the longest): the run of every mode and policy,
    and the three small fill runs of the shadow policy."""
    tmp_path = tmp_path_factory.mktemp('placement-benchmark')
    out = tmp_path / 'pq.json'
    every_mode = subprocess.Popen(
        [sys.executable, os.path.join(REPO, 'benchmarks',
                                      'placement_quality.py'),
         '--requests', '4', '--seed', '3', '--mode', 'all',
         '--budget', '20', '--out', str(out)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    rows = [_start_shadow_rows(tmp_path, 'alone', 'shadow', 1),
            _start_shadow_rows(tmp_path, 'again', 'shadow', 2),
            _start_shadow_rows(tmp_path, 'with', 'nova,random,shadow', 3)]
    processes = [every_mode] + [process for _name, process in rows]
    try:
        yield {'tmp_path': tmp_path, 'every_mode': (every_mode, out),
               'rows': rows}
    finally:
        # A run no test waited for (one deselected or failed) is stopped.
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
            process.stdout.close()


def test_benchmark_scores_every_policy_in_every_mode(benchmark_runs):
    process, out = benchmark_runs['every_mode']
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output.decode(errors='replace')[-3000:]
    result = json.loads(out.read_text())
    assert result['ranker'] == 'shadow_service.analysis.analyzer.Analyzer'
    # The run says what it ran on.
    assert result['package_versions']['nova'] == '34.0.0'
    assert result['package_versions']['statsmodels']
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


def _start_shadow_rows(tmp_path, name, policies, hash_seed):
    """Start a small fill run of ``policies`` in its own process
    (``hash_seed``: the process's string hashing); `_shadow_rows` reads
    the shadow policy's rows when it has ended."""
    rows = tmp_path / name
    return name, subprocess.Popen(
        [sys.executable, os.path.join(REPO, 'benchmarks',
                                      'placement_quality.py'),
         '--requests', '3', '--seed', '1', '--mode', 'fill',
         '--budget', '20', '--policies', policies,
         '--out', str(tmp_path / (name + '.json')), '--rows', str(rows)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONHASHSEED=str(hash_seed)))


def _shadow_rows(tmp_path, run):
    name, process = run
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output.decode(errors='replace')[-3000:]
    found = json.loads((tmp_path / (name + '.fill.json')).read_text())
    return [(r['request'], r['hosts']['shadow'], r['performance']['shadow'],
             r['confidence']) for r in found]


def test_benchmark_policies_are_independent_and_runs_repeat(
        benchmark_runs):
    """The shadow policy places the same hosts and states the same
    confidence (raw and calibrated) whichever other policies run, and
    the same command run again gives the same rows."""
    alone, again, together = [
        _shadow_rows(benchmark_runs['tmp_path'], run)
        for run in benchmark_runs['rows']]
    assert len(alone) == 3 and all(r[3] for r in alone)
    assert again == alone
    assert together == alone
