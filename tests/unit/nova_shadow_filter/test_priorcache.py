"""The weigher's cache of answers from history, on its own."""

from nova_shadow_filter import priorcache


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def columns(free_ram, names=None):
    names = names or ['h%d' % i for i in range(len(free_ram))]
    return {'host': names, 'free_ram_mb': list(free_ram),
            'vcpus': [16] * len(names)}


def entries(scores):
    return {h: {'score': s, 'confidence': 1.0} for h, s in scores.items()}


def test_unchanged_hosts_are_answered_and_changed_ones_named():
    cache = priorcache.PriorCache(10.0, clock=Clock())
    hosts = columns([100] * 20)
    cache.store('w', hosts, entries({h: 50 for h in hosts['host']}))
    hit = cache.lookup('w', hosts)
    assert hit.changed == [] and len(hit.entries) == 20
    hosts['free_ram_mb'][3] = 90
    hosts['free_ram_mb'][7] = 90
    hit = cache.lookup('w', hosts)
    assert hit.changed == [3, 7]
    assert 'h3' not in hit.entries and 'h4' in hit.entries
    # A third changed host is more than a tenth of 20: ask them all.
    hosts['free_ram_mb'][9] = 90
    assert cache.lookup('w', hosts) is None


def test_a_refresh_replaces_the_whole_answer_and_keeps_its_age():
    clock = Clock()
    cache = priorcache.PriorCache(10.0, clock=clock)
    hosts = columns([100, 100, 100])
    cache.store('w', hosts, entries({'h0': 1, 'h1': 2, 'h2': 3}))
    clock.now += 4.0
    hosts['free_ram_mb'][1] = 50
    hit = cache.lookup('w', hosts)
    assert hit.changed == [1]
    # The service's answer for the whole list (its scores are relative to
    # the best of that list) replaces every host's entry.
    cache.refresh('w', hosts, entries({'h0': 4, 'h1': 9, 'h2': 6}))
    hit = cache.lookup('w', hosts)
    assert hit.changed == [] and hit.age == 4.0
    assert {h: e['score'] for h, e in hit.entries.items()} == {
        'h0': 4, 'h1': 9, 'h2': 6}
    # A host the answer leaves out is asked about with each request.
    hosts['free_ram_mb'][1] = 40
    cache.refresh('w', hosts, entries({'h0': 4, 'h2': 6}))
    hit = cache.lookup('w', hosts)
    assert hit.changed == [1] and 'h1' not in hit.entries
    # Another list: the hosts it does not hold are not kept from before.
    cache.refresh('w', columns([100, 100], names=['h2', 'h3']),
                  entries({'h2': 8, 'h3': 7}))
    assert cache.lookup('w', columns([100], names=['h0'])) is None
    assert cache.lookup('w', columns([100], names=['h3'])).entries == {
        'h3': {'score': 7, 'confidence': 1.0}}
    # Nothing is kept once the answer is gone.
    cache.forget('w')
    cache.refresh('w', hosts, entries({'h0': 4, 'h1': 9, 'h2': 6}))
    assert cache.lookup('w', hosts) is None


def test_age_facts_workload_and_unknown_hosts_miss():
    clock = Clock()
    cache = priorcache.PriorCache(10.0, clock=clock)
    hosts = columns([100, 100])
    cache.store('w', hosts, entries({'h0': 1, 'h1': 2}))
    assert cache.lookup('other', hosts) is None
    # One candidate the answer does not hold is asked about again, like a
    # changed host; more than a tenth of the candidates is a miss.
    assert cache.lookup('w', columns([100, 100, 100])).changed == [2]
    assert cache.lookup('w', columns([100] * 4)) is None
    # No candidate held at all.
    assert cache.lookup('w', columns([100], names=['h7'])) is None
    # Another set of facts (a cost column appeared).
    assert cache.lookup('w', dict(hosts, cost=[1, 1])) is None
    # A subset of the candidates is answered.
    assert cache.lookup('w', columns([100], names=['h1'])).changed == []
    clock.now += 10.5
    assert cache.lookup('w', hosts) is None
    # An old answer is forgotten, not kept for later.
    clock.now -= 10.5
    assert cache.lookup('w', hosts) is None


