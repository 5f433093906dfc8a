"""Proactive scaling on the twin: reactive vs forecast vs rl vs oracle.

Real VM demand (GWA-T-12 Bitbrains, ``--traces DIR``) is replayed in the
twin (``clouds/sim``), one watched VM per trace, and each policy scales
the VMs through the same ``shadow-watcher`` loop, policies, guard and
actuator the daemon runs, assembled by ``service.build_watcher`` as the
daemon assembles them, over a twin whose resizes take
``--resize-duration`` seconds (the guest down for the last
``--resize-downtime``).  Every policy sees the same VMs, the same
demand and the same start; each gets its own twin and history store.

Set-up (every number is a parameter below):

* VMs: the first ``--vms`` Bitbrains VMs (by file number) whose demand
  ever exceeds the ladder's lowest rung; a VM's demand is its busy cores
  (usage MHz / MHz per core) times ``DEMAND_SCALE`` flavor vCPUs.
* Ladder: ``LADDER_VCPUS`` (about 1.5x a rung); a VM starts on the rung
  that holds the 95th percentile of its warm-up day.
* Clock: ``--warmup-days`` (1) of warm-up (samples only, no
  decisions: the history a VM in a running cloud has; at most the days
  before the scored run, which starts on trace day ``--start-day``, 7),
  then ``--days`` scored days with a watcher
  run every ``--interval`` seconds; samples every 300 s (the traces'
  step).  The starting rung always comes from the warm-up's last day.
  The twin's noise is drawn in sequence from its seed, so a longer
  warm-up gives the scored samples other noise (with ``--noise-stream
  keyed`` each sample's noise depends on its VM, metric and time alone:
  runs that differ in one group's actions keep every other group's
  noise).  Lead time of a resize:
  interval plus resize duration (10 minutes by default).
* Hosts: ten large hosts without background tenants
  (``data/proactive_cluster.yaml``), five VMs each.

Scores, per policy, over the scored days on a 60 s grid, from the twin's
hidden state (the demand the VM wanted, the flavor it had):

violation_minutes  minutes a VM's demand was above its capacity (0 while
                   a resize has it down) or its CPU steal above the
                   profile's QoS target (10 %), summed over the VMs;
                   ``downtime_minutes`` is the part spent down for a
                   resize's reboot;
unserved           demand above capacity, vCPU-hours;
resource_hours     vCPU-hours of flavors held (a VM down for a resize
                   holds its new flavor);
actions            actions started, those that failed later left out
                   (``failed`` counts the decisions' ``failed`` records);
                   ``flaps``: a growth and a shrink of
                   the same VM, in either order, less than the
                   ``[watcher] cooldown`` apart;
causes             the violation minutes by cause, per VM and in total
                   (each minute the first that applies: down for a
                   reboot, steal only, at the top of the ladder, a
                   growth the guard refused, a growth under way, a
                   growth that took effect and was not enough, a growth
                   that failed, no growth asked for; see
                   ``violation_causes``).
per VM also        its ``actions``, ``flaps_at_h`` (the hours into the
                   scored run of each of its flaps) and ``hours_at_vcpus``
                   (hours it held each size, vCPUs of its flavor or of its
                   whole group: where its ``resource_hours`` sit).

Policies: ``reactive`` (a threshold on the current utilisation: the
baseline), ``forecast``, ``rl`` (trained by ``--train-rl`` on other VMs
or, when none are left, on another month window of the same ones, then
loaded from the file), and ``oracle`` (perfect foresight; the bound).

Usage::

    python benchmarks/proactive_scaling.py --traces /work/shared/traces \\
        --out benchmarks/results/proactive_scaling.json [--vms 50] \\
        [--days 2] [--warmup-days 1] \\
        [--policies reactive,forecast,rl,oracle] \\
        [--rl-model FILE | --train-rl FILE]
"""

import argparse
import glob
import json
import logging
import os
import sys
import tempfile
import time

import numpy as np
from oslo_config import cfg

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

