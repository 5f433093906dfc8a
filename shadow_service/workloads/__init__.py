"""The workload vocabulary every part of nova-shadow shares.

What a VM will do and what its owner cares about, below both the
evaluation loop and the cloud drivers (which may import this package, and
nothing above it):

* :mod:`.profiles` resolves the profile a request names (built-in,
  operator directory, or inline) into a ``loadgen`` ``Profile``;
* :mod:`.catalogue` names the metrics, which way is better, and how a
  profile's sensitivity weighs them;
* :mod:`.qos` holds each profile's QoS targets (what its owner would put
  in an SLO), which the watcher acts on and the benchmarks score against.
"""
