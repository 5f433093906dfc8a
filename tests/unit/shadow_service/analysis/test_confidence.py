"""Ranking confidence: the blocked pairwise comparison gives the pair
loop's figures."""

import numpy as np
import pytest

from shadow_service.analysis import confidence
from shadow_service.analysis import score


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


@pytest.mark.parametrize('hosts', [30, 200])
def test_the_normal_pairwise_agreement_is_close_to_the_draws(hosts):
    """Above ``PAIRWISE_DRAWN_HOSTS`` each pair's difference is taken as
    normal: within a percent of comparing the draws, ties included."""
    rng = np.random.default_rng(hosts)
    points = rng.uniform(40.0, 100.0, hosts)
    points[:3] = 70.0
    drawn = points[:, None] + rng.normal(0.0, rng.uniform(
        0.5, 8.0, (hosts, 1)), (hosts, 400))
    exact = confidence._pairwise_agreement(drawn, points, 2.0)
    normal = confidence._pairwise_agreement_normal(drawn, points, 2.0)
    assert np.max(np.abs(exact - normal)) < 0.01


def test_draws_shrink_with_many_hosts_but_not_below_the_floor():
    assert confidence.bounded_draws(400, 16) == 400
    assert confidence.bounded_draws(400, 128) == 400
    assert confidence.bounded_draws(400, 256) == 200
    assert confidence.bounded_draws(400, 1000) == confidence.MIN_DRAWS
    assert confidence.bounded_draws(50, 1000) == 50


def test_a_thousand_hosts_rank_with_a_confidence_for_each():
    rng = np.random.default_rng(3)
    values = rng.uniform(50.0, 150.0, (1000, 2))
    sds = np.full(values.shape, 5.0)
    weights = {'cpu_ops_per_s': 1.0, 'disk_iops': 1.0}
    from shadow_service.analysis import score
    metrics = sorted(weights)
    point = score.scores(metrics, weights, values)
    result = confidence.rank_confidence(metrics, weights, values, sds, point)
    assert result.per_host.shape == (1000,)
    assert np.all((result.per_host >= 0) & (result.per_host <= 1))
    # The best host is more often right about its order than the median.
    best = int(np.argmax(point))
    assert result.per_host[best] > np.median(result.per_host)
    assert 0.0 <= result.overall <= 1.0


def test_tied_hosts_agree_when_within_the_tie_margin_both_ways():
    """Many hosts tied on their point score (a cluster of identical
    hosts): the normal agreement of a tied pair is the probability that
    the two are within the tie margin, as the draws count it, seen the
    same from either host."""
    rng = np.random.default_rng(5)
    base = rng.normal(50.0, 3.0, (40, 1))
    drawn = base + rng.normal(0.0, 2.0, (40, 20000))
    points = np.round(base[:, 0])
    assert (points[:, None] == points[None, :]).sum() > 2 * 40
    exact = confidence._pairwise_agreement(drawn, points, 2.0)
    normal = confidence._pairwise_agreement_normal(drawn, points, 2.0)
    assert np.max(np.abs(exact - normal)) < 0.003


@pytest.mark.parametrize('hosts, spread', [(200, 1.0), (1000, 3.0),
                                           (300, 40.0)])
def test_far_pairs_are_counted_as_the_computation_gives_them(hosts, spread):
    """Pairs far apart (agreement 1.0 exactly) are counted, not computed:
    the same figures as computing every pair, ties and hosts without
    spread included."""
    rng = np.random.default_rng(hosts)
    points = rng.uniform(0.0, 100.0, hosts)
    points[:5] = 50.0
    points[5:9] = points[9]
    drawn = points[:, None] + rng.normal(0.0, rng.uniform(
        0.0, spread, (hosts, 1)), (hosts, 100))
    drawn[10] = points[10]
    skipped = confidence._pairwise_agreement_normal(drawn, points, 2.0)
    computed = confidence._pairwise_agreement_normal(drawn, points, 2.0,
                                                     skip_far=False)
    np.testing.assert_allclose(skipped, computed, rtol=0, atol=1e-12)


def test_drawn_scores_are_each_draw_scored_alone():
    # The scores of a (hosts, metrics, draws) array are those of each
    # draw's (hosts, metrics) values, with every metric present and with
    # one missing.
    metrics = ['cpu_ops_per_s', 'disk_p95_latency_ms', 'cpu_steal_pct']
    weights = {'cpu_ops_per_s': 2.0, 'disk_p95_latency_ms': 0.5,
               'cpu_steal_pct': 1.0}
    rng = np.random.default_rng(7)
    values = np.abs(rng.normal(50.0, 20.0, (6, 3)))
    sds = np.full((6, 3), 5.0)
    drawn = confidence.draw(metrics, values, sds, 40, seed=3)
    assert drawn.min() >= 0.0 and drawn[:, 2].max() <= 100.0
    gapped = drawn.copy()
    gapped[4, 1, :] = np.nan
    for array in (drawn, gapped):
        together = score.scores(metrics, weights, array)
        assert together.shape == (6, 40)
        for k in range(array.shape[2]):
            np.testing.assert_allclose(
                together[:, k], score.scores(metrics, weights,
                                             array[:, :, k]),
                rtol=0, atol=1e-9)


