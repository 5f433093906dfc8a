"""The steal-time detector: a VM starved by its neighbours.

CPU steal is time a vCPU was ready to run but the hypervisor ran someone
else: it says the *host* is the bottleneck, which a bigger flavor does not
cure.  :func:`detect_steal` proposes a live migration when the VM's steal
stayed above ``threshold_pct`` for ``share`` of the samples in the last
``window_s`` seconds (a single noisy sample does not move a VM).  Pure.
"""

import math

from shadow_service.watcher.policies import base


def detect_steal(values, *, step_s, threshold_pct, window_s, share=0.8):
    """A ``live_migrate`` :class:`Decision`, or None.

    ``values`` are the VM's ``cpu_steal_pct`` samples on a ``step_s``
    grid, oldest first (None or NaN where missing).
    """
    count = max(1, int(math.ceil(window_s / step_s)))
    recent = [v for v in list(values)[-count:]
              if v is not None and v == v]
    if len(recent) < max(1, int(math.ceil(share * count))):
        return None
    above = sum(1 for v in recent if v > threshold_pct)
    if above < share * len(recent):
        return None
    mean = sum(recent) / len(recent)
    return base.Decision(
        'live_migrate', 'steal above %.0f%% in %d of the last %d samples '
        '(mean %.1f%%)' % (threshold_pct, above, len(recent), mean),
        metric='cpu_steal_pct', predicted=mean, threshold=threshold_pct)
