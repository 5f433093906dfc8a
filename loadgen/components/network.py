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

import logging
import os
import signal
import socket
import threading
import time

from loadgen import netserver
from loadgen.components import base

LOG = logging.getLogger(__name__)


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
        sock = socket.create_connection(self.address,
                                        timeout=self.params['timeout_s'])
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def setup_worker(self, index, state):
        payload = netserver.response_bytes(self.params['payload_bytes'])
        header = netserver.HEADER.pack(len(payload), self.response_size)
        reply = memoryview(bytearray(self.response_size))
        moved = len(payload) + (self.response_size
                                if self.params['mode'] == 'rr' else 0)
        clock = time.perf_counter_ns
        link = {'sock': None, 'backoff': 0.05}

        def operation():
            try:
                if link['sock'] is None:
                    link['sock'] = self._connect()
                sock = link['sock']
                started = clock()
                sock.sendall(header)
                sock.sendall(payload)
                if not netserver.recv_exactly(sock, reply):
                    raise ConnectionError('peer closed the connection')
            except OSError as exc:
                self._connection_failed(state, link, exc)
                return
            base.record(state, started, clock(), moved)
            link['backoff'] = 0.05
        return operation

    @staticmethod
    def _connection_failed(state, link, exc):
        base.record_error(state)
        LOG.debug('network operation failed: %s', exc)
        if link['sock'] is not None:
            link['sock'].close()
            link['sock'] = None
        time.sleep(link['backoff'])
        link['backoff'] = min(2.0, link['backoff'] * 2)

    def component_metrics(self, delta, elapsed_s):
        counters = delta['counters']
        metrics = {'net_mbps': counters['bytes'] / elapsed_s / 1e6}
        if self.params['mode'] == 'rr':
            metrics['net_rps'] = counters['ops'] / elapsed_s
            metrics.update(base.latency_metrics('net', 'rtt_ms',
                                                delta['histogram'], 1e-6))
        return metrics
