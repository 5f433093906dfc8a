"""The console commands: ``shadow-service``, ``shadow-watcher`` and
``nova-shadow``.

They need the ``service`` extra (``pip install 'nova-shadow[service]'``);
the weigher alone is installed into nova-scheduler's environment with only
``requirements.txt``.  :func:`require_service_extra` turns a light install
into one clear line instead of an ImportError's traceback.
"""

import importlib.util
import multiprocessing
import os
import re
import signal
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


#: Exit status of a daemon whose configuration cannot work.
EXIT_CONFIG = 2


def option_values(conf):
    """Every string value of ``conf``'s options (a list option's items
    too), in every group: what a message about the configuration may
    quote.  An option whose value cannot be read is left out."""
    from oslo_config import cfg

    values = []

    def add(namespace, names):
        for name in names:
            try:
                value = getattr(namespace, name)
            except (cfg.Error, ValueError):  # a bad value
                value = None
            if isinstance(value, cfg.ConfigOpts.GroupAttr):
                add(value, list(value))
            elif isinstance(value, str):
                values.append(value)
            elif isinstance(value, (list, tuple)):
                values.extend(v for v in value if isinstance(v, str))
            elif isinstance(value, dict):
                values.extend(v for v in value.values()
                              if isinstance(v, str))

    add(conf, list(conf))
    return values


def _marked_secret(conf, name, group):
    try:
        return bool(conf._get_opt_info(name, group)['opt'].secret)
    except Exception:  # not an option oslo.config knows
        return False


def secret_option_values(conf):
    """The string values of ``conf``'s options marked ``secret=True``
    (a password, a token; a list option's items too), in every group.
    An option whose value cannot be read is left out."""
    from oslo_config import cfg

    values = []

    def add(value):
        if isinstance(value, str):
            values.append(value)
        elif isinstance(value, (list, tuple)):
            values.extend(v for v in value if isinstance(v, str))
        elif isinstance(value, dict):
            values.extend(v for v in value.values() if isinstance(v, str))

    for name in list(conf):
        try:
            value = getattr(conf, name)
        except (cfg.Error, ValueError):
            continue
        if isinstance(value, cfg.ConfigOpts.GroupAttr):
            for opt_name in list(value):
                if _marked_secret(conf, opt_name, name):
                    try:
                        add(getattr(value, opt_name))
                    except (cfg.Error, ValueError):
                        pass
        elif _marked_secret(conf, name, None):
            add(value)
    return values


def report_start_error(command, error, conf):
    """One line on stderr and in the log saying why ``command`` cannot
    start: no traceback, the password of every URL an option holds
    (``transport_url``, the notification and coordination URLs, the
    history and metrics URLs, ...) masked, also one whose option could
    not be read, and the value of every option marked secret (a password,
    a token) (:func:`shadow_service.logsafe.mask_secrets_in`)."""
    from oslo_config import cfg
    from oslo_log import log as logging

    from shadow_service import logsafe

    text = ' '.join(str(error).split()) or type(error).__name__
    values = option_values(conf)
    try:
        values.append(conf.transport_url)
    except cfg.NoSuchOptError:  # registered when a transport is made
        pass
    text = logsafe.mask_secrets_in(text, values,
                                   secret_option_values(conf))
    logging.getLogger(__name__).error('%s cannot start: %s', command, text)
    sys.stderr.write('%s: cannot start: %s\n' % (command, text))
    sys.stderr.flush()


#: The line oslo.config quotes at the end of a parse error (``repr``).
_QUOTED_LINE = re.compile(r""": (?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")$""")


def _config_error_text(error):
    """``error`` (oslo.config's, before the options are read) as one
    line; a config file that does not parse is named with the line's
    number but not its text, which may hold a password."""
    from oslo_config import cfg

    text = ' '.join(str(error).split()) or type(error).__name__
    if isinstance(error, cfg.ConfigFileParseError):
        text = _QUOTED_LINE.sub('', text)
    return text


def run_daemon(command, conf, argv, preflight, service_class, description):
    """Run ``command``'s one worker; returns the exit status.

    Parses the command line and configuration files into ``conf`` (its
    options registered; ``--help`` shows ``description``), sets up
    logging, runs ``preflight(conf)`` and only then forks the worker
    ``service_class()`` returns with the oslo.service module,
    ``(class, os_service)``; the class takes
    ``(conf, failed)``, ``failed`` a shared integer its worker sets to
    the exit status when it cannot start.  Every configuration that
    cannot work ends with :data:`EXIT_CONFIG` and one line
    (:func:`report_start_error`).
    """
    from oslo_config import cfg
    from oslo_log import log as logging

    try:
        conf(sys.argv[1:] if argv is None else argv, project='nova-shadow',
             prog=command, description=description)
    except cfg.Error as e:
        # A missing or unparsable config file, an unknown argument:
        # before logging can be set up, stderr only.
        sys.stderr.write('%s: cannot start: %s\n'
                         % (command, _config_error_text(e)))
        return EXIT_CONFIG
    try:
        logging.setup(conf, 'nova-shadow')
    except Exception as e:
        sys.stderr.write('%s: cannot start: logging: %s\n'
                         % (command, ' '.join(str(e).split())))
        return EXIT_CONFIG
    error = None
    try:
        preflight(conf)
    except Exception as e:
        error = e
    if error is not None:
        # Outside the handler: oslo.log would append the traceback.
        report_start_error(command, error, conf)
        return EXIT_CONFIG
    daemon_class, os_service = service_class()
    failed = multiprocessing.Value('i', 0)
    launcher = os_service.launch(conf, daemon_class(conf, failed),
                                 workers=1, restart_method='mutate')
    try:
        launcher.wait()
    except SystemExit as e:
        if failed.value:
            return failed.value
        return e.code if isinstance(e.code, int) else 0
    return failed.value or 0


def stop_failed_worker(command, error, conf, failed):
    """End a worker that cannot start (restarting it would fail the same
    way): report ``error`` (:func:`report_start_error`), leave
    :data:`EXIT_CONFIG` in ``failed`` (shared with the parent, may be
    None), stop the parent and exit."""
    report_start_error(command, error, conf)
    if failed is not None:
        failed.value = EXIT_CONFIG
    os.kill(os.getppid(), signal.SIGTERM)
    os._exit(EXIT_CONFIG)
