"""Shared pieces of the fault tests: project files, seed/change SQL, subprocess runs and `assert_converged`.

`assert_converged` is the one place a scenario is declared converged; it counts each scenario (and any
lost rows or duplicates it saw) in `STATS`, which `conftest.py` prints at the end of the session.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import psycopg2
import pyarrow.dataset as ds
import sqlalchemy as sa

from replicator import Replicator
from replicator.lake import active_manifests, list_manifest_seqs, load_manifest, paths

from .. import oracle
from ..conftest import execute
from ..integration.helpers import duckdb_rows, lake_current, lake_dataset

ROOT = Path(__file__).resolve().parents[2]

STATS: dict[str, int] = {"ran": 0, "lost": 0, "duplicates": 0}

COLUMNS = ("id", "payload", "updated_at")

PG_EVENTS = (
    "CREATE TABLE events (id bigint PRIMARY KEY, payload text NOT NULL, created_at timestamptz NOT NULL, "
    "updated_at timestamptz NOT NULL DEFAULT now())"
)
MY_EVENTS = (
    "CREATE TABLE events (id bigint PRIMARY KEY, payload varchar(200) NOT NULL, created_at datetime(6) NOT NULL, "
    "updated_at datetime(6) NOT NULL DEFAULT UTC_TIMESTAMP(6))"
)


def dialect_of(url: str) -> str:
    return "postgresql" if url.startswith("postgres") else "mariadb"


def now_sql(dialect: str) -> str:
    """The database clock an application stamps rows with."""
    return "now()" if dialect == "postgresql" else "UTC_TIMESTAMP(6)"


def create_events(url: str) -> None:
    execute(url, PG_EVENTS if dialect_of(url) == "postgresql" else MY_EVENTS)


def insert_rows(url: str, first: int, last: int, version: str = "v1") -> None:
    """Insert ids first..last, created over three days (three partitions), stamped with the database clock."""
    if dialect_of(url) == "postgresql":
        execute(url, f"INSERT INTO events SELECT g, '{version}-' || g, "
                     "timestamptz '2026-01-01 00:00:00+00' + (g % 3) * interval '1 day', now() "
                     f"FROM generate_series({first}, {last}) g")
    else:
        execute(url, f"INSERT INTO events SELECT seq, CONCAT('{version}-', seq), "
                     "TIMESTAMP '2026-01-01 00:00:00' + INTERVAL (seq % 3) DAY, UTC_TIMESTAMP(6) "
                     f"FROM seq_{first}_to_{last}")


def update_rows(url: str, first: int, last: int, version: str) -> None:
    """A new version of ids first..last, stamped with the database clock."""
    dialect = dialect_of(url)
    payload = f"'{version}-' || id" if dialect == "postgresql" else f"CONCAT('{version}-', id)"
    execute(url, f"UPDATE events SET payload = {payload}, updated_at = {now_sql(dialect)} "
                 f"WHERE id BETWEEN {first} AND {last}")


def write_project(folder: Path, *, source: str, lake: str, warehouse: str, batch_rows: int = 100,
                  row_group_rows: int = 50, file_max_rows: int = 100, partition_by: str | None = "created_at",
                  lookback: str = "0s", lease_ttl: str = "1s", source_options: str = "",
                  source_table: str = "events") -> Path:
    """replicator.yml plus schemas/events.yml with small batches, row groups and files."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "schemas").mkdir(exist_ok=True)
    options = "".join(f"\n    {line}" for line in source_options.strip().splitlines())
    (folder / "replicator.yml").write_text(textwrap.dedent(f"""\
        sources:
          app:
            url: '{source}'
            batch_rows: {batch_rows}{options}
        lake:
          url: '{lake}'
          row_group_rows: {row_group_rows}
          file_max_rows: {file_max_rows}
        warehouse:
          url: '{warehouse}'
          schema: raw
        defaults:
          lease_ttl: {lease_ttl}
        """))
    table = f"source: app\ntable: {source_table}\nprimary_key: [id]\nwatermark: updated_at\nlookback: {lookback}\n"
    if partition_by:
        table += f"partition_by: {partition_by}\n"
    (folder / "schemas" / "events.yml").write_text(table)
    return folder / "replicator.yml"


# -- subprocesses ------------------------------------------------------------------------------------

