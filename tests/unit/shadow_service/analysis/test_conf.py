import pytest
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


def _analysis_conf(**overrides):
    conf = cfg.ConfigOpts()
    analysis_conf.register_opts(conf)
    service_conf.register_opts(conf)
    conf([], default_config_files=[])
    for name, value in overrides.items():
        conf.set_override(name, value, group="analysis")
    return conf


def test_age_drift_per_metric_ages_its_metrics_until_learned():
    from shadow_service.learners import drift as drift_mod
    conf = _analysis_conf(age_drift_per_metric="disk_p95_latency_ms:0.17")
    analyzer = analyzer_lib.Analyzer.from_conf(conf)
    assert analyzer.drift_of("disk_p95_latency_ms") == 0.17
    # Metrics not named keep age_drift_per_sqrt_hour.
    assert analyzer.drift_of("disk_iops") == 0.05
    # A learner short of pairs of disk latency leaves the named figure in
    # place of the global one ...
    short = analyzer.with_age_drift(
        drift_mod.AgeDrift(by_metric={"cpu_ops_per_s": 0.01}))
    assert short.drift_of("disk_p95_latency_ms") == 0.17
    assert short.drift_of("cpu_ops_per_s") == 0.01
    # ... and its own learned figure, once it has the pairs, wins.
    learned = analyzer.with_age_drift(
        drift_mod.AgeDrift(by_metric={"disk_p95_latency_ms": 0.25}))
    assert learned.drift_of("disk_p95_latency_ms") == 0.25


@pytest.mark.parametrize("value", ["disk_iops:1.5", "disk_iops:fast"])
def test_age_drift_per_metric_rejects_figures_outside_zero_to_one(
        value, tmp_path):
    # As an operator writes it: in the configuration file.
    path = tmp_path / "shadow.conf"
    path.write_text("[analysis]\nage_drift_per_metric = %s\n" % value)
    conf = cfg.ConfigOpts()
    analysis_conf.register_opts(conf)
    service_conf.register_opts(conf)
    conf(["--config-file", str(path)], default_config_files=[])
    with pytest.raises(ValueError, match="age_drift_per_metric"):
        analyzer_lib.Analyzer.from_conf(conf)


def test_age_drift_per_metric_refuses_a_metric_it_does_not_know():
    # A misspelt name would otherwise age nothing, silently.
    conf = _analysis_conf(age_drift_per_metric="disk_latency:0.2")
    with pytest.raises(ValueError, match="unknown metric disk_latency"):
        analyzer_lib.Analyzer.from_conf(conf)
