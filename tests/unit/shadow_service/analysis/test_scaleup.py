import math

import numpy as np
import pytest

from shadow_service.analysis import scaleup

SCALE = {"shadow_vcpus": 1, "full_vcpus": 4, "shadow_ram_mb": 512,
         "full_ram_mb": 8192}


def test_prior_scales_cpu_sublinearly_and_leaves_latency_alone():
    model = scaleup.ScaleUpModel()
    cpu = model.factor("cpu_ops_per_s", SCALE)
    assert cpu.factor == pytest.approx(4 ** 0.9)
    assert cpu.source == "prior" and cpu.log_sd > 0
    memory = model.factor("mem_bandwidth_gbps", SCALE)
    assert memory.factor == pytest.approx(16 ** 0.5)
    assert model.factor("net_p95_rtt_ms", SCALE).factor == 1.0
    assert model.factor("cpu_ops_per_s", None).factor == 1.0


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
