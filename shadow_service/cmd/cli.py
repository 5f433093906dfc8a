"""``nova-shadow``: the operator and tenant command line.

Sub-commands:

``demo``
    The main job on the embedded twin: evaluate, place, watch, report.
``evaluate``
    Rank hosts for a VM request.  Locally (default: the configured cloud
    driver, the twin unless configured otherwise; ``--cloud NAME`` boots
    shadows on the clouds.yaml cloud ``NAME`` with a progress bar while
    they run) or, with ``--remote``, through a running ``shadow-service``;
    the evaluation id it prints can be given to
    ``openstack server create --hint shadow_evaluation=<id>``.
``show``
    Status and ranking of a remote evaluation.
``profiles``
    The built-in workload profiles.
``lab``
    The real path on this machine (from a source checkout, as root): the
    lab's Nova with lab computes and the ShadowWeigher, a
    ``shadow-service`` process with the ``openstack`` driver, an
    evaluation and a boot with a ``shadow_profile`` hint, then clean-up
    (``nova_shadow_lab.command``; see ``nova-shadow lab -h``).

Exit codes: 0 success, 1 failure, 2 bad arguments or bad request, 130
interrupted (Ctrl-C).
"""

import argparse
import json
import logging
import sys
import time
import warnings

# oslo libraries import eventlet, which warns about itself on import; the
# CLI never uses it and an operator should not see that warning.
warnings.filterwarnings('ignore', message='(?s).*Eventlet is deprecated')

from oslo_config import cfg  # noqa: E402

from shadow_service import argtypes  # noqa: E402
from shadow_service import conf as shadow_conf  # noqa: E402
from shadow_service import exception  # noqa: E402
from shadow_service import rpcwait  # noqa: E402

LOG = logging.getLogger(__name__)

class UsageError(Exception):
    """A bad argument or a configuration the command cannot use: one
    line, exit 2."""


class NoAnswer(Exception):
    """No answer within the wait plus :data:`rpcwait.DEADLINE_SLACK_S`:
    the broker cannot be reached (oslo.messaging's call then never
    returns by itself)."""


def _call(api, method, rpc_wait, *args, **kwargs):
    """``method`` of the service's RPC API, waiting ``rpc_wait`` seconds
    for its answer and never much longer (:class:`NoAnswer`)."""
    from nova_shadow_filter import breaker

    bound = getattr(api, method)
    try:
        return breaker.call_with_deadline(
            lambda: bound({}, *args, timeout=rpc_wait, **kwargs),
            rpc_wait + rpcwait.DEADLINE_SLACK_S)
    except breaker.DeadlineExceeded:
        raise NoAnswer('no answer from shadow-service within %g s: is the '
                       'message broker reachable?' % rpc_wait)


def _service_api(conf):
    """The RPC API of ``shadow-service`` on the configured broker.

    oslo.messaging's default broker (``rabbit://``, a guest on localhost)
    is never the one an operator means: without a ``transport_url`` the
    command stops at once instead of waiting for a service that is not
    there.
    """
    from shadow_service import rpc
    from shadow_service import rpcapi

    # A URL no driver can use: named with its file, before
    # oslo.messaging's own one-liner ("No scheme specified").
    try:
        rpc.check_transport_url(conf)
    except rpc.BadTransportURL as e:
        raise UsageError(str(e))
    # Building the API registers transport_url (so does the check).
    api = rpcapi.ShadowAPI(conf, topic=conf.shadow.topic)
    if conf.transport_url in (None, '', 'rabbit://'):
        raise UsageError('no message broker: --remote and show need a '
                         '--config-file with transport_url (the '
                         'shadow-service configuration file)')
    return api


