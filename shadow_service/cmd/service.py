"""``shadow-service``: the daemon that ranks hosts for nova-scheduler.

It runs on oslo.service's threading backend (no eventlet); the backend must
be chosen before ``oslo_service.service`` is imported, hence the late
imports in :func:`main`.

Every start-up error (a bad option value, an unreadable file, an unknown
transport driver, a broker that refuses the credentials, a history store
that cannot work) ends the process with exit status 2 and one line on
stderr and in the log, before any worker is forked; an error only the
worker can find (building the parts) ends the whole service the same way
instead of restarting the worker forever.  A broker that is down at start
is waited for, with backoff.
"""

import sys
import time

from oslo_config import cfg
from oslo_log import log as logging

CONF = cfg.CONF
LOG = logging.getLogger(__name__)

#: What ``shadow-service --help`` says the daemon does.
DESCRIPTION = ("Rank candidate hosts for nova-scheduler's ShadowWeigher over "
               'RPC: boot short-lived shadow copies of the requested VM on '
               'the best candidates, measure them and delete them.')

#: Seconds between two attempts to reach a broker that is down at start:
#: doubling from the first to the last.
BROKER_BACKOFF_S = (1.0, 30.0)


def _service_class():
    from oslo_service import service as os_service

    from shadow_service import cmd
    from shadow_service import exporter
    from shadow_service import service

    class ShadowService(os_service.Service):
        def __init__(self, conf, failed=None):
            super().__init__()
            self.conf = conf
            self.server = None
            self.exporter = None
            # Shared with the parent: set when the worker cannot start.
            self.failed = failed

        def start(self):
            super().start()
            error = None
            try:
                parts = service.build(self.conf)
                exporter.watch_history(parts.history,
                                       self.conf.history.store)
                self.server = service.RPCServer(parts).start()
            except Exception as e:
                error = e
            if error is not None:
                cmd.stop_failed_worker('shadow-service', error, self.conf,
                                       self.failed)
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


class StartupError(Exception):
    """Configuration the service cannot start with."""


def check_values(conf):
    """Read every option once (:func:`shadow_service.optcheck.problem`):
    StartupError naming the first that cannot be used."""
    from shadow_service import optcheck

    groups = [name for name in conf if isinstance(
        getattr(conf, name, None), cfg.ConfigOpts.GroupAttr)]
    found = optcheck.problem(conf, [n for n in conf if n not in groups],
                             lambda name: name)
    for group in groups:
        found = found or optcheck.problem(
            getattr(conf, group), list(getattr(conf, group)),
            lambda name, group=group: '[%s] %s' % (group, name))
    if found:
        raise StartupError(found)


def _check_broker(conf, sleep=time.sleep):
    """Load the transport driver and log in to a rabbit broker: a broker
    that refuses the credentials is a start-up error; one that does not
    answer is retried with backoff, for as long as it takes."""
    from shadow_service import notifications
    from shadow_service import rpc

    try:
        rpc.check_transport_url(conf)
        # Nova's notifications may come through a broker of their own:
        # the URL the listener uses is checked as well, named by the
        # option it comes from ([DEFAULT]'s is checked above).
        if conf.nova_notifications.listen:
            url, group = notifications.broker_url(conf)
            if group is not None:
                rpc.check_transport_url(
                    conf, url, rpc.transport_url_option(conf, group),
                    notifications=True)
    except rpc.BadTransportURL as e:
        raise StartupError(str(e)) from None
    log_in_to_broker(conf, sleep=sleep)


def log_in_to_broker(conf, sleep=time.sleep, wait=True,
                     option='transport_url', connect_timeout=5):
    """Load the driver of ``conf.transport_url`` (its form checked
    already) and log in to its rabbit broker: StartupError naming
    ``option`` when the broker refuses the credentials or the virtual
    host; one that does not answer (``connect_timeout`` seconds per
    host) is tried again with backoff for as long as it takes, or, not
    ``wait``, is a StartupError too."""
    import oslo_messaging as messaging

    try:
        transport = messaging.get_rpc_transport(conf)
        url = messaging.TransportURL.parse(conf, conf.transport_url)
    except Exception as e:
        raise StartupError('%s: %s' % (option, e)) from None
    transport.cleanup()
    if url.transport not in ('rabbit', 'amqp') or not url.hosts:
        return
    import amqp.exceptions
    import kombu

    backoff = BROKER_BACKOFF_S[0]
    while True:
        failures = []
        for host in url.hosts:
            connection = kombu.Connection(
                hostname=host.hostname or 'localhost',
                port=host.port or 5672, userid=host.username or 'guest',
                password=host.password or 'guest',
                virtual_host=url.virtual_host or '/',
                connect_timeout=connect_timeout)
            try:
                connection.connect()
                return
            except amqp.exceptions.AccessRefused:
                raise StartupError(
                    '%s: the broker at %s:%s refused the '
                    'credentials of user %s' % (
                        option, host.hostname, host.port or 5672,
                        host.username or 'guest')) from None
            except amqp.exceptions.NotAllowed as e:
                raise StartupError('%s: the broker at %s:%s does '
                                   'not allow virtual host %s: %s' % (
                                       option, host.hostname,
                                       host.port or 5672,
                                       url.virtual_host or '/', e)) from None
            except (OSError, amqp.exceptions.AMQPError) as e:
                failures.append('%s:%s: %s' % (host.hostname,
                                               host.port or 5672, e))
            finally:
                connection.release()
        if not wait:
            raise StartupError('%s: the broker does not answer (%s)'
                               % (option, '; '.join(failures)))
        LOG.warning('The message broker does not answer (%s); retrying '
                    'in %.0fs', '; '.join(failures), backoff)
        sleep(backoff)
        backoff = min(backoff * 2, BROKER_BACKOFF_S[1])


def _preflight(conf):
    """Fail fast, before any worker forks, on configuration that cannot
    work: a bad option value, an unreachable or misconfigured history
    store, an unknown cloud driver or one whose own options cannot work
    (``check_config``), analysis options the analyzer refuses, a cost
    trade-off that cannot work (``[shadow] host_costs`` ...), a
    transport the broker refuses."""
    from shadow_service import hostchoice
    from shadow_service import plugins
    from shadow_service import service
    from shadow_service.analysis import analyzer

    check_values(conf)
    analyzer.Analyzer.from_conf(conf)
    hostchoice.CostPolicy.from_conf(conf)
    history = service.build_history(conf)
    history.close()
    driver_class = plugins.plugin_class('nova_shadow.clouds',
                                        conf.shadow.cloud_driver)
    check = getattr(driver_class, 'check_config', None)
    if check is not None:
        check(conf)
    _check_broker(conf)


def main(argv=None):
    from shadow_service import cmd

    cmd.require_service_extra('shadow-service')
    from oslo_service import backend

    backend.init_backend(backend.BackendType.THREADING)
    from shadow_service import conf as shadow_conf

    logging.register_options(CONF)
    shadow_conf.register_opts(CONF)
    return cmd.run_daemon('shadow-service', CONF, argv, _preflight,
                          _service_class, DESCRIPTION)

if __name__ == '__main__':
    sys.exit(main())
