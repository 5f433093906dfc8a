"""A coordination backend that is down or hangs: every call is bounded.

Redis that refuses connections (stopped, or a wrong port) and Redis that
accepts and never answers (hung, or a network that drops the replies)
both mean "not leading" within about ``coordination_timeout`` (by
default a quarter of ``leader_timeout``, at most 5 s); the loop goes on
without acting, and leads again once the backend answers.  tooz and
redis-py used to retry such a call for about a minute (refused) or ten
socket timeouts of 30 s (no answer).
"""

import threading
import time
import uuid

import numpy as np
import pytest

from shadow_service.watcher import leader as leader_mod
from shadow_service.watcher import records
from tests import watcher_support as support
from tests.fixtures import influxdb
from tests.fixtures import redis_server

pytestmark = pytest.mark.redis

DAY = 288
#: leader_timeout of these tests: calls are bounded by a quarter, 1 s.
LEADER_TIMEOUT = 4.0
CALL_BOUND = LEADER_TIMEOUT / leader_mod.RENEWAL_CALLS
#: What a call may take beyond its bound (connecting, the interpreter).
SLACK = 1.0


def _group():
    return 'test-%s' % uuid.uuid4().hex[:12]


def _closed_port_url():
    """A loopback port nothing listens on: connections are refused."""
    return 'redis://127.0.0.1:%d' % influxdb.free_port()


def _timed(call, limit):
    """``(result, seconds)`` of ``call()``, failing once it has taken
    ``limit`` seconds (it goes on, on a thread of its own, until it
    returns)."""
    outcome = {}

    def run():
        try:
            outcome['result'] = call()
        except BaseException as exc:
            outcome['error'] = exc
    started = time.monotonic()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit)
    elapsed = time.monotonic() - started
    assert not worker.is_alive(), (
        '%s still blocked after %.1f s' % (call.__name__, limit))
    if 'error' in outcome:
        raise outcome['error']
    return outcome['result'], elapsed


def _bounded(call, calls=1):
    """``call()``'s result, asserting it took at most ``calls`` calls'
    bound."""
    return _timed(call, calls * CALL_BOUND + SLACK)[0]


@pytest.mark.parametrize('backend', ['refusing', 'silent'])
def test_a_call_to_a_backend_that_is_down_returns_within_the_bound(
        backend, silent_server):
    url = silent_server.url if backend == 'silent' else _closed_port_url()
    lead = leader_mod.Leadership(url, _group(), timeout=LEADER_TIMEOUT)
    assert lead.call_timeout == CALL_BOUND
    # Connecting is a call, the first renewal stops at the first that
    # fails.
    assert _bounded(lead.is_leader, calls=2) is False
    assert not lead.leading and not lead.still_leading()
    with pytest.raises(leader_mod.LeaderError):
        _bounded(lead.start, calls=2)


def test_the_password_of_the_backend_url_is_not_printed(caplog):
    # The start-up error is printed by shadow-watcher and the failure
    # logged: neither shows the password a Redis URL may hold.
    url = _closed_port_url().replace('redis://', 'redis://:s3cret-pw@')
    lead = leader_mod.Leadership(url, _group(), timeout=LEADER_TIMEOUT)
    with pytest.raises(leader_mod.LeaderError) as raised:
        _bounded(lead.start, calls=2)
    assert 's3cret-pw' not in str(raised.value)
    assert ':***@127.0.0.1' in str(raised.value)
    with caplog.at_level('WARNING'):
        assert _bounded(lead.is_leader, calls=2) is False
    assert 'Leader election failed' in caplog.text
    assert 's3cret-pw' not in caplog.text


def test_the_sentinel_password_of_the_backend_url_is_not_printed(caplog):
    # Sentinel's own password is in the URL's query, not its user info.
    url = (_closed_port_url() + '?sentinel=lab-master&'
           'sentinel_password=s3nt%40pw')
    lead = leader_mod.Leadership(url, _group(), timeout=LEADER_TIMEOUT)
    with pytest.raises(leader_mod.LeaderError) as raised:
        _bounded(lead.start, calls=2)
    assert 'sentinel_password=***' in str(raised.value)
    with caplog.at_level('WARNING'):
        assert _bounded(lead.is_leader, calls=2) is False
    assert 'Leader election failed' in caplog.text
    for text in (str(raised.value), caplog.text):
        assert 's3nt' not in text


def test_a_leader_whose_backend_hangs_stops_leading_within_the_bound(
        own_redis):
    # Started and leading, then its Redis stops answering (SIGSTOP): no
    # timeout in the URL, the watcher's own bound applies.
    lead = leader_mod.Leadership(own_redis.url, _group(),
                                 timeout=LEADER_TIMEOUT)
    try:
        assert lead.is_leader()
        own_redis.pause()
        _bounded(lead.heartbeat)
        assert not lead.leading
        assert _bounded(lead.still_leading) is False
        assert _bounded(lead.is_leader) is False
    finally:
        own_redis.resume()
        lead.stop()


def test_the_lock_outlives_the_calls_of_a_renewal():
    with pytest.raises(ValueError, match=r'leader_timeout \(10 s\) must be '
                       r'at least 4 times .* \(5 s'):
        leader_mod.Leadership(_closed_port_url(), _group(), timeout=10,
                              call_timeout=5)
    # A socket timeout in the URL wins over the watcher's own, and
    # bounds the calls as well.
    with pytest.raises(ValueError, match=r'\(20 s'):
        leader_mod.Leadership(_closed_port_url() + '?socket_timeout=20',
                              _group(), timeout=30)
    lead = leader_mod.Leadership(
        _closed_port_url() + '?socket_timeout=2&db=3', _group(), timeout=30)
    assert lead.call_timeout == 5.0
    assert 'socket_timeout=2&' in lead.url and 'db=3' in lead.url
    assert 'socket_connect_timeout=5&' not in lead.url
    assert lead.url.endswith('socket_connect_timeout=5')


