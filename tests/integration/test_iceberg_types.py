"""Types Iceberg lacks, in a project that publishes to Iceberg: unsigned integers widened to signed ones,
decimals wider than 38 digits as their exact text (numeric(p,s) again in the PostgreSQL warehouse).

Oracles: the source's values read with SQL, the Iceberg tables' own schema and pyiceberg's scan, the
warehouse's own column types and values.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from pyiceberg.catalog import sql as pyiceberg_sql

from replicator.cli import main

from ..conftest import execute, query, write_project

MAX_UINT64 = 18446744073709551615
MAX_INT64 = 9223372036854775807


def _project(tmp_path: Path, source_url: str, warehouse: str, table: str, *, iceberg: bool = True) -> Path:
    path = write_project(tmp_path, sources={"app": source_url}, lake=str(tmp_path / "lake"), warehouse=warehouse,
                         tables={"counters": f"source: app\ntable: {table}\nprimary_key: [id]\nwatermark: id\n"})
    if iceberg:
        path.write_text(path.read_text().replace(f"  url: '{tmp_path / 'lake'}'\n",
                                                 f"  url: '{tmp_path / 'lake'}'\n  iceberg: {{}}\n"))
    return path


def _current(tmp_path: Path):  # type: ignore[no-untyped-def]
    return pyiceberg_sql.SqlCatalog("replicator", uri=f"sqlite:///{tmp_path / 'iceberg.db'}").load_table(
        "lake_current.counters")


MARIADB_TABLE = ("CREATE TABLE counters (id bigint unsigned PRIMARY KEY, tiny tinyint unsigned, small smallint unsigned,"
                 " medium int unsigned, flags bit(5), amount decimal(65,30))")


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_mariadb_unsigned_and_wide_decimals_reach_iceberg_and_the_warehouse_exactly(
        tmp_path: Path, mysql_url: str, pg_url: str, warehouse: str) -> None:
    execute(mysql_url, MARIADB_TABLE,
            "INSERT INTO counters VALUES (1, 255, 65535, 4294967295, b'11111',"
            " 12345678901234567890123456789012345.123456789012345678901234567891),"
            f" ({2**62}, 0, 0, 0, b'00000', -0.000000000000000000000000000001), (3, NULL, NULL, NULL, NULL, NULL)")
    wh_url = f"duckdb:///{tmp_path / 'wh.duckdb'}" if warehouse == "duckdb" else pg_url
    project = _project(tmp_path, mysql_url, wh_url, "counters")
    assert main(["--project", str(project), "sync", "counters"]) == 0
    execute(mysql_url, f"INSERT INTO counters VALUES ({MAX_INT64}, 7, 7, 7, b'00111', 1.5)")  # the largest long
    assert main(["--project", str(project), "sync", "counters"]) == 0

    source = {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in query(
        mysql_url, "SELECT id, tiny, small, medium, flags + 0, amount FROM counters")}
    current = _current(tmp_path)
    types = {f.name: str(f.field_type) for f in current.schema().fields}
    assert (types["id"], types["tiny"], types["small"], types["medium"], types["flags"], types["amount"]) == (
        "long", "int", "int", "long", "long", "string")
    rows = current.scan().to_arrow().select(["id", "tiny", "small", "medium", "flags", "amount"]).to_pylist()
    got = {r["id"]: (r["tiny"], r["small"], r["medium"], r["flags"], r["amount"]) for r in rows}
    assert {k: v[:4] for k, v in got.items()} == {k: v[:4] for k, v in source.items()}
    # The decimal's text: exactly the source's value, with every declared decimal.
    assert {k: v[4] for k, v in got.items()} == {k: None if v[4] is None else format(v[4], "f") for k, v in source.items()}
    assert got[1][4] == "12345678901234567890123456789012345.123456789012345678901234567891"
    assert got[2**62][4] == "-0.000000000000000000000000000001"
    assert got[MAX_INT64][4] == "1.500000000000000000000000000000"

    if warehouse == "postgres":
        assert dict(query(pg_url, "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema"
                                  " = 'raw' AND table_name = 'counters' AND column_name IN ('amount', 'id')")) == {
            "amount": "numeric", "id": "bigint"}
        loaded = {r[0]: r[1] for r in query(pg_url, "SELECT id, amount FROM raw.counters")}
    else:
        con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
        loaded = {r[0]: None if r[1] is None else Decimal(r[1])
                  for r in con.execute("SELECT id, amount FROM raw.counters").fetchall()}
        con.close()
    assert loaded == {k: v[4] for k, v in source.items()}


def test_an_unsigned_value_beyond_long_stops_the_sync_naming_the_column(
        tmp_path: Path, mysql_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    execute(mysql_url, "CREATE TABLE counters (id int PRIMARY KEY, hits bigint unsigned)",
            f"INSERT INTO counters VALUES (1, 5), (2, {MAX_UINT64})")
    project = _project(tmp_path, mysql_url, f"duckdb:///{tmp_path / 'wh.duckdb'}", "counters")
    assert main(["--project", str(project), "sync", "counters"]) == 1
    err = capsys.readouterr().err
    assert "'hits'" in err and "unsigned" in err.lower() and "int64" in err and "Iceberg has no unsigned" in err, err
    assert not list((tmp_path / "lake").rglob("*.parquet"))  # nothing committed


def test_a_lake_from_before_iceberg_is_resynced_into_iceberg_types(
        tmp_path: Path, mysql_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    execute(mysql_url, "CREATE TABLE counters (id int PRIMARY KEY, hits int unsigned, big bigint unsigned)",
            "INSERT INTO counters VALUES (1, 4294967295, 5)")
    plain = _project(tmp_path, mysql_url, f"duckdb:///{tmp_path / 'wh.duckdb'}", "counters", iceberg=False)
    assert main(["--project", str(plain), "sync", "counters"]) == 0
    project = _project(tmp_path, mysql_url, f"duckdb:///{tmp_path / 'wh.duckdb'}", "counters")
    execute(mysql_url, "INSERT INTO counters VALUES (2, 1, 1)")
    assert main(["--project", str(project), "sync", "counters"]) == 1  # uint64 -> int64 is no widening
    assert "--full-refresh" in capsys.readouterr().err
    assert main(["--project", str(project), "sync", "counters", "--full-refresh"]) == 0
    rows = _current(tmp_path).scan().to_arrow().select(["id", "hits", "big"]).to_pylist()
    assert sorted((r["id"], r["hits"], r["big"]) for r in rows) == [(1, 4294967295, 5), (2, 1, 1)]


def test_postgresql_wide_numeric_is_exact_text_and_nan_stops(
        tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    execute(pg_url, "CREATE TABLE counters (id bigint PRIMARY KEY, amount numeric(50,10))",
            "INSERT INTO counters VALUES (1, 1234567890123456789012345678901234567890.0123456789), (2, -1.5), (3, NULL)")
    project = _project(tmp_path, pg_url, f"duckdb:///{tmp_path / 'wh.duckdb'}", "public.counters")
    assert main(["--project", str(project), "sync", "counters"]) == 0
    rows = _current(tmp_path).scan().to_arrow().select(["id", "amount"]).to_pylist()
    assert {r["id"]: r["amount"] for r in rows} == {
        1: "1234567890123456789012345678901234567890.0123456789", 2: "-1.5000000000", 3: None}
    execute(pg_url, "INSERT INTO counters VALUES (4, 'NaN')")
    assert main(["--project", str(project), "sync", "counters"]) == 1
    err = capsys.readouterr().err
    assert "'amount'" in err and "nan" in err.lower() and "which a decimal cannot hold" in err, err


def test_mariadb_wide_decimal_on_the_arrow_path_is_its_exact_text(tmp_path: Path, mysql_url: str) -> None:
    """Without a bit column the table takes the connectorx path (the test above, with one, the row path)."""
    execute(mysql_url, "CREATE TABLE counters (id bigint unsigned PRIMARY KEY, amount decimal(65,30))",
            "INSERT INTO counters VALUES (1, 0), (2, -98765432109876543210987654321098765.5), (3, NULL)")
    project = _project(tmp_path, mysql_url, f"duckdb:///{tmp_path / 'wh.duckdb'}", "counters")
    assert main(["--project", str(project), "sync", "counters"]) == 0
    rows = _current(tmp_path).scan().to_arrow().select(["id", "amount"]).to_pylist()
    assert {r["id"]: r["amount"] for r in rows} == {
        1: "0.000000000000000000000000000000", 2: "-98765432109876543210987654321098765.500000000000000000000000000000",
        3: None}
