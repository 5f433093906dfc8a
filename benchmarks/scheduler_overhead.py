"""What the ShadowWeigher adds to a scheduling request, next to Nova's own.

A real ``shadow-service`` process (the daemon, ``shadow-service
--config-file ...``) serves its own topic on the real RabbitMQ
(``--transport-url``, default ``rabbit://guest:guest@127.0.0.1:5672/``)
with the twin driver and an SQLite history seeded with one earlier
evaluation of the workload on every candidate host, so a boot is answered
from the prior (history alone is confident: no shadow is booted).
Scheduler workers are separate processes running the deployed
``nova_shadow_filter.weigher.ShadowWeigher`` inside Nova's real
``HostWeightHandler`` over real ``HostState`` objects, with a RequestSpec
carrying ``shadow_profile`` (so the request is built by the deployed
request builder and the operation is looked up in Nova's API database,
SQLite here). Measured per request, in the same run:

* ``shadow``: ``get_weighed_objects([ShadowWeigher])``: Nova's handler
  with the weigher (the RPC, the service's prior, both ends' JSON), and
  how many requests got a ranking (the rest got neutral weights:
  deadline, open circuit);
* ``handler_alone``: ``get_weighed_objects([])`` on the same candidates
  (Nova wraps and sorts the hosts before any weigher), so that
  ``shadow_added`` (``shadow - handler_alone``, paired per request) is
  what the weigher adds to a request: its own code and its share of the
  handler (Nova normalises each weigher's weights and builds three debug
  dictionaries of every host for it, whatever the weigher);
  ``shadow_weigh_objects_in_handler``: the weigher's ``weigh_objects``
  alone as the handler calls it;
* ``nova``: ``get_weighed_objects(<nova.scheduler.weights.all_weighers>)``
  on the same HostStates and RequestSpec: the baseline; and Nova's
  ``RAMWeigher`` alone (``nova_ram``: what the handler costs around any
  one weigher); with the circuit open or no hint, also the weigher's own
  ``weigh_objects`` called without the handler (``shadow_own``: the
  weigher's own code when it sends nothing);
* ``floor``: the same weigher against an endpoint in this process that
  answers at once with the reply the service gave: as a service of RPC
  API 1.1 (the weigher then sends host lists), whole (``full``) or with
  only each host's name, score and confidence (``compact``), and as one
  of 1.3 (``columns``: host columns in, scores and confidences in the
  request's order out, what the weigher sends to a current service): the
  transport and serialisation floor under the service's own work;
* ``bare oslo.messaging call``: the floor under all of the above, at
  1,000 hosts against the ``columns`` endpoint: the weigher's own RPC
  client (the same transport and options) calling in the worker's thread,
  without Nova's handler, the deadline's helper thread, the operation
  look-up or any parsing; ``tiny`` (a 1-character payload) and
  ``columns`` (the request and host columns the weigher sends, about
  49 kB, answered with the service's reply as columns): whether a
  synchronous round trip fits the aim on this machine at all;
* how each request was answered (``answered``): by the service
  (``service``), by the weigher from its cache of answers from history
  (``cache``, ``[shadow_weigher] prior_cache_ttl``, on by default), or
  from the cache with the hosts whose facts changed neutral (and asked
  again in the background: ``cache, changed hosts neutral``);
* 10, 100 and 1,000 candidate hosts, one worker; 1,000 hosts where the
  host weighed best takes the VM after each request (its free RAM and
  disk, vCPUs used and instances change, as Nova's
  ``HostState.consume_from_request`` makes them: what a cloud does
  between two boots); the same two at 1,000 hosts with the cache off
  (``prior_cache_ttl = 0``, every request waits for the service: the
  baseline); 1,000 hosts with another
  candidate list on each request (one host left out, a different one each
  time, as filters leave different hosts for different requests: the
  service cannot reuse the ranking it made for the request before, though
  it still keeps each host's estimates); 1,000 hosts with ``--workers``
  workers asking at once; 1,000 hosts with the circuit open (the breaker
  opened by real outages against a topic nobody serves) and with no hint
  (nothing is sent). The aim at 1,000 hosts is judged on the worse p99 of
  ``shadow_added`` in the two 1,000-host cases with the cache on (the
  same candidates again, and the chosen host changing); the p99 of the
  weigher's own ``weigh_objects`` and of the whole handler with it are
  reported next to it; the circuit-open aim likewise.

The twin's clock does not move in the daemon, so every request with the
same candidates finds the same history and, after the first, is answered
with the ranking the service made for the first (see
``doc/source/evaluation.rst``, "The prior"); in a cloud that holds within
one 10-second step of the clock while no new sample arrives. The
``updates`` case below measures the service when the history and the
clock move.

Before the service starts, ``ShadowManager.evaluate`` of the assembled
service is timed in-process once per host count (the service's own
cost, without RPC), and at 1,000 hosts while the history changes
(``updates``): between requests the driver's clock moves one second and
a writer adds a second of shadow samples for ``UPDATED_SHARE`` of the
hosts (3 %, 30 hosts a second), so the prior reads the store again every
few requests and the kept estimates of the hosts that changed are made
again; measured with the kept estimates (the product) and, in the same
run on the same history, with every host estimated afresh on every
request (``keep_estimates = False``, the baseline), alternating.  The
twin's clock does not move in the daemon (it only moves when shadows
run), so this case is measured in-process, without the RPC the other
cases add.

Usage::

    python benchmarks/scheduler_overhead.py [--requests N]
        [--workers W] [--tag NAME] [--only TEXT ...]

at normal priority (the figures are latencies: a niced run measures the
machine's other work).  Prints a table, with the load average at the
start and end, and writes
``benchmarks/results/scheduler_overhead.json`` (``--tag NAME`` writes
``scheduler_overhead-NAME.json``).  ``--only TEXT`` (repeatable) runs
only the cases whose name contains TEXT, or the case ``NAME@HOSTS``
of exactly that name and host count (``"circuit open"``,
``"boot, prior@1000"``, ``"floor, columns"``, ``updates``, ``bare
oslo.messaging call``): the service and the floor endpoints start only
for the cases chosen, no aim is judged, and the file is
``scheduler_overhead-only.json`` unless ``--tag`` names it.
"""

