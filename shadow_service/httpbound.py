"""An HTTP server whose every request is bounded as a whole.

The stdlib's socket timeout bounds one read: a client that trickles its
request a byte at a time holds a thread for ever.  A
:class:`BoundedHandler` gives each request (of a kept-alive connection
too) :meth:`~BoundedHandler.request_timeout` seconds from the wait for
its first byte until :meth:`~BoundedHandler.request_read` says it is
read; then the reading side of its socket is shut (a read in progress
ends as the end of the stream).  A request whose header block ends before
its blank line (the client hung up, or was cut off) is not served:
:meth:`~BoundedHandler.headers_cut_off` answers it (400 by default).  Its
access log (DEBUG) keeps the path without its query, escaped.  Every
answer, the HTTP library's own refusals too, is an HTTP/1.1 one with a
status line and headers: a request line without a version (HTTP/0.9,
whose answers have neither) is refused 505, and one whose version cannot
be read is answered 400 as HTTP/1.1.

A :class:`BoundedServer` serves at most ``max_connections`` connections
at once, ``max_connections_per_address`` of them from one client
address: each holds a thread (and a timer's while a request is read) for
up to the request timeout before it has sent anything, so without a
bound a client's idle connections could take every thread the daemon may
start.  A connection past either bound is closed as it is accepted, with
no thread, counted in :attr:`BoundedServer.refused_connections` and
logged at most once a minute.  The sample collector and the Prometheus
exporter serve through it.
"""

import collections
import http.server
import logging
import socket
import threading
import time
import urllib.parse

from shadow_service import logsafe

LOG = logging.getLogger(__name__)

#: Seconds a client may take to send a request, request line, headers and
#: body together.
REQUEST_TIMEOUT_S = 10.0
#: Connections served at once, and of those from one client address.
MAX_CONNECTIONS = 128
MAX_CONNECTIONS_PER_ADDRESS = 32
#: Seconds between two log lines about refused connections.
REFUSAL_LOG_INTERVAL_S = 60.0


class _LineReader:
    """A request's reader that keeps the last line ``readline`` gave."""

    def __init__(self, rfile):
        self._rfile = rfile
        self.last_line = None

    def readline(self, *args):
        self.last_line = self._rfile.readline(*args)
        return self.last_line

    def __getattr__(self, name):
        return getattr(self._rfile, name)


