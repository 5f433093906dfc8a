"""The watcher loop: forecast each watched VM, decide, act, learn.

:meth:`Watcher.run_once` is one pass over every watched VM:

1. follow the actions under way (confirm a finished resize, note a
   migration or boot that ended) and record their outcome; have the
   driver carry on the sibling deletions that have not completed, also
   those whose scale-in has ended (:meth:`CloudDriver.finish_deletions
   <shadow_service.clouds.base.CloudDriver.finish_deletions>`);
2. read the VM's recent history (CPU utilisation, steal, its profile's
   QoS metrics) from the history store;
3. forecast its demand (busy vCPUs) over the lead time each action needs
   with the analyzer's forecasters, raised by the margin its past errors
   call for (:mod:`.errors`), and each QoS metric against its target
   (:mod:`.forecast`);
4. let the policy decide; let the steal detector propose a migration
   when the policy does nothing;
5. check the decision against the safety limits (:mod:`.guard`) and the
   ladder and quota; pick a migration's target host
   (:mod:`.selection`);
6. act through the cloud driver, or in dry-run only say what it would do
   (:mod:`.actuator`), and write a ``scaling_decision`` record;
7. once a forecast's lead time has passed, compare it with what was
   measured and update the error statistics.

The daemon calls it every ``[watcher] interval``; the benchmark and the
demo call it step by step over the twin.  Only the leader acts when
several watchers share a ``coordination_url`` (:mod:`.leader`).
"""

import collections
import dataclasses
import functools
import logging
import math

import numpy as np
from oslo_config import types as cfg_types

from shadow_service import exporter
from shadow_service import hostchoice
from shadow_service import logsafe
from shadow_service import measurements as names
from shadow_service import plugins
from shadow_service.clouds import base as cloud_base
from shadow_service.history import base as history_base
from shadow_service.watcher import actuator as actuator_mod
from shadow_service.watcher import errors as errors_mod
from shadow_service.watcher import forecast as forecast_mod
from shadow_service.watcher import guard as guard_mod
from shadow_service.watcher import ladder as ladder_mod
from shadow_service.watcher import records
from shadow_service.watcher import selection
from shadow_service.watcher import steal as steal_mod
from shadow_service.watcher.policies import base as policy_base
from shadow_service.workloads import qos

LOG = logging.getLogger(__name__)

#: How the opt-in metadata's value is read: as oslo.config reads a
#: boolean option (``true``/``false``, ``yes``/``no``, ``on``/``off``,
#: ``1``/``0``, in any case).
OPT_IN = cfg_types.Boolean()
PROFILE_KEY = 'nova_shadow_profile'
SCALING_KEY = 'nova_shadow_scaling'


#: The demand's main season (the "same time yesterday" of a forecast).
SEASON_S = 86400.0
#: Seconds of history the QoS forecasts and the steal detector read.
QOS_WINDOW_S = 6 * 3600.0
#: A QoS metric whose recent values all stay within this share of its
#: target's threshold (on the safe side) is not forecast this run.
FAR_SHARE = 0.5
#: Steps ending now none of which holds a CPU utilisation sample: the
#: VM's newest sample is too old to decide on (its collector stopped).
STALE_STEPS = 2


def _far_from(values, target):
    comparison, threshold = target
    if comparison == qos.LOWER_IS_FINE:
        return max(values) < FAR_SHARE * threshold
    return min(values) > threshold / FAR_SHARE


def _slope(values):
    """Least-squares slope per step of ``values`` (one a step; NaN where
    missing, the others keep their steps); 0 for fewer than 2 samples."""
    values = np.asarray(values, float)
    steps = np.flatnonzero(np.isfinite(values))
    if steps.size < 2:
        return 0.0
    return float(np.polyfit((steps - steps[0]).astype(float),
                            values[steps], 1)[0])


#: A sibling in these states is no member of its group: deleted
#: (SOFT_DELETED: kept by a deferred delete until Nova reclaims it).
_DELETED_STATUSES = frozenset(('SOFT_DELETED', 'DELETED'))


class _NoLongerLeading(Exception):
    """This watcher lost the leader lock during its run: it stops."""


@dataclasses.dataclass
class Step:
    """What one run did for one VM."""

    instance_id: str
    decision: policy_base.Decision
    #: None for "do nothing"; else a :data:`records.OUTCOMES` value.
    outcome: str = None
    detail: str = ''
    record: dict = None


@dataclasses.dataclass
class _Prediction:
    made_at: float
    matures_at: float
    raw_peak: float
    flavor: str
    vcpus: float


def _by_webhook(record):
    """Whether the decision ``record`` was given to the scale webhook (its
    effect is not the watcher's to see, nor to follow).  Records written
    before they carried ``webhook`` are known by their detail."""
    return 'webhook' in record or (
        record['action'] in ('scale_out', 'scale_in') and str(
            record.get('detail') or '').startswith('call the scale webhook'))


def load_policy(conf, name=None):
    """The ``[watcher] policy`` plugin, built over ``conf``."""
    name = name or conf.watcher.policy
    return plugins.plugin_class(plugins.POLICIES, name)(conf)


