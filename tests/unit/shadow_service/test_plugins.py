"""One plugin loader over stevedore: names from setup.cfg's entry points,
options declared by the plugins themselves."""

import pytest
from oslo_config import cfg

from shadow_service import conf as shadow_conf
from shadow_service import plugins
from shadow_service.clouds.sim import driver as sim_driver
from shadow_service.history import sqlite


def test_plugins_load_from_their_entry_points():
    assert plugins.plugin_class(plugins.CLOUDS, 'sim') is \
        sim_driver.SimDriver
    assert plugins.plugin_class(plugins.HISTORY, 'sqlite') is \
        sqlite.SQLiteStore
    assert {'memory', 'sqlite', 'influxdb'} <= set(
        plugins.names(plugins.HISTORY))


def test_an_unknown_plugin_names_the_installed_ones():
    with pytest.raises(plugins.PluginNotFound) as raised:
        plugins.plugin_class(plugins.CLOUDS, 'nosuch')
    assert "'nosuch'" in str(raised.value)
    assert 'sim' in str(raised.value)


def test_plugins_declare_their_options_and_registration_walks_them():
    groups = {group.name: opts for group, opts in plugins.plugin_opts()}
    assert [o.dest for o in groups['sim']] == [
        o.dest for o in sim_driver.SimDriver.get_config_opts()]
    assert 'sqlite_path' in {o.dest for o in groups['history']}
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf([])
    assert conf.sim.seed == 0
    assert conf.history.sqlite_path.endswith('history.sqlite')


def test_a_driver_does_not_register_options_itself():
    conf = cfg.ConfigOpts()
    conf([])
    with pytest.raises(cfg.NoSuchOptError):
        sim_driver.SimDriver(conf, None)
