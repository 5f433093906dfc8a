"""The CloudDriver interface: how shadows are booted, found and removed.

Drivers are stevedore plugins in the ``nova_shadow.clouds`` namespace and are
chosen with ``[shadow] cloud_driver``: ``sim`` (the twin, the default) and
``openstack`` (a real cloud through openstacksdk).  Nothing outside
``shadow_service/clouds/`` sees a driver's own types: shadows cross the
boundary as :class:`Shadow` records and measurements as history points.
"""

import abc
import dataclasses


class CloudError(Exception):
    """The cloud refused or failed an operation on shadows."""


@dataclasses.dataclass
class Shadow:
    """A flavor-minimal copy of a requested VM running on one host."""

    shadow_id: str
    host: str
    evaluation_id: str
    created_at: float
    flavor: dict = dataclasses.field(default_factory=dict)
    status: str = 'ACTIVE'

    def to_dict(self):
        return dataclasses.asdict(self)


class CloudDriver(metaclass=abc.ABCMeta):
    """Boots and deletes shadows; reports the time base they run on.

    A driver writes nothing to the analyzer directly: the loadgen inside each
    shadow (or the twin on its behalf) writes ``shadow_sample`` points to the
    history store, where the evaluation reads them.
    """

    def __init__(self, conf, history):
        self.conf = conf
        self.history = history

    @abc.abstractmethod
    def boot_shadows(self, evaluation_id, request, hosts, profile):
        """Boot one shadow per host in ``hosts`` for ``request`` running
        ``profile`` (a loadgen profile dict, already scaled to the shadow).
        Returns the list of :class:`Shadow` that did boot; hosts that failed
        are left out and logged."""

    @abc.abstractmethod
    def delete_shadows(self, shadows):
        """Delete ``shadows``; must not raise for ones already gone."""

    @abc.abstractmethod
    def list_shadows(self):
        """Every shadow this driver's cloud still holds (for start-up GC)."""

    @abc.abstractmethod
    def now(self):
        """The current time on the clock the shadows' samples use."""

    @abc.abstractmethod
    def wait(self, seconds):
        """Let the shadows run for ``seconds`` on that clock."""

    def host_features(self, hosts):
        """Host features a real deployment could measure
        (``{host: {feature: value}}``); empty when unknown."""
        return {}
