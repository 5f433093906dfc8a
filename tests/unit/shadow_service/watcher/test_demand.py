"""A VM's utilisation converted into demand (busy vCPUs).

A history bucket's mean is measured over the ``step`` before the end of
the bucket: it is converted on the capacity the VM had then, so the
bucket in which a resize (or a scale-out) took effect counts the new
capacity.  The VM's utilisation is written to a real history store as a
hypervisor would report it, and the watcher learns of the resize or
scale-out as it does when it sees one done.
"""

import math

import numpy as np
import pytest

from shadow_service import measurements as names
from shadow_service.clouds import base as clouds_base
from shadow_service.history import base as history_base
from shadow_service.watcher import actuator
from tests import watcher_support

STEP = watcher_support.STEP_S
#: The watcher's run: six hours after the VM's first sample.
NOW = 6 * 3600.0
#: The run that started the action, three samples before ``NOW``.
STARTED = NOW - 3 * STEP
BUSY = 3.0


@pytest.fixture
def watched(tmp_path):
    """The watcher on the twin and its history store (closed after)."""
    conf = watcher_support.make_conf(tmp_path)
    driver, history = watcher_support.twin(conf)
    assembled = watcher_support.build(conf, driver, history)
    try:
        yield assembled.watcher, history
    finally:
        assembled.close()


def _write(history, util_at, until=NOW, since=STEP):
    """Samples of ``vm-1`` every ``STEP`` from ``since`` to ``until``:
    ``util_at(t)`` percent."""
    history.write([
        history_base.Point(
            names.INSTANCE_METRIC,
            {names.TAG_INSTANCE: 'vm-1', names.TAG_HOST: 'host-1',
             names.TAG_METRIC: 'cpu_util_pct'},
            {names.FIELD_VALUE: float(util_at(t))}, t)
        for t in np.arange(since, until + 1.0, STEP)])


def _instance(vcpus, metadata=None):
    return clouds_base.Instance(
        'vm-1', 'host-1', {'name': '%d-vcpus' % vcpus, 'vcpus': vcpus},
        metadata=dict(metadata or {}))


def _shrunk(watcher, history):
    """``vm-1`` ran ``BUSY`` vCPUs on 8 vCPUs; a resize to 4 started at
    ``STARTED`` took effect ``resize_duration`` later and was seen done
    by the next run.  Returns the instance as it is now."""
    effective = STARTED + watcher.opts.resize_duration
    _write(history, lambda t: 100.0 * BUSY / (4.0 if t >= effective
                                              else 8.0))
    watcher._vcpus['vm-1'] = [(-math.inf, 8.0)]
    watcher._after_done(actuator.Pending(
        'd-1', 'vm-1', 'resize_down', STARTED, STARTED + 3600.0,
        target_flavor={'name': '4-vcpus', 'vcpus': 4}), STARTED + STEP)
    return _instance(4)


def test_the_bucket_a_shrink_took_effect_in_is_on_the_new_vcpus(watched):
    watcher, history = watched
    instance = _shrunk(watcher, history)
    times, util, demand = watcher._demand(instance, NOW)
    found = np.isfinite(demand)
    # Every sample, the one taken first on 4 vCPUs (at 75 %) too,
    # is the same 3 busy vCPUs, not 75 % of the 8 vCPUs before.
    assert found.sum() >= 60
    assert demand[found] == pytest.approx(BUSY)
    assert util[-3:] == pytest.approx([75.0] * 3)
    # The times are still the buckets' starts.
    assert times[-1] == pytest.approx(NOW + 1e-3 - STEP)
    # The demand ceiling learnt from the same history (a day of it,
    # read on its own) has no peak above them either.
    ceiling, before = watcher._ceiling(instance, demand, NOW)
    assert ceiling == pytest.approx(
        BUSY * (1.0 + watcher.opts.ceiling_margin))
    assert before == ceiling


def test_a_scale_out_counts_its_new_member_from_its_first_bucket(watched):
    # A horizontally scaled VM on 4 vCPUs; a scale-out to two members
    # (booted ``boot_duration`` after it started) halves its share of
    # the group's ``BUSY`` vCPUs.
    watcher, history = watched
    effective = STARTED + watcher.opts.boot_duration
    _write(history, lambda t: 100.0 * BUSY / (8.0 if t >= effective
                                              else 4.0))
    watcher._member_counts['vm-1'] = [(-math.inf, 1)]
    watcher._after_done(actuator.Pending(
        'd-1', 'vm-1', 'scale_out', STARTED, STARTED + 3600.0,
        siblings=['vm-1-2'], joined=['vm-1-2']), STARTED + STEP)
    instance = _instance(4, {'nova_shadow_scaling': 'horizontal'})
    _times, _util, demand = watcher._demand(instance, NOW)
    found = np.isfinite(demand)
    assert demand[found] == pytest.approx(BUSY)


def test_past_demand_is_on_the_same_vcpus(watched):
    # A day later, the shrink is read back for yesterday's peak and the
    # demand that recurs at this time of day: still 3 busy vCPUs.
    watcher, history = watched
    instance = _shrunk(watcher, history)
    later = NOW + 86400.0
    _write(history, lambda t: 100.0 * BUSY / 4.0, until=later,
           since=NOW + STEP)
    assert watcher._yesterday_peak(instance, later - 6 * STEP,
                                   12 * STEP) == pytest.approx(BUSY)
    ends = np.arange(STEP, NOW + 1.0, STEP) + 1e-3
    effective = STARTED + watcher.opts.resize_duration
    util = np.where(ends - 1e-3 >= effective, 75.0, 37.5)
    demand, _hidden = watcher._past_demand(instance, ends, util)
    assert demand == pytest.approx(BUSY)


def test_an_unseen_resize_counts_from_the_newest_bucket_on(watched):
    # The VM is on 4 vCPUs, the watcher knew it on 8 and saw no resize:
    # only the newest sample is taken to be on the new flavor, by every
    # reading of the history.
    watcher, history = watched
    _write(history, lambda t: 37.5)
    watcher._vcpus['vm-1'] = [(-math.inf, 8.0)]
    instance = _instance(4)
    _times, _util, demand = watcher._demand(instance, NOW)
    assert demand[-1] == pytest.approx(1.5)
    assert demand[-2] == pytest.approx(BUSY)
    ends = np.arange(STEP, NOW + 1.0, STEP) + 1e-3
    past, _hidden = watcher._past_demand(
        instance, ends, np.full(len(ends), 37.5))
    assert past[-1] == pytest.approx(1.5)
    assert past[:-1] == pytest.approx(BUSY)