def _parser():
    parser = argparse.ArgumentParser(
        prog='nova-shadow',
        description='Place VMs by measuring shadow copies first.')
    parser.add_argument('--config-file', action='append', default=[],
                        help='nova-shadow configuration file (repeatable)')
    parser.add_argument('--debug', action='store_true')
    parser.add_argument('--rpc-wait', metavar='SECONDS', type=rpcwait.seconds,
                        default=None,
                        help='seconds to wait for each answer of '
                        'shadow-service (show, evaluate --remote); default '
                        '%g' % rpcwait.DEFAULT_S)
    sub = parser.add_subparsers(dest='command', required=True)

    demo = sub.add_parser('demo', help='the main job on the embedded twin')
    demo.add_argument('demo_args', nargs='*',
                      help='options of the demo (see nova-shadow demo -h)')

    ev = sub.add_parser('evaluate', help='rank hosts for a VM request')
    ev.add_argument('--profile', default='web',
                    help='workload profile: a built-in name (see '
                         '"nova-shadow profiles") or the name of a file '
                         '<name>.yaml/.yml/.json in a directory of '
                         '[shadow] profile_dirs; never a path '
                         '(default: web)')
    ev.add_argument('--vcpus', type=argtypes.vcpus, default=4,
                    help='vCPUs of the VM to place (default: 4)')
    ev.add_argument('--ram-mb', type=argtypes.ram_mb, default=8192,
                    help='RAM of the VM in MB (default: 8192)')
    ev.add_argument('--disk-gb', type=argtypes.disk_gb, default=40,
                    help='root disk of the VM in GB (default: 40)')
    ev.add_argument('--hosts', default=None,
                    help='comma-separated candidate host names; locally '
                         'the default is every available host of the '
                         'cloud driver (the twin: its 16 hosts); --remote '
                         'needs it')
    ev.add_argument('--cloud', default=None, metavar='NAME',
                    help='measure on the OpenStack cloud NAME of '
                         'clouds.yaml (the openstack cloud driver; the '
                         'other [openstack] options come from '
                         '--config-file)')
    ev.add_argument('--image', default=None,
                    help='image id of the request (shadows boot from it '
                         'unless [openstack] image is set)')
    ev.add_argument('--progress', choices=['auto', 'always', 'never'],
                    default='auto',
                    help='progress bar on stderr while shadows run '
                         '(auto: when stderr is a terminal)')
    ev.add_argument('--budget', type=argtypes.budget, default=30.0,
                    help='seconds the evaluation may run (default: 30)')
    ev.add_argument('--remote', action='store_true',
                    help='ask a running shadow-service over RPC')
    ev.add_argument('--wait', action='store_true',
                    help='with --remote: wait for the ranking')
    ev.add_argument('--format', choices=['table', 'json'],
                    default='table', help='how to print the ranking')
    ev.add_argument('--json', dest='format', action='store_const',
                    const='json', help='the same as --format json')
    ev.add_argument('--history', choices=['memory', 'configured'],
                    default=None,
                    help='history store of a local evaluation: memory, or '
                         'the configured [history] store (default: '
                         'configured with --config-file, else memory)')

    show = sub.add_parser('show', help='a remote evaluation')
    show.add_argument('evaluation_id')
    show.add_argument('--json', action='store_true',
                      help='JSON output (the only format show prints; '
                           'accepted so that scripts may say so)')

    sub.add_parser('profiles', help='list the built-in workload profiles')

    lab = sub.add_parser('lab', help='the real path in the lab: real Nova, '
                                     'shadow-service and real shadows on '
                                     'this machine (root, cgroups)')
    lab.add_argument('lab_args', nargs='*',
                     help='options of the lab (see nova-shadow lab -h)')
    return parser


def _load_conf(args):
    from shadow_service import rpc

    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    rpc.register_opts(conf)
    conf([], project='nova-shadow', default_config_files=args.config_file)
    if getattr(args, 'cloud', None):
        conf.set_override('cloud_driver', 'openstack', group='shadow')
        conf.set_override('cloud', args.cloud, group='openstack')
    return conf


def format_ranking(ranking, out=None):
    """Print a ranking as the table operators read."""
    out = out or sys.stdout
    out.write('%-4s %-16s %7s %10s  %s\n'
              % ('rank', 'host', 'score', 'confidence', 'reasons'))
    for i, host in enumerate(ranking['hosts'], 1):
        reasons = '; '.join(host.get('reasons', [])[:2])
        out.write('%-4d %-16s %7.1f %10.2f  %s\n'
                  % (i, host['host'], host['score'],
                     host.get('confidence', 0.0), reasons))
    out.write('overall confidence %.2f, %s, %.1f s, %.1f shadow-host-s\n'
              % (ranking.get('confidence', 0.0),
                 ranking.get('source', 'shadows'),
                 ranking.get('duration_s', 0.0),
                 ranking.get('shadow_host_seconds', 0.0)))


