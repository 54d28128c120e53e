"""Small files under the compaction policy: `python bench/small_files.py [--syncs 400] [--max-files 8]`.

A 20,000-row PostgreSQL table (database `replicator_bench_small`, made here) partitioned by `created_at`
over 14 days, a local lake and DuckDB warehouse, `compaction.max_files_per_partition` set to --max-files.
After the full load, N times: about 20 rows change, and a fresh `replicator sync` process runs (timed).
At the end: the lake's file count per partition, and a full read of the table (pyarrow dataset, DuckDB
read_parquet; medians of 5) against the same lake freshly compacted (`replicator compact`, on a copy).

Sync time at the last batch against batch 10, side by side: single syncs vary by +-20% on a shared
machine, more than the 10% asked, and the load drifts over a run of several minutes. So the project as
it stood after batch 10 is kept (a copy), and at the end both take turns (--rounds, after a first
round that brings the copy up to date): the same rows change, then the old project and the copy sync,
in alternating order. Their medians are compared.
Prints Markdown: the sync times, the files, the read times and their ratios.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
from pg_scratch import change_small_rides, small_rides, url

DB = "replicator_bench_small"


def sync(project: Path, *command: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "replicator", "--project", str(project), *command, "rides"],
                   check=True, capture_output=True)
    return time.perf_counter() - started


def visible(lake: Path) -> list[Path]:
    return [f for f in lake.rglob("*.parquet") if not f.relative_to(lake).parts[0].startswith("_")]


def read_times(lake: Path) -> tuple[float, float]:
    """Medians of 5 full reads: pyarrow dataset (hive), DuckDB read_parquet."""
    arrow, duck = [], []
    for _ in range(5):
        started = time.perf_counter()
        ds.dataset(lake, format="parquet", partitioning="hive").to_table()
        arrow.append(time.perf_counter() - started)
        con = duckdb.connect()
        started = time.perf_counter()
        con.execute(f"SELECT count(*), sum(price) FROM read_parquet('{lake}/dt=*/*.parquet', hive_partitioning = true)"
                    ).fetchall()
        duck.append(time.perf_counter() - started)
        con.close()
    return statistics.median(arrow), statistics.median(duck)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--syncs", type=int, default=400)
    parser.add_argument("--max-files", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args(argv)
    small_rides(DB, args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "project"
        (folder / "schemas").mkdir(parents=True)
        (folder / "replicator.yml").write_text(
            f"sources:\n  app:\n    url: '{url(DB)}'\nlake:\n  url: lake\nwarehouse:\n  url: duckdb:///warehouse.duckdb\n")
        (folder / "schemas" / "rides.yml").write_text(
            "source: app\ntable: public.rides\nprimary_key: [id]\nwatermark: updated_at\npartition_by: created_at\n"
            f"compaction: {{max_files_per_partition: {args.max_files}}}\n")
        project = folder / "replicator.yml"
        sync(project, "sync")
        times: dict[int, float] = {}
        most = 0
        for batch in range(2, args.syncs + 2):
            change_small_rides(DB, batch)
            times[batch] = sync(project, "sync")
            if batch == 10:
                shutil.copytree(folder, Path(tmp) / "young")
            per_partition: dict[str, int] = {}
            for f in visible(folder / "lake" / "rides"):
                per_partition[f.parent.name] = per_partition.get(f.parent.name, 0) + 1
            most = max(most, *per_partition.values())
        young = Path(tmp) / "young" / "replicator.yml"
        sync(young, "sync")  # the copy catches up with the changes since its batch 10
        old_times, young_times = [], []
        for turn in range(args.rounds):
            change_small_rides(DB, args.syncs + 2 + turn)
            pair = [(project, old_times), (young, young_times)]
            for path, into in pair if turn % 2 else reversed(pair):
                into.append(sync(path, "sync"))
        lake = folder / "lake" / "rides"
        files = len(visible(lake))
        arrow, duck = read_times(lake)
        fresh_folder = Path(tmp) / "fresh"
        shutil.copytree(folder, fresh_folder)
        sync(fresh_folder / "replicator.yml", "compact")
        fresh_arrow, fresh_duck = read_times(fresh_folder / "lake" / "rides")
        fresh_files = len(visible(fresh_folder / "lake" / "rides"))
    early = statistics.median(times[b] for b in range(6, 16) if b in times)
    late = statistics.median(times[b] for b in range(args.syncs - 8, args.syncs + 2) if b in times)
    print(f"| {args.syncs} small syncs, max_files_per_partition {args.max_files} | value |")
    print("|---|---|")
    print(f"| most files in one partition after any sync | {most} |")
    print(f"| files at the end / freshly compacted | {files} / {fresh_files} |")
    print(f"| sync wall, median of batches 6-15 / of the last 10 (run in sequence) | {early:.2f} s / {late:.2f} s "
          f"({late / early:.2f}x) |")
    old, new = statistics.median(old_times), statistics.median(young_times)
    print(f"| sync wall, taking turns: the project after {args.syncs} syncs / its copy after 10 (medians of "
          f"{args.rounds}) | {old:.2f} s / {new:.2f} s ({old / new:.2f}x) |")
    print(f"| full read, pyarrow dataset: lake / freshly compacted | {arrow * 1000:.1f} ms / {fresh_arrow * 1000:.1f} ms "
          f"({arrow / fresh_arrow:.2f}x) |")
    print(f"| full read, DuckDB read_parquet: lake / freshly compacted | {duck * 1000:.1f} ms / {fresh_duck * 1000:.1f} ms "
          f"({duck / fresh_duck:.2f}x) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
