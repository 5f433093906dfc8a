"""``shadow-loadgen``: run a profile, serve the echo peer, list/validate.

Subcommands::

    shadow-loadgen run PROFILE [--duration S] [--warmup S] [--interval S]
                   [--scale F] [--sink URL ...] [--sink-token-file PATH]
                   [--sink-ca-file PATH] [--tag KEY=VALUE ...]
                   [--workdir DIR] [--summary-file PATH]
    shadow-loadgen serve [--bind 127.0.0.1] [--port 7777]
                   [--max-connections N]
    shadow-loadgen profiles [NAME]
    shadow-loadgen validate PROFILE [--scale F] [--workdir DIR]
                   [--no-machine-check]

PROFILE is a built-in name, a YAML/JSON file or inline JSON. ``run``
prints JSON-lines samples to stdout unless ``--sink`` says otherwise and
always ends with one ``{"summary": ...}`` line on stdout (or only to
``--summary-file`` when given). Exit codes: 0 done, 1 runtime failure,
2 bad input (nothing was started).
"""

import argparse
import json
import logging
import os
import signal
import sys
import threading

from loadgen import profiles
from loadgen.errors import ProfileError

LOG = logging.getLogger(__name__)
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
MAX_TOKEN_BYTES = 4096
DESCRIPTION = ('shadow-loadgen: run a profile, serve the echo peer, '
               'list/validate.')


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        sys.stderr.write('shadow-loadgen: error: %s\n' % message)
        sys.exit(EXIT_BAD_INPUT)


def _tag(text):
    key, sep, value = text.partition('=')
    if not sep or not key:
        raise argparse.ArgumentTypeError('expected KEY=VALUE, got %r' % text)
    return key, value


def build_parser():
    parser = _Parser(prog='shadow-loadgen', description=DESCRIPTION)
    parser.add_argument('--log-level', default='WARNING')
    sub = parser.add_subparsers(dest='command', required=True)
    run = sub.add_parser('run', help='run a profile')
    run.add_argument('profile')
    run.add_argument('--duration', type=float)
    run.add_argument('--warmup', type=float)
    run.add_argument('--interval', type=float)
    run.add_argument('--scale', type=float)
    run.add_argument('--sink', action='append', default=[],
                     help='where samples go (repeatable; every sample goes '
                          'to every sink): - (stdout), a file path or '
                          'file:///path (JSON lines), '
                          'http(s)://HOST:PORT/v1/samples (the collector), '
                          'console: or console:/dev/ttyS0 (console lines), '
                          'http://HOST:8086?db=NAME (InfluxDB 1.x)')
    run.add_argument('--sink-token-file', metavar='PATH',
                     help='file holding the bearer token for the '
                          'collector sink (required by it)')
    run.add_argument('--sink-ca-file', metavar='PATH',
                     help='CA bundle to verify an https collector with '
                          '(default: the system CAs)')
    run.add_argument('--tag', action='append', type=_tag, default=[],
                     help='evaluation=, shadow=, host=, ... (repeatable)')
    run.add_argument('--workdir',
                     help='where the disk component creates its nameless '
                          'file (default: the system temp directory)')
    run.add_argument('--summary-file')
    serve = sub.add_parser('serve', help='run the network echo peer')
    serve.add_argument('--bind', default='127.0.0.1')
    serve.add_argument('--port', type=int, default=7777)
    serve.add_argument('--max-connections', type=int, default=1024,
                       help='connections served at once; more are closed '
                            '(default: 1024)')
    listing = sub.add_parser('profiles', help='list or show built-ins')
    listing.add_argument('name', nargs='?')
    validate = sub.add_parser(
        'validate', help='check a profile, and that this machine can run '
                         'it (notes on stderr)')
    validate.add_argument('profile')
    validate.add_argument('--scale', type=float)
    validate.add_argument('--workdir',
                          help='where run would create the disk file')
    validate.add_argument('--no-machine-check', action='store_true',
                          help='check only the profile, not its fit on '
                               'this machine')
    return parser


def _overridden(spec, args):
    profile = profiles.load_profile(spec)
    data = profile.to_dict()
    for key, value in (('duration_s', args.duration),
                       ('warmup_s', args.warmup),
                       ('interval_s', args.interval)):
        if value is not None:
            data[key] = value
    if args.warmup is None and args.duration is not None:
        data['warmup_s'] = min(data['warmup_s'], args.duration / 4.0)
    if data['interval_s'] > data['duration_s']:
        data['interval_s'] = data['duration_s']
    profile = profiles.load_profile(data)
    if args.scale is not None:
        profile = profile.scaled(args.scale)
    return profile


def _write_summary(summary, path):
    """Write the summary line; False if it could not be written."""
    line = json.dumps({'summary': summary}, sort_keys=True)
    try:
        if path:
            with open(path, 'w', encoding='utf-8') as f:
                f.write(line + '\n')
        else:
            sys.stdout.write(line + '\n')
            sys.stdout.flush()
    except OSError as exc:
        sys.stderr.write('shadow-loadgen: cannot write the summary to %s: '
                         '%s\n' % (path or 'stdout', exc.strerror or exc))
        if not path:
            _stdout_to_devnull()
        return False
    return True


