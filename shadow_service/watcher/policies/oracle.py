"""``oracle``: perfect foresight of the lead-time window (benchmarks only).

Given the true future demand (``Situation.foresight``, which only a
benchmark over the twin can provide), it grows the VM to the smallest
rung that holds the real peak over the resize's lead time and shrinks it
when the real peak until a regrowth could take effect fits a smaller
rung.  It is the bound a forecasting policy is measured against; with no
foresight (a real cloud) it never acts.
"""

from shadow_service.watcher.policies import base


class OraclePolicy(base.ScalingPolicy):
    """Description: decides on the true future demand.

    Requirements: ``Situation.foresight`` (benchmarks over the twin).

    Limitations: not for production; does nothing without foresight.
    """

    def decide(self, situation):
        s = situation
        if s.foresight is None:
            return base.Decision(base.NO_ACTION, 'no foresight: the oracle '
                                 'policy is for benchmarks over the twin')
        lead = s.lead_s['horizontal' if s.mode == 'horizontal'
                        else 'vertical']
        up = s.foresight(s.now, s.now + lead)
        down = s.foresight(s.now, s.now + 2 * lead)
        return base.capacity_decision(s, up, down, 'true demand')
