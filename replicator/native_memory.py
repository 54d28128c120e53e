"""Keep the process's native heap from growing with the threads that allocate record batches (glibc only).

connectorx allocates every record batch with malloc in its own threads, and the batches are freed
in the thread that wrote them. glibc gives each thread its own arena, and each arena keeps the high
water mark of what passed through it, so a long read leaves several arenas each holding a few batches'
worth of freed memory. One arena for the whole process keeps freed batches in one place for reuse:
bench/, MariaDB 2M-row full extract, 6 alternating runs each (`python -m bench.step extract`):

- glibc defaults: 2.66 s wall, peak RSS up to 412 MiB
- one arena: 2.69 s, 271 MiB, about 45,000 minor page faults
- the fixed 128 KiB mmap threshold used before (every batch buffer mmapped and unmapped, so every
  page of every batch faulted in afresh): 2.87 s, 258 MiB, about 200,000 minor page faults and
  0.3 s more system time

The setting is process-wide and only bounds arenas created after it, so it is applied once, before
connectorx starts its threads. ADBC's PostgreSQL reads allocate through Arrow's own memory pool
and leave glibc's defaults alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

__all__ = ["share_one_arena"]

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # from glibc's malloc.h
_applied: bool | None = None


def share_one_arena() -> bool:
    """Limit glibc to one malloc arena, once per process; True when it applies (False elsewhere, harmlessly)."""
    global _applied
    if _applied is None:
        _applied = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _applied = bool(libc.mallopt(_M_ARENA_MAX, 1))
            except (OSError, AttributeError):  # not glibc (musl has no mallopt): nothing to tune
                log.debug("mallopt is not available; the native heap keeps its defaults")
    return _applied
