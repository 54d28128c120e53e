"""`python -m bench`: generate (or reuse) the ride tables, measure every step in child processes, report.

Progress goes to stderr; the Markdown report goes to stdout and to `<out>/bench-<timestamp>.md`, with
the raw numbers in `<out>/bench-<timestamp>.json` (and `latest.md`, `latest.json`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .dataset import DIALECTS, ensure_table, server, touch_two_percent
from .measure import ChildResult, S3Server, run_step, snapshot_code, write_project
from .report import (
    machine_info,
    memory_scale_markdown,
    source_digest,
    summarize,
    timestamp,
    to_markdown,
    write_outputs,
)

PG_WAREHOUSE_DATABASE = "replicator_bench_warehouse"  # the PostgreSQL warehouse of warehouse_load_pg
SOURCE_TABLE = "rides"  # in the source database; the replicator table is always `rides` (bench.step.TABLE)
BIG_SOURCE_TABLE = "rides_big"


def log(message: str) -> None:
    print(f"[bench {dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows in the rides table (default 2000000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per dialect; medians are reported (default 3)")
    parser.add_argument("--dialects", default=",".join(DIALECTS), help="comma-separated (default postgresql,mariadb)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results",
                        help="where the .md and .json reports go (default bench/results)")
    parser.add_argument("--skip-s3", action="store_true", help="skip full_s3 (no moto server)")
    parser.add_argument("--memory-scale", action="store_true",
                        help="only full_local, at --rows and at 10x --rows (table rides_big): is peak RSS within 10%%?")
    parser.add_argument("--keep-work", action="store_true", help="keep the temporary projects and lakes")
    args = parser.parse_args(argv)
    args.dialects = [d.strip() for d in args.dialects.split(",") if d.strip()]
    unknown = [d for d in args.dialects if d not in DIALECTS]
    if unknown or not args.dialects:
        parser.error(f"--dialects: unknown {', '.join(unknown) or '(none given)'}; use {', '.join(DIALECTS)}")
    if args.rows < 1 or args.runs < 1:
        parser.error("--rows and --runs must be positive")
    return args


class StepRunner:
    """Runs the steps of one run of one dialect and records each child's result under its step name."""

    def __init__(self, dialect: str, folder: Path) -> None:
        self.dialect = dialect
        self.folder = folder
        self.steps: dict[str, dict[str, Any]] = {}

    def run(self, name: str, args: list[str], env: dict[str, str] | None = None) -> ChildResult:
        srv = server(self.dialect)
        before = srv.disk_reads()
        result = run_step(args, env)
        after = srv.disk_reads()
        self.steps[name] = result.as_dict()
        if before is not None and after is not None:
            self.steps[name]["server_read_mib"] = (after - before) / 2**20
        rows = result.reported.get("rows_read", result.reported.get("rows_loaded", ""))
        status = "ok" if result.ok else f"FAILED: {result.error}"
        log(f"{self.dialect:<10} {name:<25} wall {result.wall_s:7.2f} s  rss {result.peak_rss_mib:6.0f} MiB  "
            f"rows {rows}  {status}")
        return result

    def project(self, kind: str, lake_url: str | None = None, table: str = SOURCE_TABLE,
                warehouse_url: str | None = None, warehouse_schema: str = "raw") -> str:
        folder = self.folder / kind
        return str(write_project(folder, server(self.dialect), table, lake_url or str(folder / "lake"), warehouse_url,
                                 warehouse_schema))


@contextlib.contextmanager
def pg_warehouse(name: str) -> Iterator[str]:
    """A PostgreSQL warehouse URL whose schema `name` is fresh, dropped again afterwards."""
    pg = server("postgresql")
    with pg.connect(database=None) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_WAREHOUSE_DATABASE])
        if cur.fetchone() is None:
            cur.execute(f"CREATE DATABASE {PG_WAREHOUSE_DATABASE}")
    with pg.connect(database=PG_WAREHOUSE_DATABASE) as conn, conn.cursor() as cur:
        drop = f'DROP SCHEMA IF EXISTS "{name}" CASCADE'  # a plain lower-case name made here
        cur.execute(drop)
        try:
            yield f"postgresql://{pg.user}@{pg.host}:{pg.port}/{PG_WAREHOUSE_DATABASE}"
        finally:
            cur.execute(drop)


