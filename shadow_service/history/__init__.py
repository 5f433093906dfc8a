"""History stores: where measurements, evaluations and decisions are kept.

:func:`load_store` returns the store named by ``[history] store``, loaded
as a stevedore plugin from the ``nova_shadow.history`` namespace
(``sqlite``, ``influxdb``, ``memory``).  In a source tree where the package
is not installed (no entry points), :mod:`shadow_service.plugins` finds the
built-in stores by name instead; add a store by registering another entry
point.
"""

import logging

from shadow_service.conf import history as history_conf
from shadow_service.history.base import HistoryError  # noqa: F401
from shadow_service.history.base import HistoryStore  # noqa: F401
from shadow_service.history.base import Point  # noqa: F401
from shadow_service.history.base import Series  # noqa: F401

LOG = logging.getLogger(__name__)

NAMESPACE = 'nova_shadow.history'


def load_store(conf=None, name=None, **kwargs):
    """Build the history store configured in ``conf``.

    Parameters
    ----------
    conf : oslo_config.cfg.ConfigOpts, optional
        ``[history] store`` names the plugin; the store reads its own
        options from it. Without it the defaults apply.
    name : str, optional
        Use this plugin instead of ``[history] store``.
    **kwargs
        Passed to the store's constructor (option overrides).

    Raises
    ------
    HistoryError
        For an unknown store name, or whatever the store raises when it
        cannot start.
    """
    from shadow_service import plugins

    name = name or history_conf.settings(conf)['store']
    try:
        store_class = plugins.plugin_class(NAMESPACE, name)
    except plugins.PluginNotFound as exc:
        raise HistoryError('unknown history store %r ([history] store): %s'
                           % (name, exc))
    LOG.debug('Loading history store %s (%s)', name, store_class.__name__)
    return store_class(conf, **kwargs)
