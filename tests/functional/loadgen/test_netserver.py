"""``shadow-loadgen serve``, the shared echo peer: bounded memory and
connections whatever a (possibly hostile) client asks for."""

import json
import socket
import subprocess
import threading
import time

from loadgen import netserver
from tests.functional.loadgen.conftest import loadgen_command
from tests.functional.loadgen.conftest import loadgen_env

BIG = netserver.MAX_MESSAGE         # 64 MiB, the protocol's maximum


def _serve(*extra):
    process = subprocess.Popen(
        loadgen_command('serve', '--port', '0', *extra),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=loadgen_env())
    host, port = json.loads(process.stdout.readline())['listening'].split(
        ':')
    return process, (host, int(port))


def _peak_rss_mb(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024.0
    raise AssertionError('no VmHWM')


def _round_trip(address, size_in, size_out):
    with socket.create_connection(address, timeout=30) as sock:
        sock.sendall(netserver.HEADER.pack(size_in, size_out))
        chunk = bytes(1 << 20)
        left = size_in
        while left:
            sent = sock.send(chunk[:min(left, len(chunk))])
            left -= sent
        reply = bytearray(size_out)
        assert netserver.recv_exactly(sock, memoryview(reply))
        return reply


def test_largest_messages_do_not_grow_the_server(tmp_path):
    process, address = _serve()
    try:
        before = _peak_rss_mb(process.pid)
        for _ in range(4):
            reply = _round_trip(address, BIG, BIG)
            assert len(reply) == BIG
        grown = _peak_rss_mb(process.pid) - before
    finally:
        process.terminate()
        process.communicate(timeout=10)
    # Before: every connection held a request and a response buffer of
    # the asked size (2 x 64 MiB); now a fixed scratch buffer.
    assert grown < 16, grown


def test_connections_beyond_the_limit_are_closed_at_once():
    process, address = _serve('--max-connections', '3')
    held = []
    try:
        for _ in range(3):
            sock = socket.create_connection(address, timeout=5)
            sock.sendall(netserver.HEADER.pack(4, 4) + b'ping')
            assert sock.recv(4) == bytes(range(4))
            held.append(sock)
        extra = socket.create_connection(address, timeout=5)
        held.append(extra)
        extra.sendall(netserver.HEADER.pack(4, 4) + b'ping')
        assert extra.recv(4) == b''             # closed, not served
        held[0].close()
        # The slot frees once the server has seen that close: retry.
        deadline = time.monotonic() + 5
        while True:
            again = socket.create_connection(address, timeout=5)
            held.append(again)
            again.sendall(netserver.HEADER.pack(4, 4) + b'ping')
            data = again.recv(4)
            if data or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert data == bytes(range(4))
    finally:
        for sock in held:
            sock.close()
        process.terminate()
        process.communicate(timeout=10)


def test_sigterm_stops_the_server_with_connections_still_open():
    """A SIGTERM ends the server at once, whatever its connections do: an
    open connection's handler never holds the exit up."""
    process, address = _serve()
    sock = socket.create_connection(address, timeout=5)
    try:
        sock.sendall(netserver.HEADER.pack(4, 4) + b'ping')
        assert sock.recv(4) == bytes(range(4))
        # The connection stays open: its handler waits for the next
        # message while the server is told to stop.
        started = time.monotonic()
        process.terminate()
        process.communicate(timeout=10)
        took = time.monotonic() - started
    finally:
        sock.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert took < 5


def _connect_in_a_loop(address, stop):
    while not stop.is_set():
        try:
            with socket.create_connection(address, timeout=1) as sock:
                sock.sendall(netserver.HEADER.pack(1, 1) + b'x')
                sock.recv(1)
        except OSError:
            pass


def test_sigterm_while_connections_arrive_ends_cleanly():
    """A SIGTERM that lands while the server starts a connection's thread
    stops it as cleanly as any other: at once, exit 0, no traceback."""
    for _ in range(5):
        process, address = _serve()
        stop = threading.Event()
        clients = [threading.Thread(target=_connect_in_a_loop,
                                    args=(address, stop)) for _ in range(4)]
        for client in clients:
            client.start()
        try:
            time.sleep(0.3)
            started = time.monotonic()
            process.terminate()
            _out, err = process.communicate(timeout=10)
            took = time.monotonic() - started
        finally:
            stop.set()
            for client in clients:
                client.join()
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 0, err
        assert 'Traceback' not in err, err
        assert took < 5
