"""What the commands and the daemon say of a transport URL no driver can
use: the option, the URL with its passwords masked, what is wrong and
what a valid one looks like; checked without connecting."""

import pytest
from oslo_config import cfg

from shadow_service import logsafe
from shadow_service import rpc

VALID = 'a valid one looks like rabbit://user:pass@host:port/vhost'


def _conf(files=()):
    conf = cfg.ConfigOpts()
    conf([], default_config_files=list(files))
    return conf


@pytest.mark.parametrize('url, shown, why', [
    # Before: "No scheme specified".
    ('rabbit//guest:s3cret@ctl/', 'rabbit//guest:***@ctl/',
     'it has no driver name before "://"'),
    # Before: "Failed to load transport driver "localhost": ...".
    ('localhost:5672', 'localhost:5672',
     'it has no driver name before "://"'),
    # Before: "No module named 'confluent_kafka'".
    ('kafka://guest:s3cret@ctl:9092/', 'kafka://guest:***@ctl:9092/',
     'the kafka driver carries notifications only, not RPC calls'),
    ('amqp://guest:s3cret@ctl:5672/', 'amqp://guest:***@ctl:5672/',
     'there is no message driver named amqp (installed: '),
    # Before: "invalid literal for int() with base 10: 'notaport'".
    ('rabbit://guest:s3cret@ctl:notaport/',
     'rabbit://guest:***@ctl:notaport/', 'a port is not a number'),
    ('rabbit://guest:s3cret@ctl:99999/', 'rabbit://guest:***@ctl:99999/',
     'port 99999 is not from 1 to 65535'),
], ids=['no-scheme', 'host-port', 'kafka', 'amqp', 'port-word',
        'port-range'])
def test_a_bad_url_is_named_masked_and_explained(url, shown, why):
    with pytest.raises(rpc.BadTransportURL) as info:
        rpc.check_transport_url(_conf(), url, '--os-shadow-transport-url')
    text = str(info.value)
    assert text.startswith('--os-shadow-transport-url %s cannot be used: '
                           % shown), text
    assert why in text
    assert text.endswith(VALID)
    assert 's3cret' not in text


def test_the_configuration_files_url_is_named_with_its_file(tmp_path):
    path = tmp_path / 'shadow-service.conf'
    path.write_text('[DEFAULT]\ntransport_url = rabbit//guest:s3cret@ctl/\n')
    with pytest.raises(rpc.BadTransportURL) as info:
        rpc.check_transport_url(_conf([str(path)]))
    assert str(info.value) == (
        'transport_url (in %s) rabbit//guest:***@ctl/ cannot be used: it '
        'has no driver name before "://"; %s' % (path, VALID))


@pytest.mark.parametrize('url', [
    None, '', 'rabbit://', 'rabbit://guest:guest@127.0.0.1:5672/',
    'rabbit://u:p@h1:5672,u:p@h2:5673/vhost', 'kombu://u:p@h/', 'fake://',
    'fake:/'])
def test_a_url_a_driver_can_use_passes(url):
    assert rpc.check_transport_url(_conf(), url) is None


@pytest.mark.parametrize('url, masked', [
    ('rabbit://guest:s3cret@h:notaport/', 'rabbit://guest:***@h:notaport/'),
    ('rabbit://a:s3cret@h1:5672,b:p@ss@h2/v',
     'rabbit://a:***@h1:5672,b:***@h2/v'),
    ('rabbit://guest:s3/cret@h/', 'rabbit://guest:***@h/'),
    ('guest:s3cret@h:5672', 'guest:***@h:5672'),
    ('kafka://h/?sasl_PASSWORD=s3cret&a=b', 'kafka://h/?sasl_PASSWORD=***&a=b'),
    ('rabbit://h:5672/', 'rabbit://h:5672/'),
])
def test_a_url_that_does_not_parse_has_its_passwords_masked(url, masked):
    assert logsafe.mask_url_text(url) == masked
