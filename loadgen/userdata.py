"""Render cloud-init user-data that runs loadgen inside a shadow VM.

``render_user_data(profile, sink_url, tags)`` returns a ``#cloud-config``
document (written as JSON, which YAML parsers accept, so no quoting
surprises) that writes ``/opt/shadow-loadgen/loadgen.pyz`` (base64), the
profile as JSON (trace patterns carry their values inline) and starts
``python3 loadgen.pyz run`` in the background with the sink and tags,
logging to ``/var/log/shadow-loadgen.log``. Change ``INSTALL_DIR`` or
``LOG_PATH`` to move them.
"""

import base64
import json
import shlex

from loadgen import build
from loadgen import profiles

INSTALL_DIR = '/opt/shadow-loadgen'
LOG_PATH = '/var/log/shadow-loadgen.log'


def run_command(sink_url, tags, install_dir=INSTALL_DIR):
    """The shell command line that starts the run in the guest."""
    argv = ['python3', '%s/loadgen.pyz' % install_dir, 'run',
            '%s/profile.json' % install_dir, '--sink', sink_url]
    for key, value in sorted(tags.items()):
        argv += ['--tag', '%s=%s' % (key, value)]
    return ' '.join(shlex.quote(arg) for arg in argv)


def render_user_data(profile, sink_url, tags, pyz_bytes=None):
    """Return cloud-init user-data (str) that runs ``profile``.

    Parameters
    ----------
    profile : str or dict or loadgen.profiles.Profile
    sink_url : str
        where samples go (see ``loadgen.sinks.make_sink``).
    tags : dict
        ``evaluation``, ``shadow``, ``host``... added to every sample.
    pyz_bytes : bytes, optional
        a prebuilt zipapp; built from this package when not given.
    """
    profile = profiles.load_profile(profile)
    if pyz_bytes is None:
        pyz_bytes = build.pyz_bytes()
    command = run_command(sink_url, {k: str(v) for k, v in tags.items()})
    config = {
        'write_files': [
            {'path': '%s/loadgen.pyz' % INSTALL_DIR, 'encoding': 'b64',
             'permissions': '0755',
             'content': base64.b64encode(pyz_bytes).decode('ascii')},
            {'path': '%s/profile.json' % INSTALL_DIR, 'permissions': '0644',
             'content': json.dumps(profile.to_dict(), sort_keys=True)},
        ],
        'runcmd': [['sh', '-c', 'nohup %s >> %s 2>&1 &'
                    % (command, LOG_PATH)]],
    }
    return '#cloud-config\n' + json.dumps(config, indent=1) + '\n'
