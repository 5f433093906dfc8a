"""The ``none`` metrics source: no monitoring is read.

Every canonical metric answers a series of ``None`` (the documented "data
is missing" answer), so callers work unchanged when no monitoring is
configured; :meth:`NullSource.metrics` is empty, which tells them nothing
is measured.  It is the default of ``[metrics] source``.
"""

from shadow_service.metrics import base


class NullSource(base.MetricsSource):
    """No metrics: every series is missing."""

    name = 'none'

    def metrics(self):
        return ()

    def supports(self, metric, kind='host'):
        return metric in base.METRICS

    def query_hosts(self, hosts, metric, window):
        return {}

    def query_instance(self, instance_uuid, metric, window):
        return {}
