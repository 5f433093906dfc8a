"""``nova-shadow lab``: the real path on this machine, in one command.

Starts a :class:`nova_shadow_lab.stack.LabStack` (the lab's Nova with N
lab computes and the ShadowWeigher, a ``shadow-service`` process with the
``openstack`` driver and its collector), runs a pre-flight evaluation
over RPC, boots a VM with ``--hint shadow_profile=<profile>`` (the
``openstack`` command when installed, else openstacksdk), prints where the
VM went and why, deletes it, checks that no shadow, instance process or
cgroup is left, and stops everything.

Exit codes: 0 done, 1 a step failed, 2 bad arguments or the lab cannot
run here (the message says why), 130 and 143 interrupted (Ctrl-C) and
terminated (SIGTERM): the lab was stopped in order first. The first
signal decides the exit code whenever it came, also during the lab's own
stop at the end of its run; further SIGTERMs and Ctrl-Cs during that
clean-up are noted and ignored, except that the third Ctrl-C forces an
exit (130) at once.
"""

import argparse
import contextlib
import json
import logging
import math
import os
import signal
import sys
import time

USAGE_EPILOG = """\
Needs root, cgroup v1 (cpu, cpuacct, memory, pids, freezer), bubblewrap,
the test requirements (Nova's functional harness) and RabbitMQ; run from
a source checkout (see doc/source/lab.rst).
"""


DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              'etc', 'lab.yaml')
DEFAULT_TRANSPORT_URL = 'rabbit://guest:guest@127.0.0.1:5672/'
def _min_run_time_bounds():
    """``(min, None)``: shadow-service's ``[shadow] min_run_time``
    (``shadow_service.conf.service``), which the lab sets."""
    from shadow_service.conf import service as service_conf

    (opt,) = [o for o in service_conf.shadow_opts
              if o.name == 'min_run_time']
    return opt.type.min, opt.type.max


def _weigher_bounds(name):
    """``(min, max)`` of nova-scheduler's ``[shadow_weigher] <name>``
    (``nova_shadow_filter.conf``), which the lab sets from the option of
    the same name: a value it refuses would disable the weigher."""
    from nova_shadow_filter import conf as weigher_conf

    (opt,) = [o for o in weigher_conf.shadow_weigher_opts if o.name == name]
    return opt.type.min, opt.type.max


def budget_bounds():
    """``(lowest, highest)`` ``--budget``: seconds the service takes as
    an evaluation's budget (its request schema, as
    :func:`shadow_service.argtypes.budget` reads it: above 0, at most
    86400), which the pre-flight evaluation and the VM's boot ask for,
    and that the weigher takes as its ``default_budget`` (from 0.5: it
    refuses a shorter one).  Read where they are set, never copied."""
    from shadow_service import schema

    low, high = _weigher_bounds('default_budget')
    high = min(high, schema.BUDGET['maximum'])
    if low <= schema.BUDGET['exclusiveMinimum']:
        # (The weigher's bound is the one that binds; were it not, the
        # service's exclusive minimum would be.)
        raise ValueError('[shadow_weigher] default_budget may be %g s, '
                         'which the service refuses' % low)
    return low, high


def _seconds(bounds):
    """An argparse type: a number of seconds within ``bounds()``,
    ``(low, high)`` (high None: no upper bound), read when a value is
    checked."""
    def seconds(text):
        low, high = bounds()
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError('not a number: %r' % text)
        if high is None and not (math.isfinite(value) and value >= low):
            raise argparse.ArgumentTypeError(
                '%s s: must be at least %g s' % (text, low))
        if high is not None and not low <= value <= high:
            raise argparse.ArgumentTypeError(
                '%s s: must be %g-%g s' % (text, low, high))
        return value
    return seconds


