"""How long a command waits for each answer of ``shadow-service``: the
``openstack`` plugin's ``--os-shadow-rpc-wait`` and ``nova-shadow
--rpc-wait`` (standard library only: the ``openstack`` command imports
its plugin at every start)."""

import argparse
import math

#: Seconds a command waits for each answer by default.
DEFAULT_S = 30.0
#: Longest wait for one answer the options take.
MAX_S = 3600.0
#: Seconds past the wait before a command stops waiting itself: a call
#: whose broker cannot be reached never returns by itself.
DEADLINE_SLACK_S = 5.0


def seconds(text):
    """An ``argparse`` type: a number of seconds above 0, at most
    :data:`MAX_S` (NaN, infinite or negative waits made the messaging
    library fail with messages that named no option)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_S):
        raise argparse.ArgumentTypeError(
            'must be a number of seconds above 0 and at most %g, got %r'
            % (MAX_S, text))
    return value
