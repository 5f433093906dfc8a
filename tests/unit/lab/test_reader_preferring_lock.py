"""The LabCloud's cell lock: readers never queue behind a waiting writer
(the cycle that deadlocks Nova's CellDatabases fixture under concurrent
builds), writers exclude readers, both re-entrant."""

import threading
import time

import pytest

cloud = pytest.importorskip('nova_shadow_lab.cloud')


def _in_thread(target):
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_a_reader_enters_while_a_writer_waits():
    lock = cloud.ReaderPreferringLock()
    writer_done = threading.Event()
    with lock.read_lock():
        def writer():
            with lock.write_lock():
                writer_done.set()
        _in_thread(writer)
        time.sleep(0.05)  # the writer is now waiting for us
        entered = threading.Event()

        def reader():
            with lock.read_lock():
                entered.set()
        _in_thread(reader).join(timeout=2)
        assert entered.is_set()
        assert not writer_done.is_set()
    assert writer_done.wait(timeout=2)


def test_a_writer_excludes_readers_until_it_is_done():
    lock = cloud.ReaderPreferringLock()
    entered = threading.Event()
    with lock.write_lock():
        with lock.write_lock(), lock.read_lock():  # re-entrant for the writer
            pass

        def reader():
            with lock.read_lock():
                entered.set()
        thread = _in_thread(reader)
        time.sleep(0.05)
        assert not entered.is_set()
    thread.join(timeout=2)
    assert entered.is_set()


def test_readers_are_re_entrant_and_cannot_upgrade():
    lock = cloud.ReaderPreferringLock()
    with lock.read_lock(), lock.read_lock():
        with pytest.raises(RuntimeError):
            with lock.write_lock():
                pass
    with lock.write_lock():
        pass


def test_a_writer_takes_the_lock_past_a_reader_that_waits_for_it():
    lock = cloud.ReaderPreferringLock()
    lock.WRITER_PATIENCE_S = 0.5
    written = threading.Event()

    def writer():
        with lock.write_lock():
            written.set()
    started = time.monotonic()
    with lock.read_lock():
        # This reader waits for the writer: without patience, forever.
        _in_thread(writer)
        assert written.wait(timeout=5)
    assert 0.5 <= time.monotonic() - started < 5
