"""Missing samples keep their place in the watcher's forecasts.

A VM's history has gaps (a collector restarted, a write was lost).  The
forecasters fill gaps within a series (by season where they can), and a
forecast whose newest steps are missing is made from the last sample but
starts now.  Closing the gap up instead shifted the daily season (the
forecast read yesterday's demand from hours too early) and the horizon.

The samples are written to the watcher's real history store as a
hypervisor would report them; the watcher is assembled on the twin.
"""

import numpy as np
import pytest

from shadow_service import measurements as names
from shadow_service.clouds import base as clouds_base
from shadow_service.history import base as history_base
from tests import watcher_support

STEP = watcher_support.STEP_S
DAY = 86400.0
#: 11:30 on the third day; the VM's first sample came at 00:05 on the
#: first day (two seasons are known, so the forecast is seasonal).
NOW = 2 * DAY + 11.5 * 3600.0
#: Busy vCPUs of the 8-vCPU VM: 6 from 12:00 to 13:00 every day, else 1.
IDLE, PEAK = 1.0, 6.0
#: Two hours missing early this morning, far from the daily peak (longer
#: than the forecasters interpolate: filled from one day earlier).
MORNING_GAP = (2 * DAY + 3 * 3600.0, 2 * DAY + 5 * 3600.0)


def _busy(t):
    return PEAK if 12 * 3600.0 < t % DAY <= 13 * 3600.0 else IDLE


def _watcher(tmp_path, **options):
    tmp_path.mkdir(parents=True, exist_ok=True)
    conf = watcher_support.make_conf(tmp_path, watcher=dict(
        {'forecaster': 'seasonal_naive', 'history_window': 3 * DAY},
        **options))
    driver, history = watcher_support.twin(conf)
    return watcher_support.build(conf, driver, history), history


def _write(history, metric, value_at, missing=(), until=NOW):
    """Samples of ``vm-1``'s ``metric`` every ``STEP`` up to ``until``,
    none in the ``missing`` ``(since, until)`` spans."""
    times = [t for t in np.arange(STEP, until + 1.0, STEP)
             if not any(low <= t < high for low, high in missing)]
    history.write([
        history_base.Point(
            names.INSTANCE_METRIC,
            {names.TAG_INSTANCE: 'vm-1', names.TAG_HOST: 'host-1',
             names.TAG_METRIC: metric},
            {names.FIELD_VALUE: float(value_at(t))}, t)
        for t in times])


def _instance(profile='batch-cpu'):
    return clouds_base.Instance(
        'vm-1', 'host-1', {'name': 'large', 'vcpus': 8},
        metadata={'nova_shadow_watch': 'true',
                  'nova_shadow_profile': profile})


def _forecast(tmp_path, missing):
    assembled, history = _watcher(tmp_path)
    try:
        _write(history, 'cpu_util_pct', lambda t: 100.0 * _busy(t) / 8.0,
               missing)
        situation = assembled.watcher.situation(_instance(), NOW)
        return situation.forecast
    finally:
        assembled.close()


@pytest.mark.parametrize('missing', [
    [MORNING_GAP],
    # The newest step (the most the watcher decides with: with two
    # missing it waits for samples).
    [(NOW - 1.0, NOW + 1.0)],
], ids=['gap-this-morning', 'newest-step'])
def test_a_gap_does_not_shift_the_daily_peak_in_the_forecast(tmp_path,
                                                             missing):
    # Over the shrink horizon (8 steps, to 12:10) the forecast meets the
    # 12:00 peak it saw yesterday.  With the gap closed up it read
    # yesterday from two hours (or one step) too early: no peak at all,
    # or one step late.  The days are alike and the gap is filled from
    # the day before, so the forecast is the same as without it.  The
    # decision itself also reads yesterday's peak directly, but the
    # forecast is what is written, learnt from (its error margins) and
    # decided on alone with ``seasonal_weight`` 0.
    complete = _forecast(tmp_path / 'complete', [])
    gappy = _forecast(tmp_path / 'gappy', missing)
    assert complete['mean'] == pytest.approx([IDLE] * 6 + [PEAK] * 2)
    assert complete['raw_peak'] == pytest.approx(IDLE)
    for key in ('mean', 'lower', 'upper'):
        assert gappy[key] == pytest.approx(complete[key]), key
    assert gappy['peak_down'] == pytest.approx(complete['peak_down'])
    assert gappy['trend'] == pytest.approx(complete['trend'])


def test_a_qos_forecast_whose_newest_samples_are_missing_starts_now(
        tmp_path):
    # Disk latency of a database VM rising 0.05 ms a step to 4.93 ms now
    # (its target: at most 5 ms); its newest three samples are late.  The
    # breach due in two steps, within a migration's lead, is still
    # stated there, not three steps later (past the lead: no migration).
    def latency(t):
        return 4.93 - 0.05 * (NOW - t) / STEP

    found = {}
    for name, missing in (('complete', []),
                          ('late', [(NOW - 3 * STEP + 1.0, NOW + 1.0)])):
        assembled, history = _watcher(tmp_path / name,
                                      forecaster='naive')
        try:
            _write(history, 'cpu_util_pct', lambda t: 50.0)
            _write(history, 'disk_p95_latency_ms', latency, missing)
            breaches = assembled.watcher._breaches(
                _instance('db-oltp'), 'db-oltp', NOW)
            found[name] = breaches['disk_p95_latency_ms']
        finally:
            assembled.close()
    assert found['complete'].breach_in_s == 2 * STEP
    assert found['late'].breach_in_s == found['complete'].breach_in_s
    assert found['late'].upper == pytest.approx(found['complete'].upper)


def test_a_gap_does_not_steepen_the_trend(tmp_path):
    # Demand rising 0.1 vCPUs a step over the last hour, one sample of
    # the trend's six steps missing: still 0.1 a step (closed up, five
    # samples spread over six steps made it 0.12), extrapolated from the
    # newest sample.
    def busy(t):
        return IDLE + 0.1 * max(0.0, 12 - (NOW - t) / STEP)

    found = {}
    for name, missing in (('complete', []),
                          ('gappy', [(NOW - 2 * STEP - 1.0,
                                      NOW - 2 * STEP + 1.0)])):
        assembled, history = _watcher(tmp_path / name)
        try:
            _write(history, 'cpu_util_pct',
                   lambda t: 100.0 * busy(t) / 8.0, missing)
            found[name] = assembled.watcher.situation(_instance(),
                                                      NOW).forecast
        finally:
            assembled.close()
    assert found['complete']['trend'] == pytest.approx(0.1)
    assert found['gappy']['trend'] == pytest.approx(0.1)
    assert found['gappy']['upper'] == pytest.approx(
        found['complete']['upper'])
