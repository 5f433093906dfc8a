"""What ``shadow-watcher`` warns of at start, before any worker forks,
about credentials that cannot boot the siblings of horizontal scaling;
``shadow-service``, which boots no siblings, does not warn."""

import logging
import time

import pytest

from shadow_service.cmd import service as service_cmd
from shadow_service.cmd import watcher as watcher_cmd
from tests import keystone_support as ks
from tests import service_support

APP_CREDENTIAL = {
    'auth_type': 'v3applicationcredential',
    'application_credential_id': ks.APP_CREDENTIAL_ID,
    'application_credential_secret': ks.APP_CREDENTIAL_SECRET}
PASSWORD = {
    'auth_type': 'v3password', 'username': ks.USER_NAME,
    'password': ks.PASSWORD, 'user_domain_id': 'default',
    'project_id': ks.APP_CREDENTIAL_PROJECT}


@pytest.fixture
def keystone():
    with ks.TokenKeystone() as keystone:
        yield keystone


def _conf(tmp_path, keystone, auth, sibling_project='owner', **watcher):
    """The daemons' options over the ``openstack`` driver with ``auth``
    (keystoneauth options) in ``[openstack]``."""
    path = tmp_path / 'shadow-service.conf'
    path.write_text('[openstack]\nauth_url = %s\n' % keystone.url + ''.join(
        '%s = %s\n' % item for item in auth.items()))
    conf = service_support.make_conf(
        shadow={'cloud_driver': 'openstack'},
        history={'store': 'sqlite',
                 'sqlite_path': str(tmp_path / 'history.sqlite')},
        openstack={'sibling_project': sibling_project}, watcher=watcher)
    conf(['--config-file', str(path)], project='nova-shadow-test')
    conf.set_override('transport_url', 'fake:/')
    return conf


def _warnings(caplog, preflight, conf):
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        preflight(conf)
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and 'sibling' in r.getMessage()]


def test_an_application_credential_with_owner_siblings_is_warned_of(
        tmp_path, keystone, caplog):
    conf = _conf(tmp_path, keystone, APP_CREDENTIAL)
    (warning,) = _warnings(caplog, watcher_cmd._preflight, conf)
    assert 'application credential' in warning
    # Both ways out.
    assert "a user's password (a user with the member role" in warning
    assert 'set [openstack] sibling_project = service' in warning
    # The service shares check_config but boots no siblings.
    assert _warnings(caplog, service_cmd._preflight, conf) == []
    # Nothing was asked of Keystone.
    assert keystone.requests == []


@pytest.mark.parametrize('auth, sibling_project, watcher', [
    (APP_CREDENTIAL, 'service', {}),
    (PASSWORD, 'owner', {}),
    (APP_CREDENTIAL, 'owner', {'max_count': 1}),
    (APP_CREDENTIAL, 'owner', {'scale_webhook': 'http://heat.example/'}),
], ids=['service-project', 'password', 'no-scale-out', 'webhook'])
def test_no_warning_when_siblings_can_be_booted_or_none_are(
        tmp_path, keystone, caplog, auth, sibling_project, watcher):
    conf = _conf(tmp_path, keystone, dict(auth), sibling_project, **watcher)
    assert _warnings(caplog, watcher_cmd._preflight, conf) == []


def test_a_bad_transport_url_is_refused_when_the_ranker_calls_over_rpc(
        tmp_path):
    # Before: the preflight passed and the worker failed building the
    # RPC ranker on oslo.messaging's bare "No scheme specified".
    conf, path = service_support.conf_from_file(
        tmp_path, '[DEFAULT]\ntransport_url = rabbit//guest:s3cret@ctl/\n'
        '[watcher]\nranker = rpc\n')
    with pytest.raises(ValueError) as info:
        watcher_cmd._preflight(conf)
    text = str(info.value)
    assert text.startswith(
        'transport_url (in %s) rabbit//guest:***@ctl/ cannot be used: it '
        'has no driver name before "://"' % path), text
    assert 's3cret' not in text


def _rpc_ranker(tmp_path, url):
    conf, _path = service_support.conf_from_file(
        tmp_path, '[DEFAULT]\ntransport_url = %s\n[watcher]\nranker = rpc\n'
        % url)
    return conf


@pytest.mark.parametrize('text', [
    # Not ranking over RPC: the URL is not used, and not checked.
    '[DEFAULT]\ntransport_url = rabbit//x\n[watcher]\nranker = history\n',
    '[DEFAULT]\ntransport_url = rabbit://guest:s3cret@127.0.0.1:1/\n'
    '[watcher]\nranker = history\n',
], ids=['bad-url', 'no-broker'])
def test_a_transport_url_not_used_passes_the_watcher(tmp_path, text):
    conf, _path = service_support.conf_from_file(tmp_path, text)
    assert watcher_cmd._preflight(conf) is None


def test_a_broker_that_takes_the_login_passes_the_watcher(tmp_path,
                                                          rabbit_url):
    assert watcher_cmd._preflight(_rpc_ranker(tmp_path, rabbit_url)) is None


def test_a_broker_that_refuses_the_login_stops_the_watcher_at_start(
        tmp_path, rabbit_url):
    # Before: only the URL's form was checked; every migration's ranking
    # then failed on the broker's refusal, run after run.
    wrong = rabbit_url.replace('guest:guest@', 'guest:s3cret@')
    assert wrong != rabbit_url
    with pytest.raises(service_cmd.StartupError) as info:
        watcher_cmd._preflight(_rpc_ranker(tmp_path, wrong))
    text = str(info.value)
    assert text.startswith('transport_url ([watcher] ranker = rpc calls '
                           'shadow-service through it): the broker at '), text
    assert 'refused the credentials of user guest' in text
    assert 's3cret' not in text


def test_a_broker_that_does_not_answer_stops_the_watcher_at_start(tmp_path):
    # Nothing listens on port 1: the watcher does not wait for it as
    # shadow-service does (it would start without a way to rank).
    started = time.monotonic()
    with pytest.raises(service_cmd.StartupError) as info:
        watcher_cmd._preflight(_rpc_ranker(
            tmp_path, 'rabbit://guest:s3cret@127.0.0.1:1/'))
    assert time.monotonic() - started < 15
    text = str(info.value)
    assert text.startswith('transport_url ([watcher] ranker = rpc calls '
                           'shadow-service through it): the broker does not '
                           'answer (127.0.0.1:1: '), text
    assert 's3cret' not in text


@pytest.mark.parametrize('url, why', [
    ('ftp://heat.example/scale', 'http or https'),
    ('https://heat.example:99999/scale', 'port'),
    ('https://heat.example:port/scale', 'port'),
], ids=['scheme', 'port-range', 'port-text'])
def test_a_scale_webhook_no_request_can_reach_stops_the_watcher(
        tmp_path, url, why):
    # Before: it passed the start, and every horizontal scaling then
    # failed on requests' "No connection adapters" or "Failed to parse".
    conf, _path = service_support.conf_from_file(
        tmp_path, '[watcher]\nscale_webhook = %s\n' % url)
    with pytest.raises(Exception) as info:
        watcher_cmd._preflight(conf)
    text = str(info.value)
    assert text.startswith('[watcher] scale_webhook'), text
    assert why in text, text
