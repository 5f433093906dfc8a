"""``shadow-service --help`` and ``shadow-watcher --help`` say what the
daemon does, under the daemon's own name."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))))


@pytest.mark.parametrize('command, module, does', [
    ('shadow-service', 'service', 'shadow copies of the requested VM'),
    ('shadow-watcher', 'watcher', 'resize it, live-migrate it or scale'),
])
def test_help_says_what_the_daemon_does(command, module, does):
    env = dict(os.environ)
    env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
    done = subprocess.run(
        [sys.executable, '-c', 'import sys; from shadow_service.cmd import '
         '%s; sys.exit(%s.main())' % (module, module), '--help'],
        capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('usage: %s ' % command), done.stdout
    usage, description = done.stdout.split('\n\n')[:2]
    assert '[--config-file PATH]' in usage
    assert does in ' '.join(description.split())
