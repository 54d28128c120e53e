"""Assertions shared by integration tests: lake and warehouse current state equal the source."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import sqlalchemy as sa

from replicator import Replicator
from replicator.duckdb_sql import to_arrow

from .. import oracle
from ..conftest import query


def lake_dataset(rep: Replicator, name: str) -> pa.Table:
    """Read the table folder as any Hive-aware engine would: everything visible under <lake>/<name>/."""
    store = rep.lake
    return ds.dataset(f"{store.root}/{name}", filesystem=store.fs, format="parquet", partitioning="hive").to_table()


def lake_current(rep: Replicator, name: str) -> pa.Table:
    """The documented rule applied to what a reader sees, by the independent oracle (tests/oracle.py):
    per key, the row of the highest _batch_id, then the highest watermark, unless it is deleted."""
    table = rep.project.table(name)
    return oracle.lake_current(rep.project.config.lake.url, name, table.primary_key, table.watermark)


def _by_key(rows: Iterable[Sequence[Any]], names: Sequence[str], key: Sequence[str],
            columns: Sequence[str]) -> dict[tuple, tuple]:
    """{key values: column values} of rows given as tuples in the order of `names` (no dict per row:
    the oracles of the large-table tests compare a million rows)."""
    at = {n: i for i, n in enumerate(names)}
    key_at, column_at = [at[k] for k in key], [at[c] for c in columns]
    return {tuple(r[i] for i in key_at): tuple(r[i] for i in column_at) for r in rows}


def rows_by_key(table: pa.Table, key: Sequence[str], columns: Sequence[str]) -> dict[tuple, tuple]:
    names = list(dict.fromkeys([*key, *columns]))
    return _by_key(zip(*(table.column(n).to_pylist() for n in names)), names, key, columns)


def source_rows(url: str, sql: str, key: Sequence[str], columns: Sequence[str]) -> dict[tuple, tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            result = conn.execute(sa.text(sql))
            return _by_key(result, list(result.keys()), key, columns)
    finally:
        engine.dispose()


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


def _digest_sql(relation: str, key: str, text_column: str) -> str:
    # Rendered alike by PostgreSQL and DuckDB for an integer key and a text column: one md5 over every row.
    return (f"SELECT count(*), md5(string_agg(CAST({key} AS VARCHAR) || ':' || coalesce({text_column}, '<null>'), "
            f"',' ORDER BY {key})) FROM {relation}")


def content_digests(rep: Replicator, name: str, source_url: str, source_table: str, key: str,
                    text_column: str) -> dict[str, tuple]:
    """(rows, md5 of every `key:text` in key order) of the source, the lake's current state and DuckDB, each
    computed by its own engine: the source server, DuckDB over the independent oracle's Arrow table, and
    the warehouse file. For tables of a million rows, where comparing Python rows costs seconds."""
    source = query(source_url, _digest_sql(source_table, key, text_column))[0]
    lake = lake_current(rep, name).select([key, text_column])
    with duckdb.connect() as con:
        con.register("lake", lake)
        in_lake = con.execute(_digest_sql("lake", key, text_column)).fetchone()
    path = rep.project.config.warehouse.url.removeprefix("duckdb:///")
    with duckdb.connect(path, read_only=True) as con:
        warehouse = con.execute(_digest_sql(f'raw."{name}"', key, text_column)).fetchone()
    return {"source": source, "lake": tuple(in_lake or ()), "warehouse": tuple(warehouse or ())}
