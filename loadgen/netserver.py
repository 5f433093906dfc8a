"""The echo peer for the network component (``shadow-loadgen serve``).

Protocol, per request on a persistent TCP connection: an 8-byte header
``!II`` = (request bytes, response bytes), then the request bytes; the
server answers with exactly the response bytes. ``rr`` mode uses small
requests and responses; ``stream`` mode large requests and a 1-byte
answer. One thread per connection; stdlib only.

The peer may be shared, so what a client asks for never sizes the
server's memory: requests are read through a fixed ``SCRATCH_BYTES``
buffer and discarded, responses are sent in slices of one constant fill
buffer, messages above ``MAX_MESSAGE`` (64 MiB) end the connection, and
at most ``max_connections`` (default ``MAX_CONNECTIONS``) are served at
once; more are closed at once.
"""

import logging
import socket
import socketserver
import struct
import threading

LOG = logging.getLogger(__name__)
HEADER = struct.Struct('!II')
MAX_MESSAGE = 64 * 1024 * 1024
MAX_CONNECTIONS = 1024
SCRATCH_BYTES = 64 * 1024
# What requests and responses carry (1 MiB), sent in slices.
FILL = bytes(range(256)) * 4096


def recv_exactly(sock, view):
    """Fill memoryview ``view`` from ``sock``; False on a clean EOF."""
    received = 0
    while received < len(view):
        count = sock.recv_into(view[received:])
        if count == 0:
            return False
        received += count
    return True


def _discard_exactly(sock, count, scratch):
    """Read and drop ``count`` bytes; False on a clean EOF."""
    while count:
        received = sock.recv_into(scratch[:min(count, len(scratch))])
        if received == 0:
            return False
        count -= received
    return True


def _send_fill(sock, count):
    view = memoryview(FILL)
    while count:
        chunk = min(count, len(view))
        sock.sendall(view[:chunk])
        count -= chunk


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        header = bytearray(HEADER.size)
        scratch = memoryview(bytearray(SCRATCH_BYTES))
        try:
            while recv_exactly(sock, memoryview(header)):
                want_in, want_out = HEADER.unpack(header)
                if want_in > MAX_MESSAGE or want_out > MAX_MESSAGE:
                    LOG.warning('dropping %s: message too large',
                                self.client_address)
                    return
                if not _discard_exactly(sock, want_in, scratch):
                    return
                _send_fill(sock, want_out)
        except OSError as exc:
            LOG.debug('connection %s ended: %s', self.client_address, exc)


class EchoServer(socketserver.ThreadingTCPServer):
    """Threaded echo server; ``server_address`` holds the bound port."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, host='127.0.0.1', port=7777,
                 max_connections=MAX_CONNECTIONS):
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__((host, port), _EchoHandler)

    def verify_request(self, request, client_address):
        if self._slots.acquire(blocking=False):
            return True
        LOG.warning('refusing %s: %d connections already served',
                    client_address, self.max_connections)
        return False

    def process_request(self, request, client_address):
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()       # no thread will release it
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()
