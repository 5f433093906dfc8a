"""Entry point for oslo-config-generator (``tox -e genconfig``)."""

from shadow_service import conf


def list_opts():
    return [(group.name, opts) for group, opts in conf.list_opts()]
