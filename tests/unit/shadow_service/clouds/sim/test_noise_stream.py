"""``[sim] noise_stream``: the twin's noise drawn in one shared sequence
(the default) or keyed by the sampled object, metric and time."""

import hashlib
import json

import numpy as np
import pytest
from oslo_config import cfg

from loadgen import profiles
from shadow_service import conf as shadow_conf
from shadow_service.clouds.sim import driver as sim_driver
from shadow_service.clouds.sim import engine
from shadow_service.history import memory

VM_REQUEST = {'flavor': {'vcpus': 2, 'ram_mb': 2048, 'disk_gb': 10},
              'profile': 'web'}


def _twin(stream, seed=7, noise_pct=10.0):
    return engine.build_twin(seed=seed, history=memory.MemoryStore(),
                             noise_pct=noise_pct, sample_interval_s=1.0,
                             start_time=engine.DEFAULT_START,
                             noise_stream=stream)


def _start(twin, wid, host, kind='vm'):
    twin.start_workload(engine.Workload(
        workload_id=wid, kind=kind, host=host,
        profile=profiles.load_profile('web'), vcpus=2, ram_mb=2048,
        disk_gb=10, started_at=twin.clock, evaluation_id='ev'))


def _samples(twin, measurement, **tags):
    return {(p.tags['metric'], p.time): p.fields['value']
            for p in twin.history.query_points(measurement, tags or None)}


def test_shared_stream_is_the_default_and_unchanged():
    # The digest of these samples as the twin wrote them before the
    # option existed: the default stream repeats them bit for bit.
    twin = engine.build_twin(seed=7, history=memory.MemoryStore(),
                             noise_pct=10.0, sample_interval_s=1.0,
                             start_time=engine.DEFAULT_START)
    assert twin.noise_stream == 'shared'
    for wid, host, kind in (('w1', 'node-03', 'shadow'),
                            ('vm-1', 'node-03', 'vm'),
                            ('vm-2', 'node-05', 'vm')):
        _start(twin, wid, host, kind)
    twin.advance(120)
    twin.advance(600, sample_interval_s=60)
    points = []
    for measurement in ('shadow_sample', 'instance_metric', 'host_metric'):
        points += [(p.measurement, sorted(p.tags.items()), p.fields,
                    p.time - twin.clock)
                   for p in twin.history.query_points(measurement)]
    assert len(points) == 4434
    assert hashlib.sha256(json.dumps(points).encode()).hexdigest() == (
        '0b2df743ed367336b0cafadcb7ef759fc658ec035b38d8b399e5a6596cfa2271')


def test_keyed_deviates_depend_on_seed_key_and_time_alone():
    times = 1.7e9 + np.arange(1000) * 5.0
    key = ('vm', 'web-1', 'cpu_ops_per_s')
    drawn = engine.keyed_normal(3, key, times)
    # Again, reversed, one by one, in another shape: the same deviates.
    np.testing.assert_array_equal(engine.keyed_normal(3, key, times),
                                  drawn)
    np.testing.assert_array_equal(
        engine.keyed_normal(3, key, times[::-1]), drawn[::-1])
    assert engine.keyed_normal(3, key, times[17]) == drawn[17]
    np.testing.assert_array_equal(
        engine.keyed_normal(3, key, times.reshape(10, 100)),
        drawn.reshape(10, 100))
    # Another seed, object, metric or time: other (unrelated) deviates.
    for other in (engine.keyed_normal(4, key, times),
                  engine.keyed_normal(3, ('vm', 'web-2', key[2]), times),
                  engine.keyed_normal(3, key[:2] + ('disk_iops',), times),
                  engine.keyed_normal(3, key, times + 1.0)):
        assert abs(np.corrcoef(drawn, other)[0, 1]) < 0.15
        assert not np.any(other == drawn)


def test_keyed_deviates_are_standard_normal():
    n = 200000
    drawn = engine.keyed_normal(0, ('host', 'node-01', 'cpu_util_pct'),
                                1.7e9 + np.arange(n) * 1.0)
    # Standard errors of the mean (1/sqrt(n)) and of the standard
    # deviation (1/sqrt(2n)) of n normal deviates: within 5 of them.
    assert abs(drawn.mean()) < 5.0 / np.sqrt(n)
    assert abs(drawn.std() - 1.0) < 5.0 / np.sqrt(2.0 * n)
    # Tails: the share beyond 1.96 is 5 % (binomial standard error).
    share = np.mean(np.abs(drawn) > 1.959964)
    assert abs(share - 0.05) < 5.0 * np.sqrt(0.05 * 0.95 / n)
    # Neighbouring times are not correlated.
    assert abs(np.corrcoef(drawn[:-1], drawn[1:])[0, 1]) < 5.0 / np.sqrt(n)


