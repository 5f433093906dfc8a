"""``shadow-watcher``: the proactive scaling daemon.

Every ``[watcher] interval`` it runs the watcher loop
(:class:`shadow_service.watcher.loop.Watcher`) over the VMs opted in
(``[watcher] instances``, ``projects`` or the ``watch_metadata_key``
server metadata): forecast, decide, act (or, with ``dry_run``, the
default, only record) and learn from the outcome.  With ``[watcher]
coordination_url`` several watchers elect one leader through tooz; only
the leader acts.  It runs on oslo.service's threading backend like
``shadow-service``; configuration that cannot work (a malformed ladder,
an unknown policy, an unreachable history store or coordination backend,
a ``transport_url`` no RPC driver can use, or whose broker refuses the
login or does not answer, with ``[watcher] ranker = rpc``)
stops it at start with exit status 2 and one line saying why.
"""

import sys
import threading

from oslo_config import cfg
from oslo_log import log as logging

CONF = cfg.CONF
LOG = logging.getLogger(__name__)

#: What ``shadow-watcher --help`` says the daemon does.
DESCRIPTION = ("Forecast each watched VM's demand and resize it, "
               'live-migrate it or scale its group out before it runs '
               'short (dry-run by default: it records its decisions and '
               'changes nothing).')


#: Seconds the preflight waits for the broker of ``[watcher] ranker =
#: rpc`` to answer (per host of ``transport_url``).
BROKER_TIMEOUT_S = 5


def _service_class():
    from oslo_service import service as os_service

    from shadow_service import cmd
    from shadow_service import exporter
    from shadow_service import service

    class WatcherService(os_service.Service):
        def __init__(self, conf, failed=None):
            super().__init__()
            self.conf = conf
            self.assembled = None
            self.exporter = None
            self._stop = threading.Event()
            self._thread = None
            # Shared with the parent: set when the worker cannot start.
            self.failed = failed

        def start(self):
            super().start()
            error = None
            try:
                self.assembled = service.build_watcher(self.conf)
                exporter.watch_history(self.assembled.parts.history,
                                       self.conf.history.store)
                exporter.watch_watcher(self.assembled.watcher)
                self.exporter = exporter.serve(self.conf, 'watcher')
            except Exception as e:
                error = e
            if error is not None:
                cmd.stop_failed_worker('shadow-watcher', error, self.conf,
                                       self.failed)
            self._thread = threading.Thread(target=self._loop,
                                            name='watcher-loop', daemon=True)
            self._thread.start()

        def _loop(self):
            watcher = self.assembled.watcher
            driver = self.assembled.parts.driver
            interval = self.conf.watcher.interval
            LOG.info('shadow-watcher running: policy %s, every %.0f s, %s',
                     self.conf.watcher.policy, interval,
                     'dry-run' if self.conf.watcher.dry_run else 'acting')
            # A twin that does not pace itself ([sim] speedup 0: as fast as
            # the machine can) would run the daemon's loop flat out and
            # fill the history: the daemon runs it at real time.
            unpaced = getattr(driver, 'speedup', None) == 0
            if unpaced:
                LOG.info('The twin runs at real time in the daemon ([sim] '
                         'speedup 0); set speedup to run it faster')
            while not self._stop.is_set():
                try:
                    steps = watcher.run_once()
                    acted = [s for s in steps if s.outcome]
                    LOG.info('Run %d: %d VMs watched, %d decisions (%s)',
                             watcher.counters['runs'], len(steps),
                             len(acted), ', '.join(
                                 '%s %s %s' % (s.instance_id,
                                               s.decision.action, s.outcome)
                                 for s in acted) or 'none')
                except Exception:
                    LOG.exception('Watcher run failed; next run in %.0f s',
                                  interval)
                waited = 0.0
                while waited < interval and not self._stop.is_set():
                    chunk = min(1.0, interval - waited)
                    driver.wait(chunk)
                    if unpaced:
                        self._stop.wait(chunk)
                    waited += chunk
                    if watcher.leader is not None:
                        self._heartbeat(watcher.leader)

        @staticmethod
        def _heartbeat(leader):
            # A backend that fails means "not leading" (the leader logs
            # it once); nothing else may end the loop either.
            try:
                leader.heartbeat()
            except Exception:
                LOG.exception('Renewing the leader lock failed; next try '
                              'in a second')

        def stop(self, graceful=True):
            if self.exporter is not None:
                self.exporter.stop()
                self.exporter = None
            exporter.forget()
            self._stop.set()
            if self._thread is not None:
                self._thread.join(30.0)
                self._thread = None
            if self.assembled is not None:
                self.assembled.close()
                self.assembled = None
            super().stop(graceful)

    return WatcherService, os_service