import argparse
import collections
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
# benchlib sits beside this script (on the path when it runs as one, not
# when a test loads it).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchlib  # noqa: E402

HOST_COUNTS = (10, 100, 1000)
#: Names ``--only`` selects the updates and bare-call measurements by.
UPDATES_CASE = 'updates'
BARE_CASE = 'bare oslo.messaging call'
PROFILE = 'web'
#: Longest wait, after a worker's requests, for its records still queued.
RECORDS_DRAIN_S = 60.0
FLAVOR = {'name': 'm1.medium', 'vcpus': 2, 'ram_mb': 4096, 'disk_gb': 20}
# Samples per host and metric in the seeded history (a 10 s shadow run
# at one sample a second).
SEED_SAMPLES = 10
AIM_P99_MS_1000 = 10.0
#: Share of the hosts whose history changes each second in ``updates``.
UPDATED_SHARE = 0.03
AIM_P99_MS_OPEN = 1.0
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           'results')
DEFAULT_URL = 'rabbit://guest:guest@127.0.0.1:5672/'


def host_names(count):
    return ['bench-%04d' % i for i in range(count)]


def percentile(values, q):
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))
    return ordered[index]


def summary_ms(seconds):
    ms = [s * 1000.0 for s in seconds]
    return {'n': len(ms), 'p50_ms': round(percentile(ms, 0.50), 3),
            'p99_ms': round(percentile(ms, 0.99), 3),
            'mean_ms': round(statistics.fmean(ms), 3),
            'max_ms': round(max(ms), 3)}


# -- the service ------------------------------------------------------------
def write_config(directory, transport_url, topic):
    path = os.path.join(directory, 'shadow.conf')
    with open(path, 'w') as f:
        f.write('[DEFAULT]\n'
                'transport_url = %s\n'
                'log_file = %s\n'
                'debug = false\n'
                '[shadow]\n'
                'topic = %s\n'
                'cloud_driver = sim\n'
                '[history]\n'
                'store = sqlite\n'
                'sqlite_path = %s\n'
                '[nova_notifications]\n'
                'listen = false\n'
                % (transport_url, os.path.join(directory, 'service.log'),
                   topic, os.path.join(directory, 'history.db')))
    return path


def load_conf(path):
    from oslo_config import cfg

    from shadow_service import conf as shadow_conf
    from shadow_service import rpc

    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    rpc.register_opts(conf)
    conf(['--config-file', path], project='nova-shadow')
    return conf


def seed_history(conf, hosts):
    """One earlier evaluation of the workload on every host, as the
    evaluator records it: its request (the deployed request builder) and
    ``SEED_SAMPLES`` shadow samples per metric the profile weighs, stamped
    on the twin's clock a few minutes ago."""
    from nova_shadow_filter import request as request_lib
    from shadow_service import clouds
    from shadow_service import measurements as names
    from shadow_service import service
    from shadow_service.analysis import analyzer as analyzer_mod
    from shadow_service.history import base
    from shadow_service.workloads import profiles

    history = service.build_history(conf)
    driver = clouds.load_driver(conf, history)
    now = driver.now()
    request = request_lib.build_request(FLAVOR, PROFILE)
    profile = profiles.resolve_profile(request, ())
    analyzer = analyzer_mod.Analyzer.from_conf(conf)
    metrics = sorted(analyzer.weights(profile.sensitivity))
    evaluation_id = str(uuid.uuid4())
    points = []
    start = now - 600.0
    for index, host in enumerate(hosts):
        for metric_index, metric in enumerate(metrics):
            level = 100.0 + (index * 37 + metric_index * 11) % 60
            for step in range(SEED_SAMPLES):
                points.append(base.Point(
                    names.SHADOW_SAMPLE,
                    {names.TAG_EVALUATION: evaluation_id,
                     names.TAG_SHADOW: 'shadow-%s' % host,
                     names.TAG_HOST: host, names.TAG_PROFILE: profile.name,
                     names.TAG_METRIC: metric},
                    {names.FIELD_VALUE: level + (step % 3)},
                    start + step))
    history.write(points)
    history.flush()
    history.put_evaluation({'evaluation_id': evaluation_id,
                            'status': 'finished', 'source': 'shadows',
                            'confidence': 1.0, 'hosts': [],
                            'request': request}, when=start + SEED_SAMPLES)
    driver.stop()
    history.close()
    return {'metrics': metrics, 'points': len(points), 'clock': now,
            'evaluation_id': evaluation_id}


def start_service(config_path, directory):
    binary = os.path.join(os.path.dirname(sys.executable), 'shadow-service')
    out = open(os.path.join(directory, 'service.out'), 'w')
    return subprocess.Popen([binary, '--config-file', config_path],
                            stdout=out, stderr=subprocess.STDOUT)


def recorded_evaluations(directory):
    """How many evaluations the service's SQLite history holds (each
    request asked of the service and each record of one answered from
    the weigher's cache is one)."""
    import sqlite3

    from shadow_service import measurements as names

    with contextlib.closing(sqlite3.connect(
            os.path.join(directory, 'history.db'), timeout=30)) as db:
        return db.execute('SELECT count(*) FROM series WHERE measurement '
                          '= ?', (names.EVALUATION,)).fetchone()[0]


def settled_evaluations(directory, quiet_s=3.0, timeout=120.0):
    """:func:`recorded_evaluations` once it has not grown for
    ``quiet_s`` (the service records the weigher's records on a thread of
    its own, after the requests), or after ``timeout``."""
    deadline = time.monotonic() + timeout
    count, since = recorded_evaluations(directory), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = recorded_evaluations(directory)
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return count


def wait_until_serving(conf, topic, transport_url, timeout=90.0):
    from shadow_service import rpcapi

    api = rpcapi.ShadowAPI(conf, topic=topic, transport_url=transport_url)
    deadline = time.monotonic() + timeout
    while True:
        try:
            api.get_evaluation({}, str(uuid.uuid4()), timeout=3)
            return
        except Exception as e:
            if type(e).__name__.startswith('EvaluationNotFound'):
                return
            if time.monotonic() > deadline:
                raise


