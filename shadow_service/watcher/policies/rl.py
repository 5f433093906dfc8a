"""``rl``: a contextual bandit over forecast features, trained in the twin.

State (discretised): how the forecast's bound (error margin included)
compares with the flavor's capacity, whether the CPU is saturated, the
recent trend of the demand, being at the top of the ladder, and whether
the forecast's own capacity rule (``forecast``'s) would grow, keep or
shrink the VM.  Actions: an offset of ``-1, 0, +1, +2`` rungs (or members
of a scale-out group) from the size that rule asks for, so the policy
learns when the forecast needs more headroom, or less; it never shrinks
below what the ``forecast`` policy's shrink bound (the demand over the
cooldown, the hold window's peaks, the down margin) needs, nor sizes a
VM that is not saturated above its demand ceiling (or its recurring
peak, with ``[watcher] recurring_days``, which its bound, as the
``forecast`` policy's, never goes below), and within the
cooldown of a shrink it made only the forecast rule may grow it back,
so a learnt offset cannot make it flap (the watcher tells it of each
action it took, :meth:`RLPolicy.record_taken`, and a restarted one of
those its records hold, :meth:`RLPolicy.restore`: a shrink the guard
held back, or that failed, changed nothing and holds no growth
back).  Each (state, action) keeps the mean reward it earned and how
often training tried it; the policy picks the best of the moves tried at least
``min_visits`` times, in a state where the forecast rule's size was
tried as often (else that size; ties: that
size too).  The reward of an action is known one lead time later, from the
peak demand that was measured: ``-(violation_weight x shortfall / capacity +
capacity_weight x vCPUs held + move_weight x (1 if it moved))``, so it
trades violations against resources and actions the way the benchmark
scores them.  The watcher reads a burst's start (``burst_rise``) and a
saturated VM's hidden demand (``saturation_factor``) with the forecast
rule's options, as for the ``forecast`` policy.

Train it by replaying traces in the twin through the same watcher loop
(``benchmarks/proactive_scaling.py --train-rl FILE``), which saves the
table as JSON; the policy loads ``[watcher_policy_rl] model_file``.
Without a model, and in a state it never met in training, it takes the
forecast rule's size (offset 0).
"""

import json
import logging
import math
import reprlib

import numpy as np
from oslo_config import cfg

from shadow_service.watcher.policies import base
from shadow_service.watcher.policies import forecast as forecast_policy

LOG = logging.getLogger(__name__)

GROUP = cfg.OptGroup('watcher_policy_rl',
                     title='The reinforcement-learning scaling policy',
                     help="""
Options of the ``rl`` scaling policy of ``shadow-watcher``: a value
table trained in the twin.
""")

OPTS = [
    cfg.StrOpt('model_file', help="""
JSON file of the trained value table (written by
``benchmarks/proactive_scaling.py --train-rl``).

Possible values:

* Unset: no model; the policy falls back to sizing on the forecast bound.
* A path readable by the watcher: a version 2 model whose ``values`` (and
  ``counts``, if any) give each state one finite number per move (four).
  A file that is not one is refused when ``shadow-watcher`` starts, with
  the key and the state that are wrong.
"""),
    cfg.IntOpt('min_visits', default=100, min=0, help="""
Fewest times training must have tried a move in a state, and the forecast
rule's own size (offset 0) there, before the policy may take that move in
that state instead of the forecast rule's size: the mean reward of a move
tried a few times is mostly the noise of its few outcomes, and a policy
that follows it moves with the luck of its training.

Possible values:

* 100 (default): on the proactive scaling benchmark's twelve hours, four
  models trained with different exploration seeds gave the same violation
  minutes (121 resizing, 27 scaling out), where without the floor they
  gave 123 to 188 and 27 to 44.
* 0: any move training tried at least once.
* Another whole number: moves tried fewer times, and every move of a
  state whose offset 0 was tried fewer times, are not taken there.
"""),
    cfg.FloatOpt('violation_weight', default=15.0, min=0.0, help="""
Weight of a shortfall (demand above capacity, relative to capacity) in the
reward used while training.
"""),
    cfg.FloatOpt('capacity_weight', default=0.1, min=0.0, help="""
Weight of each vCPU held in the reward used while training.
"""),
    cfg.FloatOpt('move_weight', default=1.0, min=0.0, help="""
Cost of every move (a resize reboots the guest; any action may have to be
reversed) in the reward used while training.
"""),
]

