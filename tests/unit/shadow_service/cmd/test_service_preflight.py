"""``shadow-service`` checks, before any worker forks, what a worker
would refuse: the manager then never sees a worker exit."""

import pytest
from oslo_config import cfg

from shadow_service import conf as shadow_conf
from shadow_service.cmd import service
from tests import service_support


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
    conf, path = service_support.conf_from_file(
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
    conf, _path = service_support.conf_from_file(
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
    conf, _path = service_support.conf_from_file(tmp_path, text)
    assert service._preflight(conf) is None


@pytest.mark.parametrize('url, shown, why', [
    ('rabbit//guest:s3cret@ctl/', 'rabbit//guest:***@ctl/',
     'it has no driver name before "://"'),
    ('rabbit://guest:s3cret@ctl:99999/', 'rabbit://guest:***@ctl:99999/',
     'port 99999 is not from 1 to 65535'),
], ids=['no-scheme', 'port-range'])
def test_the_oslo_messaging_notifications_url_the_listener_falls_back_to(
        tmp_path, url, shown, why):
    # [nova_notifications] transport_url unset: the listener takes
    # [oslo_messaging_notifications] transport_url.  Before: the
    # preflight passed and the worker failed on oslo.messaging's bare
    # "No scheme specified".
    conf, path = service_support.conf_from_file(
        tmp_path, '[oslo_messaging_notifications]\ntransport_url = %s\n'
        % url)
    with pytest.raises(service.StartupError) as info:
        service._preflight(conf)
    text = str(info.value)
    assert text.startswith(
        '[oslo_messaging_notifications] transport_url (in %s) %s cannot be '
        'used: ' % (path, shown)), text
    assert why in text
    assert 's3cret' not in text


@pytest.mark.parametrize('text', [
    # [nova_notifications] transport_url set: the fallback is not used.
    '[nova_notifications]\ntransport_url = rabbit://guest:guest@ctl:5672/\n'
    '[oslo_messaging_notifications]\ntransport_url = rabbit//x\n',
    '[nova_notifications]\nlisten = false\n'
    '[oslo_messaging_notifications]\ntransport_url = rabbit//x\n',
    '[oslo_messaging_notifications]\n'
    'transport_url = rabbit://guest:guest@ctl:5672/\n',
], ids=['overridden', 'not-listening', 'good'])
def test_an_oslo_messaging_notifications_url_not_used_or_good_passes(
        tmp_path, text):
    conf, _path = service_support.conf_from_file(tmp_path, text)
    assert service._preflight(conf) is None


DEFAULT_URL = '[DEFAULT]\ntransport_url = rabbit://a@d:5672/\n'
OSLO_URL = ('[oslo_messaging_notifications]\n'
            'transport_url = rabbit://a@o:5672/\n')
NOVA_URL = '[nova_notifications]\ntransport_url = rabbit://a@n:5672/\n'


@pytest.mark.parametrize('text, url, group', [
    (DEFAULT_URL + OSLO_URL + NOVA_URL, 'rabbit://a@n:5672/',
     'nova_notifications'),
    (DEFAULT_URL + OSLO_URL, 'rabbit://a@o:5672/',
     'oslo_messaging_notifications'),
    (DEFAULT_URL, 'rabbit://a@d:5672/', None),
], ids=['nova-notifications', 'oslo-messaging-notifications', 'default'])
def test_the_listener_takes_the_first_url_set(tmp_path, text, url, group):
    # The order the preflight checks in is the listener's (it builds its
    # transport from the same function).
    from shadow_service import notifications

    conf, _path = service_support.conf_from_file(tmp_path, text)
    assert notifications.broker_url(conf) == (url, group)


def test_a_start_error_masks_secret_option_values_long_and_short(
        tmp_path, capsys):
    # Only the passwords of URLs were masked in a start error, not the
    # values of options marked secret.  No start error is known to quote
    # a secret of under four characters (one of two lines is quoted
    # escaped: tests/functional/.../test_service_startup_errors.py), so
    # this error is made up; the configuration is real.
    from shadow_service import cmd

    path = tmp_path / 'shadow-service.conf'
    path.write_text('[history]\ninflux_username = ops\n'
                    'influx_password = long-secret\ninflux_token = pw\n')
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf(['--config-file', str(path)], project='nova-shadow')
    error = ValueError("auth as ops with 'long-secret' and token pw "
                       "(pw=pw) refused: check the password")
    cmd.report_start_error('shadow-service', error, conf)
    said = capsys.readouterr().err
    assert said == ("shadow-service: cannot start: auth as ops with '***' "
                    "and token *** (***=***) refused: check the "
                    "password\n"), said
