"""The weigher's light install: what nova-scheduler's environment needs to
load ``nova_shadow_filter`` is exactly ``requirements.txt``; the daemons'
dependencies are the ``service`` extra, and a command started without them
says so in one line."""

import configparser
import importlib.metadata as md
import os
import re
import subprocess
import sys

from shadow_service import cmd
from tests.unit import test_architecture as arch

REPO = arch.REPO


def _names(lines):
    """Distribution names of requirement lines (comments dropped)."""
    names = []
    for line in lines:
        line = line.split('#', 1)[0].strip()
        if line:
            names.append(re.split(r'[<>=!~;\[ ]', line, maxsplit=1)[0])
    return names


def _canonical(name):
    return re.sub(r'[-_.]+', '-', name).lower()


def _closure(names):
    """The distributions ``names`` pull in when installed (markers that
    only hold for extras are skipped)."""
    seen, todo = set(), [_canonical(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or ()
        except md.PackageNotFoundError:
            # A requirement for other Pythons (a marker not met here).
            continue
        for req in requires:
            if 'extra ==' in req:
                continue
            todo.append(_canonical(_names([req])[0]))
    return seen


def _third_party_imports_of_the_weigher():
    """Top-level third-party modules any module reachable from
    ``nova_shadow_filter`` imports, anywhere in its body."""
    modules = arch._modules()
    todo = [m for m in modules if m.startswith('nova_shadow_filter')]
    seen, outside = set(), set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for name in arch._imports(module, modules[module], modules):
            own = arch._resolve(name, modules)
            if own is not None:
                todo.append(own)
            elif name.split('.')[0] not in sys.stdlib_module_names:
                outside.add(name.split('.')[0])
    return seen, outside


def test_the_weigher_needs_only_requirements_txt_and_nova():
    with open(os.path.join(REPO, 'requirements.txt')) as f:
        light = _names(f)
    allowed = _closure(light + ['nova'])
    distributions = md.packages_distributions()
    seen, outside = _third_party_imports_of_the_weigher()
    # The walk reached the RPC client the weigher uses.
    assert 'shadow_service.rpcapi' in seen
    assert outside, 'the walk found no third-party import at all'
    wrong = {module: distributions.get(module) for module in outside
             if not {_canonical(d) for d in distributions.get(module, ())}
             & allowed}
    assert not wrong, wrong
    # And nothing heavy hides in requirements.txt.
    assert not {'numpy', 'pandas', 'statsmodels', 'scipy',
                'openstacksdk'} & {_canonical(n) for n in light}


def test_the_service_extra_is_what_the_commands_check():
    parser = configparser.ConfigParser()
    parser.read(os.path.join(REPO, 'setup.cfg'))
    extra = _names(parser['extras']['service'].splitlines())
    assert sorted(map(_canonical, extra)) == sorted(
        map(_canonical, cmd.SERVICE_MODULES))
    assert cmd.missing_service_modules() == []


def test_a_command_without_the_service_extra_says_what_to_install():
    # A light install, emulated: numpy and statsmodels cannot be found.
    code = (
        "import importlib.util, sys\n"
        "real = importlib.util.find_spec\n"
        "def find_spec(name, *a, **k):\n"
        "    if name in ('numpy', 'statsmodels'):\n"
        "        return None\n"
        "    return real(name, *a, **k)\n"
        "importlib.util.find_spec = find_spec\n"
        "from shadow_service.cmd import service\n"
        "service.main(['--config-file', '/nonexistent'])\n")
    done = subprocess.run([sys.executable, '-c', code], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == (
        "shadow-service: this environment has only the weigher's light "
        "install; install the daemons' dependencies with pip install "
        "'nova-shadow[service]' (missing: numpy, statsmodels)")
    assert 'Traceback' not in done.stderr
