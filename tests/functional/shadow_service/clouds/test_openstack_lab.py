"""Real shadows: the openstack driver on the lab's Nova, whose instances
run their user-data as confined processes with the CPU share of their
host.  loadgen runs inside each shadow from the user-data the driver
rendered and posts its samples to the collector with its token; the
evaluation ranks the host with the larger share first.
"""

import time

import pytest

lab_cloud = pytest.importorskip(
    'nova_shadow_lab.cloud', reason='needs the lab (nova_shadow_lab)')

from nova.tests import fixtures as nova_fixtures  # noqa: E402

from shadow_service import service  # noqa: E402
from shadow_service.clouds.openstack import driver as os_driver  # noqa
from shadow_service.history import sqlite  # noqa: E402
from tests import lab_support  # noqa: E402
from tests import openstack_support as support  # noqa: E402
from tests import service_support  # noqa: E402

pytestmark = [pytest.mark.nova]

LAB = {'hosts': [{'name': 'lab-slow', 'share': {'cpu': 0.1}},
                 {'name': 'lab-fast', 'share': {'cpu': 0.4}}]}


@pytest.fixture
def lab(tmp_path_factory):
    lab_support.require_lab()
    tmp_path_factory.getbasetemp()
    cloud = lab_cloud.LabCloud(LAB)
    cloud.setUp()
    try:
        yield cloud
    finally:
        cloud.cleanUp()


def test_real_shadows_rank_the_host_with_more_cpu_first(lab, tmp_path):
    store = sqlite.SQLiteStore(path=str(tmp_path / 'history.sqlite'))
    conf = service_support.make_conf(
        # A guest on a tenth of a CPU takes seconds to start python and
        # loadgen: let every shadow run a while before confidence may stop
        # the evaluation.
        shadow={'cloud_driver': 'openstack', 'sample_interval': 1.0,
                'min_run_time': 15.0, 'shadow_scale': 0.5},
        openstack={'image': lab.image_id,
                   'network': nova_fixtures.NeutronFixture.network_1['id'],
                   'gc_interval': 0, 'poll_interval': 0.2,
                   'sample_lag': 2.0, 'service_id': 'lab-test'},
        collector={'host': '127.0.0.1', 'port': 0})
    driver = os_driver.OpenStackDriver(conf, store,
                                       connection=lab.connect())
    parts = service.build(conf, history=store, driver=driver)
    try:
        started = time.monotonic()
        ranking = parts.manager.evaluate(
            {'flavor': {'vcpus': 1, 'ram_mb': 1024, 'disk_gb': 1},
             'profile': 'batch-cpu', 'image_id': lab.image_id},
            [{'host': 'lab-slow'}, {'host': 'lab-fast'}], 60.0)
        took = time.monotonic() - started
        counters = driver.collector.counters()
        samples = store.query_points(
            'shadow_sample', {'evaluation': ranking['evaluation_id']})
    finally:
        parts.close()
        store.close()
    speeds = {}
    for point in samples:
        if point.tags['metric'] == 'cpu_ops_per_s':
            speeds.setdefault(point.tags['host'], []).append(
                point.fields['value'])
    mean = {h: sum(v) / len(v) for h, v in speeds.items()}
    first = {}
    for point in samples:
        host = point.tags['host']
        first[host] = min(first.get(host, point.time), point.time)
    print('lab evaluation: %.1f s, collector %s, first samples %s, '
          'mean cpu_ops_per_s %s, ranking %s' % (
              took, counters,
              {h: round(t - min(first.values()), 1)
               for h, t in first.items()},
              {h: round(v) for h, v in mean.items()},
              [(h['host'], h['score'], h['confidence'])
               for h in ranking['hosts']]))
    assert sorted(support.measured_hosts(ranking)) == ['lab-fast',
                                                       'lab-slow']
    assert ranking['hosts'][0]['host'] == 'lab-fast'
    assert counters['samples']['accepted'] > 0
    assert counters['requests'].get('200 ok', 0) > 0
    assert lab.api.get_servers(
        detail=True, search_opts={'tags': os_driver.SHADOW_TAG}) == []
    assert mean['lab-fast'] > 1.5 * mean['lab-slow']
