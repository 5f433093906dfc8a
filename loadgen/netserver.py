"""The echo peer for the network component (``shadow-loadgen serve``).

Protocol, per request on a persistent TCP connection: an 8-byte header
``!II`` = (request bytes, response bytes), then the request bytes; the
server answers with exactly the response bytes. ``rr`` mode uses small
requests and responses; ``stream`` mode large requests and a 1-byte
answer. One thread per connection; stdlib only.
"""

import logging
import socket
import socketserver
import struct

LOG = logging.getLogger(__name__)
HEADER = struct.Struct('!II')
MAX_MESSAGE = 64 * 1024 * 1024
_FILL = bytes(range(256)) * 4096


def recv_exactly(sock, view):
    """Fill memoryview ``view`` from ``sock``; False on a clean EOF."""
    received = 0
    while received < len(view):
        count = sock.recv_into(view[received:])
        if count == 0:
            return False
        received += count
    return True


def response_bytes(size):
    if size <= len(_FILL):
        return memoryview(_FILL)[:size]
    return memoryview(bytes(size))


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        header = bytearray(HEADER.size)
        request = bytearray(4096)
        try:
            while recv_exactly(sock, memoryview(header)):
                want_in, want_out = HEADER.unpack(header)
                if want_in > MAX_MESSAGE or want_out > MAX_MESSAGE:
                    LOG.warning('dropping %s: message too large',
                                self.client_address)
                    return
                if len(request) < want_in:
                    request = bytearray(want_in)
                if not recv_exactly(sock, memoryview(request)[:want_in]):
                    return
                sock.sendall(response_bytes(want_out))
        except OSError as exc:
            LOG.debug('connection %s ended: %s', self.client_address, exc)


class EchoServer(socketserver.ThreadingTCPServer):
    """Threaded echo server; ``server_address`` holds the bound port."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, host='127.0.0.1', port=7777):
        super().__init__((host, port), _EchoHandler)
