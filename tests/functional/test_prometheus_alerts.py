"""The alerting rules in ``etc/prometheus/nova-shadow-alerts.yml``: valid
for promtool, each one firing on series where it should and silent on
series where it should not (``promtool test rules``, Prometheus's own rule
engine), and naming only metrics the daemons export."""

import os
import re
import shutil
import subprocess

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
RULES = os.path.join(REPO, 'etc', 'prometheus', 'nova-shadow-alerts.yml')
TARGET = {'job': 'nova_shadow', 'instance': 'controller:9750'}

#: Per alert, series that fire it at EVAL and the same series that do not
#: (``(metric, labels, firing values, quiet values)``; one minute a value,
#: promtool's expanding notation).
SCENARIOS = {
    'NovaShadowTargetDown': [
        ('up', TARGET, '1 1 0x12', '1x14')],
    'NovaShadowEvaluationErrors': [
        ('nova_shadow_evaluations_total',
         dict(TARGET, outcome='error', source='shadows'), '0 0 1x12',
         '2x14')],
    'NovaShadowServiceBusy': [
        ('nova_shadow_evaluations_total',
         dict(TARGET, outcome='busy', source='none'), '0 0 4x12', '4x14')],
    'NovaShadowRecordsDropped': [
        ('nova_shadow_records_dropped_total', TARGET, '0 0 1x12', '1x14'),
        ('nova_shadow_weigher_records_dropped_total', TARGET, '0 0 7x12',
         '7x14')],
    'NovaShadowHistoryPointsDropped': [
        ('nova_shadow_history_points_total',
         dict(TARGET, store='influxdb', state='dropped'), '0 0 5x12',
         '5x14')],
    'NovaShadowWatcherNoLeader': [
        ('nova_shadow_watcher_leader',
         {'job': 'nova_shadow', 'instance': 'controller:9751'},
         '1 1 0x12', '1x14')],
    'NovaShadowWatcherFailures': [
        ('nova_shadow_watcher_vm_failures_total',
         {'job': 'nova_shadow', 'instance': 'controller:9751'}, '0 0 1x12',
         '1x14'),
        ('nova_shadow_watcher_decisions_total',
         {'job': 'nova_shadow', 'instance': 'controller:9751',
          'action': 'resize_up', 'policy': 'ForecastPolicy',
          'outcome': 'failed'}, '0 0 1x12', '1x14')],
}
#: Alerts of an aggregation, which keep none of the series' labels.
AGGREGATED = {'NovaShadowWatcherNoLeader'}
EVAL = '12m'


def _rules():
    with open(RULES) as f:
        groups = yaml.safe_load(f)['groups']
    return {rule['alert']: rule for group in groups
            for rule in group['rules']}


def _series(metric, labels):
    return '%s{%s}' % (metric, ', '.join(
        '%s="%s"' % item for item in sorted(labels.items())))


def _promtool():
    if not shutil.which('promtool'):
        pytest.fail('promtool is required (apt-get install prometheus)')
    return 'promtool'


def test_the_rules_are_valid_for_promtool():
    checked = subprocess.run([_promtool(), 'check', 'rules', RULES],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert 'SUCCESS: %d rules found' % len(_rules()) in checked.stdout


def test_every_alert_fires_where_it_should_and_nowhere_else(tmp_path):
    rules = _rules()
    assert set(SCENARIOS) == set(rules)
    tests = []
    for name, scenarios in sorted(SCENARIOS.items()):
        rule = rules[name]
        for metric, labels, firing, quiet in scenarios:
            expected = dict(rule.get('labels', {}))
            if name not in AGGREGATED:
                expected.update(labels)
            tests.append({
                'interval': '1m',
                'input_series': [{'series': _series(metric, labels),
                                  'values': firing}],
                'alert_rule_test': [{
                    'eval_time': EVAL, 'alertname': name,
                    'exp_alerts': [{
                        'exp_labels': expected,
                        'exp_annotations': rule['annotations']}]}]})
            tests.append({
                'interval': '1m',
                'input_series': [{'series': _series(metric, labels),
                                  'values': quiet}],
                'alert_rule_test': [{'eval_time': EVAL, 'alertname': name,
                                     'exp_alerts': []}]})
    # A watcher that leads beside one that does not: someone acts.
    tests.append({
        'interval': '1m',
        'input_series': [
            {'series': _series('nova_shadow_watcher_leader',
                               dict(TARGET, instance='a:9751')),
             'values': '0x14'},
            {'series': _series('nova_shadow_watcher_leader',
                               dict(TARGET, instance='b:9751')),
             'values': '1x14'}],
        'alert_rule_test': [{'eval_time': EVAL,
                             'alertname': 'NovaShadowWatcherNoLeader',
                             'exp_alerts': []}]})
    unit = tmp_path / 'alerts-test.yml'
    unit.write_text(yaml.safe_dump({
        'rule_files': [RULES], 'evaluation_interval': '1m',
        'tests': tests}))
    ran = subprocess.run([_promtool(), 'test', 'rules', str(unit)],
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert 'SUCCESS' in ran.stdout + ran.stderr


def test_the_rules_name_only_metrics_the_daemons_export():
    with open(os.path.join(REPO, 'shadow_service', 'exporter.py')) as f:
        exported = set(re.findall(r"'(nova_shadow_[a-z_]+)'", f.read()))
    used = set()
    for rule in _rules().values():
        used.update(re.findall(r'\b(nova_shadow_[a-z_]+)', rule['expr']))
    assert used
    # Counters are exported with the ``_total`` suffix added.
    missing = {name for name in used
               if name not in exported
               and re.sub(r'_total$', '', name) not in exported}
    assert not missing, missing
