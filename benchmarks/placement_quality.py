"""Placement quality on the twin: Nova's weighers vs random vs nova-shadow.

For every request (a profile and a flavor arriving at a random time over five
simulated days) four policies pick a host among the hosts that pass a
capacity filter (free RAM, free disk, vCPUs within Nova's default 4.0
allocation ratio):

nova     Nova 34's own ``HostWeightHandler`` with every default weigher
         (``nova.scheduler.weights.all_weighers``) and default multipliers,
         on real ``HostState`` objects built from what Nova's resource
         tracker would know of each twin host (allocations, not usage).
random   uniform among the filtered hosts.
shadow   nova-shadow: the lead's ``Evaluator`` boots a shadow on every
         filtered host, runs it for the budget on the twin's clock and ranks
         with the analyzer (``shadow_service.analysis.Analyzer`` when it
         exists, else the labelled fallback below).
oracle   the host whose realised performance over the next 24 simulated
         hours is best (the twin's hidden future; scoring only).

Every chosen host is then scored by the oracle: realised performance over
the next 24 h (``ratio_to_oracle`` is its mean ratio to the oracle's) and
whether the profile's QoS target held (``qos_met``).  Requests are
independent: a placed VM is not kept for the next request.

Usage::

    python benchmarks/placement_quality.py --requests 200 --seed 1 \
        [--traces DIR] [--out benchmarks/results/placement_quality.json]
"""

import argparse
import json
import logging
import os
import platform
import sys
import time
import uuid

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from oslo_config import cfg  # noqa: E402

from loadgen import profiles as lg_profiles  # noqa: E402
from shadow_service.clouds.sim import driver as sim_driver  # noqa: E402
from shadow_service.clouds.sim import engine  # noqa: E402
from shadow_service.clouds.sim import ranker  # noqa: E402
from shadow_service.history import memory  # noqa: E402

LOG = logging.getLogger('placement_quality')

PROFILES = ('web', 'db-oltp', 'batch-cpu', 'cache', 'analytics')
FLAVORS = (
    {'name': 'm1.small', 'vcpus': 1, 'ram_mb': 2048, 'disk_gb': 20},
    {'name': 'm1.medium', 'vcpus': 2, 'ram_mb': 4096, 'disk_gb': 40},
    {'name': 'm1.large', 'vcpus': 4, 'ram_mb': 8192, 'disk_gb': 80},
    {'name': 'm1.xlarge', 'vcpus': 8, 'ram_mb': 16384, 'disk_gb': 160},
)
CPU_ALLOCATION_RATIO = 4.0
ARRIVAL_WINDOW_S = 5 * 86400.0
BUDGET_S = 60.0
SHADOW_SAMPLE_S = 5.0
POLICIES = ('nova', 'random', 'shadow', 'oracle')


# -- Nova's default weighers -------------------------------------------------
class NovaWeighers:
    """Nova's real HostWeightHandler over HostStates built from the twin."""

    def __init__(self):
        from nova import objects
        objects.register_all()
        import nova.conf
        from nova.scheduler import host_manager
        from nova.scheduler import weights
        self._objects = objects
        self._host_manager = host_manager
        self.conf = nova.conf.CONF
        self.handler = weights.HostWeightHandler()
        classes = self.handler.get_matching_classes(
            self.conf.filter_scheduler.weight_classes)
        self.weighers = [cls() for cls in classes]
        self.names = [cls.__name__ for cls in classes]

    def host_state(self, name, view):
        objects = self._objects
        compute = objects.ComputeNode(
            host=name, hypervisor_hostname=name,
            uuid=str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
            vcpus=view['vcpus'], vcpus_used=view['vcpus_used'],
            memory_mb=view['memory_mb'],
            memory_mb_used=view['memory_mb_used'],
            local_gb=view['local_gb'], local_gb_used=view['local_gb_used'],
            free_ram_mb=view['free_ram_mb'],
            free_disk_gb=view['free_disk_gb'],
            disk_available_least=view['free_disk_gb'],
            running_vms=view['running_vms'], current_workload=0,
            hypervisor_type='QEMU', hypervisor_version=8002000,
            cpu_info='{}', stats={}, numa_topology=None,
            pci_device_pools=None, metrics='[]',
            cpu_allocation_ratio=CPU_ALLOCATION_RATIO,
            ram_allocation_ratio=1.0, disk_allocation_ratio=1.0,
            updated_at=None, host_ip='127.0.0.1',
            supported_hv_specs=[])
        state = self._host_manager.HostState(name, name, 'cell1')
        state.update(compute=compute, aggregates=[],
                     service={'disabled': False})
        return state

    def choose(self, views, flavor):
        objects = self._objects
        states = [self.host_state(n, v) for n, v in sorted(views.items())]
        spec = objects.RequestSpec(
            scheduler_hints={}, instance_group=None,
            flavor=objects.Flavor(vcpus=flavor['vcpus'],
                                  memory_mb=flavor['ram_mb'],
                                  root_gb=flavor['disk_gb'],
                                  ephemeral_gb=0, swap=0, extra_specs={}),
            image=objects.ImageMeta.from_dict({'properties': {}}),
            num_instances=1)
        weighed = self.handler.get_weighed_objects(self.weighers, states,
                                                   spec)
        return weighed[0].obj.host


