"""Network component: request/response or streaming against a peer.

``connections`` worker processes each keep one TCP connection to
``peer`` (``host:port`` running ``shadow-loadgen serve``, or ``self``:
an echo server this run starts on loopback in its own process). In
``rr`` mode an operation sends ``payload_bytes`` and waits for
``response_bytes`` (default: the same); its round-trip time goes into the
histogram. In ``stream`` mode it sends ``payload_bytes`` and waits for a
1-byte acknowledgement. Failed connections are counted as errors and
retried with backoff.

Emits ``net_rps``, ``net_p50/p95/p99_rtt_ms`` and ``net_mbps`` (bytes
both ways) in rr mode, ``net_mbps`` (bytes sent) in stream mode.
"""

import errno
import logging
import os
import select
import signal
import socket
import threading
import time

from loadgen import netserver
from loadgen.components import base

LOG = logging.getLogger(__name__)
# The most one send or receive moves: messages are sent and read in
# slices of this, with the stop checked between them.
CHUNK_BYTES = 256 * 1024
HEAD_BYTES = netserver.HEADER.size
_IN_PROGRESS = (errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK,
                errno.EINTR)


class _Stopped(Exception):
    """The run stopped in the middle of an operation."""


def buffer_bytes(params):
    """Memory one connection's worker holds for messages: the answer is
    read through one buffer of at most ``CHUNK_BYTES``, the request sent
    from the shared fill buffer."""
    response = params['response_bytes']
    if params['mode'] == 'stream':
        response = response or 1
    else:
        response = response or params['payload_bytes']
    return min(response, CHUNK_BYTES) + min(params['payload_bytes'],
                                            CHUNK_BYTES) + HEAD_BYTES


def parse_peer(peer):
    host, _, port = peer.rpartition(':')
    return host.strip('[]'), int(port)


def _exit_with_parent(parent_pid):
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(0)


def _serve_forever(server, parent_pid):
    base.die_with_parent(parent_pid)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,),
                     daemon=True).start()
    server.serve_forever(poll_interval=0.2)


