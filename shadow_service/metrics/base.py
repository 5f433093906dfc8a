"""The MetricsSource interface: utilisation history from the monitoring.

A metrics source reads what the operator's monitoring already collects
about a compute host (node_exporter through Prometheus, Telegraf through
InfluxDB, or the ``host_metric`` points of the history store) and about an
instance (a libvirt exporter), and answers with regular-grid
:class:`~shadow_service.history.base.Series`, the same shape the history
store returns.  Sources are stevedore plugins in the ``nova_shadow.metrics``
namespace; ``[metrics] source`` picks one.

Behaviour every source shares (implemented here, so plugins only translate
a query):

* **Bounded queries.**  ``start`` and ``end`` are required Unix seconds,
  ``end > start``, at most ``[metrics] max_range_days`` apart, and the grid
  has at most ``[metrics] max_points`` steps; anything else is a
  ``ValueError`` that names the argument or the option.
* **Grid.**  ``values[i]`` describes ``[start + i*step, start + (i+1)*step)``;
  a rate is the rate over that bucket, a gauge its mean.
* **Missing data.**  A host, instance or bucket without data is ``None`` in
  the series; a host the backend has never seen gives a series of ``None``,
  never an exception.  NaN and infinities from a backend become ``None``.
* **Failures.**  :class:`MetricsUnavailable` (backend unreachable, timeout,
  HTTP 5xx/429) is retried ``[metrics] query_retries`` times with a backoff
  doubling from ``query_retry_backoff_s``; :class:`MetricsError` (refused
  credentials, a rejected query, an answer that is not the expected API) is
  raised at once.  Every HTTP request is bounded (:func:`post_bounded`):
  connecting and reading the answer take at most ``[metrics]
  query_timeout_s`` per attempt, and an answer larger than
  :data:`MAX_REPLY_BYTES` is a :class:`MetricsError`.
* **Caller's deadline.**  A query given a ``deadline`` (``time.monotonic()``
  seconds) neither starts an attempt nor waits for a retry past it, and
  cuts the last attempt's timeout to the time left; a query that runs out
  of time is :class:`MetricsUnavailable`.
* **Secrets.**  Passwords and tokens never appear in a log line or an
  error: use :func:`mask_url` and :class:`Scrubber`.

To add a source: subclass :class:`MetricsSource`, implement
:meth:`~MetricsSource.metrics` and :meth:`~MetricsSource.query_hosts` (and
:meth:`~MetricsSource.query_instance` if it knows instances), return your
options from :meth:`~MetricsSource.get_config_opts`, and register the class
under ``nova_shadow.metrics`` in ``setup.cfg``.
"""

import abc
import contextvars
import dataclasses
import json
import logging
import math
import os
import re
import string
import time
import urllib.parse

import requests
import urllib3
from oslo_config import cfg

from shadow_service import logsafe
from shadow_service.conf import metrics as metrics_conf
from shadow_service.history import base as history_base

LOG = logging.getLogger(__name__)

#: Canonical metric names with their unit and meaning.  The first six are
#: the twin's ``host_metric`` names (``clouds/sim/engine.py``).
METRICS = {
    'cpu_util_pct': ('%', 'CPU busy (100 - idle), % of all cores'),
    'cpu_steal_pct': ('%', 'CPU time stolen by the hypervisor, % of all '
                           'cores'),
    'mem_bandwidth_gbps': ('GB/s', 'memory bandwidth used'),
    'disk_iops': ('1/s', 'completed reads plus writes per second'),
    'disk_p95_latency_ms': ('ms', '95th percentile I/O latency'),
    'net_mbps': ('MB/s', 'bytes received plus sent, per second / 1e6'),
    'mem_used_pct': ('%', 'memory in use: 100 * (1 - available / total)'),
    'disk_mean_latency_ms': ('ms', 'mean time per completed I/O: time '
                                   'spent on reads and writes / their '
                                   'count'),
}

