"""User-data for a shadow VM: within Nova's limit, in the cloud-config
subset the guests (and the lab) execute, with the token kept private."""

import ast
import base64
import gzip
import json
import random

import pytest

from loadgen import build
from loadgen import profiles
from loadgen import userdata

COLLECTOR = 'https://collector.example.org:8443/v1/samples'
BEARER = 'b' * 64
# A long tag set: six tags of 64 characters each.
LONG_TAGS = {key: (key * 64)[:64] for key in (
    'evaluation', 'shadow', 'host', 'project', 'flavor', 'zone')}
# What the tests below hold the encoded size to (Nova accepts 65,535).
TARGET_CHARS = 48000


def decode(encoded):
    """base64 -> gunzip -> the cloud-config mapping."""
    text = gzip.decompress(base64.b64decode(encoded)).decode('utf-8')
    header, _, body = text.partition('\n')
    assert header == '#cloud-config'
    return json.loads(body)


def file_bytes(entry):
    data = base64.b64decode(entry['content'])
    return gzip.decompress(data) if entry['encoding'] == 'gzip+base64' \
        else data


@pytest.mark.parametrize('name', profiles.BUILTIN_PROFILES)
def test_every_builtin_profile_fits_nova_with_headroom(name):
    encoded = userdata.encoded_user_data(
        name, None, LONG_TAGS, collector_url=COLLECTOR, token=BEARER,
        console=True)
    assert len(encoded) < TARGET_CHARS, len(encoded)
    base64.b64decode(encoded, validate=True)
    preinstalled = userdata.encoded_user_data(
        name, None, LONG_TAGS, collector_url=COLLECTOR, token=BEARER,
        console=True, preinstalled=True)
    assert len(preinstalled) < 2000, len(preinstalled)


def test_only_the_documented_cloud_config_subset_is_used():
    config = decode(userdata.encoded_user_data(
        'web', 'file:///var/log/samples.jsonl', LONG_TAGS,
        collector_url=COLLECTOR, token=BEARER, console=True))
    assert set(config) == {'write_files', 'runcmd'}
    for entry in config['write_files']:
        assert set(entry) == {'path', 'content', 'encoding', 'permissions'}
        assert entry['encoding'] in ('b64', 'gzip+base64')
    assert all(isinstance(cmd, list) and all(isinstance(arg, str)
                                             for arg in cmd)
               for cmd in config['runcmd'])
    paths = {entry['path']: entry for entry in config['write_files']}
    assert set(paths) == {'/opt/shadow-loadgen/loadgen.pyz',
                          '/opt/shadow-loadgen/profile.json',
                          '/opt/shadow-loadgen/collector.token'}
    assert paths['/opt/shadow-loadgen/loadgen.pyz']['permissions'] == \
        '0755'
    assert file_bytes(paths['/opt/shadow-loadgen/loadgen.pyz']) == \
        build.guest_pyz_bytes()
    shipped = json.loads(file_bytes(paths['/opt/shadow-loadgen/'
                                          'profile.json']))
    assert shipped == profiles.load_profile('web').to_dict()


def test_token_goes_to_a_0600_file_never_on_the_command_line():
    config = decode(userdata.encoded_user_data(
        'idle', None, {'evaluation': 'e'}, collector_url=COLLECTOR,
        token=BEARER))
    token_file = next(entry for entry in config['write_files']
                      if entry['path'].endswith('collector.token'))
    assert token_file['permissions'] == '0600'
    assert file_bytes(token_file).decode() == BEARER
    command = config['runcmd'][0][2]
    assert BEARER not in command
    assert '--sink-token-file /opt/shadow-loadgen/collector.token' in \
        command
    assert '--sink %s' % COLLECTOR in command


def test_every_destination_becomes_a_sink_in_order():
    command = userdata.run_command('file:///tmp/x', {'shadow': 's 1'},
                                   collector_url=COLLECTOR, console=True)
    assert command.index('file:///tmp/x') < command.index(COLLECTOR) < \
        command.index('console:')
    assert "'shadow=s 1'" in command
    with pytest.raises(ValueError, match='somewhere'):
        userdata.run_command(None, {})


