"""The cost of Iceberg publication per batch: `python bench/iceberg_publish.py [--rows N]` (default 2,000,000).

One PostgreSQL table (database `replicator_bench_iceberg` on the local server, made here with
generate_series), two projects that differ only in `lake.iceberg` (off: the baseline of the same run;
on: the SQLite catalog). For each, a fresh `replicator sync` process is timed with its peak RSS
(/usr/bin/time) for the full first load, then again after 2% of the rows changed in the latest day's partition
(where an OLTP table's changes mostly are), then after 2% changed spread over every partition (the worst case
of the current-state table, which then rewrites every partition). Prints a Markdown table with the extra wall
time and memory of publication (both Iceberg tables: the change table and the current state).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from pg_scratch import bench_rides, url

DB = "replicator_bench_iceberg"
BATCHES = [("2% incremental, latest day", False), ("2% incremental, every day", True)]


def change_two_percent(*, spread: bool) -> None:
    """2% of the rows: spread over every day (every 50th id), or in the latest day only (3 of its 5)."""
    where = "id % 50 = 0" if spread else "created_at >= timestamptz '2026-11-30' AND id % 5 < 3"
    engine = sa.create_engine(url(DB))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE rides SET status = 'completed', updated_at = now() - interval '1 minute'"
                             f" WHERE {where}"))  # noqa: S608 - the bench's own constant conditions
    engine.dispose()


def project(folder: Path, iceberg: bool) -> Path:
    (folder / "schemas").mkdir(parents=True)
    (folder / "replicator.yml").write_text(
        f"sources:\n  app:\n    url: '{url(DB)}'\nlake:\n  url: lake\n" + ("  iceberg: {}\n" if iceberg else "")
        + "warehouse:\n  url: duckdb:///warehouse.duckdb\n")
    (folder / "schemas" / "rides.yml").write_text(
        "source: app\ntable: public.rides\nprimary_key: [id]\nwatermark: updated_at\npartition_by: created_at\n")
    return folder / "replicator.yml"


def timed_sync(path: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one `replicator sync rides` process."""
    out = subprocess.run(["/usr/bin/time", "-f", "BENCH %e %M", sys.executable, "-m", "replicator", "--project",
                          str(path), "sync", "rides"], capture_output=True, text=True, check=True)
    line = [x for x in out.stderr.splitlines() if x.startswith("BENCH ")][-1]
    seconds, kib = line.split()[1:]
    return float(seconds), int(kib)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    bench_rides(DB, args.rows)
    print(f"made {args.rows:,} rows in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {on: project(Path(tmp) / ("on" if on else "off"), on) for on in (False, True)}
        results: dict[tuple[str, bool], tuple[float, int]] = {}
        for on in (False, True):
            results[("full", on)] = timed_sync(paths[on])
        for batch, spread in BATCHES:
            change_two_percent(spread=spread)
            for on in (False, True):
                results[(batch, on)] = timed_sync(paths[on])
    print(f"| batch ({args.rows:,} rows) | sync, plain Parquet | sync + Iceberg publication | extra time | peak RSS plain | peak RSS Iceberg |")
    print("|---|---|---|---|---|---|")
    for batch in ("full", *(b for b, _ in BATCHES)):
        (t0, m0), (t1, m1) = results[(batch, False)], results[(batch, True)]
        print(f"| {batch} | {t0:.2f} s | {t1:.2f} s | +{t1 - t0:.2f} s ({(t1 - t0) / t0:+.0%}) | {m0 / 1024:.0f} MiB "
              f"| {m1 / 1024:.0f} MiB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
