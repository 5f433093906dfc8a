"""Shadows that report late, or never, on the twin: the collector (here
the history store the twin writes through) loses the samples of chosen
hosts' shadows, as when the load generator in the guest starts late or
never reaches the collector.  A late host is still measured; a silent one
is given up after ``first_sample_timeout`` and the evaluation goes on
without it; a cancelled evaluation's hosts say they were cancelled."""

from shadow_service import evaluation
from shadow_service import measurements as names
from shadow_service.analysis import analyzer as analyzer_mod
from shadow_service.clouds.sim import driver as sim_driver
from shadow_service.history import memory
from tests import service_support

REQUEST = {'flavor': {'vcpus': 2, 'ram_mb': 4096, 'disk_gb': 20},
           'profile': 'web'}
HOSTS = ['node-01', 'node-02', 'node-03', 'node-04']
NEVER = float('inf')


class Collector(memory.MemoryStore):
    """The history store, losing the shadow samples of ``mute[host]``
    taken before that many twin seconds after ``start``."""

    def __init__(self):
        super().__init__()
        self.mute = {}
        self.start = 0.0
        self.unreadable_until = None

    def write(self, points):
        return super().write([p for p in points if not (
            p.measurement == names.SHADOW_SAMPLE
            and p.time - self.start < self.mute.get(
                p.tags.get(names.TAG_HOST), -1.0))])

    def query_points(self, measurement, tags=None, start=None, end=None,
                     limit=None):
        if (measurement == names.SHADOW_SAMPLE
                and self.unreadable_until is not None
                and end - self.start < self.unreadable_until):
            raise ConnectionError('the history store is down')
        return super().query_points(measurement, tags, start, end, limit)


def _run(schedule, mute, budget=60.0, hosts=HOSTS, progress=None,
         unreadable_until=None, **kwargs):
    history = Collector()
    driver = sim_driver.SimDriver(service_support.make_conf(
        sim={'backfill_hours': 0}), history)
    history.start = driver.now()
    history.mute = dict(mute)
    history.unreadable_until = unreadable_until
    evaluator = evaluation.Evaluator(
        driver, history, analyzer_mod.Analyzer(), sample_interval=1.0,
        min_run_time=2.0, schedule=schedule, **kwargs)
    ranking = evaluator.run(
        evaluator.new(REQUEST, [{'host': h} for h in hosts], budget),
        progress=progress and (lambda e, r: progress(driver, e)))
    assert driver.list_shadows() == []
    return ranking, driver.now() - history.start


def _reasons(ranking):
    return {h['host']: h['reasons'][0] for h in ranking['hosts']}


def test_pool_waits_for_a_host_without_history_whose_shadow_reports_late():
    # node-03's first samples come 6 s after its shadow is up, when the
    # other three are ranked at confidence_target.
    ranking, elapsed = _run('pool', {'node-03': 6.0},
                            confidence_target=0.5)
    reasons = _reasons(ranking)
    # Before: the loop stopped after 2 s, node-03 neutral (50, confidence
    # 0), "not measured within the budget" with 58 s of it left.
    assert not any(r.startswith('not measured') for r in reasons.values())
    assert elapsed >= 6.0
    assert elapsed < 60.0


def test_racing_gives_up_a_shadow_that_never_reports_and_goes_on():
    ranking, elapsed = _run('racing', {'node-02': NEVER},
                            first_sample_timeout=20.0)
    reasons = _reasons(ranking)
    assert reasons['node-02'] == (
        'not measured: its shadow sent no sample within 20s of being up; '
        'neutral score')
    assert {h['host']: h['confidence'] for h in ranking['hosts']}[
        'node-02'] == 0.0
    for host in ('node-01', 'node-03', 'node-04'):
        assert not reasons[host].startswith('not measured')
    # Before: the race was never ready to stop and ran its 60 s budget,
    # four shadows all along (240 shadow-host-seconds).
    assert 20.0 <= elapsed < 30.0
    assert ranking['shadow_host_seconds'] <= 4 * 25.0


def test_pool_gives_up_a_shadow_that_never_reports():
    ranking, elapsed = _run('pool', {'node-02': NEVER},
                            first_sample_timeout=20.0)
    assert _reasons(ranking)['node-02'].startswith(
        'not measured: its shadow sent no sample within 20s')
    assert 20.0 <= elapsed < 30.0


def test_an_unreadable_history_store_is_not_taken_for_silent_shadows():
    # The store cannot be read for the first 30 s: the samples wait in it,
    # and no shadow is given up for a silence the service could not hear.
    ranking, elapsed = _run('racing', {}, unreadable_until=30.0,
                            first_sample_timeout=20.0)
    assert not any(r.startswith('not measured')
                   for r in _reasons(ranking).values())
    assert elapsed >= 30.0


def test_silence_counts_from_the_last_failed_read():
    # node-02's samples are lost until 45 s (an outage's writes arriving
    # late); the store is unreadable until 30 s.  Its shadow is given up
    # 20 s after the last failed read, not at once when reads come back.
    ranking, elapsed = _run('pool', {'node-02': 45.0},
                            unreadable_until=30.0, first_sample_timeout=20.0,
                            confidence_target=0.5)
    assert not any(r.startswith('not measured')
                   for r in _reasons(ranking).values())
    assert elapsed >= 45.0


def test_a_zero_first_sample_timeout_waits_for_the_budget():
    ranking, elapsed = _run('racing', {'node-02': NEVER}, budget=30.0,
                            first_sample_timeout=0.0)
    assert elapsed >= 29.0
    assert _reasons(ranking)['node-02'] == (
        'not measured: not measured within the budget; neutral score')


def test_hosts_of_a_cancelled_evaluation_say_it_was_cancelled():
    def cancel_after_a_second(driver, evaluation_state):
        if driver.now() - driver.history.start >= 1.0:
            evaluation_state.cancelled = True

    # Two shadows at a time: four hosts wait in the queue when it is
    # cancelled.
    ranking, _elapsed = _run(
        'racing', {}, hosts=HOSTS + ['node-05', 'node-06'],
        progress=cancel_after_a_second, max_shadow_hosts=2)
    assert ranking['status'] == 'cancelled'
    waiting = {h: r for h, r in _reasons(ranking).items()
               if r.startswith('not measured')}
    assert len(waiting) == 4
    for reason in waiting.values():
        # Before: "not measured within the budget".
        assert reason == ('not measured: the evaluation was cancelled '
                          'before it was measured; neutral score')
