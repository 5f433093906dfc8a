"""The openstack driver's garbage collector never deletes a shadow an
evaluation is booting, whatever the boot does while the collector looks:
it runs beside the evaluations (every ``gc_interval``), and its server
list can take seconds on a large cloud.  Nor does it delete again a
shadow whose deletion is under way (Nova lists it until a compute host
has deleted it), unless that deletion never completes.  The compute API
is the fake of :mod:`tests.compute_api_support`, which can boot while a
list is under way and keep deleted servers listed."""

import logging
import threading
import time
import uuid

import pytest

from loadgen import profiles
from shadow_service.clouds import base
from shadow_service.clouds.openstack import driver as os_driver
from tests import compute_api_support

REQUEST = {'flavor': {'vcpus': 1, 'ram_mb': 1024, 'disk_gb': 1},
           'profile': 'web',
           'image_id': '155d900f-4e14-4e4c-a73d-069cbf4541e6'}
EVALUATION = '0c2f6a4e-5d0b-4c1e-8f4a-7b9d3e2a1c55'
PROFILE = profiles.load_profile('web')


@pytest.fixture
def nova():
    fake = compute_api_support.FakeNova()
    yield fake
    fake.close()


def test_a_shadow_booted_while_the_collector_lists_is_not_garbage(nova):
    driver = compute_api_support.make_driver(nova, service_id='svc-a')
    # An earlier run of the same service left a shadow behind: garbage.
    earlier = compute_api_support.make_driver(nova, service_id='svc-a')
    (left,) = earlier.boot_shadows(str(uuid.uuid4()), REQUEST, ['h1'],
                                   PROFILE)
    booted = []
    # An evaluation's boot completes while the collector's list call is
    # under way (the list then holds its server).
    nova.before['GET /v2.1/servers/detail'] = lambda: booted.extend(
        driver.boot_shadows(EVALUATION, REQUEST, ['h2'], PROFILE))

    # Before: both were deleted, the evaluation's shadow under it.
    assert driver.collect_garbage() == 1
    assert len(booted) == 1
    assert set(nova.servers) == {booted[0].shadow_id}
    # It stays this service's running shadow until its evaluation
    # deletes it.
    assert driver.collect_garbage() == 0
    driver.delete_shadows(booted)
    assert nova.servers == {}
    assert left.shadow_id not in nova.servers


def test_a_collection_while_a_boot_records_its_shadow_spares_it(
        nova, monkeypatch):
    driver = compute_api_support.make_driver(nova)
    now = driver.now
    collected = []

    def now_and_collect():
        # A collection pass that runs just as the boot, its server made,
        # reads the clock to record the shadow.
        if (threading.current_thread().name.startswith('shadow-boot')
                and not collected):
            collected.append(driver.collect_garbage())
        return now()

    monkeypatch.setattr(driver, 'now', now_and_collect)
    shadows = driver.boot_shadows(EVALUATION, REQUEST, ['h1'], PROFILE)
    # Before: the shadow was neither booting nor tracked at that moment,
    # and the pass deleted it.
    assert collected == [0]
    assert set(nova.servers) == {s.shadow_id for s in shadows}
    assert len(shadows) == 1
    driver.delete_shadows(shadows)
    assert nova.servers == {}


def _deletes(nova, shadow_id):
    return nova.calls.count('DELETE /v2.1/servers/%s' % shadow_id)


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records
            if r.name == os_driver.__name__
            and r.levelno >= logging.WARNING]


def test_a_check_after_a_teardown_nova_has_not_finished_deletes_nothing(
        nova, caplog):
    nova.linger_deletes = True
    driver = compute_api_support.make_driver(nova, delete_timeout=1.0)
    (shadow,) = driver.boot_shadows(EVALUATION, REQUEST, ['h1'], PROFILE)
    # The evaluation's teardown: the compute host takes longer than
    # delete_timeout, and the driver stops waiting.
    with pytest.raises(base.CloudError, match='not gone'):
        driver.delete_shadows([shadow])
    assert nova.servers[shadow.shadow_id]['OS-EXT-STS:task_state'] == \
        'deleting'

    # The collector's next pass, just after.
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger=os_driver.__name__):
        # Before: it was deleted a second time, with a warning that a
        # left-over shadow was found.
        assert driver.collect_garbage() == 0
    assert _deletes(nova, shadow.shadow_id) == 1
    assert _warnings(caplog) == []
    assert any(shadow.shadow_id in r.getMessage() for r in caplog.records
               if r.levelno == logging.DEBUG)

    nova.finish_deletes()
    assert driver.collect_garbage() == 0
    assert nova.servers == {}
    assert _deletes(nova, shadow.shadow_id) == 1


