"""An error the writer does not foresee (a fault in the store) loses only
the points not yet settled, and counts each point once: those written
stay ``written``, those the server dropped stay counted where they were.
A real influxd writes the points, refuses a batch too large for its
``max-body-size`` (413) and answers a type conflict with a partial write;
the fault itself is raised by the store subclass below, the one thing no
real server here can provide."""

import time

import pytest

from shadow_service.history import base
from shadow_service.history import influxdb
from tests.fixtures import influxdb as influxdb_fixture

T0 = float(int(time.time()) - 3600)
POINTS = 64


class _Unforeseen(Exception):
    pass


class _FaultyStore(influxdb.InfluxDBStore):
    """Raises :class:`_Unforeseen` at ``fault_at`` (``'post'``: the
    first ``/write`` after one the server accepted; ``'check_kept'``:
    after a partial write was counted), once."""

    fault_at = None

    def __init__(self, **kwargs):
        self.accepted = 0
        self.faults = 0
        super().__init__(**kwargs)

    def _post(self, batch, policy):
        if self.fault_at == 'post' and self.accepted and not self.faults:
            self.faults += 1
            raise _Unforeseen('a fault in the store')
        reply = super()._post(batch, policy)
        if reply.status_code == 204:
            self.accepted += len(batch)
        return reply

    def _check_kept(self, batch, policy, seqs):
        if self.fault_at == 'check_kept' and not self.faults:
            self.faults += 1
            raise _Unforeseen('a fault in the store')
        return super()._check_kept(batch, policy, seqs)


def _count(server, database, measurement):
    reply = server.query(database, 'SELECT count(value) FROM %s'
                         % measurement)
    series = reply['results'][0].get('series')
    return series[0]['values'][0][1] if series else 0


@pytest.fixture
def small_body_influxd(influxdb_server):
    server = influxdb_fixture.InfluxDBServer(
        http_options={'max-body-size': 2000}).start()
    yield server
    server.cleanup()


def _store(server, database, fault_at, **options):
    _FaultyStore.fault_at = fault_at
    settings = dict(url=server.url, database=database,
                    flush_interval_s=0.05, retry_backoff_s=0.05,
                    retry_backoff_max_s=0.1, startup_timeout_s=10,
                    raw_retention_days=0)
    settings.update(options)
    return _FaultyStore(**settings)


def test_a_fault_halfway_through_a_split_batch_drops_only_the_rest(
        small_body_influxd, caplog):
    store = _store(small_body_influxd, 'split_fault', 'post',
                   batch_size=POINTS)
    try:
        store.write([base.Point('host_metric',
                                {'host': 'compute-%02d' % i, 'metric': 'cpu'},
                                {'value': float(i)}, T0 + i)
                     for i in range(POINTS)])
        store.flush(timeout=30)
        counters = store.counters()
        accepted = store.accepted
        # The writer goes on with the next batch.
        later = base.Point('host_metric', {'host': 'later', 'metric': 'cpu'},
                           {'value': 1.0}, T0 + POINTS)
        store.write_through([later], timeout=10)
        after = store.counters()
    finally:
        store.close()

    stored = _count(small_body_influxd, 'split_fault', 'host_metric')
    assert store.faults == 1
    assert 0 < accepted < POINTS
    assert counters['written'] == accepted
    assert counters['dropped'] == POINTS - accepted
    assert stored == accepted + 1
    assert after['written'] == accepted + 1
    assert after['dropped'] == POINTS - accepted
    (record,) = [r for r in caplog.records
                 if 'History writer failed' in r.getMessage()]
    assert '%d of %d points not settled' % (POINTS - accepted,
                                            POINTS) in record.getMessage()


def test_a_fault_after_a_partial_write_counts_its_points_once(
        influxdb_server):
    store = _store(influxdb_server, 'partial_fault', 'check_kept',
                   batch_size=1000)
    try:
        store.write_through([base.Point(
            'host_metric', {'host': 'h0', 'metric': 'cpu'}, {'value': 0.5},
            T0)], timeout=10)
        # One point whose value is a string where InfluxDB holds floats:
        # it writes the nine others and answers "partial write ...
        # dropped=1".
        batch = [base.Point('host_metric', {'host': 'h%d' % i,
                                            'metric': 'cpu'},
                            {'value': 'busy' if i == 5 else float(i)},
                            T0 + i) for i in range(1, 11)]
        store.write(batch)
        store.flush(timeout=30)
        counters = store.counters()
    finally:
        store.close()

    assert store.faults == 1
    assert _count(influxdb_server, 'partial_fault', 'host_metric') == 10
    assert counters['written'] == 10
    assert counters['dropped'] == 1
