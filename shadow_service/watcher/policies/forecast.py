"""``forecast``: act before the forecast's upper bound crosses capacity.

The watcher forecasts each watched VM's demand (busy vCPUs) with the
analyzer's forecasters and raises the forecast's upper bound by the
margin its past errors call for (``watcher.errors``).  This policy grows
the VM, jumping as many rungs as needed, when that bound over the lead
time of a resize exceeds what the flavor holds at ``[watcher]
target_utilisation``; it shrinks it one rung only when the bound over the
longer time a shrink must hold (until a regrowth could take effect), and
the largest demand and the largest forecast bound of the last ``[watcher]
hold_window``, and yesterday's peak over the shrink horizon plus the
cooldown, fit the smaller flavor with ``down_margin`` to spare (a shrink
undone within the cooldown is a flap).  The bound is never below what the
VM used in the same window one day earlier (``seasonal_weight``), so a
daily peak is met ahead, nor, with ``[watcher] recurring_days``, below
the demand the VM reached at about this time of day on at least
``recurring_min_days`` of those days (its *recurring peak*: a saturated
sample of a quiet VM counts as ``saturation_factor`` times its vCPUs),
which the ceiling does not cap; a shrink keeps the recurring peak of the
shrink horizon until its hour has passed.  A VM whose CPU is saturated
hides its demand: then the bound is at least ``saturation_factor`` times
its vCPUs (a burst's first growth holds it, instead of a doubling per
immunity window while the demand goes on rising).  With
``burst_rise`` a group, or a resized VM that filled its flavor before,
whose demand rose within one step by that share of its vCPUs counts as
saturated too (the step's mean hides how far a burst that began within
it has gone since); half its vCPUs by default.
Within the cooldown of a group's last scale-in it grows the group only
for demand the group shows (``regrow_on_shown_demand``): a growth on the
forecast alone would undo the scale-in while the members still serve the
group (a flap); a saturated sample counts for the forecast's bound only
with the ones before it that ``regrow_saturated_samples`` asks for.
No VM is sized above its demand cap (``[watcher] cap_steps``: the
flavor a resized VM sat at, saturated, past which a larger flavor showed
its demand does not go), margins included; and with ``seasonal_follow``
yesterday's peak counts for a resized VM only while today has followed
yesterday.
A VM that is not
saturated is never sized above its demand ceiling (the most
it has ever used, plus ``[watcher] ceiling_margin``, or more while its
demand rises, and at least what it was sized for while saturated): error
margins hold no vCPUs it never used, while a shrink keeps its
``down_margin`` above the ceiling and the hold window's peaks.  When a
QoS target of the profile that the host sets (CPU steal, latency) is
forecast to break within a migration's lead time while the VM's own
capacity suffices, it proposes a live migration.
"""

import math

from oslo_config import cfg

from shadow_service.watcher.policies import base

GROUP = cfg.OptGroup('watcher_policy_forecast',
                     title='The forecast scaling policy',
                     help="""
Options of the ``forecast`` scaling policy of ``shadow-watcher``: act
before the forecast bound crosses the VM's capacity.
""")

