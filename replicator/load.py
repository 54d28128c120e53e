"""Load: committed lake batches -> the warehouse, in order, each in one transaction with its ledger row."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from .config import TableConfig
from .lake import LakeStore
from .lake.table import TableLake
from .warehouse import Loaded, LoadSpec, WarehouseLoader

__all__ = ["LoadResult", "load_table", "rows_in_table"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class LoadResult:
    table: str
    batches: list[int]
    rows_loaded: int
    rows_in_table: int | None
    duration_s: float


def load_table(name: str, table: TableConfig, store: LakeStore, warehouse: WarehouseLoader,
               loaded: Loaded | None = None) -> LoadResult:
    """Load every committed batch the warehouse has not loaded yet (the caller recovered the lake first).

    A full batch replaces everything before it, so loading starts at the latest full batch pending.
    `loaded`: the table's ledger line read earlier by `loaded_tables`; when the lake has nothing after
    that batch the warehouse is not opened. The ledger only grows, so an earlier reading can make a load
    look due when another process has done it (the ledger is read again inside), never the other way.
    """
    started = time.perf_counter()
    lake = TableLake(store, name)
    pending = lake.to_apply_after(loaded.last_seq) if loaded is not None else None
    if loaded is not None and not pending:
        return LoadResult(table=name, batches=[], rows_loaded=0, rows_in_table=rows_in_table(warehouse, name, loaded),
                          duration_s=time.perf_counter() - started)
    with warehouse.session():
        last = warehouse.last_loaded_seq(name)
        if pending is None or loaded is None or last != loaded.last_seq:  # listed once when the reading holds
            pending = lake.to_apply_after(last)
        spec = LoadSpec(name, table.primary_key, table.watermark, fallback=table.null_fallback)
        rows = 0
        for manifest in pending:
            if manifest.compaction_of == last:  # the same rows: an empty merge records the batch in the ledger
                rows += warehouse.load_batch(spec, manifest.seq, False, manifest.schema.empty_table())
                log.info("table %r: batch %d compacts batch %d, which the warehouse holds: recorded", name,
                         manifest.seq, last)
            else:
                rows += warehouse.load_batch(spec, manifest.seq, manifest.mode == "full", lake.batch_dataset(manifest))
                log.info("table %r: loaded batch %d into the warehouse", name, manifest.seq)
            last = manifest.seq
        in_table = warehouse.row_count(name)
    return LoadResult(table=name, batches=[m.seq for m in pending], rows_loaded=rows,
                      rows_in_table=in_table, duration_s=time.perf_counter() - started)


def rows_in_table(warehouse: WarehouseLoader, name: str, loaded: Loaded | None) -> int | None:
    """The rows in the warehouse's table: from the ledger's reading where it counted them, else asked."""
    return loaded.rows if loaded is not None and loaded.rows is not None else warehouse.row_count(name)
