"""Nova's share of one more weigher, with the ShadowWeigher's circuit open.

With its circuit open the ShadowWeigher sends nothing and answers neutral
weights, yet ``scheduler_overhead.py`` finds it adds 2-5 ms to a
scheduling request at 1,000 hosts, where its own ``weigh_objects`` takes
0.06-0.19 ms.  The rest is Nova's: ``HostWeightHandler.get_weighed_objects``
(``nova/weights.py``, Nova 34) normalises every weigher's weights, asks
its multiplier of every host, and builds three dictionaries of every
host and an f-string per host for its debug lines, whatever the log level.

This measures, in one process on the same 1,000 ``HostState`` objects and
RequestSpec as ``scheduler_overhead.py``'s workers (its own setup
functions; the circuit opened by real failed calls to a topic nobody
serves on the real RabbitMQ), per request and paired with Nova's handler
with no weigher on the same request:

* ``stock``: Nova 34's handler with the ShadowWeigher, and with Nova's own
  ``RAMWeigher`` (the cost of any one weigher in that handler);
* ``guarded``: the same loop with the three debug dictionaries and the
  f-strings built only when the handler's logger is enabled for DEBUG (a
  change to Nova, not Nova 34: what a scheduler would see with it).

Usage::

    python benchmarks/handler_share.py [--requests N] [--hosts H]

at normal priority.  Prints a table and writes
``benchmarks/results/handler_share.json``.
"""

import argparse
import logging
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import benchlib  # noqa: E402
import scheduler_overhead as so  # noqa: E402

RESULTS = os.path.join(so.RESULTS_DIR, 'handler_share.json')


def guarded_handler():
    """Nova's ``HostWeightHandler`` whose ``get_weighed_objects`` builds
    its debug lines only when they are logged (otherwise the same loop as
    Nova 34's).  Nova's loader finds a handler's weighers by its class's
    module, so the method is replaced on an instance, not subclassed."""
    import types

    from nova import weights
    from nova.scheduler import weights as scheduler_weights

    def get_weighed_objects(self, weighers, obj_list, weighing_properties):
        weighed_objs = [self.object_class(obj, 0.0) for obj in obj_list]
        if len(weighed_objs) <= 1:
            return weighed_objs
        debug = weights.LOG.isEnabledFor(logging.DEBUG)
        for weigher in weighers:
            raw = weigher.weigh_objects(weighed_objs, weighing_properties)
            normalized = list(weights.normalize(
                raw, minval=weigher.minval, maxval=weigher.maxval))
            for obj, weight in zip(weighed_objs, normalized):
                obj.weight += weigher.weight_multiplier(obj.obj) * weight
            if debug:
                weights.LOG.debug(
                    '%s: raw weights %s, normalized %s',
                    weigher.__class__.__name__,
                    {(o.obj.host, o.obj.nodename): w
                     for o, w in zip(weighed_objs, raw)},
                    {(o.obj.host, o.obj.nodename): w
                     for o, w in zip(weighed_objs, normalized)})
        return sorted(weighed_objs, key=lambda x: x.weight, reverse=True)

    handler = scheduler_weights.HostWeightHandler()
    handler.get_weighed_objects = types.MethodType(get_weighed_objects,
                                                   handler)
    return handler


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--requests', type=int, default=500)
    parser.add_argument('--hosts', type=int, default=1000)
    parser.add_argument('--transport-url', default=so.DEFAULT_URL)
    args = parser.parse_args(argv)
    args.topic = 'shadow-handler-share-%s' % uuid.uuid4().hex[:10]
    loadavg_at_start = os.getloadavg()
    conf = so._nova_setup(args)
    from nova import objects
    from nova.scheduler import host_manager
    from nova.scheduler import weights

    from nova_shadow_filter import weigher as weigher_mod

    stock = weights.HostWeightHandler()
    guarded = guarded_handler()
    ram = [cls() for cls in stock.get_matching_classes(
        ['nova.scheduler.weights.ram.RAMWeigher'])]
    shadow = weigher_mod.ShadowWeigher()
    states = [so._host_state(host_manager, objects, name, i)
              for i, name in enumerate(so.host_names(args.hosts))]
    hints = {'shadow_profile': so.PROFILE}
    # As scheduler_overhead.py's "circuit open" case.
    so.open_circuit(conf, args.topic, stock, shadow, states, hints)
    arms = {'stock, shadow': (stock, [shadow]),
            'stock, RAMWeigher': (stock, ram),
            'guarded, shadow': (guarded, [shadow]),
            'guarded, RAMWeigher': (guarded, ram)}
    added = {name: [] for name in arms}
    alone = []
    for _ in range(args.requests):
        spec = so._request_spec(objects, hints)
        started = time.perf_counter()
        stock.get_weighed_objects([], states, spec)
        base = time.perf_counter() - started
        alone.append(base)
        for name, (handler, weighers) in arms.items():
            started = time.perf_counter()
            handler.get_weighed_objects(weighers, states, spec)
            added[name].append(time.perf_counter() - started - base)
    assert shadow.breaker.state == shadow.breaker.OPEN
    result = {
        'benchmark': 'handler_share',
        'when': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
        'machine': benchlib.machine(loadavg_at_start),
        'hosts': args.hosts, 'requests': args.requests,
        'handler_alone': so.summary_ms(alone),
        'added': {name: so.summary_ms(v) for name, v in added.items()},
        'aim_p99_added_ms_circuit_open': so.AIM_P99_MS_OPEN,
    }
    print('%d hosts, %d requests, circuit open; ms added to Nova\'s '
          'handler with no weigher (p50 %.3f p99 %.3f)'
          % (args.hosts, args.requests, result['handler_alone']['p50_ms'],
             result['handler_alone']['p99_ms']))
    print('%-22s %8s %8s %8s' % ('handler, weigher', 'p50', 'p99', 'mean'))
    for name, figures in result['added'].items():
        print('%-22s %8.3f %8.3f %8.3f' % (name, figures['p50_ms'],
                                           figures['p99_ms'],
                                           figures['mean_ms']))
    benchlib.print_load(loadavg_at_start)
    benchlib.write_results(RESULTS, result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
