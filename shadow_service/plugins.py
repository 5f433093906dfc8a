"""Loading plugins from the ``nova_shadow.*`` stevedore namespaces.

When the package is not installed (a source tree on ``PYTHONPATH``) the
entry points are missing; the built-in plugins are then found through the
table below, so a checkout works the same as an installation.
"""

import importlib
import logging

from stevedore import driver as sd_driver
from stevedore import exception as sd_exception

LOG = logging.getLogger(__name__)

BUILTIN = {
    'nova_shadow.clouds': {
        'sim': 'shadow_service.clouds.sim.driver:SimDriver',
    },
    'nova_shadow.history': {
        'memory': 'shadow_service.history.memory:MemoryStore',
        'sqlite': 'shadow_service.history.sqlite:SQLiteStore',
        'influxdb': 'shadow_service.history.influxdb:InfluxDBStore',
    },
    'nova_shadow.policies': {
        'threshold': 'shadow_service.watcher.policies.threshold:'
                     'ThresholdPolicy',
    },
}


class PluginNotFound(Exception):
    pass


def _import(path):
    module, _, attr = path.partition(':')
    return getattr(importlib.import_module(module), attr)


def plugin_class(namespace, name):
    """The class registered as ``name`` in ``namespace``."""
    try:
        manager = sd_driver.DriverManager(namespace, name,
                                          invoke_on_load=False)
        return manager.driver
    except (sd_exception.NoMatches, RuntimeError):
        pass
    path = BUILTIN.get(namespace, {}).get(name)
    if path is None:
        known = sorted(BUILTIN.get(namespace, {}))
        raise PluginNotFound('No plugin %r in %s (built-in: %s)'
                             % (name, namespace, ', '.join(known)))
    return _import(path)
