"""Batch manifests: the one atomic step that commits a batch, and the table history they form."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from ..errors import LakeError
from . import paths
from .store import LakeStore

__all__ = ["DataFile", "Manifest", "commit_manifest", "latest_manifest", "list_manifest_seqs", "load_manifest"]

FORMAT_VERSION = 1


@dataclass(frozen=True)
class DataFile:
    path: str  # final, committed location, relative to the table folder
    staging_path: str  # where it was written before the commit, relative to the table folder
    partition: str
    rows: int
    bytes: int
    watermark_min: Any = None  # encoded watermark values (see watermark.encode)
    watermark_max: Any = None


@dataclass(frozen=True)
class Manifest:
    """One committed batch. `seq` is the batch id; `mode` full means it replaces all earlier batches."""

    table: str
    seq: int
    run_id: str
    mode: str  # "incremental" | "full"
    created_at: str
    rows: int
    files: tuple[DataFile, ...]
    schema_b64: str
    schema_fingerprint: str
    watermark_column: str | None = None
    watermark_before: Any = None
    watermark: Any = None  # the stored watermark after this batch
    max_seen: Any = None  # the highest watermark value ever committed
    watermark_key: list[Any] | None = None  # primary key of the last row at `watermark`, when it is settled
    horizon: Any = None
    read_lower: Any = None
    settle_probes: list[Any] = field(default_factory=list)  # integer watermarks: probes not yet settled
    content_hash: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def compaction_of(self) -> int | None:
        """For a compaction's snapshot batch, the batch whose current state it holds unchanged; else None.

        A follower standing at that batch already has this one's state: it records the batch, moves nothing.
        """
        compacted = self.stats.get("compaction_of") if self.mode == "full" else None
        return max(compacted) if compacted else None

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def schema(self) -> pa.Schema:
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(self.schema_b64)))

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True, default=str).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        raw = json.loads(data)
        raw["files"] = tuple(DataFile(**f) for f in raw["files"])
        return cls(**raw)


def watermark_state(previous: Manifest) -> dict[str, Any]:
    """The watermark fields of `previous`, for a batch that reads nothing from the source (markers, compaction)."""
    return {"watermark_column": previous.watermark_column, "watermark_before": previous.watermark,
            "watermark": previous.watermark, "max_seen": previous.max_seen, "watermark_key": previous.watermark_key,
            "horizon": previous.horizon, "read_lower": previous.read_lower, "settle_probes": previous.settle_probes}


def encode_schema(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def list_manifest_seqs(store: LakeStore, table: str) -> list[int]:
    infos = store.list_dir(paths.manifests_dir(store.root, table))
    return sorted(s for s in (paths.parse_manifest_seq(i.base_name) for i in infos) if s is not None)


def load_manifest(store: LakeStore, table: str, seq: int) -> Manifest:
    path = paths.manifest_path(store.root, table, seq)
    try:
        return Manifest.from_json(store.read_bytes(path))
    except (ValueError, TypeError, KeyError) as exc:
        raise LakeError(f"lake: manifest {store.uri(path)} is unreadable ({exc}); it was not written by replicator") from exc


def latest_manifest(store: LakeStore, table: str) -> Manifest | None:
    seqs = list_manifest_seqs(store, table)
    return load_manifest(store, table, seqs[-1]) if seqs else None


def commit_manifest(store: LakeStore, manifest: Manifest) -> None:
    """Create the manifest exclusively; the batch is committed exactly when this returns.

    If the create reports the file exists, read it back: our own earlier attempt (an unknown outcome
    retried) counts as success, anyone else's means a concurrent writer and nothing of ours is committed.
    """
    path = paths.manifest_path(store.root, manifest.table, manifest.seq)
    try:
        if store.create_exclusive(path, manifest.to_json()):
            return
    except LakeError as failure:
        # An unknown outcome (every retry lost its connection): the manifest may exist all the same.
        try:
            existing = load_manifest(store, manifest.table, manifest.seq)
        except (FileNotFoundError, LakeError):
            raise failure from None
        if existing.run_id == manifest.run_id:
            return
        raise
    existing = load_manifest(store, manifest.table, manifest.seq)
    if existing.run_id != manifest.run_id:
        raise LakeError(
            f"lake: batch {manifest.seq} of table {manifest.table!r} was committed by another run "
            f"({existing.run_id}) while this one ran; nothing of this run was committed, run the sync again"
        )
