"""``benchmarks/scheduler_overhead.py --only``: which cases a partial run
measures."""

import argparse

from tests.fixtures import benchmarks


def _bench():
    return benchmarks.load('scheduler_overhead')


def test_without_only_every_case_runs():
    bench = _bench()
    wanted = bench.case_filter(None)
    args = argparse.Namespace(workers=4)
    assert all(wanted(name, hosts)
               for name, hosts, _flags in bench.service_cases(args))
    assert wanted(bench.UPDATES_CASE, 1000)
    assert wanted('floor, columns', 10)


def test_only_picks_cases_by_name_and_hosts():
    bench = _bench()
    args = argparse.Namespace(workers=3)
    cases = bench.service_cases(args)
    names = [(name, hosts) for name, hosts, _flags in cases]
    # Every host count of the plain boot, then the 1,000-host variants.
    assert names[:len(bench.HOST_COUNTS)] == [
        ('boot, prior', h) for h in bench.HOST_COUNTS]
    assert ('boot, prior, 3 workers', max(bench.HOST_COUNTS)) in names
    wanted = bench.case_filter(['Circuit open'])
    assert [n for n in names if wanted(*n)] == [
        ('circuit open', max(bench.HOST_COUNTS))]
    wanted = bench.case_filter(['boot, prior@%d' % max(bench.HOST_COUNTS)])
    assert [n for n in names if wanted(*n)] == [
        ('boot, prior', max(bench.HOST_COUNTS))]
    assert not wanted(bench.UPDATES_CASE, max(bench.HOST_COUNTS))
    assert not wanted('floor, columns', max(bench.HOST_COUNTS))
    # Several texts: any of them.
    wanted = bench.case_filter(['no hint', bench.BARE_CASE])
    assert [n for n in names if wanted(*n)] == [
        ('no hint', max(bench.HOST_COUNTS))]
    assert wanted(bench.BARE_CASE, max(bench.HOST_COUNTS))
    # The flags each case is measured with.
    flags = {name: f for name, hosts, f in cases}
    assert flags['circuit open'] == {'open_circuit': True}
    assert flags['boot, prior, cache off, the chosen host changes'] == {
        'no_cache': True, 'chosen_host_changes': True}


def test_name_and_host_count_after_at_are_matched_exactly():
    bench = _bench()
    wanted = bench.case_filter(['floor, columns@10'])
    assert wanted('floor, columns', 10)
    assert not wanted('floor, columns', 100)
    assert not wanted('floor, columns', 1000)
    assert not wanted('floor, full reply', 10)
    assert not wanted('a floor, columns', 10)
    # Without a count, every host count of the name.
    wanted = bench.case_filter(['Floor, Columns'])
    assert all(wanted('floor, columns', h) for h in bench.HOST_COUNTS)
