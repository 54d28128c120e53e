"""Reconciliation by hashed key buckets, and hard deletes detected and committed behind a guard."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from replicator import Replicator
from replicator.reconcile import DeleteGuardError

from ..conftest import execute, write_project
from .helpers import assert_no_duplicate_keys, duckdb_rows, lake_current, rows_by_key, source_rows


def _rep(tmp_path: Path, url: str, lake: str, duckdb_url: str, extra: str = "") -> Replicator:
    path = write_project(tmp_path, sources={"app": url}, lake=lake, warehouse=duckdb_url, tables={
        "rides": "source: app\ntable: rides\nprimary_key: [id]\nwatermark: updated_at\n" + extra})
    return Replicator.from_path(path)


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
def test_report_names_what_differs(dialect: str, tmp_path: Path, pg_url: str, mysql_url: str, s3_lake: str,
                                   duckdb_url: str) -> None:
    url = pg_url if dialect == "postgresql" else mysql_url
    stamp = "now()" if dialect == "postgresql" else "UTC_TIMESTAMP(6)"
    execute(url, f"CREATE TABLE rides (id bigint PRIMARY KEY, fare decimal(8,2), updated_at {'timestamptz' if dialect == 'postgresql' else 'datetime(6)'} NOT NULL)")
    gen = ("SELECT g, g * 0.5, now() - interval '1 hour' FROM generate_series(1, 3000) g" if dialect == "postgresql"
           else "SELECT seq, seq * 0.5, UTC_TIMESTAMP(6) - INTERVAL 1 HOUR FROM seq_1_to_3000")
    execute(url, f"INSERT INTO rides {gen}")
    rep = _rep(tmp_path, url, s3_lake, duckdb_url)
    rep.sync("rides")
    clean = rep.reconcile("rides")
    assert clean.matches and clean.source_rows == clean.lake_rows == 3000 and clean.warehouse_rows == 3000

    execute(url, "DELETE FROM rides WHERE id IN (10, 20)", f"UPDATE rides SET updated_at = {stamp} WHERE id = 30",
            "INSERT INTO rides VALUES (5001, 1.00, " + stamp + ")")
    report = rep.reconcile("rides")
    assert not report.matches
    summary = report.differing[0]
    assert summary.gone_from_source == [(10,), (20,)]
    assert summary.missing_in_lake == [(5001,)]
    assert summary.changed == [(30,)]
    assert report.deleted_keys == [(10,), (20,)]
    assert rep.read_table("rides").num_rows == 3000


def test_delete_detection_commits_markers_on_sync(tmp_path: Path, pg_url: str, duckdb_url: str) -> None:
    execute(pg_url, "CREATE TABLE rides (id int PRIMARY KEY, fare numeric(8,2), updated_at timestamptz NOT NULL DEFAULT now())",
            "INSERT INTO rides (id, fare) SELECT g, g FROM generate_series(1, 100) g")
    rep = _rep(tmp_path, pg_url, str(tmp_path / "lake"), duckdb_url, extra="delete_detection: reconcile\nreconcile_every: 0s\n")
    rep.sync("rides")
    execute(pg_url, "DELETE FROM rides WHERE id IN (1, 2, 3)")
    rep.sync("rides")
    expected = source_rows(pg_url, "SELECT id, fare FROM rides", ["id"], ["id", "fare"])
    assert len(expected) == 97
    current = lake_current(rep, "rides")
    assert_no_duplicate_keys(current, ["id"])
    assert rows_by_key(current, ["id"], ["id", "fare"]) == expected
    assert duckdb_rows(rep, "rides", ["id"], ["id", "fare"]) == expected
    assert rep.reconcile("rides").matches
    assert rep.read_table("rides", as_of=1).num_rows == 100  # the state before the deletes stays readable


def test_delete_guard_refuses_a_mass_delete(tmp_path: Path, pg_url: str, duckdb_url: str) -> None:
    execute(pg_url, "CREATE TABLE rides (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now())",
            "INSERT INTO rides (id) SELECT g FROM generate_series(1, 100) g")
    rep = _rep(tmp_path, pg_url, str(tmp_path / "lake"), duckdb_url, extra="delete_detection: reconcile\n")
    rep.sync("rides")
    execute(pg_url, "DELETE FROM rides WHERE id <= 30")
    with pytest.raises(DeleteGuardError, match=r"30 of 100 rows \(30.0%\).*delete_guard 10%"):
        rep.reconcile("rides", apply_deletes=True)
    assert rep.read_table("rides").num_rows == 100  # nothing was deleted


def test_cli_reconcile_exit_codes(tmp_path: Path, pg_url: str, duckdb_url: str) -> None:
    execute(pg_url, "CREATE TABLE rides (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now())",
            "INSERT INTO rides (id) SELECT g FROM generate_series(1, 50) g")
    rep = _rep(tmp_path, pg_url, str(tmp_path / "lake"), duckdb_url)
    rep.sync("rides")
    run = [sys.executable, "-m", "replicator", "--project", str(rep.project.path), "reconcile"]
    ok = subprocess.run(run, capture_output=True, text=True)
    assert ok.returncode == 0 and "rides: source 50 rows, lake 50, warehouse 50" in ok.stdout and "match" in ok.stdout
    execute(pg_url, "DELETE FROM rides WHERE id = 7")
    bad = subprocess.run(run, capture_output=True, text=True)
    assert bad.returncode == 1 and "gone from the source (deleted?): [(7,)]" in bad.stdout
    applied = subprocess.run([*run, "--apply-deletes"], capture_output=True, text=True)
    assert "committed deletion markers for 1 keys" in applied.stdout
    rep.load("rides")
    assert subprocess.run(run, capture_output=True, text=True).returncode == 0
