"""PostgreSQL's ADBC fast path and the row path produce the same Arrow data, value for value."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from replicator import Replicator
from replicator.sources import ReadRequest
from replicator.sources.postgres import PostgresSource
from replicator.sources.postgres_arrow import arrow_path_available

from ..conftest import execute, write_project
from . import _types_data as data


def _read_all(rep: Replicator, name: str, *, arrow: bool, monkeypatch: pytest.MonkeyPatch, **kw: object) -> pa.Table:
    monkeypatch.setattr(PostgresSource, "use_arrow", arrow)
    table = rep.project.table(name)
    source = rep.source(table.source)
    batches = list(source.read(ReadRequest(table, source.describe(table), **kw)))  # type: ignore[arg-type]
    return pa.Table.from_batches(batches, schema=source.describe(table).arrow)


def test_fast_path_equals_row_path_for_every_type(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    execute(pg_url, *data.PG_DDL, data.PG_INSERT)
    project = write_project(tmp_path, sources={"app": pg_url}, lake=str(tmp_path / "lake"),
                            warehouse=f"duckdb:///{tmp_path / 'w.duckdb'}", tables={
        "all_types": "source: app\ntable: public.all_types\nprimary_key: [id]\nwatermark: updated_at\n"})
    rep = Replicator.from_path(project)
    table = rep.project.table("all_types")
    assert arrow_path_available(rep.source("app").describe(table))
    fast = _read_all(rep, "all_types", arrow=True, monkeypatch=monkeypatch, chunked=True)
    slow = _read_all(rep, "all_types", arrow=False, monkeypatch=monkeypatch, chunked=True)
    assert fast.num_rows == len(data.PG_ROWS)
    assert fast.schema == slow.schema
    assert fast.equals(slow), [n for n in fast.column_names if not fast.column(n).equals(slow.column(n))]


def test_fast_path_windows_and_keyset_chunks(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    execute(pg_url, "CREATE TABLE t (a int, b text, updated_at timestamptz NOT NULL, v numeric(8,3), PRIMARY KEY (a, b))",
            "INSERT INTO t SELECT g % 97, 'k' || g, '2026-01-01'::timestamptz + (g || ' ms')::interval, g / 7.0 "
            "FROM generate_series(1, 5000) g")
    project = write_project(tmp_path, sources={"app": pg_url}, lake=str(tmp_path / "lake"),
                            warehouse=f"duckdb:///{tmp_path / 'w.duckdb'}", source_options="chunk_rows: 700\nbatch_rows: 300",
                            tables={"t": "source: app\ntable: t\nprimary_key: [a, b]\nwatermark: updated_at\n"})
    rep = Replicator.from_path(project)
    import datetime as dt

    lower = dt.datetime(2026, 1, 1, 0, 0, 4, 500000, tzinfo=dt.timezone.utc)
    for kw in ({"chunked": True}, {"lower": lower}):
        fast = _read_all(rep, "t", arrow=True, monkeypatch=monkeypatch, **kw)
        slow = _read_all(rep, "t", arrow=False, monkeypatch=monkeypatch, **kw)
        assert fast.num_rows == slow.num_rows == (5000 if kw.get("chunked") else 501)
        assert fast.sort_by([("a", "ascending"), ("b", "ascending")]).equals(slow.sort_by([("a", "ascending"), ("b", "ascending")]))
    assert max(b.num_rows for b in rep.source("app").read(ReadRequest(rep.project.table("t"), rep.source("app").describe(rep.project.table("t")), chunked=True))) <= 300


def test_numeric_arrays_take_the_exact_row_path(tmp_path: Path, pg_url: str) -> None:
    execute(pg_url, "CREATE TABLE n (id int PRIMARY KEY, prices numeric(6,2)[], updated_at timestamptz NOT NULL DEFAULT now())",
            "INSERT INTO n VALUES (1, '{1.10,2.25,NULL}'), (2, NULL)")
    project = write_project(tmp_path, sources={"app": pg_url}, lake=str(tmp_path / "lake"),
                            warehouse=f"duckdb:///{tmp_path / 'w.duckdb'}",
                            tables={"n": "source: app\ntable: n\nprimary_key: [id]\nwatermark: updated_at\n"})
    rep = Replicator.from_path(project)
    schema = rep.source("app").describe(rep.project.table("n"))
    assert not arrow_path_available(schema)
    rep.sync("n")
    rows = {r["id"]: r["prices"] for r in rep.read_table("n").to_pylist()}
    from decimal import Decimal

    assert rows == {1: [Decimal("1.10"), Decimal("2.25"), None], 2: None}


def test_mariadb_fast_path_equals_row_path_for_every_type(tmp_path: Path, mysql_url: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy as sa

    from replicator.sources.mysql import MySQLSource
    from replicator.sources.mysql_arrow import arrow_path_available as mysql_fast

    engine = sa.create_engine(mysql_url)
    raw = engine.raw_connection()
    cur = raw.cursor()
    cur.execute(data.MY_DDL)
    cur.execute(f"SET time_zone = '{data.MY_INSERT_ZONE}'")
    cur.execute(data.MY_INSERT)
    raw.commit()
    raw.close()
    engine.dispose()
    project = write_project(tmp_path, sources={"app": mysql_url}, lake=str(tmp_path / "lake"),
                            warehouse=f"duckdb:///{tmp_path / 'w.duckdb'}", source_options="chunk_rows: 2",
                            tables={"all_types": "source: app\ntable: all_types\nprimary_key: [id]\nwatermark: updated_at\n"})
    rep = Replicator.from_path(project)
    table = rep.project.table("all_types")
    schema = rep.source("app").describe(table)
    assert mysql_fast(schema)

    def read(arrow: bool, **kw: object) -> pa.Table:
        monkeypatch.setattr(MySQLSource, "use_arrow", arrow)
        batches = list(rep.source("app").read(ReadRequest(table, schema, **kw)))  # type: ignore[arg-type]
        return pa.Table.from_batches(batches, schema=schema.arrow)

    import datetime as dt

    for kw in ({"chunked": True}, {"lower": dt.datetime(2024, 1, 1, 0, 0, 2)}):
        fast, slow = read(True, **kw), read(False, **kw)
        assert fast.num_rows == slow.num_rows == (len(data.MY_ROWS) if kw.get("chunked") else len(data.MY_ROWS) - 1)
        assert fast.equals(slow), [n for n in fast.column_names if not fast.column(n).equals(slow.column(n))]


def test_mariadb_fast_path_reads_full_tables_in_small_keyset_chunks(tmp_path: Path, mysql_url: str) -> None:
    """connectorx decodes ahead of its consumer, so its chunks are capped at 8 batches: all rows, each once."""
    execute(mysql_url, "CREATE TABLE t (id bigint PRIMARY KEY, v varchar(20), updated_at datetime(6) NOT NULL)",
            "INSERT INTO t SELECT seq, CONCAT('v', seq), '2026-01-01' FROM seq_1_to_2000")
    project = write_project(tmp_path, sources={"app": mysql_url}, lake=str(tmp_path / "lake"),
                            warehouse=f"duckdb:///{tmp_path / 'w.duckdb'}", source_options="batch_rows: 100",
                            tables={"t": "source: app\ntable: t\nprimary_key: [id]\nwatermark: updated_at\n"})
    rep = Replicator.from_path(project)
    table, source = rep.project.table("t"), rep.source("app")
    request = ReadRequest(table, source.describe(table), chunked=True)
    assert source.config.chunk_rows == 1_000_000 and source.chunk_rows(request) == 800
    batches = list(source.read(request))
    ids = pa.Table.from_batches(batches).column("id").to_pylist()
    assert ids == list(range(1, 2001)) and max(b.num_rows for b in batches) <= 100
