"""Finish what a dead run left half-done in a table's folder, before anything reads or commits it.

A batch is committed when its manifest exists; its parts then move from `_staging/<run>/` into the
Hive layout and, for a full batch, the files it replaces move to `_superseded/`. A run killed between
those steps leaves a committed batch that Hive readers do not see yet (or see beside the files it
replaced), and staging folders of runs that never committed. `recover` restores the promised layout.
Every commit runs it first, under the table's lease, so only the latest manifest can be unfinished.

Moving files must not race a live run of the same table, so:
- committing commands (sync, reconcile --apply-deletes, compact) call `recover` holding the lease;
- read-only commands call `recover_for_reading`: when something is pending and the lease is free (or
  its holder died), they take it for the moves and release it; when a live run holds it, they move
  nothing and read each file where it is right now (`read_committed`, `locate`), as the live run does
  its own recovery and publish.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from typing import Literal

import pyarrow as pa

from ..errors import LakeError, LockError
from . import paths
from .lease import acquire_lease
from .manifest import DataFile, Manifest, latest_manifest, load_manifest
from .publish import publish, superseded_path
from .reader import active_manifests, read_files
from .store import LakeStore

__all__ = ["Recovery", "locate", "read_committed", "recover", "recover_for_reading"]

log = logging.getLogger(__name__)

Recovery = Literal["clean", "recovered", "busy"]
"""What `recover_for_reading` found: nothing pending; finished under the lease; a live run holds the lease."""


def recover(store: LakeStore, table: str) -> Manifest | None:
    """Finish the latest batch's interrupted publish, drop staging of runs that never committed; the latest manifest.

    Call it holding the table's lease: it deletes every staging folder, a live run's included.
    """
    latest = latest_manifest(store, table)
    folders = {info.base_name: info.path for info in store.list_dir(_staging_root(store, table))}
    if latest is not None:
        staged = _files(store, folders.get(latest.run_id))
        if staged or latest.mode == "full":  # a full batch may have died while retiring, after its last move
            publish(store, latest, _replaced(store, latest), staged=staged)
    for run_id, folder in folders.items():
        if latest is None or run_id != latest.run_id:
            _publish_if_committed(store, table, run_id, _files(store, folder))
        log.info("table %r: removing staging of an uncommitted or finished run: %s", table, store.uri(folder))
        store.delete_dir(folder)
    return latest


def recover_for_reading(store: LakeStore, table: str, ttl: dt.timedelta) -> Recovery:
    """Before a read-only command: `recover` under the lease if something is pending and no live run holds it.

    With "busy" nothing was moved: read through `read_committed` or `locate`, which find each file
    where the live run's publish has left it.
    """
    if not _pending(store, table, latest_manifest(store, table)):
        return "clean"
    try:
        lease = acquire_lease(store, table, uuid.uuid4().hex, ttl)
    except LockError as exc:
        log.info("table %r: not finishing the last publish now, a live run holds the lease (%s)", table, exc)
        return "busy"
    with lease:
        recover(store, table)
    return "recovered"


def locate(store: LakeStore, table: str, files: Sequence[DataFile]) -> list[str | None]:
    """Where each committed file is now: its final path, else its staging path (not published yet),
    else under `_superseded/` (retired by a later full batch); None where it is in none of them."""
    final = [paths.in_table(store.root, table, f.path) for f in files]
    found = store.existing(final) if final else set()
    where: list[str | None] = []
    for f, path in zip(files, final):
        if path in found:
            where.append(path)
            continue
        candidates = (paths.in_table(store.root, table, f.staging_path), superseded_path(store, table, f.path))
        where.append(next((p for p in candidates if store.exists(p)), None))
    return where


def read_committed(store: LakeStore, table: str, files: Sequence[DataFile], columns: Sequence[str] | None = None,
                   schema: pa.Schema | None = None) -> pa.Table:
    """Read committed files, wherever publishing has left each one.

    Final paths are tried first (no existence checks in the usual case); if one cannot be read, a
    publish is unfinished or moving files right now, so every file is looked up again and read.
    """
    final = [paths.in_table(store.root, table, f.path) for f in files]
    sizes = [f.bytes for f in files]  # a file keeps its size wherever it moves
    try:
        return read_files(store, final, columns, schema, sizes)
    except LakeError:
        where = locate(store, table, files)
        # A file found nowhere is read at its final path, so the error names where it belongs.
        return read_files(store, [w or p for w, p in zip(where, final)], columns, schema, sizes)


def _staging_root(store: LakeStore, table: str) -> str:
    return paths.join(store.root, table, "_staging")


def _files(store: LakeStore, folder: str | None) -> set[str]:
    return {info.path for info in store.list_files(folder)} if folder else set()


def _replaced(store: LakeStore, manifest: Manifest) -> list[Manifest]:
    """The batches a full batch replaces (whose files it retires); none for an incremental one."""
    return active_manifests(store, manifest.table, as_of=manifest.seq - 1) if manifest.mode == "full" else []


def _pending(store: LakeStore, table: str, latest: Manifest | None) -> bool:
    """Whether `recover` has anything to do: a staging folder, or files a full batch replaced still visible."""
    if store.list_dir(_staging_root(store, table)):
        return True
    if latest is None or latest.mode != "full":
        return False
    keep = {f.path for f in latest.files}
    old = [paths.in_table(store.root, table, f.path) for m in _replaced(store, latest) for f in m.files
           if f.path not in keep]
    return bool(old) and bool(store.existing(old))


def _publish_if_committed(store: LakeStore, table: str, run_id: str, staged: set[str]) -> None:
    """Never delete the parts of a committed batch: publish them if their run's manifest exists.

    Only the latest batch can be unfinished while every commit recovers first; should a later batch
    ever be committed over an unfinished one, its parts are published here rather than lost.
    """
    if not staged:
        return
    name = min(staged).rsplit("/", 1)[-1]  # part-<seq>-<run>-<n>.parquet
    try:
        seq = int(name.split("-")[1])
        manifest = load_manifest(store, table, seq)
    except (IndexError, ValueError, FileNotFoundError):
        return
    if manifest.run_id != run_id:
        return
    log.warning("table %r: batch %d was committed but never published; publishing it now", table, seq)
    publish(store, manifest, _replaced(store, manifest), staged=staged)
