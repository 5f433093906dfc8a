"""The arrows between the parts, checked on the source (AST), not on
trust: no import cycle, drivers never import the loop or the analyzer, the
analysis core does no I/O, loadgen stands alone, and the weigher stays
light inside nova-scheduler.  ``doc/source/contributor/architecture.rst``
draws the same rules."""

import ast
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PACKAGES = ('shadow_service', 'nova_shadow_filter', 'loadgen')

# What each part may not import (prefixes of module names).
LOOP = ('shadow_service.evaluation', 'shadow_service.manager',
        'shadow_service.service', 'shadow_service.learners',
        'shadow_service.watcher', 'shadow_service.demo',
        'shadow_service.cmd')
FORBIDDEN = {
    # A driver never depends on the loop that calls it, nor on analysis.
    'shadow_service.clouds': LOOP + ('shadow_service.analysis',),
    # The analysis core takes arrays and returns results: no stores,
    # drivers or loop.
    'shadow_service.analysis': LOOP + (
        'shadow_service.clouds', 'shadow_service.history',
        'shadow_service.metrics', 'requests', 'influxdb', 'openstack',
        'oslo_messaging'),
    # The vocabulary sits below everything.
    'shadow_service.workloads': LOOP + (
        'shadow_service.clouds', 'shadow_service.analysis',
        'shadow_service.history'),
    'shadow_service.measurements': ('shadow_service.',),
    'shadow_service.hostfacts': ('shadow_service.',),
    # Stores know the schema, nothing above it.
    'shadow_service.history': LOOP + (
        'shadow_service.clouds', 'shadow_service.analysis'),
    # Monitoring sources read the operator's monitoring; nothing above.
    'shadow_service.metrics': LOOP + (
        'shadow_service.clouds', 'shadow_service.analysis'),
    # Learners fit models; they do not drive evaluations.
    'shadow_service.learners': (
        'shadow_service.evaluation', 'shadow_service.manager',
        'shadow_service.service', 'shadow_service.clouds',
        'shadow_service.watcher', 'shadow_service.demo',
        'shadow_service.cmd'),
    # The collector validates and stores what guests send: the schema and
    # the stores, never a driver or the loop.
    'shadow_service.collector': LOOP + (
        'shadow_service.clouds', 'shadow_service.analysis', 'openstack'),
    # The report renders plain data: no loop, drivers or stores.
    'shadow_service.report': LOOP + (
        'shadow_service.clouds', 'shadow_service.history'),
    # The openstack CLI plugin is a client of the RPC API: it never runs
    # the service's parts itself.
    'shadow_service.osc': (
        'shadow_service.evaluation', 'shadow_service.manager',
        'shadow_service.service', 'shadow_service.learners',
        'shadow_service.watcher', 'shadow_service.demo',
        'shadow_service.clouds', 'shadow_service.analysis',
        'shadow_service.history', 'shadow_service.metrics'),
    # loadgen runs inside guests: the standard library and itself.
    'loadgen': ('shadow_service', 'nova_shadow_filter'),
    # The weigher runs inside nova-scheduler: only the RPC client.
    'nova_shadow_filter': ('shadow_service.analysis',
                           'shadow_service.clouds',
                           'shadow_service.history',
                           'shadow_service.evaluation',
                           'shadow_service.service',
                           'shadow_service.manager'),
}


def _modules():
    """``{module name: path}`` of every module of the project."""
    found = {}
    for package in PACKAGES:
        for root, dirs, files in os.walk(os.path.join(REPO, package)):
            dirs[:] = [d for d in dirs if d != '__pycache__']
            for name in files:
                if not name.endswith('.py'):
                    continue
                path = os.path.join(root, name)
                parts = os.path.relpath(path, REPO)[:-3].split(os.sep)
                if parts[-1] == '__init__':
                    parts = parts[:-1]
                found['.'.join(parts)] = path
    return found


def _resolve(name, modules):
    """The longest project module ``name`` refers to (or ``name``)."""
    while name and name not in modules:
        if '.' not in name:
            return None
        name = name.rsplit('.', 1)[0]
    return name