class CannedRanking:
    """An RPC endpoint of API 1.1 answering ``rank_hosts`` at once with
    a reply the real service gave for as many hosts (``compact``: only
    each host's name, score and confidence): the transport and
    serialisation floor under the service's own work when the weigher
    sends host lists (it does, to a service that does not take host
    columns)."""

    version = '1.1'

    def __init__(self, replies, compact=False):
        import oslo_messaging as messaging

        self.target = messaging.Target(version=self.version)
        self.replies = {}
        for count, reply in replies.items():
            if compact:
                reply = dict(reply, hosts=[
                    {'host': h['host'], 'score': h['score'],
                     'confidence': h['confidence']}
                    for h in reply['hosts']])
            self.replies[count] = reply

    def ping(self, ctxt, payload):
        """The bare call's tiny answer (``bare`` cases)."""
        return payload

    def rank_hosts(self, ctxt, request, hosts, budget_s, detail=True):
        # The reply chosen at construction, whatever ``detail`` asks.
        return self.replies[len(hosts)]


class CannedColumns(CannedRanking):
    """:class:`CannedRanking` of API 1.3: ``rank_host_columns`` answers
    the service's reply as columns in the request's order (made once per
    host count and list of names)."""

    version = '1.3'

    def __init__(self, replies):
        super().__init__(replies)
        self.columns = {}

    def rank_host_columns(self, ctxt, request, hosts, budget_s):
        from shadow_service import manager

        names = hosts['host']
        found = self.columns.get(len(names))
        if found is None or found[0] != names:
            found = self.columns[len(names)] = (names, manager.columns_reply(
                self.replies[len(names)], names))
        return found[1]


def serve_canned(conf, args, topic, endpoint):
    import oslo_messaging as messaging

    from shadow_service import rpc
    from shadow_service import rpcapi

    transport = rpc.get_transport(conf, args.transport_url)
    target = messaging.Target(exchange=rpcapi.EXCHANGE, topic=topic,
                              server='floor')
    server = messaging.get_rpc_server(transport, target, [endpoint])
    server.start()
    return server


# -- a scheduler worker -----------------------------------------------------
def _nova_setup(args):
    os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', 'True')
    from nova import monkey_patch
    monkey_patch.patch()
    import nova.conf
    from nova import objects
    from nova.tests import fixtures as nova_fixtures

    objects.register_all()
    conf = nova.conf.CONF
    conf([], project='nova')
    from nova_shadow_filter import weigher  # noqa: F401 (its options)
    conf.set_override('transport_url', args.transport_url,
                      group='shadow_weigher')
    conf.set_override('topic', args.topic, group='shadow_weigher')
    # The weigher looks the instance up in Nova's API database.
    database = nova_fixtures.Database(database='api')
    database.setUp()
    return conf


def _host_state(host_manager, objects, name, index):
    compute = objects.ComputeNode(
        uuid=str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), host=name,
        hypervisor_hostname=name, vcpus=64, vcpus_used=index % 48,
        memory_mb=262144, memory_mb_used=(index * 4096) % 200000,
        free_ram_mb=262144 - (index * 4096) % 200000, local_gb=2000,
        local_gb_used=index % 1500, free_disk_gb=2000 - index % 1500,
        disk_available_least=2000 - index % 1500, running_vms=index % 30,
        current_workload=index % 3, hypervisor_type='QEMU',
        hypervisor_version=8002000, cpu_info='{}',
        stats={'num_instances': str(index % 30),
               'io_workload': str(index % 3)},
        numa_topology=None, pci_device_pools=None, metrics='[]',
        cpu_allocation_ratio=4.0, ram_allocation_ratio=1.0,
        disk_allocation_ratio=1.0, updated_at=None, host_ip='127.0.0.1',
        supported_hv_specs=[])
    state = host_manager.HostState(name, name, 'cell1')
    state.update(compute=compute, aggregates=[],
                 service={'disabled': False})
    return state


def _request_spec(objects, hints):
    flavor = objects.Flavor(name=FLAVOR['name'], vcpus=FLAVOR['vcpus'],
                            memory_mb=FLAVOR['ram_mb'],
                            root_gb=FLAVOR['disk_gb'], ephemeral_gb=0,
                            swap=0, extra_specs={})
    return objects.RequestSpec(
        scheduler_hints={k: [v] for k, v in hints.items()},
        instance_group=None, flavor=flavor, project_id='bench',
        instance_uuid=str(uuid.uuid4()), num_instances=1,
        image=objects.ImageMeta.from_dict({'properties': {}}))


def open_circuit(conf, topic, handler, shadow, states, hints):
    """Open ``shadow``'s circuit by real outages: calls through Nova's
    ``handler`` to a topic nobody serves, with short deadlines."""
    from nova import objects

    conf.set_override('topic', topic + '-nobody', group='shadow_weigher')
    conf.set_override('default_budget', 0.5, group='shadow_weigher')
    conf.set_override('deadline_margin', 0.0, group='shadow_weigher')
    for _ in range(shadow.breaker.failure_threshold):
        handler.get_weighed_objects([shadow], states,
                                    _request_spec(objects, hints))
    assert shadow.breaker.state == shadow.breaker.OPEN


