"""How noisy the twin's measurements are, metric by metric.

Every sample the twin writes is its true (model) value times ``1 + e``,
``e`` normal with standard deviation ``noise_pct`` % times the metric's
scale below.  The figures come from the lab (``doc/source/lab.rst``):
real loadgen runs, each a confined process on a small CPU share of one
machine, whose half-second samples varied within a run by a median
coefficient of variation of about 0.11 for CPU throughput, twice that
for disk throughput and about 1.3 times for disk latency
(``benchmarks/results/twin_fidelity-run1.json``, ``lab_noise_cv``).

* :data:`NOISE_PCT`: the noise of a shadow's or VM's samples, in percent
  (the level of CPU throughput, and of every metric without a scale);
* :data:`METRIC_NOISE_SCALE`: metrics the lab found noisier;
* :data:`HOST_NOISE_PCT`: host monitoring (a minute or more averaged, not
  measured in the lab; an assumption kept from the twin's first version).

Change them with ``[sim] noise_pct``, ``[sim] metric_noise_scale`` and
``[sim] host_noise_pct``.  This module has no dependencies so the option
definitions can read it.

Where the deviates ``e`` come from is ``[sim] noise_stream``
(:data:`NOISE_STREAMS`): ``shared``, one generator seeded by the twin's
seed and drawn from in the order the samples are written, or ``keyed``,
each deviate a function of the seed, the sampled object (VM, shadow or
host), the metric and the sample's time only (see
:func:`shadow_service.clouds.sim.engine.keyed_normal`).
"""

#: Standard deviation of a sample's multiplicative noise, % (the lab's
#: CPU throughput: 0.11 at half-second samples).
NOISE_PCT = 10.0

#: Per metric: its noise as a multiple of ``noise_pct`` (the lab's
#: coefficient of variation of the metric over that of CPU throughput).
#: Metrics not listed: 1.
METRIC_NOISE_SCALE = {
    'disk_iops': 2.0,
    'disk_mbps': 2.0,
    'disk_p95_latency_ms': 1.3,
}

#: Standard deviation of host monitoring's multiplicative noise, %.
HOST_NOISE_PCT = 3.0

#: Where the noise's deviates come from (``[sim] noise_stream``).
NOISE_SHARED = 'shared'
NOISE_KEYED = 'keyed'
NOISE_STREAMS = (NOISE_SHARED, NOISE_KEYED)


def metric_noise_pct(metric, noise_pct, scale=None):
    """The noise (%) of ``metric``'s samples: ``noise_pct`` times its
    scale in ``scale`` (default :data:`METRIC_NOISE_SCALE`; 1 when not
    listed)."""
    if scale is None:
        scale = METRIC_NOISE_SCALE
    return float(noise_pct) * float(scale.get(metric, 1.0))
