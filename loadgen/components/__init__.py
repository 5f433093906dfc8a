"""Load components by profile name (``cpu``, ``memory``, ``disk``,
``network``). Add one by writing a ``base.Component`` subclass and listing
it in ``COMPONENT_CLASSES`` and in ``loadgen.profiles.SCHEMAS``."""

from loadgen.components.cpu import CPUComponent
from loadgen.components.disk import DiskComponent
from loadgen.components.memory import MemoryComponent
from loadgen.components.network import NetworkComponent

COMPONENT_CLASSES = {
    'cpu': CPUComponent,
    'memory': MemoryComponent,
    'disk': DiskComponent,
    'network': NetworkComponent,
}
