"""An HTTP server whose every request is bounded as a whole.

The stdlib's socket timeout bounds one read: a client that trickles its
request a byte at a time holds a thread for ever.  A
:class:`BoundedHandler` gives each request (of a kept-alive connection
too) :meth:`~BoundedHandler.request_timeout` seconds from the wait for
its first byte until :meth:`~BoundedHandler.request_read` says it is
read; then the reading side of its socket is shut (a read in progress
ends as the end of the stream).  Its access log (DEBUG) keeps the path
without its query, escaped.  The sample collector and the Prometheus
exporter serve through it.
"""

import http.server
import logging
import socket
import threading

from shadow_service import logsafe

LOG = logging.getLogger(__name__)

#: Seconds a client may take to send a request, request line, headers and
#: body together.
REQUEST_TIMEOUT_S = 10.0


class BoundedHandler(http.server.BaseHTTPRequestHandler):
    """A request handler whose requests are bounded as a whole."""

    sys_version = ''
    protocol_version = 'HTTP/1.1'
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
    """A thread per connection, none kept at exit."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        LOG.debug('Connection from %s failed', client_address,
                  exc_info=True)
