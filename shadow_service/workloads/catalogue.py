"""The metric catalogue: names, directions, and sensitivity weights.

Names and directions follow ``doc/source/contributor/contracts.rst``; change
them there first. ``SENSITIVITY_METRICS`` maps a profile's sensitivity
categories to the metrics that express them; a metric listed under several
categories receives weight from each of them.
"""

HIGHER = "higher"
LOWER = "lower"

METRIC_DIRECTIONS = {
    "cpu_ops_per_s": HIGHER,
    "cpu_steal_pct": LOWER,
    "mem_bandwidth_gbps": HIGHER,
    "mem_latency_ns": LOWER,
    "disk_iops": HIGHER,
    "disk_mbps": HIGHER,
    "disk_p95_latency_ms": LOWER,
    "net_rps": HIGHER,
    "net_p95_rtt_ms": LOWER,
    "net_mbps": HIGHER,
}

# Metrics whose value is a percentage of a whole; "goodness" is 100 - value.
PERCENT_METRICS = frozenset({"cpu_steal_pct"})

SENSITIVITY_METRICS = {
    "cpu": ("cpu_ops_per_s", "cpu_steal_pct"),
    "memory": ("mem_bandwidth_gbps", "mem_latency_ns"),
    "io": ("disk_iops", "disk_p95_latency_ms"),
    "network": ("net_rps", "net_mbps"),
    "latency": ("net_p95_rtt_ms", "disk_p95_latency_ms", "mem_latency_ns"),
}


def metric_weights_from_sensitivity(sensitivity, overrides=None):
    """Turn a profile's sensitivity into per-metric weights.

    Each category's weight is split evenly over its metrics; weights of a
    metric named by several categories add up. ``overrides`` (operator
    configuration, ``{metric: multiplier}``) multiplies the result.

    Parameters
    ----------
    sensitivity : dict
        ``{category: weight}``; unknown categories and negative or
        non-numeric weights are ignored.
    overrides : dict, optional
        ``{metric: multiplier}``.

    Returns
    -------
    dict
        ``{metric: weight}`` with only positive weights, summing to 1, or
        an empty dict when nothing positive remains.
    """
    weights = {}
    for category, category_weight in (sensitivity or {}).items():
        metrics = SENSITIVITY_METRICS.get(category)
        try:
            category_weight = float(category_weight)
        except (TypeError, ValueError):
            continue
        if not metrics or not category_weight > 0:
            continue
        for metric in metrics:
            weights[metric] = (weights.get(metric, 0.0)
                               + category_weight / len(metrics))
    for metric, multiplier in (overrides or {}).items():
        if metric in weights:
            weights[metric] *= max(float(multiplier), 0.0)
    weights = {m: w for m, w in weights.items() if w > 0}
    total = sum(weights.values())
    return {m: w / total for m, w in weights.items()} if total else {}
