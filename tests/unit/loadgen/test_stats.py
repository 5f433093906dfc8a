"""Latency histogram and /proc readers."""

import os

from loadgen import stats


def test_percentiles_are_within_bucket_resolution():
    counts = [0] * stats.NUM_BUCKETS
    for latency_ns in range(1000, 101000, 100):   # uniform 1..101 us
        counts[stats.bucket_of(latency_ns)] += 1
    result = stats.percentiles_ns(counts, (0.5, 0.95, 0.99))
    for quantile, expected in ((0.5, 51000), (0.95, 96000), (0.99, 100000)):
        assert abs(result[quantile] - expected) / expected < 0.05


def test_no_operations_means_no_percentiles():
    assert stats.percentiles_ns([0] * stats.NUM_BUCKETS, (0.5,)) == {}


def test_proc_readers_see_this_process():
    assert stats.process_cpu_seconds(os.getpid()) >= 0
    before = stats.read_cpu_times()
    sum(i * i for i in range(300000))
    busy, steal = stats.cpu_percentages(stats.read_cpu_times(), before)
    assert busy is None or 0 <= busy <= 100
    assert steal is None or 0 <= steal <= 100
    assert stats.process_cpu_seconds(2 ** 22 + 12345) is None
