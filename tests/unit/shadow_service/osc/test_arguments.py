"""Bad values of the ``openstack shadow`` commands' arguments are usage
errors: the usage, ``error: argument --<flag>: ...`` and exit 2, before
the broker is asked anything (none is configured here: a value that got
past the parser would end on "no message broker", exit 1).

The ``openstack`` command runs in this process (its ``main``), not as a
child: the parser's refusal is all there is to see."""

import logging
import os

import pytest

openstackclient_shell = pytest.importorskip('openstackclient.shell')


@pytest.fixture
def openstack(monkeypatch, capsys):
    """``openstack <args>`` in this process: ``(exit status, stderr)``."""
    for name in list(os.environ):
        if name.startswith('OS_') and 'NOVA' not in name:
            monkeypatch.delenv(name)
    monkeypatch.setenv('OS_SHADOW_CONFIG_FILE', os.devnull)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def run(*args):
        try:
            status = openstackclient_shell.main(list(args))
        except SystemExit as e:
            status = e.code
        return status, capsys.readouterr().err

    yield run
    # The openstack command adds its own handlers to the root logger.
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize('args, says', [
    # Before: the service's refusal after a round trip, exit 1:
    # "Invalid evaluation request: budget_s.(top level): -5.0 is less
    # than or equal to the minimum of 0".
    (['--budget', '-5'], "argument --budget: must be a number of seconds "
     "above 0 and at most 86400, got '-5'"),
    (['--budget', 'nan'], "argument --budget: must be a number of seconds "
     "above 0 and at most 86400, got 'nan'"),
    (['--budget', '86401'], 'argument --budget: must be a number of '
     "seconds above 0 and at most 86400, got '86401'"),
    (['--vcpus', '0'], "argument --vcpus: must be a whole number from 1 "
     "to 1024, got '0'"),
    (['--vcpus', '1025'], "argument --vcpus: must be a whole number from 1 "
     "to 1024, got '1025'"),
    (['--ram-mb', '0'], "argument --ram-mb: must be a whole number from 1 "
     "to 16777216, got '0'"),
    (['--disk-gb', '-1'], "argument --disk-gb: must be a whole number "
     "from 0 to 1048576, got '-1'"),
    (['--disk-gb', 'big'], "argument --disk-gb: must be a whole number "
     "from 0 to 1048576, got 'big'"),
], ids=['budget-negative', 'budget-nan', 'budget-above', 'vcpus-zero',
        'vcpus-above', 'ram-zero', 'disk-negative', 'disk-word'])
def test_an_evaluation_out_of_the_services_bounds_is_a_usage_error(
        openstack, args, says):
    status, err = openstack('shadow', 'evaluate', '--host', 'node-01',
                            *args)
    assert status == 2, err
    assert 'shadow evaluate: error: %s' % says in err
    assert 'no message broker' not in err


@pytest.mark.parametrize('args, says', [
    # Before: exit 1 with "--limit: 0 is not a count from 1 to 10000",
    # while "--limit abc" was argparse's, exit 2.
    (['evaluation', 'list', '--limit', 'abc'],
     "argument --limit: must be a count from 1 to 10000, got 'abc'"),
    (['evaluation', 'list', '--limit', '0'],
     "argument --limit: must be a count from 1 to 10000, got '0'"),
    (['decision', 'list', '--limit', '20000'],
     "argument --limit: must be a count from 1 to 10000, got '20000'"),
    (['evaluation', 'list', '--since', 'yesterday'],
     "argument --since: 'yesterday' is not a duration (seconds, or a "
     "number with s, m, h or d: 90m, 2d)"),
    (['decision', 'list', '--since', '400d'],
     "argument --since: '400d' is more than 366d, the longest look-back"),
], ids=['limit-word', 'limit-zero', 'decision-limit', 'since-word',
        'decision-since'])
def test_a_listing_out_of_bounds_is_a_usage_error(openstack, args, says):
    status, err = openstack('shadow', *args)
    assert status == 2, err
    assert 'shadow %s: error: %s' % (' '.join(args[:2]), says) in err
    assert 'no message broker' not in err


def test_values_within_the_bounds_get_past_the_parser(openstack):
    # To the broker, which is not configured: the client's own error.
    status, err = openstack(
        'shadow', 'evaluate', '--host', 'node-01', '--budget', '86400',
        '--vcpus', '1024', '--ram-mb', '16777216', '--disk-gb', '0')
    assert status == 1, err
    assert 'no message broker' in err
    status, err = openstack('shadow', 'evaluation', 'list', '--since',
                            '366d', '--limit', '10000')
    assert status == 1, err
    assert 'no message broker' in err


@pytest.mark.parametrize('given', ['flag', 'environment'])
def test_a_transport_url_no_driver_can_use_is_a_usage_error(
        openstack, monkeypatch, given):
    # It was one line and exit 1, as a failure of the service would be.
    url = 'kafka://guest:s3cret@ctl:9092/'
    if given == 'flag':
        args = ('--os-shadow-transport-url', url)
    else:
        monkeypatch.setenv('OS_SHADOW_TRANSPORT_URL', url)
        args = ()
    status, err = openstack(*args, 'shadow', 'profile', 'list')
    assert status == 2, err
    assert err.splitlines()[-1] == (
        'openstack: error: argument --os-shadow-transport-url '
        '(OS_SHADOW_TRANSPORT_URL): kafka://guest:***@ctl:9092/ cannot be '
        'used: the kafka driver carries notifications only, not RPC '
        'calls; a valid one looks like rabbit://user:pass@host:port/vhost')
    assert 's3cret' not in err


def test_a_transport_url_in_the_file_is_still_not_a_usage_error(
        openstack, monkeypatch, tmp_path):
    # The file is the service's configuration, not an argument: exit 1.
    conf = tmp_path / 'shadow-service.conf'
    conf.write_text('[DEFAULT]\ntransport_url = rabbit//guest:s3cret@ctl/\n')
    monkeypatch.setenv('OS_SHADOW_CONFIG_FILE', str(conf))
    status, err = openstack('shadow', 'profile', 'list')
    assert status == 1, err
    assert err.splitlines() == [
        'transport_url (in %s) rabbit//guest:***@ctl/ cannot be used: it '
        'has no driver name before "://"; a valid one looks like '
        'rabbit://user:pass@host:port/vhost' % conf]
