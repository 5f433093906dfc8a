"""The RPC contract of shadow-service, run over any transport.

``RPCContract`` is mixed into a test class that provides ``transport_url``;
the unit suite runs it over ``fake://``, the functional suite over the real
RabbitMQ.  The service behind it is the real one: the twin, the analyzer and
an in-memory history store.
"""

import logging
import time
import uuid

import pytest

from nova_shadow_filter import weigher as weigher_mod
from shadow_service import exception
from shadow_service import exporter
from shadow_service import rpcapi
from tests import service_support

REQUEST = {'flavor': {'name': 'm1.large', 'vcpus': 4, 'ram_mb': 8192,
                      'disk_gb': 40},
           'profile': 'web'}
HOSTS = [{'host': 'node-%02d' % i, 'vcpus': 32} for i in range(1, 5)]
FAST = {'shadow': {'sample_interval': 1.0, 'min_run_time': 2.0}}


def wait_until_done(api, evaluation_id, timeout=60):
    """Poll ``get_evaluation`` until the evaluation is no longer running."""
    deadline = time.monotonic() + timeout
    state = api.get_evaluation({}, evaluation_id, timeout=30)
    while state['status'] in ('pending', 'running'):
        assert time.monotonic() < deadline, 'evaluation still running'
        time.sleep(0.2)
        state = api.get_evaluation({}, evaluation_id, timeout=30)
    return state


