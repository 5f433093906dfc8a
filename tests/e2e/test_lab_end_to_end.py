"""End to end on this machine: nothing mocked between the tenant's boot
and the processes that measure the hosts.

The lab's Nova (API, conductor, scheduler with Nova's default weighers and
the ShadowWeigher, Placement, three lab computes) in one process; a
``shadow-service`` process with the ``openstack`` driver reaching that
Nova over HTTP with openstacksdk, its collector on 127.0.0.1; RPC between
the weigher and the service over the real RabbitMQ; shadows that run
loadgen from their user-data as confined processes of lab hosts with
different CPU shares and noisy tenants, posting their samples to the
collector (the console fallback is off, so every sample stored came
through it).

1. ``nova-shadow lab`` (the command, in its own process) boots a VM with
   ``shadow_profile`` and says where it went and why: the
   quiet host with the largest share is ranked first, the VM lands there,
   no shadow, instance process or cgroup remains, and the lab's cgroups
   are gone after it stops.
2. ``shadow-service`` SIGKILLed while the scheduler waits for its
   ranking: the boot still succeeds (neutral weights), and a restart of
   the service deletes the shadows the killed one left; nothing leaks.

Skipped, saying why, only where the lab cannot work (root, cgroup v1);
a missing bubblewrap or broker fails under ``NOVA_SHADOW_REQUIRE_SERVICES``.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests import lab_support

pytestmark = [pytest.mark.nova, pytest.mark.rabbit, pytest.mark.slow]

#: Three hosts reporting the same resources to Placement: the quiet one
#: with the largest share, one as large but shared with two busy CPU
#: tenants, and a small one with a bursty tenant. Each tenant has a cgroup
#: of its own beside the shadow's, with the same cpu.shares, so two of
#: them leave the shadow a third of the noisy host's quota: one left it
#: half, and on a loaded machine, where the quiet host's shadow gets less
#: than its quota too, the two hosts then measured alike.
LAB = {
    'defaults': {
        'resources': {'vcpus': 4, 'memory_mb': 8192, 'disk_gb': 100},
        'share': {'memory_mb': 2048, 'pids_max': 512},
    },
    'hosts': [
        {'name': 'e2e-large', 'share': {'cpu': 0.5}},
        {'name': 'e2e-noisy', 'share': {'cpu': 0.5},
         'tenants': [{'kind': 'cpu', 'name': 'burner-a', 'intensity': 0.9,
                      'workers': 2},
                     {'kind': 'cpu', 'name': 'burner-b', 'intensity': 0.9,
                      'workers': 2}]},
        {'name': 'e2e-small', 'share': {'cpu': 0.15},
         'tenants': [{'kind': 'bursty', 'intensity': 0.6, 'every_s': 2,
                      'length_s': 1}]},
    ],
}
QUIET_LARGE = 'e2e-large'
PROFILE = 'batch-cpu'
FLAVOR = 'm1.small'


def _measured(ranking):
    return [h['host'] for h in ranking['hosts']
            if not (h.get('reasons') or [''])[0].startswith('not measured')]


def test_nova_shadow_lab_places_the_vm_on_the_quiet_large_host(
        tmp_path, rabbit_url):
    lab_support.require_lab()
    config = tmp_path / 'lab.yaml'
    config.write_text(yaml.safe_dump(LAB, sort_keys=False))
    summary_path = tmp_path / 'summary.json'
    env = dict(os.environ, PYTHONPATH=lab_support.REPO,
               NOVA_SHADOW_RABBIT_URL=rabbit_url)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, '-m', 'shadow_service.cmd.cli', 'lab',
         '--config', str(config), '--profile', PROFILE, '--flavor', FLAVOR,
         # A margin for a loaded machine, where deleting the shadows
         # before the answer takes the lab long.
         '--budget', '40', '--deadline-margin', '60',
         '--directory', str(tmp_path / 'stack'),
         '--summary', str(summary_path)],
        cwd=lab_support.REPO, env=env, capture_output=True, text=True,
        timeout=600)
    took = time.monotonic() - started
    print(done.stdout)
    log = tmp_path / 'stack' / 'shadow-service.log'
    assert done.returncode == 0, '%s\n%s\nservice log:\n%s' % (
        done.stdout[-3000:], done.stderr[-3000:],
        log.read_text()[-3000:] if log.exists() else '')
    summary = json.loads(summary_path.read_text())
    print('nova-shadow lab took %.1f s (lab up in %.1f s, boot %.1f s)'
          % (took, summary['startup_s'], summary['boot']['seconds']))

    # The boot: the scheduler asked the service, which ran real shadows
    # whose samples came through the collector (console fallback off).
    boot = summary['boot']
    record = boot['evaluation']
    assert record is not None, 'the scheduler asked for no evaluation'
    assert record['source'] == 'shadows'
    assert record['shadow_host_seconds'] > 0
    assert record['hosts'][0]['host'] == QUIET_LARGE, record['hosts']
    assert {QUIET_LARGE, 'e2e-noisy'} <= set(_measured(record))
    assert boot['samples'][QUIET_LARGE]['samples'] > 0
    assert boot['samples']['e2e-noisy']['samples'] > 0
    assert (boot['samples'][QUIET_LARGE]['mean_cpu_ops_per_s']
            > boot['samples']['e2e-noisy']['mean_cpu_ops_per_s'])
    # ... and Nova put the VM where the ranking said.
    assert boot['host'] == QUIET_LARGE
    assert 'ACTIVE on %s' % QUIET_LARGE in done.stdout

    # No shadow while the VM runs; nothing once it is deleted; no lab
    # cgroup once the command has stopped.
    assert not any(summary['leftovers_with_vm'].values()), \
        summary['leftovers_with_vm']
    assert not any(summary['leftovers_after_delete'].values()), \
        summary['leftovers_after_delete']
    assert summary['lab_cgroups_after_stop'] == []
    assert summary['service_exit_code'] == 0


@pytest.fixture
def stack(tmp_path_factory, rabbit_url):
    lab_support.require_lab()
    from nova_shadow_lab import stack as stack_lib

    # Nova's database fixtures point tempfile at a directory they remove
    # at clean-up; pytest's base temp dir must exist before that.
    tmp_path_factory.getbasetemp()
    running = stack_lib.LabStack(
        LAB, str(tmp_path_factory.mktemp('stack')),
        transport_url=rabbit_url, budget=40.0, min_run_time=10.0)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def test_a_sigkilled_service_fails_no_boot_and_leaks_nothing(stack):
    created = time.monotonic()
    # A budget that outlasts the time shadows take to start on a loaded
    # machine, so that the kill lands while the scheduler waits.
    server_id, _client = stack.create_server(
        'survivor', FLAVOR, {'shadow_profile': PROFILE,
                             'shadow_budget': '30'}, client='sdk')
    # Mid-evaluation: shadows booted and running their workload.
    lab_support.wait_for(
        lambda: len(stack.leftovers(keep={server_id})['processes']) > 0,
        timeout=60, interval=0.2, what='shadows running')
    shadows = {s['id'] for s in stack.shadows()}
    assert shadows
    stack.service.stop(signal.SIGKILL)
    killed = time.monotonic() - created

    # The scheduler waits out its budget, then Nova's weighers decide.
    server = stack.wait_active(server_id, timeout=180)
    assert server['status'] == 'ACTIVE'
    # The killed evaluation left only the record of its start: it never
    # finished (a restarted service reports it ``interrupted``).
    record = stack.evaluation_of(server_id)
    assert record is None or record.get('status') == 'running', record
    left = set(stack.leftovers(keep={server_id})['shadows'])
    print('service killed %.1f s after the POST with %d shadows running; '
          'VM ACTIVE on %s %.1f s after the POST; %d shadows left behind'
          % (killed, len(shadows), server['OS-EXT-SRV-ATTR:host'],
             time.monotonic() - created, len(left)))

    # A restart with the same identity deletes what the killed one left.
    stack.start_service()
    lab_support.wait_for(
        lambda: not any(stack.leftovers(keep={server_id}).values()),
        timeout=90, interval=0.5, what='left-over shadows deleted')
    for shadow_id in shadows:
        assert stack.cloud.placement.get(
            '/allocations/%s' % shadow_id).body['allocations'] == {}
    stack.delete_servers()
    assert not any(stack.leftovers().values()), stack.leftovers()
    # Deleting a server that is already gone (a benchmark's clean-up
    # after a failed boot) is not an error.
    stack.delete_server(server_id)
