"""NULL watermark values follow the table's declared rule and are counted every run."""

from __future__ import annotations

from pathlib import Path

import pytest

from replicator import Replicator, SourceError
from replicator.lake import list_manifest_seqs

from ..conftest import execute, write_project
from .helpers import assert_no_duplicate_keys, duckdb_rows, lake_current, rows_by_key, source_rows

TABLE = ("CREATE TABLE orders (id int PRIMARY KEY, state text, created_at timestamptz NOT NULL, "
         "updated_at timestamptz)")


def _rep(tmp_path: Path, url: str, rule: str, duckdb_url: str) -> Replicator:
    path = write_project(tmp_path, sources={"app": url}, lake=str(tmp_path / "lake"), warehouse=duckdb_url, tables={
        "orders": f"source: app\ntable: orders\nprimary_key: [id]\nwatermark: updated_at\non_null_watermark: {rule}\n"})
    return Replicator.from_path(path)


def _converged(rep: Replicator, url: str) -> None:
    expected = source_rows(url, "SELECT id, state FROM orders", ["id"], ["id", "state"])
    current = lake_current(rep, "orders")
    assert_no_duplicate_keys(current, ["id"])
    assert rows_by_key(current, ["id"], ["id", "state"]) == expected
    assert duckdb_rows(rep, "orders", ["id"], ["id", "state"]) == expected


def test_fail_rule_stops_before_writing_and_counts(tmp_path: Path, pg_url: str, duckdb_url: str) -> None:
    execute(pg_url, TABLE, "INSERT INTO orders VALUES (1, 'new', now(), now()), (2, 'new', now(), NULL), (3, 'new', now(), NULL)")
    rep = _rep(tmp_path, pg_url, "fail", duckdb_url)
    with pytest.raises(SourceError, match=r"2 rows have NULL in watermark column 'updated_at'.*on_null_watermark"):
        rep.sync("orders")
    assert list_manifest_seqs(rep.lake, "orders") == []
    assert not Path(duckdb_url.removeprefix("duckdb:///")).exists()  # nothing written to the warehouse


def test_include_rule_replicates_null_rows_once(tmp_path: Path, pg_url: str, duckdb_url: str) -> None:
    execute(pg_url, TABLE, "INSERT INTO orders VALUES (1, 'new', now(), now()), (2, 'new', now(), NULL)")
    rep = _rep(tmp_path, pg_url, "include", duckdb_url)
    first = rep.sync("orders")
    assert first.extract.rows_committed == 2 and first.extract.null_watermarks == 1
    execute(pg_url, "INSERT INTO orders VALUES (3, 'new', now(), NULL)")
    second = rep.sync("orders")
    assert second.extract.null_watermarks == 2  # counted every run
    assert second.extract.rows_committed == 1  # only the new NULL row
    assert rep.sync("orders").extract.rows_committed == 0
    _converged(rep, pg_url)


def test_fallback_rule_uses_the_other_column(tmp_path: Path, mysql_url: str, duckdb_url: str) -> None:
    execute(mysql_url, "CREATE TABLE orders (id int PRIMARY KEY, state varchar(10), created_at datetime(6) NOT NULL, "
                       "updated_at datetime(6) NULL)",
            "INSERT INTO orders VALUES (1, 'new', '2026-01-01 10:00:00', '2026-01-02 10:00:00'), "
            "(2, 'new', '2026-01-03 10:00:00', NULL)")
    rep = _rep(tmp_path, mysql_url, "{fallback: created_at}", duckdb_url)
    first = rep.sync("orders")
    assert first.extract.rows_committed == 2
    assert str(first.extract.watermark_after) == "2026-01-03 10:00:00"  # the fallback value counts
    execute(mysql_url, "INSERT INTO orders VALUES (3, 'new', '2026-01-04 10:00:00', NULL)",
            "UPDATE orders SET state = 'paid', updated_at = '2026-01-05 10:00:00' WHERE id = 1")
    second = rep.sync("orders")
    assert second.extract.rows_committed == 2
    assert rep.sync("orders").extract.rows_committed == 0
    _converged(rep, mysql_url)


def test_bad_rule_and_fallback_are_clear_errors(tmp_path: Path, pg_url: str, duckdb_url: str) -> None:
    from replicator import ConfigError

    execute(pg_url, TABLE)
    with pytest.raises(ConfigError, match="on_null_watermark: 'sometimes' is not a rule"):
        _rep(tmp_path / "a", pg_url, "sometimes", duckdb_url)
    rep = _rep(tmp_path / "b", pg_url, "{fallback: state}", duckdb_url)
    with pytest.raises(SourceError, match="on_null_watermark.fallback: column 'state' is TEXT"):
        rep.sync("orders")
