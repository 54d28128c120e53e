"""Guarantee: types round-trip without loss, PostgreSQL and MariaDB both, through the lake and the warehouse.

Every value is compared with what the source's own driver (psycopg2, pymysql) returns; only
representation differences that carry no information are normalized (JSON text vs parsed, UUID
object vs text, a zone offset vs the same UTC instant, a REAL/FLOAT widened to a Python float).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa

from replicator import Replicator
from replicator.errors import SourceError
from replicator.lake import list_manifest_seqs

from ..conftest import execute, query, write_project
from . import _types_data as data
from .helpers import lake_current, lake_dataset

UTC = dt.timezone.utc
TABLE_YAML = """
    source: app
    table: {table}
    primary_key: [id]
    watermark: updated_at
"""


# --- normalization -------------------------------------------------------------------------------------

def _norm(kind: str | None, value: Any) -> Any:
    if value is None:
        return None
    if kind == "float32":
        # REAL/FLOAT hold a binary32; drivers print it shortest, Arrow widens it exactly: compare as binary32.
        return float(np.float32(value))
    if kind == "instant":
        assert value.tzinfo is not None, f"{value!r} lost its zone"
        return value.astimezone(UTC)
    if kind == "utc":  # MariaDB TIMESTAMP: read in a '+00:00' session, so the naive value is UTC
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if kind == "json":
        return json.loads(value) if isinstance(value, str) else value
    if kind == "uuid":
        return str(value) if isinstance(value, uuid.UUID) else str(uuid.UUID(value))
    if kind == "bytes":
        return bytes(value)
    if kind == "time" and isinstance(value, dt.timedelta):  # pymysql's TIME
        return (dt.datetime.min + value).time()
    return value


def _normalized(rows: Sequence[Sequence[Any]], names: Sequence[str], kinds: Mapping[str, str]) -> dict[int, dict[str, Any]]:
    return {r[0]: {n: _norm(kinds.get(n), v) for n, v in zip(names, r)} for r in rows}


def _assert_same(actual: dict[int, dict[str, Any]], expected: dict[int, dict[str, Any]], where: str,
                 scaled: Mapping[str, int] | None = None) -> None:
    scaled = scaled or {}
    assert sorted(actual) == sorted(expected), f"{where}: keys differ"
    problems = []
    for key, want in expected.items():
        got = actual[key]
        for column, value in want.items():
            if got[column] != value or type(got[column]) is not type(value):
                problems.append(f"id={key} {column}: source {value!r} != {where} {got[column]!r}")
            elif column in scaled and value is not None and got[column].as_tuple().exponent != scaled[column]:
                problems.append(f"id={key} {column}: {where} {got[column]!r} lost the declared scale")
    assert not problems, "\n".join(problems)


def _lake_rows(rep: Replicator, names: Sequence[str]) -> list[tuple[Any, ...]]:
    table = lake_current(rep, "all_types")
    return [tuple(r[n] for n in names) for r in table.select(list(names)).to_pylist()]


def _duckdb_rows(rep: Replicator, names: Sequence[str], types: Mapping[str, str]) -> list[tuple[Any, ...]]:
    """The warehouse rows as DuckDB's Python API returns them, after checking the declared column types."""
    path = rep.project.config.warehouse.url.removeprefix("duckdb:///")
    con = duckdb.connect(path, read_only=True)
    try:
        declared = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                    "WHERE table_schema = 'raw' AND table_name = 'all_types'").fetchall())
        assert {c: declared.get(c) for c in types} == dict(types)
        cols = ", ".join(f'"{n}"' for n in names)
        return con.execute(f"SELECT {cols} FROM raw.all_types ORDER BY id").fetchall()
    finally:
        con.close()


def _assert_lake_schema(rep: Replicator, columns: Sequence[tuple[str, str, pa.DataType]]) -> None:
    schema = lake_dataset(rep, "all_types").schema
    got = {f.name: f.type for f in schema}
    wrong = [f"{name} ({ddl}): lake {got.get(name)} != documented {want}"
             for name, ddl, want in columns if got.get(name) != want]
    assert not wrong, "\n".join(wrong)
    assert [f.name for f in schema][: len(columns)] == [c for c, _, _ in columns]


# --- PostgreSQL ----------------------------------------------------------------------------------------

