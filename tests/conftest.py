"""Shared pytest fixtures: real InfluxDB, real Prometheus, real RabbitMQ,
real Redis."""

import os

# Nova runs here without eventlet; this must precede every nova import.
os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', 'True')
try:
    # Nova must see the process before anything imports eventlet, whatever
    # order pytest collects the test modules in.
    from nova import monkey_patch as _nova_monkey_patch
except ImportError:  # nova is only a test requirement of the Nova tests
    _nova_monkey_patch = None
else:
    _nova_monkey_patch.patch()

import socket  # noqa: E402

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

from tests.fixtures import influxdb  # noqa: E402
from tests.fixtures import prometheus  # noqa: E402
from tests.fixtures import redis_server  # noqa: E402

# ``ci`` (what tools/run-tests.sh selects) draws the same examples on every
# run, so main stays green or red for a reason in the code; ``explore``
# (HYPOTHESIS_PROFILE=explore) draws new ones each run to find new bugs,
# which then become ``@example`` regression cases.
settings.register_profile('ci', derandomize=True, print_blob=True)
settings.register_profile('explore', print_blob=True)
settings.load_profile(os.environ.get('HYPOTHESIS_PROFILE', 'explore'))

# An RPC server stopped in this process (each test's service, weigher or
# listener) waits for futurist's idle worker threads, which look for work
# once a second: a second per stop, over a hundred seconds a run.  They
# look every 50 ms here; nothing else about the threads changes.
try:
    from futurist import _thread as _futurist_thread
except ImportError:  # futurist comes with oslo.messaging
    pass
else:
    _futurist_thread.ThreadWorker.MAX_IDLE_FOR = 0.05


@pytest.fixture(scope='session')
def influxdb_server():
    """A real influxd for the whole session (skips only if the binary is
    missing and NOVA_SHADOW_REQUIRE_SERVICES is unset)."""
    if not influxdb.influxd_binary():
        if os.environ.get('NOVA_SHADOW_REQUIRE_SERVICES'):
            pytest.fail('influxd is required but not installed')
        pytest.skip('influxd not installed (apt-get install influxdb)')
    server = influxdb.InfluxDBServer().start()
    yield server
    server.cleanup()


@pytest.fixture(scope='session')
def prometheus_server():
    """A real Prometheus scraping a real node_exporter every second, for
    the whole session, with at least two scrapes stored (skips only if a
    binary is missing and NOVA_SHADOW_REQUIRE_SERVICES is unset)."""
    if not (prometheus.prometheus_binary()
            and prometheus.node_exporter_binary()):
        if os.environ.get('NOVA_SHADOW_REQUIRE_SERVICES'):
            pytest.fail('prometheus and prometheus-node-exporter are '
                        'required but not installed')
        pytest.skip('prometheus or node_exporter not installed (apt-get '
                    'install prometheus prometheus-node-exporter)')
    server = prometheus.PrometheusServer().start()
    try:
        server.wait_for_samples(count=2)
        yield server
    finally:
        server.cleanup()


def _listening(host, port):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope='session')
def rabbit_url():
    """The real RabbitMQ transport URL (``NOVA_SHADOW_RABBIT_URL`` or the
    local broker at 127.0.0.1:5672)."""
    url = os.environ.get('NOVA_SHADOW_RABBIT_URL',
                         'rabbit://guest:guest@127.0.0.1:5672/')
    if not _listening('127.0.0.1', 5672):
        if os.environ.get('NOVA_SHADOW_REQUIRE_SERVICES'):
            pytest.fail('RabbitMQ is required but nothing listens on 5672')
        pytest.skip('RabbitMQ is not running on 127.0.0.1:5672')
    return url


@pytest.fixture(scope='session')
def redis_url():
    """The real Redis (``NOVA_SHADOW_REDIS_URL`` or 127.0.0.1:6379) for
    tooz leader election."""
    url = os.environ.get('NOVA_SHADOW_REDIS_URL', 'redis://127.0.0.1:6379')
    if not _listening('127.0.0.1', 6379):
        if os.environ.get('NOVA_SHADOW_REQUIRE_SERVICES'):
            pytest.fail('Redis is required but nothing listens on 6379')
        pytest.skip('Redis is not running on 127.0.0.1:6379')
    return url


@pytest.fixture
def own_redis():
    """A Redis server of the test's own (``tests/fixtures/redis_server``)
    that it may pause or stop: never the shared one."""
    if not redis_server.redis_server_binary():
        if os.environ.get('NOVA_SHADOW_REQUIRE_SERVICES'):
            pytest.fail('redis-server is required but not installed')
        pytest.skip('redis-server is not installed')
    server = redis_server.RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def silent_server():
    """A TCP server on a free loopback port that accepts connections and
    never answers (``tests/fixtures/redis_server``)."""
    server = redis_server.SilentServer()
    try:
        yield server
    finally:
        server.close()


#: Tests that measure CPU shares, throughput or wall-clock time, or use
#: the lab's cgroups: tools/run-tests.sh runs them alone, after the
#: others have run in parallel (a second test process on the same cores
#: would move what they measure).  Paths relative to tests/.
SERIAL = (
    'e2e/',
    'functional/lab/',
    'functional/loadgen/',
    'functional/shadow_service/clouds/test_openstack_lab.py',
    'functional/shadow_service/clouds/test_openstack_short_budget.py',
    'functional/shadow_service/history/'
    'test_influxdb_outage_evaluation.py',
    'unit/harness/test_cell_lock.py',
    'unit/shadow_service/metrics/',
    'unit/shadow_service/test_request_bounds.py',
    'unit/nova_shadow_filter/test_weigher.py::'
    'test_slow_service_is_cut_off_at_the_deadline',
)
_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def pytest_collection_modifyitems(config, items):
    for item in items:
        where = os.path.relpath(str(item.path), _TESTS_DIR)
        node = where + '::' + item.name
        if any(node.startswith(prefix) for prefix in SERIAL):
            item.add_marker(pytest.mark.serial)
