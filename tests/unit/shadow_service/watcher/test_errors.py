import numpy as np
import pytest

from shadow_service.watcher import errors


def test_no_margin_until_enough_errors_are_known():
    stats = errors.ErrorStats(min_errors=5)
    for error in (1.0, 2.0, 3.0, 4.0):
        stats.update('vm', 'm1', 4, error)
    assert stats.summary('vm', 'm1', 4) == {
        'bias': 0.0, 'margin': 0.0, 'errors': 0, 'source': 'none'}


def test_the_margin_is_a_conformal_quantile_of_the_instance_errors():
    stats = errors.ErrorStats(quantile=0.9, min_errors=10)
    values = np.arange(1.0, 21.0)           # 1..20
    for error in values:
        stats.update('vm', 'm1', 4, error)
    summary = stats.summary('vm', 'm1', 4)
    assert summary['source'] == 'instance'
    assert summary['bias'] == pytest.approx(10.5)
    # ceil(21 * 0.9) / 20 = 0.95 quantile of 1..20
    assert summary['margin'] == pytest.approx(np.quantile(values, 0.95))


def test_a_new_instance_borrows_its_flavors_errors_scaled_to_its_size():
    stats = errors.ErrorStats(quantile=0.5, min_errors=3)
    for error in (2.0, 2.0, 2.0):           # 0.5 of a 4-vCPU flavor
        stats.update('old', 'm1', 4, error)
    summary = stats.summary('new', 'm1', 8)
    assert summary['source'] == 'flavor'
    assert summary['margin'] == pytest.approx(4.0)


def test_only_the_most_recent_errors_count():
    stats = errors.ErrorStats(quantile=0.5, window=3, min_errors=3)
    for error in (100.0, 1.0, 1.0, 1.0):
        stats.update('vm', 'm1', 4, error)
    assert stats.summary('vm', 'm1', 4)['margin'] == pytest.approx(1.0)


def test_a_quantile_out_of_range_is_refused():
    with pytest.raises(ValueError, match='quantile'):
        errors.ErrorStats(quantile=1.0)
