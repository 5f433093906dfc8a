"""``nova-shadow evaluate --cloud NAME`` against Nova's harness: the
cloud comes from clouds.yaml, a progress bar runs while the shadows do,
then the ranking is printed."""

import io
import json
import os

import fixtures
import pytest

from shadow_service.cmd import cli
from tests import openstack_support as support

pytestmark = [pytest.mark.nova]

CONFIG = """
[openstack]
image = %(image)s
network = %(network)s
gc_interval = 0
poll_interval = 0.1
sample_lag = 0.5
cleanup_reserve = 2.0
service_id = cli-test
[collector]
host = 127.0.0.1
port = 0
[shadow]
sample_interval = 0.5
min_run_time = 1.0
"""


class EvaluateOnACloudTest(support.OpenStackHarnessTestBase):

    def test_evaluate_cloud_prints_progress_then_the_ranking(self):
        directory = self.useFixture(fixtures.TempDir()).path
        self.useFixture(fixtures.EnvironmentVariable(
            'OS_CLIENT_CONFIG_FILE', self.clouds_yaml(directory)))
        config = os.path.join(directory, 'nova-shadow.conf')
        with open(config, 'w') as f:
            f.write(CONFIG % {'image': support.IMAGE_ID,
                              'network': support.NETWORK_ID})
        guest = support.FakeGuest(self.admin_api)
        guest.start()
        self.addCleanup(guest.stop)
        out, err = io.StringIO(), io.StringIO()
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', out))
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', err))

        rc = cli.main(['--config-file', config, 'evaluate', '--cloud',
                       'harness', '--profile', 'batch-cpu', '--vcpus', '1',
                       '--ram-mb', '2048', '--disk-gb', '4', '--budget',
                       '10', '--history', 'memory', '--progress', 'always',
                       '--format', 'json'])

        guest.stop()
        self.assertEqual(0, rc, err.getvalue())
        ranking = json.loads(out.getvalue())
        # Every available compute of the cloud was a candidate.
        self.assertEqual(set(support.HOSTS),
                         {s['host'] for s in guest.seen.values()})
        self.assertEqual('host2', ranking['hosts'][0]['host'])
        frames = err.getvalue().split('\r')
        self.assertIn('running', ''.join(frames))
        self.assertIn('100%', frames[-1])
        self.assertEqual([], self.shadow_servers())