def test_preinstalled_ships_only_the_profile_and_the_command():
    config = decode(userdata.encoded_user_data(
        'web', 'file:///tmp/s.jsonl', LONG_TAGS, preinstalled=True))
    assert [entry['path'] for entry in config['write_files']] == \
        ['/opt/shadow-loadgen/profile.json']
    assert 'python3 /opt/shadow-loadgen/loadgen.pyz run' in \
        config['runcmd'][0][2]


@pytest.mark.parametrize('options, match', [
    ({'collector_url': COLLECTOR}, 'token'),
    ({'collector_url': COLLECTOR, 'token': 'two words'}, 'token'),
    ({'collector_url': 'https://u:p@h/v1/samples', 'token': BEARER},
     'credentials'),
    ({'token': BEARER}, 'collector_url'),
])
def test_bad_collector_settings_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        userdata.encoded_user_data('idle', 'file:///tmp/x', {}, **options)


def test_user_data_over_nova_s_limit_says_what_to_do():
    rng = random.Random(7)
    values = [rng.random() * 100 for _ in range(40000)]
    profile = {'name': 'long-trace', 'pattern': {'type': 'trace',
                                                 'values': values}}
    with pytest.raises(userdata.UserDataTooLarge) as info:
        userdata.encoded_user_data(profile, 'file:///tmp/x', {})
    assert '65535' in str(info.value)
    assert 'preinstalled=True' in str(info.value)


def test_guest_zipapp_is_reproducible_and_smaller():
    first = build._archive(guest=True)
    assert first == build.guest_pyz_bytes()     # built earlier, same bytes
    assert len(gzip.compress(first)) < 0.8 * len(gzip.compress(
        build.pyz_bytes()))


def test_stripping_keeps_the_program_and_drops_docstrings():
    source = ('"""Module doc."""\n# a comment\n'
              'def f(x):\n    """Doc."""\n    if x:\n'
              '        return "a  b"  # trailing\n    return 2\n'
              'class C:\n    """Only a docstring."""\n')
    stripped = build.strip_source(source)
    assert 'doc' not in stripped.lower() and 'comment' not in stripped
    namespace = {}
    exec(compile(stripped, '<stripped>', 'exec'), namespace)  # noqa: S102
    assert namespace['f'](1) == 'a  b' and namespace['f'](0) == 2
    ast.parse(stripped)
    for name, path in build.package_files():
        if name.endswith('.py') and name not in build.GUEST_SKIP:
            with open(path) as f:
                build.strip_source(f.read())        # parses, or raises


def test_a_parse_overlapping_another_threads_is_parsed_again(monkeypatch):
    # CPython 3.11's AST conversion keeps one recursion counter for every
    # thread, and Python's own traceback formatting parses in whichever
    # thread logs an exception: a parse that overlaps one fails with this
    # SystemError (seen while a shadow's user data was built as another
    # thread logged).  The race cannot be forced, so its error is.
    real_parse, calls = ast.parse, []

    def racing_parse(source, *args, **kwargs):
        calls.append(source)
        if len(calls) == 1:
            raise SystemError('AST constructor recursion depth mismatch '
                              '(before=63, after=401)')
        return real_parse(source, *args, **kwargs)

    monkeypatch.setattr(ast, 'parse', racing_parse)
    stripped = build.strip_source('def f():\n    """Doc."""\n    return 1\n')
    assert stripped == 'def f():\n return 1\n'
    assert len(calls) >= 3          # the failed parse, then the whole strip

    # Any other SystemError is not this race: it is raised.
    def broken_parse(source, *args, **kwargs):
        raise SystemError('something else')

    monkeypatch.setattr(ast, 'parse', broken_parse)
    with pytest.raises(SystemError, match='something else'):
        build.strip_source('x = 1\n')