#: Offsets, in rungs (or members), from the size the forecast bound asks
#: for that the policy chooses between.
MOVES = (-1, 0, 1, 2)
#: Edges of the bins of (forecast bound / capacity).
RATIO_EDGES = (0.25, 0.4, 0.55, 0.7, 0.85, 1.0, 1.2, 1.5)
#: Edges of the bins of the demand's recent trend, relative to capacity.
TREND_EDGES = (-0.1, -0.02, 0.02, 0.1)
MODEL_VERSION = 2
#: The forecast rule at its defaults (:func:`features` without one).
_FORECAST = forecast_policy.ForecastPolicy()


def features(situation, rule=None):
    """The discrete state of ``situation``: a short string key
    (``rule``: the ``forecast`` policy whose saturation floor the bound
    keeps; its defaults when None)."""
    s = situation
    capacity = max(s.total_capacity, 1e-9)
    ratio = RLPolicy._bounds(s, rule or _FORECAST)[0] / capacity
    demand = np.asarray(s.demand[-12:], float)
    demand = demand[np.isfinite(demand)]
    trend = 0.0
    if demand.size >= 6:
        trend = (demand[-3:].mean() - demand[:-3].mean()) / capacity
    top = s.rung is not None and s.rung >= len(s.ladder) - 1
    return 'r%d/s%d/t%d/top%d' % (
        int(np.searchsorted(RATIO_EDGES, ratio)), int(bool(s.saturated)),
        int(np.searchsorted(TREND_EDGES, trend)), int(top))


def _row(state, key, row):
    """``row``, the ``key`` (``'values'`` or ``'counts'``) of ``state``,
    as ``len(MOVES)`` finite floats (values) or whole numbers >= 0
    (counts); a ValueError naming the key and the state otherwise."""
    where = '%s of state %r' % (key, state)
    if not isinstance(row, list):
        raise ValueError('%s: %s is not a list of %d numbers (one per '
                         'move %s)' % (where, reprlib.repr(row), len(MOVES),
                                      list(MOVES)))
    if len(row) != len(MOVES):
        raise ValueError('%s: %d numbers, not %d (one per move %s)'
                         % (where, len(row), len(MOVES), list(MOVES)))
    parsed = []
    for item in row:
        number = None
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            try:
                number = float(item)
            except OverflowError:
                number = None
        if number is None or not math.isfinite(number):
            raise ValueError('%s: %s is not a finite number'
                             % (where, reprlib.repr(item)))
        if key == 'counts':
            if number < 0 or not number.is_integer():
                raise ValueError('%s: %r is not a whole number >= 0'
                                 % (where, item))
            number = int(item)
        parsed.append(number)
    return parsed


def _parse_model(data):
    """``(values, counts)`` of a model ``data`` (:meth:`RLPolicy.to_dict`
    form); a ValueError saying what is wrong if it is not one."""
    if not isinstance(data, dict) or data.get('version') != MODEL_VERSION:
        raise ValueError('not a version %d rl model' % MODEL_VERSION)
    if 'moves' in data and data['moves'] != list(MOVES):
        raise ValueError('moves %s are not this policy\'s %s'
                         % (reprlib.repr(data['moves']), list(MOVES)))
    tables = {}
    for key in ('values', 'counts'):
        if key not in data and key == 'values':
            raise ValueError('no values (an object of states)')
        table = data.get(key, {})
        if not isinstance(table, dict):
            raise ValueError('%s: %s is not an object of states'
                             % (key, reprlib.repr(table)))
        tables[key] = {state: _row(state, key, row)
                       for state, row in table.items()}
    unvalued = sorted(set(tables['counts']) - set(tables['values']))
    if unvalued:
        raise ValueError('counts of state %r, which has no values'
                         % unvalued[0])
    return tables['values'], tables['counts']