def run_worker(args):
    """Time ``args.requests`` scheduling requests; JSON on stdout."""
    conf = _nova_setup(args)
    from nova import objects
    from nova.scheduler import host_manager
    from nova.scheduler import weights

    from nova_shadow_filter import weigher as weigher_mod

    handler = weights.HostWeightHandler()
    nova_weighers = [cls() for cls in handler.get_matching_classes(
        conf.filter_scheduler.weight_classes)]
    shadow = weigher_mod.ShadowWeigher()
    states = [_host_state(host_manager, objects, name, i)
              for i, name in enumerate(host_names(args.hosts))]
    hints = {} if args.no_hint else {'shadow_profile': PROFILE}
    if args.floor or args.no_cache:
        # The floor endpoints answer at RPC API 1.1 or 1.3; the baseline
        # asks the service about every request, as before the cache.
        conf.set_override('prior_cache_ttl', 0.0, group='shadow_weigher')
    kinds = collections.Counter()
    plan_call = shadow._plan_call

    def counted_plan_call(spec_obj, candidates):
        # How each request was answered: by the service, from the
        # weigher's cache of answers from history, or from the cache with
        # the changed hosts asked again.
        plan = plan_call(spec_obj, candidates)
        kinds['none' if plan is None
              else 'service' if plan.local is None
              else 'cache, changed hosts neutral' if plan.changed
              else 'cache'] += 1
        return plan

    shadow._plan_call = counted_plan_call
    own_in_handler = []
    weigh_objects = shadow.weigh_objects

    def timed_weigh_objects(weighed_obj_list, spec_obj):
        # The weigher's own code as Nova's handler calls it (its share of
        # the handler, normalising its weights and building its debug
        # dictionaries, is in ``shadow - handler_alone``).
        started = time.perf_counter()
        try:
            return weigh_objects(weighed_obj_list, spec_obj)
        finally:
            own_in_handler.append(time.perf_counter() - started)

    shadow.weigh_objects = timed_weigh_objects
    if args.floor:
        conf.set_override('topic', args.topic + '-floor',
                          group='shadow_weigher')
    if args.open_circuit:
        open_circuit(conf, args.topic, handler, shadow, states, hints)
    if args.bare:
        return run_bare(args, shadow, states, hints)
    # Warm up: the first call connects to the broker.
    for _ in range(1):
        handler.get_weighed_objects([shadow], states,
                                    _request_spec(objects, hints))
    if args.start_at:
        time.sleep(max(0.0, args.start_at - time.time()))
    kinds.clear()
    ram = [w for w in nova_weighers if type(w).__name__ == 'RAMWeigher']
    timings = {'shadow': [], 'nova': [], 'nova_ram': [], 'shadow_own': [],
               'handler_alone': [], 'shadow_in_handler': []}
    weighed_by_shadow = 0
    ends_at = time.monotonic() + args.max_seconds
    for index in range(args.requests):
        if timings['shadow'] and time.monotonic() > ends_at:
            break
        spec = _request_spec(objects, hints)
        candidates = states
        if args.vary_hosts:
            # Another candidate list each request (as the filters leave
            # different hosts for different requests): one host left out,
            # a different one each time.
            left_out = (index * 7919) % len(states)
            candidates = states[:left_out] + states[left_out + 1:]
        started = time.perf_counter()
        del own_in_handler[:]
        weighed = handler.get_weighed_objects([shadow], candidates, spec)
        timings['shadow'].append(time.perf_counter() - started)
        timings['shadow_in_handler'].append(sum(own_in_handler))
        if args.chosen_host_changes:
            # The VM lands on the host weighed best, which then has less
            # free RAM and disk, more vCPUs used and one more instance
            # (as Nova's HostState.consume_from_request makes it).
            chosen = weighed[0].obj
            chosen.free_ram_mb -= FLAVOR['ram_mb']
            chosen.free_disk_mb -= FLAVOR['disk_gb'] * 1024
            chosen.vcpus_used += FLAVOR['vcpus']
            chosen.num_instances += 1
        if len({round(w.weight, 9) for w in weighed}) > 1:
            weighed_by_shadow += 1
        started = time.perf_counter()
        handler.get_weighed_objects(nova_weighers, states, spec)
        timings['nova'].append(time.perf_counter() - started)
        started = time.perf_counter()
        handler.get_weighed_objects(ram, states, spec)
        timings['nova_ram'].append(time.perf_counter() - started)
        # Nova's handler with no weigher (it wraps and sorts the hosts):
        # what a request costs before any weigher, so that
        # ``shadow - handler_alone`` (same request) is what the weigher
        # adds, its share of the handler included (Nova normalises every
        # weigher's weights and builds its debug dictionaries per host).
        started = time.perf_counter()
        handler.get_weighed_objects([], candidates, spec)
        timings['handler_alone'].append(time.perf_counter() - started)
        if args.open_circuit or args.no_hint:
            # The weigher's own code, without Nova's handler around it
            # (these cases send nothing, so it can be called again).
            objs = [weights.WeighedHost(state, 0.0) for state in states]
            started = time.perf_counter()
            shadow.weigh_objects(objs, spec)
            timings['shadow_own'].append(time.perf_counter() - started)
    recorder = shadow._recorder
    unsent = 0
    if recorder is not None:
        # A scheduler goes on running: the records still waiting are
        # sent after the burst.  This worker exits, so it waits for them
        # (at most RECORDS_DRAIN_S) and reports those it could not send.
        drain_ends = time.monotonic() + RECORDS_DRAIN_S
        while (recorder._queue.qsize()
               and time.monotonic() < drain_ends):
            time.sleep(0.05)
        unsent = recorder._queue.qsize()
    json.dump({'timings': timings, 'weighed_by_shadow': weighed_by_shadow,
               'answered': dict(kinds),
               'records_dropped': recorder.dropped if recorder else 0,
               'records_unsent': unsent,
               'breaker': shadow.breaker.state,
               'nova_weighers': [type(w).__name__ for w in nova_weighers]},
              sys.stdout)
    return 0


def run_bare(args, shadow, states, hints):
    """Time bare oslo.messaging calls to the floor endpoint from this
    scheduler worker, through the weigher's own RPC client (the same
    transport, options and exchange) in the calling thread: no Nova
    handler, no deadline thread, no operation look-up, no parsing.
    ``tiny``: ``ping`` with a 1-character payload; ``columns``:
    ``rank_host_columns`` with the request and host columns the weigher
    sends for these hosts (the floor endpoint answers the service's
    reply as columns). JSON on stdout."""
    from nova import objects

    from nova_shadow_filter import weigher as weigher_mod

    spec = _request_spec(objects, hints)
    request = weigher_mod.build_request(spec, PROFILE)
    columns = weigher_mod.describe_host_columns(states)
    client = shadow.api.client
    # The budget and timeout the weigher would send with this request.
    budget = shadow._budget(spec)
    timeout = budget + weigher_mod.CONF.shadow_weigher.deadline_margin
    calls = {
        'tiny': lambda: client.prepare(
            version='1.0', timeout=timeout).call({}, 'ping', payload='x'),
        'columns': lambda: client.prepare(
            version='1.3', timeout=timeout).call(
                {}, 'rank_host_columns', request=request, hosts=columns,
                budget_s=budget)}
    for call in calls.values():
        call()  # the first call connects to the broker
    timings = {name: [] for name in calls}
    ends_at = time.monotonic() + args.max_seconds
    for _ in range(args.requests):
        if timings['tiny'] and time.monotonic() > ends_at:
            break
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            timings[name].append(time.perf_counter() - started)
    json.dump({'bare': timings,
               'request_bytes': {
                   'tiny': len(json.dumps({'payload': 'x'})),
                   'columns': len(json.dumps({'request': request,
                                              'hosts': columns}))}},
              sys.stdout)
    return 0


