import numpy as np
import pytest

from shadow_service.analysis import calibration


def test_reliability_table_bins_and_ece():
    table = calibration.reliability([0.55, 0.55, 0.95, 1.0],
                                    [1, 0, 1, 1])
    assert [row["count"] for row in table["rows"]] == [2, 2]
    assert table["rows"][0]["observed_accuracy"] == 0.5
    assert table["ece"] == pytest.approx((2 * 0.05 + 2 * 0.025) / 4)


def test_constructed_cases_are_roughly_calibrated():
    host_c, host_o, overall_c, overall_o = calibration.run_cases(
        [], cases=60, seed=1, kind="constructed")
    table = calibration.reliability(host_c, host_o)
    assert table["count"] == len(host_c) > 60
    assert table["ece"] < 0.15
    assert 0 <= min(overall_c) and max(overall_c) <= 1


def test_trace_driven_cases_use_the_given_series():
    rng = np.random.default_rng(0)
    pool = [np.clip(50 + 20 * rng.standard_normal(400), 0, 100)]
    report = calibration.trace_driven_reliability(pool, cases=10)
    assert report["trace_driven"]["overall"]["count"] == 10