def _request(args):
    """The request the weigher would send for this VM (the shared
    builder: the profile scaled to the flavor's vCPUs)."""
    from nova_shadow_filter import request as request_lib

    request = request_lib.build_request(
        {'name': 'cli', 'vcpus': args.vcpus, 'ram_mb': args.ram_mb,
         'disk_gb': args.disk_gb}, args.profile)
    if getattr(args, 'image', None):
        request['image_id'] = args.image
    return request


class ProgressBar:
    """``[#####.....]  45%  12.3 s`` redrawn in place on ``stream``."""

    WIDTH = 30

    def __init__(self, stream, enabled):
        self.stream = stream
        self.enabled = enabled
        self.drawn = False

    def draw(self, fraction, elapsed_s, status):
        if not self.enabled:
            return
        fraction = min(1.0, max(0.0, fraction))
        done = int(round(fraction * self.WIDTH))
        self.stream.write('\r[%s%s] %3d%% %6.1f s  %-9s'
                          % ('#' * done, '.' * (self.WIDTH - done),
                             round(fraction * 100), elapsed_s, status))
        self.stream.flush()
        self.drawn = True

    def close(self):
        if self.drawn:
            self.stream.write('\n')
            self.stream.flush()


def _progress_enabled(args):
    if args.progress == 'auto':
        return sys.stderr.isatty()
    return args.progress == 'always'


def _run_with_progress(manager, request, hosts, budget, bar):
    """Run the evaluation in the manager's pool, drawing its progress;
    returns the ranking."""
    evaluation_id = manager.start_evaluation({}, request, hosts, budget)
    started = time.monotonic()
    try:
        while True:
            state = manager.get_evaluation({}, evaluation_id)
            bar.draw(state['progress'], time.monotonic() - started,
                     state['status'])
            if state['status'] not in ('pending', 'running'):
                break
            time.sleep(0.2)
    finally:
        bar.close()
    if state['status'] == 'error' or not state.get('ranking'):
        raise exception.ShadowException(
            'evaluation %s failed: %s' % (evaluation_id,
                                          state.get('error')))
    return state['ranking']


def _evaluate_locally(conf, args):
    from shadow_service import service

    history_choice = args.history or (
        'configured' if args.config_file else 'memory')
    history = None
    if history_choice == 'memory':
        from shadow_service.history import memory

        history = memory.MemoryStore()
    parts = service.build(conf, history=history)
    try:
        if args.hosts:
            names = [h.strip() for h in args.hosts.split(',') if h.strip()]
        else:
            names = [h.host for h in parts.driver.list_hosts()
                     if h.available]
        if not names:
            raise exception.InvalidRequest(reason='no candidate hosts: use '
                                                  '--hosts')
        request, hosts = _request(args), [{'host': n} for n in names]
        bar = ProgressBar(sys.stderr, _progress_enabled(args))
        if not bar.enabled:
            return parts.manager.evaluate(request, hosts, args.budget)
        return _run_with_progress(parts.manager, request, hosts,
                                  args.budget, bar)
    finally:
        parts.close()


#: Seconds ``evaluate --remote --wait`` waits past the budget (or the
#: longer ``--rpc-wait``) before it gives up.
WAIT_SLACK_S = rpcwait.DEFAULT_S


def _rpc_wait(args):
    """Seconds each call to ``shadow-service`` waits for its answer."""
    return rpcwait.DEFAULT_S if args.rpc_wait is None else args.rpc_wait


def _evaluate_remotely(conf, args):
    hosts = [{'host': h.strip()} for h in (args.hosts or '').split(',')
             if h.strip()]
    if not hosts:
        raise exception.InvalidRequest(reason='--remote needs --hosts')
    api = _service_api(conf)
    # Without --wait nothing polls it: it runs for a later
    # shadow_evaluation hint, not cancelled as abandoned.
    evaluation_id = _call(api, 'start_evaluation', _rpc_wait(args),
                          _request(args), hosts, args.budget,
                          detached=not args.wait)
    started = ('evaluation %s started; boot with --hint '
               'shadow_evaluation=%s' % (evaluation_id, evaluation_id))
    if args.format != 'json':
        print(started)
    elif args.wait:
        # Standard output is the ranking's JSON alone.
        print(started, file=sys.stderr, flush=True)
    else:
        print(json.dumps({'evaluation_id': evaluation_id,
                          'hint': 'shadow_evaluation=%s' % evaluation_id},
                         indent=2, sort_keys=True))
    if not args.wait:
        return None
    return _wait_for_ranking(api, evaluation_id, args)


