"""A renewal of a cached answer that the service answers after the
weigher stopped waiting: the weigher records the request instead, the
service records the late renewal too, and the history must hold one
evaluation of the request, not two.

The deployed ShadowWeigher in Nova's real HostWeightHandler over real
HostStates, a real shadow service (the twin, a history seeded so that
history alone answers), the real RabbitMQ.  The twin's host listing (the
hypervisor edge) is made slow after the first answer, so the service
reads the renewal in time and answers it late.
"""

import time
import uuid

import nova.conf
import pytest
from nova.scheduler import weights
from oslo_config import fixture as config_fixture

from nova_shadow_filter import request as request_lib
from nova_shadow_filter import weigher as shadow_weigher
from shadow_service import measurements as names
from shadow_service.analysis import analyzer as analyzer_mod
from shadow_service.workloads import profiles
from tests import nova_support
from tests import service_support

CONF = nova.conf.CONF
pytestmark = pytest.mark.rabbit

HOSTS = ('node-01', 'node-02', 'node-03')
PROFILE = 'web'
#: Seconds the twin takes to list its hosts once the answer is cached:
#: longer than the renewal's deadline (budget 1 s + margin 0.5 s).
SLOW_LISTING_S = 3.0


@pytest.fixture
def api_database():
    with nova_support.api_database():
        yield


def _seed(running):
    """One earlier evaluation of the workload on every host (10 samples
    of every metric the profile weighs), so that history alone answers
    (as ``benchmarks/scheduler_overhead.py`` seeds its service)."""
    request = request_lib.build_request(
        {'name': 'm1.medium', 'vcpus': 2, 'ram_mb': 4096, 'disk_gb': 20},
        PROFILE)
    profile = profiles.resolve_profile(request, ())
    metrics = sorted(analyzer_mod.Analyzer.from_conf(running.conf).weights(
        profile.sensitivity))
    evaluation_id = str(uuid.uuid4())
    start = running.parts.driver.now() - 600.0
    service_support.seed_evaluation(
        running.history, evaluation_id, request, profile.name, metrics,
        HOSTS, start,
        lambda index, metric_index, step:
            100.0 + (index * 37 + metric_index * 11) % 60 + step % 3)
    return evaluation_id


def _evaluations(running, seeded):
    """``{evaluation id: newest record}`` in the history, the seeded one
    left out (what the learners and the operator's read-back see)."""
    running.manager._settle_records()
    newest = {}
    for point in running.history.query_points(names.EVALUATION):
        evaluation_id = point.tags.get(names.TAG_EVALUATION)
        if evaluation_id != seeded:
            newest[evaluation_id] = point
    return newest


def _wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def test_a_renewal_answered_late_is_one_evaluation_with_its_record(
        rabbit_url, api_database, monkeypatch):
    running = service_support.RunningService(rabbit_url).start()
    flags = config_fixture.Config(CONF)
    flags.setUp()
    try:
        running.wait_until_serving()
        seeded = _seed(running)
        flags.config(transport_url=rabbit_url, topic=running.topic,
                     default_budget=30.0, deadline_margin=0.5,
                     prior_cache_ttl=30.0, group='shadow_weigher')
        shadow = shadow_weigher.ShadowWeigher()
        handler = weights.HostWeightHandler()

        def ask():
            return handler.get_weighed_objects(
                [shadow], [nova_support.host_state(h) for h in HOSTS],
                nova_support.request_spec({'shadow_profile': PROFILE}))

        ask()
        assert _wait_for(lambda: len(_evaluations(running, seeded)) == 1,
                         10)
        # Answered from history: kept by the weigher.
        [key] = list(shadow._prior_cache._answers)
        assert shadow._prior_cache.holds(key)
        # From now on the twin lists its hosts slowly: the service reads
        # the renewal in time and answers it after the weigher's deadline.
        driver = running.parts.driver
        list_hosts = driver.list_hosts

        def slow_list_hosts():
            time.sleep(SLOW_LISTING_S)
            return list_hosts()

        monkeypatch.setattr(driver, 'list_hosts', slow_list_hosts)
        flags.config(default_budget=1.0, group='shadow_weigher')
        now = time.monotonic()
        monkeypatch.setattr(shadow._prior_cache, 'clock', lambda: now + 16.0)
        ask()
        # The renewal fails at the weigher (no answer in time) and the
        # request is recorded instead.
        assert _wait_for(lambda: shadow._recorder is not None
                         and shadow._recorder.renewals_failed == 1, 10)
        # Both the late renewal and the record sent instead are answered
        # and recorded by the service.
        assert _wait_for(
            lambda: not any(e.status == 'running'
                            for e in running.evaluations.values())
            and len(running.evaluations) >= 2, 3 * SLOW_LISTING_S + 10)
        time.sleep(0.5)
        recorded = _evaluations(running, seeded)
        # The first request's evaluation and one of the second request.
        assert len(recorded) == 2, sorted(recorded)
    finally:
        flags.cleanUp()
        running.stop()
