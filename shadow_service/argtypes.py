"""``argparse`` types of the numbers the commands put into an evaluation
request: ``--budget``, ``--vcpus``, ``--ram-mb`` and ``--disk-gb`` of
``nova-shadow evaluate``, ``openstack shadow evaluate`` (and the demo's
``--budget``).

Their bounds are read from the service's own request schema
(:mod:`shadow_service.schema`), the one place they are set: a value the
service would refuse is refused while the command line is parsed, as a
usage error naming the flag (exit 2), before a twin is built or the
broker is asked anything.  The schema is imported when a value is
checked, not with this module (the ``nova-shadow`` command imports its
libraries only where a command needs them).
"""

import argparse
import math


def _refuse(wanted, text):
    raise argparse.ArgumentTypeError('must be %s, got %r' % (wanted, text))


def budget(text):
    """Seconds an evaluation may run: above the schema's exclusive
    minimum (0), at most its maximum; finite."""
    from shadow_service import schema

    low = schema.BUDGET['exclusiveMinimum']
    high = schema.BUDGET['maximum']
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and low < value <= high):
        _refuse('a number of seconds above %g and at most %g' % (low, high),
                text)
    return value


def _flavor_bounds(field):
    """``(lowest, highest)`` the service takes for the flavor's
    ``field`` from a request these commands build."""
    from shadow_service import schema

    bounds = schema.FLAVOR['properties'][field]
    return bounds['minimum'], bounds['maximum']


def _whole(field):
    """The type of the flavor's ``field``: a whole number within the
    service's bounds."""
    def parse(text):
        low, high = _flavor_bounds(field)
        try:
            value = int(text)
        except (TypeError, ValueError):
            value = None
        if value is None or not low <= value <= high:
            _refuse('a whole number from %d to %d' % (low, high), text)
        return value
    parse.__name__ = field
    return parse


vcpus = _whole('vcpus')
ram_mb = _whole('ram_mb')
disk_gb = _whole('disk_gb')
