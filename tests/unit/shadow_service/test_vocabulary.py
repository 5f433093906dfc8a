"""The shared vocabulary: measurement names, QoS targets."""

import numpy as np

from loadgen import runner
from shadow_service import measurements
from shadow_service.workloads import qos


def test_loadgen_writes_the_measurement_the_service_reads():
    assert runner.MEASUREMENT == measurements.SHADOW_SAMPLE


def test_every_builtin_profile_has_targets_on_catalogue_metrics():
    from shadow_service.workloads import catalogue
    from shadow_service.workloads import profiles

    for name in profiles.builtin_names():
        for metric, (comparison, _threshold) in qos.targets_for(
                name).items():
            assert metric in catalogue.METRIC_DIRECTIONS
            assert comparison in (qos.LOWER_IS_FINE, qos.HIGHER_IS_FINE)


def test_targets_are_met_or_broken_by_direction():
    latency = ('<=', 5.0)
    assert list(qos.meets([4.0, 5.0, 6.0], latency)) == [True, True, False]
    throughput = ('>=', 100.0)
    assert list(qos.breaches([99.0, 100.0], throughput)) == [True, False]
    share = qos.share_met('db-oltp', {
        'disk_p95_latency_ms': np.array([1.0, 9.0, 1.0, 1.0]),
        'cpu_steal_pct': np.array([0.0, 0.0, 50.0, 0.0])})
    assert share == 0.5


def test_the_key_target_is_one_the_vm_reports():
    assert qos.key_target('web', {'cpu_steal_pct'})[0] == 'cpu_steal_pct'
    assert qos.key_target('web')[0] == 'net_p95_rtt_ms'
    assert qos.key_target('unknown-profile')[0] == 'cpu_steal_pct'
