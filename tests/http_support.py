"""Raw HTTP clients for servers' edge cases: a request trickled a byte at
a time."""

import socket
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
