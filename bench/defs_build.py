"""How long the Dagster definitions take to build: `python bench/defs_build.py [--runs N] [TABLES ...]`.

Per table count (default 1 50 500): writes that many table YAMLs (and a replicator.yml with a local lake that does not
exist: building must not read it) in a temp dir, then 3 times (`--runs N`: N times; more rounds steady
the median on a busy machine) in a fresh subprocess times
`from dagster_defs import defs` + `defs().resolve_asset_graph()` (import of Dagster included, as a step
process pays it) and reports the median. Target: 500 tables in at most 1.5 s.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RUNS = 3
PROBE = """
import time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
from dagster_defs import defs
graph = defs().resolve_asset_graph()
t1 = time.perf_counter()
import json
print(json.dumps({"seconds": t1 - t0, "assets": len(graph.get_all_asset_keys())}))
"""


def write_tables(folder: Path, n: int) -> Path:
    (folder / "schemas").mkdir(parents=True)
    (folder / "replicator.yml").write_text(
        "sources:\n  app:\n    url: sqlite:///app.db\nlake:\n  url: lake\nwarehouse:\n  url: duckdb:///warehouse.duckdb\n")
    for i in range(n):
        cron = "" if i % 10 else "schedule: '*/15 * * * *'\n"  # a tenth on a cron of their own
        (folder / "schemas" / f"t{i:04d}.yml").write_text(
            f"source: app\ntable: t{i:04d}\nprimary_key: [id]\nwatermark: updated_at\nfreshness: 2h\n"
            f"description: table {i}\ncolumns: [id, name, updated_at]\n{cron}")
    return folder / "replicator.yml"


def measure(n: int, rounds: int = RUNS) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        project = write_tables(Path(tmp) / "project", n)
        env = {**os.environ, "REPLICATOR_PROJECT": str(project)}
        runs = []
        for _ in range(rounds):
            out = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=tmp, capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        if (Path(tmp) / "project" / "lake").exists():
            raise SystemExit("building the definitions created the lake folder")
        return statistics.median(r["seconds"] for r in runs), runs[0]["assets"]


def main(argv: list[str]) -> int:
    rounds = RUNS
    if argv[:1] == ["--runs"]:
        rounds, argv = int(argv[1]), argv[2:]
    counts = [int(a) for a in argv] or [1, 50, 500]
    for n in counts:
        seconds, assets = measure(n, rounds)
        print(f"{n:>5} tables ({assets} assets): median of {rounds} = {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