OPTS = [
    cfg.FloatOpt('down_margin', default=0.2, min=0.0, max=0.9, help="""
Share of the smaller flavor's capacity that must stay free over the whole
shrink horizon before the VM shrinks (the hysteresis of the downward
decision).
"""),
    cfg.FloatOpt('saturation_factor', default=8.0, min=1.0, max=16.0,
                 help="""
When the VM's CPU is saturated its real demand is unknown but at least its
vCPUs; the forecast is raised to at least this multiple of them (1.5 is
one rung of a 1.5x ladder, 2 two rungs or twice the group).  A burst from
idle can ask for several times the VM's capacity at once: with a small
factor the VM is grown only that much per immunity window while the
burst goes on, with a large one it holds more vCPUs until its cooldown
lets it shrink to what it then shows.
"""),
    cfg.FloatOpt('burst_rise', default=0.5, min=0.0, max=10.0, help="""
A rise of the VM's demand within one step by at least this share of its
capacity (its vCPUs; a horizontally scaled group's: all its members')
starts a burst, and the VM counts as saturated (sized for
``saturation_factor`` times its vCPUs, its demand ceiling and hold
window raised as for a saturated sample) although the step's mean has
not reached its capacity.  A step's utilisation is its mean, so a burst
that begins within a step reads only part of its rise; a VM grown by
that part is held at it for the guard's immunity window while the
burst goes on (resizing, another resize: another reboot).  A resized
VM's rise counts only when the VM filled this flavor within
``[watcher] ceiling_window`` (it hid demand at this size before): a VM
that steps up within its flavor is not rebooted to several times its
size.  0 turns it off; 0.5 (the default) is the value measured in the
proactive scaling benchmark, scaling out and resizing.
"""),
    cfg.IntOpt('max_down_rungs', default=3, min=1, max=10, help="""
Most rungs (or members of a horizontally scaled group) one shrink
descends.  The shrink goes to the size that holds the shrink bound, at
most this far: one resize (one reboot) or one scale-in instead of a
staircase of them, each a cooldown apart.
"""),
    cfg.BoolOpt('hold_peak', default=True, help="""
Never shrink below the largest demand of the last ``[watcher]
hold_window``, nor below the largest forecast bound of that window (a
shrink costs a reboot, and a regrowth another one; a regrowth within the
cooldown is a flap).
"""),
    cfg.FloatOpt('seasonal_weight', default=1.0, min=0.0, max=2.0, help="""
The demand bound over the lead time is at least this share of the peak
the VM had in the same window one day earlier (0: ignore yesterday).
"""),
    cfg.FloatOpt('seasonal_follow', default=0.5, min=0.0, max=1.0,
                 help="""
Yesterday's peak (``seasonal_weight``) counts for a resized VM only
while today has followed yesterday: its largest demand over ``[watcher]
hold_window`` is at least this share of its largest demand over the
same hours one day earlier.  A VM busy yesterday at these hours and
quiet today so far is not held (or grown) for yesterday's demand in the
hours ahead.  0 turns it off.  Horizontally scaled groups always count
yesterday's peak.
"""),
    cfg.BoolOpt('regrow_on_shown_demand', default=True, help="""
Within ``[watcher] cooldown`` of a horizontally scaled group's last
scale-in, grow it only for demand it shows: its newest sample above what
its members hold at ``[watcher] target_utilisation``, or saturated
(``[watcher] saturation_pct``).  The scale-in was decided on a bound
over the cooldown; a growth within it on the forecast's margin, its
trend or a burst read from a rise, while the members serve what the
group shows, undoes it for nothing (a flap); a demand that does pass
them is met at the next run, a sibling's boot later.
"""),
    cfg.IntOpt('regrow_saturated_samples', default=2, min=1, max=12,
               help="""
With ``regrow_on_shown_demand``, the consecutive saturated samples
(``[watcher] saturation_pct`` of the members the group has now) a group
must show within the cooldown of its last scale-in before it is grown
on the forecast's bound for a saturated group (its hidden demand); with
fewer, the newest sample counts as the demand it shows.  A lone
saturated sample after a lull may be a burst the members left serve, or
the sample's noise.
"""),
    cfg.ListOpt('host_metrics', default=['cpu_steal_pct',
                                         'net_p95_rtt_ms',
                                         'disk_p95_latency_ms',
                                         'mem_latency_ns'], help="""
QoS metrics that the host, rather than the VM's flavor, sets: a forecast
breach of one of them while the VM's CPU demand fits its flavor proposes a
live migration.
"""),
]


