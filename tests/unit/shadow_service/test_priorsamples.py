"""The prior's samples, kept between requests: what an incremental read
keeps must be what a full read of the store gives."""

import random

from shadow_service import evaluation
from shadow_service import measurements as names
from shadow_service import priorsamples
from shadow_service.analysis import analyzer as analyzer_mod
from shadow_service.history import base
from shadow_service.history import memory
from tests import service_support

PROFILE = 'web'


def sample(evaluation_id, host, metric, when, value, profile=PROFILE):
    return base.Point(
        names.SHADOW_SAMPLE,
        {names.TAG_EVALUATION: evaluation_id, names.TAG_HOST: host,
         names.TAG_PROFILE: profile, names.TAG_METRIC: metric,
         names.TAG_SHADOW: 's-%s-%s' % (evaluation_id, host)},
        {names.FIELD_VALUE: value}, when)


def full_read(history, lookback, chosen, hosts, now):
    """The observations a fresh cache (one read of the whole window)
    gives."""
    fresh = priorsamples.PriorSamples(history, lookback)
    fresh.evaluations(PROFILE, now)
    return fresh.observations(PROFILE, chosen, hosts, now)


def test_incremental_reads_give_what_a_full_read_gives():
    """... and each host's token changes exactly when its samples do."""
    rng = random.Random(7)
    history = memory.MemoryStore()
    lookback = 3600.0
    cache = priorsamples.PriorSamples(history, lookback, refresh_s=5.0)
    hosts = ['h%d' % i for i in range(5)]
    now = 10000.0
    compared = kept_tokens = 0
    before, before_tokens = {}, {}
    for step in range(40):
        # One more evaluation every step, on some hosts, one sample a
        # second; now and then a sample written again (counts once) and
        # a profile nobody asks for.
        evaluation_id = 'e%d' % step
        points = []
        for host in rng.sample(hosts, 3):
            for second in range(5):
                points.append(sample(evaluation_id, host, 'cpu_ops_per_s',
                                     now + second, rng.uniform(50, 150)))
        if step % 7 == 3:
            points.append(points[0])
        points.append(sample('other', 'h0', 'cpu_ops_per_s', now, 1.0,
                             profile='batch'))
        history.write(points)
        now += rng.choice([1.0, 30.0, 400.0])
        if step % 3 == 0:
            cache.invalidate(PROFILE)
        seen = cache.evaluations(PROFILE, now)
        chosen = set(rng.sample(sorted(seen), min(len(seen), 6)))
        *got, tokens = cache.observations(PROFILE, chosen, hosts, now,
                                          tokens=True)
        assert set(tokens) == set(got[0])
        if cache._profiles[PROFILE].checked_at == now:
            # Read at this step: exactly a full read's samples.
            assert tuple(got) == full_read(history, lookback, chosen, hosts,
                                           now)
            compared += 1
        # A host's token changes exactly when its observations do.
        for host in set(tokens) & set(before_tokens):
            assert ((tokens[host] == before_tokens[host])
                    == (got[0][host] == before[host])), host
            kept_tokens += tokens[host] == before_tokens[host]
        before, before_tokens = got[0], tokens
    assert compared >= 20
    assert kept_tokens >= 10
    assert set(cache.evaluations(PROFILE, now)) == set(
        priorsamples.PriorSamples(history, lookback).evaluations(
            PROFILE, now))


