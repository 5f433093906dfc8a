"""A VM's root disk along a ladder whose disks differ.

Nova refuses to shrink the root disk of a VM booted from an image (its
API: "Flavor's disk is smaller than the minimum size specified in image
metadata"; libvirt: "Unable to resize disk down"); a VM booted from a
volume has no such disk.  The watcher shrinks an image-booted VM only to
rungs whose disk holds its own, and the twin refuses as Nova does.
"""

import pytest

from shadow_service.clouds import base as cloud_base
from tests import watcher_support as support

#: Rungs' disks 20, 20, 40, 40 GB.
LADDER = ['small:2:2048:20', 'medium:4:4096:20', 'large:8:8192:40',
          'xlarge:16:16384:40']


def _shrunk(tmp_path, volume_backed):
    # 3 busy vCPUs on the top rung: the forecast policy shrinks it to
    # "medium" (4 vCPUs) once the hold window has passed.
    conf = support.make_conf(tmp_path, watcher={
        'policy': 'forecast', 'dry_run': False, 'hold_window': 1800.0,
        'flavor_ladder': LADDER})
    driver, history = support.twin(conf)
    support.place(driver, 'vm-1', [3.0] * 400, flavor='xlarge',
                  disk_gb=40, volume_backed=volume_backed)
    assembled = support.build(conf, driver, history)
    try:
        driver.fast_forward(4 * 3600.0)
        steps = support.run(assembled, driver, 24)
    finally:
        assembled.close()
    started = [s for s in steps if s.outcome == 'started']
    return started, driver.get_instance('vm-1')


def test_a_vm_booted_from_an_image_shrinks_to_the_rung_its_disk_fits(
        tmp_path):
    started, instance = _shrunk(tmp_path, volume_backed=False)
    assert [s.decision.action for s in started] == ['resize_down']
    assert started[0].record['target_flavor']['name'] == 'large'
    assert started[0].decision.reason.endswith(
        'large, not medium: the root disk (40 GB) cannot shrink')
    assert (instance.flavor['vcpus'], instance.volume_backed) == (8, False)


def test_a_vm_booted_from_a_volume_shrinks_to_the_rung_its_demand_needs(
        tmp_path):
    started, instance = _shrunk(tmp_path, volume_backed=True)
    assert [s.decision.action for s in started] == ['resize_down']
    assert started[0].record['target_flavor']['name'] == 'medium'
    assert (instance.flavor['vcpus'], instance.volume_backed) == (4, True)


def test_the_twin_refuses_to_shrink_an_image_booted_disk(tmp_path):
    conf = support.make_conf(tmp_path)
    driver, _history = support.twin(conf)
    support.place(driver, 'image', [1.0] * 10, flavor='large', disk_gb=40)
    support.place(driver, 'volume', [1.0] * 10, flavor='large', disk_gb=40,
                  volume_backed=True)
    small = {'name': 'small', 'vcpus': 2, 'ram_mb': 2048, 'disk_gb': 20}
    with pytest.raises(cloud_base.CloudError,
                       match=r"Flavor.s disk is smaller .* \(20 GB < 40 GB\)"):
        driver.resize('image', small)
    driver.resize('volume', small)
    # The same disk, or a larger one, is no shrink.
    driver.resize('image', dict(small, disk_gb=40))


def test_the_sibling_of_a_vm_booted_from_a_volume_boots_from_one(tmp_path):
    conf = support.make_conf(tmp_path)
    driver, _history = support.twin(conf)
    support.place(driver, 'image', [1.0] * 10, flavor='large', disk_gb=40)
    support.place(driver, 'volume', [1.0] * 10, flavor='large', disk_gb=40,
                  volume_backed=True)
    support.place(driver, 'empty', [1.0] * 10, flavor='large', disk_gb=40,
                  volume_backed=True, volume_made_from='')
    assert driver.boot_sibling('image').volume_backed is False
    assert driver.boot_sibling('volume').volume_backed is True
    empty = driver.get_instance('empty')
    assert driver.why_no_sibling(empty) == (
        'its root volume empty-root was created empty, not from an image: '
        'a sibling has no image to boot from')
    with pytest.raises(cloud_base.CloudError, match='created empty'):
        driver.boot_sibling('empty')
