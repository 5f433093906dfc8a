"""``reactive``: a threshold on the current utilisation.

What Heat/Aodh alarms and Kubernetes' HPA users have today: when the VM's
latest CPU utilisation is at or above ``high_pct`` it grows by
``step_rungs`` rungs of the ladder (or one member of its group); at or
below ``low_pct`` it shrinks by one.  No forecast: it acts once a
bottleneck is there.  Hysteresis is the gap between the two thresholds;
the watcher's guard adds cooldowns.  The baseline the other policies are
measured against.
"""

from oslo_config import cfg

from shadow_service.watcher.policies import base

GROUP = cfg.OptGroup('watcher_policy_reactive',
                     title='The reactive scaling policy',
                     help="""
Options of the ``reactive`` scaling policy of ``shadow-watcher``: a
threshold on the current CPU utilisation.
""")

OPTS = [
    cfg.FloatOpt('high_pct', default=80.0, min=1.0, max=100.0, help="""
CPU utilisation (percent of the flavor's vCPUs) at or above which the VM
grows.

Related options:

* ``low_pct``: must be below this (the watcher does not start
  otherwise).
"""),
    cfg.FloatOpt('low_pct', default=30.0, min=0.0, max=99.0, help="""
CPU utilisation at or below which the VM shrinks one rung (or its group
one member).
"""),
    cfg.IntOpt('step_rungs', default=1, min=1, max=10, help="""
Rungs of the flavor ladder one scale-up climbs.

Possible values:

* 1: one flavor at a time (Heat's ``scaling_adjustment: 1``).
* More: jump several flavors at once.
"""),
]


class ReactivePolicy(base.ScalingPolicy):
    """Description: acts on the current CPU utilisation.

    Requirements: the VM's ``cpu_util_pct`` history.

    Limitations: acts only after a bottleneck has begun, so the VM runs
    short for the action's whole duration.
    """

    config_group = GROUP

    def __init__(self, conf=None):
        super().__init__(conf)
        low, high = self.option('low_pct'), self.option('high_pct')
        if low >= high:
            # No gap between the thresholds: every utilisation calls for
            # an action, a VM just below high_pct shrinks and grows back.
            raise ValueError('[%s] low_pct %g is not below high_pct %g'
                             % (GROUP.name, low, high))

    @classmethod
    def get_config_opts(cls):
        return OPTS

    def decide(self, situation):
        s = situation
        high, low = self.option('high_pct'), self.option('low_pct')
        util = s.utilisation_pct
        if util != util:                      # NaN: no recent sample
            return base.Decision(base.NO_ACTION, 'no recent utilisation')
        if util >= high:
            if s.mode == 'horizontal':
                if s.group_size >= s.max_count:
                    return base.Decision(base.NO_ACTION,
                                         'group at its maximum size')
                return base.Decision(
                    'scale_out', 'CPU at %.0f%%, >= %.0f%%' % (util, high),
                    metric='cpu_util_pct', predicted=util, threshold=high,
                    target_count=s.group_size + 1)
            if s.rung is None:
                return base.Decision(base.NO_ACTION, 'flavor not on the '
                                     'ladder')
            target = s.ladder.clamp(s.rung + self.option('step_rungs'))
            if target == s.rung:
                return base.Decision(base.NO_ACTION, 'top of the ladder')
            return base.Decision(
                'resize_up', 'CPU at %.0f%%, >= %.0f%%' % (util, high),
                metric='cpu_util_pct', predicted=util, threshold=high,
                target_rung=target)
        if util <= low:
            if s.mode == 'horizontal':
                if s.group_size <= s.min_count:
                    return base.Decision(base.NO_ACTION,
                                         'group at its minimum size')
                return base.Decision(
                    'scale_in', 'CPU at %.0f%%, <= %.0f%%' % (util, low),
                    metric='cpu_util_pct', predicted=util, threshold=low,
                    target_count=s.group_size - 1)
            if s.rung is None:
                return base.Decision(base.NO_ACTION, 'flavor not on the '
                                     'ladder')
            if s.rung:
                return base.Decision(
                    'resize_down', 'CPU at %.0f%%, <= %.0f%%' % (util, low),
                    metric='cpu_util_pct', predicted=util, threshold=low,
                    target_rung=s.rung - 1)
        return base.Decision(base.NO_ACTION, 'CPU at %.0f%%, between %.0f%% '
                             'and %.0f%%' % (util, low, high),
                             metric='cpu_util_pct', predicted=util)
