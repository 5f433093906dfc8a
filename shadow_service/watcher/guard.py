"""The watcher's safety limits: what stands between a decision and an act.

:class:`Guard` keeps, per instance, the actions taken and the decisions
proposed, and refuses a decision (saying which limit and why) when it
would break one of:

immunity window
    no action at all on a VM within ``immunity_window`` seconds of its
    last one (it is still settling: the new flavor or host has not yet
    shown what it does), or of its last attempt that failed (the cloud
    or the scale webhook refused it, or it failed after it started: it
    is asked again only after the window);
cooldown
    no shrink (resize down, scale in) within ``cooldown`` seconds of any
    scaling action on the VM; a growth is never delayed by it, a
    shortage costing more than a surplus;
hysteresis
    a shrink only after ``hysteresis_runs`` consecutive runs proposed it
    (growths act at once);
flap guard
    a growth less than ``cooldown`` after a shrink is a flap (counted,
    :meth:`Guard.is_flap`); each flap of the VM within ``cycle_window``
    multiplies its shrink cooldown and hysteresis (two flaps: three
    times), so a VM whose shrinks get undone stops shrinking soon;
rate limit
    at most ``max_actions_per_hour`` actions over all VMs in any hour,
    and no more than ``max_concurrent_actions`` under way at once;
cycle breaker
    no live migration back to a host the VM left within
    ``cycle_window`` seconds, and no shrink that would be the
    ``max_reversals``-th change of direction of the VM within it.

An action that failed (:attr:`Taken.failed`: its start failed, or it
failed after it started, :meth:`Guard.failed`) changed nothing: it
counts toward the immunity window and the rate limits, as an attempt,
but is no scaling for the cooldown, the flap guard or the cycle breaker.

The guard's state is rebuilt from the history's ``scaling_decision``
records when a watcher becomes the leader (:meth:`Guard.restore`), so a
new leader respects what the old one did, and a restarted watcher what
it did itself, failed actions included.  Pure: no I/O.
"""

import collections
import dataclasses

from shadow_service.watcher.policies import base


@dataclasses.dataclass
class Limits:
    """The guard's settings (``[watcher]`` options of the same names)."""

    immunity_window: float = 600.0
    cooldown: float = 1800.0
    hysteresis_runs: int = 2
    max_actions_per_hour: int = 60
    max_concurrent_actions: int = 10
    cycle_window: float = 6 * 3600.0
    max_reversals: int = 2

    @classmethod
    def from_conf(cls, opts):
        return cls(**{f.name: getattr(opts, f.name)
                      for f in dataclasses.fields(cls)})


@dataclasses.dataclass
class Taken:
    """One action the watcher took (or, in dry-run, would have)."""

    instance_id: str
    action: str
    at: float
    direction: int
    source_host: str = None
    target_host: str = None
    #: It failed (the cloud or the webhook refused its start, or it
    #: failed after it started: a resize that went to ERROR, a
    #: scale-out none of whose siblings came up, one that timed out):
    #: an attempt, not a change of the VM.
    #: Set by :meth:`Guard.failed` when it fails after it started.
    failed: bool = False
    #: It failed after it started (not at its start).
    failed_later: bool = False


def _changes(history):
    """The scalings and moves in ``history`` (a VM's :class:`Taken`),
    failed ones left out."""
    return [t for t in history if not t.failed]