class BoundedHandler(http.server.BaseHTTPRequestHandler):
    """A request handler whose requests are bounded as a whole."""

    sys_version = ''
    protocol_version = 'HTTP/1.1'
    # What the library takes a request to be until it has read its
    # version: its default, HTTP/0.9, makes every refusal of a request
    # line it cannot read (a bad version, one word, four) a page with
    # no status line and no header, which no HTTP/1.x client can read.
    default_request_version = 'HTTP/1.0'
    timeout = REQUEST_TIMEOUT_S
    #: Where the access log (DEBUG) goes.
    access_log = LOG

    def request_timeout(self):
        """Seconds the client has to send the whole request."""
        return REQUEST_TIMEOUT_S

    def handle_one_request(self):
        self._cut_off_timer = threading.Timer(self.request_timeout(),
                                              self._cut_off)
        self._cut_off_timer.daemon = True
        self._cut_off_timer.start()
        try:
            super().handle_one_request()
        except (TimeoutError, ConnectionError):
            self.close_connection = True
        finally:
            self._cut_off_timer.cancel()

    def parse_request(self):
        words = str(self.raw_requestline, 'iso-8859-1').rstrip(
            '\r\n').split()
        if len(words) == 2:
            # HTTP/0.9 (a method and a path, no version): the library
            # would serve a GET with no status line, and refuse any other
            # method so.
            self.command, self.path = None, None
            self.requestline = ' '.join(words)
            self.request_version = self.default_request_version
            self.close_connection = True
            self.send_error(505, 'HTTP/0.9 is not supported; send an '
                            'HTTP/1.x request line')
            return False
        # The stdlib takes the end of the stream for the blank line that
        # ends the headers, so a request cut off in its headers would be
        # served as if whole (without the headers it never got).
        rfile, self.rfile = self.rfile, _LineReader(self.rfile)
        try:
            parsed = super().parse_request()
        finally:
            reader, self.rfile = self.rfile, rfile
        if parsed and reader.last_line == b'':
            self.close_connection = True
            self.headers_cut_off()
            return False
        return parsed

    def headers_cut_off(self):
        """Answer a request whose headers ended early (or too late)."""
        self.send_error(400, 'The request ended before its headers did')

    def request_path(self):
        """The path of the request's target without its query; None
        for a target no URL parser reads (``http://[::1/x``: an address
        without its closing bracket), which no path matches."""
        try:
            return urllib.parse.urlsplit(self.path).path
        except ValueError:
            return None

    def request_read(self):
        """The request is read: what follows is not the client's time."""
        self._cut_off_timer.cancel()

    def send(self, status, body, content_type, headers=(), head=False):
        """Answer ``status`` with ``body`` (bytes; not written for a HEAD
        request, ``head``) and ``headers``; a client that hung up is
        neither answered nor logged."""
        try:
            self.send_response(status)
            self.send_header('Content-Type', content_type)
            self.send_header('Content-Length', str(len(body)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(body)
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _cut_off(self):
        self.close_connection = True
        try:
            # The socket's own shutdown (a TLS socket's would drop its
            # TLS state and answer in the clear).
            socket.socket.shutdown(self.connection, socket.SHUT_RD)
        except OSError:
            pass

    def log_message(self, format, *args):
        # The stdlib's line holds the raw request line: its path without
        # the query (where a token could be), escaped.
        if args and isinstance(args[0], str):
            line = args[0].split('?', 1)[0]
            args = (line,) + args[1:]
        self.access_log.debug('%s %s', self.address_string(),
                              logsafe.clip(format % args, 200))


class BoundedServer(http.server.ThreadingHTTPServer):
    """A thread per connection, none kept at exit, and at most
    ``max_connections`` (``max_connections_per_address`` from one
    address) at once."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    max_connections = MAX_CONNECTIONS
    max_connections_per_address = MAX_CONNECTIONS_PER_ADDRESS

    def __init__(self, *args, **kwargs):
        self._connections_lock = threading.Lock()
        self._connections = 0
        self._by_address = collections.Counter()
        #: Connections closed as they were accepted (over a bound).
        self.refused_connections = 0
        self._refusals_unlogged = 0
        self._refusal_logged_at = float('-inf')
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        address = client_address[0]
        with self._connections_lock:
            refused = (self._connections >= self.max_connections
                       or self._by_address[address]
                       >= self.max_connections_per_address)
            if refused:
                self.refused_connections += 1
                self._refusals_unlogged += 1
            else:
                self._connections += 1
                self._by_address[address] += 1
        if refused:
            self.shutdown_request(request)
            self._log_refusals(address)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            # No thread (the process may start no more): not held.
            self._release(address)
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(client_address[0])

    def _release(self, address):
        with self._connections_lock:
            self._connections -= 1
            self._by_address[address] -= 1
            if self._by_address[address] <= 0:
                del self._by_address[address]

    def _log_refusals(self, address):
        now = time.monotonic()
        with self._connections_lock:
            if now - self._refusal_logged_at < REFUSAL_LOG_INTERVAL_S:
                return
            self._refusal_logged_at = now
            count, self._refusals_unlogged = self._refusals_unlogged, 0
        LOG.warning('Closed %d connection(s) as they were accepted, the '
                    'latest from %s: at most %d at once, %d from one '
                    'address', count, address,
                    self.max_connections, self.max_connections_per_address)

    def handle_error(self, request, client_address):
        LOG.debug('Connection from %s failed', client_address,
                  exc_info=True)
