"""Ranking confidence: the blocked pairwise comparison gives the pair
loop's figures."""

import numpy as np
import pytest

from shadow_service.analysis import confidence


def pair_loop(drawn_scores, point_scores, tie_margin):
    """The definition, one pair at a time."""
    hosts = drawn_scores.shape[0]
    per_host = np.empty(hosts)
    for i in range(hosts):
        right = []
        for j in range(hosts):
            if i == j:
                continue
            difference = drawn_scores[i] - drawn_scores[j]
            expected = np.sign(point_scores[i] - point_scores[j])
            agrees = (np.abs(difference) <= tie_margin) | (
                (expected != 0) & (np.sign(difference) == expected))
            right.append(np.mean(agrees))
        per_host[i] = np.mean(right)
    return per_host


@pytest.mark.parametrize('hosts', [2, 3, 17, 60])
def test_pairwise_agreement_equals_the_pair_loop(hosts):
    rng = np.random.default_rng(hosts)
    points = rng.uniform(40.0, 100.0, hosts)
    points[:2] = 70.0                      # a tie in the point scores
    drawn = points[:, None] + rng.normal(0.0, 5.0, (hosts, 400))
    np.testing.assert_allclose(
        confidence._pairwise_agreement(drawn, points, 2.0),
        pair_loop(drawn, points, 2.0), rtol=0, atol=1e-12)


def test_blocks_smaller_than_one_host_still_cover_every_host(monkeypatch):
    monkeypatch.setattr(confidence, '_BLOCK_ELEMENTS', 1)
    rng = np.random.default_rng(5)
    points = rng.uniform(0.0, 100.0, 9)
    drawn = points[:, None] + rng.normal(0.0, 10.0, (9, 50))
    np.testing.assert_allclose(
        confidence._pairwise_agreement(drawn, points, 2.0),
        pair_loop(drawn, points, 2.0), rtol=0, atol=1e-12)