from loadgen import profiles as loadgen_profiles  # noqa: E402
from shadow_service import conf as shadow_conf  # noqa: E402
from shadow_service import service  # noqa: E402
from shadow_service.clouds.sim import driver as sim_driver  # noqa: E402
from shadow_service.clouds.sim import noise as sim_noise  # noqa: E402
from shadow_service.clouds.sim import traces as traces_mod  # noqa: E402
from shadow_service.history import sqlite as sqlite_store  # noqa: E402
from shadow_service.watcher import records  # noqa: E402
from shadow_service.watcher.policies import base as policy_base  # noqa
from shadow_service.watcher.policies import rl as rl_mod  # noqa: E402
from shadow_service.workloads import qos  # noqa: E402

LOG = logging.getLogger('proactive_scaling')

HERE = os.path.dirname(os.path.abspath(__file__))
CLUSTER_FILE = os.path.join(HERE, 'data', 'proactive_cluster.yaml')
#: Flavor vCPUs per busy core of a trace.
DEMAND_SCALE = 4.0
#: The ladder (vCPUs); about 1.5x a rung.
LADDER_VCPUS = (2, 3, 4, 6, 9, 14, 21, 32, 48)
RAM_MB_PER_VCPU = 1024
VMS_PER_HOST = 5
TRACE_STEP_S = 300.0
SCORE_STEP_S = 60.0
WARMUP_S = 86400.0
#: Where in the traces the scored run starts (the warm-up day before it).
TRACE_START_DAY = 7
#: Where the rl policy's training window starts.
TRAIN_START_DAY = 16
PROFILE = 'batch-cpu'
#: Fewest 300 s steps a trace needs (28 days: the scored and training
#: windows fit in it).
MIN_STEPS = 28 * 288
POLICIES = ('reactive', 'forecast', 'rl', 'oracle')
#: Horizontal mode: every member of a VM's group has this many vCPUs.
MEMBER_VCPUS = 4
MAX_MEMBERS = 12
BOOT_DURATION_S = 45.0


def ladder_entries():
    return ['bench.v%d:%d:%d:10' % (v, v, v * RAM_MB_PER_VCPU)
            for v in LADDER_VCPUS]


def _number(path):
    return int(os.path.basename(path).split('.')[0])


def select_vms(trace_dir, count, skip=0):
    """``[(name, demand array)]``: Bitbrains VMs of at least 28 days whose
    demand ever passes the lowest rung, by file number, after the first
    ``skip`` such."""
    paths = sorted(glob.glob(os.path.join(trace_dir, 'bitbrains_rnd', '*',
                                          '*.csv*')), key=_number)
    chosen = []
    for path in paths:
        trace = traces_mod.read_bitbrains(path)
        demand = trace.cpu_util * trace.vcpus * DEMAND_SCALE
        if demand.max() <= LADDER_VCPUS[0] or len(demand) < MIN_STEPS:
            continue
        chosen.append(('bb-%d' % _number(path), demand))
    return chosen[skip:skip + count]


def vm_profile(demand, start_step):
    """A loadgen profile whose CPU demand replays ``demand`` (busy vCPUs
    per 300 s step) from ``start_step`` on."""
    return loadgen_profiles.load_profile({
        'name': PROFILE, 'duration_s': 30 * 86400.0,
        'components': {'cpu': {'workers': 1, 'duty_cycle': 1.0,
                               'pattern': {
                                   'type': 'trace',
                                   'values': [float(v) for v in demand],
                                   'step_s': TRACE_STEP_S,
                                   'normalise': 'none',
                                   'offset_s': start_step * TRACE_STEP_S}}}})


def make_conf(policy, args, rl_model=None, mode='vertical'):
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf([], project='nova-shadow-benchmark')
    overrides = {
        'sim': dict(cluster_file=CLUSTER_FILE, noise_pct=args.noise,
                    noise_stream=args.noise_stream,
                    sample_interval=TRACE_STEP_S,
                    host_metric_interval=TRACE_STEP_S, backfill_hours=0,
                    resize_duration=args.resize_duration,
                    resize_downtime=args.resize_downtime,
                    boot_duration=BOOT_DURATION_S, seed=args.seed),
        'watcher': dict(dry_run=False, interval=args.interval,
                        policy=policy, flavor_ladder=ladder_entries(),
                        resize_duration=args.resize_duration,
                        step=TRACE_STEP_S, default_profile=PROFILE,
                        ranker='none', max_actions_per_hour=10000,
                        max_concurrent_actions=10000,
                        boot_duration=BOOT_DURATION_S,
                        max_count=MAX_MEMBERS),
        'shadow': dict(cleanup_on_start=False),
    }
    if rl_model:
        overrides['watcher_policy_rl'] = dict(model_file=rl_model)
    for setting in args.set or []:
        name, _sep, value = setting.partition('=')
        group, _dot, option = name.partition('.')
        if not option or not _sep:
            raise SystemExit('--set %s: expected group.option=value'
                             % setting)
        opt = conf._get_opt_info(option, group)['opt']
        overrides.setdefault(group, {})[option] = opt.type(value)
    for group, values in overrides.items():
        for name, value in values.items():
            conf.set_override(name, value, group=group)
    return conf


