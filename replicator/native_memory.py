"""Keep the process's native heap from holding on to freed record batches (glibc only).

glibc serves large allocations with mmap and returns them to the OS when freed, but each such free
raises its mmap threshold (up to 32 MiB), so later batch-sized buffers come from malloc arenas that
keep freed memory. connectorx allocates every record batch with malloc in its own threads, so over a
long read the RSS creeps up to the arenas' high-water mark. A fixed threshold keeps those buffers
mmapped: bench/, MariaDB 2M-row full extract, peak RSS 328 -> 260 MiB at the same speed. The MySQL
fast path applies it; ADBC's PostgreSQL reads do not need it (230 -> 215 MiB for 0.1 s more system
time), so they leave glibc's defaults alone.

The price is page faults (every batch buffer is mapped afresh: about 200,000 minor faults, 0.3 s of
system time per 2M rows). One malloc arena instead (M_ARENA_MAX=1) measured 0.18 s faster with the
same peak on a local lake, but on an S3 lake, where boto3's upload threads allocate beside the
reader, its peak was 326 MiB against this threshold's 280 (VmHWM, 4 runs each), over the 300 MiB target.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

__all__ = ["return_large_buffers"]

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value, kept fixed
_applied: bool | None = None


def return_large_buffers() -> bool:
    """Fix glibc's mmap threshold once per process; True when it applies (False elsewhere, harmlessly)."""
    global _applied
    if _applied is None:
        _applied = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, _THRESHOLD_BYTES))
            except (OSError, AttributeError):  # not glibc (musl has no mallopt): nothing to tune
                log.debug("mallopt is not available; the native heap keeps its defaults")
    return _applied