def make_analyzer():
    analyzer = ranker.make_analyzer()
    return analyzer, getattr(analyzer, 'name',
                             'shadow_service.analysis.Analyzer')


# -- the run --------------------------------------------------------------
def make_requests(count, seed, start):
    rng = np.random.default_rng([seed, 6])
    arrivals = np.sort(rng.uniform(0, ARRIVAL_WINDOW_S, count))
    requests = []
    for i, offset in enumerate(arrivals):
        flavor = dict(FLAVORS[rng.integers(len(FLAVORS))])
        requests.append({
            'flavor': flavor, 'profile': PROFILES[rng.integers(
                len(PROFILES))],
            'profile_scale': max(0.5, flavor['vcpus'] / 2.0),
            'instance_uuid': 'req-%04d' % i, 'arrival': start + offset})
    return requests


def filtered_hosts(driver, hosts, flavor):
    passing = {}
    for host in hosts:
        view = driver.nova_view(host)
        if view['free_ram_mb'] < flavor['ram_mb']:
            continue
        if view['free_disk_gb'] < flavor['disk_gb']:
            continue
        if view['vcpus_used'] + flavor['vcpus'] > \
                view['vcpus'] * CPU_ALLOCATION_RATIO:
            continue
        passing[host] = view
    return passing


def shadow_choice(driver, analyzer, request, views):
    from shadow_service import evaluation
    store = memory.MemoryStore()
    driver.history = store
    driver.twin.history = store
    evaluator = evaluation.Evaluator(
        driver, store, analyzer, max_shadow_hosts=len(views),
        sample_interval=SHADOW_SAMPLE_S, max_budget=BUDGET_S)
    wire_request = {k: v for k, v in request.items() if k != 'arrival'}
    hosts = [dict(host=h, **{k: v for k, v in view.items()
                             if k in ('vcpus', 'vcpus_used',
                                      'free_ram_mb')})
             for h, view in sorted(views.items())]
    job = evaluator.new(wire_request, hosts, BUDGET_S)
    ranking = evaluator.run(job)
    ranked = [h['host'] for h in ranking['hosts'] if h['host'] in views]
    return (ranked[0] if ranked else sorted(views)[0],
            ranking.get('shadow_host_seconds', 0.0))


def run(args):
    conf = cfg.ConfigOpts()
    conf([], project='nova-shadow-bench')
    twin = engine.build_twin(trace_dir=args.traces, seed=args.seed,
                             sample_interval_s=SHADOW_SAMPLE_S,
                             host_metric_interval_s=3600.0)
    conf.register_opts([], group='sim')
    driver = sim_driver.SimDriver(conf, None, twin=twin)
    driver.backfill_s = 0
    hosts = twin.cluster.host_names
    oracle = driver.oracle
    nova = NovaWeighers()
    analyzer, analyzer_name = make_analyzer()
    rng = np.random.default_rng([args.seed, 7])
    rows = []
    wall = time.monotonic()
    for number, request in enumerate(make_requests(args.requests, args.seed,
                                                   twin.clock)):
        twin.jump_to(max(twin.clock, request['arrival']))
        flavor = request['flavor']
        views = filtered_hosts(driver, hosts, flavor)
        if not views:
            continue
        profile = lg_profiles.load_profile(request['profile']).scaled(
            request['profile_scale'])
        choice = {'nova': nova.choose(views, flavor),
                  'random': sorted(views)[rng.integers(len(views))]}
        choice['shadow'], shadow_seconds = shadow_choice(
            driver, analyzer, request, views)
        # The oracle scores from the moment of placement, after the
        # evaluation: every policy's VM starts at the same time.
        best, realised = oracle.best(profile, flavor, sorted(views),
                                     start=twin.clock)
        choice['oracle'] = best.host
        rows.append({
            'request': number, 'profile': request['profile'],
            'flavor': flavor['name'], 'candidates': len(views),
            'hosts': choice,
            'performance': {p: realised[h].performance
                            for p, h in choice.items()},
            'qos_met': {p: realised[h].qos_met for p, h in choice.items()},
            'shadow_host_seconds': {'shadow': shadow_seconds},
        })
        if args.verbose and number % 20 == 0:
            LOG.info('request %d: %s', number, choice)
    return summarise(rows, args, analyzer_name, time.monotonic() - wall)


