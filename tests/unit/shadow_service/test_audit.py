"""Listing and deleting evaluation records (every store answers alike;
the in-memory one here, the others through the RPC contract tests)."""

from shadow_service import audit
from shadow_service.history import memory
from shadow_service.workloads import profiles


def _record(evaluation_id, host='a'):
    return {'evaluation_id': evaluation_id, 'status': 'finished',
            'confidence': 0.8, 'source': 'shadows',
            'hosts': [{'host': host, 'score': 90.0}],
            'request': {'profile': 'web', 'flavor': {'vcpus': 2}}}


def test_the_newest_record_of_each_evaluation_newest_first():
    store = memory.MemoryStore()
    store.put_evaluation(_record('one'), when=100.0)
    store.put_evaluation(_record('two'), when=200.0)
    store.put_evaluation(dict(_record('one'), status='cancelled'),
                         when=300.0)
    found = audit.list_evaluations(store, 0.0, None)
    assert [(t, r['evaluation_id'], r['status']) for t, r in found] == [
        (300.0, 'one', 'cancelled'), (200.0, 'two', 'finished')]
    assert audit.list_evaluations(store, 250.0, None)[0][0] == 300.0


def test_a_tombstone_lands_after_the_newest_record_whatever_the_clock():
    store = memory.MemoryStore()
    store.put_evaluation(_record('one'), when=100.0)
    audit.tombstone(store, 'one', now=50.0)
    assert audit.is_deleted(store.get_evaluation('one'))
    assert audit.list_evaluations(store, 0.0, None) == []


def test_a_summary_names_the_workload_and_the_best_host():
    row = audit.summary(_record('one', host='node-3'), at=5.0)
    assert row == {'evaluation_id': 'one', 'status': 'finished',
                   'profile': 'web', 'vcpus': 2, 'hosts': 1,
                   'best_host': 'node-3', 'best_score': 90.0,
                   'confidence': 0.8, 'source': 'shadows',
                   'shadow_host_seconds': None, 'at': 5.0}
    inline = audit.summary({'request': {'profile': {'name': 'mine'}}})
    assert inline['profile'] == 'mine' and inline['best_host'] is None


def test_operator_profiles_are_the_files_a_request_may_name(tmp_path):
    for name in ('report.yaml', 'web.yaml', 'b.json', 'notes.txt',
                 '.hidden.yaml'):
        (tmp_path / name).write_text('{}')
    (tmp_path / 'dir.yaml').mkdir()
    assert profiles.operator_names([str(tmp_path), '/no/such/dir']) == [
        'b', 'report']
