"""What the ``openstack shadow`` commands share: the types of the
listings' ``--since`` and ``--limit`` (bad values are usage errors, as
argparse's own: exit 2), times, and the columns that render a
ranking."""

import argparse
import datetime

from cliff import columns

#: Suffixes ``--since`` accepts, in seconds.
DURATION_UNITS = {'s': 1.0, 'm': 60.0, 'h': 3600.0, 'd': 86400.0}


def duration(text):
    """An ``argparse`` type, ``--since``: seconds, or a number with
    s/m/h/d, at most the listings' longest look-back (the service's
    ``since_s`` bound)."""
    from shadow_service import rpcapi

    text = str(text).strip().lower()
    unit = DURATION_UNITS.get(text[-1:]) if text else None
    number = text[:-1] if unit else text
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(
            '%r is not a duration (seconds, or a number with s, m, h or d: '
            '90m, 2d)' % text)
    if seconds > rpcapi.MAX_SINCE_S:
        raise argparse.ArgumentTypeError(
            '%r is more than %gd, the longest look-back'
            % (text, rpcapi.MAX_SINCE_S / 86400.0))
    return seconds


def limit(text):
    """An ``argparse`` type, ``--limit``: a count from 1 to the
    service's ``limit`` bound."""
    from shadow_service import rpcapi

    try:
        count = int(text)
    except (TypeError, ValueError):
        count = None
    if count is None or not 1 <= count <= rpcapi.MAX_LIMIT:
        raise argparse.ArgumentTypeError(
            'must be a count from 1 to %d, got %r' % (rpcapi.MAX_LIMIT, text))
    return count


def timestamp(value):
    """Unix seconds as ISO 8601 UTC (None stays None)."""
    if value is None:
        return None
    return datetime.datetime.fromtimestamp(
        float(value), datetime.UTC).isoformat(timespec='seconds')


class RankingColumn(columns.FormattableColumn):
    """A ranking's hosts: one line per host in a table, the host dicts
    in json and yaml."""

    def human_readable(self):
        lines = []
        for rank, host in enumerate(self._value or [], 1):
            reasons = '; '.join((host.get('reasons') or [])[:1])
            lines.append('%d. %s score %.1f confidence %.2f%s'
                         % (rank, host.get('host'), host.get('score', 0.0),
                            host.get('confidence') or 0.0,
                            ' (%s)' % reasons if reasons else ''))
        return '\n'.join(lines)

    def machine_readable(self):
        return list(self._value or [])


class MappingColumn(columns.FormattableColumn):
    """A mapping: ``key=value`` lines in a table, the mapping itself in
    json and yaml."""

    def human_readable(self):
        return '\n'.join('%s=%s' % (key, self._value[key])
                         for key in sorted(self._value or {}))

    def machine_readable(self):
        return dict(self._value or {})
