"""Every option the README and the documentation name exists.

Two forms are read: ``[group] option`` inside one literal (an asterisk
after the name stands for a family: ``[shadow] contention_*``), and the
``name = value`` lines under a ``[group]`` header in a literal block (the
configuration snippets).  An option is found in nova-shadow's own groups
(the weigher's, the service's with the plugins' and keystoneauth's, the
lab driver's) or in those of the projects it is configured beside: Nova,
oslo.messaging and oslo.log.
"""

import pathlib
import re

import nova.conf
from oslo_log import _options as log_opts
from oslo_messaging import opts as messaging_opts

import nova_shadow_lab.driver
from nova_shadow_filter import conf as weigher_conf
from shadow_service.conf import opts as service_opts

REPO = pathlib.Path(__file__).resolve().parents[2]
PAGES = [REPO / 'README.rst'] + sorted((REPO / 'doc/source').rglob('*.rst'))
INLINE = re.compile(r'``\[([a-z_]+)\]\s+([a-z_0-9]+)(\*?)')
HEADER = re.compile(r'\[([A-Za-z_]+)\]')
SETTING = re.compile(r'([a-z_0-9]+)\s*=.*')


def _known():
    known = {}
    lists = [weigher_conf.generator_opts(), service_opts.list_opts(),
             messaging_opts.list_opts(), log_opts.list_opts(),
             [(nova_shadow_lab.driver.lab_group, nova_shadow_lab.driver
               .lab_opts)]]
    for pairs in lists:
        for group, opts in pairs:
            name = getattr(group, 'name', group) or 'DEFAULT'
            # keystoneauth's are named ``auth-url``: ``auth_url`` in files.
            known.setdefault(name, set()).update(o.dest for o in opts)
    conf = nova.conf.CONF
    for name in conf:
        value = getattr(conf, name, None)
        if isinstance(value, type(conf).GroupAttr):
            known.setdefault(name, set()).update(value)
        else:
            known.setdefault('DEFAULT', set()).add(name)
    return known


def _literal_blocks(lines):
    """The indented lines after each ``::``."""
    index = 0
    while index < len(lines):
        if lines[index].rstrip().endswith('::'):
            end = index + 1
            while end < len(lines) and (not lines[end].strip()
                                        or lines[end].startswith(' ')):
                end += 1
            yield lines[index + 1:end]
            index = end
        else:
            index += 1


def _named_options(text):
    """``(group, option, family)`` named in ``text``."""
    flat = re.sub(r'\s+', ' ', text)
    for match in INLINE.finditer(flat):
        group, option, star = match.groups()
        yield group, option, bool(star)
    for block in _literal_blocks(text.splitlines()):
        group = None
        for line in block:
            line = line.strip()
            header = HEADER.fullmatch(line)
            if header:
                group = header.group(1)
                continue
            setting = SETTING.fullmatch(line)
            if setting and group:
                yield group, setting.group(1), False


def test_every_option_named_in_the_docs_exists():
    known = _known()
    missing = []
    named = 0
    for page in PAGES:
        for group, option, family in _named_options(page.read_text()):
            named += 1
            options = known.get(group, set())
            if not (any(o.startswith(option) for o in options) if family
                    else option in options):
                missing.append('%s: [%s] %s%s' % (
                    page.relative_to(REPO), group, option,
                    '*' if family else ''))
    assert named > 300
    assert not missing, missing
