"""Reading back what the service and the watcher recorded, for operators.

The history keeps one ``evaluation`` point per finished evaluation (and
the watcher one ``scaling_decision`` point per decision, see
:mod:`shadow_service.watcher.records`).  This module lists them, and
deletes an evaluation the only way an append-only store allows: a newer
record with status ``deleted`` (a *tombstone*) for the same evaluation
id, which :func:`is_deleted` recognises and the RPC API then answers as
"not found".  The evaluation's samples stay (they are measurements of
the hosts, useful to later priors) until retention removes them.
"""

import json

from shadow_service import measurements as names

#: Status of a tombstone record.
DELETED = 'deleted'
#: Gap kept between an evaluation's newest record and its tombstone, so
#: "newest" is never a tie whatever the driver's clock did meanwhile.
TOMBSTONE_GAP_S = 1e-3


def is_deleted(record):
    """True if ``record`` (a stored evaluation record) is a tombstone."""
    return bool(record) and record.get('status') == DELETED


def summary(record, at=None):
    """The few fields a listing shows of an evaluation record (or of an
    evaluation's ``to_dict()`` while it runs)."""
    ranking = record.get('ranking') if 'ranking' in record else record
    ranking = ranking or {}
    hosts = ranking.get('hosts') or []
    request = record.get('request') or {}
    profile = request.get('profile')
    if isinstance(profile, dict):
        profile = profile.get('name') or 'inline'
    flavor = request.get('flavor') or {}
    return {
        'evaluation_id': record.get('evaluation_id'),
        'status': record.get('status'),
        'profile': profile,
        'vcpus': flavor.get('vcpus'),
        'hosts': len(hosts),
        'best_host': hosts[0]['host'] if hosts else None,
        'best_score': hosts[0].get('score') if hosts else None,
        'confidence': ranking.get('confidence'),
        'source': ranking.get('source'),
        'shadow_host_seconds': ranking.get('shadow_host_seconds'),
        'at': at if at is not None else record.get('finished_at'),
    }


def list_evaluations(history, start, end):
    """``[(time, record)]`` of the newest record of every evaluation
    recorded in ``[start, end)``, newest first, tombstoned ones left
    out."""
    newest = {}
    for point in history.query_points(names.EVALUATION, start=start,
                                      end=end):
        evaluation_id = point.tags.get(names.TAG_EVALUATION)
        try:
            record = json.loads(point.fields[names.FIELD_RECORD])
        except (KeyError, TypeError, ValueError):
            continue
        held = newest.get(evaluation_id)
        if held is None or point.time >= held[0]:
            newest[evaluation_id] = (point.time, record)
    found = [item for item in newest.values() if not is_deleted(item[1])]
    return sorted(found, key=lambda item: item[0], reverse=True)


def tombstone(history, evaluation_id, now):
    """Record that ``evaluation_id`` is deleted (after its newest record,
    whatever ``now`` says); returns the point written."""
    recorded = history.query_points(
        names.EVALUATION, {names.TAG_EVALUATION: str(evaluation_id)})
    when = float(now)
    if recorded:
        when = max(when, recorded[-1].time + TOMBSTONE_GAP_S)
    return history.put_evaluation(
        {'evaluation_id': evaluation_id, 'status': DELETED}, when=when)

