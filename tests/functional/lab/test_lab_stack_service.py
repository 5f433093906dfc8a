"""The lab stack's ``shadow-service`` process starts whatever else takes
ports on the machine meanwhile: its sample collector's port is the one
it binds, not one chosen beforehand that another process can take
between the choice and the bind.

Real parts: the stack's own config writing and process start, a real
``shadow-service`` process on the real broker, real sockets.  The cloud
is a stand-in that does not answer (the service warns and runs on); the
collector starts all the same, as the lab's does.
"""

import configparser
import re
import socket
import types

import pytest
import yaml

from nova_shadow_lab import stack as stack_lib

pytestmark = [pytest.mark.nova]

LISTENING = re.compile(r'Sample collector listening on '
                       r'http://127\.0\.0\.1:(\d+)/v1/samples')


def _unanswering_cloud(directory):
    """A ``clouds.yaml`` cloud whose compute API refuses connections."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        closed = s.getsockname()[1]
    path = directory / 'clouds.yaml'
    path.write_text(yaml.safe_dump({'clouds': {'gone': {
        'auth_type': 'none', 'region_name': 'RegionOne',
        'api_timeout': 2,
        'compute_endpoint_override': 'http://127.0.0.1:%d/v2.1' % closed,
        'placement_endpoint_override': 'http://127.0.0.1:%d' % closed}}}))
    return types.SimpleNamespace(cloud_name='gone', clouds_yaml=str(path),
                                 image_id='lab-image', compute_url=None)


def _collector_port(config_file):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(config_file)
    return parser.getint('collector', 'port')


def test_the_service_starts_though_a_port_is_taken_before_it_binds(
        tmp_path, rabbit_url):
    stack = stack_lib.LabStack({'hosts': []}, str(tmp_path / 'stack'),
                               transport_url=rabbit_url)
    stack.directory = str(tmp_path)
    stack.cloud = _unanswering_cloud(tmp_path)
    stack.config_file = str(tmp_path / 'shadow-service.conf')
    stack.history_path = str(tmp_path / 'history.sqlite')
    stack.log_path = str(tmp_path / 'shadow-service.log')
    stack._write_service_conf()
    taken = []
    # Whatever port the config names (0: the collector binds one itself
    # and the shadows get its URL; nothing to take).
    named = _collector_port(stack.config_file)
    if named:
        # Another process takes the port the config names, after the
        # stack chose it and before the service binds it.  Before: the
        # service exited 2 ("[collector] cannot listen on
        # 127.0.0.1:<port>: [Errno 98] Address already in use") and the
        # stack's start failed.
        taker = socket.socket()
        taker.bind(('127.0.0.1', named))
        taker.listen()
        taken.append(taker)
    try:
        stack.start_service(timeout=60)
        assert stack.service.alive()
        with open(stack.log_path, encoding='utf-8') as f:
            (port,) = LISTENING.findall(f.read())
        # The URL the guests are given answers: the service's collector.
        with socket.create_connection(('127.0.0.1', int(port)), timeout=5):
            pass
        assert stack.service.stop() == 0
    finally:
        if stack.service is not None:
            stack.service.stop()
        for taker in taken:
            taker.close()
