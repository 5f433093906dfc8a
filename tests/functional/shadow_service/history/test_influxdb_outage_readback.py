"""The operator's read-back while InfluxDB is away: ``get_evaluation``,
``delete_evaluation``, ``list_evaluations`` and ``list_decisions`` say
the history store cannot be used (``HistoryUnavailable``, one line, over
the real RabbitMQ), never "not found" for an evaluation that exists nor
an untyped error; nothing changes meanwhile, and once InfluxDB is back
the same calls answer.  This test owns its ``influxd`` (it stops and
starts it)."""

import logging
import uuid

import pytest
from osc_lib import exceptions as osc_exceptions

from shadow_service.cmd import cli
from shadow_service.history import influxdb
from shadow_service.osc import client as osc_client
from tests import service_support
from tests.fixtures import influxdb as influxdb_fixture

pytestmark = pytest.mark.rabbit

REQUEST = {'flavor': {'vcpus': 2, 'ram_mb': 2048}, 'profile': 'web'}
HOSTS = [{'host': 'node-01'}, {'host': 'node-02'}]
UNAVAILABLE = 'The history store cannot be used now: InfluxDB at '


@pytest.fixture
def private_influxd(influxdb_server):
    server = influxdb_fixture.InfluxDBServer().start()
    yield server
    server.cleanup()


def _refused(call):
    """The typed error ``call`` raises (it must raise one)."""
    with pytest.raises(Exception) as info:
        call()
    return info.value


def _unavailable(error):
    first_line = str(error).split('\n', 1)[0]
    return (service_support.typed_error(error, 'HistoryUnavailable')
            and first_line.startswith(UNAVAILABLE))


def test_the_read_back_says_the_history_is_unavailable(
        private_influxd, rabbit_url, tmp_path, capsys, caplog):
    store = influxdb.InfluxDBStore(
        url=private_influxd.url, database='outage_readback',
        flush_interval_s=0.1, retry_backoff_s=0.2, retry_backoff_max_s=1.0,
        timeout_s=2.0, startup_timeout_s=10)
    running = service_support.RunningService(rabbit_url, store=store).start()
    try:
        running.wait_until_serving()
        api = running.client()
        # An evaluation an earlier run of the service recorded (only in
        # the history), and one this run holds in memory.
        recorded = str(uuid.uuid4())
        service_support.seed_evaluation(
            store, recorded, REQUEST, 'web', ['cpu_ops_per_s'], ['node-01'],
            running.parts.driver.now() - 60,
            lambda index, metric_index, step: 1000.0)
        assert store.flush(timeout=30)
        held = api.rank_hosts({}, dict(REQUEST, purpose='resize'), HOSTS,
                              5.0, timeout=60)['evaluation_id']
        assert api.get_evaluation({}, recorded, timeout=30)['status'] == (
            'finished')

        private_influxd.stop()
        caplog.clear()
        caplog.set_level(logging.INFO)
        # Before: "not found" for the recorded evaluation, and untyped
        # errors (a traceback in the service's log) for the listings.
        for call in (
                lambda: api.get_evaluation({}, recorded, timeout=30),
                lambda: api.delete_evaluation({}, recorded, timeout=30),
                lambda: api.delete_evaluation({}, held, timeout=30),
                lambda: api.list_evaluations({}, timeout=30),
                lambda: api.list_decisions({}, timeout=30)):
            error = _refused(call)
            assert _unavailable(error), repr(error)
        # The service logged each as one line, without a traceback.
        assert not [r for r in caplog.records if r.exc_info]
        rejected = [r.getMessage() for r in caplog.records
                    if r.getMessage().startswith('Rejected ')]
        assert len(rejected) == 5, rejected
        assert all(': HistoryUnavailable: ' in line for line in rejected)
        # The evaluation in memory is still answered, and was not
        # deleted by the refused call.
        assert api.get_evaluation({}, held, timeout=30)['status'] == (
            'finished')

        # Both command lines say it in one line and exit 1.
        conf_path = tmp_path / 'nova-shadow.conf'
        conf_path.write_text('[DEFAULT]\ntransport_url = %s\n'
                             '[shadow]\ntopic = %s\n'
                             % (rabbit_url, running.topic))
        capsys.readouterr()
        assert cli.main(['--config-file', str(conf_path), 'show',
                         recorded]) == 1
        err = capsys.readouterr().err
        assert err.startswith('error: HistoryUnavailable: ' + UNAVAILABLE)
        assert err.count('\n') == 1, err
        client = osc_client.ShadowClient(transport_url=rabbit_url,
                                         topic=running.topic)
        error = _refused(lambda: client.call('list_evaluations'))
        assert isinstance(error, osc_exceptions.CommandError)
        assert str(error).startswith(UNAVAILABLE)
        assert '\n' not in str(error)

        # Back: nothing was lost, and the same calls answer.
        private_influxd.start()
        assert api.get_evaluation({}, recorded, timeout=30)['status'] == (
            'finished')
        listed = {row['evaluation_id']
                  for row in api.list_evaluations({}, timeout=30)}
        assert {recorded, held} <= listed
        assert api.list_decisions({}, timeout=30) == []
        api.delete_evaluation({}, recorded, timeout=30)
        error = _refused(lambda: api.get_evaluation({}, recorded,
                                                    timeout=30))
        assert service_support.typed_error(error, 'EvaluationNotFound')
    finally:
        running.stop()
