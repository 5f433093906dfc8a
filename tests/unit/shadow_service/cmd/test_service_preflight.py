"""``shadow-service`` checks, before any worker forks, what a worker
would refuse: the manager then never sees a worker exit."""

import pytest
from oslo_config import cfg

from shadow_service import conf as shadow_conf
from shadow_service.cmd import service


@pytest.fixture
def conf():
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf([], project='nova-shadow')
    return conf


def test_unknown_drift_metric_is_refused_before_a_worker_forks(conf):
    conf.set_override('age_drift_per_metric', {'disk_latency': 0.2},
                      group='analysis')
    with pytest.raises(ValueError, match=r'\[analysis\] '
                       r'age_drift_per_metric: unknown metric disk_latency'):
        service._preflight(conf)
