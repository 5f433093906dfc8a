"""``openstack shadow decision list``: the watcher's decision records
(what it decided for which VM, on what, and what came of it)."""

from osc_lib.command import command

from shadow_service import rpcapi
from shadow_service.osc.v1 import common

ACTIONS = ('resize_up', 'resize_down', 'live_migrate', 'scale_out',
           'scale_in')
OUTCOMES = ('dry_run', 'suppressed', 'started', 'done', 'failed')


def _why(record):
    """The reason of a decision, or the limit that suppressed it."""
    if record.get('guard'):
        return 'suppressed: %s' % record['guard']
    decision = record.get('decision') or {}
    return decision.get('reason') or record.get('detail')


def _target(record):
    flavor = record.get('target_flavor') or {}
    return (flavor.get('name') or record.get('target_host')
            or ', '.join(record.get('siblings') or []) or None)


class ListDecision(command.Lister):
    """List the watcher's decisions of a recent period, newest first.

    Every decision other than "do nothing" has a record; an action that
    started has a second one (outcome done or failed) when it ends.
    """

    auth_required = False

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--since', metavar='<duration>', type=common.duration,
            default='1d',
            help='how far back: seconds, or a number with s, m, h or d '
                 '(default: 1d)')
        parser.add_argument('--instance', metavar='<server-id>',
                            help='only the decisions about this server')
        parser.add_argument('--action', choices=ACTIONS,
                            help='only this kind of action')
        parser.add_argument('--outcome', choices=OUTCOMES,
                            help='only this outcome')
        parser.add_argument('--limit', metavar='<count>',
                            type=common.limit,
                            help='at most this many records (from 1 to %d)'
                            % rpcapi.MAX_LIMIT)
        parser.add_argument('--long', action='store_true',
                            help='also the policy and the decision id')
        return parser

    def take_action(self, parsed_args):
        # Checked by the parser (common.duration, common.limit).
        since_s, limit = parsed_args.since, parsed_args.limit
        client = self.app.client_manager.shadow
        records = client.call(
            'list_decisions', since_s=since_s,
            instance=parsed_args.instance, action=parsed_args.action,
            outcome=parsed_args.outcome, limit=limit)
        titles = ['At', 'Instance', 'Action', 'Outcome', 'Target', 'Why']
        if parsed_args.long:
            titles += ['Policy', 'Dry Run', 'Decision ID']
        data = []
        for record in records:
            row = [common.timestamp(record.get('at')),
                   record.get('instance'), record.get('action'),
                   record.get('outcome'), _target(record), _why(record)]
            if parsed_args.long:
                row += [record.get('policy'), record.get('dry_run'),
                        record.get('decision_id')]
            data.append(tuple(row))
        return titles, data
