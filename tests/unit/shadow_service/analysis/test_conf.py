from oslo_config import cfg

from shadow_service.analysis import analyzer as analyzer_lib
from shadow_service.conf import analysis as analysis_conf
from shadow_service.conf import service as service_conf


def test_analyzer_is_built_from_the_analysis_group():
    conf = cfg.ConfigOpts()
    analysis_conf.register_opts(conf)
    service_conf.register_opts(conf)
    conf([], default_config_files=[])
    conf.set_override("metric_weights", {"cpu_steal_pct": "2"},
                      group="analysis")
    conf.set_override("confidence_target", 0.9, group="shadow")
    analyzer = analyzer_lib.Analyzer.from_conf(conf)
    assert analyzer.metric_weights == {"cpu_steal_pct": 2.0}
    assert analyzer.confidence_target == 0.9
    assert analyzer.default_forecaster == "auto"
    groups = analysis_conf.list_opts()
    assert [g.name for g in groups] == ["analysis"]
