"""oslo.config options of the shadow service, one module per group.

Library code takes a ``ConfigOpts`` argument; only entry points (the daemons
and the CLI) use the global ``cfg.CONF``.
"""

from oslo_config import cfg

from shadow_service.conf import analysis
from shadow_service.conf import history
from shadow_service.conf import metrics
from shadow_service.conf import service
from shadow_service.conf import sim

CONF = cfg.CONF

_OPT_MODULES = [service, analysis, history, sim, metrics]


def register_opts(conf):
    for module in _OPT_MODULES:
        module.register_opts(conf)


def list_opts():
    """``[(group, opts)]`` for every group the service reads."""
    opts = []
    for module in _OPT_MODULES:
        opts.extend(module.list_opts().items())
    return opts