def spawn(*args: str) -> subprocess.Popen[str]:
    """`python <args>` from the repository root, with this process's environment (AWS_* included)."""
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(procs: dict[str, subprocess.Popen[str]], timeout: float = 120) -> dict[str, tuple[int, str]]:
    """Wait for every process; returns label -> (returncode, the tail of its output)."""
    done = {}
    for label, proc in procs.items():
        out, err = proc.communicate(timeout=timeout)
        done[label] = (proc.returncode, f"--- stdout\n{out[-2000:]}\n--- stderr\n{err[-3000:]}")
    return done


# -- lake inspection ---------------------------------------------------------------------------------

def visible_files(rep: Replicator, name: str = "events") -> set[str]:
    """Files a Hive-aware reader of <lake>/<name>/ sees (folders starting with _ are skipped)."""
    store = rep.lake
    base = paths.join(store.root, name)
    if not store.exists(base):
        return set()
    dataset = ds.dataset(base, filesystem=store.fs, format="parquet", partitioning="hive")
    return set(dataset.files)


def manifest_files(rep: Replicator, name: str = "events", *, active_only: bool = False) -> set[str]:
    store = rep.lake
    manifests = (active_manifests(store, name) if active_only
                 else [load_manifest(store, name, s) for s in list_manifest_seqs(store, name)])
    return {paths.in_table(store.root, name, f.path) for m in manifests for f in m.files}


def staging_entries(rep: Replicator, name: str = "events") -> list[str]:
    return [i.path for i in rep.lake.list_dir(paths.join(rep.lake.root, name, "_staging"))]


def assert_only_committed_visible(rep: Replicator, name: str = "events") -> None:
    """What a reader sees right now: every visible file is listed by a committed manifest."""
    orphans = visible_files(rep, name) - manifest_files(rep, name)
    assert not orphans, f"files visible in the Hive layout that no manifest lists: {sorted(orphans)}"


def repeated_row_versions(rep: Replicator, name: str = "events", key: Sequence[str] = ("id",),
                                 watermark: str = "updated_at") -> int:
    """No (key, watermark) row version is committed twice across all batches; returns the repeats."""
    raw = lake_dataset(rep, name)
    if raw.num_rows == 0:
        return 0
    cols = [*key, watermark]
    counts = raw.group_by(cols).aggregate([([], "count_all")])
    repeats = [r for r in counts.to_pylist() if r["count_all"] > 1]
    return len(repeats)


# -- value comparison ----------------------------------------------------------------------------------

def norm(value: Any) -> Any:
    """Compare timestamps as naive UTC, whatever zone each side's driver attaches."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def _keyed(rows: Iterable[dict[str, Any]], key: Sequence[str], columns: Sequence[str]) -> tuple[dict[tuple, tuple], int]:
    out: dict[tuple, tuple] = {}
    n = 0
    for r in rows:
        n += 1
        out[tuple(r[k] for k in key)] = tuple(norm(r[c]) for c in columns)
    return out, n - len(out)


def source_table(url: str, columns: Sequence[str] = COLUMNS, name: str = "events") -> list[dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            cols = ", ".join(columns)
            return [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT {cols} FROM {name}"))]
    finally:
        engine.dispose()


def warehouse_table(rep: Replicator, name: str = "events", columns: Sequence[str] = COLUMNS,
                    key: Sequence[str] = ("id",)) -> list[dict[str, Any]]:
    url = rep.project.config.warehouse.url
    if url.startswith("duckdb"):
        return [dict(zip(columns, v)) for v in duckdb_rows(rep, name, list(columns), list(columns)).values()] \
            if _duckdb_has(rep, name) else []
    dsn = url.replace("postgresql+psycopg2://", "postgresql://", 1)
    con = psycopg2.connect(dsn)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", [f"raw.{name}"])
            if not cur.fetchone()[0]:
                return []
            cur.execute(f"SELECT {', '.join(columns)} FROM raw.{name}")
            return [dict(zip(columns, r)) for r in cur.fetchall()]
    finally:
        con.close()


def _duckdb_has(rep: Replicator, name: str) -> bool:
    import duckdb

    path = rep.project.config.warehouse.url.removeprefix("duckdb:///")
    if not os.path.exists(path):
        return False
    con = duckdb.connect(path, read_only=True)
    try:
        return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw' "
                                "AND table_name = ?", [name]).fetchone()[0])  # type: ignore[index]
    finally:
        con.close()


def warehouse_duplicates(rep: Replicator, name: str = "events", key: Sequence[str] = ("id",)) -> int:
    """Rows beyond one per key in the warehouse table (duckdb_rows would hide them in a dict)."""
    url = rep.project.config.warehouse.url
    cols = ", ".join(key)
    sql = f"SELECT count(*) - count(DISTINCT ({cols})) FROM raw.{name}"
    if url.startswith("duckdb"):
        import duckdb

        if not _duckdb_has(rep, name):
            return 0
        con = duckdb.connect(url.removeprefix("duckdb:///"), read_only=True)
        try:
            return int(con.execute(sql).fetchone()[0])  # type: ignore[index]
        finally:
            con.close()
    con = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://", 1))
    try:
        with con.cursor() as cur:
            cur.execute(sql)
            return int(cur.fetchone()[0])
    finally:
        con.close()


def assert_warehouse_is_a_committed_state(rep: Replicator, name: str = "events",
                                          columns: Sequence[str] = COLUMNS) -> None:
    """The warehouse holds exactly the lake's state after the batch its ledger names, nothing half-loaded."""
    seq = rep.warehouse.last_loaded_seq(name)
    table = rep.project.table(name)
    state = oracle.lake_current(rep.project.config.lake.url, name, table.primary_key, table.watermark, as_of=seq)
    expected, _ = _keyed(state.to_pylist(), ("id",), columns) if seq else ({}, 0)
    got, dups = _keyed(warehouse_table(rep, name, columns), ("id",), columns)
    assert dups == 0 and warehouse_duplicates(rep, name) == 0
    assert got == expected, f"warehouse differs from lake batch {seq}: {_diff(expected, got)}"