class Guard:
    """Decides whether a decision may be carried out now."""

    def __init__(self, limits=None):
        self.limits = limits or Limits()
        self._taken = collections.defaultdict(list)     # instance -> Taken
        self._all = collections.deque()                 # every Taken
        self._proposed = {}                 # instance -> (action, runs)
        self.in_flight = set()              # instances with an action on

    # -- bookkeeping -------------------------------------------------------
    def record(self, taken):
        self._taken[taken.instance_id].append(taken)
        self._all.append(taken)

    def restore(self, taken_list):
        """Forget everything and replay ``taken_list`` (oldest first)."""
        self._taken.clear()
        self._all.clear()
        self._proposed.clear()
        for taken in sorted(taken_list, key=lambda t: t.at):
            self.record(taken)

    def failed(self, instance_id, at):
        """The action taken on ``instance_id`` at ``at``, which started,
        has failed: it stays an attempt (the immunity window, the rate
        limit) and is no longer a scaling.  The :class:`Taken` is changed
        in place: whoever holds it (the policy, told of it by
        ``record_taken``) sees it failed too.  Returns it (None when the
        guard holds no such action)."""
        for taken in reversed(self._taken.get(instance_id, [])):
            if taken.at == at:
                taken.failed = taken.failed_later = True
                return taken
        return None

    def forget(self, instance_id):
        """Drop what the guard holds of one VM (not its actions' share
        of the rate limit)."""
        self._taken.pop(instance_id, None)
        self._proposed.pop(instance_id, None)

    def last(self, instance_id):
        taken = self._taken.get(instance_id)
        return taken[-1] if taken else None

    def is_flap(self, instance_id, direction, now):
        """Would an action of ``direction`` at ``now`` reverse the VM's
        last scaling less than ``cooldown`` seconds after it (a flap)?
        The cooldown refuses a shrink soon after a growth; a growth soon
        after a shrink is never refused (a shortage costs more), so the
        policies' shrinks must hold over the cooldown, and this counts
        the ones that did not."""
        if not direction:
            return False
        scaled = [t for t in _changes(self._taken.get(instance_id, []))
                  if t.direction]
        return bool(scaled and scaled[-1].direction != direction
                    and now - scaled[-1].at < self.limits.cooldown)

    def _propose(self, instance_id, decision):
        action, runs = self._proposed.get(instance_id, (None, 0))
        runs = runs + 1 if action == decision.action else 1
        self._proposed[instance_id] = (decision.action, runs)
        return runs

    # -- the check ---------------------------------------------------------
    def check(self, instance_id, decision, now, source_host=None):
        """``None`` if ``decision`` may be carried out at ``now``, else the
        reason it may not (naming the limit)."""
        if decision.action == base.NO_ACTION:
            self._proposed.pop(instance_id, None)
            return None
        runs = self._propose(instance_id, decision)
        limits = self.limits
        history = self._taken.get(instance_id, [])
        last = history[-1] if history else None
        if instance_id in self.in_flight:
            return 'an action on this VM is still under way'
        if last is not None and now - last.at < limits.immunity_window:
            return ('immunity window: last action (%s%s) %.0f s ago, < %.0f s'
                    % (last.action, ', it failed' if last.failed_later
                       else ', its start failed' if last.failed else '',
                       now - last.at, limits.immunity_window))
        changes = _changes(history)
        if decision.direction < 0:
            scaled = [t for t in changes if t.direction]
            # A VM that flapped lately shrinks more cautiously: each flap
            # within the cycle window adds a cooldown and a hysteresis.
            factor = 1 + self._flaps(changes, now)
            cooldown = limits.cooldown * factor
            if scaled and now - scaled[-1].at < cooldown:
                return ('cooldown: last scaling (%s) %.0f s ago, < %.0f s'
                        % (scaled[-1].action, now - scaled[-1].at,
                           cooldown))
            needed = limits.hysteresis_runs * factor
            if runs < needed:
                return ('hysteresis: shrink proposed %d of %d runs in a row'
                        % (runs, needed))
            if self._reversals(changes, now, -1) >= limits.max_reversals:
                return ('cycle breaker: this shrink would be reversal %d '
                        'within %.0f s' % (limits.max_reversals,
                                           limits.cycle_window))
        if decision.action == 'live_migrate' and decision.host:
            for taken in changes:
                if (taken.action == 'live_migrate'
                        and taken.source_host == decision.host
                        and now - taken.at < limits.cycle_window):
                    return ('cycle breaker: %s left %s %.0f s ago'
                            % (instance_id, decision.host, now - taken.at))
        while self._all and now - self._all[0].at >= 3600.0:
            self._all.popleft()
        if len(self._all) >= limits.max_actions_per_hour:
            return ('rate limit: %d actions in the last hour'
                    % len(self._all))
        if len(self.in_flight) >= limits.max_concurrent_actions:
            return ('rate limit: %d actions under way'
                    % len(self.in_flight))
        return None

    def _flaps(self, history, now):
        """Growths less than ``cooldown`` after a shrink of the VM within
        the cycle window."""
        recent = [t for t in history
                  if t.direction and now - t.at < self.limits.cycle_window]
        return sum(1 for a, b in zip(recent, recent[1:])
                   if a.direction < 0 < b.direction
                   and b.at - a.at < self.limits.cooldown)

    def _reversals(self, history, now, direction):
        """Changes of direction within the cycle window if an action of
        ``direction`` were added."""
        recent = [t.direction for t in history
                  if t.direction and now - t.at < self.limits.cycle_window]
        recent.append(direction)
        return sum(1 for a, b in zip(recent, recent[1:]) if a != b)
