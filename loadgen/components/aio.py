"""Linux native asynchronous I/O (``io_submit``) with the standard library.

The disk component's ``engine: aio`` keeps ``iodepth`` requests in flight
from ONE process, like fio's ``libaio`` engine, instead of one process per
request. There is no libaio here: the four system calls are made through
``ctypes`` and libc's ``syscall()``, with the kernel's own structure
layouts (``struct iocb``, ``struct io_event`` from ``linux/aio_abi.h``).
``available()`` says whether this platform can (Linux on x86-64 or
AArch64, ``ctypes`` present); ``Context`` raises ``OSError`` when the
kernel refuses (``io_setup``: ``EAGAIN`` when ``fs.aio-max-nr`` is used
up, ``ENOSYS``/``EPERM`` in some sandboxes), and the caller falls back to
synchronous workers.
"""

import os
import platform
import sys

try:
    import ctypes
except ImportError:      # a guest Python built without _ctypes
    ctypes = None

# machine -> (io_setup, io_destroy, io_getevents, io_submit)
_SYSCALLS = {
    'x86_64': (206, 207, 208, 209),
    'amd64': (206, 207, 208, 209),
    'aarch64': (0, 1, 4, 2),
    'arm64': (0, 1, 4, 2),
}
IOCB_CMD_PREAD = 0
IOCB_CMD_PWRITE = 1


def _numbers():
    if ctypes is None or not sys.platform.startswith('linux'):
        return None
    if sys.byteorder != 'little':
        return None
    return _SYSCALLS.get(platform.machine().lower())


def available():
    """True when ``Context`` can be tried on this platform."""
    return _numbers() is not None


if ctypes is not None:
    class IOCB(ctypes.Structure):
        """``struct iocb`` (64 bytes, little-endian field order)."""
        _fields_ = [('data', ctypes.c_uint64),
                    ('key', ctypes.c_uint32),
                    ('rw_flags', ctypes.c_int32),
                    ('opcode', ctypes.c_uint16),
                    ('reqprio', ctypes.c_int16),
                    ('fildes', ctypes.c_uint32),
                    ('buf', ctypes.c_uint64),
                    ('nbytes', ctypes.c_uint64),
                    ('offset', ctypes.c_int64),
                    ('reserved2', ctypes.c_uint64),
                    ('flags', ctypes.c_uint32),
                    ('resfd', ctypes.c_uint32)]

    class IOEvent(ctypes.Structure):
        """``struct io_event`` (32 bytes)."""
        _fields_ = [('data', ctypes.c_uint64),
                    ('obj', ctypes.c_uint64),
                    ('res', ctypes.c_int64),
                    ('res2', ctypes.c_int64)]

    class _Timespec(ctypes.Structure):
        _fields_ = [('tv_sec', ctypes.c_long), ('tv_nsec', ctypes.c_long)]


def buffer_address(buffer):
    """Address of a writable buffer (an ``mmap``) for ``IOCB.buf``."""
    return ctypes.addressof(ctypes.c_char.from_buffer(buffer))


class Context:
    """One ``aio_context_t`` able to hold ``depth`` requests."""

    def __init__(self, depth, timeout_s=1.0):
        numbers = _numbers()
        if numbers is None:
            raise OSError('native AIO needs Linux on x86-64/AArch64 and '
                          'ctypes')
        libc = ctypes.CDLL(None, use_errno=True)
        self._syscall = libc.syscall
        self._syscall.restype = ctypes.c_long
        setup, destroy, getevents, submit = (ctypes.c_long(n)
                                             for n in numbers)
        self._destroy_nr = destroy
        self._getevents_nr = getevents
        self._submit_nr = submit
        self.depth = depth
        self._ctx = ctypes.c_ulong(0)
        if self._syscall(setup, ctypes.c_long(depth),
                         ctypes.byref(self._ctx)) < 0:
            self._raise('io_setup')
        self._counts = [ctypes.c_long(n) for n in range(depth + 1)]
        self._timeout = _Timespec(int(timeout_s),
                                  int(timeout_s % 1 * 1e9))
        self._timeout_ref = ctypes.byref(self._timeout)

    @staticmethod
    def _raise(call):
        number = ctypes.get_errno()
        raise OSError(number, '%s: %s' % (call, os.strerror(number)))

    def submit(self, count, pointers):
        """Queue ``pointers[:count]`` (IOCB pointers); returns how many
        the kernel took (it may take fewer)."""
        done = self._syscall(self._submit_nr, self._ctx, self._counts[count],
                             pointers)
        if done < 0:
            self._raise('io_submit')
        return done

    def getevents(self, minimum, events):
        """Wait (at most the timeout) for ``minimum`` completions; fills
        ``events`` and returns how many there are."""
        done = self._syscall(self._getevents_nr, self._ctx,
                             self._counts[minimum], self._counts[self.depth],
                             events, self._timeout_ref)
        if done < 0:
            if ctypes.get_errno() == 4:      # EINTR
                return 0
            self._raise('io_getevents')
        return done

    def close(self):
        if self._ctx.value:
            self._syscall(self._destroy_nr, self._ctx)
            self._ctx.value = 0
