"""A password inside ``[history] influx_url`` never reaches a log line or
an error a caller sees."""

import logging
import time
import urllib.parse

import pytest

from shadow_service.history import base
from shadow_service.history import influxdb
from tests.fixtures import influxdb as influxdb_fixture

SECRET = 's3cret-Pa55'  # noqa: S105 (a test's own throw-away value)


def _with_credentials(url):
    parsed = urllib.parse.urlsplit(url)
    return parsed._replace(
        netloc='shadow:%s@%s' % (SECRET, parsed.netloc)).geturl()


def test_password_in_the_url_is_masked_in_the_log(influxdb_server, caplog):
    caplog.set_level(logging.DEBUG)
    store = influxdb.InfluxDBStore(
        url=_with_credentials(influxdb_server.url),
        database='credentials_masked', startup_timeout_s=10)
    try:
        store.write([base.Point('host_metric', {'host': 'h1'},
                                {'value': 1.0}, time.time())])
        assert store.flush(timeout=10)
    finally:
        store.close()
    text = '\n'.join(r.getMessage() for r in caplog.records)
    assert 'shadow:***@127.0.0.1' in text
    assert SECRET not in text


def test_password_in_the_url_is_masked_in_errors(caplog):
    caplog.set_level(logging.DEBUG)
    url = 'http://shadow:%s@127.0.0.1:%d' % (SECRET,
                                             influxdb_fixture.free_port())
    with pytest.raises(base.HistoryError) as info:
        influxdb.InfluxDBStore(url=url, startup_timeout_s=0.5, timeout_s=0.5)
    assert SECRET not in str(info.value)
    assert 'shadow:***@' in str(info.value)
    with pytest.raises(base.HistoryError) as info:
        influxdb.InfluxDBStore(url='http://shadow:%s@127.0.0.1:99999'
                               % SECRET, startup_timeout_s=0.5)
    assert SECRET not in str(info.value)
    assert all(SECRET not in r.getMessage() for r in caplog.records)