class ForecastPolicy(base.ScalingPolicy):
    """Description: resizes ahead of the forecast demand.

    Requirements: the watcher's demand forecast (``Situation.forecast``)
    and QoS breach forecasts.

    Limitations: a spike shorter than the forecaster's memory and larger
    than the error margin still gets through; the margin trades
    violations for resources (``[watcher] error_quantile``).
    """

    config_group = GROUP

    def __init__(self, conf=None):
        super().__init__(conf)
        #: instance -> when the watcher last scaled it in (dropped by a
        #: growth after it)
        self._shrunk = {}

    @classmethod
    def get_config_opts(cls):
        return OPTS

    def restore(self, taken):
        self._shrunk = {}
        for action in taken:
            self.record_taken(action)

    def record_taken(self, taken):
        # A start that failed changed nothing; a growth after a shrink
        # ends what the shrink asks of the next growths.
        if getattr(taken, 'failed', False) or not taken.direction:
            return
        if taken.direction < 0:
            self._shrunk[taken.instance_id] = taken.at
        else:
            self._shrunk.pop(taken.instance_id, None)

    def _watcher_option(self, name, default):
        try:
            return float(getattr(self.conf.watcher, name))
        except (AttributeError, cfg.NoSuchOptError):
            return default

    def growth_bound(self, situation, up):
        """``up``, or within the cooldown of a group's last scale-in
        (``regrow_on_shown_demand``) the demand its newest sample shows,
        unless that sample is saturated, as are the samples before it
        that ``regrow_saturated_samples`` asks for."""
        s = situation
        shrunk = self._shrunk.get(s.instance_id)
        if (s.mode != 'horizontal' or shrunk is None
                or not self.option('regrow_on_shown_demand')
                or s.now - shrunk >= self._watcher_option('cooldown',
                                                          1800.0)):
            return up
        saturation = self._watcher_option('saturation_pct', 95.0)
        if s.utilisation_pct >= saturation and self._saturated_before(
                s, saturation, self.option('regrow_saturated_samples') - 1):
            return up
        return min(up, base.newest_demand(s))

    @staticmethod
    def _saturated_before(situation, saturation, samples):
        """Whether the ``samples`` known samples before the newest are
        each at ``saturation`` % or more of the members the group has
        now (a sample from before the scale-in, on more members, that
        is past them counts too)."""
        if samples <= 0:
            return True
        known = [v for v in situation.demand if math.isfinite(v)]
        earlier = known[-1 - samples:-1]
        full = situation.total_capacity * saturation / 100.0
        return len(earlier) == samples and all(v >= full for v in earlier)

    def hidden_demand_factor(self):
        return self.option('saturation_factor')

    def burst_rise(self):
        return self.option('burst_rise')

    def bounds(self, situation):
        """``(up_peak, down_peak)`` the decision is made on, neither above
        the VM's demand cap (``[watcher] cap_steps``): its demand does
        not go past it, so no margin is held above it either."""
        cap = base.demand_cap(situation)
        up, down = self._bounds(situation)
        return min(up, cap), min(down, cap)

    def seasonal_weight(self, situation):
        """``seasonal_weight``, or 0 when today has not followed
        yesterday (``seasonal_follow``)."""
        s = situation
        follow = self.option('seasonal_follow')
        if follow > 0 and s.mode != 'horizontal' and float(
                s.forecast.get('recent_peak') or 0.0) < follow * float(
                    s.forecast.get('seasonal_recent') or 0.0):
            return 0.0
        return self.option('seasonal_weight')

    def _bounds(self, situation):
        s = situation
        weight = self.seasonal_weight(s)
        up = max(float(s.forecast['peak']), weight
                 * float(s.forecast.get('seasonal_peak') or 0.0))
        down = max(float(s.forecast['peak_down']), up,
                   weight * float(s.forecast.get('seasonal_down') or 0.0))
        held = 0.0
        if self.option('hold_peak'):
            held = max(float(s.forecast.get('recent_peak') or 0.0),
                       float(s.forecast.get('recent_bound') or 0.0))
        down = max(down, held) / max(1e-9, 1.0 - self.option('down_margin'))
        ceiling = base.demand_ceiling(s)
        # A demand that recurs at this time of day ([watcher]
        # recurring_days) is met ahead, above the ceiling too (the
        # ceiling forgets what came more than a day ago, or hid behind
        # a saturated sample), and held until its hour has passed.
        recurring, recurring_down = base.recurring_peaks(s)
        if s.saturated:
            floor = s.total_capacity * self.option('saturation_factor')
            return (max(up, floor, recurring),
                    max(down, floor, recurring_down))
        if not math.isfinite(down):
            # No shrink bound yet (a young VM, no error margin known):
            # the ceiling does not make one.
            return max(min(up, ceiling), recurring), down
        # The ceiling takes off error margins above anything the VM
        # used, but not the shrink's own hysteresis (a shrink to just
        # above the ceiling is grown back as soon as the ceiling creeps
        # up), nor what the hold window holds: the demand it just showed
        # and the bounds it was just sized for (a VM between two bursts
        # is not shrunk below the last one's size for the hold window).
        spare = ceiling / max(1e-9, 1.0 - self.option('down_margin'))
        return (max(min(up, ceiling), recurring),
                max(min(down, spare), held, recurring_down))

    def decide(self, situation):
        s = situation
        up, down = self.bounds(s)
        up = self.growth_bound(s, up)
        decision = base.capacity_decision(
            s, up, down, 'forecast', max_down=self.option('max_down_rungs'))
        if decision.action != base.NO_ACTION:
            return decision
        for metric in self.option('host_metrics'):
            breach = s.breaches.get(metric)
            if breach is None or breach.breach_in_s is None:
                continue
            if breach.breach_in_s <= s.lead_s.get('migrate', 0.0):
                return base.Decision(
                    'live_migrate', 'host-bound ' + breach.describe(),
                    metric=metric, predicted=float(
                        breach.bound()[breach.breach_step]),
                    threshold=float(breach.target[1]))
        return decision