class RLPolicy(base.ScalingPolicy):
    """Description: a tabular contextual bandit choosing a rung move.

    Requirements: a model trained in the twin (``model_file``); the
    watcher's demand forecast.

    Limitations: its states are coarse; in a state it never met in
    training it stays, and with no model at all it sizes on the forecast
    bound.
    """

    config_group = GROUP

    def __init__(self, conf=None, model=None, seed=0):
        super().__init__(conf)
        self._forecast = forecast_policy.ForecastPolicy(conf)
        self.values = {}
        self.counts = {}
        self.explore = 0.0
        # Seeds the exploration of training (moves taken at random).
        self._rng = np.random.default_rng(seed)
        self._chosen = {}
        self._shrunk = {}
        if model is not None:
            self.load_dict(model)
        elif self.option('model_file'):
            self.load(self.option('model_file'))

    @classmethod
    def get_config_opts(cls):
        return OPTS

    def restore(self, taken):
        # The shrinks done within the cooldown: a learnt offset does not
        # grow those VMs back before it ends, as if it had not stopped.
        self._shrunk = {}
        self._forecast.restore([])
        for action in taken:
            self.record_taken(action)

    def record_taken(self, taken):
        # Its forecast rule grows a group back within the cooldown of a
        # scale-in only for demand it shows, as the forecast policy.
        self._forecast.record_taken(taken)
        # Only a shrink the watcher did (or, in dry-run, would have):
        # one the guard held back, or whose start failed, changed
        # nothing, and growing the VM after it is no flap.  One that
        # fails later is marked failed in place (guard.Guard.failed):
        # it is kept, and looked at when deciding.
        if taken.direction < 0 and not getattr(taken, 'failed', False):
            self._shrunk[taken.instance_id] = taken

    def hidden_demand_factor(self):
        # Its base size is the forecast rule's, saturation floor included.
        return self._forecast.hidden_demand_factor()

    def burst_rise(self):
        # And the forecast rule's reading of a burst's start.
        return self._forecast.burst_rise()

    # -- the model ----------------------------------------------------------
    def load(self, path):
        """Load the model in the JSON file ``path``; a ValueError naming
        the option, the file and what is wrong if it is not one."""
        try:
            with open(path) as handle:
                data = json.load(handle)
        except (OSError, ValueError) as exc:
            raise ValueError('[watcher_policy_rl] model_file %s: %s'
                             % (path, exc)) from None
        self.load_dict(data, source=path)

    def load_dict(self, data, source=None):
        """Take the model ``data`` (what :meth:`to_dict` returns) if it is
        one: a version ``MODEL_VERSION`` object whose ``values`` give every
        state ``len(MOVES)`` finite numbers and whose optional ``counts``
        give states of ``values`` ``len(MOVES)`` whole numbers >= 0.
        Otherwise a ValueError saying what is wrong (prefixed with
        ``[watcher_policy_rl] model_file <source>``), the model held
        unchanged."""
        try:
            values, counts = _parse_model(data)
        except ValueError as exc:
            where = ('[watcher_policy_rl] model_file %s' % source
                     if source is not None else 'rl model')
            raise ValueError('%s: %s' % (where, exc)) from None
        self.values, self.counts = values, counts

    def to_dict(self):
        return {'version': MODEL_VERSION, 'moves': list(MOVES),
                'values': self.values, 'counts': self.counts}

    def save(self, path):
        with open(path, 'w') as handle:
            json.dump(self.to_dict(), handle, indent=1, sort_keys=True)

    # -- deciding ---------------------------------------------------------
    @staticmethod
    def _bounds(s, rule):
        """``(peak, peak_down)`` of the forecast, neither above the VM's
        demand ceiling while it is not saturated, nor, while it is, below
        what the ``forecast`` policy ``rule`` takes its hidden demand to be
        (``saturation_factor`` times its capacity); and, as the
        ``forecast`` policy's, never below the recurring peak (``[watcher]
        recurring_days``), above the ceiling too."""
        peak, down = float(s.forecast['peak']), float(s.forecast['peak_down'])
        ceiling = base.demand_ceiling(s)
        if not s.saturated:
            peak, down = min(peak, ceiling), min(down, ceiling)
        else:
            floor = s.total_capacity * rule.hidden_demand_factor()
            peak, down = max(peak, floor), max(down, floor)
        recurring, recurring_down = base.recurring_peaks(s)
        return max(peak, recurring), max(down, recurring_down)

    def _size_for(self, s, demand):
        """Ladder index (or group size) that holds ``demand``."""
        if s.mode == 'horizontal':
            return s.count_for(demand)
        return s.rung_for(demand)

    def _base(self, s):
        """The size the forecast bound asks for: a ladder index, or a
        group size in ``horizontal`` mode."""
        peak, down = self._bounds(s, self._forecast)
        peak = self._forecast.growth_bound(s, peak)
        found = base.capacity_decision(
            s, peak, down, 'forecast',
            max_down=self._forecast.option('max_down_rungs'))
        if s.mode == 'horizontal':
            return found.target_count or s.group_size
        return s.rung if found.target_rung is None else found.target_rung

    def _cooldown(self):
        """``[watcher] cooldown`` (1800 s without a configuration)."""
        try:
            return float(self.conf.watcher.cooldown)
        except (AttributeError, cfg.NoSuchOptError):
            return 1800.0

    def _shrink_floor(self, s, current):
        """The smallest size a shrink may reach: what the ``forecast``
        policy's shrink bound needs (the forecast over the cooldown and a
        regrowth's lead, the largest demand and growth bound of the hold
        window, yesterday's peak, the down margin, the demand ceiling),
        never above ``current``.  A learnt offset may grow the VM more or
        less than the forecast rule, but a shrink below that bound is
        likely to be undone within the cooldown (a flap)."""
        bound = self._forecast.bounds(s)[1]
        if s.mode == 'horizontal':
            return min(current, s.count_for(bound))
        return min(current, s.rung_for(bound))

    def decide(self, situation):
        s = situation
        if s.mode != 'horizontal' and s.rung is None:
            return base.Decision(base.NO_ACTION, 'flavor not on the ladder')
        wanted = self._base(s)
        current = s.group_size if s.mode == 'horizontal' else s.rung
        state = features(s, self._forecast) + '/b%+d' % max(
            -1, min(1, wanted - current))
        values = self.values.get(state)
        sparse = False
        if values is not None:
            counts = self.counts.get(state) or [1] * len(MOVES)
            need = max(1, self.option('min_visits'))
            if need > 1 and counts[MOVES.index(0)] < need:
                values, sparse = None, True
            else:
                values = [v if c >= need else -math.inf
                          for v, c in zip(values, counts)]
        if self.explore and self._rng.random() < self.explore:
            move = int(self._rng.choice(MOVES))
            why = 'exploring'
        elif sparse:
            move = 0
            why = ('state %s: the forecast bound (offset 0 tried too few '
                   'times there in training)' % state)
        elif values is None:
            move = 0
            why = ('state %s unseen in training: the forecast bound' % state
                   if self.values else 'no rl model: the forecast bound')
        else:
            best = max(values)
            move = 0 if values[MOVES.index(0)] == best else \
                MOVES[values.index(best)]
            why = 'state %s: best offset %+d (value %.2f)' % (state, move,
                                                               best)
        target = wanted + move
        floor = self._shrink_floor(s, current)
        if target < floor:
            target = floor
            why += ('; no shrink below the size the forecast bound over '
                    'the cooldown holds')
        # The recurring peak is demand the VM showed on earlier days,
        # which the ceiling (a day long) forgets.
        ceiling = max(base.demand_ceiling(s), base.recurring_peaks(s)[0])
        if not s.saturated and math.isfinite(ceiling):
            most = max(self._size_for(s, ceiling), min(current, wanted),
                       floor)
            if target > most:
                # No learnt offset sizes a VM above the most it has ever
                # used (its demand ceiling); nor does the ceiling shrink
                # it below what the forecast's shrink bound holds.
                target = most
                why += '; not above the demand ceiling (%.2f vCPUs)' % (
                    ceiling)
        cap = base.demand_cap(s)
        if math.isfinite(cap) and target > max(self._size_for(s, cap),
                                                floor):
            # No learnt offset sizes a VM above its demand cap either.
            target = max(self._size_for(s, cap), floor)
            why += '; not above the demand cap (%.2f vCPUs)' % cap
        shrunk = self._shrunk.get(s.instance_id)
        if (target > current and wanted <= current and shrunk is not None
                and not getattr(shrunk, 'failed', False)
                and s.now - shrunk.at < self._cooldown()):
            # Only the forecast rule may grow a VM back within the
            # cooldown of a shrink; a learnt offset would make it flap.
            target = current
            why += '; no regrowth of its own within the cooldown'
        decision = self._decision(s, target, why)
        if s.mode == 'horizontal':
            held = s.capacity * (decision.target_count or s.group_size)
        elif decision.target_rung is not None:
            held = s.ladder.capacity(decision.target_rung)
        else:
            held = s.capacity
        moved = decision.action != base.NO_ACTION
        self._chosen[(s.instance_id, s.now)] = (state, move, held, moved)
        return decision

    def _decision(self, s, target, why):
        if s.mode == 'horizontal':
            count = max(s.min_count, min(s.max_count, target))
            if count > s.group_size:
                return base.Decision('scale_out', why, target_count=count)
            if count < s.group_size:
                return base.Decision('scale_in', why, target_count=count)
            return base.Decision(base.NO_ACTION, why)
        target = s.ladder.clamp(target)
        if target > s.rung:
            return base.Decision('resize_up', why, target_rung=target,
                                 predicted=float(s.forecast['peak']),
                                 threshold=s.capacity)
        if target < s.rung:
            return base.Decision('resize_down', why, target_rung=target,
                                 predicted=float(s.forecast['peak']),
                                 threshold=s.capacity)
        return base.Decision(base.NO_ACTION, why)

    # -- learning ---------------------------------------------------------
    def reward(self, realised_peak, capacity, moved=False):
        shortfall = max(0.0, realised_peak - capacity) / max(capacity, 1.0)
        return -(self.option('violation_weight') * shortfall
                 + self.option('capacity_weight') * capacity
                 + self.option('move_weight') * bool(moved))

    def learn(self, instance_id, made_at, realised_peak):
        """Credit the move chosen for ``instance_id`` at ``made_at`` with
        the reward of what followed: ``realised_peak`` busy vCPUs over its
        lead time (a group's: all its members') against the capacity the
        move gave."""
        chosen = self._chosen.pop((instance_id, made_at), None)
        if chosen is None or not math.isfinite(realised_peak):
            return
        state, move, capacity, moved = chosen
        index = MOVES.index(move)
        values = self.values.setdefault(state, [0.0] * len(MOVES))
        counts = self.counts.setdefault(state, [0] * len(MOVES))
        counts[index] += 1
        values[index] += (self.reward(realised_peak, capacity, moved)
                          - values[index]) / counts[index]
