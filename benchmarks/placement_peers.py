"""nova-shadow against the monitoring-based peers an operator would pick.

Runs ``placement_quality.py`` (the same twin, requests, capacity filter,
oracle and deployed nova-shadow) with the peers of ``peer_policies.py``
on cluster scenarios where the hosts look alike, for several seeds and
modes, then pools the runs and puts paired bootstrap 95 % intervals on
nova-shadow's margin over each peer, overall and per profile.

Scenarios (``--scenarios``; cluster files in ``benchmarks/data``):

one-class  ``peers_one_class.yaml``: 16 hosts of one hardware class with
           trace-driven tenants only.
noisy      ``peers_noisy.yaml``: the same, and about 65 % of the hosts
           carry a synthetic noisy neighbour (disk-heavy, memory-heavy,
           cache thrasher or bursty, quiet most of the day) whose harm CPU
           utilisation does not show.
mixed      the bundled three-class cluster (``cluster.yaml``).

Every run is one process (``nice -n 10``) writing
``results/peers/<scenario>-<mode>-seed<N>.json`` and its per-request rows
(``....rows.<mode>.json``); runs whose files exist are not run again
(``--force`` runs them anyway), so the benchmark can be stopped and resumed
and partial results aggregated (``--aggregate-only``).  The pooled file
(``--out``) holds the scenarios, modes and seeds the arguments name:
aggregate with the full set after running subsets in parallel.

Statistics: a request's row holds every policy's realised performance and
QoS on the same request (paired).  The margin of nova-shadow over a peer is
``ratio_to_oracle(shadow) - ratio_to_oracle(peer)`` (and the same for
``qos_met``); its interval is the 2.5-97.5 percentiles of the margin over
``--bootstrap`` resamples of the requests, drawn within each seed (a
stratified paired bootstrap) for the pooled figure, within the run for a
run's own.  The oracle's margin over each peer, on the same rows, is the
ceiling: no policy can be further ahead (``oracle_margins``;
``aims_reachable`` says whether the ceiling clears the aims).  Each missed
QoS is broken down by the target that broke (``qos_missed_by_target``).

Usage::

    python benchmarks/placement_peers.py --requests 60 --seeds 1,2,3 \\
        --modes arrivals,fill --scenarios noisy,one-class --jobs 2
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from shadow_service.clouds.sim import engine  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, 'data')
SCENARIOS = {
    'one-class': os.path.join(DATA, 'peers_one_class.yaml'),
    'noisy': os.path.join(DATA, 'peers_noisy.yaml'),
    'mixed': None,
}
PEERS = ('nova_metrics', 'load_aware', 'contention_aware')
POLICIES = ('nova', 'random', 'shadow') + PEERS + ('oracle',)
PROFILES = ('web', 'db-oltp', 'batch-cpu', 'cache', 'analytics')
#: The issue's bar: margins nova-shadow must clear on the noisy cluster.
AIM_RATIO = 0.03
AIM_QOS = 0.05


def run_paths(out_dir, scenario, mode, seed):
    base = os.path.join(out_dir, '%s-%s-seed%d' % (scenario, mode, seed))
    return base + '.json', base + '.rows'


def command(args, scenario, mode, seed):
    result, rows = run_paths(args.out_dir, scenario, mode, seed)
    cmd = ['nice', '-n', '10', sys.executable,
           os.path.join(HERE, 'placement_quality.py'),
           '--requests', str(args.requests), '--seed', str(seed),
           '--mode', mode, '--policies', ','.join(POLICIES),
           '--budget', str(args.budget), '--out', result, '--rows', rows]
    if args.no_peak_headroom:
        cmd.append('--no-peak-headroom')
    if args.no_peak_memory:
        cmd.append('--no-peak-memory')
    if SCENARIOS[scenario]:
        cmd += ['--cluster', SCENARIOS[scenario]]
    return cmd


def run_all(args, jobs):
    """Run the missing runs, ``args.jobs`` at a time."""
    pending = list(jobs)
    running = []
    while pending or running:
        while pending and len(running) < args.jobs:
            scenario, mode, seed = pending.pop(0)
            log = run_paths(args.out_dir, scenario, mode, seed)[0] + '.log'
            handle = open(log, 'w')
            proc = subprocess.Popen(command(args, scenario, mode, seed),
                                    stdout=handle, stderr=subprocess.STDOUT)
            running.append((proc, handle, (scenario, mode, seed),
                            time.monotonic()))
            print('started %s %s seed %d (pid %d)'
                  % (scenario, mode, seed, proc.pid), flush=True)
        for item in list(running):
            proc, handle, key, started = item
            if proc.poll() is None:
                continue
            handle.close()
            running.remove(item)
            print('finished %s %s seed %d: exit %d, %.0f s'
                  % (key + (proc.returncode, time.monotonic() - started)),
                  flush=True)
            if args.aggregate_as_you_go:
                write(args, aggregate(args))
        time.sleep(2.0)


# -- statistics ---------------------------------------------------------
def _arrays(rows, policies):
    perf = {p: np.array([r['performance'][p] for r in rows], float)
            for p in policies}
    qos = {p: np.array([r['qos_met'][p] for r in rows], float)
           for p in policies}
    return perf, qos


def _ratio(perf, policy, index):
    return perf[policy][index].sum() / perf['oracle'][index].sum()


def margins(groups, peers, draws, seed=0, subject='shadow'):
    """``{peer: {mean, low, high, qos_met: {mean, low, high}}}``: margin
    of ``subject`` (nova-shadow unless named) over each peer on the rows
    of ``groups`` (a list of row lists, one per seed), with a paired
    bootstrap resampling within each group."""
    rows = [r for group in groups for r in group]
    if not rows:
        return {}
    policies = tuple(dict.fromkeys((subject, 'oracle') + tuple(peers)))
    perf, qos = _arrays(rows, policies)
    offsets = np.cumsum([0] + [len(g) for g in groups])
    rng = np.random.default_rng(seed)
    samples = []
    for _draw in range(draws):
        samples.append(np.concatenate([
            offsets[i] + rng.integers(0, len(g), len(g))
            for i, g in enumerate(groups) if g]))
    everything = np.arange(len(rows))
    result = {}
    for peer in peers:
        def ratio_margin(index, peer=peer):
            return _ratio(perf, subject, index) - _ratio(perf, peer, index)

        def qos_margin(index, peer=peer):
            return qos[subject][index].mean() - qos[peer][index].mean()

        entry = _interval(ratio_margin, everything, samples)
        entry['qos_met'] = _interval(qos_margin, everything, samples)
        result[peer] = entry
    return result


def _interval(statistic, everything, samples):
    values = np.array([statistic(s) for s in samples])
    low, high = np.percentile(values, [2.5, 97.5])
    return {'mean': round(float(statistic(everything)), 4),
            'low': round(float(low), 4), 'high': round(float(high), 4)}


def policy_summary(groups, shadow_seconds):
    rows = [r for group in groups for r in group]
    perf, qos = _arrays(rows, POLICIES)
    everything = np.arange(len(rows))
    return {p: {'ratio_to_oracle': round(float(_ratio(perf, p, everything)),
                                         4),
                'qos_met': round(float(qos[p].mean()), 4),
                'shadow_host_seconds': round(float(np.mean(
                    shadow_seconds.get(p, [0.0]))), 1)}
            for p in POLICIES}


def neighbour_of_hosts(scenario, seed):
    """``{host: neighbour kind or 'none'}`` of a scenario's twin (read
    from the cluster file, for the breakdown only)."""
    if not SCENARIOS[scenario]:
        return {}
    twin = engine.build_twin(cluster_file=SCENARIOS[scenario], seed=seed)
    return {h: next((t.neighbour.name for t, _tr in twin.host(h).tenants
                     if t.neighbour is not None), 'none')
            for h in twin.cluster.host_names}


def by_neighbour(groups, kinds):
    """Per neighbour kind of the host each policy chose: how many of its
    placements went there and the share of those that met their QoS."""
    table = {}
    for rows, kind_of in zip(groups, kinds):
        for row in rows:
            for policy in POLICIES:
                kind = kind_of.get(row['hosts'][policy], 'none')
                cell = table.setdefault(kind, {}).setdefault(
                    policy, [0, 0])
                cell[0] += 1
                cell[1] += bool(row['qos_met'][policy])
    return {kind: {p: {'placed': n, 'qos_met': round(met / n, 3)}
                   for p, (n, met) in cells.items()}
            for kind, cells in sorted(table.items())}


def broken_targets(groups):
    """Per policy: how many of its placements missed their QoS, and how
    often each QoS target's metric was among the broken ones (rows
    written before runs recorded ``qos_broken`` count as unknown)."""
    table = {}
    for rows in groups:
        for row in rows:
            for policy in POLICIES:
                if row['qos_met'][policy]:
                    continue
                cell = table.setdefault(policy, {'missed': 0})
                cell['missed'] += 1
                broken = (row.get('qos_broken') or {}).get(policy)
                for metric in (broken or {'unknown': None}):
                    cell[metric] = cell.get(metric, 0) + 1
    return dict(sorted(table.items()))


def aggregate(args):
    """Pool the runs on disk into the results document."""
    result = {'benchmark': 'placement_peers', 'requests_per_run':
              args.requests, 'seeds': args.seeds, 'modes': args.modes,
              'bootstrap_draws': args.bootstrap,
              'shadow_host_seconds_rule': 'mean over seeds of the run\'s '
              'total (simulated; per run of the given requests)',
              'margin_rule': 'ratio_to_oracle(shadow) - '
              'ratio_to_oracle(peer); qos_met likewise; 95 % interval of '
              'a paired bootstrap over requests, resampled within each '
              'seed',
              'aims': {'ratio_margin': AIM_RATIO, 'qos_margin': AIM_QOS},
              'oracle_margins_rule': 'the oracle\'s own margin over each '
              'peer on the same rows: the largest margin any policy '
              'could reach; aims_reachable says whether it clears the '
              'aims',
              'scenarios': {}}
    for scenario in args.scenarios:
        for mode in args.modes:
            groups, seconds, runs, settings = [], {}, {}, None
            kinds = []
            for seed in args.seeds:
                path, rows_base = run_paths(args.out_dir, scenario, mode,
                                            seed)
                rows_path = '%s.%s.json' % (rows_base, mode)
                if not (os.path.exists(path) and os.path.exists(rows_path)):
                    continue
                with open(path) as handle:
                    run = json.load(handle)
                with open(rows_path) as handle:
                    rows = json.load(handle)
                summary = run['modes'][mode]
                settings = settings or {k: run.get(k) for k in (
                    'cluster', 'peer_settings', 'weigher_settings',
                    'service_settings', 'shadow_budget_s')}
                groups.append(rows)
                kinds.append(neighbour_of_hosts(scenario, seed))
                for p in POLICIES:
                    seconds.setdefault(p, []).append(
                        summary['policies'][p]['shadow_host_seconds'])
                runs['seed %d' % seed] = {
                    'requests_compared': len(rows),
                    'rejected_by_capacity_filter':
                        summary.get('rejected_by_capacity_filter'),
                    'wall_s': summary.get('wall_s'),
                    'policies': {p: {k: summary['policies'][p][k] for k in (
                        'ratio_to_oracle', 'qos_met',
                        'shadow_host_seconds')} for p in POLICIES},
                    'margins': margins([rows], PEERS, args.bootstrap,
                                       seed=seed)}
            if not groups:
                continue
            entry = {
                'seeds_done': len(groups),
                'requests_compared': sum(len(g) for g in groups),
                'settings': settings,
                'policies': policy_summary(groups, seconds),
                'margins': margins(groups, PEERS, args.bootstrap),
                'oracle_margins': margins(groups, PEERS, args.bootstrap,
                                          subject='oracle'),
                'qos_missed_by_target': broken_targets(groups),
                'per_profile': {},
                'by_neighbour_of_chosen_host': (
                    by_neighbour(groups, kinds) if any(kinds) else None),
                'runs': runs}
            for profile in PROFILES:
                subset = [[r for r in g if r['profile'] == profile]
                          for g in groups]
                count = sum(len(g) for g in subset)
                if not count:
                    continue
                entry['per_profile'][profile] = {
                    'requests': count,
                    'policies': {p: {k: v for k, v in s.items()
                                     if k != 'shadow_host_seconds'}
                                 for p, s in policy_summary(
                                     subset, {}).items()},
                    'margins': margins(subset, PEERS, args.bootstrap)}
            entry['aims_reachable'] = {
                peer: bool(m['mean'] >= AIM_RATIO
                           and m['qos_met']['mean'] >= AIM_QOS)
                for peer, m in entry['oracle_margins'].items()}
            entry['aims_met'] = {
                peer: bool(m['low'] > 0 and m['mean'] >= AIM_RATIO
                           and m['qos_met']['low'] > 0
                           and m['qos_met']['mean'] >= AIM_QOS)
                for peer, m in entry['margins'].items()}
            result['scenarios'].setdefault(scenario, {})[mode] = entry
    return result


def write(args, result):
    with open(args.out, 'w') as handle:
        json.dump(result, handle, indent=2, sort_keys=True)
        handle.write('\n')


def print_table(result):
    for scenario, modes in result['scenarios'].items():
        for mode, entry in modes.items():
            print('\n%s, %s: %d seeds, %d requests compared'
                  % (scenario, mode, entry['seeds_done'],
                     entry['requests_compared']))
            print('%-17s %15s %8s %14s' % ('policy', 'ratio_to_oracle',
                                           'qos_met', 'shadow_host_s'))
            for policy, row in entry['policies'].items():
                print('%-17s %15.3f %8.3f %14.0f' % (
                    policy, row['ratio_to_oracle'], row['qos_met'],
                    row['shadow_host_seconds']))
            print('margin of shadow over   ratio [95 %]            '
                  'qos_met [95 %]')
            for peer, m in entry['margins'].items():
                q = m['qos_met']
                print('  %-17s %+.3f [%+.3f, %+.3f]   %+.3f [%+.3f, %+.3f]'
                      % (peer, m['mean'], m['low'], m['high'], q['mean'],
                         q['low'], q['high']))
            print('margin of the oracle (the ceiling)')
            for peer, m in entry['oracle_margins'].items():
                q = m['qos_met']
                print('  %-17s %+.3f [%+.3f, %+.3f]   %+.3f [%+.3f, %+.3f]'
                      % (peer, m['mean'], m['low'], m['high'], q['mean'],
                         q['low'], q['high']))
            print('QoS missed, by broken target: %s'
                  % json.dumps(entry['qos_missed_by_target']))
            for profile, sub in entry['per_profile'].items():
                cells = ['%s %+.3f/%+.2f' % (peer, m['mean'],
                                             m['qos_met']['mean'])
                         for peer, m in sub['margins'].items()]
                print('  %-10s n=%-3d %s' % (profile, sub['requests'],
                                             '  '.join(cells)))


def _list(text, cast=str):
    return [cast(x.strip()) for x in text.split(',') if x.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--requests', type=int, default=60)
    parser.add_argument('--seeds', type=lambda t: _list(t, int),
                        default=[1, 2, 3])
    parser.add_argument('--modes', type=_list, default=['arrivals', 'fill'])
    parser.add_argument('--scenarios', type=_list,
                        default=['noisy', 'one-class'])
    parser.add_argument('--budget', type=float, default=60.0,
                        help='shadow budget per request, simulated s')
    parser.add_argument('--no-peak-headroom', action='store_true',
                        help='ablation: nova-shadow with [analysis] '
                        'peak_headroom = false (write to another '
                        '--out-dir and --out)')
    parser.add_argument('--no-peak-memory', action='store_true',
                        help='ablation: nova-shadow with [analysis] '
                        'peak_memory_headroom = false (write to another '
                        '--out-dir and --out)')
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs at once')
    parser.add_argument('--bootstrap', type=int, default=2000,
                        help='bootstrap resamples')
    parser.add_argument('--force', action='store_true',
                        help='run again runs whose results exist')
    parser.add_argument('--aggregate-only', action='store_true',
                        help='pool the runs on disk, run nothing')
    parser.add_argument('--aggregate-as-you-go', action='store_true',
                        help='rewrite the pooled results after every run')
    parser.add_argument('--out-dir', default=os.path.join(HERE, 'results',
                                                          'peers'))
    parser.add_argument('--out', default=os.path.join(
        HERE, 'results', 'placement_peers.json'))
    args = parser.parse_args(argv)
    for scenario in args.scenarios:
        if scenario not in SCENARIOS:
            parser.error('--scenarios: unknown scenario %r (known: %s)'
                         % (scenario, ', '.join(SCENARIOS)))
    for mode in args.modes:
        if mode not in ('arrivals', 'fill'):
            parser.error('--modes: %r is not arrivals or fill' % mode)
    os.makedirs(args.out_dir, exist_ok=True)
    if not args.aggregate_only:
        jobs = [(s, m, seed) for seed in args.seeds for s in args.scenarios
                for m in args.modes
                if args.force or not os.path.exists(
                    run_paths(args.out_dir, s, m, seed)[0])]
        run_all(args, jobs)
    result = aggregate(args)
    write(args, result)
    print_table(result)
    print('results written to %s' % args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
