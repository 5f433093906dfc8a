"""Registering option groups on any ConfigOpts without sharing state.

``ConfigOpts.register_group`` keeps a shallow copy of the ``OptGroup`` it is
given, so two ConfigOpts that register the same module-level group share
its option table, and an override set on one shows on the other.  Library
code here takes private ConfigOpts objects, so every group is registered as
a fresh ``OptGroup``.
"""

from oslo_config import cfg


def register_group_opts(conf, group, opts):
    """Register ``opts`` in a private copy of ``group`` on ``conf``."""
    fresh = cfg.OptGroup(name=group.name, title=group.title,
                         help=group.help)
    conf.register_group(fresh)
    conf.register_opts(opts, group=fresh.name)
