"""Fixtures for the history store tests: one store of each kind."""

import itertools

import pytest

from shadow_service.history import influxdb
from shadow_service.history import memory
from shadow_service.history import sqlite

_databases = itertools.count()


def make_influx_store(server, **overrides):
    """An InfluxDBStore on a fresh database of ``server``."""
    options = dict(url=server.url,
                   database='contract_%d' % next(_databases),
                   flush_interval_s=0.05, retry_backoff_s=0.05,
                   retry_backoff_max_s=0.5, startup_timeout_s=5,
                   raw_retention_days=0)
    options.update(overrides)
    return influxdb.InfluxDBStore(**options)


@pytest.fixture(params=['memory', 'sqlite', 'influxdb'])
def store(request, tmp_path):
    """Each history store in turn, empty."""
    if request.param == 'memory':
        made = memory.MemoryStore()
    elif request.param == 'sqlite':
        made = sqlite.SQLiteStore(path=str(tmp_path / 'history.sqlite'))
    else:
        made = make_influx_store(
            request.getfixturevalue('influxdb_server'))
    yield made
    made.close()
