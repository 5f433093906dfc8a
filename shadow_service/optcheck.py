"""Checking option values before they are used.

oslo.config checks a value (type, min, max, choices) only when it is
read, and its bounds let NaN through.  A daemon or a plugin reads its
options here once, at start, and says which one cannot work; read later,
a bad value would fail the request that reads it.  This module imports
only oslo.config: the weigher inside nova-scheduler uses it too.
"""

import math

from oslo_config import cfg


def problem(namespace, names, where):
    """The first of ``names`` (options of ``namespace``, a ConfigOpts or
    one of its groups) whose value cannot be used, as ``'<where(name)>:
    <why>'``; None when every value can.  A float must be finite."""
    for name in names:
        try:
            value = getattr(namespace, name)
        except (cfg.ConfigFileValueError, ValueError) as e:
            return '%s: %s' % (where(name),
                               str(e).split('is not valid: ', 1)[-1])
        if isinstance(value, float) and not math.isfinite(value):
            return '%s: %s is not a finite number' % (where(name), value)
    return None
