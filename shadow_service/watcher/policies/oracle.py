"""``oracle``: perfect foresight of the lead-time window (benchmarks only).

Given the true future demand (``Situation.foresight``, which only a
benchmark over the twin can provide), it grows the VM to the smallest
rung that holds the real peak over the resize's lead time and shrinks it
when the real peak until a regrowth could take effect (or, with
``[watcher_policy_oracle] down_horizon``, over that longer time) fits a
smaller rung.  It is the bound a forecasting policy is measured against;
with no foresight (a real cloud) it never acts.
"""

from oslo_config import cfg

from shadow_service.watcher.policies import base

GROUP = cfg.OptGroup('watcher_policy_oracle',
                     title='The oracle scaling policy (benchmarks only)',
                     help="""
Options of the ``oracle`` policy, which decides on the true future demand
that only a benchmark over the twin provides.
""")

OPTS = [
    cfg.FloatOpt('down_horizon', default=0.0, min=0.0, max=7 * 86400.0,
                 help="""
Seconds of true future demand a shrink must hold (0: twice the action's
lead time, until a regrowth could take effect).  A longer horizon trades
vCPU-hours for fewer resizes (each a reboot): the benchmark's bound for
a policy that knew how long a VM stays quiet.
"""),
]


class OraclePolicy(base.ScalingPolicy):
    """Description: decides on the true future demand.

    Requirements: ``Situation.foresight`` (benchmarks over the twin).

    Limitations: not for production; does nothing without foresight.
    """

    config_group = GROUP

    @classmethod
    def get_config_opts(cls):
        return OPTS

    def decide(self, situation):
        s = situation
        if s.foresight is None:
            return base.Decision(base.NO_ACTION, 'no foresight: the oracle '
                                 'policy is for benchmarks over the twin')
        lead = s.lead_s['horizontal' if s.mode == 'horizontal'
                        else 'vertical']
        up = s.foresight(s.now, s.now + lead)
        down = s.foresight(s.now, s.now + (self.option('down_horizon')
                                           or 2 * lead))
        return base.capacity_decision(s, up, down, 'true demand')
