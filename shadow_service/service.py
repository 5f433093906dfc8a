"""Assembling the shadow service from configuration: one function.

:func:`build` wires the parts (history store, cloud driver, analyzer,
learners, evaluator, RPC manager) from a ``ConfigOpts`` and returns them as
:class:`Parts`.  The ``shadow-service`` daemon, the ``nova-shadow`` CLI,
the demo, the benchmarks and the tests all assemble the service with it,
so each runs what the daemon runs; a caller may hand in a history store or
a driver it built (a benchmark's twin), never reach into a part afterwards.
:class:`RPCServer` puts the manager on the ``[shadow] topic``.
"""

import dataclasses
import logging
import socket
import threading

import oslo_messaging as messaging

from shadow_service import clouds
from shadow_service import evaluation
from shadow_service import learners as learners_mod
from shadow_service import manager as manager_mod
from shadow_service import notifications
from shadow_service import rpc
from shadow_service import rpcapi
from shadow_service.clouds import base

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class Parts:
    """The assembled service."""

    conf: object
    history: object
    driver: object
    analyzer: object
    learners: learners_mod.Learners
    evaluator: evaluation.Evaluator
    manager: manager_mod.ShadowManager

    def close(self):
        """Stop the manager's workers and the driver's helpers, and close
        the history store."""
        self.manager.shutdown()
        try:
            self.driver.stop()
        except Exception:
            LOG.exception('Stopping the cloud driver failed')
        try:
            self.history.close()
        except Exception:
            LOG.exception('Closing the history store failed')


def build_history(conf):
    """The ``[history] store`` plugin."""
    from shadow_service import history

    return history.load_store(conf)


def build_load_forecaster(conf, history, driver):
    """The host load forecaster of the lifetime ranking: ``[metrics]
    source`` read on the driver's clock, or None (no source, or ``[analysis]
    lifetime_horizon = 0``).  A source that cannot be built is logged and
    the ranking goes on without forecasts."""
    from shadow_service import metrics
    from shadow_service.analysis import lifetime
    from shadow_service.conf import metrics as metrics_conf

    if not conf.analysis.lifetime_horizon:
        return None
    try:
        if metrics_conf.settings(conf)['source'] == 'none':
            return None
        source = metrics.load_source(conf, history=history)
    except metrics.MetricsError as e:
        LOG.warning('No host load forecasts: the metrics source cannot be '
                    'used: %s', e)
        return None
    return lifetime.from_conf(conf, source, driver.now)


def build(conf, *, history=None, driver=None, owns_shadows=True):
    """Assemble the service ``conf`` describes.

    Parameters
    ----------
    conf : oslo_config.cfg.ConfigOpts
        With every option registered (``shadow_service.conf.register_opts``).
    history : HistoryStore, optional
        Use this store instead of building ``[history] store``.
    driver : CloudDriver, optional
        Use this driver (built over ``history``) instead of loading
        ``[shadow] cloud_driver``.
    owns_shadows : bool
        True for ``shadow-service``: it deletes the shadows an earlier run
        left (``[shadow] cleanup_on_start``) and starts what the driver
        runs beside the evaluations (the ``openstack`` driver's sample
        collector and periodic garbage collector).  False for a process
        that boots no shadows (``shadow-watcher``): with the service's
        identity (the same host or configuration) those would take the
        service's running shadows for left-overs and delete them, and its
        collector would compete for the service's port.

    Returns
    -------
    Parts
    """
    from shadow_service.analysis import analyzer as analyzer_mod

    history = history if history is not None else build_history(conf)
    if driver is None:
        driver = clouds.load_driver(conf, history)
    # Refuse a clock the store would drop every point of, loudly.
    history.check_clock(driver.now())
    learners = learners_mod.build(conf, history, clock=driver.now)
    analyzer = analyzer_mod.Analyzer.from_conf(
        conf, load_forecaster=build_load_forecaster(conf, history, driver),
        calibration=learners.calibration)
    try:
        driver.check_access()
    except base.CloudError as e:
        if e.credentials_refused:
            # No call will succeed until the configuration changes.
            raise base.CloudError('the cloud refused the credentials of '
                                  '[openstack]: %s' % e) from None
        # Unreachable now: each call retries, evaluations degrade.
        LOG.warning('Could not reach the cloud at start: %s', e)
    if owns_shadows and conf.shadow.cleanup_on_start:
        try:
            driver.collect_garbage()
        except base.CloudError as e:
            # The service still answers (with what history knows); the
            # driver's periodic collector, if it has one, retries.
            LOG.warning('Could not delete left-over shadows at start: %s',
                        e)
    if owns_shadows:
        driver.start()
    evaluator = evaluation.Evaluator.from_conf(conf, driver, history,
                                               analyzer, learners=learners)
    manager = manager_mod.ShadowManager(
        evaluator, max_concurrent=conf.shadow.max_concurrent_evaluations,
        evaluation_ttl=conf.shadow.evaluation_ttl,
        unpolled_timeout=conf.shadow.unpolled_evaluation_timeout)
    return Parts(conf=conf, history=history, driver=driver,
                 analyzer=analyzer, learners=learners, evaluator=evaluator,
                 manager=manager)


