"""Load: committed lake batches -> the warehouse, in order, each in one transaction with its ledger row."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import pyarrow.dataset as ds

from .config import TableConfig
from .lake import LakeStore, Manifest, list_manifest_seqs, load_manifest
from .lake.paths import in_table
from .lake.recovery import locate
from .warehouse import LoadSpec, WarehouseLoader

__all__ = ["LoadResult", "load_table"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class LoadResult:
    table: str
    batches: list[int]
    rows_loaded: int
    rows_in_table: int | None
    duration_s: float


def load_table(name: str, table: TableConfig, store: LakeStore, warehouse: WarehouseLoader) -> LoadResult:
    """Load every committed batch the warehouse has not loaded yet (the caller recovered the lake first).

    A full batch replaces everything before it, so loading starts at the latest full batch pending.
    """
    started = time.perf_counter()
    last = warehouse.last_loaded_seq(name)
    pending = [load_manifest(store, name, s) for s in list_manifest_seqs(store, name) if s > last]
    fulls = [i for i, m in enumerate(pending) if m.mode == "full"]
    if fulls:
        pending = pending[fulls[-1]:]
    spec = LoadSpec(name, table.primary_key, table.watermark, fallback=table.null_fallback)
    rows = 0
    for manifest in pending:
        rows += warehouse.load_batch(spec, manifest.seq, manifest.mode == "full", batch_dataset(store, manifest))
        log.info("table %r: loaded batch %d into the warehouse", name, manifest.seq)
    return LoadResult(table=name, batches=[m.seq for m in pending], rows_loaded=rows,
                      rows_in_table=warehouse.row_count(name), duration_s=time.perf_counter() - started)


def batch_dataset(store: LakeStore, manifest: Manifest) -> ds.Dataset:
    """A lazily read dataset of exactly the manifest's files, wherever publishing left each one."""
    # Not yet published (a live run holds the lease, so nothing was recovered) or since superseded by a
    # full batch: read it there.
    where = locate(store, manifest.table, manifest.files)
    files = [w or in_table(store.root, manifest.table, f.path) for w, f in zip(where, manifest.files)]
    return ds.dataset(files, schema=manifest.schema, format="parquet", filesystem=store.fs)