def test_kept_noise_is_the_generators_own_draw():
    """Noise of fewer hosts is taken from the noise kept from a larger
    draw: the same figures as the seeded generator's own draw of that
    shape, whatever was drawn before, and a caller changing its copy
    changes no later draw."""
    confidence.forget_noise()
    try:
        for seed, shape in ((0, (30, 4, 50)), (0, (29, 4, 50)),
                            (0, (7, 4, 50)), (0, (31, 4, 50)),
                            (1, (29, 4, 50)), (0, (29, 3, 50)),
                            (0, (29, 4, 51)), (0, (0, 4, 50))):
            drawn = confidence.standard_normal(seed, shape)
            expected = np.random.default_rng(seed).standard_normal(shape)
            np.testing.assert_array_equal(drawn, expected)
            drawn += 1.0
        assert confidence.standard_normal(0, (3, 4, 50)).flags.writeable
    finally:
        confidence.forget_noise()


def test_a_draw_from_kept_noise_is_the_draw_made_afresh():
    rng = np.random.default_rng(5)
    metrics = ['cpu_ops_per_s', 'cpu_steal_pct', 'mem_latency_ns']
    values = rng.uniform(1.0, 90.0, (40, 3))
    sds = values * 0.2
    values[3, 1] = np.nan
    confidence.forget_noise()
    try:
        afresh = [confidence.draw(metrics, values[:n], sds[:n], 60, 0,
                                  relative=relative)
                  for n in (39, 40) for relative in (False, True)]
        # Now the 40 hosts' noise is kept: 39 hosts take its rows.
        kept = [confidence.draw(metrics, values[:n], sds[:n], 60, 0,
                                relative=relative)
                for n in (39, 40) for relative in (False, True)]
    finally:
        confidence.forget_noise()
    for one, other in zip(afresh, kept):
        np.testing.assert_array_equal(one, other)


def normal_pair_loop(drawn_scores, point_scores, tie_margin):
    """:func:`confidence._pairwise_agreement_normal`'s figures, one pair
    at a time."""
    from scipy import special

    mean = np.nanmean(drawn_scores, axis=1)
    var = np.nanvar(drawn_scores, axis=1)
    hosts = len(point_scores)
    per_host = np.zeros(hosts)
    for i in range(hosts):
        for j in range(hosts):
            if i == j:
                continue
            difference, spread = mean[i] - mean[j], np.sqrt(var[i] + var[j])
            if point_scores[i] == point_scores[j]:
                rate = (special.ndtr((tie_margin - difference) / spread)
                        - special.ndtr((-tie_margin - difference) / spread)
                        if spread > 0 else float(abs(difference)
                                                 <= tie_margin))
            elif point_scores[i] > point_scores[j]:
                rate = (special.ndtr((difference + tie_margin) / spread)
                        if spread > 0 else float(difference >= -tie_margin))
            else:
                rate = (special.ndtr((tie_margin - difference) / spread)
                        if spread > 0 else float(difference <= tie_margin))
            per_host[i] += min(max(rate, 0.0), 1.0)
    return per_host / (hosts - 1)


def test_the_normal_agreement_of_many_tied_hosts_is_the_pair_loops():
    """Hosts in groups of equal point scores (tied pairs in every block
    of the comparison, some with no spread at all): each pair's figure
    is the one the pair alone gives."""
    rng = np.random.default_rng(8)
    points = np.repeat(rng.uniform(40.0, 100.0, 30), 7)[:200]
    drawn = points[:, None] + rng.normal(0.0, 3.0, (200, 60))
    drawn[:7] = points[:7, None]          # a tied group drawn exactly
    np.testing.assert_allclose(
        confidence._pairwise_agreement_normal(drawn, points, 2.0),
        normal_pair_loop(drawn, points, 2.0), rtol=0, atol=1e-12)


def test_kept_noise_stays_within_its_bound(monkeypatch):
    monkeypatch.setattr(confidence, 'NOISE_KEPT_VALUES', 1000)
    confidence.forget_noise()
    try:
        for draws in (10, 11, 12, 13):
            confidence.standard_normal(0, (20, 2, draws))
            assert sum(a.size for a in confidence._noise.values()) <= 1000
        assert list(confidence._noise) == [(0, (2, 12)), (0, (2, 13))]
        # More than the bound: drawn, not kept.
        confidence.standard_normal(0, (600, 2, 1))
        assert (0, (2, 1)) not in confidence._noise
    finally:
        confidence.forget_noise()