@dataclasses.dataclass
class WatcherParts:
    """The assembled watcher and the service parts it runs on."""

    parts: Parts
    watcher: object

    def close(self):
        if self.watcher.leader is not None:
            self.watcher.leader.stop()
        self.parts.close()


def build_ranker(conf, parts):
    """The ``[watcher] ranker`` a migration's target is chosen with."""
    from shadow_service.watcher import ranking

    choice = conf.watcher.ranker
    budget = conf.watcher.ranking_budget
    if choice == 'history':
        return ranking.ManagerRanker(parts.manager, budget_s=budget)
    if choice == 'rpc':
        return ranking.RpcRanker(conf, budget_s=budget)
    return None


def build_watcher(conf, *, history=None, driver=None, policy=None,
                  foresight=None, leader=None, ranker=None):
    """Assemble ``shadow-watcher``: the service's parts (:func:`build`),
    the ``[watcher] policy`` plugin (or ``policy``), the ranker, and leader
    election when ``[watcher] coordination_url`` is set (or ``leader``).

    ``foresight`` is for benchmarks over the twin only (see
    :class:`shadow_service.watcher.loop.Watcher`); ``ranker`` replaces
    the ``[watcher] ranker`` one.
    """
    from shadow_service.watcher import leader as leader_mod
    from shadow_service.watcher import loop

    # The watcher boots no shadows (its rankings of migration targets
    # are moves: answered from history): it leaves shadows, their
    # collector and their clean-up to shadow-service.
    parts = build(conf, history=history, driver=driver, owns_shadows=False)
    if policy is None:
        policy = loop.load_policy(conf)
    opts = conf.watcher
    if leader is None and opts.coordination_url:
        leader = leader_mod.Leadership(
            opts.coordination_url, opts.coordination_group,
            timeout=opts.leader_timeout,
            call_timeout=opts.coordination_timeout)
    watcher = loop.Watcher(
        conf, driver=parts.driver, history=parts.history,
        analyzer=parts.analyzer, policy=policy,
        ranker=ranker or build_ranker(conf, parts), leader=leader,
        foresight=foresight)
    return WatcherParts(parts=parts, watcher=watcher)


class Compactor:
    """Runs the history store's retention pass every ``interval`` seconds,
    on ``clock`` (the cloud driver's: the time base of the history).

    The first pass runs at :meth:`start`; a failing pass is logged and the
    next one still runs.  ``interval`` 0 makes :meth:`start` a no-op.
    """

    def __init__(self, history, interval, clock=None):
        self.history = history
        self.interval = float(interval)
        # The time base of what the history holds: the cloud driver's.
        self.clock = clock
        self.passes = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = None

    def run_once(self):
        try:
            removed = self.history.compact(
                now=None if self.clock is None else self.clock())
        except Exception:
            self.failures += 1
            LOG.exception('History compaction failed; retrying in %ss',
                          self.interval)
            return None
        finally:
            self.passes += 1
        return removed

    def _loop(self):
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval)

    def start(self):
        if self.interval > 0 and self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name='history-compaction', daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout=30.0):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


class RPCServer:
    """The assembled service's manager served on ``[shadow] topic`` over
    ``transport_url``, with the history retention pass beside it."""

    def __init__(self, parts, transport_url=None, server=None):
        conf = parts.conf
        self.parts = parts
        self.manager = parts.manager
        transport = rpc.get_transport(conf, transport_url)
        self.target = messaging.Target(exchange=rpcapi.EXCHANGE,
                                       topic=conf.shadow.topic,
                                       server=server or socket.gethostname())
        self._server = rpc.get_rpc_server(transport, self.target,
                                          [self.manager])
        self.compactor = Compactor(parts.history,
                                   conf.history.compact_interval_s,
                                   clock=parts.driver.now)
        self.listener = None
        if conf.nova_notifications.listen:
            self.listener = notifications.NotificationListener(
                conf, parts.history, parts.driver.now,
                transport_url=(conf.nova_notifications.transport_url
                               or transport_url),
                nova_time=parts.driver.wall_clock)

    def start(self):
        self._server.start()
        self.compactor.start()
        if self.listener is not None:
            self.listener.start()
        LOG.info('shadow-service listening on topic %s as %s',
                 self.target.topic, self.target.server)
        return self

    def stop(self):
        self._server.stop()
        # The calls under way answer now rather than at their budgets:
        # oslo.service kills the worker [DEFAULT] graceful_shutdown_timeout
        # after SIGTERM, and their shadows would be left to the next start.
        self.manager.cancel_evaluations()
        self._server.wait()
        if self.listener is not None:
            self.listener.stop()
        self.compactor.stop()
        self.parts.close()
