import math

import numpy as np
import pytest

from shadow_service.analysis import scaleup

SCALE = {"load_ratio": 4.0, "shadow_vcpus": 1, "full_vcpus": 4,
         "shadow_ram_mb": 512, "full_ram_mb": 8192}


def test_prior_scales_throughput_by_the_load_and_leaves_latency_alone():
    model = scaleup.ScaleUpModel()
    cpu = model.factor("cpu_ops_per_s", SCALE)
    assert cpu.factor == pytest.approx(4.0)
    assert cpu.source == "prior" and cpu.log_sd > 0
    # Every throughput metric follows the load, not the vCPUs or the RAM.
    for metric in scaleup.RATE_METRICS:
        assert model.factor(metric, SCALE).factor == pytest.approx(4.0)
    assert model.factor("net_p95_rtt_ms", SCALE).factor == 1.0
    assert model.factor("cpu_steal_pct", SCALE).factor == 1.0
    assert model.factor("cpu_ops_per_s", None).factor == 1.0


def test_rounding_gives_the_shadow_more_vcpus_but_not_more_load():
    """A 2 vCPU request's shadow gets 1 vCPU (half) yet runs a quarter of
    the load: throughput scales by 4, the shadow's own utilisation by 2."""
    model = scaleup.ScaleUpModel()
    scale = {"load_ratio": 4.0, "shadow_vcpus": 1, "full_vcpus": 2}
    assert model.factor("net_rps", scale).factor == pytest.approx(4.0)
    assert model.factor("cpu_util_pct", scale).factor == pytest.approx(2.0)
    assert model.factor("cpu_util_pct", SCALE).source == "same flavor"


def test_a_scale_without_load_ratio_uses_the_vcpu_ratio():
    model = scaleup.ScaleUpModel()
    scale = {"shadow_vcpus": 1, "full_vcpus": 4}
    assert model.factor("cpu_ops_per_s", scale).factor == pytest.approx(4.0)


def test_learned_correction_replaces_the_prior():
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(30):
        full = int(rng.choice([2, 4, 8]))
        shadow_value = rng.uniform(500, 1500)
        pairs.append({"metric": "cpu_ops_per_s",
                      "shadow_value": shadow_value,
                      "full_value": shadow_value * full ** 0.7
                      * math.exp(0.02 * rng.standard_normal()),
                      "shadow_vcpus": 1, "full_vcpus": full})
    model = scaleup.ScaleUpModel().fit(pairs)
    factor = model.factor("cpu_ops_per_s", SCALE)
    assert factor.factor == pytest.approx(4 ** 0.7, rel=0.03)
    assert factor.source.startswith("learned")
    assert factor.log_sd < 0.05
    assert model.factor("disk_iops", SCALE).source == "prior"


def test_two_pairs_at_two_ratios_keep_the_prior_exponent():
    # Two pairs fit a line through two points exactly: no spread is left
    # to state (it was infinite), so the offset is learned at the prior's
    # exponent, as for pairs that all share one ratio.
    pairs = [{"metric": "cpu_ops_per_s", "shadow_value": 1000.0,
              "full_value": 1000.0 * gain, "load_ratio": ratio}
             for ratio, gain in ((4.0, 3.0), (8.0, 5.0))]

    model = scaleup.ScaleUpModel(min_pairs=2).fit(pairs)
    factor = model.factor("cpu_ops_per_s", SCALE)

    assert factor.source == "learned from 2 pairs"
    assert math.isfinite(factor.log_sd) and factor.log_sd > 0
    assert factor.factor == pytest.approx(
        4.0 * math.sqrt(3.0 / 4.0 * 5.0 / 8.0))



@pytest.mark.parametrize("side", ["shadow_value", "full_value"])
@pytest.mark.parametrize("odd", [0.0, -5.0, 1e300, 1e-300, float("nan"),
                                 float("inf"), None, "x"])
def test_a_pair_that_is_no_measurement_is_not_fitted(side, odd):
    pairs = [{"metric": "cpu_ops_per_s", "shadow_value": 100.0 + i,
              "full_value": (100.0 + i) * 4 ** 0.7 * (1 + 0.01 * (i % 3)),
              "shadow_vcpus": 1, "full_vcpus": [2, 4, 8][i % 3]}
             for i in range(12)]
    clean = scaleup.ScaleUpModel().fit(pairs[:-1])
    pairs[-1][side] = odd

    model = scaleup.ScaleUpModel().fit(pairs)

    assert model.learned["cpu_ops_per_s"] == pytest.approx(
        clean.learned["cpu_ops_per_s"])
    assert math.isfinite(model.factor("cpu_ops_per_s", SCALE).factor)
