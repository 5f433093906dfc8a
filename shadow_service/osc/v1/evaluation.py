"""``openstack shadow evaluate`` and ``openstack shadow evaluation
show|list|delete``."""

import logging
import sys
import time

from osc_lib import exceptions
from osc_lib.command import command

from shadow_service import argtypes
from shadow_service import logsafe
from shadow_service import rpcapi
from shadow_service.osc import client as client_lib
from shadow_service.osc.v1 import common

LOG = logging.getLogger(__name__)

#: Seconds between two looks at a running evaluation with ``--wait``.
POLL_INTERVAL_S = 0.5
#: Seconds ``--wait`` waits past the budget before giving up.
WAIT_SLACK_S = 60.0
RUNNING = ('pending', 'running')
#: What ``list_evaluations`` answers as an evaluation's status.
STATUSES = RUNNING + ('finished', 'cancelled', 'error', 'interrupted')

SHOW_FIELDS = ('id', 'status', 'progress', 'confidence', 'source',
               'duration_s', 'shadow_host_seconds', 'best_host', 'ranking',
               'error', 'hint', 'started_at', 'finished_at')


def _show(state):
    """``(fields, values)`` of an evaluation's state (``get_evaluation``)."""
    ranking = state.get('ranking') or {}
    hosts = ranking.get('hosts') or []
    evaluation_id = state.get('evaluation_id')
    values = {
        'id': evaluation_id,
        'status': state.get('status'),
        'progress': state.get('progress'),
        'confidence': ranking.get('confidence'),
        'source': ranking.get('source'),
        'duration_s': ranking.get('duration_s'),
        'shadow_host_seconds': ranking.get('shadow_host_seconds'),
        'best_host': hosts[0]['host'] if hosts else None,
        'ranking': common.RankingColumn(hosts),
        'error': state.get('error'),
        'hint': 'shadow_evaluation=%s' % evaluation_id,
        'started_at': common.timestamp(state.get('started_at')),
        'finished_at': common.timestamp(state.get('finished_at')),
    }
    return SHOW_FIELDS, tuple(values[f] for f in SHOW_FIELDS)


def _progress_enabled(choice, stream):
    if choice == 'auto':
        return stream.isatty()
    return choice == 'always'


def wait_for(client, evaluation_id, budget_s, bar):
    """Poll until the evaluation ends, drawing ``bar``; its last state.

    A look the service does not answer (it is restarting, or the answer
    was lost with the service that took the question) is asked again
    until the wait's deadline: one unanswered look does not end a wait.
    """
    started = time.monotonic()
    deadline = started + budget_s + WAIT_SLACK_S
    try:
        while True:
            looked_at = time.monotonic()
            try:
                state = client.call('get_evaluation', evaluation_id)
            except client_lib.NoAnswer as e:
                if time.monotonic() > deadline:
                    raise
                LOG.warning('%s; asking again', e)
                # At most one look per wait: a look refused at once (the
                # broker gone, earlier looks still without an answer) is
                # no busy loop.
                time.sleep(max(0.0, min(
                    client.timeout - (time.monotonic() - looked_at),
                    deadline - time.monotonic())))
                continue
            bar.draw(state.get('progress') or 0.0,
                     time.monotonic() - started, state.get('status'))
            if state.get('status') not in RUNNING:
                return state
            if time.monotonic() > deadline:
                raise exceptions.CommandError(
                    'evaluation %s still %s after %.0f s; see "openstack '
                    'shadow evaluation show %s"'
                    % (evaluation_id, state.get('status'),
                       time.monotonic() - started, evaluation_id))
            time.sleep(POLL_INTERVAL_S)
    finally:
        bar.close()