class Watcher:
    """Watches VMs and scales them ahead of their bottlenecks.

    Parameters
    ----------
    conf : oslo_config.cfg.ConfigOpts
        With ``[watcher]`` and the policies' groups registered.
    driver : shadow_service.clouds.base.CloudDriver
    history : shadow_service.history.base.HistoryStore
    analyzer : shadow_service.analysis.analyzer.Analyzer
    policy : shadow_service.watcher.policies.base.ScalingPolicy
    ranker : callable, optional
        ``ranker(instance, profile, hosts) -> {host: score}`` for
        migrations (None: Nova picks the host).
    leader : shadow_service.watcher.leader.Leadership, optional
        Only the leader acts; None: this watcher acts alone.
    foresight : callable, optional
        ``foresight(instance_id, start, end) -> true peak demand``: only a
        benchmark over the twin gives one (the ``oracle`` policy, and the
        ``rl`` policy's training rewards).
    """

    def __init__(self, conf, *, driver, history, analyzer, policy,
                 ranker=None, leader=None, foresight=None):
        opts = conf.watcher
        self.conf = conf
        self.opts = opts
        self.driver = driver
        self.history = history
        self.analyzer = analyzer
        self.policy = policy
        self.ranker = ranker
        self.leader = leader
        self.foresight = foresight
        self.ladder = ladder_mod.parse(opts.flavor_ladder)
        self.host_costs = hostchoice.parse_costs(opts.host_costs,
                                                 '[watcher] host_costs')
        self.guard = guard_mod.Guard(guard_mod.Limits.from_conf(opts))
        self.errors = errors_mod.ErrorStats(
            quantile=opts.error_quantile, window=opts.error_window,
            min_errors=opts.min_errors)
        self.actuator = actuator_mod.Actuator(
            driver, self.ladder, dry_run=opts.dry_run,
            webhook=opts.scale_webhook)
        self.pending = {}
        self.siblings = collections.defaultdict(list)
        #: Siblings a scale-out booted that failed (went to ERROR, or
        #: still booted at its deadline), their deletion asked: never
        #: members of a group, however a listing shows them.  Pruned by
        #: the listings that no longer find them.
        self._discarded = set()
        self._predictions = collections.defaultdict(collections.deque)
        #: instance -> when this watcher last forecast it
        self._predicted = {}
        self._bounds = collections.defaultdict(collections.deque)
        self._vcpus = {}
        self._member_counts = {}
        #: instance -> members of its group as the scale webhook's
        #: answers state it, or as the watcher counts its accepted calls
        #: (the orchestrator's members are none of its siblings)
        self._webhook_sizes = {}
        #: instance -> (sustained peak, single peak, known since when)
        self._ceilings = {}
        #: instance -> the least its demand was when it was last seen
        #: saturated at its largest capacity (that capacity times the
        #: policy's hidden-demand factor)
        self._hidden = {}
        #: instance -> (demand cap, when the samples last showed it): the
        #: vCPUs of a flavor the resized VM filled, past which a larger
        #: flavor showed its demand does not go (see :meth:`_cap`)
        self._caps = {}
        #: instance -> (sustained peak, single peak, known since) that
        #: the decision records held at a restore, merged into the
        #: ceiling read from history on the VM's next run
        self._recorded_ceilings = {}
        #: The leader's term this watcher restored for (a new term: it
        #: took the lock again, and another may have led meanwhile).
        self._term = None
        self._restored = False
        #: (what, instance or None) -> the value warned of (see
        #: :meth:`_warn_once`; pruned with the VMs, :meth:`_forget`)
        self._warned = {}
        #: The VMs the last listing found (watched or not)
        self._listed = set()
        self._cache = {}
        #: instance -> when a run last watched it (see :meth:`_forget`)
        self._seen = {}
        self.counters = collections.Counter()

    # -- set-up -------------------------------------------------------------
    @property
    def lead_s(self):
        """Seconds from a decision to each kind of action's effect."""
        opts = self.opts
        return {'vertical': opts.interval + opts.resize_duration,
                'migrate': opts.interval + opts.migration_duration,
                'horizontal': opts.interval + opts.boot_duration}

    def _lead_of(self, action):
        """The lead time of ``action`` (:attr:`lead_s`): what its
        deadline counts from, when it starts and when a restart
        restores it."""
        return self.lead_s['migrate' if action == 'live_migrate'
                           else 'horizontal' if action in (
                               'scale_out', 'scale_in') else 'vertical']

    def _warn_once(self, what, instance_id, value, message, *args):
        """Log ``message`` once for ``instance_id`` (None: the watcher's
        own) and ``what`` while ``value`` stays the same: one entry per
        VM and kind, so the entries are bounded by the VMs known (and
        those are forgotten, :meth:`_forget`)."""
        key = (what, instance_id)
        if key not in self._warned or self._warned[key] != value:
            self._warned[key] = value
            LOG.warning(message, *args)

    def _opted_in(self, instance):
        """Whether the VM's ``watch_metadata_key`` metadata opts it in (a
        true value as oslo.config reads a boolean: :data:`OPT_IN`).  A
        value that is neither true nor false opts nothing in, and is said
        once (naming the key), since a typo would go unnoticed."""
        key = self.opts.watch_metadata_key
        value = (instance.metadata or {}).get(key) if key else None
        if value is None or value == '':
            return False
        try:
            return OPT_IN(str(value))
        except ValueError:
            self._warn_once(
                'opt_in', instance.instance_id, value,
                'Instance %s: %s=%s is neither true nor false (true, yes, '
                'on, 1 or false, no, off, 0); not watching it by its '
                'metadata', logsafe.clip(instance.instance_id), key,
                logsafe.clip(str(value)))
            return False

    def watched(self):
        """The VMs to look at this run (siblings the watcher booted are
        looked at through their group's original)."""
        opts = self.opts
        found = {}
        for instance_id in opts.instances:
            try:
                found[instance_id] = self.driver.get_instance(instance_id)
            except cloud_base.CloudError as exc:
                self._warn_once('missing', instance_id, None,
                                'Watched instance %s: %s', instance_id, exc)
        if opts.projects or opts.watch_metadata_key:
            try:
                listed = self.driver.list_instances(
                    project_ids=opts.projects or None)
            except cloud_base.NotSupported as exc:
                self._warn_once('list', None, None, 'Cannot list '
                                'instances (%s): only [watcher] instances '
                                'are watched', exc)
                listed = []
            except cloud_base.CloudError as exc:
                LOG.warning('Listing instances failed: %s', exc)
                listed = []
            self._listed = {i.instance_id for i in listed}
            if listed:
                self._discarded &= self._listed
            for instance in listed:
                if (self._opted_in(instance) or (
                        opts.projects
                        and instance.project_id in opts.projects)):
                    found.setdefault(instance.instance_id, instance)
        # A sibling the watcher booted is watched through its group's
        # original, found by its metadata after a restart, never alone.
        # Metadata is the tenant's to write: a server joins the group
        # only if it is in the original's project and server group.  One
        # in ERROR (its boot failed; the scale-out deletes it), one a
        # scale-out deleted as it failed, or one being deleted does not.
        for instance_id, instance in sorted(found.items()):
            original = found.get(str((instance.metadata or {}).get(
                actuator_mod.SIBLING_KEY) or ''))
            if (original is not None
                    and (instance.status or '').upper() != 'ERROR'
                    and not instance.deleting
                    and instance_id not in self._discarded
                    and not (original.metadata or {}).get(
                        actuator_mod.SIBLING_KEY)
                    and instance.project_id == original.project_id
                    and instance.server_group == original.server_group):
                self.adopt_sibling(original.instance_id, instance_id)
        if ('gone_siblings',) not in self._cache:
            # Once a run: the quota check lists the VMs again.
            self._cache[('gone_siblings',)] = True
            self._forget_gone_siblings(found)
        ours = {s for group in self.siblings.values() for s in group}
        return [found[i] for i in sorted(found) if i not in ours and not
                (found[i].metadata or {}).get(actuator_mod.SIBLING_KEY)]

    def _forget_gone_siblings(self, found):
        """Drop from each group the siblings that no longer exist
        (deleted by an operator, or with their host): a group would
        otherwise count them for ever, and stay at its maximum size.
        A sibling not in ``found`` (this run's listing) is asked for;
        only a cloud that says it is gone (not an error that may pass)
        or deleted (SOFT_DELETED, kept by a deferred delete whose
        force-delete was refused: the listing leaves it out, its look-up
        finds it) removes it; one an action under way boots or deletes
        is left to that action."""
        moving = {s for pending in self.pending.values()
                  for s in pending.siblings}
        for instance_id, group in self.siblings.items():
            for sibling in list(group):
                if sibling in found or sibling in moving:
                    continue
                try:
                    status = (self.driver.get_instance(sibling).status
                              or '').upper()
                except cloud_base.CloudError as exc:
                    if exc.retryable or isinstance(
                            exc, cloud_base.NotSupported):
                        continue
                    gone = exc
                else:
                    if status not in _DELETED_STATUSES:
                        continue
                    # Deleted, kept by a deferred delete (the listing
                    # leaves it out): no member, though it holds its
                    # quota until Nova reclaims it.  Restored, it is
                    # listed and joins again.
                    gone = 'it is %s' % status
                group.remove(sibling)
                LOG.warning('Sibling %s of %s is gone (%s): the group has '
                            '%d members', sibling, instance_id, gone,
                            self._members(instance_id))

    # -- the run ------------------------------------------------------------
    def run_once(self, now=None):
        """One pass over every watched VM; returns a :class:`Step` each
        (an empty list when another watcher is the leader)."""
        now = self.driver.now() if now is None else float(now)
        if self.leader is not None:
            if not self.leader.is_leader():
                return []
            term = getattr(self.leader, 'term', None)
            if term != self._term or not self._restored:
                if not self.restore(now):
                    return []
                self._term = term
        elif not self._restored:
            # A watcher that restarts takes over what it did before.
            if not self.restore(now):
                return []
        self.counters['runs'] += 1
        self._cache = {}
        steps = []
        try:
            self._follow(now)
            self._finish_deletions()
            watched = self.watched()
            for instance in watched:
                self._seen[instance.instance_id] = now
                try:
                    steps.append(self._watch(instance, now))
                except _NoLongerLeading:
                    raise
                except Exception:
                    LOG.exception('Watching %s failed',
                                  instance.instance_id)
                    self.counters['errors'] += 1
            self._forget(now)
        except _NoLongerLeading:
            LOG.warning('Run %d lost the leader lock: it stops without '
                        'acting further', self.counters['runs'])
        return steps

    def _forget(self, now):
        """Drop what the watcher holds of each VM no run has watched for
        the longest window it reads history over (a VM deleted, or no
        longer opted in): with VMs coming and going, that state would
        otherwise grow without end.  A VM watched again later starts as
        it would after a restart (the same window is all it restores, and
        its warnings are said again).  A VM with an action under way or
        siblings in its group is kept."""
        opts = self.opts
        window = max(opts.history_window, opts.ceiling_window,
                     opts.cycle_window, opts.hold_window,
                     opts.immunity_window, opts.cooldown)
        held = (self._predictions, self._predicted, self._bounds,
                self._vcpus, self._member_counts, self._ceilings,
                self._hidden, self._caps, self._recorded_ceilings,
                self._webhook_sizes)
        known = set(self._seen).union(*held)
        for instance_id in known:
            # State restored for a VM no run has watched yet counts from
            # when it is first found unwatched.
            if now - self._seen.setdefault(instance_id, now) <= window or \
                    instance_id in self.pending or \
                    self.siblings.get(instance_id):
                continue
            for state in held:
                state.pop(instance_id, None)
            self._seen.pop(instance_id)
            self.siblings.pop(instance_id, None)
            self.errors.forget(instance_id)
            self.guard.forget(instance_id)
        # What was said of a VM goes with it; so does what was said of
        # one listed but not watched (its opt-in) once it is no longer
        # listed.  Said again if it comes back, as after a restart.
        kept = set(self._seen) | self._listed | set(opts.instances)
        for key in [k for k in self._warned
                    if k[1] is not None and k[1] not in kept]:
            del self._warned[key]

    def _check_leading(self):
        """Before an action (or its record): raise
        :class:`_NoLongerLeading` unless this watcher still holds the
        leader lock (renewing it)."""
        if self.leader is not None and not self.leader.still_leading():
            raise _NoLongerLeading()

    def _finish_deletions(self):
        """Have the driver carry on the deletions of siblings it asked that
        have not completed (the ``openstack`` driver deletes again one its
        compute host never deleted), also once their scale-in has ended
        (timed out, failed): otherwise such a sibling would hold its
        project's quota for good.  Not in dry-run, which deletes
        nothing."""
        if self.actuator.dry_run:
            return
        self._check_leading()
        try:
            self.driver.finish_deletions()
        except cloud_base.CloudError as exc:
            LOG.warning('Carrying on deletions of siblings failed: %s; '
                        'trying again next run', exc)

    def _follow(self, now):
        for instance_id, pending in sorted(self.pending.items()):
            self._check_leading()
            outcome, detail = self.actuator.follow(pending, now)
            if outcome is None:
                continue
            del self.pending[instance_id]
            self.guard.in_flight.discard(instance_id)
            if pending.action == 'scale_out':
                self._discard(pending)
            if outcome == 'done':
                self._after_done(pending, now)
            elif outcome == 'failed':
                self._after_failed(pending)
            record = {'decision_id': pending.decision_id,
                      'instance': instance_id, 'action': pending.action,
                      'outcome': outcome, 'detail': detail, 'at': now,
                      'started_at': pending.started_at,
                      'siblings': pending.siblings,
                      'target_host': pending.target_host}
            if pending.action == 'scale_out':
                record.update(joined=pending.joined,
                              discarded=pending.discarded)
                if self.actuator.dry_run:
                    # What an acting watcher would have deleted.
                    record['would_discard'] = pending.would_discard
            self._write(record, now)

    def _discard(self, pending):
        """The siblings of the scale-out ``pending`` that failed
        (:attr:`~.actuator.Pending.discarded`, their deletion asked) are
        no members of its group, even one a listing found while it
        booted, nor become members when a listing finds them later."""
        group = self.siblings.get(pending.instance_id, [])
        for sibling in pending.discarded:
            self._discarded.add(sibling)
            if sibling in group:
                group.remove(sibling)

    def _after_failed(self, pending):
        """An action that started has failed (a resize that went to
        ERROR or timed out, a scale-out none of whose siblings came up):
        it changed nothing.  The guard (and the policy, which holds the
        same :class:`~.guard.Taken`) keep it as an attempt, no scaling;
        the ``actions`` and ``flaps`` counters no longer count it.  (A
        scale-out some of whose siblings came up is ``done``: the group
        grew.)"""
        self.guard.failed(pending.instance_id, pending.started_at)
        if pending.counted:
            self.counters['actions'] -= 1
            if pending.flap:
                self.counters['flaps'] -= 1

    def _grown(self, pending, siblings, now):
        """``siblings`` booted by the scale-out ``pending`` came up: they
        are members of its group (from when they had booted, on its
        member-count timeline)."""
        instance_id = pending.instance_id
        # (A sibling listed while it booted has joined already.)
        for sibling in siblings:
            self.adopt_sibling(instance_id, sibling)
        self._member_counts.setdefault(instance_id, []).append(
            (min(now, pending.started_at + self.opts.boot_duration),
             self._members(instance_id)))

    def _after_done(self, pending, now):
        instance_id = pending.instance_id
        if pending.action == 'scale_out' and pending.joined:
            # All its siblings, or those that came up (the others were
            # deleted): a scaling all the same, the group grew.
            self._grown(pending, pending.joined, now)
        elif pending.action == 'scale_in' and pending.siblings:
            group = self.siblings.get(instance_id, [])
            for sibling in pending.siblings:
                if sibling in group:
                    group.remove(sibling)
            self._member_counts.setdefault(instance_id, []).append(
                (pending.started_at, self._members(instance_id)))
        elif pending.target_flavor:
            effective = min(now, pending.started_at
                            + self.opts.resize_duration)
            self._vcpus.setdefault(pending.instance_id, []).append(
                (effective, float(pending.target_flavor['vcpus'])))

    # -- one VM -------------------------------------------------------------
    def _series(self, instance_id, metric, now, window_s=None):
        """``(times, values)`` of one metric of the VM on the ``step``
        grid ending now (NaN where missing); read once per run."""
        window = window_s or self.opts.history_window
        key = (instance_id, metric, now, window)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        step = self.opts.step
        end = now + 1e-3
        series = self.history.query_series(
            names.INSTANCE_METRIC, names.FIELD_VALUE,
            {names.TAG_INSTANCE: instance_id, names.TAG_METRIC: metric},
            end - window, end, step, 'mean')
        found = (np.asarray(series.times, float),
                 np.array([np.nan if v is None else v
                           for v in series.values], float))
        self._cache[key] = found
        return found

    @staticmethod
    def _timeline_at(timeline, times, current):
        """Values of a step ``timeline`` (``[(since, value)]``, oldest
        first) at ``times``; ``current`` when it is empty or has moved
        on without the watcher seeing the change (from the newest time
        on: given bucket end times, the newest bucket, and every later
        one as later runs read them)."""
        if not timeline or timeline[-1][1] != current:
            timeline.append((-math.inf if not timeline else
                             times[-1] if len(times) else 0.0, current))
        out = np.full(len(times), float(timeline[0][1]))
        for since, value in timeline:
            out[times >= since] = value
        return out

    def _members(self, instance_id):
        """Members of the VM's group: what the scale webhook's answers
        said (or the watcher counted of its calls), else the VM and the
        siblings the watcher booted."""
        size = self._webhook_sizes.get(instance_id)
        if size is not None:
            return size
        return 1 + len(self.siblings.get(instance_id, []))

    def _profile(self, instance):
        metadata = instance.metadata or {}
        profile = (metadata.get(PROFILE_KEY) or metadata.get('profile')
                   or self.opts.default_profile)
        if profile not in qos.TARGETS:
            # A tenant's own name is allowed (the default targets apply),
            # but say so once: a typo would go unnoticed otherwise.
            self._warn_once(
                'profile', instance.instance_id, profile,
                'Instance %s: profile %s has no QoS targets of its own; '
                'watching it against the default (%s)',
                logsafe.clip(instance.instance_id), logsafe.clip(profile),
                ', '.join('%s %s %g' % (metric, comparison, threshold)
                          for metric, (comparison, threshold)
                          in qos.DEFAULT_TARGETS.items()))
        return profile

    def _demand(self, instance, now):
        """``(times, utilisation, demand)``: the VM's busy vCPUs (its
        group's, all members together, when it scales horizontally)."""
        instance_id = instance.instance_id
        times, util = self._series(instance_id, 'cpu_util_pct', now)
        demand = util / 100.0 * self._capacity(instance,
                                               times + self.opts.step)
        return times, util, demand

    def _capacity(self, instance, ends):
        """The VM's vCPUs (its group's, all members together, when it
        scales horizontally) at ``ends``, the end times of history
        buckets.  A bucket's mean is measured over the ``step`` before
        its end, on the capacity the VM has then: the bucket in which a
        resize (or a scale-out or in) took effect is counted on the new
        capacity, not the one it had at the bucket's start."""
        instance_id = instance.instance_id
        capacity = self._timeline_at(
            self._vcpus.setdefault(instance_id, []), ends,
            float(instance.flavor.get('vcpus') or 1))
        if self._mode(instance) == 'horizontal':
            capacity = capacity * self._timeline_at(
                self._member_counts.setdefault(instance_id, []), ends,
                self._members(instance_id))
        return capacity

    def _mode(self, instance):
        mode = str((instance.metadata or {}).get(SCALING_KEY, 'vertical'))
        if mode.lower() not in ('horizontal', 'vertical'):
            self._warn_once(
                'scaling', instance.instance_id, mode,
                "Instance %s: %s=%s is neither 'vertical' nor "
                "'horizontal'; resizing it", logsafe.clip(
                    instance.instance_id), SCALING_KEY, logsafe.clip(mode))
        return 'horizontal' if mode.lower() == 'horizontal' else 'vertical'

    def _forecast(self, instance, demand, now):
        step = self.opts.step
        lead = self.lead_s[self._mode(instance)]
        horizon = max(1, int(math.ceil(lead / step)))
        # A shrink must hold until a regrowth would no longer be a
        # reversal within the cooldown (a flap): the bound it is decided
        # on covers the cooldown and the lead of that regrowth.
        down_horizon = max(2 * horizon, int(math.ceil(
            (self.opts.cooldown + lead) / step)))
        # Missing samples keep their place (see
        # forecast_mod.forecast_from_now): a gap shifts neither the
        # season, the trend's steps nor the horizon.
        demand = np.asarray(demand, float)
        known = np.flatnonzero(np.isfinite(demand))
        vcpus = float(instance.flavor.get('vcpus') or 1)
        if known.size < 2:
            return None
        # Steps by which the newest sample is older than now.
        late = len(demand) - 1 - int(known[-1])
        result = forecast_mod.forecast_from_now(
            self.analyzer, demand, step_s=step, horizon_steps=down_horizon,
            forecaster=self.opts.forecaster, bounds=(0.0, None))
        upper = np.asarray(result.upper, float)
        newest = float(demand[known[-1]])
        trend = _slope(demand[:known[-1] + 1][-self.opts.trend_steps:]) \
            if self.opts.trend_steps >= 2 else 0.0
        ceiling, ceiling_before = self._ceiling(instance, demand, now)
        jump = (newest - float(demand[known[-2]])) / float(
            known[-1] - known[-2])
        if self.opts.trend_steps >= 2 and jump > trend and \
                math.isfinite(ceiling_before) and \
                newest > ceiling_before * (1.0 + self.opts.ceiling_noise):
            # A burst past the most the VM ever used: its last step's
            # rise, not the slope of the quiet steps before, goes on
            # over the lead time.
            trend = jump
        # A rising demand is extrapolated over the lead time (the
        # forecasters' interval already covers a falling one), from the
        # newest sample on.
        rise = max(trend, 0.0) * np.arange(1 + late, down_horizon + 1 + late)
        upper = upper + rise[:len(upper)]
        raw_peak = float(np.max(upper[:horizon]))
        raw_down = float(np.max(upper))
        stats = self.errors.summary(instance.instance_id,
                                    instance.flavor.get('name') or
                                    '%g-vcpus' % vcpus, vcpus)
        margin = max(stats['margin'], 0.0)
        hold = max(1, int(self.opts.hold_window // step))
        if known.size < hold:
            # Never shrink a VM before a hold window of its history is
            # known: a young VM's first quiet minutes say little about
            # its next hours (growth is never delayed).
            raw_down = math.inf
        if stats['source'] == 'none':
            # Nor before any error margin is known (a new watcher): the
            # bound is not calibrated yet, and the margin the next runs
            # learn would grow the VM back within the cooldown.
            raw_down = math.inf
        # A group grows by a sibling's boot: its hold is shorter
        # (``group_hold_window``, at most the hold window).
        hold_s = self.opts.hold_window
        if self._mode(instance) == 'horizontal':
            hold_s = min(hold_s, self.opts.group_hold_window)
        held = max(1, int(hold_s // step))
        recent_peak = float(np.nanmax(demand[-held:])) if np.isfinite(
            demand[-held:]).any() else 0.0
        seasonal_peak = self._yesterday_peak(instance, now,
                                             down_horizon * step)
        # A shrink must also hold while a later run's look at yesterday
        # (as far ahead as this one's) could call for a regrowth.
        seasonal_down = self._yesterday_peak(
            instance, now, down_horizon * step + self.opts.cooldown)
        # Yesterday's largest demand over the hours this hold window
        # covers today: what today's ``recent_peak`` would be, had today
        # followed yesterday so far.
        seasonal_recent = self._yesterday_peak(instance, now, 0.0,
                                               before_s=hold_s)
        # A demand that recurs at this time of day, ahead by the lead
        # time (a growth), or by the time a shrink must hold.
        recurring_peak, recurring_down = self._recurring_peaks(
            instance, now, (lead, down_horizon * step + self.opts.cooldown))
        # The largest bound a growth was sized on within the hold
        # window: a VM that just wanted that much may want it again.
        bounds = self._bounds[instance.instance_id]
        while bounds and bounds[0][0] <= now - hold_s:
            bounds.popleft()
        recent_bound = max((b for _t, b in bounds), default=0.0)
        if trend > 0:
            # A rising demand may pass the most the VM ever used: the
            # ceiling gives way to its extrapolation over the lead time.
            ceiling = max(ceiling, newest + trend * (horizon + late))
        return {'mean': [float(v) for v in result.mean], 'trend': trend,
                'lower': [float(v) for v in result.lower],
                'recent_peak': recent_peak, 'seasonal_peak': seasonal_peak,
                'seasonal_down': seasonal_down,
                'seasonal_recent': seasonal_recent,
                'recurring_peak': recurring_peak,
                'recurring_down': recurring_down,
                'recent_bound': recent_bound, 'ceiling': ceiling,
                'ceiling_before': ceiling_before,
                'upper': [float(v) for v in upper], 'model': result.model,
                'raw_peak': raw_peak, 'peak': raw_peak + margin,
                'peak_down': raw_down + margin, 'bias': stats['bias'],
                'margin': margin, 'errors': stats['errors'],
                'margin_source': stats['source'], 'horizon_steps': horizon}

    @staticmethod
    def _smoothed_peak(values, steps):
        """Largest rolling median of ``steps`` consecutive finite
        ``values`` (their largest value for ``steps`` < 2; 0 if none)."""
        values = np.asarray(values, float)
        values = values[np.isfinite(values)]
        if not values.size:
            return 0.0
        if steps < 2 or values.size < steps:
            return float(values.max())
        windows = np.lib.stride_tricks.sliding_window_view(values, steps)
        return float(np.median(windows, axis=1).max())

    def _peaks(self, values):
        """``(sustained, single)``: the largest median of
        ``ceiling_steps`` consecutive ``values`` and the largest one."""
        return (self._smoothed_peak(values, self.opts.ceiling_steps),
                self._smoothed_peak(values, 1))

    def _ceiling_of(self, sustained, single):
        """The ceiling that ``(sustained, single)`` peaks make: the
        sustained peak, unless one sample rose above it by more than
        ``ceiling_noise`` (a burst, not noise): then that sample; times
        ``1 + ceiling_margin``."""
        opts = self.opts
        peak = sustained if single <= sustained * (
            1.0 + opts.ceiling_noise) else single
        return peak * (1.0 + opts.ceiling_margin)

    def _ceiling(self, instance, demand, now):
        """``(ceiling, ceiling before the newest step)``: the most the VM
        may be sized for while it is not saturated, from the largest
        demand it has shown since the watcher first saw it (and over
        ``ceiling_window`` of history before); ``inf`` while less than a
        ``hold_window`` of its history is known, or with
        ``ceiling_window`` 0."""
        opts = self.opts
        if opts.ceiling_window <= 0:
            return math.inf, math.inf
        instance_id = instance.instance_id
        known = self._ceilings.get(instance_id)
        if known is None:
            if opts.ceiling_window > opts.history_window:
                times, util = self._series(instance_id, 'cpu_util_pct', now,
                                           window_s=opts.ceiling_window)
                older = util / 100.0 * self._capacity(instance,
                                                      times + opts.step)
            else:
                older = demand
            older = np.asarray(older, float)
            before = self._peaks(older[:-1])
            newest = self._peaks(older)
            since = now - int(np.isfinite(older).sum()) * opts.step
            recorded = self._recorded_ceilings.pop(instance_id, None)
            if recorded is not None:
                # What the watcher knew before a restart (or the previous
                # leader): the ceiling never forgets a peak, so history
                # older than ``ceiling_window`` still counts.
                before = (max(before[0], recorded[0]),
                          max(before[1], recorded[1]))
                newest = (max(newest[0], recorded[0]),
                          max(newest[1], recorded[1]))
                since = min(since, recorded[2])
        else:
            # The steps since the last run (and enough before them for
            # one median) update it.
            before = known[:2]
            tail = self._peaks(demand[-(int(math.ceil(
                opts.interval / opts.step)) + opts.ceiling_steps):])
            newest = (max(before[0], tail[0]), max(before[1], tail[1]))
            since = known[2]
        self._ceilings[instance_id] = (newest[0], newest[1], since)
        if now - since < opts.hold_window:
            return math.inf, math.inf
        return self._ceiling_of(*newest), self._ceiling_of(*before)

    def _raise_ceiling(self, instance, forecast, saturated, now):
        """Keep the demand ceiling at or above what a saturated VM was
        taken to want.  A saturated sample reads the VM's capacity, not
        its demand (which is hidden above it): the policy sizes the VM
        for its hidden-demand factor times that capacity, and a ceiling
        learnt from the censored sample would cap the next shrink at the
        size that saturated (a regrowth within the cooldown: a flap)."""
        instance_id = instance.instance_id
        if saturated:
            total = float(instance.flavor.get('vcpus') or 0)
            if self._mode(instance) == 'horizontal':
                total *= self._members(instance_id)
            factor = getattr(self.policy, 'hidden_demand_factor', None)
            factor = float(factor()) if factor is not None else 1.0
            self._hidden[instance_id] = max(
                self._hidden.get(instance_id, 0.0), total * factor)
        hidden = self._hidden.get(instance_id, 0.0)
        forecast['hidden_floor'] = hidden
        if hidden > forecast['ceiling']:
            forecast['ceiling'] = hidden
        # The bound this run sizes on (what ``recent_bound`` holds for
        # the hold window): the growth bound within the ceiling, or the
        # hidden demand of a saturated VM.
        bound = min(forecast['peak'], forecast['ceiling'])
        if saturated:
            bound = max(bound, hidden)
        forecast['bound'] = bound
        self._bounds[instance_id].append((now, bound))

    def _yesterday_peak(self, instance, now, span_s, before_s=0.0):
        """The VM's largest demand in the ``span_s`` after this time one
        day earlier, or with ``before_s`` in the ``before_s`` before it
        (0 when unknown)."""
        step = self.opts.step
        start = now - SEASON_S
        series = self.history.query_series(
            names.INSTANCE_METRIC, names.FIELD_VALUE,
            {names.TAG_INSTANCE: instance.instance_id,
             names.TAG_METRIC: 'cpu_util_pct'},
            start - before_s + 1e-3, start + span_s + 1e-3, step, 'mean')
        times = np.asarray(series.times, float) + step
        util = np.array([np.nan if v is None else v for v in series.values],
                        float)
        if not np.isfinite(util).any():
            return 0.0
        demand = util / 100.0 * self._capacity(instance, times)
        return float(np.nanmax(demand))

    def _recurring_peaks(self, instance, now, spans):
        """For each of ``spans`` (seconds), the demand the VM reached in
        that span after this time of day (``recurring_window`` either
        side) on at least ``recurring_min_days`` of the last
        ``recurring_days`` days; 0 when off or when fewer days are
        known.  A saturated sample counts as the VM's vCPUs times the
        policy's hidden-demand factor."""
        opts = self.opts
        days, least = opts.recurring_days, opts.recurring_min_days
        if days <= 0 or least > days:
            return [0.0 for _span in spans]
        step = opts.step
        slack = opts.recurring_window
        # One read, from the earliest day's window to the end of
        # yesterday's longest one.
        start = now - days * SEASON_S - slack
        end = now - SEASON_S + slack + max(spans)
        series = self.history.query_series(
            names.INSTANCE_METRIC, names.FIELD_VALUE,
            {names.TAG_INSTANCE: instance.instance_id,
             names.TAG_METRIC: 'cpu_util_pct'},
            start + 1e-3, end + 1e-3, step, 'mean')
        times = np.asarray(series.times, float) + step
        util = np.array([np.nan if v is None else v
                         for v in series.values], float)
        demand, hidden = self._past_demand(instance, times, util)
        quiet = util < opts.near_saturation_pct * (1.0 - opts.ceiling_noise)
        found = []
        for span in spans:
            peaks = []
            for day in range(1, days + 1):
                low = now - day * SEASON_S - slack
                high = now - day * SEASON_S + span + slack
                inside = (times > low) & (times <= high + 1e-6)
                if not np.isfinite(demand[inside]).any():
                    continue
                # A saturated sample hid a burst from a quiet VM (not
                # the noise of one that runs near its capacity).
                shown = hidden if quiet[inside].any() else demand
                peaks.append(float(np.nanmax(shown[inside])))
            found.append(sorted(peaks, reverse=True)[least - 1]
                         if len(peaks) >= least else 0.0)
        return found

    def _past_demand(self, instance, times, util):
        """``(demand, hidden)``: busy vCPUs of the VM (its group's) in
        earlier buckets ending at ``times`` from its utilisation
        ``util``; in ``hidden`` a saturated sample counts as the
        capacity times the policy's hidden-demand factor."""
        capacity = self._capacity(instance, times)
        factor = getattr(self.policy, 'hidden_demand_factor', None)
        factor = float(factor()) if factor is not None else 1.0
        demand = util / 100.0 * capacity
        hidden = demand.copy()
        saturated = np.nan_to_num(util, nan=0.0) >= self.opts.saturation_pct
        hidden[saturated] = capacity[saturated] * factor
        return demand, hidden

    def _learn(self, instance, times, demand, now):
        """Compare matured predictions with the peak that followed."""
        queue = self._predictions[instance.instance_id]
        while queue and queue[0].matures_at <= now:
            made = queue.popleft()
            window = (times > made.made_at) & (times <= made.matures_at)
            values = demand[window]
            values = values[np.isfinite(values)]
            if not values.size:
                continue
            realised = float(values.max())
            self.errors.update(instance.instance_id, made.flavor,
                               made.vcpus, realised - made.raw_peak)
            learn = getattr(self.policy, 'learn', None)
            if learn is not None:
                truth = realised
                if self.foresight is not None:
                    truth = self.foresight(instance.instance_id,
                                           made.made_at, made.matures_at)
                learn(instance.instance_id, made.made_at, truth)

    def _breaches(self, instance, profile, now):
        step = self.opts.step
        horizon = max(1, int(math.ceil(self.lead_s['migrate'] / step)))
        found = {}
        for metric, target in qos.targets_for(profile).items():
            _times, values = self._series(instance.instance_id, metric, now,
                                          window_s=QOS_WINDOW_S)
            observed = [float(v) for v in values if np.isfinite(v)]
            if len(observed) < 2 or _far_from(observed, target):
                continue
            # The whole series, gaps in place: forecast_breach keeps
            # them there and starts the forecast now.
            found[metric] = forecast_mod.forecast_breach(
                self.analyzer, values, metric=metric, target=target,
                step_s=step, horizon_steps=horizon,
                forecaster=self.opts.forecaster)
        return found

    def _near_saturation(self, instance, recent, demand, forecast):
        """Does the newest sample, below ``saturation_pct`` but at or
        above ``near_saturation_pct``, show a saturated VM?  It does when
        it is a burst: a jump from well below ``near_saturation_pct``
        (by more than ``ceiling_noise``) past the most the VM has shown
        (by more than ``ceiling_noise``), or onto a flavor whose
        capacity that most already filled (it was saturated on it
        before, so its demand then was hidden).  Samples are noisy: a
        burst that met the VM's capacity reads some percent low as often
        as high, and sized on what it reads it is grown one rung per
        resize while it goes on."""
        opts = self.opts
        if opts.near_saturation_pct >= opts.saturation_pct or \
                recent.size < 2:
            return False
        latest, previous = float(recent[-1]), float(recent[-2])
        if latest < opts.near_saturation_pct or previous >= \
                opts.near_saturation_pct * (1.0 - opts.ceiling_noise):
            return False
        observed = demand[np.isfinite(demand)]
        if not observed.size or not math.isfinite(
                forecast['ceiling_before']):
            # No ceiling yet (a young VM): nothing says it is a burst.
            return False
        vcpus = float(instance.flavor.get('vcpus') or 0)
        if self._mode(instance) == 'horizontal':
            vcpus *= self._members(instance.instance_id)
        return bool(float(observed[-1]) > forecast['ceiling_before'] * (
            1.0 + opts.ceiling_noise) or self._filled(forecast, vcpus))

    def _filled(self, forecast, vcpus):
        """Did the most the VM has shown (its demand ceiling before this
        run) fill ``vcpus`` (at ``saturation_pct``)?  Then it was
        saturated at this size: its demand there was hidden."""
        before = forecast['ceiling_before']
        return math.isfinite(before) and before / (
            1.0 + self.opts.ceiling_margin) >= vcpus * (
                self.opts.saturation_pct / 100.0)

    def _burst(self, instance, demand, forecast):
        """The newest step's rise of the VM's demand (a horizontally
        scaled group's: all its members') when it is at least the
        policy's ``burst_rise`` share of its vCPUs (the start of a
        burst), else None.  A resized VM's rise counts only when the VM
        already filled this flavor within its demand ceiling's window
        (it hid demand at this size before): taken for a burst, it is
        resized (rebooted) to several times its size, which a VM whose
        demand merely stepped up within its flavor does not want."""
        share = getattr(self.policy, 'burst_rise', None)
        share = float(share()) if share is not None else 0.0
        if share <= 0:
            return None
        observed = np.asarray(demand[-2:], float)
        if observed.size < 2 or not np.isfinite(observed).all():
            return None
        total = float(instance.flavor.get('vcpus') or 0)
        horizontal = self._mode(instance) == 'horizontal'
        if horizontal:
            total *= self._members(instance.instance_id)
        rise = float(observed[-1] - observed[-2])
        if total <= 0 or rise < share * total:
            return None
        if not horizontal and not self._filled(forecast, total):
            return None
        return rise

    def _cap(self, instance, times, util, demand, now):
        """The resized VM's demand cap (None when none is known): the
        vCPUs ``C`` of a flavor it sat at, saturated (the median of
        ``ceiling_steps`` samples in a row on ``C`` vCPUs at
        ``saturation_pct`` or more) when, on larger flavors, at least
        ``cap_steps`` samples came within ``ceiling_noise`` of ``C`` or
        above, their median at most ``ceiling_margin`` above ``C`` and
        the sustained peak of all its samples there at most
        ``ceiling_noise`` above it: given more, it wanted ``C`` and no
        more.  The largest such ``C`` in the history read; kept while it
        sits on ``C`` (where the samples cannot show it) until, a
        ``ceiling_window`` after they last did, it reads saturated, and
        dropped once a larger flavor shows a sustained peak further
        above it."""
        opts = self.opts
        instance_id = instance.instance_id
        if opts.cap_steps <= 0 or self._mode(instance) == 'horizontal':
            self._caps.pop(instance_id, None)
            return None
        capacity = self._capacity(instance, times + opts.step)
        known = np.isfinite(demand) & np.isfinite(util)
        found = None
        for vcpus in sorted(self._sat_at(capacity, util), reverse=True):
            above = known & (capacity > vcpus + 1e-9)
            near = above & (demand >= vcpus * (1.0 - opts.ceiling_noise))
            if int(near.sum()) < opts.cap_steps:
                continue
            if float(np.median(demand[near])) > vcpus * (
                    1.0 + opts.ceiling_margin):
                continue
            if self._smoothed_peak(demand[above], opts.ceiling_steps) > \
                    vcpus * (1.0 + opts.ceiling_noise):
                continue
            found = float(vcpus)
            break
        if found is not None:
            self._caps[instance_id] = (found, now)
            return found
        kept = self._caps.get(instance_id)
        if kept is None:
            return None
        above = np.isfinite(demand) & (capacity > kept[0] + 1e-9)
        recent = util[np.isfinite(util)]
        stale = now - kept[1] > opts.ceiling_window and recent.size and \
            float(recent[-1]) >= opts.saturation_pct
        if stale or self._smoothed_peak(
                demand[above], opts.ceiling_steps) > kept[0] * (
                    1.0 + opts.ceiling_noise):
            # Not shown for a ceiling window and saturated (at its cap,
            # or hiding more demand: growing it shows which), or a
            # larger flavor shows more demand.
            del self._caps[instance_id]
            return None
        return kept[0]

    def _sat_at(self, capacity, util):
        """The capacities the VM sat at, saturated: ``ceiling_steps``
        samples in a row on one capacity whose median utilisation is at
        ``saturation_pct`` or more."""
        steps = max(1, self.opts.ceiling_steps)
        found = set()
        for i in range(len(util) - steps + 1):
            window = util[i:i + steps]
            if not np.isfinite(window).all() or \
                    np.ptp(capacity[i:i + steps]) > 1e-9:
                continue
            if float(np.median(window)) >= self.opts.saturation_pct:
                found.add(float(capacity[i]))
        return found

    def situation(self, instance, now):
        """The :class:`~.policies.base.Situation` of ``instance`` (None
        while it has too little history)."""
        times, util, demand = self._demand(instance, now)
        self._learn(instance, times, demand, now)
        forecast = self._forecast(instance, demand, now)
        if forecast is None:
            return None
        profile = self._profile(instance)
        recent = util[np.isfinite(util)]
        latest = float(recent[-1]) if recent.size else math.nan
        saturated = bool(recent.size
                         and latest >= self.opts.saturation_pct)
        cap = self._cap(instance, times, util, demand, now)
        at_cap = cap is not None and float(
            instance.flavor.get('vcpus') or 0) >= cap
        if cap is not None:
            forecast['cap'] = cap
        if at_cap:
            # A VM on a flavor that holds its demand cap shows no hidden
            # demand when it reads saturated: it is at its cap.
            if saturated:
                forecast['at_cap'] = latest
            saturated = False
        elif not saturated and self._near_saturation(instance, recent,
                                                     demand, forecast):
            # Within noise of saturation, a burst from well below: the
            # noise hid the last few percent of a VM at its capacity.
            saturated = True
            forecast['near_saturation'] = latest
        elif saturated:
            runs = int(np.argmin(np.append(
                recent[::-1] >= self.opts.saturation_pct, False)))
            vcpus = float(instance.flavor.get('vcpus') or 0)
            if self._mode(instance) == 'horizontal':
                vcpus *= self._members(instance.instance_id)
            shown = forecast['ceiling_before'] / (
                1.0 + self.opts.ceiling_margin)
            previous = float(recent[-2]) if recent.size > 1 else 0.0
            near = self.opts.saturation_pct * (
                1.0 - self.opts.ceiling_noise)
            if (vcpus >= shown and previous >= near
                    and runs < self.opts.ceiling_saturation_steps):
                # Saturated above every demand the VM has shown, by one
                # sample that follows a busy one: noise until the next
                # sample says the same (a jump from well below is not).
                saturated = False
                forecast['unconfirmed_saturation'] = runs
        if not saturated and not at_cap and \
                'unconfirmed_saturation' not in forecast:
            rise = self._burst(instance, demand, forecast)
            if rise is not None:
                # A steep rise within one step: the step's mean hides
                # how far the burst has gone since.
                saturated = True
                forecast['burst_rise'] = rise
        self._raise_ceiling(instance, forecast, saturated, now)
        foresight = None
        if self.foresight is not None:
            foresight = functools.partial(self.foresight,
                                          instance.instance_id)
        return policy_base.Situation(
            instance_id=instance.instance_id, profile=profile, now=now,
            step_s=self.opts.step, flavor=dict(instance.flavor),
            ladder=self.ladder, rung=self.ladder.index_of(instance.flavor),
            lead_s=self.lead_s, demand=[float(v) for v in demand],
            utilisation_pct=latest, saturated=saturated, forecast=forecast,
            breaches=self._breaches(instance, profile, now),
            targets=qos.targets_for(profile),
            mode=self._mode(instance),
            group_size=self._members(instance.instance_id),
            min_count=self.opts.min_count, max_count=self.opts.max_count,
            target_utilisation=self.opts.target_utilisation,
            foresight=foresight)

    def _stale(self, instance_id, now):
        """Why the VM's newest CPU utilisation sample is too old to
        decide on (none in the last ``STALE_STEPS`` steps), or None.  A
        VM without any sample in the history read is left to
        :meth:`situation` (too little history)."""
        step = self.opts.step
        times, util = self._series(instance_id, 'cpu_util_pct', now)
        found = np.flatnonzero(np.isfinite(util))
        if not found.size:
            return None
        # The newest step with a sample ends at least this long ago.
        age = now - (float(times[found[-1]]) + step)
        if age < (STALE_STEPS - 0.5) * step:
            self._warned.pop(('stale', instance_id), None)
            return None
        self._warn_once('stale', instance_id, None,
                        'Instance %s: no CPU utilisation sample for over '
                        '%.0f s; not scaling it until samples come again',
                        logsafe.clip(instance_id), age)
        return ('the newest CPU utilisation sample is over %.0f s old: '
                'nothing is decided until samples come again' % age)

    def _watch(self, instance, now):
        instance_id = instance.instance_id
        if instance_id in self.pending or (instance.status or 'ACTIVE') \
                .upper() != 'ACTIVE':
            return Step(instance_id, policy_base.Decision(
                policy_base.NO_ACTION, 'an action is under way (%s)'
                % instance.status))
        stale = self._stale(instance_id, now)
        if stale is not None:
            return Step(instance_id, policy_base.Decision(
                policy_base.NO_ACTION, stale))
        situation = self.situation(instance, now)
        if situation is None:
            return Step(instance_id, policy_base.Decision(
                policy_base.NO_ACTION, 'too little history yet'))
        forecast = situation.forecast
        prediction = _Prediction(
            now, now + self.lead_s[situation.mode], forecast['raw_peak'],
            instance.flavor.get('name') or '%g-vcpus' % situation.capacity,
            situation.capacity)
        self._predictions[instance_id].append(prediction)
        self._predicted[instance_id] = now
        self._write_forecast(instance_id, forecast, prediction)
        decision = self.policy.decide(situation)
        if decision.action == policy_base.NO_ACTION and \
                self.opts.steal_window > 0:
            _t, steal = self._series(instance_id, 'cpu_steal_pct', now,
                                     window_s=QOS_WINDOW_S)
            found = steal_mod.detect_steal(
                steal, step_s=self.opts.step,
                threshold_pct=self.opts.steal_threshold_pct,
                window_s=self.opts.steal_window)
            if found is not None:
                decision = found
        if decision.action == policy_base.NO_ACTION:
            self.guard.check(instance_id, decision, now)
            return Step(instance_id, decision)
        return self._carry_out(instance, situation, decision, now)

    def _carry_out(self, instance, situation, decision, now):
        instance_id = instance.instance_id
        decision_id = records.new_id()
        refusal = self.guard.check(instance_id, decision, now,
                                   source_host=instance.host)
        host = None
        siblings, count = [], 1
        if refusal is None:
            refusal = self._limits(instance, situation, decision)
        if refusal is None and decision.action == 'live_migrate':
            host, refusal = self._target_host(instance, situation,
                                              decision)
            if refusal is None and host is not None:
                decision.host = host
                refusal = self.guard.check(instance_id, decision, now)
        size = situation.group_size
        by_webhook = self.actuator.scales_by_webhook(decision.action)
        if refusal is None and decision.action == 'scale_out':
            count = max(1, min((decision.target_count or size + 1) - size,
                               self.opts.max_count - size))
        if refusal is None and decision.action == 'scale_in':
            group = self.siblings.get(instance_id) or []
            count = max(1, min(size - (decision.target_count or size - 1),
                               size - self.opts.min_count))
            if by_webhook:
                pass            # the orchestrator picks which members go
            elif not group:
                refusal = 'no sibling the watcher booted to delete'
            else:
                siblings = group[-count:]
        # A ranking or a slow run may have outlasted the leader lock.
        self._check_leading()
        record = {
            'decision_id': decision_id, 'instance': instance_id,
            'action': decision.action, 'at': now,
            'policy': type(self.policy).__name__,
            'dry_run': self.actuator.dry_run,
            'decision': decision.to_dict(),
            'inputs': {
                'flavor': situation.flavor, 'host': instance.host,
                'profile': situation.profile,
                'utilisation_pct': situation.utilisation_pct,
                'saturated': situation.saturated,
                'forecast': {k: v for k, v in situation.forecast.items()
                             if k not in ('mean', 'lower', 'upper')},
                'breaches': {m: b.describe()
                             for m, b in situation.breaches.items()},
                'group_size': situation.group_size},
        }
        if refusal is not None:
            record.update(outcome='suppressed', guard=refusal)
            self.counters['suppressed'] += 1
            self._write(record, now)
            return Step(instance_id, decision, 'suppressed', refusal, record)
        lead = self._lead_of(decision.action)
        outcome, pending, detail, answer = self.actuator.start(
            instance, decision, now=now, lead_s=lead,
            decision_id=decision_id, host=host, siblings=siblings,
            count=count, group_size=size)
        record.update(outcome=outcome, detail=detail, target_host=host,
                      siblings=pending.siblings if pending else siblings)
        if by_webhook and not self.actuator.dry_run:
            # The orchestrator scales the group: no sibling of the
            # watcher's is booted or deleted, and what is known is the
            # webhook's answer (None: it gave none).
            record.update(siblings=[], webhook=answer)
            if outcome == 'started':
                record['group_size'] = self._webhook_scaled(
                    instance_id, decision.action, size, count, answer, now)
        if decision.target_rung is not None:
            record['target_flavor'] = self.ladder.rungs[
                decision.target_rung].to_flavor()
        if outcome in ('started', 'dry_run'):
            flap = self.guard.is_flap(instance_id, decision.direction, now)
            if flap:
                self.counters['flaps'] += 1
                LOG.warning('%s: %s reverses its last scaling within the '
                            'cooldown (a flap)', instance_id,
                            decision.action)
            self.counters['actions'] += 1
            if pending is not None:
                # Counted back out should it fail (_after_failed).
                pending.counted, pending.flap = True, flap
        # A failed start is an attempt: the guard counts it as a watcher
        # restored from this record will (see guard.Taken.failed).
        taken = guard_mod.Taken(
            instance_id, decision.action, now, decision.direction,
            source_host=instance.host, target_host=host,
            failed=outcome == 'failed')
        self.guard.record(taken)
        record_taken = getattr(self.policy, 'record_taken', None)
        if record_taken is not None:
            # What the policy keeps of its actions is what a restarted
            # watcher hands it back from this record (restore).
            record_taken(taken)
        if pending is not None:
            self.pending[instance_id] = pending
            self.guard.in_flight.add(instance_id)
        self._write(record, now)
        return Step(instance_id, decision, outcome, detail, record)

    def _webhook_scaled(self, instance_id, action, size, count, answer,
                        now):
        """Take the group of ``instance_id`` to have, after the scale
        webhook accepted ``action`` (``count`` members from ``size``),
        the size its answer states, else the one asked for; returns it.
        A new member counts once it has had ``boot_duration`` to boot, a
        member removed at once (as the watcher's own siblings do)."""
        stated = (answer or {}).get('group_size')
        if stated is not None:
            after = int(stated)
        else:
            after = size + count if action == 'scale_out' else size - count
        if after != size + (count if action == 'scale_out' else -count):
            LOG.info('The scale webhook says the group of %s has %d '
                     'members', instance_id, after)
        self._webhook_sizes[instance_id] = after
        effective = now + (self.opts.boot_duration
                           if action == 'scale_out' else 0.0)
        self._member_counts.setdefault(instance_id, []).append(
            (effective, after))
        return after

    def _limits(self, instance, situation, decision):
        """The ladder and quota limits (None: within them)."""
        if decision.action in ('resize_up', 'resize_down'):
            if situation.rung is None or decision.target_rung is None:
                return 'the flavor is not on the ladder'
            if not 0 <= decision.target_rung < len(self.ladder):
                return 'rung %s is off the ladder' % decision.target_rung
            if decision.target_rung == situation.rung:
                return 'already on that rung'
            if decision.action == 'resize_down':
                refusal = self._disk_floor(instance, situation, decision)
                if refusal is not None:
                    return refusal
        if decision.action == 'scale_out' and \
                situation.group_size >= self.opts.max_count:
            return 'the group has its maximum %d members' % (
                self.opts.max_count)
        if decision.action == 'scale_in' and \
                situation.group_size <= self.opts.min_count:
            return 'the group has its minimum %d members' % (
                self.opts.min_count)
        quota = self.opts.quota_vcpus
        if quota and decision.action in ('resize_up', 'scale_out'):
            added = situation.capacity * max(1, (
                decision.target_count or situation.group_size + 1)
                - situation.group_size)
            if decision.action == 'resize_up':
                added = (self.ladder.capacity(decision.target_rung)
                         - situation.capacity)
            held = self._project_vcpus(instance.project_id)
            if held + added > quota:
                return 'quota: %g vCPUs held + %g > %d' % (held, added,
                                                           quota)
        if decision.action == 'scale_out' and not self.actuator.webhook:
            # Last: it may ask the cloud (a VM booted from a volume: was
            # its root volume made from an image?).
            return self.driver.why_no_sibling(instance)
        return None

    def _disk_floor(self, instance, situation, decision):
        """Keep a shrink of a VM not booted from a volume on rungs whose
        root disk is not smaller than its own (Nova refuses to shrink the
        disk of a VM booted from an image): the smallest such rung
        between the target and the VM's, or the refusal when there is
        none.  Rungs without a disk size, and VMs booted from a volume,
        are not limited; a VM the cloud says nothing of is taken as
        booted from an image."""
        if instance.volume_backed:
            return None
        try:
            disk = int(instance.flavor.get('disk_gb') or 0)
        except (TypeError, ValueError):
            return None
        rungs = self.ladder.rungs
        if disk <= 0 or not 0 < rungs[decision.target_rung].disk_gb < disk:
            return None
        for index in range(decision.target_rung + 1, situation.rung):
            if not 0 < rungs[index].disk_gb < disk:
                decision.reason = (
                    '%s; %s, not %s: the root disk (%d GB) cannot shrink'
                    % (decision.reason, rungs[index].name,
                       rungs[decision.target_rung].name, disk))
                decision.target_rung = index
                return None
        return ('the root disk (%d GB) cannot shrink to %s\'s %d GB: %s'
                % (disk, rungs[decision.target_rung].name,
                   rungs[decision.target_rung].disk_gb,
                   'the VM did not boot from a volume'
                   if instance.volume_backed is False else
                   'the cloud does not say the VM boots from a volume'))

    def _project_vcpus(self, project_id):
        """vCPUs the project's watched VMs and their groups hold, or will
        once the actions under way are done: Nova shows a VM's old
        flavor until its resize is, and a booting sibling joins its
        group when it is active."""
        held = 0.0
        for instance in self.watched():
            if instance.project_id != project_id:
                continue
            instance_id = instance.instance_id
            vcpus = float(instance.flavor.get('vcpus') or 0)
            group = self.siblings.get(instance_id, [])
            members = self._members(instance_id)
            pending = self.pending.get(instance_id)
            if pending is not None and pending.target_flavor:
                vcpus = max(vcpus, float(
                    pending.target_flavor.get('vcpus') or 0))
            if pending is not None and pending.action == 'scale_out':
                members += len(set(pending.siblings) - set(group))
            held += vcpus * members
        return held

    def _target_host(self, instance, situation, decision):
        """``(host, refusal)``: the best host to migrate to, or why
        there is none."""
        if self.ranker is None:
            return None, None
        try:
            hosts = self.driver.list_hosts()
        except cloud_base.CloudError as exc:
            return None, 'cannot list hosts: %s' % exc
        candidates = [h for h in hosts if h.host != instance.host]
        if not candidates:
            return None, 'no other host'
        try:
            scores = self.ranker(instance, situation.profile, candidates)
        except Exception as exc:
            LOG.warning('Ranking hosts for %s failed: %s',
                        instance.instance_id, exc)
            return None, 'ranking failed: %s' % exc
        facts = self.driver.host_facts([h.host for h in candidates])
        zone = next((h.availability_zone for h in hosts
                     if h.host == instance.host), None)
        choice = selection.find_best_server(
            candidates, scores, flavor=situation.flavor,
            current_host=instance.host, facts=facts,
            costs=self.host_costs,
            max_cost=self.opts.max_host_cost, availability_zone=zone)
        if choice.host is None:
            return None, choice.describe()
        return choice.host, None

    def adopt_sibling(self, instance_id, sibling_id):
        """Count ``sibling_id`` as a member of ``instance_id``'s group that
        the watcher may delete when scaling in (a sibling booted before
        the watcher started, or by an operator)."""
        if sibling_id not in self.siblings[instance_id]:
            self.siblings[instance_id].append(sibling_id)

    # -- records and leadership ---------------------------------------------
    def _write_forecast(self, instance_id, forecast, prediction):
        """The ``demand_forecast`` point of this run's ``prediction``:
        the forecast at the lead time, stamped at the time it is for,
        with the state the next runs decide on (:meth:`restore` reads it
        back)."""
        now = prediction.made_at
        lead_s = prediction.matures_at - now
        step = max(1, min(int(forecast['horizon_steps']),
                          len(forecast['mean']))) - 1
        fields = {'mean': forecast['mean'][step],
                  'lower': forecast['lower'][step],
                  'upper': forecast['upper'][step],
                  'peak': forecast['peak'], 'lead_s': float(lead_s),
                  'raw_peak': prediction.raw_peak,
                  'vcpus': prediction.vcpus,
                  'hidden_floor': forecast.get('hidden_floor'),
                  'bound': forecast.get('bound')}
        if instance_id in self._webhook_sizes:
            # What a restart takes back once no decision record of the
            # group's webhook calls is left in the window it reads.
            fields['group_size'] = self._webhook_sizes[instance_id]
        cap = self._caps.get(instance_id)
        if cap is not None:
            fields.update(cap=cap[0], cap_shown=cap[1])
        known = self._ceilings.get(instance_id)
        if known is not None:
            fields.update(ceiling_sustained=known[0],
                          ceiling_single=known[1], ceiling_since=known[2])
        fields = {k: float(v) for k, v in fields.items()
                  if v is not None and math.isfinite(v)}
        fields['flavor'] = str(prediction.flavor)
        try:
            self.history.write([history_base.Point(
                names.DEMAND_FORECAST,
                {names.TAG_INSTANCE: instance_id,
                 names.TAG_MODEL: str(forecast.get('model') or 'unknown')},
                fields, float(now + lead_s))])
        except Exception:
            LOG.exception('Writing the forecast of %s failed', instance_id)

    def _write(self, record, now):
        exporter.decision_recorded(record, type(self.policy).__name__)
        try:
            self.history.write([records.decision_point(record, now)])
        except Exception:
            LOG.exception('Writing the decision record of %s failed',
                          record.get('instance'))

    def restore(self, now):
        """Rebuild the guard, the actions under way, the siblings and each
        VM's vCPU and member-count timelines from the history's decision
        records: a new leader takes over what the previous one did, and a
        watcher that restarts over what it did before it stopped.

        The guard and the actions under way come from the guard's longest
        window; the siblings and the timelines (what converts a VM's past
        utilisation samples to busy vCPUs) from the longest window the
        watcher reads history over.  Each VM's hidden-demand floor, the
        peaks its demand ceiling was learnt from and the growth bounds of
        its hold window come back from the ``demand_forecast`` points of
        that window (:meth:`_restore_demand_state`); the ceiling is read
        again from history on the next run and keeps the recorded peaks
        too.

        Returns False when the records cannot be read: the watcher then
        does nothing this run (it would repeat actions within the
        guard's limits and leave those under way unconfirmed) and reads
        them again on the next."""
        opts = self.opts
        start = now - max(opts.cycle_window, 3600.0,
                          opts.immunity_window, opts.cooldown)
        since = min(start, now - max(opts.ceiling_window,
                                     opts.history_window))
        self._restored = False
        try:
            self.history.flush(timeout=10.0)
            found = records.read(self.history, since, now + 1e-3)
        except Exception:
            LOG.exception('Reading decision records failed; acting on '
                          'nothing until they can be read (next run)')
            return False
        try:
            older = records.read_actions(self.history, since)
        except Exception:
            LOG.exception('Reading the decision records of actions before '
                          '%s failed; actions and deletions not seen '
                          'through before it are not carried on', since)
            older = []
        self._restored = True
        by_id = collections.OrderedDict()
        for record in found:
            by_id.setdefault(record['decision_id'], []).append(record)
        taken, pending, discarded = [], {}, set()
        siblings = collections.defaultdict(list, {
            k: list(v) for k, v in self.siblings.items()})
        changes = collections.defaultdict(list)
        webhook_sizes = collections.defaultdict(list)
        for group in by_id.values():
            first = group[0]
            outcomes = [r['outcome'] for r in group]
            if 'suppressed' in outcomes:
                continue
            if first['outcome'] == 'started' and _by_webhook(first):
                webhook_sizes[first['instance']].append(first)
            direction = policy_base.Decision(
                first['action'], '').direction
            ended = [r for r in group if r['outcome'] in ('done', 'failed')]
            # (A scale-out some of whose siblings came up grew the group:
            # a scaling, however an older watcher recorded it.)
            failed_later = first['outcome'] == 'started' and any(
                r['outcome'] == 'failed' and not r.get('joined')
                for r in ended)
            for r in ended:
                if first['action'] == 'scale_out':
                    # Siblings that failed, their deletion asked: no
                    # members.
                    discarded.update(r.get('discarded') or [])
            if first['at'] >= start:
                taken.append(guard_mod.Taken(
                    first['instance'], first['action'], first['at'],
                    direction,
                    source_host=(first.get('inputs') or {}).get('host'),
                    target_host=first.get('target_host'),
                    failed=first['outcome'] == 'failed' or failed_later,
                    failed_later=failed_later))
                if first['outcome'] == 'started' and not ended and \
                        not _by_webhook(first):
                    pending[first['instance']] = self._pending_of(
                        first, direction)
            for r in ended:
                if first['action'] == 'scale_out' and 'joined' in r:
                    # Its siblings that came up joined the group (those
                    # that failed were deleted), also when an older
                    # watcher recorded it failed.
                    r = dict(r, siblings=r['joined'])
                    if not r['siblings']:
                        continue
                elif r['outcome'] != 'done':
                    continue
                changes[first['instance']].append((first, r))
                members = siblings[first['instance']]
                for sibling in r.get('siblings') or []:
                    if first['action'] == 'scale_out':
                        if sibling not in members:
                            members.append(sibling)
                    elif sibling in members:
                        members.remove(sibling)
        self.guard.restore(taken)
        restore_policy = getattr(self.policy, 'restore', None)
        if restore_policy is not None:
            # A policy plugin need not derive from ScalingPolicy.
            restore_policy(list(taken))
        for first in self._unfinished(older, found, start):
            # Started before the guard's window and never seen end (the
            # watcher was stopped meanwhile): followed all the same, to
            # its end (a resize waiting for its confirmation gets it).
            pending.setdefault(first['instance'], self._pending_of(
                first, policy_base.Decision(first['action'], '').direction))
        self.pending = pending
        self.guard.in_flight = set(pending)
        for members in siblings.values():
            members[:] = [s for s in members if s not in discarded]
        self.siblings = siblings
        self._discarded |= discarded
        self._restore_timelines(changes)
        self._ceilings.clear()
        self._restore_demand_state(found, since, now)
        self._restore_webhook_sizes(webhook_sizes)
        self._resume_deletions(*self._deletions_asked(older, found))
        LOG.info('Restored %d earlier actions (%d under way) and %d '
                 'groups from the decision records', len(taken),
                 len(pending), sum(1 for g in siblings.values() if g))
        return True

    def _pending_of(self, first, direction):
        """The :class:`~.actuator.Pending` of the action whose first
        record (outcome ``started``) is ``first``, with the deadline the
        watcher that started it gave it."""
        return actuator_mod.Pending(
            decision_id=first['decision_id'],
            instance_id=first['instance'],
            action=first['action'], started_at=first['at'],
            deadline=first['at'] + actuator_mod.TIMEOUT_LEADS
            * max(self._lead_of(first['action']), 60.0),
            source_host=(first.get('inputs') or {}).get('host'),
            target_host=first.get('target_host'),
            target_flavor=first.get('target_flavor'),
            siblings=list(first.get('siblings') or []),
            direction=direction)

    @staticmethod
    def _unfinished(older, found, start):
        """The first records of the actions that started before
        ``start`` (in ``older``, the records before the window, or in
        ``found``, the window's) and have no end record, none given to
        the scale webhook; oldest first."""
        by_id = collections.OrderedDict()
        for record in older + found:
            by_id.setdefault(record['decision_id'], []).append(record)
        out = []
        for group in by_id.values():
            first = group[0]
            if first['outcome'] != 'started' or first['at'] >= start or \
                    _by_webhook(first) or any(
                        r['outcome'] in ('done', 'failed')
                        for r in group[1:]):
                continue
            out.append(first)
        return out

    def _deletions_asked(self, older, found):
        """``(deleting, under_way)``: the siblings whose deletion the
        decision records show asked and not seen through, however long
        ago: those of each scale-in that started and did not end
        ``done``, and those each scale-out discarded (went to ERROR, or
        still booting at its deadline); and those of each scale-in whose
        start failed, whose deletion Nova may have taken (the driver
        carries on only those it finds being deleted).
        The records ``found`` (the window :meth:`restore` read) and
        ``older``, the actions' before it (:func:`records.read_actions`,
        the newest :data:`records.MAX_ACTION_RECORDS`, as far back as the
        history keeps them): a deletion stuck for longer than the window
        is carried on all the same.  None in dry-run, which deletes
        nothing."""
        if self.actuator.dry_run:
            return [], []
        by_id = collections.OrderedDict()
        for record in [r for r in older + found if r['action'] in (
                'scale_in', 'scale_out')]:
            by_id.setdefault(record['decision_id'], []).append(record)
        deleting, under_way = [], []
        for group in by_id.values():
            first = group[0]
            outcomes = [r['outcome'] for r in group]
            if 'suppressed' in outcomes or _by_webhook(first):
                continue
            if first['action'] == 'scale_in':
                if first['outcome'] == 'started' and 'done' not in \
                        outcomes[1:]:
                    # Deletions asked that may not have completed: the
                    # driver carries them on as it did before the
                    # restart.
                    deleting.extend(first.get('siblings') or [])
                elif first['outcome'] == 'failed':
                    # Its start failed: Nova may have taken the DELETE
                    # and refused what followed (a deferred delete's
                    # force-delete), or refused the DELETE itself.  The
                    # driver carries on only one it finds under way.
                    under_way.extend(first.get('siblings') or [])
            else:
                for r in group:
                    if r['outcome'] in ('done', 'failed'):
                        deleting.extend(r.get('discarded') or [])
        return deleting, under_way

    def _resume_deletions(self, siblings, under_way=()):
        """Hand the driver the deletions of ``siblings`` that the decision
        records hold (scale-ins under way, or that ended without seeing
        them gone), and of ``under_way`` (scale-ins whose start failed),
        as :meth:`~shadow_service.clouds.base.CloudDriver.
        resume_deletions`: a restarted watcher (or a new leader) carries
        them on as the one before did.  Not in dry-run, which deletes
        nothing."""
        if self.actuator.dry_run:
            return
        for ids, only_under_way in ((siblings, False), (under_way, True)):
            ids = list(dict.fromkeys(ids))
            if not ids:
                continue
            try:
                if only_under_way:
                    try:
                        self.driver.resume_deletions(ids,
                                                     under_way_only=True)
                    except TypeError:
                        # A driver that cannot tell: left as they are.
                        LOG.info('The cloud driver carries on no deletion '
                                 'of siblings a failed scale-in asked (%s)',
                                 ', '.join(ids))
                else:
                    self.driver.resume_deletions(ids)
            except cloud_base.CloudError as exc:
                LOG.warning('Carrying on the deletions of siblings %s '
                            'failed: %s', ', '.join(ids), exc)

    def _restore_webhook_sizes(self, calls):
        """Each webhook-scaled group's size and member-count timeline
        from its accepted webhook calls ``{instance: [first record]}``
        (oldest first), as :meth:`_webhook_scaled` keeps them.  A record
        written before it held ``group_size`` counts the size its
        decision asked for, within ``min_count`` and ``max_count``.
        (A group with no call in the records' window keeps the size its
        newest ``demand_forecast`` point holds.)"""
        opts = self.opts
        for instance_id, firsts in calls.items():
            timeline = []
            for first in firsts:
                after = first.get('group_size')
                if after is None:
                    asked = (first.get('decision') or {}).get(
                        'target_count')
                    if not asked:
                        continue
                    after = max(opts.min_count, min(opts.max_count,
                                                    int(asked)))
                if not timeline:
                    before = (first.get('inputs') or {}).get('group_size')
                    timeline.append((-math.inf, int(before or 1)))
                timeline.append((first['at'] + (
                    opts.boot_duration if first['action'] == 'scale_out'
                    else 0.0), int(after)))
            if timeline:
                self._webhook_sizes[instance_id] = timeline[-1][1]
                self._member_counts[instance_id] = timeline

    def _restore_demand_state(self, found, since, now):
        """Each VM's hidden-demand floor, demand ceiling peaks, demand
        cap and the growth bounds of its hold window, as the last runs
        before a restart (or the previous leader) left them, from the
        ``demand_forecast`` points written since ``since`` and the
        decision records ``found`` (whose forecast inputs carry the
        hidden-demand floor of the runs that decided something)."""
        hidden, ceilings, caps = {}, {}, {}
        bounds = collections.defaultdict(list)
        predictions = collections.defaultdict(list)
        for record in found:
            floor = ((record.get('inputs') or {}).get('forecast')
                     or {}).get('hidden_floor')
            if floor:
                instance_id = record['instance']
                hidden[instance_id] = max(hidden.get(instance_id, 0.0),
                                          float(floor))
        try:
            points = self.history.query_points(
                names.DEMAND_FORECAST, start=since,
                end=now + max(self.lead_s.values()) + 1e-3)
        except Exception:
            LOG.exception('Reading the demand forecasts failed; the '
                          'demand ceilings are read from history alone')
            points = []
        held_since = now - self.opts.hold_window
        sizes = {}
        # Predictions the next run can still compare with the demand that
        # followed (it reads ``history_window``).
        learnt_since = now - self.opts.history_window
        for point in points:
            instance_id = point.tags.get(names.TAG_INSTANCE)
            fields = point.fields
            if not instance_id:
                continue
            if fields.get('hidden_floor'):
                hidden[instance_id] = max(hidden.get(instance_id, 0.0),
                                          float(fields['hidden_floor']))
            made = point.time - float(fields.get('lead_s') or 0.0)
            if made <= now and made >= caps.get(instance_id, (
                    None, None, -math.inf))[2]:
                # The newest run's cap (none: the VM had none then).
                caps[instance_id] = (fields.get('cap'),
                                     fields.get('cap_shown'), made)
            if 'ceiling_sustained' in fields:
                known = ceilings.get(instance_id)
                found_now = (float(fields['ceiling_sustained']),
                             float(fields['ceiling_single']),
                             float(fields['ceiling_since']))
                ceilings[instance_id] = found_now if known is None else (
                    max(known[0], found_now[0]),
                    max(known[1], found_now[1]),
                    min(known[2], found_now[2]))
            made_at = point.time - float(fields.get('lead_s') or 0.0)
            if fields.get('group_size') and made_at <= now and \
                    made_at >= sizes.get(instance_id, (-math.inf,))[0]:
                sizes[instance_id] = (made_at, int(fields['group_size']))
            if 'bound' in fields and held_since < made_at <= now:
                bounds[instance_id].append((made_at, float(fields['bound'])))
            if 'raw_peak' in fields and learnt_since < made_at < now and \
                    made_at > self._predicted.get(instance_id, -math.inf):
                predictions[instance_id].append(_Prediction(
                    made_at, point.time, float(fields['raw_peak']),
                    str(fields.get('flavor') or ''),
                    float(fields.get('vcpus') or 0.0)))
        for instance_id, (cap, shown, _made) in caps.items():
            if cap and instance_id not in self._caps:
                self._caps[instance_id] = (float(cap), float(shown))
        for instance_id, floor in hidden.items():
            self._hidden[instance_id] = max(
                self._hidden.get(instance_id, 0.0), floor)
        self._recorded_ceilings = ceilings
        if self.actuator.webhook:
            for instance_id, (_made_at, size) in sizes.items():
                # Overridden by the group's webhook calls in the records.
                self._webhook_sizes[instance_id] = size
        for instance_id, recorded in bounds.items():
            merged = set(self._bounds[instance_id]) | set(recorded)
            self._bounds[instance_id] = collections.deque(sorted(merged))
        for instance_id, recorded in predictions.items():
            queue = self._predictions[instance_id]
            self._predictions[instance_id] = collections.deque(sorted(
                list(queue) + recorded, key=lambda p: p.made_at))

    def _restore_timelines(self, changes):
        """Each VM's vCPU and member-count timelines (see
        :meth:`_timeline_at`) from its finished actions, ``{instance:
        [(started record, done record)]}``, oldest first, as
        :meth:`_after_done` builds them while it watches."""
        opts = self.opts
        vcpus, counts = {}, {}
        for instance_id, done in changes.items():
            sizes, steps = [], []
            for first, record in done:
                if first.get('target_flavor'):
                    before = ((first.get('inputs') or {}).get('flavor')
                              or {}).get('vcpus')
                    if not sizes and before:
                        sizes.append((-math.inf, float(before)))
                    sizes.append((min(record['at'], first['at']
                                      + opts.resize_duration),
                                  float(first['target_flavor']['vcpus'])))
                elif first['action'] in ('scale_out', 'scale_in'):
                    moved = len(record.get('siblings') or [])
                    if first['action'] == 'scale_out':
                        steps.append((min(record['at'], first['at']
                                          + opts.boot_duration), moved))
                    else:
                        steps.append((first['at'], -moved))
            if sizes:
                vcpus[instance_id] = sorted(sizes)
            if steps:
                # Counted back from the group's size now.
                steps.sort()
                size = self._members(instance_id)
                timeline = []
                for at, moved in reversed(steps):
                    timeline.append((at, size))
                    size -= moved
                timeline.append((-math.inf, max(size, 1)))
                counts[instance_id] = timeline[::-1]
        self._vcpus = vcpus
        self._member_counts = counts
