"""How wrong the watcher's forecasts were, per instance and per flavor.

Every run the watcher predicts, for each watched VM, the peak of its
demand (busy vCPUs) over the lead time of a resize.  When that time has
passed it compares the prediction with the peak that was measured and
keeps the error (measured minus predicted).  :class:`ErrorStats` turns the
recent errors into a *bias* (their mean) and a *margin* (their
``quantile``-th quantile, a one-sided conformal bound): the next forecast
of that VM is raised by the margin, so a VM whose demand jumps more than
its forecaster thinks gets more headroom, and a steady one less.

Errors are kept per instance and, as a fraction of the flavor's vCPUs, per
flavor; an instance with fewer than ``min_errors`` of its own borrows its
flavor's (scaled back to vCPUs).  The statistics live in memory: after a
restart the watcher learns the errors of its forecasts of the last
``history_window`` again (their ``demand_forecast`` points), and older
ones rebuild within ``min_errors`` runs.  Pure: no I/O.
"""

import collections

import numpy as np


class ErrorStats:
    """Recent forecast errors and the margins they imply.

    Parameters
    ----------
    quantile : float
        Which quantile of the errors is the margin (0.5-0.999).
    window : int
        How many recent errors are kept per instance and per flavor.
    min_errors : int
        Fewest errors an instance needs before its own are used.
    """

    def __init__(self, quantile=0.95, window=864, min_errors=24):
        if not 0.5 <= quantile < 1.0:
            raise ValueError('quantile must be in [0.5, 1), got %r'
                             % (quantile,))
        self.quantile = float(quantile)
        self.window = int(window)
        self.min_errors = int(min_errors)
        self._by_instance = collections.defaultdict(
            lambda: collections.deque(maxlen=self.window))
        self._by_flavor = collections.defaultdict(
            lambda: collections.deque(maxlen=self.window))

    def update(self, instance_id, flavor_name, vcpus, error):
        """Keep one error (measured minus predicted peak, vCPUs)."""
        error = float(error)
        self._by_instance[instance_id].append(error)
        self._by_flavor[flavor_name].append(error / max(float(vcpus), 1.0))

    def forget(self, instance_id):
        """Drop the VM's own errors (its flavor's pooled ones stay)."""
        self._by_instance.pop(instance_id, None)

    def count(self, instance_id):
        return len(self._by_instance.get(instance_id, ()))

    def _errors(self, instance_id, flavor_name, vcpus):
        own = self._by_instance.get(instance_id)
        if own is not None and len(own) >= self.min_errors:
            return np.asarray(own, float), 'instance'
        pooled = self._by_flavor.get(flavor_name)
        if pooled is not None and len(pooled) >= self.min_errors:
            return np.asarray(pooled, float) * max(float(vcpus), 1.0), \
                'flavor'
        return None, 'none'

    def summary(self, instance_id, flavor_name, vcpus):
        """``{'bias', 'margin', 'errors', 'source'}`` for one VM; zero
        bias and margin (source ``none``) while too few errors are
        known."""
        errors, source = self._errors(instance_id, flavor_name, vcpus)
        if errors is None:
            return {'bias': 0.0, 'margin': 0.0, 'errors': 0,
                    'source': source}
        count = errors.size
        # Split-conformal rank: the bound covers a new error with at least
        # the wanted probability.
        rank = min(1.0, np.ceil((count + 1) * self.quantile) / count)
        return {'bias': float(errors.mean()),
                'margin': float(np.quantile(errors, rank)),
                'errors': int(count), 'source': source}