def measure_bare(args, hosts):
    """The bare oslo.messaging calls of :func:`run_bare`: the floor under
    the weigher (and under the ``floor, columns`` cases)."""
    result = spawn_workers(args, hosts, 1, floor=True, bare=True)[0]
    cases = []
    for name in ('tiny', 'columns'):
        case = {'case': 'bare call, %s' % name,
                'hosts': hosts, 'workers': 1,
                'request_bytes': result['request_bytes'][name],
                'call': summary_ms(result['bare'][name])}
        print('  %-28s p50 %8.3f p99 %8.3f ms (%d B request)' % (
            case['case'], case['call']['p50_ms'], case['call']['p99_ms'],
            case['request_bytes']), flush=True)
        cases.append(case)
    return cases


def spawn_workers(args, hosts, count, **flags):
    start_at = time.time() + 20.0 if count > 1 else 0.0
    command = [sys.executable, os.path.abspath(__file__), '--worker',
               '--hosts', str(hosts), '--requests', str(args.requests),
               '--topic', args.topic, '--transport-url', args.transport_url,
               '--start-at', str(start_at),
               '--max-seconds', str(args.max_seconds)]
    for flag, on in flags.items():
        if on:
            command.append('--' + flag.replace('_', '-'))
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
             for _ in range(count)]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError('worker failed (%s)' % proc.returncode)
        results.append(json.loads(out))
    return results


def measure_case(args, name, hosts, workers=1, **flags):
    results = spawn_workers(args, hosts, workers, **flags)
    shadow = [t for r in results for t in r['timings']['shadow']]
    nova = [t for r in results for t in r['timings']['nova']]
    ram = [t for r in results for t in r['timings']['nova_ram']]
    own = [t for r in results for t in r['timings']['shadow_own']]
    # Paired per request: the handler with the weigher, less the same
    # handler with no weigher.
    added = [s - a for r in results
             for s, a in zip(r['timings']['shadow'],
                             r['timings']['handler_alone'])]
    ram_added = [s - a for r in results
                 for s, a in zip(r['timings']['nova_ram'],
                                 r['timings']['handler_alone'])]
    case = {'case': name, 'hosts': hosts, 'workers': workers,
            'shadow': summary_ms(shadow), 'nova_weighers': summary_ms(nova),
            'nova_ram_weigher': summary_ms(ram),
            'handler_alone': summary_ms(
                [t for r in results for t in r['timings']['handler_alone']]),
            'shadow_added': summary_ms(added),
            'shadow_weigh_objects_in_handler': summary_ms(
                [t for r in results
                 for t in r['timings']['shadow_in_handler']]),
            'nova_ram_added': summary_ms(ram_added),
            'shadow_weigh_objects_only': summary_ms(own) if own else None,
            'requests_weighed_by_shadow': sum(r['weighed_by_shadow']
                                              for r in results),
            'breaker': sorted({r['breaker'] for r in results}),
            'answered': dict(sum((collections.Counter(r['answered'])
                                  for r in results), collections.Counter())),
            'records_dropped': sum(r['records_dropped'] for r in results),
            'records_unsent_after_drain': sum(r.get('records_unsent', 0)
                                              for r in results),
            'nova_weigher_classes': results[0]['nova_weighers']}
    print('  %-28s shadow p50 %8.3f p99 %8.3f ms (added p99 %8.3f) | nova '
          'p50 %8.3f p99 %8.3f ms | %s | records dropped %d, unsent %d'
          % (name, case['shadow']['p50_ms'], case['shadow']['p99_ms'],
             case['shadow_added']['p99_ms'], case['nova_weighers']['p50_ms'],
             case['nova_weighers']['p99_ms'], case['answered'],
             case['records_dropped'], case['records_unsent_after_drain']),
          flush=True)
    return case