def _stdout_to_devnull():
    """Point a broken stdout at /dev/null, so the interpreter's last
    flush of what is still buffered cannot fail at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _note(text):
    sys.stderr.write('shadow-loadgen: note: %s\n' % text)


def _check_paths(args):
    if args.workdir is not None and not os.path.isdir(args.workdir):
        raise ProfileError('--workdir', 'not a directory: %s'
                           % args.workdir)
    path = args.summary_file
    if path:
        directory = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path) or not os.path.isdir(directory) or \
                not os.access(directory, os.W_OK):
            raise ProfileError('--summary-file', 'cannot write %s' % path)


def _machine_plan(profile, workdir):
    from loadgen import machine
    plan = machine.plan(profile, workdir)
    for text in plan.notes:
        _note(text)
    return plan


def _read_token(path, needed):
    """The collector token from ``--sink-token-file`` (never echoed)."""
    if path is None:
        if needed:
            raise ProfileError('--sink-token-file', 'required by the '
                               'collector sink')
        return None
    from loadgen import collector
    from loadgen import files
    token = files.read_text(path, '--sink-token-file',
                            MAX_TOKEN_BYTES).strip()
    try:
        collector.check_token(token)
    except ValueError:
        raise ProfileError('--sink-token-file', '%s must hold one token '
                           'of printable ASCII characters and no spaces'
                           % path) from None
    if os.stat(path).st_mode & 0o077:
        _note('--sink-token-file: %s can be read by other users' % path)
    return token


def _make_sinks(urls, token_file=None, ca_file=None):
    from loadgen import sinks
    token = _read_token(token_file, any(sinks.is_collector_url(url)
                                        for url in urls))
    if ca_file is not None and not os.path.isfile(ca_file):
        raise ProfileError('--sink-ca-file', 'no such file: %s' % ca_file)
    made = []
    try:
        for url in urls:
            made.append(sinks.make_sink(url, token=token, ca_file=ca_file))
    except (ValueError, OSError) as exc:
        for sink in made:
            sink.close()
        if isinstance(exc, OSError):
            raise ProfileError('--sink', 'cannot open %s: %s' % (
                url, exc.strerror or exc)) from None
        raise ProfileError('--sink', str(exc)) from None
    return made


def _cmd_run(args):
    from loadgen import runner
    profile = _overridden(args.profile, args)
    _check_paths(args)
    plan = _machine_plan(profile, args.workdir)
    sink_list = _make_sinks(args.sink or ['-'], args.sink_token_file,
                            args.sink_ca_file)
    run = runner.Runner(profile, sink_list, dict(args.tag), args.workdir,
                        plan=plan)
    run.install_signal_handlers()
    try:
        run.prepare()
    except (OSError, ProfileError) as exc:
        for sink in sink_list:
            sink.close()
        if isinstance(exc, ProfileError):
            raise
        sys.stderr.write('shadow-loadgen: cannot start: %s\n' % exc)
        return EXIT_FAILED
    summary = run.run()
    if not _write_summary(summary, args.summary_file):
        return EXIT_FAILED
    return EXIT_OK if not summary['dead_workers'] else EXIT_FAILED


def _cmd_serve(args):
    from loadgen import netserver
    if not 1 <= args.max_connections <= 65536:
        raise ProfileError('--max-connections', 'must be between 1 and '
                           '65536')
    server = netserver.EchoServer(args.bind, args.port,
                                  args.max_connections)

    def stop(signum, frame):
        # Ask serve_forever to return (shutdown() waits for it, so from
        # another thread). Raising here instead would land wherever the
        # server is, even inside a connection thread's start, which could
        # leave the process unable to exit.
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    host, port = server.server_address[:2]
    sys.stdout.write(json.dumps({'listening': '%s:%d' % (host, port)}) +
                     '\n')
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return EXIT_OK


def _cmd_profiles(args):
    if args.name:
        profile = profiles.load_profile(args.name)
        sys.stdout.write(json.dumps(profile.to_dict(), indent=2) + '\n')
        return EXIT_OK
    for name in profiles.BUILTIN_PROFILES:
        profile = profiles.load_profile(name)
        sys.stdout.write('%-10s %s\n' % (name, profile.description))
    return EXIT_OK


def _cmd_validate(args):
    profile = profiles.load_profile(args.profile)
    if args.scale is not None:
        profile = profile.scaled(args.scale)
    if args.no_machine_check:
        _note('machine not checked (--no-machine-check): whether this '
              'profile fits the memory, disk and CPUs of the machine that '
              'runs it is checked by run, there')
    else:
        if args.workdir is not None and not os.path.isdir(args.workdir):
            raise ProfileError('--workdir', 'not a directory: %s'
                               % args.workdir)
        _machine_plan(profile, args.workdir)
    sys.stdout.write(json.dumps(profile.to_dict(), sort_keys=True) + '\n')
    return EXIT_OK


_COMMANDS = {'run': _cmd_run, 'serve': _cmd_serve,
             'profiles': _cmd_profiles, 'validate': _cmd_validate}


def main(argv=None):
    """Entry point of ``shadow-loadgen``; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    logging.basicConfig(level=getattr(logging, args.log_level.upper(),
                                      logging.WARNING), stream=sys.stderr,
                        format='%(asctime)s %(levelname)s %(name)s: '
                               '%(message)s')
    try:
        return _COMMANDS[args.command](args)
    except ProfileError as exc:
        kind = 'option' if exc.field.startswith('--') else 'profile'
        sys.stderr.write('shadow-loadgen: invalid %s: %s\n' % (kind, exc))
        return EXIT_BAD_INPUT


if __name__ == '__main__':
    sys.exit(main())
