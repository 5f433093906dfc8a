from shadow_service import hostfacts
from shadow_service.clouds import base as cloud_base
from shadow_service.watcher import selection

FLAVOR = {'vcpus': 4, 'ram_mb': 8192}


def _facts(cores, used, memory=65536, ram_used=0):
    return {hostfacts.CORES: cores, hostfacts.VCPUS_USED: used,
            hostfacts.MEMORY_MB: memory, hostfacts.MEMORY_MB_USED: ram_used}


def test_the_best_scoring_host_that_meets_every_limit_wins():
    hosts = [cloud_base.HostInfo('a'), cloud_base.HostInfo('b'),
             cloud_base.HostInfo('c', disabled=True),
             cloud_base.HostInfo('d', up=False),
             cloud_base.HostInfo('e', availability_zone='az2'),
             cloud_base.HostInfo('f'), cloud_base.HostInfo('g'),
             cloud_base.HostInfo('here')]
    scores = {'a': 70, 'b': 95, 'c': 99, 'd': 99, 'e': 99, 'f': 98,
              'g': 97, 'here': 100}
    facts = {'b': _facts(16, 14), 'f': _facts(32, 4),
             'g': _facts(32, 4, memory=8192, ram_used=4096)}
    choice = selection.find_best_server(
        hosts, scores, flavor=FLAVOR, current_host='here', facts=facts,
        costs={'f': 3.0, 'a': 1.0}, max_cost=2.0, availability_zone='az1')
    assert choice.host == 'a' and choice.score == 70
    assert choice.rejected == {
        'b': 'lacks 2 vCPUs', 'c': 'is disabled (maintenance)',
        'd': 'is down', 'e': 'is in zone az2, not az1',
        'f': 'costs 3 > 2', 'g': 'lacks 4096 MB RAM'}


def test_no_host_qualifying_says_why_for_each():
    choice = selection.find_best_server(
        [cloud_base.HostInfo('a', up=False), cloud_base.HostInfo('b')],
        {'a': 50}, flavor=FLAVOR, current_host='x')
    assert choice.host is None
    assert choice.describe() == ('no host qualifies: a is down; b has no '
                                 'score')
