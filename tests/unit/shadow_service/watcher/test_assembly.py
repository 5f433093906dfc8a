"""What ``shadow-watcher`` assembles: the service's parts without owning
shadows."""

from shadow_service import service
from shadow_service.clouds.sim import driver as sim_driver
from shadow_service.history import sqlite as sqlite_store
from shadow_service.watcher import ranking
from tests import watcher_support


class RecordingTwin(sim_driver.SimDriver):
    """The twin, noting what is asked of its shadow lifecycle (a real
    ``openstack`` driver starts its collector and garbage collector in
    ``start`` and lists left-overs in ``garbage_shadows``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def start(self):
        self.calls.append('start')
        return super().start()

    def garbage_shadows(self):
        self.calls.append('garbage_shadows')
        return super().garbage_shadows()


def _parts(tmp_path, **groups):
    conf = watcher_support.make_conf(tmp_path, **groups)
    conf.set_override('cleanup_on_start', True, group='shadow')
    history = sqlite_store.SQLiteStore(path=':memory:')
    return conf, history, RecordingTwin(conf, history)


def test_the_service_owns_its_shadows(tmp_path):
    conf, history, driver = _parts(tmp_path)
    parts = service.build(conf, history=history, driver=driver)
    try:
        assert driver.calls == ['garbage_shadows', 'start']
    finally:
        parts.close()


def test_the_watcher_neither_cleans_up_nor_collects_shadows(tmp_path):
    """With the service's identity (same host or config) the watcher's
    clean-up would delete the service's running shadows."""
    conf, history, driver = _parts(tmp_path)
    assembled = service.build_watcher(conf, history=history, driver=driver)
    try:
        assert driver.calls == []
    finally:
        assembled.close()


def test_the_in_process_ranker_asks_as_a_live_migration(tmp_path):
    conf, history, driver = _parts(tmp_path, watcher={'ranker': 'history'})
    assembled = service.build_watcher(conf, history=history, driver=driver)
    asked = []
    manager = assembled.parts.manager
    rank_hosts = manager.rank_hosts

    def recording(ctxt, request, hosts, budget_s, **kwargs):
        asked.append(request)
        return rank_hosts(ctxt, request, hosts, budget_s, **kwargs)

    manager.rank_hosts = recording
    try:
        ranker = service.build_ranker(conf, assembled.parts)
        assert isinstance(ranker, ranking.ManagerRanker)
        watcher_support.place(driver, 'vm-1', [1.0] * 12)
        instance = [i for i in driver.list_instances()
                    if i.instance_id == 'vm-1'][0]
        scores = ranker(instance, 'batch-cpu', driver.list_hosts())
        assert asked and asked[0]['purpose'] == 'live-migrate'
        assert set(scores) <= {h.host for h in driver.list_hosts()}
        # Answered from history: no shadow was booted.
        assert driver.list_shadows() == []
    finally:
        assembled.close()
