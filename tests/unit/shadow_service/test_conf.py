from oslo_config import cfg

from shadow_service import conf as shadow_conf


def _conf():
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf([])
    return conf


def test_overrides_do_not_leak_between_private_configs():
    first, second = _conf(), _conf()
    first.set_override('cluster_file', '/tmp/a.yaml', group='sim')
    first.set_override('topic', 'elsewhere', group='shadow')
    assert second.sim.cluster_file is None
    assert second.shadow.topic == 'shadow'
    assert first.shadow.topic == 'elsewhere'


def test_every_group_has_help_for_every_option():
    for group, opts in shadow_conf.list_opts():
        assert group.help, group.name
        for opt in opts:
            assert opt.help and len(opt.help.strip()) > 20, (
                '%s.%s has no real help text' % (group.name, opt.name))
