"""The ``history`` metrics source: monitoring points in the history store.

Reads the ``host_metric`` (tags ``host``, ``metric``) and
``instance_metric`` (tags ``instance``, ``host``, ``metric``) points of the
configured :class:`~shadow_service.history.base.HistoryStore`, field
``value``, as the mean per grid bucket (``query_series``).  This is how the
digital twin's host monitoring reaches the analyzer, and how any collector
that writes those points into the store (see
``doc/source/contributor/contracts.rst``) feeds nova-shadow.

Metric names are whatever the writers used: the canonical names of
:data:`~shadow_service.metrics.base.METRICS`, and for instances also the
loadgen catalogue (``cpu_ops_per_s``, ...).  The store's own timeouts apply
(``[history] influx_timeout_s`` for InfluxDB; SQLite answers in-process); a
:class:`~shadow_service.history.base.HistoryError` is retried as an
unavailable backend.
"""

import logging

from shadow_service.history import base as history_base
from shadow_service.metrics import base

LOG = logging.getLogger(__name__)


class HistorySource(base.MetricsSource):
    """Host and instance metrics from the history store.

    Parameters
    ----------
    conf : oslo_config.cfg.ConfigOpts, optional
        Without ``history``, the store named by ``[history] store`` is
        built from it.
    history : shadow_service.history.base.HistoryStore, optional
        The store to read (the service passes its own).
    """

    name = 'history'

    def __init__(self, conf=None, history=None):
        super().__init__(conf, history=history)
        if self.history is None:
            from shadow_service import history as history_pkg
            try:
                self.history = history_pkg.load_store(self.conf)
            except history_base.HistoryError as exc:
                raise base.MetricsError(
                    'the history metrics source cannot open the history '
                    'store ([history] store): %s' % exc)
            self._own_store = True
        else:
            self._own_store = False

    def metrics(self):
        return tuple(base.METRICS)

    def instance_metrics(self):
        return tuple(base.METRICS)

    def supports(self, metric, kind='host'):
        # The store holds whatever its writers named; a name that was never
        # written reads as missing data, like an unknown host.
        return base.is_metric_name(metric)

    def query_hosts(self, hosts, metric, window):
        return {host: self._read('host_metric',
                                 {'host': host, 'metric': metric}, window)
                for host in hosts}

    def query_instance(self, instance_uuid, metric, window):
        return self._read('instance_metric',
                          {'instance': instance_uuid, 'metric': metric},
                          window)

    def _read(self, measurement, tags, window):
        try:
            series = self.history.query_series(
                measurement, 'value', tags, window.start, window.end,
                window.step_s, agg='mean')
        except history_base.HistoryError as exc:
            raise base.MetricsUnavailable(
                'history store did not answer for %s %s: %s'
                % (measurement, tags, exc))
        return {i: value for i, value in enumerate(series.values)
                if value is not None}

    def close(self):
        if self._own_store:
            self.history.close()