def run(args):
    # A SIGTERM ends the run through the ``finally`` below, which stops
    # the service process.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    loadavg_at_start = os.getloadavg()
    directory = tempfile.mkdtemp(prefix='scheduler-overhead-')
    args.topic = args.topic or 'shadow-bench-%s' % uuid.uuid4().hex[:10]
    config_path = write_config(directory, args.transport_url, args.topic)
    conf = load_conf(config_path)
    seeded = seed_history(conf, host_names(max(HOST_COUNTS)))
    print('seeded %d shadow samples (%s) on %d hosts'
          % (seeded['points'], ', '.join(seeded['metrics']),
             max(HOST_COUNTS)), flush=True)
    manager, replies = manager_calls(conf)
    wanted = case_filter(args.only)
    updates = None
    if wanted(UPDATES_CASE, max(HOST_COUNTS)):
        # On a history of its own (seeded the same way): its writes do not
        # reach the other cases.
        updates_dir = os.path.join(directory, 'updates')
        os.makedirs(updates_dir)
        updates_conf = load_conf(write_config(
            updates_dir, args.transport_url, args.topic + '-updates'))
        updates = kept_under_updates(
            updates_conf, seed_history(updates_conf, host_names(max(
                HOST_COUNTS))), args.requests)
    cases = []
    bare = None
    for form, endpoint in (
            ('full reply', CannedRanking(replies)),
            ('compact reply', CannedRanking(replies, compact=True)),
            ('columns', CannedColumns(replies))):
        floors = [hosts for hosts in HOST_COUNTS
                  if wanted('floor, %s' % form, hosts)]
        with_bare = form == 'columns' and wanted(BARE_CASE,
                                                 max(HOST_COUNTS))
        if not floors and not with_bare:
            continue
        floor = serve_canned(conf, args, args.topic + '-floor', endpoint)
        try:
            if with_bare:
                bare = measure_bare(args, max(HOST_COUNTS))
            for hosts in floors:
                cases.append(measure_case(args, 'floor, %s' % form, hosts,
                                          floor=True))
        finally:
            floor.stop()
            floor.wait()
    served = [(name, hosts, flags)
              for name, hosts, flags in service_cases(args)
              if wanted(name, hosts)]
    if served:
        service = start_service(config_path, directory)
        try:
            wait_until_serving(conf, args.topic, args.transport_url)
            for name, hosts, flags in served:
                before = recorded_evaluations(directory)
                case = measure_case(args, name, hosts, **flags)
                case['evaluations_recorded'] = (
                    settled_evaluations(directory) - before)
                print('    the service recorded %d evaluations for the %d '
                      'requests' % (case['evaluations_recorded'],
                                    case['shadow']['n']), flush=True)
                cases.append(case)
        finally:
            service.terminate()
            try:
                service.wait(30)
            except subprocess.TimeoutExpired:
                service.kill()
    result = {
        'benchmark': 'scheduler_overhead',
        'when': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
        'machine': benchlib.machine(loadavg_at_start),
        'transport': args.transport_url.split('@')[-1],
        'requests_per_worker': args.requests,
        'seeded_history': seeded,
        'manager_in_process': manager,
        'updates_in_process': updates,
        'cases': cases,
        'bare_oslo_messaging': bare,
        # The aims are judged on cases a partial run may not have.
        'aims': None,
    }
    if args.only:
        result['only'] = args.only
        return write_result(args, result)
    by_name = {(c['case'], c['hosts']): c for c in cases}
    # Judged on the worse of the same candidates again and the chosen
    # host changing each request (what a cloud does).
    judged = ('boot, prior', 'boot, prior, the chosen host changes')
    # What the weigher adds to a request: Nova's handler with it less the
    # same handler with no weigher, paired per request (its own code and
    # its share of the handler: Nova normalises each weigher's weights
    # and builds three debug dictionaries of every host for it, whatever
    # the weigher); and its own weigh_objects alone, as the handler calls
    # it.
    p99_1000 = max(by_name[(name, 1000)]['shadow_added']['p99_ms']
                   for name in judged)
    p99_1000_own = max(by_name[(name, 1000)][
        'shadow_weigh_objects_in_handler']['p99_ms'] for name in judged)
    p99_1000_whole = max(by_name[(name, 1000)]['shadow']['p99_ms']
                         for name in judged)
    # With the circuit open nothing is sent: judged alike (added, paired),
    # with the weigher's own weigh_objects next to it (what it costs
    # without Nova's per-weigher share of the handler).
    open_case = by_name[('circuit open', 1000)]
    p99_open = open_case['shadow_added']['p99_ms']
    p99_open_own = open_case['shadow_weigh_objects_in_handler']['p99_ms']
    result['aims'] = {
        'p99_added_ms_1000_hosts': AIM_P99_MS_1000,
        'p99_added_ms_circuit_open': AIM_P99_MS_OPEN,
        'met_1000_hosts': p99_1000 <= AIM_P99_MS_1000,
        'p99_ms_1000_hosts': {
            'added': p99_1000,
            'weigh_objects_in_handler': p99_1000_own,
            'handler_with_the_weigher': p99_1000_whole},
        'met_1000_hosts_weigh_objects_in_handler': (
            p99_1000_own <= AIM_P99_MS_1000),
        # Whether a bare call with the same bytes fits the aim
        # here at all.
        'bare_columns_call_p99_ms': bare[1]['call']['p99_ms'],
        'bare_fits_1000_hosts': (bare[1]['call']['p99_ms']
                                 <= AIM_P99_MS_1000),
        'met_circuit_open': p99_open <= AIM_P99_MS_OPEN,
        'p99_ms_circuit_open': {
            'added': p99_open,
            'weigh_objects_in_handler': p99_open_own},
        'met_circuit_open_weigh_objects_in_handler': (
            p99_open_own <= AIM_P99_MS_OPEN)}
    return write_result(args, result)


def write_result(args, result):
    """Write ``result`` to its file (``-<tag>`` when tagged; a partial
    run, ``--only``, is tagged ``only`` unless it names a tag, so it never
    replaces the full run's file), print its table, return 0."""
    tag = args.tag or ('only' if args.only else None)
    name = 'scheduler_overhead%s.json' % ('-' + tag if tag else '')
    path = os.path.join(RESULTS_DIR, name)
    with open(path, 'w') as f:
        json.dump(result, f, indent=2, sort_keys=True)
        f.write('\n')
    print_table(result)
    print('wrote %s' % path)
    return 0


def service_cases(args):
    """``(case name, hosts, measure_case flags)`` of every case measured
    against the running service, in the order they run."""
    top = max(HOST_COUNTS)
    cases = [('boot, prior', hosts, {}) for hosts in HOST_COUNTS]
    cases += [
        ('boot, prior, the chosen host changes', top,
         {'chosen_host_changes': True}),
        ('boot, prior, cache off', top, {'no_cache': True}),
        ('boot, prior, cache off, the chosen host changes', top,
         {'no_cache': True, 'chosen_host_changes': True}),
        ('boot, prior, another candidate list each request', top,
         {'vary_hosts': True}),
        ('boot, prior, %d workers' % args.workers, top,
         {'workers': args.workers}),
        ('circuit open', top, {'open_circuit': True}),
        ('no hint', top, {'no_hint': True})]
    return cases


def case_filter(only):
    """Whether a case (name, hosts) runs: every case without ``only``;
    with it, a case that one of the texts picks: ``TEXT`` the cases whose
    name contains it, ``NAME@HOSTS`` the case of exactly that name and
    host count (``@10`` is not ``@100``)."""
    if not only:
        return lambda name, hosts: True
    picks = []
    for text in only:
        part, at, count = text.lower().rpartition('@')
        if at and count.strip().isdigit():
            picks.append((part, int(count)))
        else:
            picks.append((text.lower(), None))

    def wanted(name, hosts):
        name = name.lower()
        return any(part in name if count is None
                   else (part == name and count == hosts)
                   for part, count in picks)
    return wanted