def _parser():
    parser = argparse.ArgumentParser(
        prog='nova-shadow lab', epilog=USAGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description='Start the lab (real Nova with lab computes, '
                    'shadow-service with the openstack driver and its '
                    'collector), evaluate, boot a VM with a shadow_profile '
                    'hint, say where it went and why, and clean up.')
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='lab config file (default: %(default)s)')
    parser.add_argument('--profile', default='batch-cpu',
                        help='workload profile of the VM (default: '
                             '%(default)s)')
    parser.add_argument('--flavor', default='m1.small',
                        help='flavor of the VM (default: %(default)s)')
    parser.add_argument('--budget', type=_seconds(budget_bounds),
                        default=40.0,
                        help='seconds each evaluation may run, %g-%g: '
                             'what the service takes and the weigher '
                             'takes as its default_budget (default: '
                             '%%(default)s)' % budget_bounds())
    parser.add_argument('--min-run-time',
                        type=_seconds(_min_run_time_bounds),
                        default=10.0,
                        help='seconds every shadow runs before confidence '
                             'may stop an evaluation (default: '
                             '%(default)s)')
    parser.add_argument('--deadline-margin',
                        type=_seconds(lambda: _weigher_bounds(
                            'deadline_margin')), default=15.0,
                        help='seconds the scheduler waits beyond the budget '
                             'for the ranking ([shadow_weigher] '
                             'deadline_margin, %g-%g; default: '
                             '%%(default)s)'
                             % _weigher_bounds('deadline_margin'))
    parser.add_argument('--transport-url',
                        default=os.environ.get('NOVA_SHADOW_RABBIT_URL',
                                               DEFAULT_TRANSPORT_URL),
                        help='broker shared by the weigher and '
                             'shadow-service (default: '
                             '$NOVA_SHADOW_RABBIT_URL or RabbitMQ on '
                             '127.0.0.1:5672)')
    parser.add_argument('--client', choices=['auto', 'cli', 'sdk'],
                        default='sdk',
                        help='how to boot: openstacksdk, the openstack '
                             'command (its server create looks the image '
                             'up in an image service, which the lab does '
                             'not run), or the command when installed '
                             '(default: %(default)s)')
    parser.add_argument('--preflight', action='store_true',
                        help='first run a pre-flight evaluation over RPC '
                             '(as nova-shadow evaluate --remote); the boot '
                             'then finds its ranking in the history')
    parser.add_argument('--directory', default=None,
                        help='keep clouds.yaml, shadow-service.conf, its '
                             'log and history here (default: a temporary '
                             'directory, removed)')
    parser.add_argument('--summary', default=None, metavar='FILE',
                        help='also write what happened as JSON to FILE')
    return parser


class Terminated(BaseException):
    """SIGTERM: unwinds like Ctrl-C, so that the lab stops in order."""


#: Ctrl-Cs (in all) that stop the lab at once, its clean-up cut short.
FORCE_AFTER_INTERRUPTS = 3
FORCED_EXIT_CODE = 128 + signal.SIGINT


