"""``openstack shadow profile list|show``: the workload profiles the
service knows (built-in, and the operator's in ``[shadow]
profile_dirs``)."""

from osc_lib.command import command

from shadow_service.osc.v1 import common

SHOW_FIELDS = ('name', 'source', 'description', 'duration_s', 'warmup_s',
               'interval_s', 'scale', 'sensitivity', 'pattern',
               'components')


class ListProfile(command.Lister):
    """List the workload profiles a request may name."""

    auth_required = False

    def take_action(self, parsed_args):
        client = self.app.client_manager.shadow
        rows = client.call('list_profiles')
        return (('Name', 'Source', 'Description'),
                [(r['name'], r['source'], r['description']) for r in rows])


class ShowProfile(command.ShowOne):
    """Show a workload profile in loadgen's format."""

    auth_required = False

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('profile', metavar='<profile>',
                            help='profile name')
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.shadow
        spec = client.call('get_profile', parsed_args.profile)
        values = dict(spec)
        for key in ('sensitivity', 'pattern', 'components'):
            values[key] = common.MappingColumn(spec.get(key) or {})
        return SHOW_FIELDS, tuple(values.get(f) for f in SHOW_FIELDS)
