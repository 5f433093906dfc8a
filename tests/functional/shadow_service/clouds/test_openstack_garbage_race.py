"""The openstack driver's garbage collector never deletes a shadow an
evaluation is booting, whatever the boot does while the collector looks:
it runs beside the evaluations (every ``gc_interval``), and its server
list can take seconds on a large cloud.  The compute API is the fake of
:mod:`tests.compute_api_support`, which can boot while a list is under
way."""

import threading
import uuid

import pytest

from loadgen import profiles
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