def _policy_summary(rows, policy):
    ratios = [r['performance'][policy] / r['performance']['oracle']
              for r in rows if r['performance']['oracle'] > 0]
    return {
        'ratio_to_oracle': round(float(np.mean(ratios)), 4),
        'ratio_to_oracle_p10': round(float(np.percentile(ratios, 10)), 4),
        'qos_met': round(float(np.mean([r['qos_met'][policy]
                                        for r in rows])), 4),
        'same_host_as_oracle': round(float(np.mean(
            [r['hosts'][policy] == r['hosts']['oracle'] for r in rows])), 4),
        'mean_performance': round(float(np.mean(
            [r['performance'][policy] for r in rows])), 3),
        'shadow_host_seconds': round(float(sum(
            r['shadow_host_seconds'].get(policy, 0.0) for r in rows)), 1),
    }


def summarise(rows, args, analyzer_name, wall_s):
    result = {
        'benchmark': 'placement_quality',
        'requests': len(rows), 'seed': args.seed,
        'traces': args.traces or 'bundled sample',
        'ranker': analyzer_name,
        'shadow_budget_s': BUDGET_S,
        'qos_rule': 'share of 300 s steps over 24 h meeting every target '
                    '>= 0.95 (oracle.QOS_TARGETS)',
        'policies': {p: _policy_summary(rows, p) for p in POLICIES},
        'per_profile': {},
        'wall_s': round(wall_s, 1),
        'machine': platform.platform(),
    }
    for name in PROFILES:
        subset = [r for r in rows if r['profile'] == name]
        if subset:
            result['per_profile'][name] = {
                p: {k: v for k, v in _policy_summary(subset, p).items()
                    if k in ('ratio_to_oracle', 'qos_met')}
                for p in POLICIES}
            result['per_profile'][name]['requests'] = len(subset)
    shadow = result['policies']['shadow']
    nova = result['policies']['nova']
    result['margin_over_nova'] = {
        'ratio_to_oracle': round(shadow['ratio_to_oracle']
                                 - nova['ratio_to_oracle'], 4),
        'qos_met': round(shadow['qos_met'] - nova['qos_met'], 4)}
    result['aims'] = {
        'shadow_ratio_to_oracle>=0.95': shadow['ratio_to_oracle'] >= 0.95,
        'shadow_qos_met>=0.95': shadow['qos_met'] >= 0.95,
        'shadow_ahead_of_nova': (shadow['ratio_to_oracle']
                                 > nova['ratio_to_oracle'])}
    return result


def print_table(result):
    print('placement quality: %d requests, seed %d, traces: %s, ranker: %s'
          % (result['requests'], result['seed'], result['traces'],
             result['ranker']))
    print('%-8s %15s %8s %10s %14s' % ('policy', 'ratio_to_oracle',
                                       'qos_met', 'same_host',
                                       'shadow_host_s'))
    for policy, row in result['policies'].items():
        print('%-8s %15.3f %8.3f %10.3f %14.0f' % (
            policy, row['ratio_to_oracle'], row['qos_met'],
            row['same_host_as_oracle'], row['shadow_host_seconds']))
    print('margin of nova-shadow over Nova defaults: %s'
          % result['margin_over_nova'])
    print('aims: %s' % result['aims'])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--requests', type=int, default=200)
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--traces', help='trace directory (default: the '
                        'bundled sample)')
    parser.add_argument('--out', default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), 'results',
        'placement_quality.json'))
    parser.add_argument('--verbose', action='store_true')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose
                        else logging.WARNING)
    result = run(args)
    print_table(result)
    with open(args.out, 'w') as handle:
        json.dump(result, handle, indent=2, sort_keys=True)
        handle.write('\n')
    print('results written to %s' % args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
