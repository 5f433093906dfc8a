"""Predicted against realised loaded memory latency near saturation.

A shadow streams ``shadow_scale`` of a VM's memory traffic (a quarter by
default), so it measures the memory latency of the host with the host's
own traffic plus a quarter of the VM's.  ``peak.apply_memory`` turns that
measurement into the latency the full VM will see at the host's busy
level.  This script asks, for a grid of (host traffic at its busy level,
VM need) points on every hardware class of a cluster file (default: the
twin's bundled ``cluster.yaml``), how far the analyzer's latency
multiplier (predicted / measured by the shadow) lies from the twin's
(latency with the full VM / latency with the shadow), and whether the
analyzer and the twin agree on the ``analytics`` target (200 ns).

The twin is the test bench here: its loaded-latency model
(``clouds/sim/contention.memory_bandwidth``) gives the "realised" side;
the analyzer sees only the host facts a deployment has (the rated
bandwidth and the host's bandwidth in use), as on the twin's hosts.  The
host is taken as steady: its traffic now equals its busy level.

Usage: ``python benchmarks/memory_latency_curve.py [--cluster FILE]
[--out results/memory_latency_curve.json]``
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import benchlib  # noqa: E402

from shadow_service import hostfacts  # noqa: E402
from shadow_service.analysis import estimate as estimate_lib  # noqa: E402
from shadow_service.analysis import peak  # noqa: E402
from shadow_service.clouds.sim import cluster as cluster_lib  # noqa: E402
from shadow_service.clouds.sim import contention  # noqa: E402
from shadow_service.conf import service as service_conf  # noqa: E402
from shadow_service.workloads import qos  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
#: Host traffic at its busy level, as a share of the rated bandwidth.
BUSY_SHARES = (0.0, 0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)
#: The full VM's memory traffic, GB/s (an ``analytics`` VM streams about
#: 10 GB/s per memory worker on the twin).
VM_GBPS = (5.0, 10.0, 20.0, 40.0)
LATENCY_TARGET_NS = qos.targets_for('analytics')['mem_latency_ns'][1]


def shadow_scale_default():
    for opt in service_conf.shadow_opts:
        if opt.name == 'shadow_scale':
            return opt.default
    raise LookupError('shadow_scale')


def host_classes(path):
    with open(path) as handle:
        data = yaml.safe_load(handle)
    return {name: cluster_lib._parse_class(name, spec)
            for name, spec in (data.get('classes') or {}).items()}


def twin_latency(total_gbps, host_class):
    return float(contention.memory_bandwidth(
        total_gbps, host_class.mem_bandwidth_gbps,
        host_class.mem_idle_latency_ns)[1])


def point(host_class, busy_share, vm_gbps, scale):
    rated = host_class.mem_bandwidth_gbps
    busy = busy_share * rated
    shadow_gbps = vm_gbps * scale
    seen = twin_latency(busy + shadow_gbps, host_class)
    realised = twin_latency(busy + vm_gbps, host_class)
    features = {
        hostfacts.RATED_MEM_BANDWIDTH_GBPS: rated,
        hostfacts.stat(peak.MEM_BANDWIDTH_METRIC, hostfacts.STAT_NOW): busy,
        hostfacts.stat(peak.MEM_BANDWIDTH_METRIC, peak.PEAK_STAT): busy}
    estimates = {
        peak.MEM_LATENCY_METRIC: estimate_lib.MetricEstimate(
            seen, 0.0, 24, []),
        peak.MEM_BANDWIDTH_METRIC: estimate_lib.MetricEstimate(
            shadow_gbps, 0.0, 24, [])}
    samples = {peak.MEM_BANDWIDTH_METRIC: [shadow_gbps] * 24,
               peak.MEM_LATENCY_METRIC: [seen] * 24}
    peak.apply_memory(estimates, samples, features,
                      {'load_ratio': 1.0 / scale})
    predicted = estimates[peak.MEM_LATENCY_METRIC].value
    return {
        'class': host_class.name, 'rated_gbps': rated,
        'busy_share': busy_share, 'vm_gbps': vm_gbps,
        'utilisation_with_vm': round((busy + vm_gbps) / rated, 4),
        'shadow_latency_ns': round(seen, 2),
        'realised_latency_ns': round(realised, 2),
        'predicted_latency_ns': round(predicted, 2),
        'realised_multiplier': round(realised / seen, 4),
        'predicted_multiplier': round(predicted / seen, 4),
        'realised_meets_target': realised <= LATENCY_TARGET_NS,
        'predicted_meets_target': predicted <= LATENCY_TARGET_NS,
    }


def summarise(rows):
    errors = np.array([math.log(r['predicted_multiplier']
                                / r['realised_multiplier']) for r in rows])
    near = [r for r in rows if r['utilisation_with_vm'] >= 0.9]
    near_errors = np.array([math.log(r['predicted_multiplier']
                                     / r['realised_multiplier'])
                            for r in near])
    missed = [r for r in rows if not r['realised_meets_target']]
    return {
        'points': len(rows),
        'mean_abs_log_error': round(float(np.mean(np.abs(errors))), 4),
        'max_under_prediction': round(float(math.exp(-errors.min())), 3),
        'max_over_prediction': round(float(math.exp(errors.max())), 3),
        'points_at_90pct_or_more': len(near),
        'mean_abs_log_error_at_90pct_or_more': round(
            float(np.mean(np.abs(near_errors))), 4) if near else None,
        'realised_misses_target': len(missed),
        'predicted_misses_among_them': sum(
            not r['predicted_meets_target'] for r in missed),
        'predicted_misses_where_realised_met': sum(
            (not r['predicted_meets_target']) and r['realised_meets_target']
            for r in rows),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cluster', default=cluster_lib.DEFAULT_CLUSTER_FILE)
    parser.add_argument('--out', default=os.path.join(
        HERE, 'results', 'memory_latency_curve.json'))
    args = parser.parse_args(argv)
    scale = shadow_scale_default()
    rows = [point(hc, share, vm, scale)
            for hc in host_classes(args.cluster).values()
            for share in BUSY_SHARES for vm in VM_GBPS]
    result = {
        'benchmark': 'memory_latency_curve',
        'cluster': os.path.relpath(args.cluster, os.path.dirname(HERE)),
        'shadow_scale': scale,
        'latency_target_ns': LATENCY_TARGET_NS,
        'rule': 'multiplier = latency with the full VM / latency the '
                'shadow measured (the host\'s busy traffic plus the '
                'shadow\'s share of the VM\'s); realised from the twin, '
                'predicted by peak.apply_memory from the host facts',
        'summary': summarise(rows),
        'rows': rows,
    }
    for r in rows:
        print('%-8s busy %4.0f%% vm %4.0f GB/s  u %.2f  realised x%.2f '
              '(%3.0f ns)  predicted x%.2f (%3.0f ns)' % (
                  r['class'], 100 * r['busy_share'], r['vm_gbps'],
                  r['utilisation_with_vm'], r['realised_multiplier'],
                  r['realised_latency_ns'], r['predicted_multiplier'],
                  r['predicted_latency_ns']))
    print(json.dumps(result['summary'], indent=1))
    benchlib.write_results(args.out, result, indent=1)


if __name__ == '__main__':
    main()
