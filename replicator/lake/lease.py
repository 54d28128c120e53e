"""A per-table lease in the lake, so two runs (CLI, Dagster, any worker) never sync one table at once."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LockError
from . import paths
from .store import LakeStore

__all__ = ["Lease", "acquire_lease", "holder_state", "read_lease", "remove_lease"]

log = logging.getLogger(__name__)


@dataclass
class Lease:
    store: LakeStore
    table: str
    run_id: str
    ttl: dt.timedelta
    expires_at: dt.datetime

    @property
    def path(self) -> str:
        return paths.lease_path(self.store.root, self.table)

    def renew(self) -> None:
        """Push the expiry out; call it from long runs at least once per ttl."""
        now = _now()
        if self.expires_at - now > self.ttl / 2:
            return
        self.expires_at = now + self.ttl
        self.store.write_bytes(self.path, _body(self.run_id, self.expires_at))

    def release(self) -> None:
        holder = read_lease(self.store, self.table)
        if holder is not None and holder.get("run_id") == self.run_id:
            remove_lease(self.store, self.table)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _body(run_id: str, expires_at: dt.datetime) -> bytes:
    return json.dumps({
        "run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(), **_process_identity(),
        "acquired_at": _now().isoformat(), "expires_at": expires_at.isoformat(),
    }).encode()


def _process_identity() -> dict[str, str]:
    """Where this process runs, precisely enough to tell later, from the same host, whether it still runs.

    The start time tells a reused pid from the holder. Empty off Linux: such leases only expire.
    """
    machine = _machine_identity()
    return {**machine, "started": _start_ticks(os.getpid()) or ""} if machine else {}


def _machine_identity() -> dict[str, str]:
    """The boot and PID namespace this process runs in: they make a pid comparable (containers share
    hostnames and reuse pids). Empty off Linux."""
    try:
        return {"boot_id": Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
                "pid_ns": os.readlink("/proc/self/ns/pid")}
    except OSError:
        return {}


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot ("" for a zombie), or None if it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone, or hidden from us (procfs hidepid)
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return "" if fields[0] in ("Z", "X") else fields[19]  # a zombie has exited already


def holder_state(holder: dict[str, Any]) -> str:
    """"running" or "exited" when the lease's run was on this machine (same boot and PID namespace), else "unknown"."""
    mine = _machine_identity()
    if not mine or not holder.get("started") or holder.get("host") != socket.gethostname():
        return "unknown"
    if holder.get("boot_id") != mine["boot_id"] or holder.get("pid_ns") != mine["pid_ns"]:
        return "unknown"
    try:
        pid = int(holder["pid"])
        os.kill(pid, 0)  # signal 0 only checks that the pid exists
    except ProcessLookupError:
        return "exited"
    except PermissionError:
        pass  # it exists, owned by another user
    except (KeyError, TypeError, ValueError, OSError):
        return "unknown"
    started = _start_ticks(pid)
    if started is None:
        return "running"  # it exists but its start time is hidden from us: assume it is the holder
    return "running" if started == holder["started"] else "exited"  # else: a zombie, or the pid was reused


def read_lease(store: LakeStore, table: str) -> dict[str, Any] | None:
    """The table's lease as its holder wrote it, or None when no run holds it."""
    try:
        holder: dict[str, Any] = json.loads(store.read_bytes(paths.lease_path(store.root, table)))
    except FileNotFoundError:
        return None
    except ValueError:
        return {"expires_at": "1970-01-01T00:00:00+00:00"}  # a torn write: treat it as expired
    return holder


def remove_lease(store: LakeStore, table: str) -> None:
    store.delete(paths.lease_path(store.root, table))


def acquire_lease(store: LakeStore, table: str, run_id: str, ttl: dt.timedelta) -> Lease:
    """Take the table's lease or raise LockError naming the holder; an expired lease is taken over."""
    path = paths.lease_path(store.root, table)
    for _ in range(3):
        expires = _now() + ttl
        if store.create_exclusive(path, _body(run_id, expires)):
            return Lease(store, table, run_id, ttl, expires)
        holder = read_lease(store, table)
        if holder is None:
            continue  # released between our create and our read: try again
        if holder_state(holder) == "exited":
            log.warning("table %r: run %s (pid %s on this machine) is no longer running; taking over its lease",
                        table, holder.get("run_id"), holder.get("pid"))
        elif dt.datetime.fromisoformat(holder["expires_at"]) > _now():
            raise LockError(
                f"table {table!r} is being synced by another run ({holder.get('run_id')} on "
                f"{holder.get('host')}, pid {holder.get('pid')}) until {holder['expires_at']} at the latest; "
                f"wait for it to finish, or, if you know that run died, remove its lease with "
                f"`replicator unlock {table}`"
            )
        else:
            log.warning("table %r: taking over the expired lease of run %s", table, holder.get("run_id"))
        remove_lease(store, table)
    raise LockError(f"table {table!r}: could not take the lease {store.uri(path)}; another run is starting, retry")