def test_another_backend_is_not_held_to_the_redis_bound(tmp_path):
    # coordination_timeout bounds Redis calls only: a file (or etcd)
    # backend with a short leader_timeout still starts, and leads.
    lead = leader_mod.Leadership('file://%s' % tmp_path, _group(),
                                 timeout=10, call_timeout=5)
    try:
        assert 'socket_timeout' not in lead.url
        assert lead.is_leader()
    finally:
        lead.stop()


@pytest.mark.parametrize('url, missing', [
    # etcd3gw and kazoo are not installed with nova-shadow.
    ('etcd3+http://127.0.0.1:2379', 'etcd3gw'),
    ('zookeeper://:pw-z9@127.0.0.1:2181', 'kazoo'),
    ('nosuch://127.0.0.1:1', 'nosuch'),
])
def test_a_backend_tooz_cannot_load_is_one_clear_error(url, missing):
    with pytest.raises(leader_mod.LeaderError) as raised:
        leader_mod.Leadership(url, _group(), timeout=30)
    text = str(raised.value)
    assert 'tooz cannot use it here' in text and missing in text
    assert 'pw-z9' not in text


@pytest.mark.parametrize('backend', ['refusing', 'silent'])
def test_a_call_through_a_sentinel_that_is_down_returns_within_the_bound(
        backend, silent_server):
    # tooz asks the sentinels for the master: redis-py retried each of
    # them with back-off, and tooz retried the whole 15 times (224 s to
    # start with a sentinel that does not answer).
    url = silent_server.url if backend == 'silent' else _closed_port_url()
    lead = leader_mod.Leadership(url + '?sentinel=lab-master', _group(),
                                 timeout=LEADER_TIMEOUT)
    # One call asks the sentinel, then the master: each has half.
    assert lead.call_timeout == CALL_BOUND
    assert 'socket_timeout=%g' % (CALL_BOUND / 2) in lead.url
    assert _bounded(lead.is_leader, calls=2) is False
    with pytest.raises(leader_mod.LeaderError, match='lab-master'):
        _bounded(lead.start, calls=2)


def test_a_leader_through_sentinel_stops_leading_when_its_master_hangs(
        own_redis, tmp_path):
    # A real Sentinel names the master: the watcher leads through it,
    # and a master that stops answering means not leading within the
    # bound, as without Sentinel.
    sentinel = redis_server.RedisSentinel(own_redis, 'lab-master',
                                          str(tmp_path)).start()
    lead = leader_mod.Leadership(
        sentinel.url + '&sentinel_fallback=127.0.0.1:%d'
        % influxdb.free_port(), _group(), timeout=LEADER_TIMEOUT)
    try:
        # Two sentinels and the master share the bound.
        assert 'socket_timeout=%g' % (CALL_BOUND / 3) in lead.url
        deadline = time.monotonic() + 10
        while not lead.is_leader():     # the sentinel finds its master
            assert time.monotonic() < deadline, 'never led via Sentinel'
            time.sleep(0.2)
        own_redis.pause()
        _bounded(lead.heartbeat)
        assert not lead.leading
        assert _bounded(lead.is_leader) is False
    finally:
        own_redis.resume()
        lead.stop()
        sentinel.stop()


def _busy_vm_watcher(tmp_path, url):
    """A watcher whose VM is busy enough to grow at its next run."""
    conf = support.make_conf(tmp_path, watcher={
        'policy': 'reactive', 'dry_run': False, 'coordination_url': url,
        'coordination_group': _group(), 'leader_timeout': LEADER_TIMEOUT})
    driver, history = support.twin(conf)
    support.place(driver, 'vm-1',
                  [1.0] * (DAY + 1) + list(np.full(200, 1.9)))
    assembled = support.build(conf, driver, history)
    driver.fast_forward(DAY * support.STEP_S)
    return assembled, driver, history


@pytest.mark.parametrize('outage', ['stopped', 'hung'])
def test_the_loop_goes_on_without_acting_and_leads_again_after_an_outage(
        tmp_path, own_redis, outage):
    assembled, driver, history = _busy_vm_watcher(tmp_path, own_redis.url)
    watcher = assembled.watcher
    try:
        if outage == 'stopped':
            own_redis.stop()            # its port refuses connections
        else:
            own_redis.pause()
        # Several runs, each returning within the bound, none acting.
        for _ in range(3):
            run = lambda: watcher.run_once(driver.now())  # noqa: E731
            assert _bounded(run, calls=2) == []
            assert not watcher.leader.leading
            driver.fast_forward(support.STEP_S)
        assert records.read(history, 0, driver.now() + 1) == []
        assert driver.get_instance('vm-1').flavor['vcpus'] == 2
        if outage == 'stopped':
            own_redis.start()           # same port, empty
        else:
            own_redis.resume()
        steps = watcher.run_once(driver.now())
        assert watcher.leader.leading and watcher.leader.term == 1
        assert [(s.decision.action, s.outcome) for s in steps
                if s.outcome] == [('resize_up', 'started')]
    finally:
        if outage == 'hung':
            own_redis.resume()
        assembled.close()
