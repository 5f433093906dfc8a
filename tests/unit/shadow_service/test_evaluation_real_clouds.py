"""What the evaluation does for drivers of real clouds, on the twin: it
hands the scheduler's host figures to the driver, waits for shadows only
as long as the budget allows, deletes those that never became active,
and keeps the driver's clean-up reserve out of the measuring time."""

import logging
import time

from shadow_service import evaluation
from shadow_service.analysis import analyzer as analyzer_mod
from shadow_service.clouds import base as cloud_base
from shadow_service.clouds.sim import driver as sim_driver
from shadow_service.history import memory
from tests import service_support

REQUEST = {'flavor': {'vcpus': 2, 'ram_mb': 4096, 'disk_gb': 20},
           'profile': 'web'}


class SlowCloudTwin(sim_driver.SimDriver):
    """The twin, with a cloud's slowness: ``never_active`` hosts' shadows
    never come up, deleting takes ``cleanup_reserve_s``."""

    cleanup_reserve_s = 1.5

    def __init__(self, conf, history, never_active=()):
        super().__init__(conf, history)
        self.never_active = set(never_active)
        self.waits = []
        self.deleted = []
        self.hosts_info = None

    def wait_until_active(self, shadows, timeout_s):
        self.waits.append(timeout_s)
        return [s for s in shadows if s.host not in self.never_active]

    def delete_shadows(self, shadows):
        self.deleted.extend(s.host for s in shadows)
        super().delete_shadows(shadows)

    def host_facts(self, hosts, hosts_info=None, deadline=None):
        self.hosts_info = hosts_info
        return super().host_facts(hosts, deadline=deadline)


def _evaluator(driver, history):
    return evaluation.Evaluator(driver, history, analyzer_mod.Analyzer(),
                                sample_interval=1.0, min_run_time=2.0,
                                confidence_target=1.0)


def test_shadows_that_never_come_up_are_deleted_and_left_unmeasured():
    history = memory.MemoryStore()
    # (No day of monitoring backfill: the budget is what is measured.)
    driver = SlowCloudTwin(service_support.make_conf(
        sim={'backfill_hours': 0}), history, never_active={'node-02'})
    evaluator = _evaluator(driver, history)
    hosts = [{'host': 'node-01', 'num_instances': 3, 'vcpus': 16},
             {'host': 'node-02'}, {'host': 'node-03'}]
    # A budget far longer than the race needs: reading the host facts
    # and the history comes out of it (seconds on a loaded machine), and
    # the race ends once the ranking is settled, whatever the budget.
    budget = 60.0
    twin_started = driver.now()
    started = time.monotonic()
    ranking = evaluator.run(evaluator.new(REQUEST, hosts, budget))
    wall = time.monotonic() - started

    measured = {h['host'] for h in ranking['hosts']
                if not h['reasons'][0].startswith('not measured')}
    assert measured == {'node-01', 'node-03'}
    unmeasured = {h['host']: h for h in ranking['hosts']}['node-02']
    assert unmeasured['confidence'] == 0.0
    assert 'no shadow could boot' in unmeasured['reasons'][0]
    assert driver.deleted.count('node-02') == 1
    assert sorted(driver.deleted) == ['node-01', 'node-02', 'node-03']
    assert driver.list_shadows() == []
    assert driver.hosts_info == hosts
    # Waiting is bounded by the budget less the driver's reserve.
    assert 0.0 < driver.waits[0] <= budget - driver.cleanup_reserve_s
    # The race stopped once settled, not at the end of its budget.
    assert ranking['status'] == 'finished'
    assert driver.now() - twin_started < budget / 2
    assert wall < budget


class RefusingDeletes(sim_driver.SimDriver):
    """The twin, with a cloud that answers every deletion with an error
    (a 503 while its API is overloaded)."""

    def delete_shadows(self, shadows):
        raise cloud_base.CloudError(
            'Deleting %s: HTTP 503: the compute API is unavailable'
            % ', '.join(s.shadow_id for s in shadows), retryable=True)


def test_a_deletion_the_cloud_refuses_is_one_warning_naming_the_shadows(
        caplog):
    history = memory.MemoryStore()
    driver = RefusingDeletes(service_support.make_conf(
        sim={'backfill_hours': 0}), history)
    evaluator = _evaluator(driver, history)
    hosts = [{'host': 'node-01'}, {'host': 'node-02'}]
    with caplog.at_level(logging.WARNING, logger=evaluation.__name__):
        ranking = evaluator.run(evaluator.new(REQUEST, hosts, 4.0))
    # The evaluation is answered all the same.
    assert {h['host'] for h in ranking['hosts']} == {'node-01', 'node-02'}
    (failed,) = [r for r in caplog.records if 'deleting shadows' in
                 r.getMessage()]
    assert failed.levelno == logging.WARNING
    # The cloud's words, no traceback, and who deletes them now.
    assert failed.exc_info is None
    assert 'HTTP 503' in failed.getMessage()
    assert 'garbage collector deletes what is left' in failed.getMessage()
    assert 'start-up clean-up' not in caplog.text
    left = driver.list_shadows()
    assert {shadow.host for shadow in left} == {'node-01', 'node-02'}
    for shadow in left:
        assert shadow.shadow_id in failed.getMessage()
