"""``threshold``: act when the forecast's upper bound crosses a limit.

Scale up when the upper prediction bound of any watched utilisation metric
crosses its high limit within the horizon; scale down when even the upper
bound stays below the low limit for the whole horizon.  Hysteresis comes
from the gap between the two limits.
"""

from shadow_service.watcher.policies import base


class ThresholdPolicy(base.ScalingPolicy):
    def decide(self, forecasts, limits):
        below = []
        for metric, (low, high) in sorted(limits.items()):
            values = list(forecasts.get(metric) or [])
            if not values:
                continue
            peak = max(values)
            if peak > high:
                return base.Decision(
                    'resize_up',
                    '%s forecast to reach %.1f, above %.1f' % (
                        metric, peak, high),
                    metric=metric, predicted=peak, threshold=high)
            below.append(peak < low)
        if below and all(below):
            peak = max(max(forecasts[m]) for m in limits if forecasts.get(m))
            return base.Decision(
                'resize_down', 'every forecast stays below its low limit',
                predicted=peak)
        return base.Decision('none', 'forecasts within limits')
