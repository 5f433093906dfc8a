"""Every command the README shows is run: here, by the test named for it,
or (for the operator's own cloud) said to need it.

The README's literal blocks are read; a command line is one that starts
with one of nova-shadow's commands, ``openstack``, ``pip`` or the tools.
A command nobody maps fails the test, so a new line in the README needs a
test before it can land.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
README = os.path.join(REPO, 'README.rst')
BIN = os.path.dirname(sys.executable)
STARTS = ('tools/', 'nova-shadow', 'shadow-', 'openstack ', 'pip ',
          '/path/to/nova/venv/bin/pip', 'oslo-config-generator', 'mkdir ',
          '. .venv')


def _literal_blocks(text):
    """The literal blocks of an rst text, each as a list of lines with the
    block's indentation removed."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].rstrip().endswith('::'):
            i += 1
            block = []
            while i < len(lines) and (not lines[i].strip() or
                                      lines[i].startswith(' ')):
                block.append(lines[i])
                i += 1
            body = [line for line in block if line.strip()]
            if body:
                indent = min(len(line) - len(line.lstrip()) for line in body)
                blocks.append([line[indent:] for line in block])
        else:
            i += 1
    return blocks


def _commands():
    """Every command line of the README, continuations joined."""
    with open(README) as f:
        blocks = _literal_blocks(f.read())
    commands = []
    for block in blocks:
        joined, pending = [], ''
        for line in block:
            if pending:
                pending += ' ' + line.strip()
            else:
                pending = line.strip()
            if pending.endswith('\\'):
                pending = pending[:-1].rstrip()
                continue
            joined.append(re.sub(r'\s+', ' ', pending))
            pending = ''
        commands.extend(c for c in joined if c.startswith(STARTS) and
                        not c.split()[0].endswith(':'))
    return commands


# Commands run elsewhere: the test that runs them, or why nothing here can.
ELSEWHERE = {
    r'tools/run-tests\.sh$': ('.ci/run', 'exec tools/run-tests.sh'),
    r'tools/demo\.sh$': (
        'tests/functional/shadow_service/clouds/test_sim_twin.py',
        'test_demo_reports_labelled_figures_to_a_new_file_per_run'),
    r"pip install -c upper-constraints\.txt '\.\[service\]'$": (
        'tools/run-tests.sh', "-e '.[service,cli]'"),
    r'shadow-service --config-file \S+$': (
        'tests/functional/shadow_service/cmd/test_service_daemon.py',
        'test_daemon_serves_rankings_and_stops_on_sigterm'),
    r'nova-shadow --config-file \S+ evaluate --remote ': (
        'tests/functional/shadow_service/cmd/test_service_daemon.py',
        'test_preflight_evaluation_and_show_through_the_cli'),
    r'nova-shadow --config-file \S+ evaluate --cloud ': (
        'tests/functional/shadow_service/clouds/test_openstack_cli.py',
        'test_evaluate_cloud_prints_progress_then_the_ranking'),
    r'openstack server create .*--hint shadow_profile=': (
        'tests/functional/nova_shadow_filter/test_scheduler_path.py',
        'test_a_boot_runs_shadows_and_moves_ask_history_only'),
    # Keystone and quota administration of the operator's own cloud:
    # nothing here runs Keystone.
    r'openstack (project|user|role|quota) ': None,
}


def _here(command):
    return command in HERE


HERE = {
    '. .venv/bin/activate',
    'nova-shadow profiles',
    'nova-shadow evaluate --profile db-oltp --vcpus 2 --ram-mb 4096',
    'shadow-loadgen run web --duration 10',
    'shadow-loadgen run nightly-etl.yaml --duration 10',
    'oslo-config-generator --config-file '
    'etc/nova-shadow/nova-weigher-config-generator.conf',
    'mkdir -p /var/lib/nova-shadow /etc/nova-shadow',
    'oslo-config-generator --config-file '
    'etc/nova-shadow/shadow-service-config-generator.conf '
    '--output-file /etc/nova-shadow/shadow-service.conf',
    '/path/to/nova/venv/bin/pip install -c upper-constraints.txt .',
}


def test_every_readme_command_is_run_or_accounted_for():
    commands = _commands()
    assert len(commands) >= 15, commands
    unmapped = [c for c in commands if not _here(c) and not any(
        re.search(pattern, c) for pattern in ELSEWHERE)]
    assert not unmapped, unmapped
    # No stale entry: each mapping still matches something.
    for pattern in ELSEWHERE:
        assert any(re.search(pattern, c) for c in commands), pattern
    assert HERE <= set(commands), HERE - set(commands)
    for target in filter(None, ELSEWHERE.values()):
        path, needle = target
        with open(os.path.join(REPO, path)) as f:
            assert needle in f.read(), target


