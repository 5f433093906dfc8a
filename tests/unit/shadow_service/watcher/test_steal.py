from shadow_service.watcher import steal


def _detect(values):
    return steal.detect_steal(values, step_s=300, threshold_pct=10.0,
                              window_s=900)


def test_sustained_steal_proposes_a_live_migration():
    found = _detect([0, 0, 12, 15, 20])
    assert found.action == 'live_migrate' and found.metric == \
        'cpu_steal_pct'
    assert found.predicted == 47 / 3 and found.threshold == 10.0


def test_one_noisy_sample_or_missing_data_moves_nothing():
    assert _detect([0, 0, 0, 50, 0]) is None
    assert _detect([None, None, 30]) is None
    assert _detect([]) is None