#: The names the twin writes as ``host_metric`` points.
TWIN_HOST_METRICS = ('cpu_util_pct', 'cpu_steal_pct', 'mem_bandwidth_gbps',
                     'disk_iops', 'disk_p95_latency_ms', 'net_mbps')

_NAME = re.compile(r'^[a-z][a-z0-9_]*\Z')

#: Largest answer (bytes, after any Content-Encoding is undone) a metrics
#: source reads from its backend; a larger one is refused with a
#: :class:`MetricsError` naming this limit, and the answer is read in
#: chunks, so a misbehaving server cannot make the service hold more.  A
#: Prometheus request of 11,000 points for 50 hosts is about 20 MB.
MAX_REPLY_BYTES = 64 * 1024 * 1024

#: Most bytes taken from the connection at a time while reading an answer.
READ_CHUNK_BYTES = 64 * 1024

#: The ``time.monotonic()`` deadline of the query under way in this thread
#: (set by :meth:`MetricsSource.query_retry`), or None.
_DEADLINE = contextvars.ContextVar('metrics_query_deadline', default=None)


class MetricsError(Exception):
    """A metrics source cannot be configured, or refused or failed a
    query in a way a retry cannot fix."""


class MetricsUnavailable(MetricsError):
    """The backend did not answer (unreachable, timeout, HTTP 5xx or
    429); retried by :meth:`MetricsSource.query_retry`."""


class UnsupportedMetric(MetricsError, ValueError):
    """The source has no query for this metric (see ``metrics()`` and
    ``instance_metrics()``)."""


@dataclasses.dataclass(frozen=True)
class Window:
    """A validated query grid: ``steps`` buckets of ``step_s`` from
    ``start``; the last one ends at or after ``end``."""

    start: float
    end: float
    step_s: float
    steps: int

    def time_of(self, index):
        """Start of bucket ``index``."""
        return self.start + index * self.step_s

    def index_of(self, time_s):
        """Bucket of ``time_s`` (may fall outside ``0..steps-1``)."""
        return history_base.bucket_index(time_s, self.start, self.step_s)

    def series(self, values_by_index):
        """The :class:`Series` of ``{bucket index: value}``; other buckets,
        and NaN or infinite values, are ``None``."""
        clean = {i: v for i, v in values_by_index.items()
                 if 0 <= i < self.steps and finite(v)}
        return history_base.grid_series(self.start, self.end, self.step_s,
                                        clean)


def finite(value):
    """True for a real, finite number (not bool, NaN or infinity)."""
    return (history_base.is_number(value)
            and math.isfinite(float(value)))


def check_window(start, end, step_s, max_range_days, max_points):
    """Validate a query's time range and return its :class:`Window`.

    Raises
    ------
    ValueError
        Naming ``start``, ``end`` or ``step_s`` when one is missing, not a
        finite number or out of order, or the ``[metrics]`` option a too
        long range or too fine a step exceeds.
    """
    for name, value in (('start', start), ('end', end), ('step_s', step_s)):
        if value is None:
            raise ValueError(
                '%s is required: a metrics query needs a bounded time range '
                'and a step' % name)
        if not finite(value):
            raise ValueError('%s must be a finite number of seconds, got %r'
                             % (name, value))
    start, end, step_s = float(start), float(end), float(step_s)
    if step_s <= 0:
        raise ValueError('step_s must be positive, got %r' % step_s)
    history_base.check_step_resolution(step_s)
    if end <= start:
        raise ValueError('end (%s) must be after start (%s)' % (end, start))
    if end - start > max_range_days * 86400.0:
        raise ValueError(
            'the range %s..%s spans %.1f days, more than [metrics] '
            'max_range_days = %d' % (start, end, (end - start) / 86400.0,
                                     max_range_days))
    steps = history_base.grid_steps(start, end, step_s)
    if steps > max_points:
        raise ValueError(
            'a step of %ss over %ss makes %d points, more than [metrics] '
            'max_points = %d; use a coarser step_s'
            % (step_s, end - start, steps, max_points))
    return Window(start, end, step_s, steps)


