"""The weigher's cache of answers from history against the real service,
which scores each host relative to the best host of the list it is given:
whatever the cache answers from, its scores are those of one candidate
list, as the service would answer that list.

The deployed ShadowWeigher in Nova's real HostWeightHandler over real
HostStates, a real shadow service (the twin, a history seeded so that
history alone answers), the real RabbitMQ.
"""

import time
import uuid

import nova.conf
import pytest
from nova.scheduler import weights
from oslo_config import fixture as config_fixture

from nova_shadow_filter import request as request_lib
from nova_shadow_filter import weigher as shadow_weigher
from shadow_service.analysis import analyzer as analyzer_mod
from shadow_service.workloads import profiles
from tests import nova_support
from tests import service_support

CONF = nova.conf.CONF
pytestmark = pytest.mark.rabbit

HOSTS = ('node-01', 'node-02', 'node-03')
PROFILE = 'web'


@pytest.fixture
def api_database():
    with nova_support.api_database():
        yield


@pytest.fixture
def running(rabbit_url):
    running = service_support.RunningService(rabbit_url).start()
    try:
        running.wait_until_serving()
        _seed(running)
        yield running
    finally:
        running.stop()


@pytest.fixture
def cached(running, rabbit_url):
    flags = config_fixture.Config(CONF)
    flags.setUp()
    flags.config(transport_url=rabbit_url, topic=running.topic,
                 default_budget=30.0, deadline_margin=0.5,
                 prior_cache_ttl=60.0, group='shadow_weigher')
    yield flags
    flags.cleanUp()


def _seed(running):
    """One earlier evaluation of the workload on every host, so that
    history alone answers; the hosts' levels differ by metric, so a
    host's score depends on which hosts it is ranked with."""
    request = request_lib.build_request(
        {'name': 'm1.medium', 'vcpus': 2, 'ram_mb': 4096, 'disk_gb': 20},
        PROFILE)
    profile = profiles.resolve_profile(request, ())
    metrics = sorted(analyzer_mod.Analyzer.from_conf(running.conf).weights(
        profile.sensitivity))
    service_support.seed_evaluation(
        running.history, str(uuid.uuid4()), request, profile.name, metrics,
        HOSTS, running.parts.driver.now() - 600.0,
        lambda index, metric_index, step:
            100.0 + (index * 37 + metric_index * 11) % 60 + step % 3)


def _ask(shadow, states):
    weighed = weights.HostWeightHandler().get_weighed_objects(
        [shadow], states,
        nova_support.request_spec({'shadow_profile': PROFILE}))
    return [w.obj.host for w in weighed]


def _scores_now(running, states):
    """The service's scores of ``states`` as one list, from history."""
    spec = nova_support.request_spec({'shadow_profile': PROFILE})
    reply = running.client().rank_host_columns(
        {}, shadow_weigher.build_request(spec, PROFILE),
        shadow_weigher.describe_host_columns(states), 30.0, timeout=30,
        history_only=True, record=False)
    return dict(zip([s.host for s in states], reply['scores']))


def _kept_scores(shadow):
    [answer] = shadow._prior_cache._answers.values()
    return {host: entry['score']
            for host, (_, entry) in answer['hosts'].items()}


def test_a_host_that_took_a_vm_is_scored_against_every_candidate(
        running, cached, api_database):
    shadow = shadow_weigher.ShadowWeigher()
    states = [nova_support.host_state(h) for h in HOSTS]
    _ask(shadow, states)
    assert _kept_scores(shadow) == pytest.approx(
        _scores_now(running, states))
    # The best host takes the VM: its facts change; the next request is
    # answered from the cache (the host neutral) and the service is asked
    # about it again in the background.
    best = max(HOSTS, key=_kept_scores(shadow).get)
    taken = states[HOSTS.index(best)]
    taken.num_instances += 1
    taken.vcpus_used += 2
    _ask(shadow, states)
    cache = shadow._prior_cache
    [key] = list(cache._answers)
    columns = shadow_weigher.describe_host_columns(states)
    deadline = time.monotonic() + 20
    while (cache.lookup(key, columns).changed
           and time.monotonic() < deadline):
        time.sleep(0.05)
    assert cache.lookup(key, columns).changed == []
    # What the cache now holds is what the service says of these hosts as
    # one list, and the next request is weighed by it.
    expected = _scores_now(running, states)
    assert _kept_scores(shadow) == pytest.approx(expected)
    assert _ask(shadow, states)[0] == max(expected, key=expected.get)