def build_mariadb_floor(work: Path) -> Path | None:
    """Compile bench/mariadb_floor.c against the MariaDB client library; None (and why) if that fails."""
    source = Path(__file__).resolve().parent / "mariadb_floor.c"
    binary = work / "mariadb_floor"
    try:
        done = subprocess.run(["gcc", "-O2", "-o", str(binary), str(source), "-l:libmariadb.so.3"],
                              capture_output=True, text=True, check=False)
    except OSError as exc:
        log(f"mariadb binary floor unavailable ({exc}); the `mariadb` CLI is the only MariaDB reference")
        return None
    if done.returncode != 0:
        log(f"mariadb binary floor unavailable (gcc: {done.stderr.strip().splitlines()[-1:]}); "
            "the `mariadb` CLI is the only MariaDB reference")
        return None
    return binary


def one_run(dialect: str, run: int, work: Path, s3: S3Server | None, keep: bool = False,
            mariadb_floor: Path | None = None) -> dict[str, Any]:
    steps = StepRunner(dialect, work / f"run{run}-{dialect}")
    client_args = ["floor", "--dialect", dialect, "--table", SOURCE_TABLE]  # the database's own client
    floor_args = client_args
    if dialect == "mariadb":
        # The target is 1.7x the binary-protocol floor; the CLI (text protocol) is its stand-in.
        if mariadb_floor is not None:
            floor_args = [*client_args, "--binary", str(mariadb_floor)]
            steps.run("floor", floor_args)
        steps.run("cli_ref", client_args)
    else:
        steps.run("floor", floor_args)
    steps.folder.mkdir(parents=True, exist_ok=True)
    steps.run("arrow_ref", ["arrow_ref", "--dialect", dialect, "--table", SOURCE_TABLE,
                            "--out", str(steps.folder / "arrow_ref.parquet")])
    local = steps.project("local")
    steps.run("full_local", ["extract", "--project", local])
    if s3 is not None:
        try:
            on_s3 = steps.project("s3", s3.new_lake())
            if steps.run("full_s3", ["extract", "--project", on_s3], env=s3.env).ok:
                touch_two_percent(dialect, SOURCE_TABLE)
                steps.run("incremental_2pct_extract_s3", ["extract", "--project", on_s3], env=s3.env)
                steps.run("no_change_s3", ["extract", "--project", on_s3], env=s3.env)
        finally:
            s3.reset()
    steps.run("sync_ref", ["arrow_ref", "--dialect", dialect, "--table", SOURCE_TABLE,
                           "--out", str(steps.folder / "sync_ref.parquet"),
                           "--warehouse", str(steps.folder / "sync_ref.duckdb")])
    steps.run("sync_overlap_ref", ["arrow_ref", "--dialect", dialect, "--table", SOURCE_TABLE,
                                   "--out", str(steps.folder / "sync_overlap_ref.parquet"),
                                   "--warehouse", str(steps.folder / "sync_overlap_ref.duckdb"), "--overlap"])
    steps.run("full_sync", ["sync", "--project", steps.project("sync")])
    steps.run("warehouse_load", ["load", "--project", local])
    # The same full batch into the PostgreSQL warehouse: a second project on the same lake.
    pg_schema = f"raw_run{run}_{dialect}"
    with pg_warehouse(pg_schema) as url:
        if steps.run("warehouse_load_pg", ["load", "--project", steps.project(
                "local_pg", lake_url=str(steps.folder / "local" / "lake"), warehouse_url=url,
                warehouse_schema=pg_schema)]).ok:
            steps.run("warehouse_floor_pg", ["warehouse_floor_pg", "--url", url, "--schema", pg_schema])
    # The floor client reads the change's own rows right after its UPDATE: the server's share of an
    # incremental read. The same rows are changed again before the extract, so both start from the same state.
    touched, changed_at = touch_two_percent(dialect, SOURCE_TABLE)
    if steps.run("incremental_floor", [*floor_args, "--since", changed_at]).ok:
        steps.steps["incremental_floor"]["rows_read"] = touched  # every row at or after the change time
    _, changed_at = touch_two_percent(dialect, SOURCE_TABLE)
    steps.run("incremental_ref", ["arrow_ref", "--dialect", dialect, "--table", SOURCE_TABLE, "--since", changed_at,
                                  "--out", str(steps.folder / "incremental_ref.parquet")])
    touch_two_percent(dialect, SOURCE_TABLE)
    steps.run("incremental_2pct_extract", ["extract", "--project", local])
    steps.run("no_change", ["extract", "--project", local])
    # Bring DuckDB up to date, then change the same 2% again so the sync sees exactly one fresh change.
    steps.run("incremental_2pct_load", ["load", "--project", local])
    touch_two_percent(dialect, SOURCE_TABLE)
    steps.run("incremental_2pct_sync", ["sync", "--project", local])
    if not keep:
        shutil.rmtree(steps.folder, ignore_errors=True)
    return {"run": run, "dialect": dialect, "touched_rows": touched, "steps": steps.steps}


