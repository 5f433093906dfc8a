"""Loading plugins from the ``nova_shadow.*`` stevedore namespaces.

Every pluggable part is an entry point in ``setup.cfg`` over a small ABC:

=========================  ==============================================
namespace                  what
=========================  ==============================================
``nova_shadow.clouds``     cloud drivers (``[shadow] cloud_driver``)
``nova_shadow.history``    history stores (``[history] store``)
``nova_shadow.metrics``    monitoring sources (``[metrics] source``)
``nova_shadow.policies``   the watcher's scaling policies
``nova_shadow.forecasters``  forecasters of the analyzer
=========================  ==============================================

A plugin class declares its options as Watcher's strategies do: a
``get_config_opts()`` classmethod and the ``config_group`` they belong to.
:func:`register_opts` and :func:`list_opts` walk the namespaces, so the
generated sample config shows every installed plugin's options.  Adding a
plugin is one module and one line in ``setup.cfg``; the package must be
installed (``pip install -e .`` in a checkout) for its entry points to
exist.
"""

import importlib.metadata as importlib_metadata
import logging

from oslo_config import cfg
from stevedore import driver as sd_driver
from stevedore import exception as sd_exception
from stevedore import extension

LOG = logging.getLogger(__name__)

CLOUDS = 'nova_shadow.clouds'
HISTORY = 'nova_shadow.history'
METRICS = 'nova_shadow.metrics'
POLICIES = 'nova_shadow.policies'
FORECASTERS = 'nova_shadow.forecasters'

#: Namespaces whose plugins may declare options.  (Forecasters take
#: theirs from ``[analysis]``; walking them would import statsmodels.)
OPTION_NAMESPACES = (CLOUDS, HISTORY, METRICS, POLICIES)


class PluginNotFound(Exception):
    pass


def names(namespace):
    """Names registered in ``namespace``, sorted (nothing is imported)."""
    return sorted({ep.name for ep in
                   importlib_metadata.entry_points(group=namespace)})


def _failed(manager, entrypoint, exception):
    LOG.warning('Could not load plugin %s from %s: %s', entrypoint.name,
                entrypoint.value, exception)


def plugin_class(namespace, name):
    """The class registered as ``name`` in ``namespace``.

    Raises
    ------
    PluginNotFound
        naming the plugins that are registered.
    """
    try:
        manager = sd_driver.DriverManager(namespace, name,
                                          invoke_on_load=False)
    except sd_exception.NoMatches:
        raise PluginNotFound('No plugin %r in %s (installed: %s)'
                             % (name, namespace,
                                ', '.join(names(namespace)) or 'none'))
    return manager.driver


def plugin_classes(namespace):
    """``{name: class}`` of every plugin in ``namespace`` that loads."""
    manager = extension.ExtensionManager(namespace, invoke_on_load=False,
                                         on_load_failure_callback=_failed)
    return {ext.name: ext.plugin for ext in manager.extensions}


def _group(cls):
    group = cls.config_group
    if isinstance(group, cfg.OptGroup):
        return group
    return cfg.OptGroup(name=group)


def plugin_opts(namespaces=OPTION_NAMESPACES, sample=False):
    """``[(OptGroup, [opts])]`` the installed plugins declare, sorted by
    group name, each option once per group.

    With ``sample`` (the sample config generator), a plugin's
    ``get_sample_config_opts()`` is used where it has one: options it
    registers only when it loads (keystoneauth's auth plugin options of
    the ``openstack`` driver) are listed too.
    """
    by_group = {}
    for namespace in namespaces:
        for _name, cls in sorted(plugin_classes(namespace).items()):
            get_opts = ((sample and getattr(cls, 'get_sample_config_opts',
                                            None))
                        or getattr(cls, 'get_config_opts', None))
            if get_opts is None or not getattr(cls, 'config_group', None):
                continue
            group = _group(cls)
            _group_obj, known = by_group.setdefault(group.name, (group, []))
            for opt in get_opts():
                if all(opt.dest != seen.dest for seen in known):
                    known.append(opt)
    return [by_group[name] for name in sorted(by_group)]


