"""Placement on real workloads: nova-shadow against Nova's default
weighers, in the lab.

Two arms on the same lab (four lab hosts of ``nova_shadow_lab/etc/lab.yaml``
by default: the same resources in Placement, CPU shares 0.6, 0.3, 0.1 and
0.3 with noisy tenants), each started fresh through
:class:`nova_shadow_lab.stack.LabStack` (Nova's default weighers plus the
ShadowWeigher, ``shadow-service`` with the ``openstack`` driver):

* ``nova``: the requests carry no ``shadow_profile`` hint, so the
  ShadowWeigher does nothing and Nova's default weighers place them;
* ``nova-shadow``: the same requests with ``--hint
  shadow_profile=<profile>``: shadows measure the hosts first.

Each request boots an ``m1.small`` VM whose user-data runs loadgen with
its profile until the end (VMs stay: the hosts fill up). Once all are
placed, every VM's samples over a common window give its realised
throughput and latency. Request ``i`` has the same profile in both arms,
so the arms compare VM by VM.

Writes ``benchmarks/results/lab_placement.json``. Needs the lab (root,
cgroup v1, bubblewrap) and RabbitMQ; from the checkout root::

    nice -n 10 .venv/bin/python benchmarks/lab_placement.py
"""

import argparse
import base64
import gzip
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', 'True')

import benchlib  # noqa: E402

from loadgen import profiles as lg_profiles  # noqa: E402
from loadgen import userdata as lg_userdata  # noqa: E402
from nova_shadow_lab import cloud as lab_cloud  # noqa: E402
from nova_shadow_lab import stack as lab_stack  # noqa: E402

RESULTS = os.path.join(REPO, 'benchmarks', 'results', 'lab_placement.json')
SAMPLES_PATH = '/var/log/shadow-samples.jsonl'
FLAVOR = 'm1.small'
PROFILES = ('batch-cpu', 'db-oltp', 'web', 'analytics')
#: Realised throughput and latency of each profile (higher and lower is
#: better).
THROUGHPUT = {'batch-cpu': 'cpu_ops_per_s', 'db-oltp': 'disk_iops',
              'web': 'net_rps', 'analytics': 'mem_bandwidth_gbps'}
LATENCY = {'db-oltp': 'disk_p95_latency_ms', 'web': 'net_p95_rtt_ms'}


def vm_profile(name):
    """The built-in profile, running until the VM is deleted, one sample
    a second, with a 32 MiB file for its disk part."""
    spec = lg_profiles.load_profile(name).to_dict()
    spec.update(duration_s=3600.0, warmup_s=1.0, interval_s=1.0)
    if 'disk' in spec['components']:
        spec['components']['disk']['file_size_mb'] = 32.0
    return lg_profiles.load_profile(spec).to_dict()


def user_data(profile, tags):
    data = lg_userdata.render_user_data(profile, SAMPLES_PATH, tags)
    if isinstance(data, str):
        data = data.encode('utf-8')
    if data[:2] != b'\x1f\x8b':
        data = gzip.compress(data)
    return base64.b64encode(data).decode('ascii')


def samples(stack, host, server_id):
    instance = stack.cloud.lab_host(host).get(server_id)
    if instance is None:
        return []
    path = os.path.join(instance.sandbox.root, SAMPLES_PATH.lstrip('/'))
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def run_arm(arm, config, requests, args, log):
    """Place every request in a fresh lab; returns one row per VM."""
    with tempfile.TemporaryDirectory(prefix='lab-placement-') as tmp:
        stack = lab_stack.LabStack(
            config, tmp, transport_url=args.transport_url,
            budget=args.budget, min_run_time=args.min_run_time,
            deadline_margin=args.deadline_margin)
        with stack:
            rows = []
            for index, profile_name in enumerate(requests):
                hints = {}
                if arm == 'nova-shadow':
                    hints = {'shadow_profile': profile_name,
                             'shadow_budget': str(int(args.budget))}
                started = time.monotonic()
                server_id, _client = stack.create_server(
                    'vm-%02d' % index, FLAVOR, hints,
                    user_data=user_data(vm_profile(profile_name),
                                        {'request': str(index)}),
                    client='sdk')
                try:
                    server = stack.wait_active(server_id)
                except lab_stack.LabStackError as e:
                    # A boot the lab could not finish (a machine too busy,
                    # a fault): recorded, deleted, and left out of the
                    # comparison; the other requests go on.
                    log('%-11s %2d %-10s not placed: %s' % (
                        arm, index, profile_name, e))
                    rows.append({'request': index, 'profile': profile_name,
                                 'server': server_id, 'host': None,
                                 'error': str(e),
                                 'boot_s': round(time.monotonic() - started,
                                                 1)})
                    stack.delete_server(server_id)
                    continue
                host = server['OS-EXT-SRV-ATTR:host']
                record = stack.evaluation_of(server_id) \
                    if arm == 'nova-shadow' else None
                rows.append({
                    'request': index, 'profile': profile_name,
                    'server': server_id, 'host': host,
                    'boot_s': round(time.monotonic() - started, 1),
                    'ranked_first': (record['hosts'][0]['host']
                                     if record and record['hosts']
                                     else None),
                    'ranking': ([[h['host'], h['score'], h['confidence']]
                                 for h in record['hosts']]
                                if record else None),
                    'evaluation_s': record.get('duration_s')
                    if record else None,
                    'source': record['source'] if record else None,
                    'shadow_host_seconds': (record['shadow_host_seconds']
                                            if record else 0.0)})
                log('%-11s %2d %-10s -> %-10s %5.1f s %s' % (
                    arm, index, profile_name, host, rows[-1]['boot_s'],
                    '(ranked first: %s)' % rows[-1]['ranked_first']
                    if record else ''))
            # Every VM runs its workload; measure them over one window.
            time.sleep(args.settle)
            window_start = time.time()
            time.sleep(args.window)
            window_end = time.time()
            for row in rows:
                if row['host'] is None:
                    continue
                values = {}
                for sample in samples(stack, row['host'], row['server']):
                    if window_start <= sample['time'] <= window_end:
                        values.setdefault(sample['tags']['metric'],
                                          []).append(
                            sample['fields']['value'])
                for kind, table in (('throughput', THROUGHPUT),
                                    ('latency', LATENCY)):
                    metric = table.get(row['profile'])
                    if metric and values.get(metric):
                        row[kind] = {'metric': metric,
                                     'mean': round(statistics.fmean(
                                         values[metric]), 4),
                                     'samples': len(values[metric])}
            placement = {}
            for row in rows:
                if row['host'] is not None:
                    placement[row['host']] = placement.get(row['host'],
                                                           0) + 1
            log('%-11s placement %s' % (arm, placement))
        return rows