def _run(command, cwd, timeout=180):
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ['PATH'])
    # The README's command lines, verbatim: a shell is what runs them.
    return subprocess.run(command, shell=True, cwd=cwd, env=env,  # noqa: S602
                          capture_output=True, text=True, timeout=timeout)


def _readme_profile():
    """The operator profile the README shows (its YAML block)."""
    with open(README) as f:
        blocks = _literal_blocks(f.read())
    block = next(b for b in blocks
                 if [line for line in b if line.strip()][0].startswith(
                     'name: '))
    return '\n'.join(block).strip() + '\n'


def test_the_try_it_commands(tmp_path):
    listed = _run('nova-shadow profiles', tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert {'web', 'db-oltp', 'batch-cpu', 'cache', 'analytics', 'idle'} \
        <= {line.split()[0] for line in listed.stdout.splitlines() if line}

    ranked = _run('nova-shadow evaluate --profile db-oltp --vcpus 2 '
                  '--ram-mb 4096', tmp_path)
    assert ranked.returncode == 0, ranked.stderr
    rows = [line for line in ranked.stdout.splitlines()
            if re.match(r'\d+ +node-\d\d ', line)]
    assert len(rows) == 16, ranked.stdout

    ran = _run('shadow-loadgen run web --duration 10', tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert '"summary"' in ran.stdout


def test_the_operator_profile_runs(tmp_path):
    (tmp_path / 'nightly-etl.yaml').write_text(_readme_profile())
    ran = _run('shadow-loadgen run nightly-etl.yaml --duration 10', tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert '"summary"' in ran.stdout
    assert '"nightly-etl"' in ran.stdout


def test_the_config_generator_commands(tmp_path):
    weigher = _run('oslo-config-generator --config-file '
                   'etc/nova-shadow/nova-weigher-config-generator.conf',
                   REPO)
    assert weigher.returncode == 0, weigher.stderr
    # Its generator file names the output (ignored by git).
    with open(os.path.join(
            REPO, 'etc/nova-shadow/nova-weigher.conf.sample')) as f:
        assert '[shadow_weigher]' in f.read()
    # The README's paths, moved under a temporary directory.
    root = str(tmp_path)
    made = _run('mkdir -p %s/var/lib/nova-shadow %s/etc/nova-shadow'
                % (root, root), REPO)
    assert made.returncode == 0, made.stderr
    sample = tmp_path / 'etc/nova-shadow/shadow-service.conf'
    service = _run(
        'oslo-config-generator --config-file '
        'etc/nova-shadow/shadow-service-config-generator.conf '
        '--output-file %s' % sample, REPO)
    assert service.returncode == 0, service.stderr
    text = sample.read_text()
    for group in ('[shadow]', '[history]', '[sim]', '[openstack]'):
        assert group in text
    assert '#profile_dirs = /etc/nova-shadow/profiles' in text


@pytest.mark.slow
def test_the_light_install_pulls_in_nothing_heavy(tmp_path):
    venv = tmp_path / 'nova-venv'
    made = _run('%s -m venv %s' % (sys.executable, venv), REPO)
    assert made.returncode == 0, made.stderr
    # A copy of the checkout: building the package writes its metadata
    # (an egg-info) into the source tree, which would shadow the installed
    # entry points of every later command run from the checkout.
    source = tmp_path / 'source'
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        '.git', '.venv', '.tox', '*.egg-info', '__pycache__', 'build',
        'doc'))
    # The README's command, with this venv's pip as Nova's (pbr takes
    # the version from the environment: the copy has no git history).
    installed = _run('PBR_VERSION=0.1.0 %s/bin/pip install -q -c '
                     'upper-constraints.txt .' % venv, source, timeout=600)
    assert installed.returncode == 0, installed.stderr
    listed = _run('%s/bin/pip list --format freeze' % venv, REPO)
    names = {line.split('==')[0].lower()
             for line in listed.stdout.splitlines()}
    assert {'nova-shadow', 'oslo.messaging', 'oslo.config'} <= names
    assert not names & {'numpy', 'pandas', 'statsmodels', 'scipy',
                        'openstacksdk', 'matplotlib'}, names
    # The RPC client the weigher uses imports; the daemons say what they
    # lack.
    client = _run('%s/bin/python -c "import shadow_service.rpcapi, '
                  'nova_shadow_filter.request"' % venv, tmp_path)
    assert client.returncode == 0, client.stderr
    daemon = _run('%s/bin/shadow-service' % venv, tmp_path)
    assert daemon.returncode == 2
    assert "pip install 'nova-shadow[service]'" in daemon.stderr
    assert 'Traceback' not in daemon.stderr