def _imports(module, path, modules):
    """``{imported name}`` of one module (every import statement,
    including those inside functions)."""
    tree = ast.parse(open(path).read(), path)
    package = module if path.endswith('__init__.py') else \
        module.rsplit('.', 1)[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                prefix = '.'.join(base + ([node.module] if node.module
                                          else []))
            else:
                prefix = node.module
            for alias in node.names:
                candidate = '%s.%s' % (prefix, alias.name)
                names.add(candidate if candidate in modules else prefix)
    return names


@pytest.fixture(scope='module')
def graph():
    modules = _modules()
    return {module: _imports(module, path, modules)
            for module, path in modules.items()}, modules


def _project_edges(graph):
    edges, modules = graph
    return {module: {_resolve(n, modules) for n in names} - {None, module}
            for module, names in edges.items()}


def test_the_import_graph_has_no_cycle(graph):
    edges = _project_edges(graph)
    # A package importing its own submodules (``__init__`` re-exports) is
    # not an arrow between parts.
    edges = {m: {t for t in targets if not t.startswith(m + '.')}
             for m, targets in edges.items()}
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = 'open'
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 'open':
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 'done'

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not cycles, 'import cycles: %s' % [' -> '.join(c) for c in cycles]


@pytest.mark.parametrize('part', sorted(FORBIDDEN))
def test_no_part_imports_what_is_above_it(graph, part):
    edges, _modules = graph
    wrong = []
    for module, names in edges.items():
        if module != part and not module.startswith(part + '.'):
            continue
        for name in names:
            if any(name == f or name.startswith(f if f.endswith('.')
                                                 else f + '.')
                   or name == f.rstrip('.') for f in FORBIDDEN[part]):
                wrong.append('%s imports %s' % (module, name))
    assert not wrong, wrong


def test_only_the_openstack_driver_imports_openstacksdk(graph):
    edges, _modules = graph
    wrong = sorted(
        '%s imports %s' % (module, name)
        for module, names in edges.items() for name in names
        if (name == 'openstack' or name.startswith('openstack.'))
        and not module.startswith('shadow_service.clouds.openstack'))
    assert not wrong, wrong
    assert any(n.startswith('openstack') for n in edges[
        'shadow_service.clouds.openstack.driver'])


def test_the_check_sees_the_arrows_it_must_see(graph):
    # Guard against a check that passes because it reads nothing.
    edges = _project_edges(graph)
    assert 'shadow_service.analysis.analyzer' in edges[
        'shadow_service.evaluation'] or 'shadow_service.analysis.scaleup' \
        in edges['shadow_service.evaluation']
    assert 'shadow_service.workloads.profiles' in edges[
        'shadow_service.clouds.sim.driver']
    assert 'shadow_service.rpcapi' in edges['nova_shadow_filter.weigher']


def test_the_weigher_adds_nothing_heavy_to_nova_scheduler():
    code = (
        "import os, sys\n"
        "os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', 'True')\n"
        "import warnings; warnings.simplefilter('ignore')\n"
        "import nova.scheduler.manager\n"
        "before = set(sys.modules)\n"
        "import nova_shadow_filter.weigher\n"
        "new = set(sys.modules) - before\n"
        "heavy = ('numpy', 'statsmodels', 'pandas', 'jsonschema', 'scipy',\n"
        "         'influxdb', 'openstack', 'yaml', 'stevedore')\n"
        "print('heavy:' + ','.join(sorted(\n"
        "    m for m in new if m.split('.')[0] in heavy)))\n"
        "print('checked:%d' % len(new))\n")
    done = subprocess.run([sys.executable, '-c', code], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          check=True)
    lines = dict(line.split(':', 1) for line in done.stdout.splitlines()
                 if line.startswith(('heavy:', 'checked:')))
    assert int(lines['checked']) > 0, 'the weigher imported nothing new'
    assert lines['heavy'] == '', 'the weigher imports %s' % lines['heavy']
