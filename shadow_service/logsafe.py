"""Making caller-supplied text and secrets safe to log or send back.

Tenants choose host names, profile names and hints; operators put
passwords in URLs.  :func:`clip` turns any value into one bounded log line
(control characters escaped, so a newline cannot forge a log line);
:func:`mask_url` hides the password of a URL's user info.  This module
imports nothing of the project: every part may use it.
"""

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


def mask_url(url):
    """``url`` with the password of its user info replaced by ``***``."""
    if not isinstance(url, str):
        return url
    try:
        parsed = urllib.parse.urlsplit(url)
    except ValueError:
        return '<unparsable URL>'
    if parsed.password is None and parsed.username is None:
        return url
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


def mask_urls_in(text, urls):
    """``text`` with every URL of ``urls`` that holds a password replaced
    by its masked form (and the bare password by ``***``)."""
    for url in urls:
        if not isinstance(url, str) or not url:
            continue
        try:
            password = urllib.parse.urlsplit(url).password
        except ValueError:
            password = None
        masked = mask_url(url)
        if masked != url:
            text = text.replace(url, masked)
        if password:
            text = text.replace(password, '***')
    return text