def columns_of(hosts):
    """A host list as the weigher's columns (every host has every fact
    here, and its nodename is its name)."""
    return {key: [h[key] for h in hosts] for key in hosts[0]
            if key != 'nodename'}


def manager_calls(conf):
    """The service's own cost: ``ShadowManager.evaluate`` in this process
    (the assembled service, as the daemon builds it) once per host count;
    the reply's size, its source (``history``: no shadows) and confidence.
    Returns the figures and the replies."""
    from nova_shadow_filter import request as request_lib
    from shadow_service import manager as manager_mod
    from shadow_service import service

    parts = service.build(conf)
    request = request_lib.build_request(FLAVOR, PROFILE)
    figures, replies = {}, {}
    try:
        for count in HOST_COUNTS:
            hosts = [{'host': h, 'nodename': h, 'vcpus': 64,
                      'vcpus_used': 3, 'free_ram_mb': 200000,
                      'total_ram_mb': 262144, 'free_disk_mb': 1000000,
                      'num_instances': 3} for h in host_names(count)]
            started = time.perf_counter()
            reply = parts.manager.evaluate(request, hosts, 30.0)
            elapsed = time.perf_counter() - started
            replies[count] = reply
            figures[str(count)] = {
                'evaluate_ms': round(1000 * elapsed, 1),
                'request_bytes': len(json.dumps({'request': request,
                                                 'hosts': hosts})),
                'reply_bytes': len(json.dumps(reply)),
                'compact_reply_bytes': len(json.dumps(
                    manager_mod.compact(reply))),
                'columns_request_bytes': len(json.dumps({
                    'request': request,
                    'hosts': columns_of(hosts)})),
                'columns_reply_bytes': len(json.dumps(
                    manager_mod.columns_reply(
                        reply, [h['host'] for h in hosts]))),
                'source': reply.get('source'),
                'confidence': reply.get('confidence')}
            print('  manager.evaluate, %4d hosts: %9.1f ms, reply %d B, '
                  'source %s' % (count, 1000 * elapsed,
                                 figures[str(count)]['reply_bytes'],
                                 reply.get('source')), flush=True)
    finally:
        parts.close()
    return figures, replies


def kept_under_updates(conf, seeded, requests):
    """``ShadowManager.evaluate`` at 1,000 hosts while the history
    changes (see the module docstring): per arm (``kept``: the product;
    ``fresh``: every host estimated afresh) the evaluate time, the
    answer's source, and the hosts estimated again per request."""
    import random

    from nova_shadow_filter import request as request_lib
    from shadow_service import measurements as names
    from shadow_service import service
    from shadow_service.history import base

    parts = service.build(conf)
    evaluator = parts.manager.evaluator
    request = request_lib.build_request(FLAVOR, PROFILE)
    names_ = host_names(max(HOST_COUNTS))
    hosts = [{'host': h, 'nodename': h, 'vcpus': 64, 'vcpus_used': 3,
              'free_ram_mb': 200000, 'total_ram_mb': 262144,
              'free_disk_mb': 1000000, 'num_instances': 3} for h in names_]
    profile = evaluator.resolve_profile(request)
    evaluation_id = seeded['evaluation_id']
    rng = random.Random(1)
    per_second = max(1, int(round(UPDATED_SHARE * len(names_))))
    timings = {'kept': [], 'fresh': []}
    sources = {'kept': {}, 'fresh': {}}
    estimated = []
    kept = evaluator._kept_for(request, profile)
    try:
        # Warm up both arms (the first kept request estimates every host).
        for keep in (True, False):
            evaluator.keep_estimates = keep
            parts.manager.evaluate(request, hosts, 30.0)
        for index in range(2 * requests):
            arm = 'kept' if index % 2 == 0 else 'fresh'
            # A second passes; a writer adds that second's samples of the
            # earlier evaluation for a few hosts.
            parts.driver.fast_forward(1.0)
            now = parts.driver.now()
            points = []
            for host in rng.sample(names_, per_second):
                for metric in seeded['metrics']:
                    points.append(base.Point(
                        names.SHADOW_SAMPLE,
                        {names.TAG_EVALUATION: evaluation_id,
                         names.TAG_SHADOW: 'shadow-%s' % host,
                         names.TAG_HOST: host, names.TAG_PROFILE: PROFILE,
                         names.TAG_METRIC: metric},
                        {names.FIELD_VALUE: rng.uniform(100.0, 160.0)},
                        now - 0.5))
            parts.history.write(points)
            evaluator.keep_estimates = arm == 'kept'
            computed = kept.computed
            started = time.perf_counter()
            reply = parts.manager.evaluate(request, hosts, 30.0)
            timings[arm].append(time.perf_counter() - started)
            source = reply.get('source')
            sources[arm][source] = sources[arm].get(source, 0) + 1
            if arm == 'kept':
                estimated.append(kept.computed - computed)
    finally:
        evaluator.keep_estimates = True
        parts.close()
    result = {'hosts': len(names_), 'updated_hosts_per_second': per_second,
              'requests_per_arm': requests,
              'kept': dict(summary_ms(timings['kept']),
                           sources=sources['kept'],
                           hosts_estimated_again_per_request={
                               'mean': round(statistics.fmean(estimated), 1),
                               'max': max(estimated)}),
              'fresh': dict(summary_ms(timings['fresh']),
                            sources=sources['fresh'])}
    print('  manager.evaluate under updates (%d hosts, %d changed a second):'
          ' kept p50 %.1f p99 %.1f ms | fresh p50 %.1f p99 %.1f ms'
          % (len(names_), per_second, result['kept']['p50_ms'],
             result['kept']['p99_ms'], result['fresh']['p50_ms'],
             result['fresh']['p99_ms']), flush=True)
    return result


