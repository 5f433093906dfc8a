"""A tenant's watcher metadata that the watcher cannot use as given.

An unknown profile name is allowed (the default QoS targets apply), an
unknown scaling mode falls back to resizing, and an opt-in value that is
neither true nor false opts nothing in; each is said once per VM and
value, in one log line a newline in the value cannot forge.
"""

import logging

from tests import watcher_support

FORGED = 'no-such\n2026-01-01 00:00:00 INFO forged line'


def _warnings(tmp_path, caplog, metadata, runs=3, watched=True):
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
    assert [s.instance_id for s in steps] == ['vm-1'] * runs * watched
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


def test_the_opt_in_reads_as_oslo_config_reads_a_boolean(tmp_path, caplog):
    # As documented: true, yes, on, 1 in any case opt in; false, no, off,
    # 0 opt out; neither says nothing.
    for value in ('TRUE', 'Yes', 'on', '1'):
        assert _warnings(tmp_path, caplog,
                         {'nova_shadow_watch': value}, runs=1) == []
    for value in ('false', 'No', 'off', '0'):
        assert _warnings(tmp_path, caplog, {'nova_shadow_watch': value},
                         runs=1, watched=False) == []


def test_an_opt_in_neither_true_nor_false_is_said_once(tmp_path, caplog):
    # Before: a typo left the VM unwatched, and nothing said so.
    found = _warnings(tmp_path, caplog, {'nova_shadow_watch': 'ture\nforged'},
                      watched=False)
    assert found == [
        'Instance vm-1: nova_shadow_watch=ture\\nforged is neither true nor '
        'false (true, yes, on, 1 or false, no, off, 0); not watching it by '
        'its metadata']
