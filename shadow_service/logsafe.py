"""Making caller-supplied text and secrets safe to log or send back.

Tenants choose host names, profile names and hints; operators put
passwords in URLs.  :func:`clip` turns any value into one bounded log line
(control characters escaped, so a newline cannot forge a log line);
:func:`mask_url` hides the password of a URL's user info and of its
query (``sentinel_password=``, say).  This module
imports nothing of the project: every part may use it.
"""

import re
import urllib.parse

#: Longest caller-supplied text put in one log line or error message.
VALUE_MAX = 80


def clip(value, limit=VALUE_MAX):
    """``value`` as one log-safe line: control and non-ASCII characters
    escaped, at most ``limit`` characters (then the full length)."""
    text = value if isinstance(value, str) else repr(value)
    text = text.encode('unicode_escape', 'backslashreplace').decode('ascii')
    if len(text) > limit:
        return text[:limit] + '...(%d chars)' % len(text)
    return text


def _is_secret(name):
    return name.lower().endswith('password')


def _query_secrets(query):
    """``(raw, decoded)`` values of the password parameters of a query."""
    found = []
    for piece in query.split('&'):
        name, sep, raw = piece.partition('=')
        if sep and raw and _is_secret(urllib.parse.unquote_plus(name)):
            found.append((raw, urllib.parse.unquote_plus(raw)))
    return found


def _masked_parameter(piece):
    name, sep, raw = piece.partition('=')
    if sep and raw and _is_secret(urllib.parse.unquote_plus(name)):
        return name + '=***'
    return piece


def mask_url(url):
    """``url`` with the password of its user info, and the value of each
    query parameter named ``...password``, replaced by ``***``."""
    if not isinstance(url, str):
        return url
    try:
        parsed = urllib.parse.urlsplit(url)
    except ValueError:
        return '<unparsable URL>'
    secret_query = bool(_query_secrets(parsed.query))
    if secret_query:
        parsed = parsed._replace(query='&'.join(
            _masked_parameter(piece) for piece in parsed.query.split('&')))
    if parsed.password is None and parsed.username is None:
        return urllib.parse.urlunsplit(parsed) if secret_query else url
    host = parsed.hostname or ''
    if ':' in host:
        host = '[%s]' % host
    try:
        port = parsed.port
    except ValueError:
        port = None
    netloc = '%s:***@%s' % (parsed.username or '', host)
    if port is not None:
        netloc += ':%d' % port
    return urllib.parse.urlunsplit(parsed._replace(netloc=netloc))


#: ``user:password@`` of each host of a URL's authority (after ``//``,
#: a comma, or at the start when the scheme's ``//`` is missing), up to
#: the last ``@`` before the next host: a password with an ``@`` or a
#: ``/`` is masked whole (what follows it, at worst, too).
_USERINFO = re.compile(r'(^|//|,)([^:/@,]*):(?!//)([^,]*)@')
#: A query parameter named ``...password``, and its value.
_QUERY_PASSWORD = re.compile(r'([?&;][^=&#?;]*password=)[^&#;]*',
                             re.IGNORECASE)


def mask_url_text(url):
    """``url`` with every password it may hold replaced by ``***``, the
    rest kept as it was written: unlike :func:`mask_url`, for a URL that
    does not parse (no scheme, a port that is not a number), whose bad
    part an error message must show."""
    if not isinstance(url, str):
        return url
    url = _USERINFO.sub(r'\1\2:***@', url)
    return _QUERY_PASSWORD.sub(r'\1***', url)


#: ``user:password@`` in the ``authority`` of a URI that oslo.config's
#: validator shows (``URIReference(..., authority='user:pw@host'...)``):
#: how the password of a URL option that could not be read shows.
_AUTHORITY_USERINFO = re.compile(r"(authority=')([^\s:/@']*):([^\s@']+)@")


def url_secrets(url):
    """The passwords ``url`` holds (its user info's, each query parameter
    named ``...password``), as written and decoded, also when it does not
    parse (no scheme, a bad host or port)."""
    if not isinstance(url, str) or not url:
        return []
    found = {m.group(3) for m in _USERINFO.finditer(url)}
    found.update(m.group(0).split('=', 1)[1]
                 for m in _QUERY_PASSWORD.finditer(url))
    try:
        parts = urllib.parse.urlsplit(url)
        found.add(parts.password)
        found.update(value for pair in _query_secrets(parts.query)
                     for value in pair)
    except ValueError:
        pass
    found.update([urllib.parse.unquote(s) for s in found if s])
    return sorted(filter(None, found), key=len, reverse=True)


#: Shortest secret masked wherever it appears in a message; a shorter
#: one is masked only where it stands as a whole word, so that a
#: password ``pw`` does not turn every ``password`` into ``***ssword``.
SECRET_MIN_CHARS = 4


def _secret_forms(secret):
    """How ``secret`` may show in a message: as written, with its white
    space run together (as a one-line message has it), and escaped (as
    a ``repr`` quotes it: ``\\n`` for a newline)."""
    forms = {secret, ' '.join(secret.split()),
             secret.encode('unicode_escape').decode('ascii'),
             repr(secret)[1:-1]}
    return sorted(filter(None, forms), key=len, reverse=True)


def mask_secrets_in(text, values, secrets=()):
    """``text`` with the passwords of every URL among ``values`` (any
    option value: those that hold none are left alone) replaced by
    ``***``, the URLs shown masked, and the ``user:password@`` of a URI
    oslo.config's validator quotes masked too (one whose option could
    not be read).  Each of ``secrets`` (the values of options marked
    secret, as a token or a password) is replaced by ``***`` too, as
    written, with its white space run together and escaped; one shorter
    than ``SECRET_MIN_CHARS`` only where it stands as a whole word.  A
    secret that is a URL (``transport_url``) is masked as a URL: its
    password, not the whole of it.  The one helper for messages that may
    quote configuration (a daemon's start error)."""
    text = mask_urls_in(text, values)
    for value in values:
        if isinstance(value, str) and value:
            text = text.replace(value, mask_url_text(value))
            for secret in url_secrets(value):
                text = text.replace(secret, '***')
    forms = set()
    for secret in secrets:
        if isinstance(secret, str) and secret.strip() and \
                '://' not in secret:
            forms.update(_secret_forms(secret))
    for form in sorted(forms, key=len, reverse=True):
        if len(form) >= SECRET_MIN_CHARS:
            text = text.replace(form, '***')
        else:
            text = re.sub(r'(?<![A-Za-z0-9])%s(?![A-Za-z0-9])'
                          % re.escape(form), '***', text)
    return _AUTHORITY_USERINFO.sub(r'\1\2:***@', text)


def mask_urls_in(text, urls):
    """``text`` with every URL of ``urls`` that holds a password replaced
    by its masked form (and each bare password, as given and decoded, by
    ``***``)."""
    for url in urls:
        if not isinstance(url, str) or not url:
            continue
        try:
            parts = urllib.parse.urlsplit(url)
        except ValueError:
            continue
        masked = mask_url(url)
        if masked != url:
            text = text.replace(url, masked)
        secrets = [parts.password] + [
            value for pair in _query_secrets(parts.query) for value in pair]
        for secret in sorted(filter(None, set(secrets)), key=len,
                             reverse=True):
            text = text.replace(secret, '***')
    return text
