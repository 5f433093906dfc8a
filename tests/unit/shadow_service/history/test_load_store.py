"""Choosing a store from configuration."""

import pytest
from oslo_config import cfg

from shadow_service import history
from shadow_service.conf import history as history_conf
from shadow_service.history import memory
from shadow_service.history import sqlite


@pytest.fixture
def conf():
    conf = cfg.ConfigOpts()
    history_conf.register_opts(conf)
    conf([], project='nova-shadow-test')
    return conf


def test_default_store_is_sqlite_at_the_configured_path(conf, tmp_path):
    path = str(tmp_path / 'h.sqlite')
    conf.set_override('sqlite_path', path, group='history')

    store = history.load_store(conf)

    assert isinstance(store, sqlite.SQLiteStore)
    assert store.path == path


def test_store_option_picks_the_plugin(conf):
    conf.set_override('store', 'memory', group='history')

    assert isinstance(history.load_store(conf), memory.MemoryStore)


def test_store_option_only_accepts_known_stores(conf):
    with pytest.raises(ValueError):
        conf.set_override('store', 'mongodb', group='history')


def test_unknown_store_name_is_a_history_error():
    with pytest.raises(history.HistoryError, match='unknown history store'):
        history.load_store(name='mongodb')


def test_influxdb_store_reads_its_options_from_conf(conf, influxdb_server):
    conf.set_override('store', 'influxdb', group='history')
    conf.set_override('influx_url', influxdb_server.url, group='history')
    conf.set_override('influx_database', 'from_conf', group='history')
    conf.set_override('raw_retention_days', 0, group='history')

    store = history.load_store(conf)
    try:
        assert (store.url, store.database) == (influxdb_server.url,
                                               'from_conf')
    finally:
        store.close()


def test_list_opts_names_the_history_group():
    groups = history_conf.list_opts()

    (group, opts), = groups.items()
    assert group.name == 'history'
    assert {'store', 'sqlite_path', 'influx_url'} <= {o.dest for o in opts}


def test_settings_override_and_reject_unknown_names():
    values = history_conf.settings(None, sqlite_path='/x', store=None)

    assert values['sqlite_path'] == '/x'
    assert values['store'] == 'sqlite'
    with pytest.raises(TypeError):
        history_conf.settings(None, no_such_option=1)
