"""One table's lake as one object: its manifests, lease, recovery, commits, state records and reads.

Commands get a table's lake from `TableLake(store, name)` (the runner's `Replicator.table_lake(name)`);
nothing outside `replicator.lake` lists manifests or builds lake paths.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ..config import LakeConfig
from ..current_state import CurrentStateRule
from . import paths
from .batch import PendingBatch
from .lease import Lease, acquire_lease, holder_state, read_lease, remove_lease
from .manifest import DataFile, Manifest, latest_manifest, list_manifest_seqs, load_manifest
from .partitioning import Layout
from .publish import superseded_path
from .reader import active_manifests, current_state, latest_in_window, manifests_reaching, sized_fragments
from .recovery import Recovery, locate, read_committed, recover, recover_for_reading
from .store import LakeStore

__all__ = ["ReconcileRecord", "SyncRecord", "TableLake"]


@dataclass(frozen=True, kw_only=True)
class SyncRecord:
    """The last successful sync of a table (committed or not), for freshness."""

    run_id: str
    finished_at: str
    batch_id: int | None
    rows_read: int


@dataclass(frozen=True, kw_only=True)
class ReconcileRecord:
    """The last reconciliation of a table: when, whether source and lake matched, markers committed."""

    finished_at: str
    matches: bool
    deleted: int


@dataclass(frozen=True)
class TableLake:
    store: LakeStore
    name: str

    # Manifests: the commit log.

    def seqs(self) -> list[int]:
        return list_manifest_seqs(self.store, self.name)

    def manifest(self, seq: int) -> Manifest:
        return load_manifest(self.store, self.name, seq)

    def latest(self) -> Manifest | None:
        return latest_manifest(self.store, self.name)

    def active(self, as_of: int | None = None) -> list[Manifest]:
        """The manifests that make up the table (from its latest full batch on), up to batch `as_of`."""
        return active_manifests(self.store, self.name, as_of)

    def reaching(self, lower: Any) -> list[Manifest]:
        """The newest manifests that may hold rows with watermark >= `lower`, oldest first."""
        return manifests_reaching(self.store, self.name, lower)

    def after(self, seq: int) -> list[Manifest]:
        """Every manifest committed after batch `seq`, in order."""
        return [self.manifest(s) for s in self.seqs() if s > seq]

    def to_apply_after(self, seq: int) -> list[Manifest]:
        """The manifests after batch `seq` a follower (warehouse, Iceberg) applies: from the latest full one on,
        since a full batch replaces everything before it."""
        pending = self.after(seq)
        fulls = [i for i, m in enumerate(pending) if m.mode == "full"]
        return pending[fulls[-1]:] if fulls else pending

    def batch_at(self, moment: dt.datetime) -> int:
        """The last batch committed at or before `moment` (0: none)."""
        moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
        found = 0
        for seq in self.seqs():
            if dt.datetime.fromisoformat(self.manifest(seq).created_at) <= moment:
                found = seq
        return found

    # The lease and recovery.

    def lease(self, run_id: str, ttl: dt.timedelta) -> Lease:
        return acquire_lease(self.store, self.name, run_id, ttl)

    def recover(self) -> Manifest | None:
        """Finish a dead run's publish; call it holding the lease. Returns the latest manifest."""
        return recover(self.store, self.name)

    def recover_for_reading(self, ttl: dt.timedelta) -> Recovery:
        return recover_for_reading(self.store, self.name, ttl)

    def lease_holder(self) -> dict[str, Any] | None:
        return read_lease(self.store, self.name)

    @staticmethod
    def holder_state(holder: dict[str, Any]) -> str:
        return holder_state(holder)

    def remove_lease(self) -> None:
        remove_lease(self.store, self.name)

    # The commit unit.

    def pending_batch(self, *, lease: Lease, previous: Manifest | None, schema: pa.Schema, config: LakeConfig,
                      layout: Layout, watermark: str | None, fallback: str | None = None) -> PendingBatch:
        return PendingBatch(self.store, self.name, lease=lease, previous=previous, schema=schema, config=config,
                            layout=layout, watermark=watermark, fallback=fallback)

    # Reads.

    def read(self, files: Sequence[DataFile], columns: Sequence[str] | None = None,
             schema: pa.Schema | None = None) -> pa.Table:
        """Committed files, each read where it is now (final, staging or superseded)."""
        return read_committed(self.store, self.name, files, columns, schema)

    def latest_in_window(self, manifests: Sequence[Manifest], rule: CurrentStateRule, lower: Any,
                         include_nulls: bool = False) -> pa.Table:
        """Per key, the latest committed version among rows whose effective watermark is >= `lower`."""
        assert rule.watermark is not None
        return latest_in_window(self.store, manifests, rule.key, rule.watermark, lower, include_nulls, rule.fallback)

    def current_state(self, rule: CurrentStateRule, as_of: int | None = None) -> pa.Table:
        return current_state(self.store, self.name, rule.key, rule.watermark, as_of, fallback=rule.fallback)

    def batch_dataset(self, manifest: Manifest) -> ds.Dataset:
        """A lazily read dataset of exactly the manifest's files, wherever publishing left each one."""
        # Not yet published (a live run holds the lease, so nothing was recovered) or since superseded by a
        # full batch: read it there.
        where = locate(self.store, self.name, manifest.files)
        files = [w or paths.in_table(self.store.root, self.name, f.path) for w, f in zip(where, manifest.files)]
        fragments = sized_fragments(self.store, files, [f.bytes for f in manifest.files])
        return ds.FileSystemDataset(fragments, schema=manifest.schema, format=ds.ParquetFileFormat(),
                                    filesystem=self.store.fs)

    # History.

    def expired_history(self, retention: dt.timedelta, now: dt.datetime) -> list[str]:
        """Superseded files (that still exist) no time-travel state inside the retention needs."""
        manifests = self.after(0)
        inside = [m for m in manifests if dt.datetime.fromisoformat(m.created_at) >= now - retention]
        first_kept = inside[0].seq if inside else manifests[-1].seq
        # The state after `first_kept` starts at the latest full batch at or before it; older files are history.
        base = max((m.seq for m in manifests if m.mode == "full" and m.seq <= first_kept), default=0)
        old = [superseded_path(self.store, self.name, f.path) for m in manifests if m.seq < base for f in m.files]
        return sorted(self.store.existing(old)) if old else []

    def delete(self, path: str) -> None:
        self.store.delete(path)

    def current_files(self) -> list[str]:
        """The data files of the Iceberg current-state table under `_current/data/` (store paths)."""
        return sorted(i.path for i in self.store.list_files(paths.join(self.store.root, self.name, "_current", "data")))

    def file_uri(self, file: DataFile) -> str:
        """The URL of a committed file at its final place in the Hive layout."""
        return self.store.uri(paths.in_table(self.store.root, self.name, file.path))

    def uri(self) -> str:
        return self.store.uri(paths.join(self.store.root, self.name))

    def footer(self, file: DataFile) -> pq.FileMetaData:
        """The Parquet footer of a committed file: the one this process kept when it wrote the file, else
        read from it."""
        path = paths.in_table(self.store.root, self.name, file.path)
        kept = self.store.footers.take(path) if self.store.footers is not None else None
        return kept if kept is not None else self.store.read_footer(path)

    def live_files(self) -> tuple[dict[str, int], int]:
        """Files per partition of the live batches (from the latest full batch on), and their row versions.

        Kept as a cache record as of a batch (`_state/partition_files.json`), so a sync reads only the
        manifests committed since (normally one), not the whole history: a LIST of the manifests, as every
        sync does, and their GETs. A missing, unreadable or outdated record is rebuilt from the manifests.
        """
        seqs = self.seqs()
        if not seqs:
            return {}, 0
        path = paths.partition_files_path(self.store.root, self.name)
        record = self._read_record(path) or {}
        known, cached, rows = record.get("seq"), record.get("counts"), record.get("rows")
        if isinstance(known, int) and known in seqs and isinstance(cached, dict) and isinstance(rows, int):
            counts: dict[str, int] = dict(cached)
            newer = [self.manifest(s) for s in seqs if s > known]
        else:
            counts, rows, newer = {}, 0, self.active()
        for manifest in newer:
            if manifest.mode == "full":
                counts, rows = {}, 0
            rows += manifest.rows
            for file in manifest.files:
                counts[file.partition] = counts.get(file.partition, 0) + 1
        if newer:
            self.store.write_bytes(path, json.dumps({"seq": seqs[-1], "counts": counts, "rows": rows}).encode())
        return counts, rows

    # State records.

    def last_sync(self) -> SyncRecord | None:
        data = self._read_record(paths.last_sync_path(self.store.root, self.name))
        return None if data is None else SyncRecord(**_known(SyncRecord, data))

    def record_sync(self, record: SyncRecord) -> None:
        self.store.write_bytes(paths.last_sync_path(self.store.root, self.name), json.dumps(asdict(record)).encode())

    def last_reconcile(self) -> ReconcileRecord | None:
        data = self._read_record(paths.last_reconcile_path(self.store.root, self.name))
        return None if data is None else ReconcileRecord(**_known(ReconcileRecord, data))

    def record_reconcile(self, record: ReconcileRecord) -> None:
        self.store.write_bytes(paths.last_reconcile_path(self.store.root, self.name),
                               json.dumps(asdict(record)).encode())

    def _read_record(self, path: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.store.read_bytes(path))
        except FileNotFoundError:
            return None
        return data


def _known(record: type, data: dict[str, Any]) -> dict[str, Any]:
    """The record's own fields of a stored record (a record written by another version may hold more)."""
    return {f.name: data.get(f.name) for f in fields(record)}
