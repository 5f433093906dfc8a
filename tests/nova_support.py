"""Real Nova scheduler objects for tests: HostStates and RequestSpecs.

Builds ``nova.scheduler.host_manager.HostState`` objects from plain numbers
the way nova-scheduler does (``HostState.update`` with a ``ComputeNode``), so
tests drive the real ``HostWeightHandler`` without the whole harness.
"""

import contextlib
import uuid

from nova import objects
from nova.scheduler import host_manager

objects.register_all()

CELL_UUID = str(uuid.uuid4())


@contextlib.contextmanager
def api_database():
    """Nova's API database (SQLite) while the block runs: the weigher
    looks up there whether an instance is being booted or moved."""
    from nova.tests import fixtures as nova_fixtures
    fixture = nova_fixtures.Database(database='api')
    fixture.setUp()
    try:
        yield
    finally:
        fixture.cleanUp()


def host_state(host, *, vcpus=16, vcpus_used=0, memory_mb=65536,
               free_ram_mb=None, local_gb=1000, free_disk_gb=None,
               aggregates=None, num_instances=0):
    free_ram_mb = memory_mb if free_ram_mb is None else free_ram_mb
    free_disk_gb = local_gb if free_disk_gb is None else free_disk_gb
    compute = objects.ComputeNode(
        uuid=str(uuid.uuid4()), host=host, hypervisor_hostname=host,
        vcpus=vcpus, vcpus_used=vcpus_used, memory_mb=memory_mb,
        memory_mb_used=memory_mb - free_ram_mb, free_ram_mb=free_ram_mb,
        local_gb=local_gb, local_gb_used=local_gb - free_disk_gb,
        free_disk_gb=free_disk_gb, disk_available_least=free_disk_gb,
        hypervisor_type='fake', hypervisor_version=1, cpu_info='{}',
        host_ip='127.0.0.1', supported_hv_specs=[], metrics='[]',
        pci_device_pools=None, numa_topology=None, stats={},
        cpu_allocation_ratio=1.0, ram_allocation_ratio=1.0,
        disk_allocation_ratio=1.0, updated_at=None)
    state = host_manager.HostState(host, host, CELL_UUID)
    state.update(compute=compute, aggregates=aggregates or [],
                 service={'disabled': False})
    state.num_instances = num_instances
    return state


def request_spec(hints=None, vcpus=2, memory_mb=4096, root_gb=20):
    flavor = objects.Flavor(name='m1.test', vcpus=vcpus,
                            memory_mb=memory_mb, root_gb=root_gb,
                            ephemeral_gb=0, swap=0, extra_specs={})
    return objects.RequestSpec(
        scheduler_hints={k: [v] for k, v in (hints or {}).items()},
        instance_group=None, flavor=flavor,
        project_id='project-1', instance_uuid=str(uuid.uuid4()))


def aggregate(metadata, name='agg', id=1):
    return objects.Aggregate(id=id, name=name, hosts=[],
                             metadata=dict(metadata))