def _wait_for_ranking(api, evaluation_id, args):
    """Poll a remote evaluation until it ends; its ranking."""
    from oslo_messaging import exceptions as messaging_exceptions

    # The evaluation's budget, then time for its answer.
    deadline = time.monotonic() + args.budget + max(_rpc_wait(args),
                                                     WAIT_SLACK_S)
    while time.monotonic() < deadline:
        looked_at = time.monotonic()
        try:
            state = _call(api, 'get_evaluation', _rpc_wait(args),
                          evaluation_id)
        except (messaging_exceptions.MessagingTimeout, NoAnswer):
            # A look the service did not answer (restarting, or the
            # answer lost with the service that took the question; or
            # the broker gone) is asked again until the wait's deadline,
            # at most once per wait: a look refused at once (earlier
            # ones still without an answer) is no busy loop.
            print('warning: shadow-service did not answer within %g s; '
                  'asking again' % _rpc_wait(args), file=sys.stderr)
            time.sleep(max(0.0, min(
                _rpc_wait(args) - (time.monotonic() - looked_at),
                deadline - time.monotonic())))
            continue
        if state['status'] not in ('pending', 'running'):
            if state['status'] == 'error' or not state.get('ranking'):
                # Interrupted (its service stopped) or failed: no
                # ranking to print, and not a success.
                raise exception.ShadowException(
                    'evaluation %s ended %s: %s'
                    % (evaluation_id, state['status'],
                       state.get('error') or 'no ranking'))
            return state['ranking']
        time.sleep(1)
    raise exception.ShadowException('evaluation did not finish in time')


def _split_demo_args(argv):
    """``(nova-shadow args, demo args)``: everything after the sub-command
    word ``demo`` belongs to the demo's own parser.  Only the first word
    that is not an option (or an option's value) is the sub-command, so
    ``evaluate --profile demo`` stays an evaluation."""
    takes_value = {'--config-file', '--rpc-wait'}
    index = 0
    while index < len(argv):
        word = argv[index]
        if word in takes_value:
            index += 2
            continue
        if word.startswith('-'):
            index += 1
            continue
        if word in ('demo', 'lab'):
            return argv[:index + 1], argv[index + 1:]
        return argv, None
    return argv, None


def _run_lab(lab_args):
    """``nova-shadow lab``: the lab lives in the source checkout
    (``nova_shadow_lab``, not in the wheel)."""
    import os

    checkout = os.getcwd()
    if (os.path.isdir(os.path.join(checkout, 'nova_shadow_lab'))
            and checkout not in sys.path):
        # The console script's sys.path has its own directory, not the
        # working directory.
        sys.path.insert(0, checkout)
    try:
        from nova_shadow_lab import command
    except ImportError as e:
        print('error: nova-shadow lab needs a source checkout of nova-shadow '
              'on sys.path (run it from the checkout root or set '
              'PYTHONPATH=<checkout>) and the test requirements: %s' % e,
              file=sys.stderr)
        return 2
    return command.main(lab_args)


def _first_line(error):
    """``error``'s message: a remote error's text carries the service's
    traceback after its message."""
    return str(error).split('\n', 1)[0]


def _error_name(error):
    """The class name of ``error`` as the service raised it (a remote
    error's class is the service's with ``_Remote`` added)."""
    name = type(error).__name__
    return name[:-len('_Remote')] if name.endswith('_Remote') else name


#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