def _pg_setup(pg_url: str) -> dict[int, dict[str, Any]]:
    execute(pg_url, *data.PG_DDL, data.PG_INSERT)
    rows = query(pg_url, f"SELECT {', '.join(data.PG_SOURCE_SQL.get(n, n) for n in data.PG_NAMES)} FROM all_types ORDER BY id")
    return _normalized(rows, data.PG_NAMES, data.PG_KINDS)


def _pg_project(tmp_path: Path, pg_url: str, lake: str, warehouse: str) -> Replicator:
    project = write_project(tmp_path, sources={"app": pg_url}, lake=lake, warehouse=warehouse,
                            tables={"all_types": TABLE_YAML.format(table="public.all_types")})
    return Replicator.from_path(project)


def test_postgres_types_lake_and_duckdb(tmp_path: Path, pg_url: str, s3_lake: str, duckdb_url: str) -> None:
    source = _pg_setup(pg_url)
    with _pg_project(tmp_path, pg_url, s3_lake, duckdb_url) as rep:
        result = rep.sync("all_types")
        assert result.extract.rows_committed == len(data.PG_ROWS)

        _assert_lake_schema(rep, data.PG_COLUMNS)

        lake = _normalized(_lake_rows(rep, data.PG_NAMES), data.PG_NAMES, data.PG_KINDS)
        _assert_same(lake, source, "lake", data.PG_SCALED)
        # '' and NULL stay distinct, and a NULL inside an array stays an element.
        assert (lake[2]["c_text"], lake[3]["c_text"]) == ("", None)
        assert (lake[2]["c_bytea"], lake[3]["c_bytea"]) == (b"", None)
        assert (lake[2]["c_int_arr"], lake[3]["c_int_arr"]) == ([], None)
        assert lake[1]["c_text_arr"] == ["a", None, "b"]
        assert lake[1]["c_tstz"] == dt.datetime(2024, 3, 9, 19, 32, 3, 123456, tzinfo=UTC)
        assert lake[1]["c_bigint"] == 2**63 - 1 and lake[2]["c_bigint"] == -(2**63)
        assert lake[1]["c_num_38_10"] == Decimal("12345678901234567890.0123456789")

        warehouse = _normalized(_duckdb_rows(rep, data.PG_NAMES, data.PG_DUCKDB_TYPES), data.PG_NAMES, data.PG_KINDS)
        _assert_same(warehouse, source, "duckdb", data.PG_SCALED)


def test_postgres_types_postgres_warehouse(tmp_path: Path, pg_url: str, s3_lake: str) -> None:
    source = _pg_setup(pg_url)
    # The warehouse writes schema `raw` of the same database; the source table lives in `public`.
    with _pg_project(tmp_path, pg_url, s3_lake, pg_url) as rep:
        rep.sync("all_types")
        rows = query(pg_url, f"SELECT {', '.join(data.PG_NAMES)} FROM raw.all_types ORDER BY id")
    warehouse = _normalized(rows, data.PG_NAMES, data.PG_KINDS)
    _assert_same(warehouse, source, "postgres warehouse", data.PG_SCALED)

    types = dict(query(pg_url, "SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns "
                               "JOIN pg_attribute ON attrelid = 'raw.all_types'::regclass AND attname = column_name "
                               "WHERE table_schema = 'raw' AND table_name = 'all_types'"))
    assert types["c_num_12_2"] == "numeric(12,2)"
    assert types["c_num_38_10"] == "numeric(38,10)"
    assert types["c_bigint"] == "bigint"
    assert types["c_tstz"] == "timestamp with time zone"
    assert types["c_ts"] == "timestamp without time zone"
    assert types["c_bytea"] == "bytea"
    assert types["c_int_arr"] == "integer[]"
    assert types["c_text_arr"] == "text[]"


def test_postgres_unbounded_numeric_beyond_nine_decimals_fails_and_commits_nothing(
        tmp_path: Path, pg_url: str, duckdb_url: str) -> None:
    execute(pg_url,
            "CREATE TABLE amounts (id bigint PRIMARY KEY, amount numeric, updated_at timestamptz NOT NULL)",
            "INSERT INTO amounts VALUES (1, 1.5, '2024-01-01+00'), (2, 0.123456789012, '2024-01-02+00')")
    project = write_project(tmp_path, sources={"app": pg_url}, lake=str(tmp_path / "lake"), warehouse=duckdb_url,
                            tables={"amounts": TABLE_YAML.format(table="public.amounts")})
    with Replicator.from_path(project) as rep:
        with pytest.raises(SourceError, match="amount") as caught:
            rep.sync("amounts")
        assert "'amount'" in str(caught.value), str(caught.value)
        assert list_manifest_seqs(rep.lake, "amounts") == []
        assert rep.warehouse.row_count("amounts") is None


