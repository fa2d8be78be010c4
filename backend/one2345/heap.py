"""Large temporaries without page faults (glibc, i.e. Linux; elsewhere nothing changes).

The reconstruction's SDF grid and colours run step after step on tensors of tens to
hundreds of MB. glibc hands each of them out as fresh memory from the kernel (anything
over its mmap threshold, at most 32 MB) and gives it back when freed, so every step
touches new pages: measured on the demo volume at 256, 24 million page faults, 40 % of
the reconstruction's CPU time. Inside `reused_heap()` such blocks come from the heap and
are reused by the next step; on leaving, the thresholds are set to glibc's largest
dynamic ones (32 MB / 64 MB, where a long-running process's settle) and the heap is
trimmed, so the memory goes back to the system.
"""

import contextlib
import ctypes
import ctypes.util
import sys
import threading

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_DURING = 1 << 30  # blocks up to 1 GB from the heap, and keep up to 1 GB free at its top
_AFTER_MMAP, _AFTER_TRIM = 32 << 20, 64 << 20  # glibc's dynamic maxima (64-bit)


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    # glibc only: musl, say, has neither these thresholds nor this function
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "malloc_trim") else None


_LIBC = _glibc()
_depth = [0]  # contexts open (nested ones change nothing)
_lock = threading.Lock()


@contextlib.contextmanager
def reused_heap():
    if _LIBC is None:
        yield
        return
    with _lock:
        _depth[0] += 1
        if _depth[0] == 1:
            _LIBC.mallopt(_M_MMAP_THRESHOLD, _DURING)
            _LIBC.mallopt(_M_TRIM_THRESHOLD, _DURING)
    try:
        yield
    finally:
        with _lock:
            _depth[0] -= 1
            if _depth[0] == 0:
                _LIBC.mallopt(_M_MMAP_THRESHOLD, _AFTER_MMAP)
                _LIBC.mallopt(_M_TRIM_THRESHOLD, _AFTER_TRIM)
                _LIBC.malloc_trim(0)
