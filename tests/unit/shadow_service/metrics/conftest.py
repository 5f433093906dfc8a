"""Helpers for the metrics source tests: private configurations."""

from oslo_config import cfg

from shadow_service import conf as shadow_conf

#: Quick limits for tests: short timeout, one quick retry.
FAST = {'query_timeout_s': 2.0, 'query_retries': 1,
        'query_retry_backoff_s': 0.05}


def make_conf(config_file=None, **groups):
    """A private ConfigOpts with the service options registered, read from
    ``config_file`` if given, and ``{group: {option: value}}`` set as
    overrides."""
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf(['--config-file', str(config_file)] if config_file else [])
    groups.setdefault('metrics', {})
    for name, value in FAST.items():
        groups['metrics'].setdefault(name, value)
    for group, values in groups.items():
        for name, value in values.items():
            conf.set_override(name, value, group=group)
    return conf