def test_hosts_without_an_answer_are_not_kept():
    cache = priorcache.PriorCache(10.0, clock=Clock())
    hosts = columns([100] * 20)
    cache.store('w', hosts, entries({'h0': 1}))
    # 19 of 20 candidates without an entry: more than a tenth.
    assert cache.lookup('w', hosts) is None
    assert cache.lookup('w', columns([100], names=['h0'])).changed == []
    hit = cache.lookup('w', columns([100, 100], names=['h0', 'h5']))
    assert hit.changed == [1] and list(hit.entries) == ['h0']


def test_workloads_kept_are_bounded_oldest_out():
    cache = priorcache.PriorCache(10.0, clock=Clock(), workloads=3)
    hosts = columns([100])
    for key in 'abcd':
        cache.store(key, hosts, entries({'h0': 1}))
    assert cache.lookup('a', hosts) is None
    assert all(cache.lookup(k, hosts) is not None for k in 'bcd')


def test_ttl_0_is_off_and_the_key_ignores_the_instance():
    cache = priorcache.PriorCache(0.0)
    hosts = columns([100])
    cache.store('w', hosts, entries({'h0': 1}))
    assert not cache.enabled and cache.lookup('w', hosts) is None
    request = {'profile': 'web', 'flavor': {'vcpus': 2},
               'instance_uuid': 'a'}
    assert priorcache.workload_key(request) == priorcache.workload_key(
        dict(request, instance_uuid='b'))
    assert priorcache.workload_key(request) != priorcache.workload_key(
        dict(request, profile='db'))


def test_an_answer_for_other_candidates_replaces_a_young_one():
    # Each answer's scores are relative to the best host of its own
    # candidate list: never mixed.
    clock = Clock()
    cache = priorcache.PriorCache(10.0, clock=clock)
    cache.store('w', columns([100, 100], names=['h0', 'h1']),
                entries({'h0': 100, 'h1': 90}))
    clock.now += 6.0
    cache.store('w', columns([100, 100], names=['h1', 'h2']),
                entries({'h1': 100, 'h2': 95}))
    hit = cache.lookup('w', columns([100] * 3, names=['h0', 'h1', 'h2']))
    assert hit.changed == [0]
    assert {h: e['score'] for h, e in hit.entries.items()} == {
        'h1': 100, 'h2': 95}
    # As new as the answer that replaced it.
    clock.now += 4.5
    assert hit.age == 0.0
    assert cache.lookup('w', columns([100], names=['h2'])).age == 4.5


def test_one_renewal_per_workload_at_a_time_until_released():
    clock = Clock()
    cache = priorcache.PriorCache(10.0, clock=clock)
    hosts = columns([100] * 4)
    assert not cache.claim_renewal('w')   # no answer to renew
    cache.store('w', hosts, entries({h: 50 for h in hosts['host']}))
    cache.store('v', hosts, entries({h: 50 for h in hosts['host']}))
    assert cache.claim_renewal('w')
    assert not cache.claim_renewal('w')
    # Another workload is renewed on its own.
    assert cache.claim_renewal('v')
    # A request asked about every candidate replaces the answer meanwhile:
    # still one renewal at a time.
    clock.now += 1
    cache.store('w', hosts, entries({h: 60 for h in hosts['host']}))
    assert not cache.claim_renewal('w')
    # A renewal that was dropped or failed lets the next request renew.
    cache.release_renewal('w')
    assert cache.claim_renewal('w')
    # Released when renewed too; releasing twice, or an answer forgotten
    # meanwhile, is harmless.
    cache.store('w', hosts, entries({h: 70 for h in hosts['host']}))
    cache.release_renewal('w')
    cache.release_renewal('w')
    assert cache.claim_renewal('w')
    cache.forget('w')
    cache.release_renewal('w')
    assert not cache.claim_renewal('w')


def test_a_lookup_says_how_old_its_answer_is():
    # Read with the answer, under the cache's lock: another thread may
    # drop the answer right after the lookup.
    clock = Clock()
    cache = priorcache.PriorCache(10.0, clock=clock)
    hosts = columns([100, 100])
    cache.store('w', hosts, entries({'h0': 1, 'h1': 2}))
    clock.now += 6.0
    hit = cache.lookup('w', hosts)
    cache.forget('w')
    assert hit.age == 6.0
    assert cache.age('w') is None
