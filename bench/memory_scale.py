"""Peak memory of the whole sync at 2M and 20M rows: `python bench/memory_scale.py [--rows 2000000,20000000]`.

For each size: the bench's `rides` shape in the PostgreSQL database `replicator_bench_scale` (made here with
generate_series), then one fresh `replicator sync` process (extract, lake commit, DuckDB load; local lake,
plain Parquet) timed with its peak RSS (/usr/bin/time). Prints a Markdown table with rows/s and the RSS
ratio to the smallest size: flat memory means the ratio stays near 1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pg_scratch import bench_rides, url

DB = "replicator_bench_scale"


def timed_sync(folder: Path) -> tuple[float, int]:
    (folder / "schemas").mkdir(parents=True)
    (folder / "replicator.yml").write_text(
        f"sources:\n  app:\n    url: '{url(DB)}'\nlake:\n  url: lake\nwarehouse:\n  url: duckdb:///warehouse.duckdb\n")
    (folder / "schemas" / "rides.yml").write_text(
        "source: app\ntable: public.rides\nprimary_key: [id]\nwatermark: updated_at\npartition_by: created_at\n")
    out = subprocess.run(["/usr/bin/time", "-f", "BENCH %e %M", sys.executable, "-m", "replicator", "--project",
                          str(folder / "replicator.yml"), "sync", "rides"], capture_output=True, text=True, check=True)
    seconds, kib = [x for x in out.stderr.splitlines() if x.startswith("BENCH ")][-1].split()[1:]
    return float(seconds), int(kib)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="2000000,20000000")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.rows.split(",")]
    results = []
    for rows in sizes:
        started = time.perf_counter()
        bench_rides(DB, rows)
        print(f"made {rows:,} rows in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            results.append((rows, *timed_sync(Path(tmp))))
    base = results[0][2]
    print("| rows | whole sync | rows/s | peak RSS | RSS / smallest |")
    print("|---|---|---|---|---|")
    for rows, seconds, kib in results:
        print(f"| {rows:,} | {seconds:.2f} s | {rows / seconds:,.0f} | {kib / 1024:.0f} MiB | {kib / base:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
