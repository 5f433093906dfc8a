"""When a Nova notification is recorded: Nova's time, on the service's
clock."""

import datetime
import time

from oslo_utils import timeutils

from shadow_service import notifications


def test_nova_s_timestamp_is_read_as_utc():
    # What oslo.messaging's Notifier puts in every message Nova sends.
    before = time.time()
    stamp = str(timeutils.utcnow())
    sent = notifications.sent_at({'timestamp': stamp})
    assert before - 1e-3 <= sent <= time.time()


def test_a_timestamp_on_a_whole_second_is_read_too():
    stamp = str(datetime.datetime(2024, 5, 1, 10, 0, 0))
    assert stamp == '2024-05-01 10:00:00'
    assert notifications.sent_at({'timestamp': stamp}) == 1714557600.0


def test_a_missing_or_unreadable_timestamp_gives_none():
    for metadata in (None, {}, {'timestamp': None}, {'timestamp': 'Aug'},
                     {'timestamp': 1714557600}):
        assert notifications.sent_at(metadata) is None


def test_a_late_notification_keeps_nova_s_time_on_the_service_s_clock():
    metadata = {'timestamp': '2024-05-01 10:00:00'}
    wall_now = 1714557600.0 + 120.0           # delivered 2 minutes late
    service_now = wall_now - 3600.0           # a clock an hour behind
    assert notifications.event_time(metadata, service_now, wall_now) == (
        service_now - 120.0)


def test_receive_time_when_nova_s_time_is_missing_or_ahead():
    assert notifications.event_time({}, 500.0, 1000.0) == 500.0
    ahead = {'timestamp': '2024-05-01 10:00:05'}
    assert notifications.event_time(ahead, 500.0, 1714557600.0) == 500.0
