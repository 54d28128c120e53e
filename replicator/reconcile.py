"""Compare a table's keys between source and lake in hashed key buckets; detect hard deletes.

Only key and watermark columns are read (through the same fast readers as a sync), hashed with DuckDB
on both sides, and summed per bucket: a bucket whose row count or hash sum differs is reported with
sample keys. Deletes found this way can be committed as `_deleted` markers, behind a guard that refuses
a suspiciously large share.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from .config import TableConfig
from .current_state import CurrentStateRule
from .duckdb_sql import ident, to_arrow
from .errors import DeleteGuardError
from .lake import Lease, Manifest
from .lake.batch import Layout
from .lake.manifest import watermark_state
from .lake.table import TableLake
from .sources import ReadRequest, TableSchema

__all__ = ["BucketDiff", "ReconcileReport", "DeleteGuardError", "commit_deletes", "reconcile_table"]

_SAMPLE = 5


@dataclass(frozen=True)
class BucketDiff:
    bucket: int
    source_rows: int
    lake_rows: int
    missing_in_lake: list[tuple[Any, ...]] = field(default_factory=list)
    gone_from_source: list[tuple[Any, ...]] = field(default_factory=list)
    changed: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass(frozen=True)
class ReconcileReport:
    table: str
    source_rows: int
    lake_rows: int
    warehouse_rows: int | None
    buckets: int
    differing: list[BucketDiff]
    seconds: float
    deleted_keys: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return not self.differing and (self.warehouse_rows is None or self.warehouse_rows == self.lake_rows)


class _Buckets:
    """Per bucket: row count and a sum of (key, watermark) hashes, over record batches."""

    def __init__(self, n: int, key: Sequence[str], watermark: str | None) -> None:
        self.n, self.key, self.watermark = n, list(key), watermark
        self.counts = np.zeros(n, dtype=np.int64)
        self.sums = np.zeros(n, dtype=np.uint64)
        self.con = duckdb.connect()
        keys = ", ".join(ident(k) for k in key)
        with_wm = f"{keys}, {ident(watermark)}" if watermark else keys
        self.sql = (f"SELECT hash({keys}) % {n} AS b, count(*) AS c, sum(hash({with_wm}) % 4294967296)::UBIGINT AS s "
                    "FROM batch GROUP BY b")

    def add(self, batch: pa.Table) -> None:
        if batch.num_rows == 0:
            return
        self.con.register("batch", batch)
        result = to_arrow(self.con, self.sql)
        b = result.column("b").to_numpy().astype(np.int64)
        np.add.at(self.counts, b, result.column("c").to_numpy())
        np.add.at(self.sums, b, result.column("s").to_numpy().astype(np.uint64))
        self.con.unregister("batch")

    def differing(self, other: _Buckets) -> list[int]:
        return [i for i in range(self.n) if self.counts[i] != other.counts[i] or self.sums[i] != other.sums[i]]


def _keys_schema(schema: TableSchema, table: TableConfig) -> TableSchema:
    wanted = [*table.primary_key, *([table.watermark] if table.watermark and table.watermark not in table.primary_key else [])]
    return TableSchema(tuple(schema.column(c) for c in wanted), schema.source_columns)


def _source_keys(rep: Any, table: TableConfig, lake_types: pa.Schema) -> Iterator[pa.Table]:
    source = rep.source(table.source)
    schema = _keys_schema(source.describe(table), table)
    for batch in source.read(ReadRequest(table, schema, chunked=True)):
        data = pa.Table.from_batches([batch])
        # Hashes depend on types: read the source's values as the lake's (possibly widened) types.
        yield pa.table({n: data.column(n).cast(lake_types.field(n).type) for n in data.column_names})


def _lake_keys(rep: Any, name: str, table: TableConfig) -> tuple[pa.Table, Manifest | None]:
    lake = TableLake(rep.lake, name)
    manifests = lake.active()
    latest = manifests[-1] if manifests else None
    rule = CurrentStateRule.of(table)
    data = lake.read([f for m in manifests for f in m.files], rule.columns, latest.schema if latest else None)
    current = rule.current(data)
    keep = list(dict.fromkeys([*table.primary_key, *([table.watermark] if table.watermark else [])]))
    return (current.select(keep) if current.num_rows else current), latest


def _bucket_rows(tables: Iterable[pa.Table], key: Sequence[str], n: int, wanted: set[int]) -> pa.Table:
    con = duckdb.connect()
    parts = []
    keys = ", ".join(ident(k) for k in key)
    for t in tables:
        if t.num_rows:
            con.register("t", t)
            parts.append(to_arrow(con, f"SELECT * FROM t WHERE hash({keys}) % {n} IN ({', '.join(map(str, wanted)) or 'NULL'})"))
            con.unregister("t")
    con.close()
    return pa.concat_tables(parts) if parts else pa.table({})


def _as_map(data: pa.Table, key: Sequence[str], watermark: str | None) -> dict[tuple[Any, ...], Any]:
    if data.num_rows == 0:
        return {}
    keys = list(zip(*[data.column(k).to_pylist() for k in key]))
    values = data.column(watermark).to_pylist() if watermark else [None] * len(keys)
    return dict(zip(keys, values))


def reconcile_table(rep: Any, name: str, buckets: int = 64) -> ReconcileReport:
    """Compare source and lake (and the warehouse's row count) for one table."""
    started = time.perf_counter()
    table = rep.project.table(name)
    lake, latest = _lake_keys(rep, name, table)
    lake_types = latest.schema if latest is not None else rep.source(table.source).describe(table).arrow
    n = max(buckets, min(4096, lake.num_rows // 100_000 + 1))
    mine, theirs = _Buckets(n, table.primary_key, table.watermark), _Buckets(n, table.primary_key, table.watermark)
    mine.add(lake)
    source_rows = 0
    for batch in _source_keys(rep, table, lake_types):
        source_rows += batch.num_rows
        theirs.add(batch)
    wanted = set(theirs.differing(mine))
    diffs = []
    if wanted:
        src = _as_map(_bucket_rows(_source_keys(rep, table, lake_types), table.primary_key, n, wanted), table.primary_key, table.watermark)
        lk = _as_map(_bucket_rows([lake], table.primary_key, n, wanted), table.primary_key, table.watermark)
        for bucket in sorted(wanted):
            diffs.append(BucketDiff(bucket, int(theirs.counts[bucket]), int(mine.counts[bucket])))
        missing = sorted(k for k in src if k not in lk)
        gone = sorted(k for k in lk if k not in src)
        changed = sorted(k for k in src if k in lk and src[k] != lk[k])
        diffs = [BucketDiff(-1, sum(d.source_rows for d in diffs), sum(d.lake_rows for d in diffs),
                            missing[:_SAMPLE], gone[:_SAMPLE], changed[:_SAMPLE])] + diffs
        all_gone = gone
    else:
        all_gone = []
    return ReconcileReport(name, source_rows, lake.num_rows, rep.warehouse.row_count(name), n, diffs,
                           time.perf_counter() - started, all_gone)


def _partition_values(rep: Any, name: str, table: TableConfig, keys: pa.Table) -> dict[str, pa.ChunkedArray]:
    """The partition columns of each key's latest lake row, so a marker lands in the folder of the row it deletes.

    A reader pruned to one partition (`city_id=7`) must see the deletions of that partition's rows.
    """
    if not table.partition_by:
        return {}
    lake = TableLake(rep.lake, name)
    manifests = lake.active()
    rule = CurrentStateRule.of(table)
    wanted = list(dict.fromkeys([*rule.columns, *table.partition_by]))
    latest = rule.current(lake.read([f for m in manifests for f in m.files], wanted, manifests[-1].schema))
    order = "__replicator_marker"
    numbered = keys.append_column(order, pa.array(range(keys.num_rows), pa.int64()))
    placed = numbered.join(latest.select([*table.primary_key, *table.partition_by]), keys=list(table.primary_key),
                           join_type="left outer").sort_by(order)
    return {c: placed.column(c) for c in table.partition_by if c not in table.primary_key}


def commit_deletes(rep: Any, name: str, lease: Lease, keys: Sequence[tuple[Any, ...]], lake_rows: int) -> int | None:
    """Commit `_deleted` markers for keys gone from the source, unless more than delete_guard of the rows.

    The caller holds the table's `lease` and recovered the lake under it (see `Replicator.reconcile`).
    """
    table = rep.project.table(name)
    if not keys:
        return None
    share = len(keys) / max(lake_rows, 1)
    if share > table.delete_guard:
        raise DeleteGuardError(
            f"table {name!r}: {len(keys):,} of {lake_rows:,} rows ({share:.1%}) are missing from the source, more "
            f"than delete_guard {table.delete_guard:.0%}; nothing was deleted. A partial read must never look "
            "like a mass delete: check the source, then raise delete_guard in the YAML if the deletes are real"
        )
    lake = TableLake(rep.lake, name)
    lease.renew()  # the comparison before this may have taken a while
    previous = lake.latest()
    assert previous is not None
    schema = previous.schema
    loaded_at = dt.datetime.now(dt.timezone.utc)
    layout = Layout(partition_by=tuple(table.partition_by), granularity=table.partition_granularity, load_date=loaded_at.date())
    n = len(keys)
    with lake.pending_batch(lease=lease, previous=previous, schema=schema, config=rep.project.config.lake,
                            layout=layout, watermark=None) as batch:
        columns = {k: pa.array([key[i] for key in keys], schema.field(k).type) for i, k in enumerate(table.primary_key)}
        columns.update(_partition_values(rep, name, table, pa.table(columns)))
        columns["_batch_id"] = pa.array(np.full(n, batch.seq, dtype=np.int64))
        columns["_loaded_at"] = pa.array([loaded_at] * n, pa.timestamp("us", tz="UTC"))
        columns["_deleted"] = pa.array(np.ones(n, dtype=bool))
        batch.write(pa.Table.from_arrays([columns.get(f.name, pa.nulls(n, f.type)) for f in schema], schema=schema))
        manifest = batch.commit(mode="incremental", created_at=loaded_at, rows=n, watermark=watermark_state(previous),
                                stats={"deletion_markers": n})
    return manifest.seq


