"""A per-table lease in the lake, so two runs (CLI, Dagster, any worker) never sync one table at once."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
from dataclasses import dataclass

from ..errors import LockError
from . import paths
from .store import LakeStore

__all__ = ["Lease", "acquire_lease"]

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
        try:
            holder = json.loads(self.store.read_bytes(self.path))
        except FileNotFoundError:
            return
        if holder.get("run_id") == self.run_id:
            self.store.delete(self.path)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _body(run_id: str, expires_at: dt.datetime) -> bytes:
    return json.dumps({
        "run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(),
        "acquired_at": _now().isoformat(), "expires_at": expires_at.isoformat(),
    }).encode()


def acquire_lease(store: LakeStore, table: str, run_id: str, ttl: dt.timedelta) -> Lease:
    """Take the table's lease or raise LockError naming the holder; an expired lease is taken over."""
    path = paths.lease_path(store.root, table)
    for _ in range(3):
        expires = _now() + ttl
        if store.create_exclusive(path, _body(run_id, expires)):
            return Lease(store, table, run_id, ttl, expires)
        try:
            holder = json.loads(store.read_bytes(path))
        except FileNotFoundError:
            continue  # released between our create and our read: try again
        except ValueError:
            holder = {"expires_at": "1970-01-01T00:00:00+00:00"}
        if dt.datetime.fromisoformat(holder["expires_at"]) > _now():
            raise LockError(
                f"table {table!r} is being synced by another run ({holder.get('run_id')} on "
                f"{holder.get('host')}, pid {holder.get('pid')}) until {holder['expires_at']} at the latest; "
                f"wait for it to finish (or, if that run died, for the lease {store.uri(path)} to expire)"
            )
        log.warning("table %r: taking over the expired lease of run %s", table, holder.get("run_id"))
        store.delete(path)
    raise LockError(f"table {table!r}: could not take the lease {store.uri(path)}; another run is starting, retry")
