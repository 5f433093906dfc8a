"""The shadow cost benchmark's ``--diagnose-prior``
(``benchmarks/shadow_cost.py``): why the racing schedule's prior did not
answer, on the real twin, history store and analyzer, without changing
what the evaluator decides."""

from tests.fixtures import benchmarks
from tests.unit.shadow_service import test_evaluation as evaluation_tests

REQUEST = evaluation_tests.REQUEST
HOSTS = evaluation_tests.HOSTS
SMALLER = dict(REQUEST, flavor=dict(REQUEST['flavor'], name='m1.medium',
                                    vcpus=2, ram_mb=4096))
SEVEN = HOSTS + [{'host': 'node-7'}]


def _answers(monkeypatch, diagnose):
    monkeypatch.syspath_prepend(str(benchmarks.BENCHMARKS))
    bench = benchmarks.load('shadow_cost')
    evaluator = evaluation_tests.make_evaluator(schedule='racing',
                                                confidence_target=1.0)
    if diagnose:
        bench.PriorDiagnosis(evaluator)
    answers = [evaluator.run(evaluator.new(request, hosts, 10.0))
               for request, hosts in ((REQUEST, SEVEN), (SMALLER, HOSTS),
                                      (SMALLER, SEVEN))]
    return bench, answers


def test_the_diagnosis_says_why_and_changes_no_decision(monkeypatch):
    bench, plain = _answers(monkeypatch, False)
    _bench, diagnosed = _answers(monkeypatch, True)
    for before, after in zip(plain, diagnosed):
        assert after['source'] == before['source']
        assert [h['host'] for h in after['hosts']] == [
            h['host'] for h in before['hosts']]
        verdict = dict(after['history_verdict'])
        verdict.pop('diagnosis', None)
        assert verdict == before['history_verdict']
    first, _second, third = (a['history_verdict'] for a in diagnosed)
    # Nothing known: every candidate without history, none to stand in.
    assert first['diagnosis']['too_few_known'] is True
    assert bench.why_shadows([{'shadow_host_seconds': 1.0,
                               'history_verdict': first}])['reasons'] == {
        'without_history_too_few_known': 1}
    # node-7 has shadows of the profile at 4 vCPUs only: counted, with
    # the spread of the two sizes over the six hosts measured at both.
    found = third['diagnosis']
    assert third['without_history'] == 1
    assert found['unknown_at_other_sizes'] == 1
    assert found['other_size_bridge'] == 6
    assert found['other_size_log_sd'] and all(
        sd >= 0 for sd in found['other_size_log_sd'].values())
    assert found['loss_known_hosts'] is not None
    assert found['loss_at_age_0'] is not None
    assert found['loss_at_age_0'] <= third['expected_loss'] + 1e-9
