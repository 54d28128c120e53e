"""Hundreds of small tables in one run: `python bench/many_tables.py [--tables N] [--rows R] [--jobs 1,2,4,8]`.

N tables of R rows each (default 200 x 1,000) in the PostgreSQL database `replicator_bench_many` on the
local server, made here with generate_series; then, per `--jobs` value, its own project (a local lake,
a DuckDB warehouse) synced by fresh `replicator sync --jobs J` processes: the first (full) sync of every
table, a sync after one row of every table changed (incremental), and a sync with nothing changed.
Wall time and peak RSS per process (/usr/bin/time), and the speed-up against `--jobs 1` of the same run.
Each table is checked afterwards: warehouse count(*) = count(DISTINCT id) = the source's count.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import sqlalchemy as sa
from pg_scratch import fresh_database, url

DB = "replicator_bench_many"


def make_tables(tables: int, rows: int) -> None:
    engine = fresh_database(DB)
    with engine.begin() as conn:
        for i in range(tables):
            conn.execute(sa.text(
                f"CREATE TABLE t{i:04d} (id bigint PRIMARY KEY, city_id int NOT NULL, status text,"
                " price numeric(12,2), updated_at timestamptz NOT NULL)"))
            conn.execute(sa.text(
                f"INSERT INTO t{i:04d} SELECT g, g % 50, (ARRAY['requested','completed','cancelled'])[g % 3 + 1],"
                " (g % 10000) / 100.0, now() - interval '2 hours' FROM generate_series(1, :n) g"), {"n": rows})
            conn.execute(sa.text(f"CREATE INDEX ON t{i:04d} (updated_at)"))
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()


def change_one_row_each(tables: int) -> None:
    engine = sa.create_engine(url(DB))
    with engine.begin() as conn:
        for i in range(tables):
            conn.execute(sa.text(f"UPDATE t{i:04d} SET status = 'changed', updated_at = now() - interval '1 minute'"
                                 " WHERE id = 1"))
    engine.dispose()


def project(folder: Path, tables: int) -> Path:
    (folder / "schemas").mkdir(parents=True)
    (folder / "replicator.yml").write_text(
        f"sources:\n  app:\n    url: '{url(DB)}'\nlake:\n  url: lake\nwarehouse:\n  url: duckdb:///warehouse.duckdb\n")
    for i in range(tables):
        (folder / "schemas" / f"t{i:04d}.yml").write_text(
            f"source: app\ntable: public.t{i:04d}\nprimary_key: [id]\nwatermark: updated_at\n")
    return folder / "replicator.yml"


def timed_sync(path: Path, jobs: int) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one `replicator sync --jobs J` process."""
    out = subprocess.run(["/usr/bin/time", "-f", "BENCH %e %M", sys.executable, "-m", "replicator", "--project",
                          str(path), "sync", "--jobs", str(jobs)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"sync --jobs {jobs} failed:\n{out.stderr[-3000:]}")
    line = [x for x in out.stderr.splitlines() if x.startswith("BENCH ")][-1]
    seconds, kib = line.split()[1:]
    return float(seconds), int(kib)


def check(path: Path, tables: int, rows: int) -> None:
    with duckdb.connect(str(path.parent / "warehouse.duckdb"), read_only=True) as wh:
        for i in range(tables):
            count, keys, changed = wh.execute(
                f"SELECT count(*), count(DISTINCT id), count(*) FILTER (status = 'changed') FROM raw.t{i:04d}").fetchone()
            if not (count == keys == rows and changed == 1):
                raise SystemExit(f"t{i:04d}: warehouse has {count} rows, {keys} keys, {changed} changed; "
                                 f"the source has {rows} rows, 1 changed")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=200)
    parser.add_argument("--rows", type=int, default=1_000)
    parser.add_argument("--jobs", default="1,2,4,8")
    args = parser.parse_args(argv)
    jobs = [int(j) for j in args.jobs.split(",")]
    started = time.perf_counter()
    make_tables(args.tables, args.rows)
    print(f"made {args.tables} tables of {args.rows:,} rows in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    results: dict[tuple[str, int], tuple[float, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {j: project(Path(tmp) / f"jobs{j}", args.tables) for j in jobs}
        for j in jobs:
            results[("full", j)] = timed_sync(paths[j], j)
            print(f"jobs {j}: full {results[('full', j)][0]:.2f} s", file=sys.stderr)
        change_one_row_each(args.tables)
        for j in jobs:
            results[("one row changed per table", j)] = timed_sync(paths[j], j)
        for j in jobs:
            results[("nothing changed", j)] = timed_sync(paths[j], j)
            check(paths[j], args.tables, args.rows)
    print(f"| {args.tables} tables x {args.rows:,} rows | " + " | ".join(f"--jobs {j}" for j in jobs) + " |")
    print("|---|" + "---|" * len(jobs))
    for sync in ("full", "one row changed per table", "nothing changed"):
        base = results[(sync, jobs[0])][0]
        cells = [f"{results[(sync, j)][0]:.2f} s ({base / results[(sync, j)][0]:.2f}x), "
                 f"{results[(sync, j)][1] / 1024:.0f} MiB" for j in jobs]
        print(f"| {sync} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
