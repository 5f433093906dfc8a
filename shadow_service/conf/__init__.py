"""oslo.config options of the shadow service, one module per group.

Library code takes a ``ConfigOpts`` argument; only entry points (the daemons
and the CLI) use the global ``cfg.CONF``.  :func:`register_opts` registers
the core groups (``[shadow]``, ``[analysis]``, ``[history]``,
``[collector]``, ``[watcher]``) and every
installed plugin's own options (for example the twin's ``[sim]``): plugins
declare them through ``get_config_opts()`` (see
:mod:`shadow_service.plugins`).
"""

from oslo_config import cfg

from shadow_service import plugins
from shadow_service.conf import analysis
from shadow_service.conf import collector
from shadow_service.conf import history
from shadow_service.conf import metrics
from shadow_service.conf import notifications
from shadow_service.conf import prometheus
from shadow_service.conf import service
from shadow_service.conf import utils as conf_utils
from shadow_service.conf import watcher

CONF = cfg.CONF

_OPT_MODULES = [service, analysis, history, metrics, notifications,
                collector, watcher, prometheus]


def register_opts(conf):
    for module in _OPT_MODULES:
        module.register_opts(conf)
    # Every installed plugin's options, each group as a private copy.
    for group, opts in plugins.plugin_opts():
        conf_utils.register_group_opts(conf, group, opts)


def list_opts():
    """``[(group, opts)]`` for every group the service reads."""
    opts = []
    for module in _OPT_MODULES:
        opts.extend(module.list_opts().items())
    core = {getattr(group, 'name', group) for group, _opts in opts}
    for group, plugin_opts in plugins.plugin_opts(sample=True):
        if group.name in core:
            # Already listed with the core group (e.g. the stores'
            # options live in [history]).
            continue
        opts.append((group, plugin_opts))
    return opts
