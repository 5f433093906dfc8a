"""The console commands: ``shadow-service``, ``shadow-watcher`` and
``nova-shadow``.

They need the ``service`` extra (``pip install 'nova-shadow[service]'``);
the weigher alone is installed into nova-scheduler's environment with only
``requirements.txt``.  :func:`require_service_extra` turns a light install
into one clear line instead of an ImportError's traceback.
"""

import importlib.util
import sys
import warnings

# The daemons run on oslo.service's threading backend; eventlet is only
# imported by libraries (futurist), and its deprecation warning, nine
# lines on stderr at every start, is nothing an operator can act on.
warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')

# One module of each distribution of the ``service`` extra (setup.cfg).
SERVICE_MODULES = {
    'oslo.service': 'oslo_service',
    'stevedore': 'stevedore',
    'jsonschema': 'jsonschema',
    'PyYAML': 'yaml',
    'numpy': 'numpy',
    'scipy': 'scipy',
    'pandas': 'pandas',
    'statsmodels': 'statsmodels',
    'openstacksdk': 'openstack',
    'requests': 'requests',
    'matplotlib': 'matplotlib',
    'tooz': 'tooz',
    'redis': 'redis',
    'prometheus_client': 'prometheus_client',
}


def missing_service_modules():
    """Distributions of the ``service`` extra this environment lacks."""
    return sorted(dist for dist, module in SERVICE_MODULES.items()
                  if importlib.util.find_spec(module) is None)


def require_service_extra(command):
    """Exit 2 with one line on stderr when the ``service`` extra is not
    installed."""
    missing = missing_service_modules()
    if missing:
        sys.stderr.write(
            "%s: this environment has only the weigher's light install; "
            "install the daemons' dependencies with "
            "pip install 'nova-shadow[service]' (missing: %s)\n"
            % (command, ', '.join(missing)))
        sys.exit(2)
