"""The console pump on a host whose disk is full: one warning per
instance per episode, and how much was dropped when it ends, on a real
full filesystem (a 256 KiB tmpfs)."""

import logging
import os
import subprocess
import threading
import time

import pytest

from nova_shadow_lab import runtime

CHUNK = 64 * 1024
TOTAL = 2 * 1024 * 1024


@pytest.fixture
def full_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip('mounting a tmpfs needs root')
    disk = tmp_path / 'disk'
    disk.mkdir()
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=256k', 'tmpfs',
                    str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(['umount', str(disk)], check=True)


def _fill(disk):
    filler = disk / 'filler'
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b'\0' * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def _write(console, nbytes):
    fd = console.writer_fd()
    try:
        view = memoryview(b'x' * nbytes)
        while view:
            view = view[os.write(fd, view[:CHUNK]):]
    finally:
        os.close(fd)


def _pump_messages(caplog):
    return [r.getMessage() for r in caplog.records
            if r.name == runtime.LOG.name]


def test_a_full_disk_warns_once_per_episode_and_counts_at_close(
        full_disk, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=runtime.LOG.name)
    _fill(full_disk)
    fifo = str(tmp_path / 'console.fifo')
    os.mkfifo(fifo)
    log_path = str(full_disk / 'console.log')
    pump = runtime.ConsolePump()
    console = pump.open(fifo, log_path, max_bytes=10 * 1024 * 1024)
    _write(console, TOTAL)
    pump.close(console, timeout=10)
    assert console.closed.is_set()
    messages = _pump_messages(caplog)
    cannot = [m for m in messages if 'cannot write' in m]
    ended = [m for m in messages if 'closed;' in m]
    assert len(cannot) == 1, messages
    assert len(ended) == 1, messages
    assert len(messages) == 2, messages
    # The count said at the end is what the log lacks.
    kept = os.path.getsize(log_path) if os.path.exists(log_path) else 0
    dropped = int(ended[0].split('closed; ')[1].split(' bytes')[0])
    assert dropped > 0
    assert kept + dropped >= TOTAL


def test_an_episode_ends_when_the_log_is_written_again(
        full_disk, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=runtime.LOG.name)
    filler = _fill(full_disk)
    fifo = str(tmp_path / 'console.fifo')
    os.mkfifo(fifo)
    log_path = str(full_disk / 'console.log')
    pump = runtime.ConsolePump()
    console = pump.open(fifo, log_path, max_bytes=10 * 1024 * 1024)
    try:
        _write(console, 4 * CHUNK)
        os.unlink(filler)  # room again
        done = threading.Event()
        writer = threading.Thread(
            target=lambda: (_write(console, 100), done.set()))
        writer.start()
        writer.join(10)
        assert done.is_set()
    finally:
        pump.close(console, timeout=10)
    messages = _pump_messages(caplog)
    assert len([m for m in messages if 'cannot write' in m]) == 1, messages
    again = [m for m in messages if 'written again;' in m]
    assert len(again) == 1, messages
    assert not [m for m in messages if 'closed;' in m], messages
    with open(log_path, 'rb') as f:
        assert f.read().endswith(b'x' * 100)


def test_a_log_truncated_under_the_pump_keeps_being_written(tmp_path,
                                                            caplog):
    """logrotate's copytruncate (or an operator's ``> console.log``) empties
    the log while the pump holds its size: the pump still writes it and
    keeps it under ``max_bytes``."""
    caplog.set_level(logging.WARNING, logger=runtime.LOG.name)
    fifo = str(tmp_path / 'console.fifo')
    os.mkfifo(fifo)
    log_path = str(tmp_path / 'console.log')
    pump = runtime.ConsolePump()
    console = pump.open(fifo, log_path, max_bytes=4 * CHUNK)
    try:
        _write(console, 3 * CHUNK + 100)
        deadline = time.monotonic() + 10
        while (os.path.getsize(log_path) < 3 * CHUNK + 100
               and time.monotonic() < deadline):
            time.sleep(0.01)
        os.truncate(log_path, 0)
        _write(console, CHUNK + 7)
    finally:
        pump.close(console, timeout=10)
    assert _pump_messages(caplog) == []
    assert os.path.getsize(log_path) == CHUNK + 7
