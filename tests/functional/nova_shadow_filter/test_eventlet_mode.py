"""The scheduler path with Nova in eventlet mode.

Nova 34 still runs a service on eventlet where ``[DEFAULT]
concurrency_backend = eventlet`` (or ``OS_NOVA_DISABLE_EVENTLET_PATCHING``
false) says so, and the weigher then runs in a green nova-scheduler: its
deadline's helper threads, its RPC client and the service in the same
process are all patched.  The rest of the suite runs Nova in threading
mode, and a process cannot change mode once Nova is imported, so two of
the scheduler-path tests run again here in a process of their own with
eventlet: a boot with shadows and moves from history, and boots within
the deadline with the service down.
"""

import os
import subprocess
import sys

import pytest

pytest.importorskip('nova')

pytestmark = [pytest.mark.nova, pytest.mark.slow]

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
TESTS = (
    'test_scheduler_path.py::MoveOperationsTest::'
    'test_a_boot_runs_shadows_and_moves_ask_history_only',
    'test_weigher_nova.py::ShadowServiceDownTest::'
    'test_boots_succeed_within_the_deadline_when_service_is_down',
)


def test_the_scheduler_path_holds_with_nova_on_eventlet():
    env = dict(os.environ, OS_NOVA_DISABLE_EVENTLET_PATCHING='false')
    done = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
         '-p', 'no:randomly'] + [os.path.join(HERE, t) for t in TESTS],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=540)
    summary = done.stdout.strip().splitlines()[-1:] or ['(no output)']
    assert done.returncode == 0, '\n'.join(
        done.stdout.splitlines()[-60:] + done.stderr.splitlines()[-20:])
    assert '%d passed' % len(TESTS) in summary[0], summary
    # The child really ran on eventlet (its own warning says it loaded).
    assert 'eventlet' in (done.stdout + done.stderr).lower()