def warm_up(dialects: list[str], tables: list[str]) -> None:
    """One untimed client read per table, so run 1 does not pay for a cold page cache alone."""
    for dialect in dialects:
        for table in tables:
            result = run_step(["floor", "--dialect", dialect, "--table", table])
            log(f"{dialect:<10} warm-up read of {table}: {result.wall_s:.2f} s{'' if result.ok else ' ' + str(result.error)}")


def benchmark(args: argparse.Namespace, work: Path, emit: Callable[[str, dict[str, Any]], None],
              meta: dict[str, Any]) -> int:
    warm_up(args.dialects, [SOURCE_TABLE])
    mariadb_floor = build_mariadb_floor(work) if "mariadb" in args.dialects else None
    runs: list[dict[str, Any]] = []
    loads: list[float] = []
    with S3Server() if not args.skip_s3 else contextlib.nullcontext() as s3:
        for run in range(1, args.runs + 1):
            for dialect in args.dialects:
                loads.append(os.getloadavg()[0])
                log(f"run {run}/{args.runs}, {dialect} (load average {loads[-1]:.2f})")
                runs.append({**one_run(dialect, run, work, s3, args.keep_work, mariadb_floor),
                             "load_before": loads[-1]})
    meta["config"]["load_before_runs"] = loads
    summary = summarize(runs, args.rows)
    meta["config"]["touched_rows"] = {r["dialect"]: r["touched_rows"] for r in runs}
    emit(to_markdown(summary, meta["machine"], meta["config"]), {**meta, "summary": summary, "runs": runs})
    return 1 if any(s["errors"] for steps in summary.values() for s in steps.values()) else 0


def memory_scale(args: argparse.Namespace, work: Path, emit: Callable[[str, dict[str, Any]], None],
                 meta: dict[str, Any]) -> int:
    sizes = {args.rows: SOURCE_TABLE, 10 * args.rows: BIG_SOURCE_TABLE}
    results: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for dialect in args.dialects:
        for rows, table in sizes.items():
            warm_up([dialect], [table])
            for run in range(1, args.runs + 1):
                steps = StepRunner(dialect, work / f"scale-{rows}-run{run}-{dialect}")
                steps.run(f"full_sync@{rows}", ["sync", "--project", steps.project("sync", table=table)])
                results.setdefault(dialect, {}).setdefault(rows, []).append(steps.steps[f"full_sync@{rows}"])
                if not args.keep_work:
                    shutil.rmtree(steps.folder, ignore_errors=True)
    markdown, verdicts = memory_scale_markdown(results, meta["machine"], meta["config"])
    emit(markdown, {**meta, "memory_scale": verdicts,
                    "runs": {d: {str(n): r for n, r in by.items()} for d, by in results.items()}})
    failed = any(r.get("error") for by in results.values() for rs in by.values() for r in rs)
    return 1 if failed or any(v["within_10pct"] is False for v in verdicts.values()) else 0


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    started = dt.datetime.now(dt.timezone.utc)
    stamp = timestamp()
    work = Path(tempfile.mkdtemp(prefix="replicator-bench-"))
    try:
        code = snapshot_code(work / "code")
        log(f"work folder {work}; children run the replicator code copied to {code}")
        for dialect in args.dialects:
            ensure_table(dialect, SOURCE_TABLE, args.rows, log=log)
            if args.memory_scale:
                ensure_table(dialect, BIG_SOURCE_TABLE, 10 * args.rows, log=log)
        meta = {"machine": machine_info({d: server(d).version() for d in args.dialects}, code / "replicator"),
                "config": {"rows": args.rows, "runs": args.runs, "dialects": args.dialects, "skip_s3": args.skip_s3,
                           "memory_scale": args.memory_scale, "started_at": started.isoformat(timespec="seconds")}}

        def emit(markdown: str, payload: dict[str, Any]) -> None:
            measured, now = meta["machine"]["replicator_source"], source_digest()
            if now["sha256"] != measured["sha256"]:
                markdown += (f"\nNote: replicator/ in the repository has changed since the copy was taken "
                             f"(sha256 {measured['sha256']} measured, {now['sha256']} now, newest change "
                             f"{now['newest_change']}); these numbers are for the copy.\n")
                payload = {**payload, "replicator_source_in_repo_at_end": now}
            print(markdown)
            kind = "memory-scale" if args.memory_scale else "bench"
            write_outputs(args.out, f"{kind}-{stamp}", markdown, payload,
                          latest="latest-memory-scale" if args.memory_scale else "latest", echo=log)

        return (memory_scale if args.memory_scale else benchmark)(args, work, emit, meta)
    finally:
        if args.keep_work:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