def test_the_store_is_read_again_only_when_due():
    history = memory.MemoryStore()
    history.write([sample('e1', 'h1', 'cpu_ops_per_s', 100.0, 10.0)])
    cache = priorsamples.PriorSamples(history, 3600.0, refresh_s=5.0)
    assert set(cache.evaluations(PROFILE, 101.0)) == {'e1'}
    history.write([sample('e2', 'h1', 'cpu_ops_per_s', 101.0, 12.0)])
    # Within refresh_s: the kept samples, no read.
    assert set(cache.evaluations(PROFILE, 103.0)) == {'e1'}
    assert cache.reads == 1
    # Due by the clock...
    assert set(cache.evaluations(PROFILE, 106.5)) == {'e1', 'e2'}
    assert cache.reads == 2
    history.write([sample('e3', 'h1', 'cpu_ops_per_s', 107.0, 14.0)])
    # ... or at once after invalidate().
    cache.invalidate(PROFILE)
    assert set(cache.evaluations(PROFILE, 107.5)) == {'e1', 'e2', 'e3'}
    observations, newest = cache.observations(
        PROFILE, {'e1', 'e2', 'e3'}, ['h1', 'h9'], 107.5)
    assert observations == {'h1': {'cpu_ops_per_s': [10.0, 12.0, 14.0]}}
    assert newest == {'h1': 107.0}


def test_samples_leave_with_the_window():
    history = memory.MemoryStore()
    history.write([sample('old', 'h1', 'cpu_ops_per_s', 100.0, 10.0),
                   sample('new', 'h1', 'cpu_ops_per_s', 900.0, 20.0)])
    cache = priorsamples.PriorSamples(history, 1000.0)
    assert set(cache.evaluations(PROFILE, 1000.0)) == {'old', 'new'}
    assert cache.observations(PROFILE, {'old', 'new'}, ['h1'], 1000.0)[
        0] == {'h1': {'cpu_ops_per_s': [10.0, 20.0]}}
    assert set(cache.evaluations(PROFILE, 1200.0)) == {'new'}
    assert cache.observations(PROFILE, {'old', 'new'}, ['h1'], 1200.0)[
        0] == {'h1': {'cpu_ops_per_s': [20.0]}}


def test_a_kept_prior_ranks_as_a_fresh_read_does():
    """One evaluator answers many requests from its kept samples; an
    evaluator started afresh on the same history (one full read) gives
    the same prior ranking."""
    conf = service_support.make_conf(sim={'unknown_hosts': 'derive'})
    history = memory.MemoryStore()
    request = {'flavor': {'name': 'm1.large', 'vcpus': 4, 'ram_mb': 8192,
                          'disk_gb': 40}, 'profile': 'db-oltp'}
    hosts = [{'host': 'node-%d' % i} for i in range(1, 7)]
    # Its hosts made up beforehand: inside the first evaluation's budget
    # (6 s of its 10 under stress-ng --cpu 4) they could leave it no time
    # to measure, and no samples to keep.
    driver = service_support.twin_with_hosts(conf, history, hosts)
    kept = evaluation.Evaluator(driver, history, analyzer_mod.Analyzer(),
                                confidence_target=0.99, sample_interval=1.0,
                                min_run_time=2.0)
    sources = [kept.run(kept.new(request, hosts, 10.0))['source']
               for _ in range(3)]
    assert sources[0] == 'shadows', 'the kept samples are measured ones'
    fresh = evaluation.Evaluator(driver, history, analyzer_mod.Analyzer())
    profile = kept.resolve_profile(request)
    names_ = [h['host'] for h in hosts]
    args = (profile, names_, {}, None, kept.analyzer)
    assert (kept._prior(*args, request=request).to_dict()
            == fresh._prior(*args, request=request).to_dict())
    assert kept.prior_samples.reads >= 3


def test_only_the_evaluations_a_prior_may_choose_are_kept():
    history = memory.MemoryStore()
    history.write([sample('e%02d' % i, 'h1', 'cpu_ops_per_s',
                          1000.0 + 10 * i, float(i)) for i in range(20)])
    cache = priorsamples.PriorSamples(history, 86400.0, keep=5,
                                      overlap_s=30.0)
    kept = cache.evaluations(PROFILE, 1200.0)
    # The newest five, and those whose samples are recent enough that
    # they may still be running (1170 and later).
    assert set(kept) == {'e15', 'e16', 'e17', 'e18', 'e19'}
    full = priorsamples.PriorSamples(history, 86400.0)
    newest = sorted(full.evaluations(PROFILE, 1200.0).items(),
                    key=lambda item: item[1])[-5:]
    assert dict(newest) == kept
