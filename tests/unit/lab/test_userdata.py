"""User-data to plan: what the lab's cloud-init subset accepts and how it
reports what it cannot run."""

import base64
import gzip
import json

import pytest
import yaml

from nova_shadow_lab import userdata

PAYLOAD = b'\x00\x01 bytes \xff\n'


def _b64(data):
    return base64.b64encode(data).decode('ascii')


def _plan(text, compress=False):
    data = text.encode('utf-8')
    return userdata.build_plan(_b64(gzip.compress(data) if compress
                                    else data))


def _written(plan):
    return {f['path']: base64.b64decode(f['content_b64'])
            for f in plan['write_files']}


@pytest.mark.parametrize('compress', [False, True])
def test_cloud_config_is_read_plain_or_gzipped(compress):
    plan = _plan('#cloud-config\nruncmd: [echo hi]\n', compress)
    assert plan['kind'] == 'cloud-config'
    assert plan['runcmd'] == '#!/bin/sh\necho hi\n'
    assert plan['errors'] == []


@pytest.mark.parametrize('encoding,content', [
    (None, PAYLOAD.decode('latin-1')),
    ('text', PAYLOAD.decode('latin-1')),
    ('b64', _b64(PAYLOAD)), ('base64', _b64(PAYLOAD)),
    ('gz+b64', _b64(gzip.compress(PAYLOAD, mtime=0))),
    ('gzip+b64', _b64(gzip.compress(PAYLOAD, mtime=0))),
    ('gz+base64', _b64(gzip.compress(PAYLOAD, mtime=0))),
    ('gzip+base64', _b64(gzip.compress(PAYLOAD, mtime=0))),
    ('gz', gzip.compress(PAYLOAD, mtime=0)),
    ('gzip', gzip.compress(PAYLOAD, mtime=0)),
    ('GZIP+B64', _b64(gzip.compress(PAYLOAD, mtime=0))),
])
def test_every_write_files_encoding_decodes(encoding, content):
    entry = {'path': '/opt/f', 'content': content}
    if encoding:
        entry['encoding'] = encoding
    plan = _plan('#cloud-config\n' + yaml.safe_dump(
        {'write_files': [entry]}))
    expected = (PAYLOAD.decode('latin-1').encode('utf-8')
                if encoding in (None, 'text') else PAYLOAD)
    assert _written(plan) == {'/opt/f': expected}
    assert plan['errors'] == []


def test_permissions_append_defer_and_owner():
    plan = _plan('#cloud-config\n' + json.dumps({'write_files': [
        {'path': '/opt/late', 'content': 'late', 'defer': True},
        {'path': '/opt/a', 'content': 'a', 'permissions': '0755',
         'owner': 'root:root'},
        {'path': '/opt/a', 'content': 'b', 'append': True,
         'permissions': 0o600},
    ]}))
    files = plan['write_files']
    assert [f['path'] for f in files] == ['/opt/a', '/opt/a', '/opt/late']
    assert [f['mode'] for f in files] == [0o755, 0o600, 0o644]
    assert [f['append'] for f in files] == [False, True, False]


def test_runcmd_strings_are_shell_lines_and_lists_are_quoted_argv():
    plan = _plan('#cloud-config\n' + json.dumps({'runcmd': [
        'cd /opt && ls | wc -l',
        ['sh', '-c', 'echo "$HOME" > /dev/console'],
        ['printf', '%s\n', "it's"]]}))
    assert plan['runcmd'] == (
        '#!/bin/sh\n'
        'cd /opt && ls | wc -l\n'
        'sh -c \'echo "$HOME" > /dev/console\'\n'
        "printf '%s\n' 'it'\"'\"'s'\n")


def test_shell_script_user_data_runs_as_is():
    script = b'#!/bin/bash\necho hi\n'
    plan = userdata.build_plan(_b64(gzip.compress(script)))
    assert plan['kind'] == 'script'
    assert base64.b64decode(plan['script_b64']) == script


def test_no_user_data_is_an_empty_plan():
    for value in (None, ''):
        plan = userdata.build_plan(value)
        assert plan['kind'] == 'none'
        assert plan['write_files'] == [] and plan['runcmd'] is None


def test_unknown_modules_are_listed_not_run():
    plan = _plan('#cloud-config\npackages: [fio]\nruncmd: ["true"]\n')
    assert plan['ignored_modules'] == ['packages']
    assert plan['errors'] == []


