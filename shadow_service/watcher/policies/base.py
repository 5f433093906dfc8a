"""The ScalingPolicy interface of the watcher.

Policies are stevedore plugins in the ``nova_shadow.policies`` namespace
(``[watcher] policy``), one module each.  A policy is pure: it looks at a
watched VM's :class:`Situation` (its flavor on the ladder, its demand
history, the forecasts the watcher made for it, its QoS targets) and
returns a :class:`Decision`; the watcher's guard (cooldowns, hysteresis,
rate limit, cycle breaker) and actuator carry it out, or, in dry-run, only
record it.  A policy declares its options with ``get_config_opts()`` in
its own ``config_group``, as cloud drivers do.
"""

import abc
import dataclasses
import math

ACTIONS = ('none', 'resize_up', 'resize_down', 'live_migrate',
           'scale_out', 'scale_in')
#: Actions that add capacity; the others (but none) take it away or move.
UP_ACTIONS = ('resize_up', 'scale_out')
DOWN_ACTIONS = ('resize_down', 'scale_in')


@dataclasses.dataclass
class Decision:
    """What a policy wants done, and why.

    ``target_rung`` is the ladder index a resize goes to (a jump of
    several rungs is one resize); ``target_count`` the group size a scale
    action aims at; ``host`` where a migration goes (None: the watcher
    picks the best host).
    """

    action: str
    reason: str
    metric: str = ''
    predicted: float = 0.0
    threshold: float = 0.0
    target_rung: int = None
    target_count: int = None
    host: str = None

    def __post_init__(self):
        if self.action not in ACTIONS:
            raise ValueError('unknown action %r (one of %s)'
                             % (self.action, ', '.join(ACTIONS)))

    @property
    def direction(self):
        if self.action in UP_ACTIONS:
            return 1
        if self.action in DOWN_ACTIONS:
            return -1
        return 0

    def to_dict(self):
        return dataclasses.asdict(self)


NO_ACTION = 'none'


@dataclasses.dataclass
class Situation:
    """Everything a policy may look at for one watched VM at one run.

    Demand is in busy vCPUs (the VM's CPU utilisation times its vCPUs;
    in ``horizontal`` mode the whole group's, its members' shares added
    up); it is censored at the capacity: a saturated VM hides how much
    more it wants (``saturated``).
    """

    instance_id: str
    profile: str
    now: float
    step_s: float
    flavor: dict
    ladder: object                      # watcher.ladder.Ladder
    rung: int                           # index on the ladder, or None
    #: ``{'vertical': s, 'migrate': s, 'horizontal': s}``: seconds from a
    #: decision until the action's effect (one watcher interval plus the
    #: action's duration).
    lead_s: dict
    #: Busy vCPUs per step, oldest first (NaN where missing).
    demand: list
    utilisation_pct: float              # latest CPU utilisation
    saturated: bool
    #: The demand forecast: ``mean`` / ``upper`` paths over the longest
    #: lead, ``peak`` (upper bound of the peak over the vertical lead,
    #: error margin included), ``peak_down`` (same over the time a
    #: shrink must hold), ``bias``, ``margin``, ``model``.
    forecast: dict
    #: ``{metric: watcher.forecast.BreachForecast}`` of the QoS targets.
    breaches: dict = dataclasses.field(default_factory=dict)
    targets: dict = dataclasses.field(default_factory=dict)
    #: ``'vertical'`` (resize along the ladder) or ``'horizontal'``
    #: (siblings in a server group).
    mode: str = 'vertical'
    group_size: int = 1
    min_count: int = 1
    max_count: int = 1
    #: Target utilisation of the capacity (1.0: demand may use it all).
    target_utilisation: float = 1.0
    #: ``foresight(start, end)``: the true peak demand in that window.
    #: Only a benchmark over the twin provides it (the ``oracle``).
    foresight: object = None

    @property
    def capacity(self):
        """vCPUs of the VM's flavor (one member's)."""
        return float(self.flavor.get('vcpus') or 0)

    @property
    def total_capacity(self):
        """vCPUs serving the demand: the flavor's, times the members in
        ``horizontal`` mode."""
        members = self.group_size if self.mode == 'horizontal' else 1
        return self.capacity * members

    def rung_for(self, demand_vcpus):
        """Ladder index whose vCPUs hold ``demand_vcpus`` at the target
        utilisation."""
        return self.ladder.rung_for(demand_vcpus / self.target_utilisation)

    def count_for(self, total):
        """Group size whose members hold the group's demand ``total``
        (busy vCPUs) at the target utilisation."""
        if not math.isfinite(total):
            # No bound (a shrink bound not known yet): the most allowed.
            return self.max_count
        per_member = max(self.capacity * self.target_utilisation, 1e-9)
        wanted = int(math.ceil(total / per_member - 1e-9))
        return max(self.min_count, min(self.max_count, max(wanted, 1)))


def demand_ceiling(situation):
    """The VM's demand ceiling in vCPUs (``inf`` while none is known):
    0 for a VM that never used its CPU is a ceiling, not a missing one."""
    ceiling = situation.forecast.get('ceiling')
    return math.inf if ceiling is None else float(ceiling)


def demand_cap(situation):
    """The most the VM's demand can be, in vCPUs (``inf`` while none is
    known): the vCPUs of a flavor it filled, past which a larger flavor
    showed its demand does not go (``[watcher] cap_steps``)."""
    cap = situation.forecast.get('cap')
    return math.inf if cap is None else float(cap)


