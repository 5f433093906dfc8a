"""An in-process history store.

Keeps every point in a list.  It is what unit tests and short-lived tools use
when nothing needs to outlive the process; it is not meant for a daemon.
"""

import json
import math

from shadow_service.history import base


def _matches(point, measurement, tags):
    if point.measurement != measurement:
        return False
    return all(point.tags.get(k) == v for k, v in (tags or {}).items())


def _aggregate(values, agg):
    if not values:
        return None
    if agg == 'mean':
        return sum(values) / len(values)
    if agg == 'max':
        return max(values)
    if agg == 'min':
        return min(values)
    if agg == 'last':
        return values[-1]
    raise ValueError('unknown aggregate %r' % agg)


class MemoryStore(base.HistoryStore):
    """Every point in a Python list; writes are immediate."""

    def __init__(self, conf=None):
        self._points = []
        self._evaluations = {}
        self._written = 0

    def write(self, points):
        for point in points:
            base.validate_point(point)
            self._points.append(point)
            self._written += 1

    def flush(self, timeout=None):
        return True

    def query_points(self, measurement, tags=None, start=None, end=None):
        lo = -math.inf if start is None else start
        hi = math.inf if end is None else end
        found = [p for p in self._points
                 if _matches(p, measurement, tags) and lo <= p.time < hi]
        return sorted(found, key=lambda p: p.time)

    def query_series(self, measurement, field, tags, start, end, step_s,
                     agg='mean'):
        if start is None or end is None:
            raise ValueError('query_series needs a bounded window')
        steps = max(0, int(math.ceil((end - start) / step_s)))
        buckets = [[] for _ in range(steps)]
        for point in self.query_points(measurement, tags, start, end):
            if field in point.fields:
                buckets[int((point.time - start) // step_s)].append(
                    float(point.fields[field]))
        return base.Series(
            times=[start + i * step_s for i in range(steps)],
            values=[_aggregate(b, agg) for b in buckets],
            step_s=step_s)

    def latest(self, measurement, field, tags=None, group_by='host'):
        newest = {}
        for point in self.query_points(measurement, tags):
            key = point.tags.get(group_by)
            if key is not None and field in point.fields:
                newest[key] = (point.time, point.fields[field])
        return newest

    def put_evaluation(self, record):
        self._evaluations[record['evaluation_id']] = json.loads(
            json.dumps(record))

    def get_evaluation(self, evaluation_id):
        return self._evaluations.get(evaluation_id)

    def counters(self):
        return {'written': self._written, 'retried': 0, 'dropped': 0,
                'buffered': 0}
