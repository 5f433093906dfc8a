"""The flavor ladder a watched VM is resized along.

A ladder is an ordered list of flavors (``[watcher] flavor_ladder``,
entries ``name:vcpus:ram_mb[:disk_gb]``); the watcher only ever resizes a
VM to another rung of it, never past its ends.  :func:`parse` reads the
option; :class:`Ladder` finds a VM's rung and the rung that gives a wanted
capacity.  Change the ladder in the configuration, not here.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Rung:
    """One flavor of the ladder."""

    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int = 0

    def to_flavor(self):
        return {'name': self.name, 'vcpus': self.vcpus,
                'ram_mb': self.ram_mb, 'disk_gb': self.disk_gb}


def _parse_entry(entry, index):
    field = 'flavor_ladder[%d]' % index
    parts = str(entry).split(':')
    if len(parts) not in (3, 4) or not parts[0]:
        raise ValueError('%s: %r is not name:vcpus:ram_mb[:disk_gb]'
                         % (field, entry))
    numbers = []
    for label, text in zip(('vcpus', 'ram_mb', 'disk_gb'), parts[1:]):
        try:
            value = int(text)
        except ValueError:
            raise ValueError('%s: %s %r is not a whole number'
                             % (field, label, text)) from None
        if value < (1 if label != 'disk_gb' else 0):
            raise ValueError('%s: %s must be positive, got %d'
                             % (field, label, value))
        numbers.append(value)
    return Rung(parts[0], *numbers)


def parse(entries):
    """A :class:`Ladder` from ``name:vcpus:ram_mb[:disk_gb]`` strings.

    Raises
    ------
    ValueError
        naming the entry that is malformed, or when names repeat, the
        vCPUs do not grow along the ladder or its RAM falls.
    """
    rungs = [_parse_entry(e, i) for i, e in enumerate(entries or [])]
    names = [r.name for r in rungs]
    if len(set(names)) != len(names):
        raise ValueError('flavor_ladder: a flavor name appears twice')
    for low, high in zip(rungs, rungs[1:]):
        if high.vcpus <= low.vcpus:
            raise ValueError('flavor_ladder: %s (%d vCPUs) must have more '
                             'vCPUs than %s (%d) before it'
                             % (high.name, high.vcpus, low.name, low.vcpus))
        if high.ram_mb < low.ram_mb:
            raise ValueError('flavor_ladder: %s (%d MB of RAM) must have '
                             'at least the RAM of %s (%d MB) before it: a '
                             'growth would take memory away'
                             % (high.name, high.ram_mb, low.name,
                                low.ram_mb))
    return Ladder(rungs)


class Ladder:
    """Rungs ordered by vCPUs (smallest first)."""

    def __init__(self, rungs):
        self.rungs = list(rungs)

    def __len__(self):
        return len(self.rungs)

    def disk_warning(self):
        """Why some VMs cannot shrink along this ladder, or None: Nova
        refuses to shrink the root disk of a VM booted from an image, so
        the watcher shrinks such a VM only to rungs whose disk holds its
        own."""
        disks = sorted({rung.disk_gb for rung in self.rungs})
        if len(disks) < 2:
            return None
        return ("flavor_ladder: the rungs' root disks differ (%s GB): Nova "
                'refuses to shrink the root disk of a VM booted from an '
                'image, so such a VM is shrunk only to rungs whose disk '
                'holds its own (VMs booted from a volume are not limited); '
                'give every rung the same disk_gb to let every VM shrink'
                % ', '.join(str(d) for d in disks))

    def __bool__(self):
        return bool(self.rungs)

    def index_of(self, flavor):
        """The rung of ``flavor`` (a flavor dict): the rung of its name,
        else the one with exactly its vCPUs and RAM (Nova shows no name
        while a resize is under way); None when it is on no rung, so a
        VM of a flavor the ladder does not list is never resized."""
        flavor = flavor or {}
        name = flavor.get('name')
        for i, rung in enumerate(self.rungs):
            if name and rung.name == name:
                return i
        vcpus = int(flavor.get('vcpus') or 0)
        ram = int(flavor.get('ram_mb') or 0)
        for i, rung in enumerate(self.rungs):
            if rung.vcpus == vcpus and rung.ram_mb == ram:
                return i
        return None

    def clamp(self, index):
        return max(0, min(len(self.rungs) - 1, int(index)))

    def rung_for(self, vcpus_needed):
        """Index of the smallest rung with at least ``vcpus_needed``
        vCPUs (the top rung when none has)."""
        for i, rung in enumerate(self.rungs):
            if rung.vcpus >= vcpus_needed:
                return i
        return len(self.rungs) - 1

    def capacity(self, index):
        return self.rungs[index].vcpus
