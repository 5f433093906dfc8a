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


def _conf_file(tmp_path, text):
    path = tmp_path / 'shadow-service.conf'
    path.write_text('[history]\nsqlite_path = %s\n%s'
                    % (tmp_path / 'history.sqlite', text))
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf([], project='nova-shadow', default_config_files=[str(path)])
    return conf, path


@pytest.mark.parametrize('url, shown, why', [
    ('rabbit//guest:s3cret@ctl/', 'rabbit//guest:***@ctl/',
     'it has no driver name before "://"'),
    ('nosuch://guest:s3cret@ctl/', 'nosuch://guest:***@ctl/',
     'there is no message driver named nosuch (installed: '),
    ('rabbit://guest:s3cret@ctl:notaport/',
     'rabbit://guest:***@ctl:notaport/', 'a port is not a number'),
    ('rabbit://guest:s3cret@ctl:99999/', 'rabbit://guest:***@ctl:99999/',
     'port 99999 is not from 1 to 65535'),
], ids=['no-scheme', 'driver', 'port-word', 'port-range'])
def test_a_bad_notification_transport_url_is_refused_before_a_fork(
        tmp_path, url, shown, why):
    # Before: the preflight passed and the worker failed on
    # oslo.messaging's own "No scheme specified" (or "invalid literal
    # for int()"), naming neither the option nor the URL.
    conf, path = _conf_file(
        tmp_path, '[nova_notifications]\ntransport_url = %s\n' % url)
    with pytest.raises(service.StartupError) as info:
        service._preflight(conf)
    text = str(info.value)
    assert text.startswith(
        '[nova_notifications] transport_url (in %s) %s cannot be used: '
        % (path, shown)), text
    assert why in text
    assert text.endswith(
        '; a valid one looks like rabbit://user:pass@host:port/vhost')
    assert 's3cret' not in text


def test_kafka_carries_notifications_but_needs_its_client_library(tmp_path):
    # kafka:// is refused as an RPC transport_url; for notifications it
    # is a transport oslo.messaging has, if confluent_kafka is installed.
    conf, _path = _conf_file(
        tmp_path, '[nova_notifications]\n'
        'transport_url = kafka://guest:s3cret@ctl:9092/\n')
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        with pytest.raises(service.StartupError,
                           match='the kafka driver needs the Python module '
                                 'confluent_kafka, which is not installed'):
            service._preflight(conf)
    else:
        assert service._preflight(conf) is None


@pytest.mark.parametrize('text', [
    '[nova_notifications]\ntransport_url = rabbit://guest:guest@ctl:5672/\n',
    # Not listening: the URL is not used, and not checked.
    '[nova_notifications]\nlisten = false\ntransport_url = rabbit//x\n',
], ids=['good', 'not-listening'])
def test_a_notification_url_that_is_used_and_good_passes(tmp_path, text):
    conf, _path = _conf_file(tmp_path, text)
    assert service._preflight(conf) is None
