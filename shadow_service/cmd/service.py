"""``shadow-service``: the daemon that ranks hosts for nova-scheduler.

It runs on oslo.service's threading backend (no eventlet); the backend must
be chosen before ``oslo_service.service`` is imported, hence the late
imports in :func:`main`.
"""

import sys

from oslo_config import cfg
from oslo_log import log as logging

CONF = cfg.CONF
LOG = logging.getLogger(__name__)


def _service_class():
    from oslo_service import service as os_service

    from shadow_service import exporter
    from shadow_service import service

    class ShadowService(os_service.Service):
        def __init__(self, conf):
            super().__init__()
            self.conf = conf
            self.server = None
            self.exporter = None

        def start(self):
            super().start()
            parts = service.build(self.conf)
            exporter.watch_history(parts.history, self.conf.history.store)
            self.server = service.RPCServer(parts).start()
            self.exporter = exporter.serve(self.conf, 'service')

        def stop(self, graceful=True):
            if self.exporter is not None:
                self.exporter.stop()
                self.exporter = None
            if self.server is not None:
                self.server.stop()
                self.server = None
            exporter.forget()
            super().stop(graceful)

    return ShadowService, os_service


def _preflight(conf):
    """Fail fast, before any worker forks, on configuration that cannot
    work: an unreachable or misconfigured history store, an unknown cloud
    driver or one whose own options cannot work (``check_config``)."""
    from shadow_service import plugins
    from shadow_service import service

    history = service.build_history(conf)
    history.close()
    driver_class = plugins.plugin_class('nova_shadow.clouds',
                                        conf.shadow.cloud_driver)
    check = getattr(driver_class, 'check_config', None)
    if check is not None:
        check(conf)


def main(argv=None):
    from shadow_service import cmd

    cmd.require_service_extra('shadow-service')
    from oslo_service import backend

    backend.init_backend(backend.BackendType.THREADING)
    from shadow_service import conf as shadow_conf

    logging.register_options(CONF)
    shadow_conf.register_opts(CONF)
    CONF(sys.argv[1:] if argv is None else argv, project='nova-shadow')
    logging.setup(CONF, 'nova-shadow')
    try:
        _preflight(CONF)
    except Exception as e:
        LOG.error('shadow-service cannot start: %s', e)
        sys.stderr.write('shadow-service: cannot start: %s\n' % e)
        return 2
    service_class, os_service = _service_class()
    launcher = os_service.launch(CONF, service_class(CONF), workers=1,
                                 restart_method='mutate')
    launcher.wait()
    return 0


if __name__ == '__main__':
    sys.exit(main())
