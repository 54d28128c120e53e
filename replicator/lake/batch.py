"""The one commit unit: every batch (an extract, reconcile's deletion markers, a compaction) commits here.

Under the table's lease, after recovery (the caller holds both): parts are written to staging, the
batch is committed by creating its manifest exclusively, its parts are moved into the Hive layout
(a full batch also retires the files it replaces), and staging is removed. Until `commit` creates
the manifest nothing is visible and leaving the block aborts; once it has, a failure afterwards
leaves a committed batch whose publish the next command's recovery finishes. Whatever must happen
after a batch is committed belongs in `commit`, after `commit_manifest`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from ..config import LakeConfig
from ..types import schema_fingerprint
from . import paths
from .lease import Lease
from .manifest import Manifest, commit_manifest, encode_schema
from .partitioning import Layout
from .publish import publish
from .store import LakeStore
from .writer import BatchWriter

__all__ = ["Layout", "PendingBatch"]


class PendingBatch:
    """The next batch of one table, written to staging until `commit`; use it as a context manager."""

    def __init__(self, store: LakeStore, table: str, *, lease: Lease, previous: Manifest | None, schema: pa.Schema,
                 config: LakeConfig, layout: Layout, watermark: str | None, fallback: str | None = None) -> None:
        self.store = store
        self.table = table
        self.lease = lease
        self.schema = schema
        self.seq = (previous.seq if previous else 0) + 1
        self._writer = BatchWriter(store=store, table=table, seq=self.seq, run_id=lease.run_id, schema=schema,
                                   config=config, layout=layout, watermark=watermark, fallback=fallback)
        self._done = False

    def write(self, data: pa.Table | pa.RecordBatch) -> None:
        """Stage rows (already in the batch's schema); long writes keep the lease alive."""
        self._writer.write(data)
        self.lease.renew()

    def abort(self) -> None:
        """Drop everything staged; nothing was committed."""
        if not self._done:
            self._done = True
            self._writer.abort()

    def commit(self, *, mode: str, created_at: dt.datetime, rows: int, watermark: Mapping[str, Any],
               replaced: Iterable[Manifest] = (), content_hash: str | None = None,
               stats: Mapping[str, Any] | None = None) -> Manifest:
        """Close the parts, create the manifest (the commit point), publish, clean staging.

        `watermark` holds the manifest's watermark fields (see `manifest.watermark_state`); a `full`
        batch retires the files of `replaced`.
        """
        try:
            files = self._writer.close()
        except BaseException:
            self.abort()
            raise
        self._done = True
        manifest = Manifest(
            table=self.table, seq=self.seq, run_id=self.lease.run_id, mode=mode, created_at=created_at.isoformat(),
            rows=rows, files=tuple(files), schema_b64=encode_schema(self.schema),
            schema_fingerprint=schema_fingerprint(self.schema), content_hash=content_hash, stats=dict(stats or {}),
            **watermark,
        )
        # On failure the outcome may be unknown (the create reached the store, the answer did not): staging
        # stays, and the next command's recovery publishes it if the manifest exists, else removes it.
        commit_manifest(self.store, manifest)
        publish(self.store, manifest, replaced)
        self.store.delete_dir(paths.staging_dir(self.store.root, self.table, self.lease.run_id))
        return manifest

    def __enter__(self) -> PendingBatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()