class RPCContract:
    transport_url = None

    @pytest.fixture
    def service(self):
        running = service_support.RunningService(self.transport_url,
                                                 **FAST).start()
        running.wait_until_serving()
        yield running
        running.stop()

    def test_rank_hosts_returns_every_host_scored_and_deletes_shadows(
            self, service):
        ranking = service.client().rank_hosts({}, REQUEST, HOSTS, 10.0,
                                              timeout=60)
        assert ranking['status'] == 'finished'
        assert {h['host'] for h in ranking['hosts']} == {
            h['host'] for h in HOSTS}
        scores = [h['score'] for h in ranking['hosts']]
        assert scores == sorted(scores, reverse=True)
        assert all(0 <= s <= 100 for s in scores)
        assert 0 <= ranking['confidence'] <= 1
        driver = service.manager.evaluator.driver
        assert driver.list_shadows() == []
        record = service.history.get_evaluation(ranking['evaluation_id'])
        assert record['hosts'] == ranking['hosts']

    def test_compact_ranking_keeps_only_what_the_weigher_reads(
            self, service):
        request = dict(REQUEST, purpose='resize')     # history only: fast
        ranking = service.client().rank_hosts({}, request, HOSTS, 10.0,
                                              timeout=60, detail=False)
        assert {h['host'] for h in ranking['hosts']} == {
            h['host'] for h in HOSTS}
        assert all(set(h) == {'host', 'score', 'confidence'}
                   for h in ranking['hosts'])
        # The evaluation record keeps every detail (an answer from
        # history is recorded just after it is given).
        assert service.manager.evaluator.score_writer.flush()
        record = service.history.get_evaluation(ranking['evaluation_id'])
        assert all('reasons' in h for h in record['hosts'])
        # The service's own read-back waits for the record.
        state = service.client().get_evaluation(
            {}, ranking['evaluation_id'], timeout=30)
        assert state['status'] == 'finished'

    def test_host_columns_are_answered_in_the_request_order(self, service):
        request = dict(REQUEST, purpose='resize')     # history only: fast
        hosts = list(reversed(HOSTS))
        columns = {'host': [h['host'] for h in hosts],
                   'vcpus': [h['vcpus'] for h in hosts]}
        client = service.client()
        reply = client.rank_host_columns({}, request, columns, 10.0,
                                         timeout=60)
        ranking = client.rank_hosts({}, request, hosts, 10.0, timeout=60,
                                    detail=False)
        by_host = {h['host']: h for h in ranking['hosts']}
        assert reply['scores'] == [by_host[h]['score']
                                   for h in columns['host']]
        assert reply['confidences'] == [by_host[h]['confidence']
                                        for h in columns['host']]
        assert reply['source'] == ranking['source'] == 'history'
        assert reply['status'] == 'finished'
        assert reply['confidence'] == ranking['confidence']
        assert set(reply) <= {'evaluation_id', 'status', 'source',
                              'confidence', 'raw_confidence', 'scores',
                              'confidences'}
        with pytest.raises(exception.InvalidRequest) as info:
            client.rank_host_columns(
                {}, request, dict(columns, vcpus=[32, 32, -1, 32]), 10.0,
                timeout=30)
        assert 'hosts.vcpus.2' in str(info.value)

    def test_history_only_boots_no_shadow_and_record_false_keeps_none(
            self, service):
        # A boot on hosts history knows nothing about would boot shadows;
        # asked of history only it is answered at once, without them.
        columns = {'host': [h['host'] for h in HOSTS],
                   'vcpus': [h['vcpus'] for h in HOSTS]}
        client = service.client()
        reply = client.rank_host_columns({}, REQUEST, columns, 10.0,
                                         timeout=60, history_only=True,
                                         record=False)
        assert reply['source'] == 'history'
        assert len(reply['scores']) == len(HOSTS)
        evaluation = service.manager._evaluations[reply['evaluation_id']]
        assert evaluation.ranking['shadow_host_seconds'] == 0.0
        # Not recorded: not in history, so not found once it is
        # forgotten by the running service either.
        assert service.manager.evaluator.score_writer.flush()
        assert service.history.get_evaluation(
            reply['evaluation_id']) is None
        # Recorded (the cast the weigher sends for a cached answer).
        client.record_host_columns({}, REQUEST, columns, 10.0)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            recorded = [e for e in service.manager._evaluations.values()
                        if e.history_only and e.record
                        and e.status == 'finished']
            if recorded:
                break
            time.sleep(0.05)
        assert len(recorded) == 1
        assert service.manager.evaluator.score_writer.flush()
        record = service.history.get_evaluation(
            recorded[0].evaluation_id)
        assert record['source'] == 'history'
        assert {h['host'] for h in record['hosts']} == set(columns['host'])

    def test_an_answer_from_history_is_recorded_before_it_is_finished(
            self, service):
        # A reader that sees the evaluation finished and flushes the
        # writer must find its record: it is queued before the status
        # says so.
        writer = service.manager.evaluator.score_writer
        queued = {}
        put_record = writer.put_record

        def recording(record, when, memo=None):
            evaluation = service.manager._evaluations.get(
                record['evaluation_id'])
            queued[record['evaluation_id']] = getattr(
                evaluation, 'status', None)
            return put_record(record, when, memo)

        writer.put_record = recording
        try:
            columns = {'host': [h['host'] for h in HOSTS],
                       'vcpus': [h['vcpus'] for h in HOSTS]}
            reply = service.client().rank_host_columns(
                {}, REQUEST, columns, 10.0, timeout=60, history_only=True)
        finally:
            writer.put_record = put_record
        assert reply['source'] == 'history'
        assert queued == {reply['evaluation_id']: 'running'}

    def test_history_only_or_record_that_is_not_a_boolean_is_a_typed_error(
            self, service):
        cctxt = service.client().client.prepare(version='1.4', timeout=30)
        columns = {'host': [h['host'] for h in HOSTS]}
        for name in ('history_only', 'record'):
            with pytest.raises(exception.InvalidRequest) as info:
                cctxt.call({}, 'rank_host_columns', request=REQUEST,
                           hosts=columns, budget_s=5.0, **{name: 'yes'})
            assert name in str(info.value)

    def test_the_caller_may_name_the_evaluation(self, service):
        # The weigher names a renewal of its cached answer and the record
        # it sends when the renewal fails alike: one evaluation.
        columns = {'host': [h['host'] for h in HOSTS],
                   'vcpus': [h['vcpus'] for h in HOSTS]}
        client = service.client()
        named = str(uuid.uuid4())
        reply = client.rank_host_columns({}, REQUEST, columns, 10.0,
                                         timeout=60, history_only=True,
                                         record=True, evaluation_id=named)
        assert reply['evaluation_id'] == named
        first = service.manager._evaluations[named]
        client.record_host_columns({}, REQUEST, columns, 10.0,
                                   evaluation_id=named)
        # Both are recorded, under the one id: one evaluation.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            second = service.manager._evaluations[named]
            if second is not first and second.status == 'finished':
                break
            time.sleep(0.05)
        assert second is not first
        assert service.manager.evaluator.score_writer.flush()
        assert [row['evaluation_id'] for row in client.list_evaluations(
            {}, timeout=30)].count(named) == 1
        assert service.history.get_evaluation(named)['source'] == 'history'
        with pytest.raises(exception.InvalidRequest) as info:
            client.rank_host_columns({}, REQUEST, columns, 10.0,
                                     timeout=30, history_only=True,
                                     evaluation_id='../etc')
        assert 'evaluation_id' in str(info.value)

    def test_records_report_what_their_weigher_dropped(self, service,
                                                        caplog):
        # Each weigher reports its count of dropped records with the
        # records it sends; the service exports what each report adds
        # to that weigher's last (in whatever order they arrive).
        caplog.set_level(logging.INFO, logger='shadow_service.manager')
        columns = {'host': [h['host'] for h in HOSTS],
                   'vcpus': [h['vcpus'] for h in HOSTS]}
        client = service.client()
        counter = exporter.WEIGHER_RECORDS_DROPPED
        exported = counter._value.get()
        reports = [('weigher-a', 3), ('weigher-a', 3), ('weigher-b', 2),
                   ('weigher-a', 5), ('weigher-a', 4), None]
        for report in reports:
            client.record_host_columns({}, REQUEST, columns, 10.0,
                                       dropped=report)
        # A malformed report is logged and ignored; its record is not.
        cctxt = client.client.prepare(version='1.4')
        bad = {'sender': 'weigher-a\nforged', 'count': -1}
        cctxt.cast({rpcapi.CTXT_RECORD: True, rpcapi.CTXT_DROPPED: bad},
                   'rank_host_columns', request=REQUEST, hosts=columns,
                   budget_s=10.0, history_only=True, record=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            recorded = [e for e in service.manager._evaluations.values()
                        if e.history_only and e.record
                        and e.status == 'finished']
            if len(recorded) == len(reports) + 1:
                break
            time.sleep(0.05)
        assert len(recorded) == len(reports) + 1
        assert counter._value.get() == exported + 5 + 2
        ignored = [r.getMessage() for r in caplog.records
                   if 'malformed report of dropped records' in
                   r.getMessage()]
        assert len(ignored) == 1
        assert '\n' not in ignored[0] and 'forged' in ignored[0]

    def test_detail_that_is_not_a_boolean_is_a_typed_error(self, service):
        cctxt = service.client().client.prepare(version='1.1', timeout=30)
        with pytest.raises(exception.InvalidRequest) as info:
            cctxt.call({}, 'rank_hosts', request=REQUEST, hosts=HOSTS,
                       budget_s=5.0, detail='no')
        assert 'detail' in str(info.value)

    def test_bad_request_gets_a_typed_error_naming_the_field(self, service):
        bad = dict(REQUEST, flavor={'vcpus': -1, 'ram_mb': 1})
        with pytest.raises(exception.InvalidRequest) as info:
            service.client().rank_hosts({}, bad, HOSTS, 5.0, timeout=30)
        assert 'flavor.vcpus' in str(info.value)

    def test_unknown_profile_gets_a_typed_error(self, service):
        with pytest.raises(exception.InvalidRequest) as info:
            service.client().rank_hosts(
                {}, dict(REQUEST, profile='no-such-profile'), HOSTS, 5.0,
                timeout=30)
        assert 'no-such-profile' in str(info.value)

    def test_unknown_evaluation_is_not_found(self, service):
        with pytest.raises(exception.EvaluationNotFound):
            service.client().get_evaluation({}, str(uuid.uuid4()),
                                            timeout=30)

    def test_async_evaluation_can_be_polled_to_the_end(self, service):
        api = service.client()
        evaluation_id = api.start_evaluation({}, REQUEST, HOSTS, 10.0,
                                             timeout=30)
        state = wait_until_done(api, evaluation_id)
        assert state['status'] == 'finished'
        assert state['ranking']['evaluation_id'] == evaluation_id
        assert len(state['ranking']['hosts']) == len(HOSTS)

    def test_another_project_s_evaluation_is_not_found(self, service):
        # The weigher looks a shadow_evaluation hint up for the booting
        # project: another project's evaluation answers as an unknown id
        # does, while it runs, once finished, and once only recorded.
        api = service.client()
        theirs = dict(REQUEST, project_id='project-a')
        evaluation_id = api.start_evaluation({}, theirs, HOSTS, 10.0,
                                             timeout=30)
        unknown = str(uuid.uuid4())

        def not_found_for_b(evaluation_id):
            with pytest.raises(exception.EvaluationNotFound) as info:
                api.get_evaluation({}, evaluation_id, timeout=30,
                                   project_id='project-b')
            return str(info.value).replace(evaluation_id, '<id>')

        running = not_found_for_b(evaluation_id)
        state = wait_until_done(api, evaluation_id)
        assert state['status'] == 'finished'
        # Nothing tells the other project's evaluation from an unknown
        # id, nor names project-a.
        assert not_found_for_b(evaluation_id) == running
        assert not_found_for_b(unknown) == running
        assert 'project-a' not in running
        # Its own project and the operator (no project) read it.
        own = api.get_evaluation({}, evaluation_id, timeout=30,
                                 project_id='project-a')
        assert own['ranking']['hosts'] == state['ranking']['hosts']
        assert api.get_evaluation({}, evaluation_id, timeout=30) == state
        # Recorded only (no longer in the service's memory).
        with service.manager._lock:
            service.manager._forget(evaluation_id)
        assert not_found_for_b(evaluation_id) == running
        recorded = api.get_evaluation({}, evaluation_id, timeout=30,
                                      project_id='project-a')
        assert recorded['ranking']['evaluation_id'] == evaluation_id
        assert api.get_evaluation({}, evaluation_id,
                                  timeout=30)['status'] == 'finished'

    def test_an_evaluation_of_no_project_is_anyone_s(self, service):
        # An operator's pre-flight (no project in its request) serves a
        # shadow_evaluation hint of any project.
        api = service.client()
        evaluation_id = api.start_evaluation({}, REQUEST, HOSTS, 10.0,
                                             timeout=30,
                                             detached=True)
        state = wait_until_done(api, evaluation_id)
        for project in ('project-a', 'project-b', None):
            answer = api.get_evaluation({}, evaluation_id, timeout=30,
                                        project_id=project)
            assert answer['ranking']['hosts'] == state['ranking']['hosts']

    @pytest.mark.parametrize('bad', [5, ['project-a'], 'p' * 256])
    def test_a_malformed_project_is_a_typed_error(self, service, bad):
        with pytest.raises(exception.InvalidRequest) as info:
            service.client().get_evaluation(
                {rpcapi.CTXT_PROJECT_ID: bad}, str(uuid.uuid4()),
                timeout=30)
        assert rpcapi.CTXT_PROJECT_ID in str(info.value)

    @pytest.fixture
    def slow_service(self):
        """A service whose evaluations may not stop on confidence for
        150 s, so a cancel always finds them running."""
        running = service_support.RunningService(
            self.transport_url,
            shadow={'sample_interval': 1.0, 'min_run_time': 150.0}).start()
        running.wait_until_serving()
        yield running
        running.stop()

    def test_cancelled_evaluation_stops_early_and_cleans_up(
            self, slow_service):
        api = slow_service.client()
        started = time.monotonic()
        evaluation_id = api.start_evaluation({}, REQUEST, HOSTS, 200.0,
                                             timeout=30)
        api.cancel_evaluation({}, evaluation_id)
        state = wait_until_done(api, evaluation_id)
        assert state['status'] == 'cancelled'
        assert time.monotonic() - started < 60
        assert slow_service.manager.evaluator.driver.list_shadows() == []

    # 1.2: the operator's read-back -----------------------------------------

    def test_list_shows_recorded_and_running_evaluations_newest_first(
            self, service):
        api = service.client()
        ranking = api.rank_hosts({}, REQUEST, HOSTS, 5.0, timeout=60)
        # Another profile: history cannot answer it at once, so it runs.
        running = api.start_evaluation(
            {}, dict(REQUEST, profile='batch-cpu'), HOSTS, 5.0, timeout=30)
        rows = api.list_evaluations({}, since_s=3600.0, timeout=30)
        ids = [r['evaluation_id'] for r in rows]
        assert ids.index(running) < ids.index(ranking["evaluation_id"]), rows
        done = rows[ids.index(ranking['evaluation_id'])]
        assert done['status'] == 'finished'
        assert done['best_host'] == ranking['hosts'][0]['host']
        assert done['hosts'] == len(HOSTS)
        assert done['profile'] == 'web' and done['vcpus'] == 4
        wait_until_done(api, running)
        finished = api.list_evaluations({}, since_s=3600.0,
                                        status='finished', limit=1,
                                        timeout=30)
        assert [r['evaluation_id'] for r in finished] == [running]

    def test_a_deleted_evaluation_is_not_found_anywhere(self, service):
        api = service.client()
        ranking = api.rank_hosts({}, REQUEST, HOSTS, 5.0, timeout=60)
        evaluation_id = ranking['evaluation_id']
        reply = api.delete_evaluation({}, evaluation_id, timeout=30)
        assert reply == {'evaluation_id': evaluation_id,
                         'status': 'deleted'}
        with pytest.raises(exception.EvaluationNotFound):
            api.get_evaluation({}, evaluation_id, timeout=30)
        assert evaluation_id not in [
            r['evaluation_id']
            for r in api.list_evaluations({}, since_s=3600.0, timeout=30)]
        with pytest.raises(exception.EvaluationNotFound):
            api.delete_evaluation({}, evaluation_id, timeout=30)
        with pytest.raises(exception.EvaluationNotFound):
            api.delete_evaluation({}, str(uuid.uuid4()), timeout=30)

    @pytest.mark.parametrize('bad', ['x' * 5000, 'a\nERROR forged', ['a']])
    def test_a_malformed_id_to_delete_is_a_typed_error(self, service, bad):
        # As get_evaluation: the id is checked before it is looked up,
        # logged or echoed in the error.
        with pytest.raises(exception.InvalidRequest) as info:
            service.client().delete_evaluation({}, bad, timeout=30)
        # The error's own line (over RabbitMQ oslo.messaging appends the
        # server's traceback to a remote error's text): short, the id not
        # echoed whole.
        first = str(info.value).splitlines()[0]
        assert 'evaluation_id' in first
        assert len(first) < 500

    @pytest.mark.parametrize('method,arguments,reason', [
        ('get_evaluation', {'evaluation_id': 'x', 'bogus': 1},
         'get_evaluation: unknown argument bogus (it takes evaluation_id)'),
        ('get_evaluation', {},
         'get_evaluation: missing argument evaluation_id'),
        ('list_profiles', {'a\nERROR forged': 1},
         'list_profiles: unknown argument a\\nERROR forged (it takes '
         'none)'),
        ('rank_hosts', {'request': {}, 'hosts': []},
         'rank_hosts: missing argument budget_s'),
    ])
    def test_arguments_a_method_does_not_take_are_a_typed_error(
            self, service, caplog, method, arguments, reason):
        # oslo.messaging called the method with them: an untyped
        # TypeError, with a traceback in the service's log holding the
        # caller's argument names as sent.
        cctxt = service.client().client.prepare(version='1.0', timeout=30)
        with pytest.raises(exception.InvalidRequest) as info:
            cctxt.call({}, method, **arguments)
        assert str(info.value).splitlines()[0].startswith(
            'Invalid evaluation request: %s' % reason)
        assert 'Exception during message handling' not in caplog.text
        assert '\nERROR forged' not in caplog.text

    @pytest.mark.parametrize('method,version,error', [
        # A caller newer than the service.
        ('get_evaluation', '1.99', 'UnsupportedVersion'),
        ('get_evaluation', '7.0', 'UnsupportedVersion'),
        ('no_such_method\nERROR forged', '1.0', 'NoSuchMethod'),
        # Private: not served, whatever the manager has.
        ('_admit', '1.0', 'NoSuchMethod'),
    ])
    def test_a_call_the_service_does_not_serve_is_refused_in_one_line(
            self, service, caplog, method, version, error):
        # oslo.messaging logged these as exceptions, with a traceback
        # holding the caller's method name as sent.
        caplog.set_level(logging.INFO)
        cctxt = service.client().client.prepare(version=version, timeout=30)
        with pytest.raises(Exception) as info:
            cctxt.call({}, method, evaluation_id='x')
        # The refusal the caller got before, which the weigher reads as
        # "an older service".
        assert weigher_mod._unsupported(info.value)
        assert error in '%s %s' % (type(info.value).__name__,
                                   getattr(info.value, 'exc_type', ''))
        assert 'Exception during message handling' not in caplog.text
        assert '\nERROR forged' not in caplog.text
        refused = [r.getMessage() for r in caplog.records
                   if r.getMessage().startswith('Refused an RPC call')]
        assert len(refused) == 1
        assert error in refused[0]

    @pytest.mark.parametrize('message,reason', [
        ({'version': 'abc\nERROR forged'},
         'the RPC version abc\\nERROR forged of get_evaluation is not a '
         'version'),
        ({'method': 7}, 'the RPC method name 7 is not a string'),
        ({'args': ['x']}, 'the arguments of get_evaluation are not a '
         'mapping'),
    ])
    def test_a_message_that_is_not_a_call_is_a_typed_error(
            self, service, caplog, message, reason):
        # oslo.messaging raised ValueError, TypeError or AttributeError
        # in its dispatcher, logged with a traceback.
        caplog.set_level(logging.INFO)
        cctxt = service.client().client.prepare(version='1.0', timeout=30)
        make = cctxt._make_message
        cctxt._make_message = lambda ctxt, method, kwargs: dict(
            make(ctxt, method, kwargs), **message)
        with pytest.raises(exception.InvalidRequest) as info:
            cctxt.call({}, 'get_evaluation', evaluation_id='x')
        assert str(info.value).splitlines()[0] == (
            'Invalid evaluation request: %s' % reason)
        assert 'Exception during message handling' not in caplog.text
        assert '\nERROR forged' not in caplog.text
        assert 'Refused an RPC call' in caplog.text

    def test_deleting_a_running_evaluation_stops_it_and_its_shadows(
            self, slow_service):
        api = slow_service.client()
        evaluation_id = api.start_evaluation({}, REQUEST, HOSTS, 200.0,
                                             timeout=30)
        api.delete_evaluation({}, evaluation_id, timeout=30)
        manager = slow_service.manager
        deadline = time.monotonic() + 60
        while manager._running:
            assert time.monotonic() < deadline, 'still running'
            time.sleep(0.2)
        assert manager.evaluator.driver.list_shadows() == []
        # Its own final record came after the deletion: still deleted.
        with pytest.raises(exception.EvaluationNotFound):
            api.get_evaluation({}, evaluation_id, timeout=30)

    def test_listings_reject_a_bad_window_naming_the_field(self, service):
        api = service.client()
        for kwargs, field in (({'since_s': -1.0}, 'since_s'),
                              ({'since_s': 'a day'}, 'since_s'),
                              ({'limit': 0}, 'limit')):
            with pytest.raises(exception.InvalidRequest) as info:
                api.list_evaluations({}, timeout=30, **kwargs)
            assert field in str(info.value)
            with pytest.raises(exception.InvalidRequest) as info:
                api.list_decisions({}, timeout=30, **kwargs)
            assert field in str(info.value)

    def test_profiles_are_listed_and_shown(self, service):
        from loadgen import profiles

        api = service.client()
        rows = api.list_profiles({}, timeout=30)
        assert [r['name'] for r in rows] == list(profiles.BUILTIN_PROFILES)
        assert {r['source'] for r in rows} == {'builtin'}
        assert all(r['description'] for r in rows)
        web = api.get_profile({}, 'web', timeout=30)
        assert web['name'] == 'web' and web['source'] == 'builtin'
        assert web == dict(profiles.load_profile('web').to_dict(),
                           source='builtin')
        with pytest.raises(exception.InvalidRequest) as info:
            api.get_profile({}, 'no-such-profile', timeout=30)
        assert 'no-such-profile' in str(info.value)

    def test_decisions_are_listed_newest_first_and_filtered(self, service):
        from shadow_service.watcher import records

        now = service.manager.evaluator.driver.now()
        written = []
        for i, (action, outcome) in enumerate((
                ('resize_up', 'started'), ('resize_up', 'done'),
                ('scale_out', 'suppressed'))):
            record = {'decision_id': 'd-%d' % i, 'instance': 'vm-%d' % (
                i % 2), 'action': action, 'outcome': outcome,
                'at': now - 600 + i * 60}
            written.append(records.decision_point(record, record['at']))
        # One outside the window.
        written.append(records.decision_point(
            {'decision_id': 'old', 'instance': 'vm-0',
             'action': 'resize_up', 'outcome': 'dry_run'}, now - 7200))
        service.history.write(written)
        api = service.client()
        found = api.list_decisions({}, since_s=3600.0, timeout=30)
        assert [r['decision_id'] for r in found] == ['d-2', 'd-1', 'd-0']
        assert [r['decision_id'] for r in api.list_decisions(
            {}, since_s=3600.0, action='resize_up', outcome='done',
            timeout=30)] == ['d-1']
        assert [r['decision_id'] for r in api.list_decisions(
            {}, since_s=3600.0, instance='vm-0', timeout=30)] == [
            'd-2', 'd-0']
        assert len(api.list_decisions({}, since_s=86400.0, limit=2,
                                      timeout=30)) == 2