mask_url = logsafe.mask_url


class Scrubber:
    """Replaces every known secret in a text by ``***``."""

    def __init__(self, *secrets):
        self._secrets = sorted({s for s in secrets if s}, key=len,
                               reverse=True)
        quoted = [urllib.parse.quote(s, safe='') for s in self._secrets]
        self._secrets.extend(q for q in quoted if q not in self._secrets)

    def __call__(self, text):
        text = str(text)
        for secret in self._secrets:
            text = text.replace(secret, '***')
        return text


def split_credentials(url):
    """``(url without user info, username, password)``."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.username is None and parsed.password is None:
        return url, None, None
    netloc = parsed.netloc.rpartition('@')[2]
    bare = urllib.parse.urlunsplit(parsed._replace(netloc=netloc))
    return (bare, urllib.parse.unquote(parsed.username or ''),
            urllib.parse.unquote(parsed.password or ''))


def read_option(options, name, group):
    """``options[name]``, or MetricsError naming ``[group] name`` when
    oslo.config refuses the configured value (a malformed URL)."""
    try:
        return options[name]
    except (cfg.ConfigFileValueError, ValueError) as exc:
        raise MetricsError('[%s] %s is not valid: %s' % (group, name, exc))


def check_http_url(url, option):
    """Raise MetricsError naming ``option`` unless ``url`` is an http(s)
    URL with a host and a valid port; returns it without a trailing
    slash."""
    masked = mask_url(url or '')
    try:
        parsed = urllib.parse.urlsplit(url or '')
        _ = parsed.port
    except ValueError:
        raise MetricsError('%s %r is not a valid URL' % (option, masked))
    if parsed.scheme not in ('http', 'https') or not parsed.hostname:
        raise MetricsError('%s %r is not an http(s) URL such as '
                           'http://127.0.0.1:9090' % (option, masked))
    return url.rstrip('/')


#: What no HTTP header value may hold.
_HEADER_BREAKS = re.compile('[\r\n\x00]')


def _basic_auth(username, password):
    """Basic authentication carries bytes (base64): sent as UTF-8, as the
    servers compare them, any user name or password can be sent (as text
    ``requests`` would encode them as Latin-1 and fail on the rest)."""
    return (username.encode('utf-8'), (password or '').encode('utf-8'))


def http_session(options, group, token_option, token_scheme):
    """``(url, scrubber, session)`` for a source's ``[group]`` options:
    the checked ``url`` without its user info or a trailing slash, a
    :class:`Scrubber` of every secret given, and a ``requests.Session``
    authenticated by ``token_option`` (sent as ``Authorization:
    <token_scheme> <token>``), else ``username``/``password``, else the
    URL's user info, and verifying TLS against ``ca_file`` or as
    ``verify_tls`` says.  Raises MetricsError naming the option for a bad
    URL or a missing CA file."""
    url = check_http_url(read_option(options, 'url', group),
                         '[%s] url' % group)
    url, url_user, url_password = split_credentials(url)
    token = options[token_option]
    scrub = Scrubber(options.password, token, url_password)
    session = requests.Session()
    if token:
        # The token travels as it is in a header: a line break or NUL
        # would end (or smuggle) a header, and HTTP carries only Latin-1
        # there.  Said now, naming the option and never its value, rather
        # than as a source that cannot be reached at every query.
        option = '[%s] %s' % (group, token_option)
        if _HEADER_BREAKS.search(token):
            raise MetricsError('%s holds a line break or NUL, which no '
                               'HTTP header can carry; set it to the '
                               'token alone' % option)
        try:
            token.encode('latin-1')
        except UnicodeEncodeError:
            raise MetricsError('%s holds a character outside Latin-1, '
                               'which no HTTP header can carry' % option)
        session.headers['Authorization'] = '%s %s' % (token_scheme, token)
    elif options.username:
        session.auth = _basic_auth(options.username, options.password)
    elif url_user is not None:
        session.auth = _basic_auth(url_user, url_password)
    if options.ca_file:
        if not os.path.isfile(options.ca_file):
            raise MetricsError('[%s] ca_file %s does not exist'
                               % (group, options.ca_file))
        session.verify = options.ca_file
    else:
        session.verify = options.verify_tls
    return url.rstrip('/'), scrub, session


@dataclasses.dataclass(frozen=True)
class Reply:
    """An HTTP answer read completely by :func:`post_bounded`."""

    status_code: int
    content: bytes

    def json(self):
        """The decoded JSON body, or ``None`` if it is not JSON."""
        try:
            return json.loads(self.content)
        except ValueError:
            return None

    @property
    def text(self):
        """The body as text (undecodable bytes replaced)."""
        return self.content.decode('utf-8', 'replace')


def describe_json(value):
    """A short description of a JSON value for an error message."""
    if value is None:
        return 'missing (null)'
    if isinstance(value, list):
        return 'a list'
    if isinstance(value, dict):
        return 'an object'
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + '...'
    return text if isinstance(value, str) else '%s (%s)' % (
        text, type(value).__name__)


def _mebibytes(size):
    return '%g MiB' % (size / 1048576.0)


def attempt_timeout(timeout_s):
    """``(seconds, limit)``: the time an attempt may take, ``timeout_s``
    or what is left of the deadline of the query under way if that is
    less (never under a millisecond), and the name of the limit for an
    error message."""
    deadline = _DEADLINE.get()
    if deadline is not None:
        left = deadline - time.monotonic()
        if left < timeout_s:
            return max(left, 0.001), "the time left of the caller's deadline"
    return timeout_s, '[metrics] query_timeout_s'


def post_bounded(session, url, data, timeout_s, backend, where, url_option,
                 scrub=str, max_bytes=None):
    """POST ``data`` to ``url`` and read the whole answer, bounded in time
    and size.

    Connecting, waiting for the answer and reading its body take at most
    ``timeout_s`` (or what is left of the deadline of the query under way,
    see :func:`attempt_timeout`) together: a deadline on a monotonic clock,
    checked
    between reads of the body that each wait at most the time left, so a
    server that trickles its answer cannot hold a query longer than a
    silent one.  (The status line and headers are read by ``requests``,
    each read waiting at most ``timeout_s``.)  The body is read in chunks
    of at most :data:`READ_CHUNK_BYTES` and refused once it passes
    ``max_bytes`` (default :data:`MAX_REPLY_BYTES`).

    ``backend`` (``Prometheus``), ``where`` (the masked URL) and
    ``url_option`` (``[metrics_prometheus] url``) name the server in the
    errors; ``scrub`` removes secrets from them.

    Returns
    -------
    Reply
        The status code and the whole body.

    Raises
    ------
    MetricsUnavailable
        The server is unreachable, did not send its whole answer within
        ``timeout_s`` (``[metrics] query_timeout_s``) or broke the
        connection.
    MetricsError
        The answer is larger than ``max_bytes``, or its content encoding
        is broken.
    """
    configured = timeout_s
    timeout_s, limit = attempt_timeout(timeout_s)
    shown = configured if timeout_s == configured else round(timeout_s, 3)
    deadline = time.monotonic() + timeout_s
    if max_bytes is None:
        max_bytes = MAX_REPLY_BYTES

    def too_slow(detail):
        return MetricsUnavailable(scrub(
            '%s at %s did not answer within %ss (%s): %s'
            % (backend, where, shown, limit, detail)))

    def too_large():
        return MetricsError(scrub(
            '%s at %s sent an answer larger than %s (the limit '
            'shadow_service.metrics.base.MAX_REPLY_BYTES); ask for fewer '
            'points (a coarser step_s or a shorter range) or fewer hosts '
            'at once ([metrics] hosts_per_query)'
            % (backend, where, _mebibytes(max_bytes))))

    try:
        reply = session.post(url, data=data, timeout=(timeout_s, timeout_s),
                             stream=True)
    except requests.Timeout as exc:
        raise too_slow(exc)
    except requests.RequestException as exc:
        raise MetricsUnavailable(scrub(
            'cannot reach %s at %s (%s): %s'
            % (backend, where, url_option, exc)))
    try:
        length = reply.headers.get('Content-Length')
        if (length and length.strip().isdigit()
                and int(length) > max_bytes
                and not reply.headers.get('Content-Encoding')):
            raise too_large()
        raw = reply.raw
        read = getattr(raw, 'read1', None) or raw.read   # urllib3 < 2
        chunks = []
        size = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise too_slow('the answer was still incomplete after %d '
                               'bytes' % size)
            _limit_wait(raw, left)
            chunk = read(READ_CHUNK_BYTES, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise too_large()
            chunks.append(chunk)
    except urllib3.exceptions.DecodeError as exc:
        raise MetricsError(scrub(
            '%s at %s sent an answer whose content encoding cannot be '
            'decoded: %s' % (backend, where, exc)))
    except (urllib3.exceptions.TimeoutError, TimeoutError) as exc:
        raise too_slow('the answer was still incomplete: %s' % exc)
    except (urllib3.exceptions.HTTPError, requests.RequestException,
            OSError) as exc:
        raise MetricsUnavailable(scrub(
            '%s at %s broke off its answer: %s' % (backend, where, exc)))
    finally:
        reply.close()
    return Reply(reply.status_code, b''.join(chunks))


def _limit_wait(raw, seconds):
    """Let the next read of ``raw`` (a urllib3 response) wait at most
    ``seconds``; best effort (the read timeout bounds it otherwise)."""
    sock = getattr(getattr(raw, 'connection', None), 'sock', None)
    if sock is not None:
        try:
            sock.settimeout(max(seconds, 0.001))
        except OSError:
            pass


def check_regex_options(options, group, names):
    """Raise MetricsError naming ``[group] <name>`` for the first of
    ``names`` whose value is not a regular expression."""
    for name in names:
        try:
            re.compile(options[name])
        except re.error as exc:
            raise MetricsError('[%s] %s %r is not a regular expression: %s'
                               % (group, name, options[name], exc))


def label_formatter(option, fmt, mapping):
    """A function ``host -> label value`` from a ``{host}`` format and an
    explicit map; raises MetricsError naming ``option`` for a bad format."""
    try:
        fields = {field for _text, field, _spec, _conv
                  in string.Formatter().parse(fmt or '')
                  if field is not None}
    except ValueError as exc:
        raise MetricsError('%s %r is not a format: %s' % (option, fmt, exc))
    if fields != {'host'}:
        raise MetricsError(
            '%s %r must hold {host} and no other {field}, so each Nova '
            'host gets its own value' % (option, fmt))
    mapping = dict(mapping or {})

    def label_of(host):
        return mapping.get(host) or fmt.format(host=host)
    return label_of


def hosts_by_label(hosts, label_of, label):
    """``{label value: [Nova hosts]}`` of ``hosts``, their values made by
    ``label_of``; a host whose value is not valid UTF-8 (a lone surrogate)
    cannot be sent in any query, so it is left out with a warning naming
    it and ``label``, and the other hosts are still read."""
    hosts_of = {}
    for host in hosts:
        value = label_of(host)
        try:
            value.encode('utf-8')
        except UnicodeEncodeError:
            LOG.warning('Host %r: its %s value %r is not valid UTF-8, so no '
                        'query can ask for it; it reads as no data', host,
                        label, value)
            continue
        hosts_of.setdefault(value, []).append(host)
    return hosts_of


class MetricsSource(metaclass=abc.ABCMeta):
    """Interface every metrics source implements.

    Parameters
    ----------
    conf : oslo_config.cfg.ConfigOpts, optional
        Read ``[metrics]`` and the plugin's ``[metrics_<name>]`` group from
        it (the options are registered on it). Without it, the defaults.
    history : shadow_service.history.base.HistoryStore, optional
        The history store, for sources that read it.
    """

    #: Entry point name; the plugin's options live in ``[metrics_<name>]``.
    name = None

    #: What a query raises when the backend cannot answer now (for callers
    #: that must not import this package to tell).
    unavailable_errors = (MetricsUnavailable,)

    def __init__(self, conf=None, history=None):
        self.conf = conf if conf is not None else cfg.ConfigOpts()
        self.history = history
        self.limits = metrics_conf.settings(self.conf)
        metrics_conf.register_plugin_opts(self.conf, self.name,
                                          self.get_config_opts())

    @classmethod
    def get_config_opts(cls):
        """The plugin's oslo.config options (group ``metrics_<name>``)."""
        return []

    @property
    def options(self):
        """The plugin's option group on ``conf``."""
        return self.conf[metrics_conf.plugin_group_name(self.name)]

    # -- what the source knows -------------------------------------------

    @abc.abstractmethod
    def metrics(self):
        """Canonical names (keys of :data:`METRICS`) this source can read
        per host, as a tuple."""

    def instance_metrics(self):
        """Canonical names this source can read per instance."""
        return ()

    def supports(self, metric, kind='host'):
        """True if ``metric`` can be read for a ``host`` or ``instance``."""
        known = self.metrics() if kind == 'host' else self.instance_metrics()
        return metric in known

    # -- queries ---------------------------------------------------------

    def host_series(self, host, metric, start, end, step_s, deadline=None):
        """The series of ``metric`` of one Nova host.

        Returns a :class:`~shadow_service.history.base.Series` over the
        bounded grid; ``None`` wherever there is no data (all ``None`` for a
        host the backend does not know).  ``deadline`` (``time.monotonic()``
        seconds, optional) bounds the whole call, retries included (see
        :meth:`query_retry`).

        Raises
        ------
        ValueError
            Bad arguments (see :func:`check_window`), or
            :class:`UnsupportedMetric` for a metric this source cannot read.
        MetricsError
            The backend refused the query or stayed unavailable after the
            retries (:class:`MetricsUnavailable`).
        """
        return self.host_series_many([host], metric, start, end,
                                     step_s, deadline=deadline)[host]

    def host_series_many(self, hosts, metric, start, end, step_s,
                         deadline=None):
        """``{host: Series}`` for several Nova hosts, read with one backend
        query per ``[metrics] hosts_per_query`` hosts where the backend can
        (see :meth:`host_series` for the rest)."""
        hosts = _check_names('hosts', hosts)
        self._check_metric(metric, 'host')
        window = self.window(start, end, step_s)
        per_query = self.limits['hosts_per_query']
        found = {}
        for first in range(0, len(hosts), per_query):
            batch = hosts[first:first + per_query]
            answer = self.query_retry(self.query_hosts, batch, metric,
                                      window, deadline=deadline)
            for host in batch:
                found[host] = window.series(answer.get(host) or {})
        return found

    def instance_series(self, instance_uuid, metric, start, end, step_s,
                        deadline=None):
        """The series of ``metric`` of one instance (Nova UUID); same
        contract as :meth:`host_series`; an ``instance_uuid`` that is not
        valid UTF-8 (a lone surrogate) is a ValueError, as no query can
        carry it."""
        (instance_uuid,) = _check_names('instance_uuid', [instance_uuid])
        try:
            instance_uuid.encode('utf-8')
        except UnicodeEncodeError:
            raise ValueError('instance_uuid %r is not valid UTF-8, so no '
                             'query can ask for it' % (instance_uuid,)) \
                from None
        self._check_metric(metric, 'instance')
        window = self.window(start, end, step_s)
        answer = self.query_retry(self.query_instance, instance_uuid, metric,
                                  window, deadline=deadline)
        return window.series(answer or {})

    def window(self, start, end, step_s):
        """:func:`check_window` with the ``[metrics]`` limits."""
        return check_window(start, end, step_s,
                            self.limits['max_range_days'],
                            self.limits['max_points'])

    # -- what a plugin implements -----------------------------------------

    @abc.abstractmethod
    def query_hosts(self, hosts, metric, window):
        """One backend query: ``{host: {bucket index: value}}`` for the
        Nova ``hosts`` (validated, at most ``hosts_per_query``) over the
        :class:`Window`. Leave out hosts and buckets without data. Raise
        :class:`MetricsUnavailable` for a failure a retry may fix,
        :class:`MetricsError` for any other."""

    def query_instance(self, instance_uuid, metric, window):
        """One backend query: ``{bucket index: value}`` for one instance."""
        raise UnsupportedMetric('the %s metrics source reads no instance '
                                'metrics' % self.name)

    # -- retries ---------------------------------------------------------

    def query_retry(self, func, *args, deadline=None):
        """Call ``func(*args)``; retry it on :class:`MetricsUnavailable`
        with exponential backoff, ``[metrics] query_retries`` times.

        With a ``deadline`` (``time.monotonic()`` seconds) no attempt
        starts and no backoff waits past it, and an attempt's requests
        wait at most the time left (:func:`attempt_timeout`); running out
        of time is :class:`MetricsUnavailable`."""
        attempts = 1 + self.limits['query_retries']
        delay = min(self.limits['query_retry_backoff_s'],
                    self.limits['query_retry_backoff_max_s'])
        for attempt in range(1, attempts + 1):
            if deadline is not None and time.monotonic() >= deadline:
                raise MetricsUnavailable(
                    'metrics source %s: no time left before the caller\'s '
                    'deadline%s' % (self.name, '' if attempt == 1 else
                                    ' (gave up after %d attempt%s)' % (
                                        attempt - 1,
                                        '' if attempt == 2 else 's')))
            token = _DEADLINE.set(deadline)
            try:
                return func(*args)
            except MetricsUnavailable as exc:
                out_of_time = (deadline is not None
                               and time.monotonic() + delay >= deadline)
                if attempt == attempts or out_of_time:
                    raise MetricsUnavailable(
                        '%s (gave up after %d attempt%s%s)'
                        % (exc, attempt, '' if attempt == 1 else 's',
                           ", the caller's deadline being near"
                           if attempt < attempts else ''))
                LOG.warning('Metrics source %s: %s; retry %d of %d in '
                            '%.2fs', self.name, exc, attempt, attempts - 1,
                            delay)
                time.sleep(delay)
                delay = min(delay * 2,
                            self.limits['query_retry_backoff_max_s'])
            finally:
                _DEADLINE.reset(token)

    def close(self):  # noqa: B027 (optional hook, nothing to release)
        """Release connections."""

    def _check_metric(self, metric, kind):
        if not isinstance(metric, str) or not metric:
            raise ValueError('metric must be a metric name, got %r'
                             % (metric,))
        if not self.supports(metric, kind):
            known = (self.metrics() if kind == 'host'
                     else self.instance_metrics())
            raise UnsupportedMetric(
                'the %s metrics source cannot read %s metric %r (it reads: '
                '%s)' % (self.name, kind, metric,
                         ', '.join(known) or 'none'))


def is_metric_name(name):
    """True for a well-formed metric name (``cpu_util_pct``)."""
    return isinstance(name, str) and bool(_NAME.match(name))


def _check_names(argument, names):
    if isinstance(names, str):
        raise ValueError('%s must be a list of names, not the string %r'
                         % (argument, names))
    names = list(names)
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError('%s holds %r; every entry must be a non-empty '
                             'string' % (argument, name))
    return list(dict.fromkeys(names))