def test_keyed_noise_has_the_stated_standard_deviation():
    twin = _twin('keyed')
    n = 100000
    times = twin.clock + np.arange(n) * 5.0
    factor = twin.noisy(np.ones(n), 10.0, key=('vm', 'a', 'm'),
                        times=times)
    assert abs(factor.mean() - 1.0) < 5.0 * 0.1 / np.sqrt(n)
    assert abs(factor.std() - 0.1) < 5.0 * 0.1 / np.sqrt(2.0 * n)
    # The same sample twice: the same noise.
    np.testing.assert_array_equal(
        twin.noisy(np.ones(n), 10.0, key=('vm', 'a', 'm'), times=times),
        factor)


def test_keyed_noise_needs_the_key_and_the_times():
    twin = _twin('keyed')
    with pytest.raises(ValueError):
        twin.noisy([1.0, 2.0], 10.0)
    with pytest.raises(ValueError):
        _twin('sequential')


def _vm_samples(stream, others):
    twin = _twin(stream)
    _start(twin, 'vm-1', 'node-03')
    if others:
        # Another VM on another host, an earlier draw of its own, and
        # the clock advanced in other steps.
        _start(twin, 'vm-0', 'node-05')
        twin.noisy(np.ones(7), 10.0, key=('vm', 'vm-0', 'extra'),
                   times=twin.clock + np.arange(7.0))
        twin.advance(45)
        twin.advance(75)
    else:
        twin.advance(120)
    return (_samples(twin, 'instance_metric', instance='vm-1'),
            _samples(twin, 'host_metric', host='node-03'))


def test_keyed_samples_ignore_the_rest_of_the_run():
    keyed = _vm_samples('keyed', others=False)
    assert keyed[0] and keyed[1]
    assert _vm_samples('keyed', others=True) == keyed
    # The shared stream gives the same VM other noise.
    assert _vm_samples('shared', others=True)[0] != _vm_samples(
        'shared', others=False)[0]


@pytest.mark.parametrize('stream', ['shared', 'keyed'])
def test_twins_built_either_side_of_0900_utc_sample_the_same(stream):
    """The default start is the latest 09:00 UTC of the wall clock: two
    processes building their twins at 08:59 and 09:01 UTC start a day
    apart, and must still replay the same run (the traces from the same
    point, the same noise)."""
    nine = 20 * 86400.0 + 9 * 3600.0
    runs = []
    for now in (nine - 60.0, nine + 60.0):
        twin = engine.build_twin(seed=7, history=memory.MemoryStore(),
                                 noise_pct=10.0, sample_interval_s=1.0,
                                 start_time=engine.default_start(now),
                                 noise_stream=stream)
        start = twin.clock
        _start(twin, 'vm-1', 'node-03')
        twin.advance(120)
        runs.append({(metric, at - start): value for (metric, at), value
                     in _samples(twin, 'instance_metric',
                                 instance='vm-1').items()})
    assert runs[0] and runs[0] == runs[1]


def _driver(stream):
    conf = cfg.ConfigOpts()
    shadow_conf.register_opts(conf)
    conf([])
    conf.set_override('noise_stream', stream, group='sim')
    conf.set_override('backfill_hours', 0, group='sim')
    conf.set_override('sample_interval', 60.0, group='sim')
    return sim_driver.SimDriver(conf, memory.MemoryStore())


def test_a_siblings_keyed_noise_ignores_other_groups_siblings():
    runs = []
    for others in (0, 3):
        driver = _driver('keyed')
        driver.place_vm(VM_REQUEST, 'node-03', instance_id='web-1')
        driver.place_vm(VM_REQUEST, 'node-05', instance_id='web-9')
        for _ in range(others):
            driver.boot_sibling('web-9', host='node-05')
        sibling = driver.boot_sibling('web-1', host='node-03')
        driver.wait(600)
        values = {(p.tags['metric'], p.time): p.fields['value']
                  for p in driver.history.query_points(
                      'instance_metric', {'instance': sibling.instance_id})}
        assert values
        runs.append((sibling.instance_id, values))
    # Its instance id counts the twin's workloads, its noise does not.
    assert runs[0][0] != runs[1][0]
    assert runs[0][1] == runs[1][1]
