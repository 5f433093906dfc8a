"""``shadow-service``: the daemon that ranks hosts for nova-scheduler."""

import sys

from oslo_config import cfg
from oslo_log import log as logging
from oslo_service import backend
from oslo_service import service as os_service

from shadow_service import conf as shadow_conf
from shadow_service import service

CONF = cfg.CONF
LOG = logging.getLogger(__name__)


class ShadowService(os_service.Service):
    def __init__(self, conf):
        super().__init__()
        self.conf = conf
        self.server = None

    def start(self):
        super().start()
        manager = service.build_manager(self.conf)
        self.server = service.RPCServer(self.conf, manager).start()

    def stop(self, graceful=True):
        if self.server is not None:
            self.server.stop()
        super().stop(graceful)


def main(argv=None):
    backend.init_backend(backend.BackendType.THREADING)
    logging.register_options(CONF)
    shadow_conf.register_opts(CONF)
    CONF(sys.argv[1:] if argv is None else argv, project='nova-shadow')
    logging.setup(CONF, 'nova-shadow')
    launcher = os_service.launch(CONF, ShadowService(CONF), workers=1,
                                 restart_method='mutate')
    launcher.wait()
    return 0


if __name__ == '__main__':
    sys.exit(main())
