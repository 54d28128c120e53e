"""Keep the process's native heap flat while connectorx reads (glibc only), when the process allows it.

connectorx allocates every record batch with malloc in its own threads, and the writer frees them in
another; with glibc's defaults the RSS creeps up over a long read. The MySQL fast path can limit glibc
to one malloc arena and hand its free pages back after each keyset chunk. That setting is process-wide
(every later thread shares the arena), so the library applies it only once the process has opted in
with `allow_process_tuning()`: the `replicator` command does (it is a process of its own), and an
embedder (a notebook, an in-process Dagster executor) keeps glibc's defaults unless it calls it too.
The measurements behind the choice are in bench/README.md ("Native memory").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

__all__ = ["allow_process_tuning", "release_free_memory", "share_one_arena"]

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # from glibc's malloc.h
_allowed = False
_tried = False
_libc: ctypes.CDLL | None = None  # set once the arena limit applied


def allow_process_tuning() -> None:
    """Let replicator change glibc's malloc policy for this whole process (see the module docstring)."""
    global _allowed
    _allowed = True


def share_one_arena() -> bool:
    """Limit glibc to one malloc arena, once per process; True when it applies (False when the process has
    not allowed it, or elsewhere than glibc, harmlessly).

    Process-wide, and it only bounds arenas created after it: call it before the reader starts its threads.
    """
    global _tried, _libc
    if _allowed and not _tried:
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
