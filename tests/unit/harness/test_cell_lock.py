"""The openstack harness's cell lock: readers never queue behind a
waiting writer, and a writer whose readers never leave takes the lock
after its patience instead of hanging the run."""

import threading
import time

import pytest

support = pytest.importorskip('tests.openstack_support')


def _in_thread(target):
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def _lock(patience_s):
    lock = support._ReaderPreferringLock()
    lock.WRITER_PATIENCE_S = patience_s
    return lock


def test_a_writer_waits_for_the_readers_within_its_patience():
    lock = _lock(30.0)
    written = threading.Event()
    with lock.read_lock():
        _in_thread(lambda: _write(lock, written))
        assert not written.wait(0.3)
        # A new reader enters although the writer waits.
        entered = threading.Event()
        _in_thread(lambda: _read(lock, entered)).join(timeout=2)
        assert entered.is_set()
    assert written.wait(timeout=3)


def test_a_writer_takes_the_lock_past_a_reader_that_waits_for_it(capsys):
    lock = _lock(0.5)
    written = threading.Event()
    started = time.monotonic()
    with lock.read_lock():
        # This reader waits for the writer: the cycle that hung the run.
        _in_thread(lambda: _write(lock, written))
        assert written.wait(timeout=5)
    took = time.monotonic() - started
    assert 0.5 <= took < 5
    assert 'taking the lock past them' in capsys.readouterr().err


def test_writers_exclude_each_other_and_readers():
    lock = _lock(30.0)
    inside = []
    with lock.write_lock():
        entered = threading.Event()
        reader = _in_thread(lambda: _read(lock, entered))
        assert not entered.wait(0.3)
        inside.append('writer')
    reader.join(timeout=2)
    assert entered.is_set()
    assert inside == ['writer']


def test_a_reader_cannot_become_a_writer():
    lock = _lock(30.0)
    with lock.read_lock():
        with pytest.raises(RuntimeError):
            with lock.write_lock():
                pass


def _write(lock, done):
    with lock.write_lock():
        done.set()


def _read(lock, done):
    with lock.read_lock():
        done.set()