class EvaluateShadow(command.ShowOne):
    """Rank candidate hosts for a VM by measuring shadow copies of it.

    Starts an evaluation on shadow-service and prints its id; boot the VM
    with ``--hint shadow_evaluation=<id>`` to have the scheduler use the
    ranking.  With ``--wait`` it waits for the ranking (a progress bar on
    stderr while the shadows run).
    """

    auth_required = False

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--host', metavar='<host>', dest='hosts', action='append',
            required=True,
            help='candidate compute host (repeat for each host)')
        parser.add_argument(
            '--profile', metavar='<profile>', default='web',
            help='workload profile: see "openstack shadow profile list" '
                 '(default: web)')
        parser.add_argument(
            '--vcpus', metavar='<count>', type=argtypes.vcpus, default=4,
            help='vCPUs of the VM to place (default: 4)')
        parser.add_argument(
            '--ram-mb', metavar='<size-mb>', type=argtypes.ram_mb,
            default=8192,
            help='RAM of the VM in MB (default: 8192)')
        parser.add_argument(
            '--disk-gb', metavar='<size-gb>', type=argtypes.disk_gb,
            default=40,
            help='root disk of the VM in GB (default: 40)')
        parser.add_argument(
            '--image', metavar='<image-id>',
            help='image id of the VM (shadows boot from it unless the '
                 'service sets [openstack] image)')
        parser.add_argument(
            '--budget', metavar='<seconds>', type=argtypes.budget,
            default=30.0,
            help='seconds the evaluation may run (default: 30; the '
                 'service caps it at [shadow] max_budget)')
        parser.add_argument(
            '--wait', action='store_true',
            help='wait for the ranking and show it')
        parser.add_argument(
            '--progress', choices=('auto', 'always', 'never'),
            default=None,
            help='with --wait, a progress bar on stderr (auto: when '
                 'stderr is a terminal; the default); refused without '
                 '--wait')
        # take_action refuses an option it would ignore as argparse
        # refuses a bad one.
        self._parser = parser
        return parser

    def take_action(self, parsed_args):
        from nova_shadow_filter import request as request_lib
        from shadow_service.cmd import cli

        if parsed_args.progress is not None and not parsed_args.wait:
            # Without --wait nothing is drawn: before the broker is
            # asked anything, exit 2 with the usage.
            self._parser.error(
                'argument --progress: only applies with --wait (the '
                'progress of an evaluation started without it: '
                '"openstack shadow evaluation show <id>")')
        client = self.app.client_manager.shadow
        request = request_lib.build_request(
            {'name': 'openstack-shadow-evaluate',
             'vcpus': parsed_args.vcpus, 'ram_mb': parsed_args.ram_mb,
             'disk_gb': parsed_args.disk_gb}, parsed_args.profile,
            image_id=parsed_args.image)
        hosts = [{'host': h.strip()} for h in parsed_args.hosts
                 if h.strip()]
        # Without --wait nothing polls it: it runs for a later
        # shadow_evaluation hint, not cancelled as abandoned.
        evaluation_id = client.call('start_evaluation', request, hosts,
                                    parsed_args.budget,
                                    detached=not parsed_args.wait)
        LOG.info('evaluation %s started', evaluation_id)
        if not parsed_args.wait:
            return _show(client.call('get_evaluation', evaluation_id))
        stream = sys.stderr
        bar = cli.ProgressBar(stream, _progress_enabled(
            parsed_args.progress or 'auto', stream))
        state = wait_for(client, evaluation_id, parsed_args.budget, bar)
        if state.get('status') == 'error' or not state.get('ranking'):
            # Failed, or interrupted (its service stopped): no ranking
            # to show, and not a success (as ``nova-shadow evaluate
            # --remote --wait`` says it).
            raise exceptions.CommandError(
                'evaluation %s ended %s: %s'
                % (evaluation_id, state.get('status'),
                   state.get('error') or 'no ranking'))
        return _show(state)


class ShowEvaluation(command.ShowOne):
    """Show an evaluation: its status, progress and ranking."""

    auth_required = False

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('evaluation', metavar='<evaluation-id>',
                            help='evaluation to show')
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.shadow
        return _show(client.call('get_evaluation', parsed_args.evaluation))


class ListEvaluation(command.Lister):
    """List the evaluations of a recent period, newest first."""

    auth_required = False

    COLUMNS = (('evaluation_id', 'ID'), ('status', 'Status'),
               ('profile', 'Profile'), ('vcpus', 'vCPUs'),
               ('hosts', 'Hosts'), ('best_host', 'Best Host'),
               ('best_score', 'Best Score'), ('confidence', 'Confidence'),
               ('source', 'Source'),
               ('shadow_host_seconds', 'Shadow-host Seconds'),
               ('at', 'At'))

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--since', metavar='<duration>', type=common.duration,
            default='1d',
            help='how far back: seconds, or a number with s, m, h or d '
                 '(default: 1d)')
        parser.add_argument(
            '--status', metavar='<status>',
            choices=STATUSES,
            help='only evaluations in this status (interrupted: its '
                 'service stopped before it finished)')
        parser.add_argument(
            '--limit', metavar='<count>', type=common.limit,
            default=None, help='at most this many evaluations (from 1 to %d)'
            % rpcapi.MAX_LIMIT)
        return parser

    def take_action(self, parsed_args):
        # Checked by the parser (common.duration, common.limit).
        since_s, limit = parsed_args.since, parsed_args.limit
        client = self.app.client_manager.shadow
        rows = client.call('list_evaluations', since_s=since_s,
                           limit=limit, status=parsed_args.status)
        keys = [key for key, _title in self.COLUMNS]
        data = []
        for row in rows:
            row = dict(row, at=common.timestamp(row.get('at')))
            data.append(tuple(row.get(key) for key in keys))
        return [title for _key, title in self.COLUMNS], data


class DeleteEvaluation(command.Command):
    """Delete evaluations: cancel them if they run (their shadows are
    deleted) and forget them, so that a ``shadow_evaluation`` hint naming
    them is ignored."""

    auth_required = False

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('evaluations', metavar='<evaluation-id>',
                            nargs='+', help='evaluation(s) to delete')
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.shadow
        failed = 0
        for evaluation_id in parsed_args.evaluations:
            try:
                client.call('delete_evaluation', evaluation_id)
            except exceptions.CommandError as e:
                failed += 1
                LOG.error('Failed to delete evaluation %s: %s',
                          logsafe.clip(evaluation_id),
                          ' '.join(str(e).split()))
        if failed:
            raise exceptions.CommandError(
                '%d of %d evaluations failed to delete'
                % (failed, len(parsed_args.evaluations)))