class Replay:
    """One policy's run over its own twin."""

    def __init__(self, policy, vms, args, start_day, days, rl_model=None,
                 policy_object=None, mode='vertical'):
        self.mode = mode
        self.conf = make_conf(policy, args, rl_model, mode)
        self.history = sqlite_store.SQLiteStore(path=':memory:')
        self.driver = sim_driver.SimDriver(self.conf, self.history)
        twin = self.driver.twin
        self.origin = twin.clock
        self.start_step = int(start_day * 86400 / TRACE_STEP_S)
        self.days = days
        self.demand = {}
        hosts = self.driver.host_names()
        self.warmup_s = args.warmup_days * 86400.0
        warm = int(self.warmup_s / TRACE_STEP_S)
        # The starting rung comes from the warm-up's last day, however
        # long the warm-up (a longer one only adds history).
        day = int(WARMUP_S / TRACE_STEP_S)
        adopted = []
        for index, (name, demand) in enumerate(vms):
            first = self.start_step - warm
            window = demand[self.start_step - day:self.start_step]
            usual = np.percentile(window, 95)
            self.demand[name] = (demand, first)
            host = hosts[index // VMS_PER_HOST % len(hosts)]
            metadata = {'nova_shadow_watch': 'true',
                        'nova_shadow_profile': PROFILE}
            profile = vm_profile(demand, first)
            if mode == 'horizontal':
                vcpus = MEMBER_VCPUS
                members = int(min(MAX_MEMBERS, max(
                    1, np.ceil(usual / MEMBER_VCPUS))))
                metadata['nova_shadow_scaling'] = 'horizontal'
            else:
                vcpus = next((v for v in LADDER_VCPUS if v >= usual),
                             LADDER_VCPUS[-1])
                members = 1
            request = {'flavor': {'name': 'bench.v%d' % vcpus,
                                  'vcpus': vcpus,
                                  'ram_mb': vcpus * RAM_MB_PER_VCPU,
                                  'disk_gb': 10}}
            group = name if mode == 'horizontal' else None
            self.driver.place_vm(request, host, instance_id=name,
                                 profile=profile, metadata=metadata,
                                 server_group=group)
            for member in range(1, members):
                sibling = '%s-m%d' % (name, member)
                self.driver.place_vm(request, host, instance_id=sibling,
                                     profile=profile, metadata=metadata,
                                     server_group=group)
                adopted.append((name, sibling))
        self.parts = service.build_watcher(
            self.conf, history=self.history, driver=self.driver,
            policy=policy_object, foresight=self.foresight)
        self.watcher = self.parts.watcher
        for name, sibling in adopted:
            self.watcher.adopt_sibling(name, sibling)

    def demand_at(self, name, times):
        demand, first = self.demand[name]
        position = (np.asarray(times, float) - self.origin) / TRACE_STEP_S
        position = position + first
        low = np.floor(position).astype(int)
        weight = position - low
        count = len(demand)
        return (demand[low % count] * (1 - weight)
                + demand[(low + 1) % count] * weight)

    def foresight(self, name, start, end):
        times = np.arange(start + SCORE_STEP_S, end + 1e-6, SCORE_STEP_S)
        if not len(times):
            return 0.0
        return float(self.demand_at(name, times).max())

    def run(self, progress=None):
        self.driver.fast_forward(self.warmup_s)
        self.scored_from = self.driver.now()
        steps = int(self.days * 86400 / self.conf.watcher.interval)
        began = time.time()
        for step in range(steps):
            self.watcher.run_once(self.driver.now())
            self.driver.fast_forward(self.conf.watcher.interval)
            if progress and step % 48 == 0:
                progress(step, steps, time.time() - began)
        self.scored_to = self.driver.now()
        self.wall_s = time.time() - began

    def score(self):
        twin = self.driver.twin
        times = np.arange(self.scored_from, self.scored_to, SCORE_STEP_S)
        dt_h = SCORE_STEP_S / 3600.0
        target = qos.targets_for(PROFILE).get('cpu_steal_pct',
                                              ('<=', 10.0))
        steal_by_workload = {}
        for host in self.driver.host_names():
            _f, _t, metrics = twin.evaluate(host, times)
            for workload_id, (achieved, active) in metrics.items():
                steal_by_workload[workload_id] = (
                    achieved['cpu_steal_pct'] * active)
        totals = dict(violation_minutes=0.0, downtime_minutes=0.0,
                      unserved=0.0, resource_hours=0.0)
        totals['causes'] = dict.fromkeys(CAUSES, 0.0)
        found = records.read(self.history, self.scored_from - self.warmup_s,
                             self.scored_to + 1)
        per_vm = {}
        for name in self.demand:
            capacity = np.zeros(len(times))
            held = np.zeros(len(times))
            steal = np.zeros(len(times))
            for member in self._members(name):
                part_cap, part_held, part_steal = self._capacity(
                    member, times, steal_by_workload)
                capacity += part_cap
                held += part_held
                steal = np.maximum(steal, part_steal)
            wanted = self.demand_at(name, times)
            short = np.maximum(wanted - capacity, 0.0)
            violated = (short > 1e-9) | qos.breaches(steal, target)
            down = (capacity == 0) & (wanted > 0)
            vm = {'violation_minutes': float(violated.sum()
                                             * SCORE_STEP_S / 60.0),
                  'downtime_minutes': float(down.sum() * SCORE_STEP_S
                                            / 60.0),
                  'unserved': float(short.sum() * dt_h),
                  'resource_hours': float(held.sum() * dt_h),
                  'hours_at_vcpus': hours_at_vcpus(held, dt_h)}
            vm['causes'] = violation_causes(
                times, violated, capacity, short, self._top(),
                [r for r in found if r['instance'] == name],
                self.conf.watcher)
            per_vm[name] = vm
            for key in ('violation_minutes', 'downtime_minutes',
                        'unserved', 'resource_hours'):
                totals[key] += vm[key]
            for cause, minutes in vm['causes'].items():
                totals['causes'][cause] += minutes
        started = scalings(found)
        flapped = flap_times(started, self.conf.watcher.cooldown)
        for name, vm in per_vm.items():
            vm['actions'] = sum(1 for r in started if r['instance'] == name)
            vm['flaps_at_h'] = [round((at - self.scored_from) / 3600.0, 2)
                                for at in flapped.get(name, ())]
        totals['actions'] = len(started)
        totals['flaps'] = count_flaps(started,
                                      self.conf.watcher.cooldown)
        totals['suppressed'] = sum(1 for r in found
                                   if r['outcome'] == 'suppressed')
        totals['failed'] = sum(1 for r in found if r['outcome'] == 'failed')
        totals['by_action'] = {}
        for r in started:
            totals['by_action'][r['action']] = totals['by_action'].get(
                r['action'], 0) + 1
        totals['wall_s'] = round(self.wall_s, 1)
        return totals, per_vm

    def _top(self):
        """The most vCPUs a VM can get: the ladder's top rung, or a
        full group."""
        if self.mode == 'horizontal':
            return MEMBER_VCPUS * MAX_MEMBERS
        return LADDER_VCPUS[-1]

    def _members(self, name):
        """Instance ids of ``name``'s group (itself in vertical mode)."""
        twin = self.driver.twin
        if self.mode != 'horizontal':
            return [name]
        return sorted({w.reported_id for w in twin.workloads.values()
                       if w.kind == 'vm' and w.group == name})

    def _capacity(self, instance_id, times, steal_by_workload):
        """``(capacity, held, steal)`` of one instance at ``times``: the
        vCPUs serving, the vCPUs allocated (a resize's new flavor while
        the guest is down, a sibling's while it boots) and its steal."""
        twin = self.driver.twin
        segments = sorted((w for w in twin.workloads.values()
                           if w.kind == 'vm'
                           and w.reported_id == instance_id),
                          key=lambda w: w.started_at)
        capacity = np.zeros(len(times))
        held = np.zeros(len(times))
        steal = np.zeros(len(times))
        for i, work in enumerate(segments):
            active = work.active_at(times)
            capacity[active] = work.vcpus
            held[active] = work.vcpus
            if i + 1 < len(segments) and work.stopped_at is not None:
                gap = (times >= work.stopped_at) & (
                    times < segments[i + 1].started_at)
                held[gap] = segments[i + 1].vcpus
            if i == 0 and '-sibling-' in instance_id:
                booting = (times >= work.started_at - BOOT_DURATION_S) & (
                    times < work.started_at)
                held[booting] = work.vcpus
            steal = np.maximum(steal, steal_by_workload.get(
                work.workload_id, np.zeros(len(times))))
        return capacity, held, steal

    def close(self):
        self.parts.close()


#: Why a violated minute was violated (see :func:`violation_causes`).
CAUSES = ('downtime', 'steal', 'top', 'refused', 'under_way',
          'undersized', 'failed', 'missed')


def violation_causes(times, violated, capacity, short, top, found, opts):
    """Minutes of ``violated`` by cause, from the VM's decision records
    ``found`` (one VM's), first cause that applies:

    downtime    the VM was down (a resize's reboot, a member's boot);
    steal       only its CPU steal broke the target (no shortage);
    top         short while holding ``top`` vCPUs (no policy can add);
    refused     a growth the guard refused (immunity window, an action
                under way, rate limit) was proposed within a resize's
                lead time before;
    under_way   a growth had started but not yet taken effect (decided
                less than its duration ahead), nor failed;
    undersized  a growth took effect within an immunity window plus a
                resize's duration before, and was not enough (the next
                one waits for the immunity window);
    failed      a growth failed (at its start, or later: the VM or
                every sibling went to ERROR, it timed out) and took no
                effect (one some of whose siblings came up is done):
                from when it failed (or would have taken effect) until
                the next growth, asked once the immunity window has
                passed and the failed one ended, could have;
    missed      no growth was asked for: the forecast missed it.
    """
    duration = max(opts.resize_duration, opts.boot_duration)
    lead = opts.interval + duration
    up = [r for r in found
          if policy_base.Decision(r['action'], '').direction > 0]
    refused = np.array([r['at'] for r in up
                        if r['outcome'] == 'suppressed'])
    # A growth's records share its decision id: one that started and
    # failed later has a 'started' and a 'failed' record, one whose start
    # failed only the latter.
    starts, fails = {}, {}
    for r in up:
        key = r.get('decision_id') or id(r)
        if r['outcome'] == 'started':
            starts.setdefault(key, r['at'])
        elif r['outcome'] == 'failed':
            fails.setdefault(key, r['at'])
    took_effect = np.array([at for key, at in starts.items()
                            if key not in fails])
    failed_from = np.array([starts.get(key, at) for key, at in fails.items()])
    # How long after its start each failed growth was under way (until it
    # failed, at most a growth's duration) and until when it kept the
    # next one from taking effect.
    failed_after = np.array(list(fails.values())) - failed_from
    under_way_for = np.minimum(failed_after, duration)
    held_back_for = np.maximum(failed_after, opts.immunity_window) + \
        duration

    def within(events, low, high):
        if not len(events):
            return np.zeros(len(times), bool)
        ago = times[:, None] - events[None, :]
        return ((ago > low) & (ago <= high)).any(axis=1)

    rules = [
        ('downtime', capacity <= 0),
        ('steal', short <= 1e-9),
        ('top', capacity >= top),
        ('refused', within(refused, -1e-6, lead)),
        ('under_way', within(took_effect, 0.0, duration)
         | within(failed_from, 0.0, under_way_for)),
        ('undersized', within(took_effect, duration,
                              duration + opts.immunity_window)),
        ('failed', within(failed_from, under_way_for, held_back_for)),
    ]
    left = np.asarray(violated, bool).copy()
    minutes = SCORE_STEP_S / 60.0
    out = {}
    for cause, applies in rules:
        hit = left & applies
        out[cause] = float(hit.sum() * minutes)
        left &= ~hit
    out['missed'] = float(left.sum() * minutes)
    return out


def hours_at_vcpus(held, dt_h):
    """``{vCPUs: hours}``: how long each size in ``held`` (vCPUs per
    score step of ``dt_h`` hours) was held; keys as strings (JSON)."""
    sizes, counts = np.unique(np.round(np.asarray(held, float), 6),
                              return_counts=True)
    return {'%g' % size: round(float(count * dt_h), 4)
            for size, count in zip(sizes, counts)}


def scalings(found):
    """The first records of the actions among the decision records
    ``found`` that started and did not fail later (a resize or a sibling
    that went to ERROR, one that timed out changed nothing): the
    benchmark's ``actions``, and what its flaps are counted from."""
    failed = {r['decision_id'] for r in found if r['outcome'] == 'failed'}
    return [r for r in found if r['outcome'] == 'started'
            and r['decision_id'] not in failed]


def count_flaps(started, cooldown):
    """Reversals (a growth then a shrink, or a shrink then a growth) of
    one VM less than ``cooldown`` seconds apart."""
    return sum(len(times) for times in flap_times(started,
                                                  cooldown).values())


def flap_times(started, cooldown):
    """``{instance: [time of each reversal]}`` of :func:`count_flaps`."""
    flaps = {}
    by_vm = {}
    for record in sorted(started, key=lambda r: r['at']):
        direction = policy_base.Decision(record['action'], '').direction
        if not direction:
            continue
        last = by_vm.get(record['instance'])
        if last and last[1] != direction and record['at'] - last[0] < \
                cooldown:
            flaps.setdefault(record['instance'], []).append(record['at'])
        by_vm[record['instance']] = (record['at'], direction)
    return flaps


def train_rl(vms, args, path, mode='vertical', seed=0):
    """Train the rl policy by replaying ``vms`` in the twin through the
    watcher loop, exploring (its random moves drawn from ``seed``); save
    its table to ``path``."""
    policy = rl_mod.RLPolicy(make_conf('rl', args, mode=mode), seed=seed)
    for epoch in range(args.rl_epochs):
        policy.explore = max(0.05, 0.3 / (epoch + 1))
        replay = Replay('rl', vms, args, TRAIN_START_DAY + 2 * epoch,
                        args.rl_days, policy_object=policy, mode=mode)
        replay.run(progress=_progress('train epoch %d' % epoch))
        totals, _per_vm = replay.score()
        replay.close()
        LOG.info('training epoch %d: %s', epoch, totals)
    policy.explore = 0.0
    policy.save(path)
    return policy


def _progress(label):
    def report(step, steps, wall):
        LOG.info('%s: step %d/%d (%.0f s)', label, step, steps, wall)
    return report


def summarise(results):
    base = results.get('reactive')
    if not base:
        return
    for totals in results.values():
        if base['violation_minutes']:
            totals['violation_change_pct'] = round(
                100.0 * (totals['violation_minutes']
                         / base['violation_minutes'] - 1.0), 1)
        totals['resource_change_pct'] = round(
            100.0 * (totals['resource_hours'] / base['resource_hours']
                     - 1.0), 1)


def print_table(results):
    header = ('%-9s %10s %8s %10s %9s %7s %8s %6s %7s'
              % ('policy', 'viol.min', 'unserved', 'res.hours', 'actions',
                 'flaps', 'viol.%', 'res.%', 'wall s'))
    print(header)
    for name, t in results.items():
        print('%-9s %10.0f %8.1f %10.0f %9d %7d %8s %6s %7.0f' % (
            name, t['violation_minutes'], t['unserved'],
            t['resource_hours'], t['actions'], t['flaps'],
            t.get('violation_change_pct', ''),
            t.get('resource_change_pct', ''), t['wall_s']))
    print('violation minutes by cause:')
    for name, t in results.items():
        print('%-9s %s' % (name, ', '.join(
            '%s %.0f' % (cause, minutes)
            for cause, minutes in t.get('causes', {}).items())))


def run_mode(mode, policies, vms, args):
    """Train rl if needed, run every policy in ``mode``; returns
    ``{'results', 'per_vm', 'training'}``."""
    print('== %s ==' % mode)
    rl_model = args.rl_model
    if rl_model and mode == 'horizontal':
        rl_model = rl_model.replace('.json', '-horizontal.json')
    training, train_vms = None, vms
    if 'rl' in policies and (args.train_rl or not args.rl_model):
        rl_model = args.train_rl or os.path.join(
            tempfile.mkdtemp(prefix='rl-'), 'rl_policy.json')
        if mode == 'horizontal':
            rl_model = rl_model.replace('.json', '-horizontal.json')
        others = select_vms(args.traces, args.vms, skip=args.vms)
        training = {'vms': [n for n, _d in (others or vms)],
                    'start_day': TRAIN_START_DAY, 'epochs': args.rl_epochs,
                    'days_per_epoch': args.rl_days, 'model': rl_model}
        began = time.time()
        train_vms = others or vms
        train_rl(train_vms, args, rl_model, mode)
        training['wall_s'] = round(time.time() - began, 1)
    results, per_vm = {}, {}
    for policy in policies:
        replay = Replay(policy, vms, args, args.start_day, args.days,
                        rl_model=rl_model if policy == 'rl' else None,
                        mode=mode)
        replay.run(progress=_progress('%s %s' % (mode, policy)))
        results[policy], per_vm[policy] = replay.score()
        replay.close()
        LOG.info('%s %s: %s', mode, policy, results[policy])
    summarise(results)
    print_table(results)
    spread = None
    if 'rl' in policies and training and args.rl_seeds > 1:
        spread = rl_spread(mode, vms, train_vms, args, training, results)
    return {'results': results, 'per_vm': per_vm, 'training': training,
            'rl_seeds': spread}


def rl_spread(mode, vms, train_vms, args, training, results):
    """The rl policy trained again on ``train_vms`` with exploration
    seeds 1 to ``--rl-seeds`` - 1 (the run above is seed 0) and replayed
    on ``vms``: how far its totals move with its training alone."""
    runs = [dict(results['rl'], seed=0)]
    for seed in range(1, args.rl_seeds):
        model = training['model'].replace('.json', '-seed%d.json' % seed)
        train_rl(train_vms, args, model, mode, seed=seed)
        replay = Replay('rl', vms, args, args.start_day, args.days,
                        rl_model=model, mode=mode)
        replay.run(progress=_progress('%s rl seed %d' % (mode, seed)))
        totals, _per_vm = replay.score()
        replay.close()
        runs.append(dict(totals, seed=seed))
    summarise(dict(results, **{'rl-%d' % r['seed']: r for r in runs}))
    keys = ('violation_minutes', 'resource_hours', 'actions', 'flaps',
            'violation_change_pct', 'resource_change_pct')
    spread = {'seeds': [{k: r.get(k) for k in ('seed',) + keys}
                        for r in runs]}
    for key in keys:
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            spread[key] = {'mean': round(float(np.mean(values)), 2),
                           'min': min(values), 'max': max(values)}
    print('rl over %d training seeds: violation minutes %s, resources %s %%'
          % (len(runs), spread['violation_minutes'],
             spread.get('resource_change_pct')))
    return spread


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--traces', required=True,
                        help='directory with bitbrains_rnd/<month>/N.csv.gz')
    parser.add_argument('--out', required=True, help='results JSON file')
    parser.add_argument('--vms', type=int, default=50)
    parser.add_argument('--days', type=float, default=2.0)
    parser.add_argument('--policies', default=','.join(POLICIES))
    parser.add_argument('--warmup-days', type=float, default=1.0,
                        help='days of history (samples only, no decisions) '
                        'before the scored run, at most %d; the starting '
                        'flavor comes from the last of them (default 1)'
                        % TRACE_START_DAY)
    parser.add_argument('--start-day', type=float, default=TRACE_START_DAY,
                        help='trace day the scored run starts on (default '
                        '%d; the warm-up comes before it, so at least '
                        '--warmup-days; a later day than the default is '
                        'another window of the same VMs)' % TRACE_START_DAY)
    parser.add_argument('--interval', type=float, default=300.0)
    parser.add_argument('--resize-duration', type=float, default=300.0)
    parser.add_argument('--resize-downtime', type=float, default=60.0)
    parser.add_argument('--noise', type=float, default=sim_noise.NOISE_PCT,
                        help='measurement noise of the samples, %% '
                             '(default: the product\'s [sim] noise_pct)')
    parser.add_argument('--noise-stream', default=sim_noise.NOISE_SHARED,
                        choices=sim_noise.NOISE_STREAMS,
                        help='where the noise comes from: one shared '
                             'sequence, or keyed by VM, metric and time '
                             '(default: the product\'s [sim] noise_stream)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--mode', default='both',
                        choices=['vertical', 'horizontal', 'both'],
                        help='resize along the ladder, scale out groups, '
                        'or both (vertical goes under "policies", '
                        'horizontal under "horizontal")')
    parser.add_argument('--rl-model', help='trained rl table to load')
    parser.add_argument('--set', action='append', metavar='GROUP.OPT=VALUE',
                        help='override an option of every policy run, '
                        'e.g. watcher.error_quantile=0.99 (repeatable)')
    parser.add_argument('--train-rl', metavar='FILE',
                        help='train the rl policy first, save it here')
    parser.add_argument('--rl-epochs', type=int, default=3)
    parser.add_argument('--rl-days', type=float, default=2.0)
    parser.add_argument('--rl-seeds', type=int, default=1,
                        help='train rl this many times, with exploration '
                        'seeds 0, 1, ..., and replay each model: '
                        '"rl_seeds" reports how far its totals move with '
                        'its training ("policies.rl" is seed 0; needs '
                        'training in the run)')
    args = parser.parse_args(argv)
    if args.rl_seeds < 1:
        parser.error('--rl-seeds: at least 1')
    policies = [p.strip() for p in args.policies.split(',') if p.strip()]
    if not 0 < args.warmup_days <= args.start_day:
        parser.error('--warmup-days: between 0 and --start-day (%g)'
                     % args.start_day)
    if args.start_day + args.days > MIN_STEPS * TRACE_STEP_S / 86400.0:
        parser.error('--start-day %g + --days %g: past the traces\' %d '
                     'days' % (args.start_day, args.days,
                               MIN_STEPS * TRACE_STEP_S / 86400.0))
    vms = select_vms(args.traces, args.vms)
    if len(vms) < args.vms:
        parser.error('--traces %s: only %d VMs qualify, %d wanted'
                     % (args.traces, len(vms), args.vms))
    modes = (['vertical', 'horizontal'] if args.mode == 'both'
             else [args.mode])
    by_mode = {}
    for mode in modes:
        by_mode[mode] = run_mode(mode, policies, vms, args)
    first = by_mode[modes[0]]
    output = {
        'benchmark': 'proactive_scaling',
        'traces': os.path.abspath(args.traces),
        'vms': [n for n, _d in vms],
        'mode': modes[0],
        'setup': {
            'days_scored': args.days,
            'warmup_s': args.warmup_days * 86400.0,
            'warmup_days': args.warmup_days,
            'trace_start_day': args.start_day,
            'interval_s': args.interval,
            'resize_duration_s': args.resize_duration,
            'resize_downtime_s': args.resize_downtime,
            'boot_duration_s': BOOT_DURATION_S,
            'lead_time_s': args.interval + args.resize_duration,
            'ladder_vcpus': list(LADDER_VCPUS),
            'member_vcpus': MEMBER_VCPUS, 'max_members': MAX_MEMBERS,
            'demand_scale': DEMAND_SCALE, 'noise_pct': args.noise,
            'noise_stream': args.noise_stream,
            'seed': args.seed, 'score_step_s': SCORE_STEP_S,
            'hosts': 'data/proactive_cluster.yaml',
            'command': ' '.join(sys.argv),
            'overrides': args.set or [],
        },
        'rl_training': first['training'],
        'rl_seeds': first['rl_seeds'],
        'policies': first['results'],
        'per_vm': first['per_vm'],
    }
    for mode in modes[1:]:
        output[mode] = {'policies': by_mode[mode]['results'],
                        'rl_training': by_mode[mode]['training'],
                        'rl_seeds': by_mode[mode]['rl_seeds'],
                        'per_vm': by_mode[mode]['per_vm']}
    with open(args.out, 'w') as handle:
        json.dump(output, handle, indent=1, sort_keys=True)
    print('results written to %s' % args.out)
    return 0


def configure_logging():
    """The script's own progress lines, the service's warnings only.
    Run as a script only: a caller of main() (a test) keeps its own
    logging."""
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    for noisy in ('shadow_service', 'stevedore'):
        logging.getLogger(noisy).setLevel(logging.WARNING)


if __name__ == '__main__':
    configure_logging()
    sys.exit(main())
