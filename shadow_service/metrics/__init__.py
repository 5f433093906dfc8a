"""Metrics sources: host and instance utilisation history from monitoring.

:func:`load_source` builds the source named by ``[metrics] source``, loaded
as a stevedore plugin from the ``nova_shadow.metrics`` namespace (``none``,
``history``, ``prometheus``, ``influxdb``).  Add a source by registering
another entry point (see :mod:`shadow_service.metrics.base`).
"""

import logging

from stevedore import driver as sd_driver
from stevedore import exception as sd_exception

from shadow_service.conf import metrics as metrics_conf
from shadow_service.metrics.base import METRICS  # noqa: F401
from shadow_service.metrics.base import MetricsError
from shadow_service.metrics.base import MetricsSource  # noqa: F401
from shadow_service.metrics.base import MetricsUnavailable  # noqa: F401
from shadow_service.metrics.base import UnsupportedMetric  # noqa: F401

LOG = logging.getLogger(__name__)

NAMESPACE = metrics_conf.NAMESPACE


def source_class(name):
    """The class registered as ``name`` in ``nova_shadow.metrics``.

    Raises
    ------
    MetricsError
        If no plugin of that name is installed.
    """
    try:
        return sd_driver.DriverManager(NAMESPACE, name,
                                       invoke_on_load=False).driver
    except sd_exception.NoMatches:
        raise MetricsError(
            'unknown metrics source %r ([metrics] source); no such plugin '
            'in the %s entry point namespace' % (name, NAMESPACE))


def load_source(conf, name=None, history=None):
    """Build the metrics source configured in ``conf``.

    Parameters
    ----------
    conf : oslo_config.cfg.ConfigOpts
        ``[metrics] source`` names the plugin; the plugin reads its own
        options from it.
    name : str, optional
        Use this plugin instead of ``[metrics] source``.
    history : shadow_service.history.base.HistoryStore, optional
        Passed to the source (the ``history`` source reads it).

    Raises
    ------
    MetricsError
        For an unknown source name, or whatever the source raises when its
        options are wrong.
    """
    name = name or metrics_conf.settings(conf)['source']
    source_cls = source_class(name)
    LOG.debug('Loading metrics source %s (%s)', name, source_cls.__name__)
    return source_cls(conf, history=history)
