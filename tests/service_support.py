"""A real shadow service for tests: private config, real parts, any broker.

``make_conf`` gives a private ``ConfigOpts`` with every nova-shadow option
and oslo.messaging's (registered by its ConfFixture, since some live only on
the global CONF otherwise).  ``RunningService`` builds the manager from real
parts (the twin, a history store, the analyzer) and serves it on a topic.
"""

import contextlib
import threading
import time
import uuid

import oslo_messaging as messaging
from oslo_config import cfg
from oslo_messaging import conffixture

from shadow_service import conf as shadow_conf
from shadow_service import measurements as names
from shadow_service import rpcapi
from shadow_service import service
from shadow_service.clouds.sim import driver as sim_driver
from shadow_service.history import base as history_base
from shadow_service.history import memory


def seed_evaluation(history, evaluation_id, request, profile_name, metrics,
                    hosts, start, level_of, samples=10):
    """Shadow samples of one earlier evaluation of the workload on
    ``hosts`` (``samples`` a second of every metric from ``start``,
    ``level_of(host index, metric index, step)``), as the evaluator
    records them, and its record."""
    points = []
    for index, host in enumerate(hosts):
        for metric_index, metric in enumerate(metrics):
            for step in range(samples):
                points.append(history_base.Point(
                    names.SHADOW_SAMPLE,
                    {names.TAG_EVALUATION: evaluation_id,
                     names.TAG_SHADOW: 'shadow-%s' % host,
                     names.TAG_HOST: host, names.TAG_PROFILE: profile_name,
                     names.TAG_METRIC: metric},
                    {names.FIELD_VALUE: level_of(index, metric_index, step)},
                    start + step))
    history.write(points)
    history.put_evaluation({'evaluation_id': evaluation_id,
                            'status': 'finished', 'source': 'shadows',
                            'confidence': 1.0, 'hosts': [],
                            'request': request}, when=start + samples)


def twin_with_hosts(conf, history, hosts, twin=sim_driver.SimDriver):
    """The twin on ``history`` (a ``twin``: SimDriver or a subclass) with
    ``hosts`` (names or ``{'host': name}``) already made up, as a cloud's
    hosts exist before it is asked about them.  Making a host up parses
    the bundled traces (once a process) and backfills a day of its
    monitoring: seconds of CPU, many more on a busy machine, which would
    otherwise come out of the wall-clock budget of the first evaluation
    that names it (reading host facts counts), and an evaluation left no
    time to measure is answered from history, without shadows."""
    driver = twin(conf, history)
    names = [h['host'] if isinstance(h, dict) else h for h in hosts]
    known = driver.ensure_hosts(names)
    assert known == set(names), 'the twin did not make up %s' % sorted(
        set(names) - known)
    return driver


def wait_for(predicate, timeout=10.0):
    """Poll ``predicate`` every 20 ms until it is true; AssertionError
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.02)


def make_conf(**groups):
    """A parsed private ConfigOpts; ``groups={'shadow': {...}}`` overrides."""
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    fixture = conffixture.ConfFixture(conf)
    fixture.setUp()
    conf([], project='nova-shadow-test')
    # Tests share the broker: only a test that asks for it listens to
    # Nova's notifications (on its own exchange).
    conf.set_override('listen', False, group='nova_notifications')
    for group, values in groups.items():
        for name, value in values.items():
            conf.set_override(name, value, group=group)
    return conf


def conf_from_file(tmp_path, text):
    """``(conf, path)``: the options read from a configuration file in
    ``tmp_path`` holding ``text`` (after a ``[history]`` section with a
    SQLite path of the test's own), as a daemon reads its file."""
    path = tmp_path / 'shadow-service.conf'
    path.write_text('[history]\nsqlite_path = %s\n%s'
                    % (tmp_path / 'history.sqlite', text))
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf([], project='nova-shadow', default_config_files=[str(path)])
    return conf, path


@contextlib.contextmanager
def calls_refused_at_once():
    """The state a broker that went away leaves behind in a command: as
    many earlier calls still without an answer as the deadline around
    them allows, so that each new call is refused at once instead of
    waiting (``nova_shadow_filter.breaker.call_with_deadline``)."""
    from nova_shadow_filter import breaker

    release = threading.Event()
    try:
        for _ in range(breaker.MAX_OVERRUNNING):
            try:
                breaker.call_with_deadline(release.wait, 0.01)
            except breaker.DeadlineExceeded:
                pass
        yield
    finally:
        release.set()
        # The helpers answer and are counted back before the next test.
        deadline = time.monotonic() + 5
        while breaker._overrunning and time.monotonic() < deadline:
            time.sleep(0.02)


def unique_topic():
    return 'shadow-test-%s' % uuid.uuid4().hex[:12]


class RunningService:
    """The real manager served over ``transport_url`` on a fresh topic."""

    def __init__(self, transport_url, topic=None, store=None, **groups):
        self.topic = topic or unique_topic()
        groups = {name: dict(values) for name, values in groups.items()}
        groups.setdefault('shadow', {})['topic'] = self.topic
        self.conf = make_conf(**groups)
        self.history = store if store is not None else memory.MemoryStore()
        self.transport_url = transport_url
        self.parts = service.build(self.conf, history=self.history)
        self.manager = self.parts.manager
        self.server = service.RPCServer(self.parts,
                                        transport_url=transport_url,
                                        server='test-%s' % self.topic)

    def start(self):
        self.server.start()
        return self

    def stop(self):
        self.server.stop()

    def client(self):
        return rpcapi.ShadowAPI(self.conf, topic=self.topic,
                                transport_url=self.transport_url)

    def wait_until_serving(self, timeout=30.0):
        """Block until a call round-trips (the consumer is declared)."""
        api = self.client()
        deadline = time.monotonic() + timeout
        while True:
            try:
                api.get_evaluation({}, str(uuid.uuid4()), timeout=2)
            except Exception as e:  # EvaluationNotFound means it answered
                if type(e).__name__.startswith('EvaluationNotFound'):
                    return
                if time.monotonic() > deadline:
                    raise
            else:
                return

    @property
    def evaluations(self):
        return dict(self.manager._evaluations)


def typed_error(exc, name):
    """True if ``exc`` is the service's typed error ``name`` (remote
    exceptions arrive as a subclass named ``<name>_Remote``)."""
    return type(exc).__name__ in (name, name + '_Remote')


__all__ = ['RunningService', 'make_conf', 'messaging', 'typed_error']
