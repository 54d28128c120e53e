"""The glibc settings of the MySQL fast path, observed in fresh processes (they are process-wide)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")

_THREADS_ALLOCATE = """
import ctypes, os, re, tempfile, threading
from replicator import native_memory

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.fopen.restype = ctypes.c_void_p
if os.environ["SHARE"] == "1":
    native_memory.allow_process_tuning()
applied = native_memory.share_one_arena()  # what the MySQL fast path calls before each read

def churn():  # batch-sized buffers, allocated and freed in this thread, as connectorx's threads do
    for _ in range(50):
        libc.free(libc.malloc(64 * 1024))

def heaps():
    path = tempfile.mktemp()
    stream = libc.fopen(path.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(stream))
    libc.fclose(ctypes.c_void_p(stream))
    count = len(re.findall("<heap nr=", open(path).read()))
    os.unlink(path)
    return count

before = heaps()
threads = [threading.Thread(target=churn) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(applied, before, heaps())
"""

_TRIM = """
import ctypes
from replicator import native_memory

def rss_kib():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1])

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
native_memory.allow_process_tuning()
native_memory.share_one_arena()
blocks = [libc.malloc(64 * 1024) for _ in range(3000)]  # 190 MiB of heap, below the mmap threshold
for b in blocks:
    ctypes.memset(b, 1, 64 * 1024)
keep = libc.malloc(64 * 1024)  # holds the top of the heap, so freeing alone cannot shrink it
for b in blocks:
    libc.free(b)
before = rss_kib()
native_memory.release_free_memory()
print(before, rss_kib())
"""


def _run(code: str, **env: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", **env}, check=True)
    return done.stdout.split()


def test_threads_started_after_the_setting_get_no_arenas_of_their_own() -> None:
    applied, before, after = _run(_THREADS_ALLOCATE, SHARE="1")
    assert applied == "True" and int(after) == int(before)
    # A process that has not opted in (a library embedder) keeps glibc's default: each new thread gets
    # an arena of its own, each keeping its own freed batches.
    applied, before, after = _run(_THREADS_ALLOCATE, SHARE="0")
    assert applied == "False" and int(after) > int(before)


def test_the_command_opts_in_and_the_library_alone_does_not() -> None:
    probe = ("import sys; from replicator import native_memory, cli; {call}; "
             "print(native_memory._allowed, 'sqlalchemy' in sys.modules)")
    assert _run(probe.format(call="pass")) == ["False", "False"]
    done = subprocess.run([sys.executable, "-c", "import sys; sys.argv = ['replicator', '--version']\n"
                           "from replicator import cli, native_memory\n"
                           "try:\n    cli.run()\nexcept SystemExit:\n    print(native_memory._allowed)"],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, check=True)
    assert done.stdout.split()[-1] == "True"


def test_release_free_memory_returns_freed_heap_pages_to_the_os() -> None:
    before, after = (int(v) for v in _run(_TRIM))
    assert before - after > 150 * 1024, (before, after)
