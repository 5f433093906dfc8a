"""Assembling the shadow service from configuration.

:func:`build_manager` wires history store, cloud driver, analyzer and
evaluator into a :class:`~shadow_service.manager.ShadowManager`;
:class:`RPCServer` puts that manager on the ``[shadow] topic``.  The
``shadow-service`` daemon (``shadow_service.cmd.service``) and the tests use
the same two pieces.
"""

import logging
import socket
import threading

import oslo_messaging as messaging

from shadow_service import clouds
from shadow_service import evaluation
from shadow_service import manager as manager_mod
from shadow_service import rpc
from shadow_service import rpcapi

LOG = logging.getLogger(__name__)


def build_analyzer(conf):
    from shadow_service.analysis import analyzer

    from_conf = getattr(analyzer.Analyzer, 'from_conf', None)
    if from_conf is not None and 'analysis' in conf:
        return from_conf(conf)
    return analyzer.Analyzer(confidence_target=conf.shadow.confidence_target)


def build_history(conf):
    from shadow_service import history

    return history.load_store(conf)


def collect_garbage(driver):
    """Delete shadows an earlier run left behind; returns how many."""
    leftovers = driver.list_shadows()
    if leftovers:
        LOG.warning('Deleting %d shadows left by an earlier run: %s',
                    len(leftovers), ', '.join(s.shadow_id for s in leftovers))
        driver.delete_shadows(leftovers)
    return len(leftovers)


def build_manager(conf, history=None, driver=None, analyzer=None):
    history = history if history is not None else build_history(conf)
    driver = driver if driver is not None else clouds.load_driver(
        conf, history)
    analyzer = analyzer if analyzer is not None else build_analyzer(conf)
    if conf.shadow.cleanup_on_start:
        collect_garbage(driver)
    evaluator = evaluation.Evaluator.from_conf(conf, driver, history,
                                               analyzer)
    return manager_mod.ShadowManager(
        evaluator, max_concurrent=conf.shadow.max_concurrent_evaluations,
        evaluation_ttl=conf.shadow.evaluation_ttl)


class Compactor:
    """Runs the history store's retention pass every ``interval`` seconds.

    The first pass runs at :meth:`start`; a failing pass is logged and the
    next one still runs.  ``interval`` 0 makes :meth:`start` a no-op.
    """

    def __init__(self, history, interval):
        self.history = history
        self.interval = float(interval)
        self.passes = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = None

    def run_once(self):
        try:
            removed = self.history.compact()
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
    """The manager served on ``topic`` over ``transport_url``."""

    def __init__(self, conf, manager, transport_url=None, server=None):
        self.manager = manager
        transport = rpc.get_transport(conf, transport_url)
        self.target = messaging.Target(exchange=rpcapi.EXCHANGE,
                                       topic=conf.shadow.topic,
                                       server=server or socket.gethostname())
        self._server = messaging.get_rpc_server(transport, self.target,
                                                [manager])
        self.compactor = Compactor(manager.evaluator.history,
                                   conf.history.compact_interval_s)

    def start(self):
        self._server.start()
        self.compactor.start()
        LOG.info('shadow-service listening on topic %s as %s',
                 self.target.topic, self.target.server)
        return self

    def stop(self):
        self._server.stop()
        self._server.wait()
        self.compactor.stop()
        self.manager.shutdown()
        try:
            self.manager.evaluator.history.close()
        except Exception:
            LOG.exception('Closing the history store failed')
