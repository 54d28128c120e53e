"""Keep the process's native heap flat while connectorx reads (glibc only).

connectorx allocates every record batch with malloc in its own threads, and the writer frees them in
another. With glibc's defaults each thread gets its own arena, each arena keeps the high-water mark of
what passed through it, and the mmap threshold rises with every large free, so over a long read the
RSS creeps up (bench/, MariaDB 2M-row full extract: up to 412 MiB). The MySQL fast path therefore
limits glibc to one arena, so freed batches are reused in one place, and hands that arena's free pages
back to the OS after each statement (a keyset chunk of at most 8 batches).

Measured with `python -m bench.step extract` on that extract (wall; peak RSS on a local lake; VmHWM on
an S3 lake, where boto3's upload threads allocate beside the reader):

- one arena and a trim per chunk: 2.57 s, 259 MiB, S3 285-293 MiB (8 and 4 alternating runs)
- the fixed 128 KiB mmap threshold used before, which mapped every batch buffer afresh (about 200,000
  minor page faults, 0.3 s of system time per 2M rows): 2.67 s, 242 MiB, S3 277-281 MiB
- one arena without the trim: about 0.05 s faster still, but 322-345 MiB on S3, over the 300 MiB target

ADBC's PostgreSQL reads allocate through Arrow's own memory pool and leave glibc's defaults alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

__all__ = ["release_free_memory", "share_one_arena"]

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # from glibc's malloc.h
_tried = False
_libc: ctypes.CDLL | None = None  # set once the arena limit applied


def share_one_arena() -> bool:
    """Limit glibc to one malloc arena, once per process; True when it applies (False elsewhere, harmlessly).

    Process-wide, and it only bounds arenas created after it: call it before the reader starts its threads.
    """
    global _tried, _libc
    if not _tried:
        _tried = True
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                if libc.mallopt(_M_ARENA_MAX, 1):
                    _libc = libc
            except (OSError, AttributeError):  # not glibc (musl has no mallopt): nothing to tune
                log.debug("mallopt is not available; the native heap keeps its defaults")
    return _libc is not None


def release_free_memory() -> None:
    """Return the heap's free pages to the OS (malloc_trim); a no-op unless `share_one_arena` applied."""
    if _libc is not None:
        _libc.malloc_trim(0)
