"""The service's cost of a request whose candidate list is another than
the one before: ``ShadowManager.evaluate`` in this process (the service
as the daemon builds it: the twin, an SQLite history seeded as
``scheduler_overhead.py`` seeds it, 1,000 hosts answered from the prior),
each request with one host left out, a different one each time (as
``scheduler_overhead.py --vary-hosts`` leaves them out), after the whole
list was ranked once.  Measured per request: the whole ``evaluate`` and
the analyzer's ``rank`` inside it (the prior's ranking; the rest is the
race's verdict, the answer and its record).

Usage::

    python benchmarks/another_candidate_list.py [--requests N]
        [--offset I] [--gc-freeze]

Prints one JSON object: the tree measured (``git describe``), the
figures (``summary_ms`` of ``scheduler_overhead.py``), the time the
garbage collector took within each request (``gc``, every generation)
and the full (generation 2) collections' pauses.  To compare two trees in one
run, call it alternately with each tree first on ``PYTHONPATH``.
"""

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
sys.path.insert(1, os.path.dirname(os.path.abspath(__file__)))

import scheduler_overhead as so  # noqa: E402

HOSTS = 1000


def measure(requests, offset=0, freeze=False):
    from nova_shadow_filter import request as request_lib
    from shadow_service import service
    from shadow_service.analysis import analyzer as analyzer_mod

    directory = tempfile.mkdtemp(prefix='another-candidate-list-')
    conf = so.load_conf(so.write_config(directory, so.DEFAULT_URL,
                                        'another-list-%d' % os.getpid()))
    so.seed_history(conf, so.host_names(HOSTS))
    parts = service.build(conf)
    request = request_lib.build_request(so.FLAVOR, so.PROFILE)
    hosts = [{'host': h, 'nodename': h, 'vcpus': 64, 'vcpus_used': 3,
              'free_ram_mb': 200000, 'total_ram_mb': 262144,
              'free_disk_mb': 1000000, 'num_instances': 3}
             for h in so.host_names(HOSTS)]
    ranked = []
    rank = analyzer_mod.Analyzer.rank

    def timed_rank(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return rank(self, *args, **kwargs)
        finally:
            ranked.append(time.perf_counter() - started)

    analyzer_mod.Analyzer.rank = timed_rank
    pauses = []
    collecting = {}

    def collections(phase, info):
        if phase == 'start':
            collecting['at'] = time.perf_counter()
        elif 'at' in collecting:
            pauses.append((info['generation'],
                           time.perf_counter() - collecting.pop('at')))

    evaluate, ranks, sources, collecting_s = [], [], {}, []
    try:
        # The whole list, twice (the second answered from its ranking).
        for _ in range(2):
            parts.manager.evaluate(request, hosts, 30.0)
        if freeze:
            # What is alive now (modules, the history read, the kept
            # estimates) is left out of every later collection.
            gc.collect()
            gc.freeze()
        gc.callbacks.append(collections)
        for index in range(offset, offset + requests):
            left_out = (index * 7919) % len(hosts)
            candidates = hosts[:left_out] + hosts[left_out + 1:]
            del ranked[:]
            collected = len(pauses)
            started = time.perf_counter()
            reply = parts.manager.evaluate(request, candidates, 30.0)
            evaluate.append(time.perf_counter() - started)
            collecting_s.append(sum(p for _g, p in pauses[collected:]))
            ranks.append(sum(ranked))
            source = reply.get('source')
            sources[source] = sources.get(source, 0) + 1
    finally:
        if collections in gc.callbacks:
            gc.callbacks.remove(collections)
        analyzer_mod.Analyzer.rank = rank
        parts.close()
    return {'evaluate': [round(s, 6) for s in evaluate],
            'rank': [round(s, 6) for s in ranks], 'sources': sources,
            'gc': [round(s, 6) for s in collecting_s],
            'gc_gen2_pauses_ms': [round(1000 * p, 1) for g, p in pauses
                                  if g == 2]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--requests', type=int, default=50)
    parser.add_argument('--offset', type=int, default=0,
                        help='index of the first request (which host is '
                             'left out)')
    parser.add_argument('--gc-freeze', action='store_true',
                        help='gc.freeze() after the warm-up (a variant: '
                             'the service does not do it)')
    args = parser.parse_args(argv)
    import shadow_service
    tree = os.path.dirname(os.path.dirname(os.path.abspath(
        shadow_service.__file__)))
    try:
        described = subprocess.run(
            ['git', '-C', tree, 'describe', '--always', '--dirty'],
            capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        described = None
    result = measure(args.requests, args.offset, args.gc_freeze)
    result.update(tree=tree, commit=described or None,
                  gc_freeze=args.gc_freeze,
                  evaluate_summary=so.summary_ms(result['evaluate']),
                  rank_summary=so.summary_ms(result['rank']),
                  gc_summary=so.summary_ms(result['gc']))
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == '__main__':
    sys.exit(main())