class ShutdownSignals:
    """SIGTERM and SIGINT for the command: the first one unwinds
    (:class:`Terminated`, ``KeyboardInterrupt``) so that the lab stops in
    order; from then on, and from when the lab starts to stop by itself
    (:meth:`shutting_down`), they are noted on ``err`` and do not
    interrupt the clean-up, until :meth:`restore`. The
    :data:`FORCE_AFTER_INTERRUPTS`-th Ctrl-C exits at once with
    :data:`FORCED_EXIT_CODE`; the lab's reaper then removes its processes
    and cgroups, and the next lab start its temporary files.

    :attr:`first` is the first signal received, also one only noted:
    whenever it came, the command exits ``128 + first`` after its
    clean-up (see :func:`exit_code`).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, err_fd=2):
        self.err_fd = err_fd
        self.stopping = False
        self.interrupts = 0
        self.first = None
        self._previous = {}

    def install(self):
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def shutting_down(self):
        """The lab is stopping: no signal interrupts that any more."""
        self.stopping = True

    def _say(self, text):
        # os.write: a handler may run while sys.stderr is mid-write.
        os.write(self.err_fd, ('nova-shadow lab: %s\n' % text).encode())

    def _handle(self, signum, frame):
        if self.first is None:
            self.first = signal.Signals(signum)
        if signum == signal.SIGINT:
            self.interrupts += 1
        if not self.stopping:
            self.stopping = True
            raise Terminated() if signum == signal.SIGTERM \
                else KeyboardInterrupt()
        if self.interrupts >= FORCE_AFTER_INTERRUPTS:
            self._say('forced to stop: clean-up cut short; the lab\'s '
                      'reaper removes its processes and cgroups, the next '
                      'lab start its temporary files')
            os._exit(FORCED_EXIT_CODE)
        left = FORCE_AFTER_INTERRUPTS - self.interrupts
        self._say('%s: still stopping the lab in order; Ctrl-C %d more '
                  'time%s to force' % (signal.Signals(signum).name, left,
                                       '' if left == 1 else 's'))


def _hosts_table(cloud, out):
    out.write('%-14s %9s  %s\n' % ('host', 'cpu share', 'tenants'))
    for host in cloud.config.hosts:
        tenants = ', '.join(t.name for t in host.tenants) or '-'
        share = 'no cap' if host.share.cpu is None else \
            '%.2f' % host.share.cpu
        out.write('%-14s %9s  %s\n' % (host.name, share, tenants))


def _sample_summary(samples):
    """``{host: {'samples': n, 'mean cpu_ops_per_s': x}}``."""
    summary = {}
    for host, metrics in samples.items():
        count = sum(len(v) for v in metrics.values())
        entry = {'samples': count}
        for metric in ('cpu_ops_per_s', 'web_latency_p95_ms',
                       'disk_iops'):
            values = metrics.get(metric)
            if values:
                entry['mean_' + metric] = round(sum(values) / len(values), 2)
        summary[host] = entry
    return summary


def run(args, out=sys.stdout, signals=None):
    from nova_shadow_lab import stack as stack_lib
    from nova_shadow_lab import tempdirs
    from shadow_service.cmd import cli

    summary = {'config': os.path.abspath(args.config),
               'profile': args.profile, 'flavor': args.flavor}
    # What SIGKILLed labs left behind goes; this lab's directory is named
    # for this process, so that the next lab can tell when it is stale.
    tempdirs.sweep_stale()
    directory = args.directory or tempdirs.make()
    started = time.monotonic()
    lab = stack_lib.LabStack(args.config, directory,
                             transport_url=args.transport_url,
                             budget=args.budget,
                             min_run_time=args.min_run_time,
                             deadline_margin=args.deadline_margin)
    run_group = None
    try:
        with lab, _stopping_in_order(signals, out):
            cloud = lab.cloud
            run_group = cloud.run.group
            summary['startup_s'] = round(time.monotonic() - started, 1)
            summary['hosts'] = list(cloud.hosts)
            out.write('lab up in %.1f s: Nova (compute API %s) with %d lab '
                      'computes; shadow-service pid %d (openstack driver, '
                      'collector on 127.0.0.1); files in %s\n'
                      % (summary['startup_s'], cloud.compute_url,
                         len(cloud.hosts), lab.service.pid, directory))
            _hosts_table(cloud, out)
            if args.preflight:
                out.write('\npre-flight evaluation over RPC (as '
                          'nova-shadow evaluate --remote): profile %s, '
                          'flavor %s, hosts %s\n'
                          % (args.profile, args.flavor,
                             ','.join(cloud.hosts)))
                state = lab.evaluate(args.profile, args.flavor)
                summary['evaluation'] = state
                if state.get('ranking'):
                    cli.format_ranking(state['ranking'], out)
                else:
                    out.write('evaluation %s: %s\n'
                              % (state['status'], state.get('error')))
            client = args.client
            if client == 'auto':
                client = 'cli' if stack_lib.openstack_cli() else 'sdk'
            how = ('openstack server create --hint shadow_profile=%s '
                   '--flavor %s --image %s --nic none'
                   % (args.profile, args.flavor, cloud.image_id))
            if client == 'sdk':
                how = ('openstacksdk create_server(scheduler_hints='
                       '{"shadow_profile": "%s"}, flavor %s) (the '
                       'openstack command is not installed)'
                       % (args.profile, args.flavor))
            out.write('\nboot: %s\n' % how)
            server, used, took = lab.boot('lab-vm', args.profile,
                                          args.flavor,
                                          budget=args.budget,
                                          client=client)
            landed = server['OS-EXT-SRV-ATTR:host']
            summary['boot'] = {'server': server['id'], 'host': landed,
                               'client': used, 'seconds': round(took, 1)}
            out.write('VM %s ACTIVE on %s after %.1f s\n'
                      % (server['id'], landed, took))
            record = lab.evaluation_of(server['id'])
            summary['boot']['evaluation'] = record
            if record is None:
                out.write('why: no evaluation recorded for it (the '
                          'weigher fell back to neutral weights; Nova\'s '
                          'other weighers chose)\n')
            else:
                samples = _sample_summary(
                    lab.shadow_samples(record['evaluation_id']))
                summary['boot']['samples'] = samples
                first = record['hosts'][0]['host'] if record['hosts'] \
                    else None
                source = {
                    'shadows': 'measured by shadows booted on the '
                               'candidates',
                    'history': 'from the history alone (confident enough '
                               'without shadows)'}.get(record['source'],
                                                      record['source'])
                out.write('why: the scheduler asked shadow-service '
                          '(evaluation %s, %s); its ranking:\n'
                          % (record['evaluation_id'], source))
                cli.format_ranking(record, out)
                for host in sorted(samples):
                    out.write('  shadow on %-12s %4d samples through the '
                              'collector%s\n' % (
                                  host, samples[host]['samples'],
                                  ', mean cpu_ops_per_s %.0f'
                                  % samples[host]['mean_cpu_ops_per_s']
                                  if 'mean_cpu_ops_per_s' in samples[host]
                                  else ''))
                out.write('Nova placed it on %s, %s.\n' % (
                    landed, 'the host ranked first' if landed == first
                    else 'not the host ranked first (%s): Nova\'s other '
                         'weighers or its filters decided' % first))
            during = lab.leftovers(keep={server['id']})
            summary['leftovers_with_vm'] = during
            out.write('\nclean-up: shadows left while the VM runs: %d\n'
                      % len(during['shadows']))
            lab.delete_servers()
            after = lab.leftovers()
            summary['leftovers_after_delete'] = after
            out.write('after deleting the VM: %d shadows, %d instance '
                      'cgroups, %d instance processes\n'
                      % (len(after['shadows']), len(after['cgroups']),
                         len(after['processes'])))
        summary['service_exit_code'] = lab.service.process.returncode
        remaining = [d for d in run_group.dirs() if os.path.exists(d)]
        summary['lab_cgroups_after_stop'] = remaining
        out.write('lab stopped: shadow-service exit %s; %d lab cgroup '
                  'directories left; %.1f s in all\n'
                  % (summary['service_exit_code'], len(remaining),
                     time.monotonic() - started))
    finally:
        if args.summary:
            with open(args.summary, 'w', encoding='utf-8') as f:
                json.dump(summary, f, indent=1, sort_keys=True, default=str)
        if args.directory is None:
            import shutil

            shutil.rmtree(directory, ignore_errors=True)
    clean = not any(summary.get('leftovers_after_delete', {}).values()) \
        and not summary.get('lab_cgroups_after_stop')
    return 0 if clean else 1


@contextlib.contextmanager
def _stopping_in_order(signals, out=None):
    """However the body ends, the lab's clean-up that follows runs
    without being interrupted by signals (see :class:`ShutdownSignals`);
    says so on ``out``."""
    try:
        yield
    finally:
        if signals is not None:
            signals.shutting_down()
        if out is not None:
            out.write('\nstopping the lab\n')
            out.flush()


def exit_code(body, signals):
    """Run ``body()`` (returns an exit code) under ``signals`` (installed),
    restore them, and return the command's exit code: ``128 + signal``
    for the first SIGTERM or Ctrl-C, whether it unwound the body or came
    during the clean-up that followed (the lab's own stop at the end of
    its run included), else the body's. Says on stderr what ended it."""
    unwound = None
    try:
        code = body()
    except Terminated:
        unwound = signal.SIGTERM
    except KeyboardInterrupt:
        unwound = signal.SIGINT
    except Exception as e:
        sys.stderr.write('nova-shadow lab: %s: %s\n' % (type(e).__name__, e))
        code = 1
    finally:
        signals.restore()
    received = signals.first or unwound
    if received is None:
        return code
    sys.stderr.write('nova-shadow lab: %s%s; the lab was stopped\n' % (
        'terminated (SIGTERM)' if received == signal.SIGTERM
        else 'interrupted',
        '' if unwound else ' while it stopped'))
    return 128 + received


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    from nova_shadow_lab import runtime

    problems = runtime.environment_problems()
    if problems:
        sys.stderr.write('nova-shadow lab: the lab cannot run here: %s\n'
                         % '; '.join(problems))
        return 2
    from nova_shadow_lab import config as lab_config
    from nova_shadow_lab import stack

    try:
        lab_config.load_config(args.config)
    except (OSError, lab_config.LabConfigError) as e:
        sys.stderr.write('nova-shadow lab: %s\n' % e)
        return 2
    if not stack.broker_reachable(args.transport_url):
        sys.stderr.write('nova-shadow lab: no message broker at '
                         '--transport-url: the weigher and shadow-service '
                         'talk over it (tools/install-services.sh starts '
                         'RabbitMQ)\n')
        return 2
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        # Nova's first-start notices (no compute node record yet, thread
        # pool limits) and optional plugins it cannot load are expected in
        # a lab that lives for one run.
        for name in ('nova', 'stevedore', 'oslo_messaging'):
            logging.getLogger(name).setLevel(logging.ERROR + 1)
    signals = ShutdownSignals().install()
    return exit_code(lambda: run(args, signals=signals), signals)


if __name__ == '__main__':
    sys.exit(main())
