"""Which scheduling operation a request is: boot or one of the moves.

Scheduler hints stay in an instance's ``RequestSpec``, so a VM booted with
``shadow_profile`` brings the hint back when it is resized, migrated, live
migrated, evacuated, unshelved or rebuilt.  The weigher treats them
differently (see ``doc/source/weigher.rst``), and Nova does not tell a
weigher which operation it schedules, so :func:`operation_of` finds out:

``boot``
    the instance is not in a cell yet (its ``InstanceMapping`` has no cell).
``rebuild``
    the ``_nova_check_type`` hint Nova sets for a rebuild on the same host.
``unshelve``
    the instance is ``shelved_offloaded``.
``evacuate``, ``live-migrate``, ``migrate``, ``resize``
    the type of the instance's newest unfinished migration record.
``move``
    the instance exists but none of the above could be told.

Looking up costs one API-database query for a boot and up to three cell
database queries for a move; it runs only for requests that carry a
nova-shadow hint.  A failing look-up gives ``unknown``, which the weigher
treats like a move it may not delay.
"""

from nova import context as nova_context
from nova import exception as nova_exception
from nova import objects
from nova.compute import vm_states
from nova.scheduler import utils
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

BOOT = 'boot'
REBUILD = 'rebuild'
UNSHELVE = 'unshelve'
EVACUATE = 'evacuate'
LIVE_MIGRATE = 'live-migrate'
MIGRATE = 'migrate'
RESIZE = 'resize'
MOVE = 'move'
UNKNOWN = 'unknown'

MOVES = (RESIZE, MIGRATE, LIVE_MIGRATE, UNSHELVE, EVACUATE, MOVE, UNKNOWN)

_MIGRATION_TYPES = {'evacuation': EVACUATE, 'live-migration': LIVE_MIGRATE,
                    'migration': MIGRATE, 'resize': RESIZE}
# A migration record that is still being scheduled or running.
_UNFINISHED = ('accepted', 'pre-migrating', 'queued', 'preparing',
               'running', 'migrating', 'post-migrating')


def operation_of(spec_obj):
    """One of the names above for ``spec_obj``."""
    try:
        if utils.request_is_rebuild(spec_obj):
            return REBUILD
        instance_uuid = spec_obj.instance_uuid
    except Exception:
        LOG.warning('Could not tell which operation is being scheduled; '
                    'treating it as a move', exc_info=True)
        return UNKNOWN
    return operation_of_instance(instance_uuid)


def operation_of_instance(instance_uuid):
    """:func:`operation_of` for a request that is not a rebuild, from
    the instance's UUID alone (the database look-ups)."""
    try:
        ctxt = nova_context.get_admin_context()
        try:
            mapping = objects.InstanceMapping.get_by_instance_uuid(
                ctxt, instance_uuid)
        except nova_exception.InstanceMappingNotFound:
            return BOOT
        if mapping.cell_mapping is None:
            return BOOT
        with nova_context.target_cell(ctxt, mapping.cell_mapping) as cctxt:
            instance = objects.Instance.get_by_uuid(cctxt, instance_uuid,
                                                    expected_attrs=[])
            if instance.vm_state == vm_states.BUILDING:
                # Mapped to its cell by the conductor and not built yet:
                # the look-up ran after the boot's request (the weigher's
                # record of it); no move starts from this state.
                return BOOT
            if instance.vm_state == vm_states.SHELVED_OFFLOADED:
                return UNSHELVE
            migrations = objects.MigrationList.get_by_filters(
                cctxt, {'instance_uuid': instance_uuid,
                        'status': list(_UNFINISHED)})
        newest = sorted(migrations, key=lambda m: m.id)[-1:] \
            if migrations else []
        for migration in newest:
            return _MIGRATION_TYPES.get(migration.migration_type, MOVE)
        return MOVE
    except Exception:
        LOG.warning('Could not tell which operation is being scheduled; '
                    'treating it as a move', exc_info=True)
        return UNKNOWN
