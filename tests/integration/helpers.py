"""Assertions shared by integration tests: lake and warehouse current state equal the source."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import sqlalchemy as sa

from replicator import Replicator
from replicator.duckdb_sql import to_arrow

from .. import oracle


def lake_dataset(rep: Replicator, name: str) -> pa.Table:
    """Read the table folder as any Hive-aware engine would: everything visible under <lake>/<name>/."""
    store = rep.lake
    return ds.dataset(f"{store.root}/{name}", filesystem=store.fs, format="parquet", partitioning="hive").to_table()


def lake_current(rep: Replicator, name: str) -> pa.Table:
    """The documented rule applied to what a reader sees, by the independent oracle (tests/oracle.py):
    per key, the row of the highest _batch_id, then the highest watermark, unless it is deleted."""
    table = rep.project.table(name)
    return oracle.lake_current(rep.project.config.lake.url, name, table.primary_key, table.watermark)


def rows_by_key(table: pa.Table, key: Sequence[str], columns: Sequence[str]) -> dict[tuple, tuple]:
    data = table.select(list(columns)).to_pylist()
    return {tuple(r[k] for k in key): tuple(r[c] for c in columns) for r in data}


def source_rows(url: str, sql: str, key: Sequence[str], columns: Sequence[str]) -> dict[tuple, tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()
    return {tuple(r[k] for k in key): tuple(r[c] for c in columns) for r in rows}


def duckdb_rows(rep: Replicator, name: str, key: Sequence[str], columns: Sequence[str]) -> dict[tuple, tuple]:
    path = rep.project.config.warehouse.url.removeprefix("duckdb:///")
    con = duckdb.connect(path, read_only=True)
    try:
        cols = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
        data = to_arrow(con, f'SELECT {cols} FROM raw."{name}"')
    finally:
        con.close()
    return rows_by_key(data, key, columns)


def assert_no_duplicate_keys(table: pa.Table, key: Sequence[str]) -> None:
    counts = table.group_by(list(key)).aggregate([([], "count_all")])
    assert pc.max(counts.column("count_all")).as_py() in (None, 1)