def newest_demand(situation):
    """The VM's newest known demand in busy vCPUs (0 if none)."""
    for value in reversed(situation.demand):
        if math.isfinite(value):
            return float(value)
    return 0.0


def recurring_peaks(situation):
    """``(peak, down)``: the demand that recurs at this time of day to
    grow for and to hold before a shrink (``[watcher] recurring_days``;
    0 for both while it is off or nothing recurs)."""
    forecast = situation.forecast
    return (float(forecast.get('recurring_peak') or 0.0),
            float(forecast.get('recurring_down') or 0.0))


def capacity_decision(situation, up_peak, down_peak, why, max_down=1):
    """The resize or scale decision that fits ``up_peak`` (a bound on the
    demand over the lead of an action that adds capacity) and
    ``down_peak`` (over the time a shrink must hold), jumping as many
    rungs (or group members) up as needed and at most ``max_down``
    down."""
    s = situation
    if s.mode == 'horizontal':
        want_up = s.count_for(up_peak)
        if want_up > s.group_size:
            return Decision('scale_out', '%s: %.2f vCPUs for the group '
                            'want %d members, has %d' % (
                                why, up_peak, want_up, s.group_size),
                            metric='busy_vcpus', predicted=up_peak,
                            threshold=s.total_capacity,
                            target_count=want_up)
        want_down = s.count_for(down_peak)
        if want_down < s.group_size:
            target = max(want_down, s.group_size - max_down)
            return Decision('scale_in', '%s: %.2f vCPUs for the group '
                            'fit in %d members' % (why, down_peak, target),
                            metric='busy_vcpus', predicted=down_peak,
                            threshold=s.capacity * target,
                            target_count=target)
        return Decision(NO_ACTION, '%s: %d members hold %.2f vCPUs'
                        % (why, s.group_size, up_peak),
                        metric='busy_vcpus', predicted=up_peak,
                        threshold=s.capacity)
    if s.rung is None or not s.ladder:
        return Decision(NO_ACTION, 'flavor %s is not on the ladder'
                        % s.flavor.get('name'))
    want_up = s.rung_for(up_peak)
    if want_up > s.rung:
        return Decision('resize_up', '%s: %.2f vCPUs expected, %s has %g'
                        % (why, up_peak, s.flavor.get('name') or 'flavor',
                           s.capacity),
                        metric='busy_vcpus', predicted=up_peak,
                        threshold=s.capacity, target_rung=want_up)
    want_down = s.rung_for(down_peak)
    if want_down < s.rung:
        target = max(want_down, s.rung - max_down)
        return Decision('resize_down', '%s: at most %.2f vCPUs expected, '
                        '%s (%d vCPUs) holds it' % (
                            why, down_peak, s.ladder.rungs[target].name,
                            s.ladder.capacity(target)),
                        metric='busy_vcpus', predicted=down_peak,
                        threshold=s.ladder.capacity(target),
                        target_rung=target)
    return Decision(NO_ACTION, '%s: %.2f vCPUs expected fit %g'
                    % (why, up_peak, s.capacity), metric='busy_vcpus',
                    predicted=up_peak, threshold=s.capacity)


class ScalingPolicy(metaclass=abc.ABCMeta):
    """Decides on one watched VM from its :class:`Situation`.

    Parameters
    ----------
    conf : oslo_config.cfg.ConfigOpts, optional
        With the policy's group registered; None: the options' defaults.
    """

    #: Option group of the policy's own options (None: it has none).
    config_group = None

    def __init__(self, conf=None):
        self.conf = conf

    @classmethod
    def get_config_opts(cls):
        return []

    def option(self, name):
        """The policy's option ``name`` (its default without a conf)."""
        if self.conf is not None and self.config_group is not None:
            group = getattr(self.config_group, 'name', self.config_group)
            return getattr(getattr(self.conf, group), name)
        for opt in self.get_config_opts():
            if opt.dest == name:
                return opt.default
        raise KeyError(name)

    def hidden_demand_factor(self):
        """How many times its capacity a saturated VM's hidden demand is
        taken to be when the policy sizes it (1: just its capacity); the
        watcher never lets the VM's demand ceiling fall below it."""
        return 1.0

    def burst_rise(self):
        """Share of a VM's capacity (a horizontally scaled group's: all
        its members'; 0: none) by which its demand rising within one step
        starts a burst that the step's mean hides: the watcher then takes
        the VM as saturated (its hidden demand, ceiling and hold window
        as for a saturated sample).  Never, by default."""
        return 0.0

    def restore(self, taken):
        """Take back what the policy keeps of the actions done before it
        was built (a restarted watcher, a new leader): ``taken`` is the
        guard's list of :class:`~shadow_service.watcher.guard.Taken`,
        oldest first, over the guard's longest window.  Nothing by
        default."""
        return None

    def record_taken(self, taken):
        """Learn of an action the watcher just took on the policy's
        decision (or, in dry-run, would have): ``taken``, the
        :class:`~shadow_service.watcher.guard.Taken` the guard records
        and :meth:`restore` gets back after a restart, a failed start
        included.  An action that started and fails later has its
        ``taken`` marked ``failed`` in place (it changed nothing either).
        A decision the guard or the watcher's limits held back changed
        nothing and is not recorded.  Nothing by default."""
        return None

    @abc.abstractmethod
    def decide(self, situation):
        """Return a :class:`Decision` for ``situation``."""