class NetworkComponent(base.Component):
    name = 'network'
    histogram = True

    def __init__(self, params, workdir):
        super().__init__(params, workdir)
        self._server_process = None
        self.address = None
        if params['mode'] == 'stream':
            self.response_size = params['response_bytes'] or 1
        else:
            self.response_size = (params['response_bytes'] or
                                  params['payload_bytes'])

    def worker_count(self):
        return self.params['connections']

    def rate_target(self):
        return self.params['target_rps']

    def prepare(self):
        if self.params['peer'] == 'self':
            server = netserver.EchoServer('127.0.0.1', 0)
            self.address = server.server_address[:2]
            self._server_process = base._CTX.Process(
                target=_serve_forever, args=(server, os.getpid()),
                name='loadgen-echo', daemon=True)
            self._server_process.start()
            server.server_close()
        else:
            self.address = parse_peer(self.params['peer'])
        with socket.create_connection(self.address,
                                      timeout=self.params['timeout_s']):
            pass

    def cleanup(self):
        if self._server_process is not None:
            self._server_process.terminate()
            self._server_process.join(2.0)
            if self._server_process.is_alive():
                self._server_process.kill()
                self._server_process.join(1.0)
            self._server_process = None

    def _connect(self):
        """A connection to the peer within ``timeout_s``; the stop is
        checked every pacing period while it is made."""
        deadline = time.monotonic() + self.params['timeout_s']
        error = OSError('no address for %s:%d' % self.address)
        for family, kind, proto, _, address in socket.getaddrinfo(
                self.address[0], self.address[1], type=socket.SOCK_STREAM):
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                code = sock.connect_ex(address)
                while code in _IN_PROGRESS:
                    if self.stopping():
                        raise _Stopped()
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError('connect timed out')
                    # poll, not select: a worker's descriptors can be
                    # above 1024 (it inherits the parent's, one per worker).
                    waiter = select.poll()
                    waiter.register(sock, select.POLLOUT)
                    if waiter.poll(min(left, base.PERIOD_S) * 1000):
                        code = sock.getsockopt(socket.SOL_SOCKET,
                                               socket.SO_ERROR)
                if code:
                    raise OSError(code, os.strerror(code))
            except OSError as exc:
                sock.close()
                error = exc
                continue
            except BaseException:
                sock.close()
                raise
            # Every send and receive waits at most one pacing period,
            # then checks the stop (and ``timeout_s`` without progress).
            sock.settimeout(base.PERIOD_S)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        raise error

    def setup_worker(self, index, state):
        """The operation: one request (``payload_bytes``) and its answer.

        Nothing is sized by the message: the request is sent in slices
        of ``netserver.FILL`` and the answer read through one buffer of
        at most ``CHUNK_BYTES`` and dropped, so a 64 MiB message costs a
        worker no more memory than a small one. Bytes are counted as
        they move, and between slices the stop is checked: a run ends
        within a pacing period of its end, not when a large message
        completes (an operation cut short by the stop is not an error,
        and not an operation).
        """
        payload_size = self.params['payload_bytes']
        response_size = self.response_size
        count_reply = self.params['mode'] == 'rr'
        fill = memoryview(netserver.FILL)
        head = HEAD_BYTES
        # The header and the start of the payload leave in one send, so
        # a small request is one system call.
        first = memoryview(netserver.HEADER.pack(payload_size,
                                                 response_size) +
                           netserver.FILL[:min(payload_size, CHUNK_BYTES)])
        first_payload = len(first) - head
        rest = payload_size - first_payload
        reply = memoryview(bytearray(min(response_size, CHUNK_BYTES)))
        reply_size = len(reply)
        timeout_s = self.params['timeout_s']
        stopping = self.stopping
        counters = state.counters
        bytes_i = base.BYTES
        clock = time.perf_counter_ns
        monotonic = time.monotonic
        timeout_error = TimeoutError
        link = {'sock': None, 'backoff': 0.05}

        def idle(since):
            """A call waited a pacing period without moving a byte."""
            if stopping():
                raise _Stopped()
            now = monotonic()
            if since is None:
                return now - base.PERIOD_S
            if now - since >= timeout_s:
                raise TimeoutError('no progress for %g s' % timeout_s)
            return since

        def send(sock, view):
            since = None
            while view:
                try:
                    sent = sock.send(view)
                except timeout_error:
                    since = idle(since)
                    continue
                since = None
                view = view[sent:]

        def receive(sock):
            since = None
            left = response_size
            while left:
                try:
                    got = sock.recv_into(reply, min(left, reply_size))
                except timeout_error:
                    since = idle(since)
                    continue
                if got == 0:
                    raise ConnectionError('peer closed the connection')
                since = None
                left -= got
                if count_reply:
                    counters[bytes_i] += got
                if left and stopping():
                    raise _Stopped()

        def operation():
            try:
                if link['sock'] is None:
                    link['sock'] = self._connect()
                sock = link['sock']
                started = clock()
                send(sock, first)
                counters[bytes_i] += first_payload
                left = rest
                while left:
                    if stopping():
                        raise _Stopped()
                    size = min(left, CHUNK_BYTES)
                    send(sock, fill[:size])
                    counters[bytes_i] += size
                    left -= size
                receive(sock)
            except _Stopped:
                # Cut short by the stop: the connection is mid-message.
                if link['sock'] is not None:
                    link['sock'].close()
                    link['sock'] = None
                return
            except OSError as exc:
                self._connection_failed(state, link, exc)
                return
            base.record(state, started, clock(), 0)
            link['backoff'] = 0.05
        return operation

    def _connection_failed(self, state, link, exc):
        base.record_error(state)
        LOG.debug('network operation failed: %s', exc)
        if link['sock'] is not None:
            link['sock'].close()
            link['sock'] = None
        self.sleep(link['backoff'])
        link['backoff'] = min(2.0, link['backoff'] * 2)

    def component_metrics(self, delta, elapsed_s):
        counters = delta['counters']
        metrics = {'net_mbps': counters['bytes'] / elapsed_s / 1e6}
        if self.params['mode'] == 'rr':
            metrics['net_rps'] = counters['ops'] / elapsed_s
            metrics.update(base.latency_metrics('net', 'rtt_ms',
                                                delta['histogram'], 1e-6))
        return metrics