def test_a_half_made_shadow_being_deleted_is_not_deleted_again(
        nova, caplog):
    nova.linger_deletes = True
    driver = compute_api_support.make_driver(nova)
    # The cloud makes the server but answers the create with an error:
    # the driver deletes it by its name, and Nova still lists it.
    nova.answers['POST /v2.1/servers'] = (500, {'computeFault': {
        'code': 500, 'message': 'Unexpected API Error.'}})
    assert driver.boot_shadows(EVALUATION, REQUEST, ['h1'], PROFILE) == []
    (half_made,) = nova.servers
    assert _deletes(nova, half_made) == 1

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=os_driver.__name__):
        # Before: deleted again, logged as a left-over.
        assert driver.collect_garbage() == 0
    assert _deletes(nova, half_made) == 1
    assert _warnings(caplog) == []


def test_a_deletion_that_failed_is_collected_after_twice_delete_timeout(
        nova, caplog):
    nova.linger_deletes = True
    driver = compute_api_support.make_driver(nova, delete_timeout=1.0)
    (shadow,) = driver.boot_shadows(EVALUATION, REQUEST, ['h1'], PROFILE)
    asked = time.monotonic()
    with pytest.raises(base.CloudError, match='not gone'):
        driver.delete_shadows([shadow])
    # The compute host failed to delete it: ERROR, no task any more.
    nova.servers[shadow.shadow_id].update(
        {'status': 'ERROR', 'OS-EXT-STS:task_state': None})
    assert driver.collect_garbage() == 0

    # Twice delete_timeout after the deletion was asked it is a left-over
    # (deleted at once this time).
    time.sleep(max(0.0, asked + 2.0 - time.monotonic()) + 0.1)
    nova.linger_deletes = False
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=os_driver.__name__):
        assert driver.collect_garbage() == 1
    assert _deletes(nova, shadow.shadow_id) == 2
    (warning,) = _warnings(caplog)
    assert shadow.shadow_id in warning
    assert 'ERROR' in warning
    assert nova.servers == {}


def test_a_deletion_an_earlier_run_left_under_way_is_given_time(
        nova, caplog):
    earlier = compute_api_support.make_driver(nova, service_id='svc-a')
    (shadow,) = earlier.boot_shadows(EVALUATION, REQUEST, ['h1'], PROFILE)
    # The earlier run was killed as Nova began deleting its shadow.
    nova.servers[shadow.shadow_id].update(
        {'status': 'DELETED', 'OS-EXT-STS:task_state': 'deleting'})
    nova.linger_deletes = True
    driver = compute_api_support.make_driver(nova, service_id='svc-a',
                                             delete_timeout=1.0)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=os_driver.__name__):
        # Before: deleted again at once.
        assert driver.collect_garbage() == 0
    first_seen = time.monotonic()
    assert _deletes(nova, shadow.shadow_id) == 0
    assert _warnings(caplog) == []

    # A deletion stuck that long is asked again.
    time.sleep(max(0.0, first_seen + 2.0 - time.monotonic()) + 0.1)
    nova.linger_deletes = False
    with caplog.at_level(logging.WARNING, logger=os_driver.__name__):
        assert driver.collect_garbage() == 1
    assert _deletes(nova, shadow.shadow_id) == 1
    (warning,) = _warnings(caplog)
    assert shadow.shadow_id in warning
    assert 'DELETED' in warning
    assert nova.servers == {}


def test_a_real_left_over_is_one_warning_saying_why(nova, caplog):
    earlier = compute_api_support.make_driver(nova, service_id='svc-a')
    (left,) = earlier.boot_shadows(EVALUATION, REQUEST, ['h1'], PROFILE)
    other = compute_api_support.make_driver(
        nova, service_id='svc-b', shadow={'max_budget': 1.0},
        expiry_margin=0.0)
    (expired,) = other.boot_shadows(str(uuid.uuid4()), REQUEST, ['h2'],
                                    PROFILE)
    driver = compute_api_support.make_driver(nova, service_id='svc-a')
    # The expiry is kept to the second in the server's metadata, and the
    # boot itself may take a while on a loaded machine: wait until the
    # driver sees it expired (garbage_shadows only reads).
    deadline = time.monotonic() + 30.0
    while len(driver.garbage_shadows()) < 2:
        assert time.monotonic() < deadline, 'the shadow never expired'
        time.sleep(0.2)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=os_driver.__name__):
        assert driver.collect_garbage() == 2
    (warning,) = _warnings(caplog)
    assert '%s (left behind by this service)' % left.shadow_id in warning
    assert ('%s (expired, booted by service svc-b)' % expired.shadow_id
            in warning)
    assert nova.servers == {}


def test_what_the_driver_remembers_of_its_deletions_is_bounded(
        nova, monkeypatch):
    monkeypatch.setattr(os_driver, 'MAX_REMEMBERED_DELETIONS', 2)
    nova.linger_deletes = True
    driver = compute_api_support.make_driver(nova, delete_timeout=1.0)
    shadows = driver.boot_shadows(EVALUATION, REQUEST, ['h1', 'h2', 'h3'],
                                  PROFILE)
    with pytest.raises(base.CloudError, match='not gone'):
        driver.delete_shadows(shadows)
    assert len(driver._deletions) == 2
    nova.finish_deletes()
    # Forgotten once Nova no longer lists them.
    assert driver.collect_garbage() == 0
    assert driver._deletions == {}
