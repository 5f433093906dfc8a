"""What a restart reads of the decision records beyond its window
(:func:`records.read_actions`), on each history store."""

from shadow_service.watcher import records
from tests.unit.shadow_service.history import conftest as stores

# Each history store in turn, empty: the history tests' own fixture.
store = stores.store


def _record(decision_id, action, outcome, at):
    return records.decision_point({
        'decision_id': decision_id, 'instance': 'vm-1', 'action': action,
        'outcome': outcome, 'at': at}, at)


def test_the_action_records_before_the_window_are_read_however_old(store):
    day = 86400.0
    store.write([
        _record('a', 'resize_up', 'started', 1000.0),
        _record('b', 'scale_in', 'started', 2000.0),
        _record('b', 'scale_in', 'failed', 2000.0 + day),
        _record('c', 'scale_out', 'suppressed', 3000.0),
        _record('d', 'resize_down', 'dry_run', 4000.0),
        _record('e', 'scale_out', 'started', 100 * day),
    ])
    store.flush(timeout=10.0)
    found = records.read_actions(store, 50 * day)
    assert [(r['decision_id'], r['outcome']) for r in found] == [
        ('a', 'started'), ('b', 'started'), ('b', 'failed')]
    # The newest ones only, past the limit.
    assert [r['decision_id'] for r in records.read_actions(
        store, 50 * day, limit=1)] == ['b']