def print_table(result):
    print()
    print('%-24s %5s %3s %8s | %10s %10s | %8s %8s | %7s %7s' % (
        'case', 'hosts', 'wkr', 'ranked', 'shadow p50', 'p99',
        'nova p50', 'p99', 'ram p50', 'p99'))
    for case in result['cases']:
        print('%-24s %5d %3d %4d/%-3d | %10.3f %10.3f | %8.2f %8.2f | '
              '%7.2f %7.2f' % (
                  case['case'], case['hosts'], case['workers'],
                  case['requests_weighed_by_shadow'], case['shadow']['n'],
                  case['shadow']['p50_ms'], case['shadow']['p99_ms'],
                  case['nova_weighers']['p50_ms'],
                  case['nova_weighers']['p99_ms'],
                  case['nova_ram_weigher']['p50_ms'],
                  case['nova_ram_weigher']['p99_ms']))
        print('%-24s added p50 %.3f p99 %.3f ms (weigh_objects in the '
              'handler p50 %.3f p99 %.3f; handler alone p50 %.3f p99 %.3f)'
              % ('', case['shadow_added']['p50_ms'],
                 case['shadow_added']['p99_ms'],
                 case['shadow_weigh_objects_in_handler']['p50_ms'],
                 case['shadow_weigh_objects_in_handler']['p99_ms'],
                 case['handler_alone']['p50_ms'],
                 case['handler_alone']['p99_ms']))
        own = case.get('shadow_weigh_objects_only')
        if own:
            print('%-24s weigh_objects alone: p50 %.4f p99 %.4f ms'
                  % ('', own['p50_ms'], own['p99_ms']))
    print('(milliseconds per scheduling request; shadow = the '
          'ShadowWeigher alone, nova = nova.scheduler.weights.all_weighers; '
          'ranked = requests the ranking decided, the others got neutral '
          'weights)')
    for case in result.get('bare_oslo_messaging') or ():
        print('%-40s %5d | call p50 %8.3f p99 %8.3f ms (%d B request)' % (
            case['case'], case['hosts'], case['call']['p50_ms'],
            case['call']['p99_ms'], case['request_bytes']))
    print('(bare call = oslo.messaging through the weigher\'s RPC client '
          'to the floor endpoint, in the calling thread: the transport '
          'floor under "shadow")')
    for count, probe in sorted(result['manager_in_process'].items(),
                               key=lambda kv: int(kv[0])):
        print('%5s hosts: request %7d B, reply %7d B (compact %d B), '
              'source %s, manager.evaluate %.1f ms' % (
                  count, probe['request_bytes'], probe['reply_bytes'],
                  probe.get('compact_reply_bytes', 0), probe['source'],
                  probe['evaluate_ms']))
    updates = result.get('updates_in_process')
    if updates:
        print('%5d hosts, history changing (%d hosts a second), '
              'manager.evaluate in-process: kept p50/p99 %.1f/%.1f ms '
              '(%.1f hosts estimated again per request), fresh %.1f/%.1f '
              'ms' % (updates['hosts'], updates['updated_hosts_per_second'],
                      updates['kept']['p50_ms'], updates['kept']['p99_ms'],
                      updates['kept']['hosts_estimated_again_per_request'][
                          'mean'],
                      updates['fresh']['p50_ms'], updates['fresh']['p99_ms']))
    aims = result['aims']
    if aims is None:
        print('aims: not judged (a run of some cases only: --only %s)'
              % ', '.join(repr(t) for t in result.get('only') or ()))
    else:
        print_aims(aims)
    benchlib.print_load(result['machine']['loadavg_at_start'],
                        result['machine']['loadavg_at_end'])


def print_aims(aims):
    print('aims: p99 added <= %.0f ms at 1,000 hosts: %s (added p99 %.1f ms; '
          'weigh_objects in the handler %.1f ms: %s; the handler with the '
          'weigher %.1f ms)' % (
              AIM_P99_MS_1000, aims['met_1000_hosts'],
              aims['p99_ms_1000_hosts']['added'],
              aims['p99_ms_1000_hosts']['weigh_objects_in_handler'],
              aims['met_1000_hosts_weigh_objects_in_handler'],
              aims['p99_ms_1000_hosts']['handler_with_the_weigher']))
    print('(a bare call with the same bytes: p99 %.1f ms); p99 added <= '
          '%.0f ms with the circuit open: %s (added p99 %.2f ms; '
          'weigh_objects in the handler %.2f ms: %s)' % (
              aims['bare_columns_call_p99_ms'], AIM_P99_MS_OPEN,
              aims['met_circuit_open'],
              aims['p99_ms_circuit_open']['added'],
              aims['p99_ms_circuit_open']['weigh_objects_in_handler'],
              aims['met_circuit_open_weigh_objects_in_handler']))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--requests', type=int, default=200,
                        help='requests per worker and case (default 200)')
    parser.add_argument('--workers', type=int, default=4,
                        help='scheduler worker processes asking at once '
                             '(default 4)')
    parser.add_argument('--max-seconds', type=float, default=120.0,
                        help='stop a case\'s worker after this many seconds '
                             'even if fewer requests were made (default '
                             '120)')
    parser.add_argument('--transport-url', default=DEFAULT_URL)
    parser.add_argument('--topic', help=argparse.SUPPRESS)
    parser.add_argument('--tag', help='suffix of the results file')
    parser.add_argument(
        '--only', action='append', metavar='TEXT',
        help='run only the cases whose name contains TEXT, or the '
             'case NAME@HOSTS of exactly that name and host count '
             '(repeatable; e.g. "circuit open", "boot, prior@1000", '
             '"floor, columns", "%s", "%s"); the results file is then '
             'tagged "only" unless --tag is given, and no aim is '
             'judged' % (UPDATES_CASE, BARE_CASE))
    parser.add_argument('--worker', action='store_true',
                        help=argparse.SUPPRESS)
    parser.add_argument('--hosts', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--start-at', type=float, default=0.0,
                        help=argparse.SUPPRESS)
    parser.add_argument('--open-circuit', action='store_true',
                        help=argparse.SUPPRESS)
    parser.add_argument('--no-hint', action='store_true',
                        help=argparse.SUPPRESS)
    parser.add_argument('--vary-hosts', action='store_true',
                        help=argparse.SUPPRESS)
    parser.add_argument('--floor', action='store_true',
                        help=argparse.SUPPRESS)
    parser.add_argument('--no-cache', action='store_true',
                        help=argparse.SUPPRESS)
    parser.add_argument('--chosen-host-changes', action='store_true',
                        help=argparse.SUPPRESS)
    parser.add_argument('--bare', action='store_true',
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args)
    return run(args)


if __name__ == '__main__':
    sys.exit(main())