@pytest.mark.parametrize('document,field,message', [
    ({'write_files': [{'path': '/opt/x', 'encoding': 'rot13'}]},
     'write_files[0].encoding', "unknown encoding 'rot13'"),
    ({'write_files': [{'content': 'x'}]}, 'write_files[0].path',
     'absolute path'),
    ({'write_files': [{'path': 'rel/x'}]}, 'write_files[0].path',
     'absolute path'),
    ({'write_files': [{'path': '/x', 'encoding': 'b64',
                       'content': 'not base64!'}]},
     'write_files[0].content', 'not valid base64'),
    ({'write_files': [{'path': '/x', 'encoding': 'gzip',
                       'content': 'plain'}]},
     'write_files[0].content', 'bad gzip data'),
    ({'write_files': [{'path': '/x', 'permissions': 'rw-r--r--'}]},
     'write_files[0].permissions', 'octal mode'),
    ({'write_files': [{'path': '/x', 'mode': '0644'}]},
     'write_files[0].mode', 'unknown key'),
    ({'write_files': [{'path': '/x', 'source': {'uri': 'http://x'}}]},
     'write_files[0].source', 'not supported'),
    ({'write_files': {'path': '/x'}}, 'write_files', 'must be a list'),
    ({'runcmd': [['ok'], {'bad': 1}]}, 'runcmd[1]', 'string'),
    ({'runcmd': 'echo hi'}, 'runcmd', 'must be a list'),
])
def test_bad_modules_are_reported_by_field(document, field, message):
    plan = _plan('#cloud-config\n' + json.dumps(document))
    assert len(plan['errors']) == 1
    assert plan['errors'][0]['field'] == field
    assert message in plan['errors'][0]['message']


def test_a_bad_write_files_does_not_stop_runcmd():
    plan = _plan('#cloud-config\n' + json.dumps({
        'write_files': [{'path': '/ok', 'content': 'x'},
                        {'path': '/bad', 'encoding': 'nope'}],
        'runcmd': ['echo still']}))
    assert plan['write_files'] == []
    assert plan['runcmd'] == '#!/bin/sh\necho still\n'


@pytest.mark.parametrize('raw,message', [
    (b'#include\nhttp://example.com/x\n', 'unsupported user-data'),
    (b'Content-Type: multipart/mixed\n', 'unsupported user-data'),
    (b'#cloud-config\n- a list\n', 'must be a mapping'),
    (b'#cloud-config\nkey: [unclosed\n', 'not valid YAML'),
    (b'\x1f\x8b\x08 not really gzip', 'bad gzip data'),
])
def test_unrunnable_user_data_is_an_invalid_plan(raw, message):
    plan = userdata.build_plan(_b64(raw))
    assert plan['kind'] in ('invalid', 'cloud-config')
    assert message in plan['errors'][0]['message']
    assert plan['write_files'] == [] and plan['runcmd'] is None


def test_user_data_that_is_not_base64_is_reported():
    plan = userdata.build_plan('%%% not base64 %%%')
    assert plan['kind'] == 'invalid'
    assert plan['errors'][0]['field'] == 'user_data'



def _aliases(count, size):
    """YAML whose ``l`` is one anchored ``size``-character string and
    ``count - 1`` aliases of it: a few bytes of text each."""
    return ('l: &l [' + ', '.join(['&s "%s"' % ('x' * size)] +
                                  ['*s'] * (count - 1)) + ']\n')


def test_yaml_aliases_cannot_expand_the_plan_past_the_limit():
    # 8 kB of user-data naming 40 MB of commands and 40 MiB of files.
    mib = _b64(gzip.compress(b'\0' * (1 << 20)))
    text = ('#cloud-config\n' + _aliases(200, 1000) +
            'f: &f {path: /opt/big, content: %s, encoding: gz+b64, '
            'append: true}\n' % mib +
            'runcmd:\n' + '- *l\n' * 200 +
            'write_files: [' + ', '.join(['*f'] * 40) + ']\n')
    assert len(_b64(text.encode('utf-8'))) < 65535 // 4
    plan = _plan(text)
    # Each module fails alone, where it passes the limit.
    assert plan['runcmd'] is None
    assert plan['write_files'] == []
    fields = {e['field']: e['message'] for e in plan['errors']}
    assert len(fields) == 2, fields
    # The 16th MiB file and the paths pass 16 MiB.
    assert 'write_files[15]' in fields
    runcmd = next(f for f in fields if f.startswith('runcmd['))
    assert 'more than 16777216 bytes' in fields[runcmd]
    assert len(json.dumps(plan)) < 4096


def test_the_limit_is_the_plans_whole_size():
    # Files within the limit are written; runcmd beyond what they left
    # fails alone.
    text = ('#cloud-config\n' + _aliases(1000, 1000) +
            'write_files: [{path: /opt/a, content: "%s"}]\n'
            'runcmd: [*l]\n' % ('y' * 1000))
    small = _plan(text)
    assert small['errors'] == []
    assert len(small['runcmd']) > 1000 * 1000
    big = _plan(text.replace('runcmd: [*l]', 'runcmd: [%s]' % ', '.join(
        ['*l'] * 17)))
    assert [e['field'] for e in big['errors']] == ['runcmd[16]']
    assert _written(big) == {'/opt/a': b'y' * 1000}
