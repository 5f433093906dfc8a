"""Decision records: what the watcher decided, on what, and what came of it.

Every decision other than "do nothing" is written to the history as a
``scaling_decision`` point (tags ``instance``, ``action``, ``outcome``;
field ``record``, JSON; see ``doc/source/contributor/contracts.rst``).  A
decision's first record carries its inputs (flavor, utilisation, the
forecast and its error margin, the QoS breach forecasts) and reasons, and
outcome ``dry_run``, ``suppressed`` (a safety limit refused it, named in
``guard``), ``started`` or ``failed``; an action that started gets a
second record under the same ``decision_id`` when it ends (``done`` or
``failed``), with what was measured meanwhile.
"""

import json
import uuid

from shadow_service import measurements as names
from shadow_service.history import base as history_base

OUTCOMES = ('dry_run', 'suppressed', 'started', 'done', 'failed')
#: Most records :func:`read_actions` reads (the newest): a restart looks
#: that many actions back for those not seen through (an action under
#: way, a sibling's deletion), as far back as the history keeps
#: decision records (``[history] record_retention_days``).
MAX_ACTION_RECORDS = 4096


def new_id():
    return str(uuid.uuid4())


def decision_point(record, when):
    """The ``scaling_decision`` point of ``record`` (a dict with at least
    ``decision_id``, ``instance``, ``action`` and ``outcome``)."""
    if record['outcome'] not in OUTCOMES:
        raise ValueError('outcome %r is not one of %s'
                         % (record['outcome'], ', '.join(OUTCOMES)))
    return history_base.Point(
        names.SCALING_DECISION,
        {names.TAG_INSTANCE: record['instance'],
         names.TAG_ACTION: record['action'],
         names.TAG_OUTCOME: record['outcome']},
        {names.FIELD_RECORD: json.dumps(record, sort_keys=True,
                                        default=float)},
        float(when))


def read(history, start, end, instance=None):
    """Decision records written in ``[start, end)``, oldest first."""
    tags = {names.TAG_INSTANCE: instance} if instance else None
    return _records_of(history.query_points(
        names.SCALING_DECISION, tags=tags, start=start, end=end))


def read_actions(history, end, limit=MAX_ACTION_RECORDS):
    """The records of actions written before ``end`` (a start, whether it
    failed, and an action's end), however old: at most the newest
    ``limit``, oldest first.  What a restart reads beyond its window for
    the actions and deletions not seen through."""
    points = history.query_points(
        names.SCALING_DECISION,
        tags={names.TAG_OUTCOME: ['started', 'done', 'failed']},
        start=None, end=end, limit=limit)
    return _records_of(points)


def _records_of(points):
    """The decision records of ``points`` (those that do not parse are
    skipped), each with its point's time as ``at`` when it has none."""
    out = []
    for point in points:
        try:
            record = json.loads(point.fields[names.FIELD_RECORD])
        except (KeyError, TypeError, ValueError):
            continue
        record.setdefault('at', point.time)
        out.append(record)
    return out