def main(argv=None):
    """``nova-shadow``; returns the exit status.  Ctrl-C ends it with one
    line and :data:`EXIT_INTERRUPTED`: an evaluation under way has
    deleted its shadows by then (its own clean-up, or the manager's
    shutdown cancelling it)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print('error: interrupted', file=sys.stderr)
        return EXIT_INTERRUPTED


def _unread_options(args):
    """Why an option given on the command line would be ignored by
    ``args.command`` (None: every option given is read)."""
    if args.command in ('demo', 'lab', 'profiles') and args.config_file:
        return ('%s does not read --config-file (it runs with its own '
                'settings)' % args.command)
    if args.rpc_wait is not None and not (
            args.command == 'show'
            or (args.command == 'evaluate' and args.remote)):
        return ('--rpc-wait only applies to show and evaluate --remote '
                '(the commands that ask shadow-service)')
    if args.command != 'evaluate':
        return None
    if args.remote:
        given = [name for name, value in (
            ('--cloud', args.cloud), ('--history', args.history),
            ('--progress', None if args.progress == 'auto'
             else args.progress)) if value is not None]
        if given:
            return ('%s only apply to a local evaluation; with --remote '
                    'the service measures on its own cloud and keeps its '
                    'own history' % ' and '.join(given))
    elif args.wait:
        return '--wait only applies with --remote'
    return None


def _main(argv):
    from shadow_service import cmd

    cmd.require_service_extra('nova-shadow')
    argv = sys.argv[1:] if argv is None else list(argv)
    own, demo_args = _split_demo_args(argv)
    args = _parser().parse_args(own)
    if demo_args is not None:
        if args.command == 'lab':
            args.lab_args = demo_args
        else:
            args.demo_args = demo_args
    logging.basicConfig(level=logging.DEBUG if args.debug else
                        logging.WARNING,
                        format='%(levelname)s %(name)s: %(message)s')
    unread = _unread_options(args)
    if unread:
        print('error: %s' % unread, file=sys.stderr)
        return 2
    if args.command == 'demo':
        from shadow_service import demo_options

        # Parsed before the twin's libraries are imported: a bad value
        # or --help answers at once.
        options = demo_options.parse_args(args.demo_args)
        from shadow_service import demo

        return demo.run_demo(options)
    if args.command == 'lab':
        return _run_lab(args.lab_args)
    if args.command == 'profiles':
        from loadgen import profiles

        for name in profiles.BUILTIN_PROFILES:
            print('%-10s %s' % (name,
                                profiles.load_profile(name).description))
        return 0
    # Not at the top: oslo.messaging imports eventlet, which the lab's
    # Nova (native threads) refuses to find imported before it.
    from oslo_messaging import exceptions as messaging_exceptions

    try:
        conf = _load_conf(args)
    except cfg.Error as e:
        # A missing or unparsable --config-file is a bad argument.
        print('error: cannot read the configuration: %s'
              % ' '.join(str(e).split()), file=sys.stderr)
        return 2
    try:
        if args.command == 'show':
            state = _call(_service_api(conf), 'get_evaluation',
                          _rpc_wait(args), args.evaluation_id)
            print(json.dumps(state, indent=2, sort_keys=True))
            return 0
        if args.remote:
            ranking = _evaluate_remotely(conf, args)
        else:
            ranking = _evaluate_locally(conf, args)
    except UsageError as e:
        print('error: %s' % e, file=sys.stderr)
        return 2
    except exception.InvalidRequest as e:
        print('error: %s' % _first_line(e), file=sys.stderr)
        return 2
    except NoAnswer as e:
        print('error: %s' % e, file=sys.stderr)
        return 1
    except messaging_exceptions.MessagingTimeout:
        print('error: shadow-service did not answer within %g s on topic '
              '%s (is it running, on this broker?)'
              % (_rpc_wait(args), conf.shadow.topic), file=sys.stderr)
        return 1
    except exception.ShadowException as e:
        # The service's typed error, or the command's own.
        print('error: %s: %s' % (_error_name(e), _first_line(e)),
              file=sys.stderr)
        return 1
    except Exception as e:
        LOG.debug('failed', exc_info=True)
        print('error: %s: %s' % (type(e).__name__, e), file=sys.stderr)
        return 1
    if ranking is None:
        return 0
    if args.format == 'json':
        print(json.dumps(ranking, indent=2, sort_keys=True))
    else:
        format_ranking(ranking)
    return 0


if __name__ == '__main__':
    sys.exit(main())
