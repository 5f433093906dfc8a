"""Raw HTTP for edge cases: clients (a request trickled a byte at a
time) and a server whose answers may be longer than anyone should read."""

import http
import socket
import threading
import time


def trickle(port, data, every_s=0.3, give_up_s=4.0):
    """Send ``data`` to ``127.0.0.1:port`` one byte every ``every_s``
    seconds (each read within any socket timeout) until the server closes
    the connection or ``give_up_s`` passes; returns ``(seconds until it
    was closed, what it answered)``, the seconds counting the 2 s waited
    for an answer when it never refused a byte."""
    sock = socket.create_connection(('127.0.0.1', port), timeout=5)
    started = time.monotonic()
    answer = b''
    try:
        for byte in data:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return time.monotonic() - started, answer
            time.sleep(every_s)
            if time.monotonic() - started > give_up_s:
                break
        sock.settimeout(2.0)
        try:
            answer = sock.recv(100)
        except ConnectionError:
            pass
        return time.monotonic() - started, answer
    finally:
        sock.close()


def exchange(port, data, read_for=5.0):
    """Send ``data`` on a fresh connection to ``127.0.0.1:port`` and read
    what comes back until the server closes it or ``read_for`` seconds
    pass."""
    sock = socket.create_connection(('127.0.0.1', port), timeout=read_for)
    try:
        sock.sendall(data)
        got = b''
        deadline = time.monotonic() + read_for
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            got += chunk
        return got
    finally:
        sock.close()


class RawAnswers:
    """A raw HTTP/1.1 server on 127.0.0.1 whose answers can be as long
    as a test likes without being held in memory by either side.

    Each request is read whole and answered by ``answer(path, body)``,
    which returns ``(status, size[, start[, headers]])``: a body of
    ``size`` bytes beginning with ``start`` (bytes), written only as fast
    as the client reads it, after ``headers`` (a dict); then the
    connection is closed.  A ``status`` given as bytes is the whole
    status line, sent as it is (no HTTP server's).
    ``requests`` holds ``(path, body)`` of every request, in order.
    """

    def __init__(self, answer):
        self.answer = answer
        self.requests = []
        self._listener = socket.create_server(('127.0.0.1', 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self, path=''):
        return 'http://127.0.0.1:%d%s' % (self.port, path)

    def close(self):
        self._listener.close()

    def _serve(self):
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                try:
                    self._one(conn)
                except OSError:
                    pass        # the client hung up: as a client may

    def _one(self, conn):
        data = b''
        while b'\r\n\r\n' not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b'\r\n\r\n')
        lines = head.split(b'\r\n')
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b':')
            if name.strip().lower() == b'content-length':
                length = int(value)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return
            body += chunk
        path = lines[0].split()[1].decode('latin-1')
        self.requests.append((path, body))
        status, size, start, headers = (
            tuple(self.answer(path, body)) + (b'', {}))[:4]
        head = ''.join('%s: %s\r\n' % item for item in dict(
            headers, **{'Content-Length': size,
                        'Connection': 'close'}).items())
        if isinstance(status, bytes):
            status_line = status
        else:
            status_line = b'HTTP/1.1 %d %s' % (
                status, http.HTTPStatus(status).phrase.encode())
        conn.sendall(b'%s\r\n%s\r\n%s'
                     % (status_line, head.encode('latin-1'), start))
        left = size - len(start)
        chunk = b'x' * 65536
        while left > 0:
            conn.sendall(chunk[:left])
            left -= len(chunk)
