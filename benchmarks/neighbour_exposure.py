"""What a shadow sees of each noisy neighbour, against what the VM gets.

For every profile and flavor of the placement benchmark and every noisy
neighbour of a cluster file (``--cluster``, default
``data/peers_noisy.yaml``), the twin (no measurement noise) runs on one
host of the file's first class carrying only that neighbour (bursty ones
during a burst and between bursts) or nothing:

* the shadow as the Evaluator boots it (``shadow_scale`` of the request's
  profile and flavor, ``[shadow] shadow_scale``'s default) for 60 s,
* the full VM alone for 60 s,

and reports, per metric the profile's QoS targets name, the shadow's
value and the VM's value relative to the clean host, and whether the VM
meets its QoS.  A neighbour that moves the VM's metric but not the
shadow's is one the shadows cannot see; one that moves neither does no
harm in the twin.

Usage: ``python benchmarks/neighbour_exposure.py [--cluster FILE]
[--out results/neighbour_exposure.json]``
"""

import argparse
import json
import os
import sys

import numpy as np
import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from nova_shadow_filter import request as request_lib  # noqa: E402
from shadow_service.analysis import scaleup  # noqa: E402
from shadow_service.clouds.sim import engine  # noqa: E402
from shadow_service.conf import service as service_conf  # noqa: E402
from shadow_service.workloads import profiles  # noqa: E402
from shadow_service.workloads import qos  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PROFILES = ('web', 'db-oltp', 'batch-cpu', 'cache', 'analytics')
FLAVORS = (
    {'name': 'm1.small', 'vcpus': 1, 'ram_mb': 2048, 'disk_gb': 20},
    {'name': 'm1.large', 'vcpus': 4, 'ram_mb': 8192, 'disk_gb': 80},
    {'name': 'm1.xlarge', 'vcpus': 8, 'ram_mb': 16384, 'disk_gb': 160},
)


def shadow_scale_default():
    for opt in service_conf.shadow_opts:
        if opt.name == 'shadow_scale':
            return opt.default
    raise LookupError('shadow_scale')


def build(cluster_file, tmp_dir):
    """A twin whose hosts each carry one neighbour (and one none)."""
    with open(cluster_file) as handle:
        data = yaml.safe_load(handle)
    host_class = next(iter(data['classes']))
    hosts = [{'name': 'clean', 'class': host_class, 'tenants': []}]
    for name in data.get('neighbours') or {}:
        hosts.append({'name': name, 'class': host_class, 'tenants': [],
                      'neighbours': [name]})
    data['hosts'] = hosts
    path = os.path.join(tmp_dir, 'exposure.yaml')
    with open(path, 'w') as handle:
        yaml.safe_dump(data, handle)
    return engine.build_twin(cluster_file=path, seed=1, noise_pct=0.0)


def run_on(twin, host, profile, flavor, start):
    work = engine.Workload(workload_id='probe', kind='vm', host=host,
                           profile=profile, vcpus=int(flavor['vcpus']),
                           ram_mb=int(flavor['ram_mb']),
                           disk_gb=int(flavor['disk_gb']), started_at=start)
    times = start + np.arange(5.0, 61.0, 5.0)
    _factors, _total, results = twin.evaluate(host, times, extra=[work])
    metrics, _active = results['probe']
    return {m: float(np.mean(v)) for m, v in metrics.items()}


def burst_times(twin, host):
    """A start inside a burst and one between bursts (None, None when the
    host's neighbour is steady)."""
    tenant = next(t for t, _tr in twin.host(host).tenants if t.neighbour)
    kind = tenant.neighbour
    if not kind.period_s:
        return None, None
    epoch = twin.host(host).trace_epoch
    elapsed = np.arange(0.0, kind.period_s, 60.0) + (twin.clock - epoch)
    level = kind.level(elapsed, tenant.phase_s)
    on = twin.clock + float(np.argmax(level == 1.0)) * 60.0
    off = twin.clock + float(np.argmax(level < 1.0)) * 60.0
    return on, off


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cluster', default=os.path.join(
        HERE, 'data', 'peers_noisy.yaml'))
    parser.add_argument('--out', default=os.path.join(
        HERE, 'results', 'neighbour_exposure.json'))
    args = parser.parse_args(argv)
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        twin = build(args.cluster, tmp)
    scale = shadow_scale_default()
    cases = [('clean', twin.clock)]
    for host in twin.cluster.host_names[1:]:
        on, off = burst_times(twin, host)
        if on is None:
            cases.append((host, twin.clock))
        else:
            cases += [(host + ' (burst)', on), (host + ' (quiet)', off)]
    result = {'cluster': args.cluster, 'shadow_scale': scale,
              'rule': 'metric means over 60 s; shadow and VM relative to '
                      'the clean host', 'cases': {}}
    for name in PROFILES:
        for flavor in FLAVORS:
            request = request_lib.build_request(flavor, name)
            profile = profiles.resolve_profile(request)
            shadow_profile = profile.scaled(scale)
            shadow_flavor = scaleup.shadow_flavor(flavor, scale)
            targets = qos.targets_for(name)
            base = {}
            rows = {}
            for case, start in cases:
                host = case.split(' ')[0]
                shadow = run_on(twin, host, shadow_profile, shadow_flavor,
                                start)
                full = run_on(twin, host, profile, flavor, start)
                if case == 'clean':
                    base = {'shadow': shadow, 'vm': full}
                met = all(qos.meets(np.array([full[m]]), t)[0]
                          for m, t in targets.items() if m in full)
                rows[case] = {
                    metric: {
                        'shadow': round(shadow[metric], 4),
                        'shadow_vs_clean': _relative(
                            shadow[metric], base['shadow'][metric]),
                        'vm': round(full[metric], 4),
                        'vm_vs_clean': _relative(full[metric],
                                                 base['vm'][metric])}
                    for metric in sorted(set(targets) | {
                        'disk_iops', 'cpu_ops_per_s'}) if metric in full}
                rows[case]['vm_qos_met'] = bool(met)
            result['cases']['%s %s' % (name, flavor['name'])] = rows
    print_table(result)
    with open(args.out, 'w') as handle:
        json.dump(result, handle, indent=2, sort_keys=True)
        handle.write('\n')
    print('results written to %s' % args.out)
    return 0


def _relative(value, clean):
    if not clean:
        return None
    return round(value / clean, 3)


def print_table(result):
    print('value relative to the clean host: shadow / full VM '
          '(QoS of the VM: ok or FAIL)')
    for case, rows in result['cases'].items():
        print('\n' + case)
        for host, metrics in rows.items():
            cells = ['%s %s/%s' % (m, _fmt(v['shadow_vs_clean']),
                                   _fmt(v['vm_vs_clean']))
                     for m, v in metrics.items() if isinstance(v, dict)]
            print('  %-24s %-4s %s' % (host, 'ok' if metrics['vm_qos_met']
                                       else 'FAIL', '  '.join(cells)))


def _fmt(value):
    return '-' if value is None else '%.2f' % value


if __name__ == '__main__':
    sys.exit(main())
