"""Pure builders of every lake path; no I/O.

Layout of table `<name>` under the lake root:

    <name>/<folder>/part-<seq>-<run>-<n>.parquet          committed data (what Hive-style readers see)
    <name>/_staging/<run>/<folder>/<file>                 parts of a batch not yet committed
    <name>/_manifests/<seq:020d>.json                     one per committed batch, created exclusively
    <name>/_state/lease.json                              the table's lease
    <name>/_state/last_sync.json                          when the last successful sync finished
    <name>/_state/partition_files.json                    files per partition of the live batches (a cache)
    <name>/_superseded/<folder>/<file>                    files replaced by a later full batch

`<folder>` is a partition's Hive-style folder, `dt=2026-11-30` or `city_id=7/dt=2026-11-30` (see partitioning).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

__all__ = [
    "PARTITION_KEY",
    "NULL_PARTITION",
    "data_file",
    "manifest_path",
    "manifests_dir",
    "parse_manifest_seq",
    "partition_value",
    "staging_dir",
    "staging_file",
    "lease_path",
]

PARTITION_KEY = "dt"
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
_SEQ_WIDTH = 20


def join(*parts: str) -> str:
    """Join with '/', keeping the leading '/' of an absolute local root."""
    kept = [p for p in parts if p]
    if not kept:
        return ""
    head = "/" if kept[0].startswith("/") else ""
    return head + "/".join(p.strip("/") for p in kept if p.strip("/"))


def partition_value(value: Any, granularity: str = "day") -> str:
    """The `dt=` folder value of a date/timestamp: YYYY-MM-DD, YYYY-MM or YYYY (UTC for zone-aware)."""
    if value is None:
        return NULL_PARTITION
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc)
        value = value.date()
    if not isinstance(value, dt.date):
        raise TypeError(f"cannot partition by a {type(value).__name__} value")
    if granularity == "year":
        return f"{value.year:04d}"
    if granularity == "month":
        return f"{value.year:04d}-{value.month:02d}"
    return value.isoformat()


def data_file(folder: str, seq: int, run_id: str, n: int) -> str:
    """A committed file's path relative to the table folder (manifests store these, so a lake can move)."""
    return join(folder, _file_name(seq, run_id, n))


def staging_dir(root: str, table: str, run_id: str) -> str:
    return join(root, table, "_staging", run_id)


def staging_file(run_id: str, folder: str, seq: int, n: int) -> str:
    """A staged file's path relative to the table folder."""
    return join("_staging", run_id, folder, _file_name(seq, run_id, n))


def in_table(root: str, table: str, relative: str) -> str:
    """The full path of a path relative to the table folder."""
    return join(root, table, relative)


def _file_name(seq: int, run_id: str, n: int) -> str:
    return f"part-{seq:08d}-{run_id[:8]}-{n:05d}.parquet"


def manifests_dir(root: str, table: str) -> str:
    return join(root, table, "_manifests")


def manifest_path(root: str, table: str, seq: int) -> str:
    return join(manifests_dir(root, table), f"{seq:0{_SEQ_WIDTH}d}.json")


def parse_manifest_seq(file_name: str) -> int | None:
    stem, _, ext = file_name.rpartition(".")
    if ext != "json" or len(stem) != _SEQ_WIDTH or not stem.isdigit():
        return None
    return int(stem)


def lease_path(root: str, table: str) -> str:
    return join(root, table, "_state", "lease.json")


def last_sync_path(root: str, table: str) -> str:
    """A small record of the last successful sync (committed or not), for freshness."""
    return join(root, table, "_state", "last_sync.json")


def last_reconcile_path(root: str, table: str) -> str:
    return join(root, table, "_state", "last_reconcile.json")


def partition_files_path(root: str, table: str) -> str:
    """Files per partition of the live batches, as of a batch: a cache the compaction policy reads."""
    return join(root, table, "_state", "partition_files.json")