def _diff(expected: dict[tuple, tuple], got: dict[tuple, tuple]) -> str:
    missing = [k for k in expected if k not in got]
    extra = [k for k in got if k not in expected]
    wrong = [k for k in expected if k in got and got[k] != expected[k]]
    sample = {k: (expected[k], got[k]) for k in wrong[:3]}
    return (f"{len(missing)} missing (e.g. {missing[:5]}), {len(extra)} extra (e.g. {extra[:5]}), "
            f"{len(wrong)} different (e.g. {sample})")


def assert_converged(rep: Replicator, source_url: str, name: str = "events", *, columns: Sequence[str] = COLUMNS,
                     key: Sequence[str] = ("id",), watermark: str | None = "updated_at", layout: bool = True,
                     count: bool = True) -> None:
    """Lake current state and warehouse == source; no duplicate keys or row versions; clean layout.

    Counted in STATS (unless `count` is false: intermediate checks of one scenario), with the lost rows
    and duplicates it found.
    """
    expected, _ = _keyed(source_table(source_url, columns, name), key, columns)
    current = lake_current(rep, name)
    lake, lake_dups = _keyed(current.select(list(columns)).to_pylist() if current.num_rows else [], key, columns)
    wh, wh_dups = _keyed(warehouse_table(rep, name, columns, key), key, columns)
    wh_dups = max(wh_dups, warehouse_duplicates(rep, name, key))
    version_dups = repeated_row_versions(rep, name, key, watermark) if watermark else 0
    lost = {k for k in expected if lake.get(k) != expected[k] or wh.get(k) != expected[k]}
    STATS["ran"] += int(count)
    STATS["lost"] += len(lost)
    STATS["duplicates"] += lake_dups + wh_dups + version_dups
    assert lake == expected, f"lake current state differs from the source: {_diff(expected, lake)}"
    assert wh == expected, f"warehouse differs from the source: {_diff(expected, wh)}"
    assert lake_dups == 0, f"{lake_dups} duplicate keys in the lake's current state"
    assert wh_dups == 0, f"{wh_dups} duplicate keys in the warehouse"
    assert version_dups == 0, f"{version_dups} row versions committed more than once"
    if layout:
        visible = visible_files(rep, name)
        listed = manifest_files(rep, name, active_only=True)
        assert visible == listed, (f"Hive layout != files of committed manifests: "
                                   f"unlisted {sorted(visible - listed)[:5]}, unpublished {sorted(listed - visible)[:5]}")
        assert staging_entries(rep, name) == [], f"_staging not empty: {staging_entries(rep, name)}"
