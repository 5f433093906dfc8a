"""Forecaster plugins (stevedore namespace ``nova_shadow.forecasters``).

:func:`load` finds a forecaster by name: first among the installed entry
points, then among the built-ins listed in ``BUILTIN`` (so the analyzer
also works from a source tree that is not pip-installed).
"""

import functools
import logging

from stevedore import extension

from shadow_service.analysis.forecasters import arima
from shadow_service.analysis.forecasters import decomposition
from shadow_service.analysis.forecasters import naive
from shadow_service.analysis.forecasters import selector
from shadow_service.analysis.forecasters import smoothing

LOG = logging.getLogger(__name__)

NAMESPACE = "nova_shadow.forecasters"

BUILTIN = {
    "naive": naive.NaiveForecaster,
    "seasonal_naive": naive.SeasonalNaiveForecaster,
    "ses": smoothing.SesForecaster,
    "holt_winters": smoothing.HoltWintersForecaster,
    "arima": arima.ArimaForecaster,
    "stl_arima": decomposition.StlArimaForecaster,
    "auto": selector.AutoForecaster,
}


@functools.lru_cache(maxsize=1)
def installed():
    """``{name: class}`` of the installed plugins (scanned once)."""
    manager = extension.ExtensionManager(NAMESPACE, invoke_on_load=False)
    return {ext.name: ext.plugin for ext in manager}


def forecaster_class(name):
    """Return the forecaster class registered as ``name``."""
    plugins = installed()
    if name in plugins:
        return plugins[name]
    if name in BUILTIN:
        return BUILTIN[name]
    raise ValueError("unknown forecaster %r; known: %s"
                     % (name, ", ".join(sorted(set(plugins) | set(BUILTIN)))))


def load(name, **options):
    """Instantiate the forecaster ``name`` with keyword ``options``."""
    return forecaster_class(name)(**options)
