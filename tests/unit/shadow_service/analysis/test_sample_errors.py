"""The placement benchmark's ``--sample-error-out`` diagnostic
(``benchmarks/placement_quality.py``): how far each measured host's
estimate lay from the day the VM realised there, by sample count."""

import json

import pytest

from shadow_service.analysis import analyzer as analyzer_mod
from tests.fixtures import benchmarks


def _record(request, host, value, realised, sd, samples=1, metric='m'):
    return {'request': request, 'host': host, 'metric': metric,
            'value': value, 'sd': sd, 'samples': samples,
            'samples_now': samples, 'with_earlier': False,
            'sample_value': value, 'sample_sd': sd,
            'sample_spread': None, 'scale_factor': 1.0,
            'realised': realised}


def _bench(monkeypatch):
    # The script imports its sibling modules (peer_policies).
    monkeypatch.syspath_prepend(str(benchmarks.BENCHMARKS))
    return benchmarks.load('placement_quality')


def test_summary_groups_by_sample_count_and_recovers_the_figure(
        monkeypatch):
    bench = _bench(monkeypatch)
    # One request, two hosts measured once: relative errors +10 % and
    # -10 % against a stated sd of 10 % of the realised value.
    records = [_record('r', 'a', 110.0, 100.0, 10.0),
               _record('r', 'b', 90.0, 100.0, 10.0),
               _record('r', 'c', 100.0, 100.0, 1.0, samples=3)]
    table = bench.sample_error_summary(records)['every measured host']
    once = table['m']['1']
    assert once['count'] == 2
    assert once['relative_error_rms'] == pytest.approx(0.1)
    assert once['z_rms'] == pytest.approx(1.0)
    # Centred over the three hosts (mean 0): unchanged but for
    # sqrt(3 / 2).
    assert once['centred_relative_error_rms'] == pytest.approx(
        0.1 * 1.5 ** 0.5, abs=1e-4)
    assert table['m']['>=3']['count'] == 1
    assert 'all' in table
    # The figure that makes the centred z scores' mean square 1 (nothing
    # else in their sd): both centred errors are 12.25 (of 100), so
    # 12.25 ** 2 * (1 / (s * 110) ** 2 + 1 / (s * 90) ** 2) / 2 = 1.
    error = 10.0 * 1.5 ** 0.5
    assert once['implied_few_samples_relative_sd'] == pytest.approx(
        error * ((110.0 ** -2 + 90.0 ** -2) / 2) ** 0.5, abs=1e-4)
    # No placed host recorded: no figures for it.
    assert table and bench.sample_error_summary(records)[
        'placed host, its own day'] == {}


def test_tiny_run_records_the_stated_estimates_and_changes_nothing(
        tmp_path, monkeypatch):
    bench = _bench(monkeypatch)
    original = analyzer_mod.Analyzer._host_estimates
    common = ['--requests', '3', '--seed', '2', '--mode', 'arrivals',
              '--policies', 'shadow', '--budget', '20']
    out = tmp_path / 'errors.json'
    bench.main(common + ['--out', str(tmp_path / 'with.json'),
                         '--rows', str(tmp_path / 'with'),
                         '--sample-error-out', str(out)])
    # The analyzer is given back as it was.
    assert analyzer_mod.Analyzer._host_estimates is original
    bench.main(common + ['--out', str(tmp_path / 'without.json'),
                         '--rows', str(tmp_path / 'without')])
    assert (tmp_path / 'with.arrivals.json').read_text() == \
        (tmp_path / 'without.arrivals.json').read_text()
    found = json.loads(out.read_text())
    assert found['policy'] == 'shadow'
    records = bench.read_sample_error_records(found['records'])['arrivals']
    assert len(records) == found['modes']['arrivals']['records'] > 0
    rows = json.loads((tmp_path / 'with.arrivals.json').read_text())
    placed = {r['hosts']['shadow'] for r in rows}
    for record in records:
        assert record['samples'] >= 0 and record['sd'] >= 0
        assert record['realised'] >= 0
    # The placed VMs' own days are set against their hosts' estimates.
    assert {r['host'] for r in records if r.get('placed_on')} <= placed
    assert any(r.get('placed_on') for r in records)
    summary = found['modes']['arrivals']['summary']
    assert summary['every measured host']['all']
    # Pooled with itself: twice the records, the same errors.
    pooled = tmp_path / 'pooled.json'
    bench.main(['--pool-sample-errors', found['records'], found['records'],
                '--sample-error-out', str(pooled)])
    twice = json.loads(pooled.read_text())['modes']['arrivals']
    assert twice['records'] == 2 * len(records)
    once = summary['every measured host']['all']
    for group, row in twice['summary']['every measured host'][
            'all'].items():
        assert row['count'] == 2 * once[group]['count']
        # (The records keep six significant digits.)
        assert row['relative_error_rms'] == pytest.approx(
            once[group]['relative_error_rms'], abs=2e-4)
