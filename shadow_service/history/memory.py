"""An in-process history store.

Keeps every point in a dict keyed like InfluxDB (measurement, tag set,
time), so it answers exactly as the persistent stores do.  It is what unit
tests and short-lived tools use when nothing needs to outlive the process;
it is not meant for a daemon.
"""

import json
import threading

from shadow_service import measurements as names
from shadow_service.history import base


def _matches(point, measurement, tags):
    if point.measurement != measurement:
        return False
    return base.tags_match(point.tags, tags)


def _point_key(point):
    return (point.measurement, tuple(sorted(point.tags.items())),
            base.time_to_us(point.time))


class MemoryStore(base.HistoryStore):
    """Every point in a Python dict; writes are immediate."""

    def __init__(self, conf=None):
        self._points = {}
        self._lock = threading.Lock()
        self._clock = base.MonotonicClock()
        self._written = 0

    def write(self, points):
        prepared = base.prepare_points(points)
        with self._lock:
            for point in prepared:
                key = _point_key(point)
                old = self._points.get(key)
                if old is not None:
                    point = base.Point(point.measurement, point.tags,
                                       {**old.fields, **point.fields},
                                       point.time)
                self._points[key] = point
            self._written += len(prepared)

    def flush(self, timeout=None):
        return True

    def query_points(self, measurement, tags=None, start=None, end=None,
                     limit=None):
        base.check_limit(limit)
        lo = None if start is None else base.time_to_us(start)
        hi = None if end is None else base.time_to_us(end)
        with self._lock:
            found = [
                p for key, p in self._points.items()
                if _matches(p, measurement, tags)
                and (lo is None or key[2] >= lo)
                and (hi is None or key[2] < hi)]
        found.sort(key=lambda p: p.time)
        return found if limit is None else found[-limit:]

    def query_series(self, measurement, field, tags, start, end, step_s,
                     agg='mean'):
        base.check_window(start, end, step_s, agg)
        buckets = base.Buckets(start, end, step_s)
        for point in self.query_points(measurement, tags, start, end):
            value = point.fields.get(field)
            if base.is_number(value):
                buckets.add_value(base.time_to_us(point.time), value)
        return buckets.series(agg)

    def latest(self, measurement, field, tags=None, group_by='host'):
        newest = {}
        for point in self.query_points(measurement, tags):
            key = point.tags.get(group_by)
            if key is not None and field in point.fields:
                newest[key] = (point.time, point.fields[field])
        return newest

    def get_evaluation(self, evaluation_id):
        found = self.query_points(
            names.EVALUATION, {names.TAG_EVALUATION: str(evaluation_id)})
        records = [p for p in found if 'record' in p.fields]
        return json.loads(records[-1].fields['record']) if records else None

    def counters(self):
        return {'written': self._written, 'retried': 0, 'dropped': 0,
                'buffered': 0}