# --- MariaDB -------------------------------------------------------------------------------------------

def _mysql_source_rows(url: str, names: Sequence[str]) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("SET time_zone = '+00:00'")
            cur.execute(f"SELECT {', '.join(f'`{n}`' for n in names)} FROM all_types ORDER BY id")
            return [tuple(r) for r in cur.fetchall()]
        finally:
            raw.close()
    finally:
        engine.dispose()


def test_mariadb_types_lake_and_duckdb(tmp_path: Path, mysql_url: str, duckdb_url: str) -> None:
    execute(mysql_url, data.MY_DDL, f"SET time_zone = '{data.MY_INSERT_ZONE}'", data.MY_INSERT)
    source = _normalized(_mysql_source_rows(mysql_url, data.MY_NAMES), data.MY_NAMES, data.MY_KINDS)
    # The TIMESTAMP written at 10:00 in +02:00 is the instant 08:00 UTC.
    assert source[1]["c_ts"] == dt.datetime(2024, 1, 1, 8, 0, 0, 123456, tzinfo=UTC)

    project = write_project(tmp_path, sources={"app": mysql_url}, lake=str(tmp_path / "lake"), warehouse=duckdb_url,
                            tables={"all_types": TABLE_YAML.format(table="all_types")})
    with Replicator.from_path(project) as rep:
        result = rep.sync("all_types")
        assert result.extract.rows_committed == len(data.MY_ROWS)

        _assert_lake_schema(rep, data.MY_COLUMNS)

        lake = _normalized(_lake_rows(rep, data.MY_NAMES), data.MY_NAMES, data.MY_KINDS)
        _assert_same(lake, source, "lake", data.MY_SCALED)
        assert (lake[2]["c_text"], lake[3]["c_text"]) == ("", None)
        assert (lake[2]["c_blob"], lake[3]["c_blob"]) == (b"", None)
        assert lake[1]["c_ubigint"] == 2**64 - 1
        assert lake[1]["c_time"] == dt.time(23, 59, 59, 999999)
        assert lake[1]["c_ts"] == dt.datetime(2024, 1, 1, 8, 0, 0, 123456, tzinfo=UTC)
        assert lake[1]["c_datetime"] == dt.datetime(2024, 2, 29, 12, 34, 56, 789012)

        warehouse = _normalized(_duckdb_rows(rep, data.MY_NAMES, data.MY_DUCKDB_TYPES), data.MY_NAMES, data.MY_KINDS)
        _assert_same(warehouse, source, "duckdb", data.MY_SCALED)



def test_mariadb_types_postgres_warehouse(tmp_path: Path, mysql_url: str, pg_url: str) -> None:
    """Every MariaDB type of the map into the PostgreSQL warehouse, compared with the source value by value."""
    execute(mysql_url, data.MY_DDL, f"SET time_zone = '{data.MY_INSERT_ZONE}'", data.MY_INSERT)
    source = _normalized(_mysql_source_rows(mysql_url, data.MY_NAMES), data.MY_NAMES, data.MY_KINDS)
    project = write_project(tmp_path, sources={"app": mysql_url}, lake=str(tmp_path / "lake"), warehouse=pg_url,
                            tables={"all_types": TABLE_YAML.format(table="all_types")})
    with Replicator.from_path(project) as rep:
        assert rep.sync("all_types").extract.rows_committed == len(data.MY_ROWS)
    names = ", ".join(f'"{n}"' for n in data.MY_NAMES)
    types = dict(query(pg_url, "SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns "
                               "JOIN pg_attribute ON attrelid = 'raw.all_types'::regclass AND attname = column_name "
                               "WHERE table_schema = 'raw' AND table_name = 'all_types'"))
    assert types["c_ubigint"] == "numeric(20,0)"  # the documented home of uint64 (and bit(n))
    assert types["c_ts"] == "timestamp with time zone"
    whole = [i for i, n in enumerate(data.MY_NAMES) if types[n] == "numeric(20,0)"]
    rows = [tuple(int(v) if i in whole and v is not None else v for i, v in enumerate(r))
            for r in query(pg_url, f"SET TIME ZONE 'UTC'; SELECT {names} FROM raw.all_types ORDER BY id")]
    warehouse = _normalized(rows, data.MY_NAMES, data.MY_KINDS)
    _assert_same(warehouse, source, "postgres warehouse", data.MY_SCALED)