def _check_webhook(url):
    """ValueError naming ``[watcher] scale_webhook`` when no request can
    reach ``url`` (a scheme other than http or https, no host, a port
    that is not one); the URL itself is not shown (its query may be a
    signature)."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ('http', 'https'):
        raise ValueError('[watcher] scale_webhook: its scheme is %r, not '
                         'http or https' % parts.scheme[:20])
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise ValueError('[watcher] scale_webhook: its port is not a port '
                         '(1-65535)')
    if not parts.hostname:
        raise ValueError('[watcher] scale_webhook: it names no host')


def _preflight(conf):
    """Fail fast, before any worker forks, on configuration that cannot
    work."""
    from shadow_service import hostchoice
    from shadow_service import plugins
    from shadow_service import service
    from shadow_service.analysis import analyzer
    from shadow_service.analysis import forecasters
    from shadow_service.cmd import service as service_cmd
    from shadow_service.watcher import ladder

    # Every option's value (type, range, choices) first: oslo.config
    # checks a value only when it is read.
    service_cmd.check_values(conf)
    opts = conf.watcher
    if opts.scale_webhook:
        _check_webhook(opts.scale_webhook)
    warning = ladder.parse(opts.flavor_ladder).disk_warning()
    if warning:
        LOG.warning('%s', warning)
    try:
        forecasters.forecaster_class(opts.forecaster)
    except ValueError as e:
        raise ValueError('[watcher] forecaster: %s' % e) from None
    analyzer.Analyzer.from_conf(conf)
    hostchoice.parse_costs(opts.host_costs, '[watcher] host_costs')
    if opts.min_count > opts.max_count:
        raise ValueError('[watcher] min_count %d is above max_count %d'
                         % (opts.min_count, opts.max_count))
    # Combinations that would switch a feature off without a word: no
    # demand recurs on more days than are looked back, and no VM shows
    # a hold window of history longer than the history read.
    if opts.recurring_days and opts.recurring_min_days > opts.recurring_days:
        raise ValueError('[watcher] recurring_min_days %d is above '
                         'recurring_days %d' % (opts.recurring_min_days,
                                                opts.recurring_days))
    if opts.hold_window > opts.history_window:
        raise ValueError('[watcher] hold_window %g is above history_window '
                         '%g' % (opts.hold_window, opts.history_window))
    if opts.ranker == 'rpc':
        # The ranker calls shadow-service over transport_url.
        # A broker that refuses the login, or does not answer within a
        # few seconds, is a start-up error: the watcher would run without
        # a way to rank (shadow-service, which cannot run without it,
        # waits for a broker that is down).
        from shadow_service import rpc

        rpc.check_transport_url(conf)
        service_cmd.log_in_to_broker(
            conf, wait=False, connect_timeout=BROKER_TIMEOUT_S,
            option='transport_url ([watcher] ranker = rpc calls '
            'shadow-service through it)')
    policy = plugins.plugin_class(plugins.POLICIES, opts.policy)
    policy(conf)            # a policy's own options (the rl model file)
    history = service.build_history(conf)
    history.close()
    driver_class = plugins.plugin_class(plugins.CLOUDS,
                                        conf.shadow.cloud_driver)
    check = getattr(driver_class, 'check_config', None)
    if check is not None:
        check(conf)
    # Horizontal scaling boots siblings through the driver unless a
    # webhook scales the groups; shadow-service boots none.
    sibling_warning = getattr(driver_class, 'sibling_warning', None)
    if (sibling_warning is not None and opts.max_count > 1
            and not opts.scale_webhook):
        warning = sibling_warning(conf)
        if warning:
            LOG.warning('%s', warning)
    if opts.coordination_url:
        from shadow_service.watcher import leader

        probe = leader.Leadership(opts.coordination_url,
                                  opts.coordination_group,
                                  timeout=opts.leader_timeout,
                                  call_timeout=opts.coordination_timeout)
        probe.start()
        probe.stop()


def main(argv=None):
    from shadow_service import cmd

    cmd.require_service_extra('shadow-watcher')
    from oslo_service import backend

    backend.init_backend(backend.BackendType.THREADING)
    from shadow_service import conf as shadow_conf

    logging.register_options(CONF)
    shadow_conf.register_opts(CONF)
    return cmd.run_daemon('shadow-watcher', CONF, argv, _preflight,
                          _service_class, DESCRIPTION)

if __name__ == '__main__':
    sys.exit(main())
