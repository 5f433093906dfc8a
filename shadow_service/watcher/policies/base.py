"""The ScalingPolicy interface of the watcher.

Policies are stevedore plugins in the ``nova_shadow.policies`` namespace.  A
policy is pure: it looks at a watched instance's forecast and its limits and
returns a :class:`Decision`; the watcher's actuator carries it out (or, in
dry-run, only records it) after cooldown and rate limits.
"""

import abc
import dataclasses

ACTIONS = ('none', 'resize_up', 'resize_down', 'live_migrate',
           'scale_out', 'scale_in')


@dataclasses.dataclass
class Decision:
    """What a policy wants done, and why."""

    action: str
    reason: str
    metric: str = ''
    predicted: float = 0.0
    threshold: float = 0.0

    def __post_init__(self):
        if self.action not in ACTIONS:
            raise ValueError('unknown action %r (one of %s)'
                             % (self.action, ', '.join(ACTIONS)))

    def to_dict(self):
        return dataclasses.asdict(self)


class ScalingPolicy(metaclass=abc.ABCMeta):
    """Decides on one watched instance from its forecasts."""

    @abc.abstractmethod
    def decide(self, forecasts, limits):
        """``forecasts``: ``{metric: upper-bound values over the horizon}``;
        ``limits``: ``{metric: (low, high)}`` utilisation bounds.
        Returns a :class:`Decision`."""
