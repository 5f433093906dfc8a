import pytest

from shadow_service.watcher.policies import base
from shadow_service.watcher.policies import threshold


def test_scales_up_when_the_upper_bound_crosses_the_high_limit():
    decision = threshold.ThresholdPolicy().decide(
        {'cpu_util_pct': [50, 70, 91]}, {'cpu_util_pct': (20, 85)})
    assert decision.action == 'resize_up'
    assert decision.predicted == 91 and decision.threshold == 85


def test_scales_down_only_when_every_metric_stays_low():
    policy = threshold.ThresholdPolicy()
    limits = {'cpu_util_pct': (20, 85), 'mem_util_pct': (20, 85)}
    assert policy.decide({'cpu_util_pct': [5, 10], 'mem_util_pct': [10]},
                         limits).action == 'resize_down'
    assert policy.decide({'cpu_util_pct': [5, 10], 'mem_util_pct': [50]},
                         limits).action == 'none'


def test_unknown_action_is_rejected():
    with pytest.raises(ValueError, match='unknown action'):
        base.Decision('explode', 'why not')
