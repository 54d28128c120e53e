"""Whether a lease's holder still runs, judged from the same machine with real processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from replicator.lake import lease

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process identity is read from /proc")


def _holder(pid: int, **override: str) -> dict[str, object]:
    identity = lease._process_identity()
    return {"run_id": "r", "host": socket.gethostname(), "pid": pid,
            **identity, "started": lease._start_ticks(pid), **override}


def test_a_running_holder_keeps_its_lease_and_an_exited_one_does_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        holder = _holder(child.pid)
        assert lease.holder_state(holder) == "running"
        child.kill()
        deadline = time.monotonic() + 10
        while lease._start_ticks(child.pid) != "" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lease.holder_state(holder) == "exited"  # a zombie nobody has reaped yet
        child.wait()
        assert lease.holder_state(holder) == "exited"
    finally:
        child.kill()
        child.wait()


def test_a_reused_pid_or_another_machine() -> None:
    mine = _holder(os.getpid())
    assert lease.holder_state(mine) == "running"
    assert lease.holder_state({**mine, "started": "1"}) == "exited"  # this pid now belongs to another process
    assert lease.holder_state({**mine, "host": "elsewhere"}) == "unknown"
    assert lease.holder_state({**mine, "boot_id": "another-boot"}) == "unknown"
    assert lease.holder_state({**mine, "pid_ns": "pid:[1]"}) == "unknown"  # another container
    assert lease.holder_state({k: v for k, v in mine.items() if k != "started"}) == "unknown"  # an older lease
