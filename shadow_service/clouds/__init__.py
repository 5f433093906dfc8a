"""Cloud drivers: where shadows run.  See :mod:`shadow_service.clouds.base`."""

from shadow_service import plugins


def load_driver(conf, history, name=None):
    """Instantiate the ``[shadow] cloud_driver`` plugin."""
    cls = plugins.plugin_class('nova_shadow.clouds',
                               name or conf.shadow.cloud_driver)
    return cls(conf, history)
