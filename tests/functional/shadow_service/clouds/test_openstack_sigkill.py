"""A ``shadow-service`` killed with SIGKILL leaves its shadows behind;
the next start of a service with the same identity deletes them.

Both services are real ``shadow-service`` daemons (oslo.service, RPC over
the real RabbitMQ) in their own process groups, reaching the lab's Nova
(``nova_shadow_lab.cloud.LabCloud``: Nova's harness served over HTTP,
with ``clouds.yaml``) through openstacksdk.
"""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

lab_cloud = pytest.importorskip(
    'nova_shadow_lab.cloud', reason='needs the lab (nova_shadow_lab)')

from shadow_service import rpcapi  # noqa: E402
from shadow_service.clouds.openstack import driver as os_driver  # noqa
from tests import lab_support  # noqa: E402
from tests import service_support  # noqa: E402

pytestmark = [pytest.mark.nova, pytest.mark.rabbit]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))))
LAB = {'hosts': [{'name': 'gc-one', 'share': {'cpu': 0.1}},
                 {'name': 'gc-two', 'share': {'cpu': 0.1}}]}
CONFIG = """
[DEFAULT]
transport_url = %(rabbit)s
[shadow]
cloud_driver = openstack
topic = %(topic)s
[openstack]
cloud = %(cloud)s
image = %(image)s
service_id = sigkill-test
gc_interval = 0
poll_interval = 0.2
[history]
store = sqlite
sqlite_path = %(history)s
"""


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


class Daemon:
    """``shadow-service`` in its own process group."""

    def __init__(self, config, env, log):
        self.log = open(log, 'ab')
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'shadow_service.cmd.service',
             '--config-file', config], cwd=REPO, env=env,
            stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def kill(self, sig):
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=60)
        self.log.close()


def _wait_serving(api, daemon, timeout=90.0):
    deadline = time.monotonic() + timeout
    while True:
        assert daemon.process.poll() is None, 'shadow-service exited'
        try:
            api.get_evaluation({}, str(uuid.uuid4()), timeout=2)
        except Exception as e:
            if type(e).__name__.startswith('EvaluationNotFound'):
                return
            if time.monotonic() > deadline:
                raise
        else:
            return


def _shadows(lab):
    return lab.api.get_servers(detail=True,
                               search_opts={'tags': os_driver.SHADOW_TAG})


def test_the_next_start_deletes_what_a_killed_service_left(lab, rabbit_url,
                                                           tmp_path):
    topic = service_support.unique_topic()
    config = tmp_path / 'shadow-service.conf'
    config.write_text(CONFIG % {
        'rabbit': rabbit_url, 'topic': topic, 'cloud': lab.cloud_name,
        'image': lab.image_id, 'history': tmp_path / 'history.sqlite'})
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=lab.clouds_yaml,
               PYTHONPATH=REPO)
    conf = service_support.make_conf(shadow={'topic': topic})
    api = rpcapi.ShadowAPI(conf, topic=topic, transport_url=rabbit_url)
    log = tmp_path / 'shadow-service.log'

    first = Daemon(str(config), env, log)
    try:
        _wait_serving(api, first)
        api.start_evaluation(
            {}, {'flavor': {'vcpus': 1, 'ram_mb': 512, 'disk_gb': 1},
                 'profile': 'web'},
            [{'host': h['name']} for h in LAB['hosts']], 120.0, timeout=30)
        lab_support.wait_for(lambda: len(_shadows(lab)) == 2, timeout=60,
                             what='two shadows')
    finally:
        first.kill(signal.SIGKILL)
    left = {s['id']: s for s in _shadows(lab)}
    assert len(left) == 2
    assert {s['metadata']['nova_shadow_service'] for s in left.values()} \
        == {'sigkill-test'}

    second = Daemon(str(config), env, log)
    try:
        _wait_serving(api, second)
        lab_support.wait_for(lambda: not _shadows(lab), timeout=30,
                             what='the left-over shadows deleted')
        for server_id in left:
            assert lab.placement.get('/allocations/%s' % server_id).body[
                'allocations'] == {}
    finally:
        second.kill(signal.SIGTERM)