def geomean(values):
    values = [v for v in values if v and v > 0]
    if not values:
        return None
    return math.exp(statistics.fmean(math.log(v) for v in values))


def compare(arms):
    """Per request: nova-shadow's realised throughput over Nova's (and
    Nova's latency over nova-shadow's: above 1 is nova-shadow better)."""
    shadow = {r['request']: r for r in arms['nova-shadow']}
    nova = {r['request']: r for r in arms['nova']}
    throughput, latency = [], []
    per_profile = {}
    for index, row in shadow.items():
        other = nova.get(index)
        if other is None:
            continue
        if 'throughput' in row and 'throughput' in other and \
                other['throughput']['mean'] > 0:
            ratio = row['throughput']['mean'] / other['throughput']['mean']
            throughput.append(ratio)
            per_profile.setdefault(row['profile'], []).append(ratio)
        if 'latency' in row and 'latency' in other and \
                row['latency']['mean'] > 0:
            latency.append(other['latency']['mean'] / row['latency']['mean'])
    return {
        'throughput_ratio_geomean': _round(geomean(throughput)),
        'latency_improvement_geomean': _round(geomean(latency)),
        'throughput_ratio_by_profile': {
            p: _round(geomean(v)) for p, v in sorted(per_profile.items())},
        'requests_compared': len(throughput),
    }


def _round(value):
    return None if value is None else round(value, 4)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--requests', type=int, default=20)
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--config', default=lab_cloud.DEFAULT_CONFIG)
    parser.add_argument('--budget', type=float, default=45.0,
                        help='shadow_budget of each request (s)')
    parser.add_argument('--min-run-time', type=float, default=8.0)
    parser.add_argument('--deadline-margin', type=float, default=60.0,
                        help='seconds the scheduler waits beyond the budget '
                             '(the service deletes its shadows before it '
                             'answers; on a busy machine that takes long)')
    parser.add_argument('--settle', type=float, default=5.0)
    parser.add_argument('--window', type=float, default=20.0)
    parser.add_argument('--transport-url',
                        default=os.environ.get('NOVA_SHADOW_RABBIT_URL',
                                               lab_stack.DEFAULT_TRANSPORT_URL))
    parser.add_argument('--out', default=RESULTS)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    requests = [rng.choice(PROFILES) for _ in range(args.requests)]

    def log(text):
        print(text, flush=True)

    arms, seconds = {}, {}
    for arm in ('nova', 'nova-shadow'):
        started = time.monotonic()
        arms[arm] = run_arm(arm, args.config, requests, args, log)
        seconds[arm] = round(time.monotonic() - started, 1)
    result = {
        'benchmark': 'lab_placement',
        'when': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
        'load_average_at_end': os.getloadavg(),
        'config': os.path.relpath(os.path.abspath(args.config), REPO),
        'requests': requests, 'seed': args.seed, 'flavor': FLAVOR,
        'budget_s': args.budget, 'min_run_time_s': args.min_run_time,
        'deadline_margin_s': args.deadline_margin,
        'window_s': args.window, 'arm_seconds': seconds,
        'weighers': {'nova': 'nova.scheduler.weights.all_weighers (no '
                             'shadow_profile hint: the ShadowWeigher '
                             'abstains)',
                     'nova-shadow': lab_stack.WEIGHERS},
        'placement': {arm: {h: sum(1 for r in rows if r['host'] == h)
                            for h in sorted({r['host'] for r in rows})}
                      for arm, rows in arms.items()},
        # Requests the ShadowWeigher placed without a ranking (the
        # service's answer was late or missing: neutral weights), and
        # those whose shadows sent no sample in time (every host neutral).
        'fallbacks': sum(1 for r in arms['nova-shadow']
                         if r['source'] is None),
        'unmeasured': sum(1 for r in arms['nova-shadow']
                          if r['ranking'] and not any(
                              h[2] > 0 for h in r['ranking'])),
        'shadow_host_seconds': round(sum(
            r['shadow_host_seconds'] for r in arms['nova-shadow']), 1),
        'comparison': compare(arms),
        'vms': arms,
    }
    print(json.dumps({k: result[k] for k in (
        'placement', 'comparison', 'arm_seconds', 'shadow_host_seconds',
        'fallbacks', 'unmeasured')},
        indent=1))
    benchlib.write_results(args.out, result, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
