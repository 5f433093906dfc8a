"""The command line of ``nova-shadow demo``.

A module of its own, light to import: ``nova-shadow demo`` parses (and
refuses bad values, prints ``--help``) before the service, the twin and
statsmodels are imported by :mod:`shadow_service.demo`.
"""

import argparse
import os

from shadow_service import argtypes

FLAVORS = {
    'm1.small': {'name': 'm1.small', 'vcpus': 1, 'ram_mb': 2048,
                 'disk_gb': 20},
    'm1.medium': {'name': 'm1.medium', 'vcpus': 2, 'ram_mb': 4096,
                  'disk_gb': 40},
    'm1.large': {'name': 'm1.large', 'vcpus': 4, 'ram_mb': 8192,
                 'disk_gb': 80},
    'm1.xlarge': {'name': 'm1.xlarge', 'vcpus': 8, 'ram_mb': 16384,
                  'disk_gb': 160},
}

def _number(kind, check, wanted):
    """An argparse type: ``kind(text)`` that passes ``check``; otherwise
    an error saying what is ``wanted``."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not check(value):
            raise argparse.ArgumentTypeError('must be %s, got %r'
                                             % (wanted, text))
        return value
    return parse


_not_negative = _number(float, lambda v: v >= 0, 'a number >= 0')
_whole_hours = _number(int, lambda v: v >= 1, 'a whole number of hours >= 1')
_seed = _number(int, lambda v: v >= 0, 'a whole number >= 0')


def _report_file(text):
    """An argparse type: a path the report can be written to, checked
    before anything runs (the report is written at the end of the run).

    The path must not be a directory and its directory must exist; an
    existing file is opened for appending (not changed), a new one is
    created and removed again, so a file that cannot be written is
    refused now rather than after the simulated hours.  An empty path
    names no file: the report goes to a new file in the temporary
    directory.
    """
    if not text:
        return text
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(
            'must be a file to write the report to, got the directory %r'
            % text)
    directory = os.path.dirname(os.path.abspath(text))
    if not os.path.exists(directory):
        raise argparse.ArgumentTypeError(
            'cannot create %r: the directory %r does not exist'
            % (text, directory))
    if not os.path.isdir(directory):
        raise argparse.ArgumentTypeError(
            'cannot create %r: %r is not a directory' % (text, directory))
    existed = os.path.exists(text)
    try:
        with open(text, 'a' if existed else 'x'):
            pass
        if not existed:
            os.remove(text)
    except OSError as error:
        raise argparse.ArgumentTypeError(
            'cannot write the report to %r: %s'
            % (text, error.strerror or error)) from None
    return text


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='nova-shadow demo',
        description='Place one VM on the digital twin with shadows, watch '
        'it for simulated hours and write an HTML report.')
    parser.add_argument('--profile', default='db-oltp',
                        help='loadgen profile (default: db-oltp)')
    parser.add_argument('--flavor', default='m1.large',
                        choices=sorted(FLAVORS))
    parser.add_argument('--seed', type=_seed, default=0,
                        help='seed of the twin (default: 0)')
    parser.add_argument('--budget', type=argtypes.budget, default=60.0,
                        help='simulated seconds the shadows may run '
                        '(default: 60)')
    parser.add_argument('--hours', type=_whole_hours, default=24,
                        help='whole simulated hours the placed VM runs '
                        '(default: 24)')
    parser.add_argument('--speedup', type=_not_negative, default=30.0,
                        help='simulated seconds per wall-clock second '
                        'while the shadows run; 0: no waiting '
                        '(default: 30)')
    parser.add_argument('--out', type=_report_file,
                        help='HTML report path, a file in an existing '
                        'directory (default: a new file '
                        'nova-shadow-demo-<time>-<random>.html in the '
                        'temporary directory, one per run)')
    parser.add_argument('--wide', action='store_true',
                        help='print every reason of every host in the '
                        'terminal table (default: the reasons that fit one '
                        'line; the report always has all of them)')
    return parser.parse_args(argv)
