"""A credential the server refuses, or one no HTTP header can carry, is
said as such (naming the option, never its value), at once, not as a
server that cannot be reached."""

import time

import pytest

from shadow_service.history import base
from shadow_service.history import influxdb
from tests.fixtures import influxdb as influxdb_fixture

USER = 'b\u00f6\u20acb'  # outside Latin-1
PASSWORD = 'p\u00e4ss\u20ac-w0rd'  # noqa: S105 (a test's throw-away value)


@pytest.fixture(scope='module')
def auth_server():
    if not influxdb_fixture.influxd_binary():
        pytest.skip('influxd not installed (apt-get install influxdb)')
    server = influxdb_fixture.InfluxDBServer(http_options={
        'auth-enabled': 'true', 'ping-auth-enabled': 'true'}).start()
    try:
        # With no user yet, InfluxDB lets anyone create the first admin.
        server.query(None, "CREATE USER \"%s\" WITH PASSWORD '%s' WITH "
                     "ALL PRIVILEGES" % (USER, PASSWORD))
        yield server
    finally:
        server.cleanup()


def _refused(**kwargs):
    started = time.monotonic()
    with pytest.raises(base.HistoryError) as info:
        influxdb.InfluxDBStore(startup_timeout_s=5, timeout_s=2, **kwargs)
    return str(info.value), time.monotonic() - started


@pytest.mark.parametrize('token', ['abc\ndef', 'abc\r\n', 'ab\x00c'])
def test_a_token_no_header_can_carry_is_named_not_unreachable(
        influxdb_server, token):
    text, took = _refused(url=influxdb_server.url, token=token)
    assert 'influx_token' in text
    assert 'line break' in text
    assert 'running' not in text and 'reach' not in text
    assert token not in text and 'abc' not in text
    assert took < 1.0


def test_a_token_outside_latin1_is_named_not_a_raw_exception(
        influxdb_server):
    text, took = _refused(url=influxdb_server.url,
                          token='t\u00f6k\u20acn')  # noqa: S106
    assert 'influx_token' in text and 'Latin-1' in text
    assert '\u20ac' not in text
    assert took < 1.0


def test_a_refused_password_is_said_as_refused(auth_server):
    text, took = _refused(url=auth_server.url, username=USER,
                          password='wrong')  # noqa: S106
    assert 'refused the credentials' in text
    assert 'running' not in text
    assert 'wrong' not in text
    assert took < 1.0


def test_a_refused_token_is_said_as_refused(auth_server):
    text, _took = _refused(url=auth_server.url,
                           token="nobody:nothing")  # noqa: S106
    assert 'refused the credentials' in text
    assert 'running' not in text and 'nothing' not in text


def test_a_user_name_outside_latin1_authenticates(auth_server):
    store = influxdb.InfluxDBStore(
        url=auth_server.url, username=USER, password=PASSWORD,
        database='auth_utf8', create_database=True, startup_timeout_s=5)
    try:
        store.write([base.Point('host_metric', {'host': 'h1'},
                                {'value': 1.0}, time.time())])
        assert store.flush(timeout=10)
        assert store.counters()['written'] == 1
        assert len(store.query_points('host_metric')) == 1
    finally:
        store.close()
