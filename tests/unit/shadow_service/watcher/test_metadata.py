"""A tenant's watcher metadata that the watcher cannot use as given.

An unknown profile name is allowed (the default QoS targets apply) and an
unknown scaling mode falls back to resizing; each is said once per VM
and value, in one log line a newline in the value cannot forge.
"""

import logging

from tests import watcher_support

FORGED = 'no-such\n2026-01-01 00:00:00 INFO forged line'


def _warnings(tmp_path, caplog, metadata, runs=3):
    conf = watcher_support.make_conf(tmp_path)
    driver, history = watcher_support.twin(conf)
    watcher_support.place(driver, 'vm-1', [0.5] * 96, metadata=metadata)
    driver.fast_forward(4.0 * 3600.0)
    assembled = watcher_support.build(conf, driver, history)
    caplog.set_level(logging.INFO, logger='shadow_service')
    try:
        steps = watcher_support.run(assembled, driver, runs)
    finally:
        assembled.close()
    assert [s.instance_id for s in steps] == ['vm-1'] * runs
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING
            and r.name == 'shadow_service.watcher.loop']


def test_an_unknown_profile_is_said_once_and_watched_by_default(
        tmp_path, caplog):
    found = _warnings(tmp_path, caplog, {'nova_shadow_profile': FORGED})
    assert found == [
        'Instance vm-1: profile no-such\\n2026-01-01 00:00:00 INFO forged '
        'line has no QoS targets of its own; watching it against the '
        'default (cpu_steal_pct <= 10)']


def test_an_unknown_scaling_mode_is_said_once_and_resized(tmp_path,
                                                          caplog):
    found = _warnings(tmp_path, caplog,
                      {'nova_shadow_profile': 'web',
                       'nova_shadow_scaling': 'diagonal\nforged'})
    assert found == ["Instance vm-1: nova_shadow_scaling=diagonal\\nforged "
                     "is neither 'vertical' nor 'horizontal'; resizing it"]


def test_a_known_profile_and_mode_say_nothing(tmp_path, caplog):
    assert _warnings(tmp_path, caplog,
                     {'nova_shadow_profile': 'web',
                      'nova_shadow_scaling': 'Horizontal'}) == []
