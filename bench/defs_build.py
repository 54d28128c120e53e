"""How long the Dagster definitions take to build: `python bench/defs_build.py [--runs N] [TABLES ...]`.

Per table count (default 1 50 500): writes that many table YAMLs (and a replicator.yml with a local lake that does not
exist: building must not read it) in a temp dir, then 3 times (`--runs N`: N times; more rounds steady
the median on a busy machine) in a fresh subprocess times
`from dagster_defs import defs` + `defs().resolve_asset_graph()` (import of Dagster included, as a step
process pays it) and reports the median. Target: 500 tables in at most 1.5 s.

Each round also times, in its own fresh subprocess, Dagster alone building the same number of assets
and asset checks with no replicator code (`dagster_ref`: one observable source multi-asset, a lake and
a warehouse multi-asset, bare specs, no YAML, no metadata), so the report separates what replicator
adds from what Dagster costs on this machine that day: `x ref` is the median of the per-round ratios.
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
print(json.dumps({"seconds": t1 - t0, "assets": len(graph.get_all_asset_keys()),
                  "lake_checks": sum(k.asset_key.path[0] == "lake" for k in graph.asset_check_keys),
                  "warehouse_checks": sum(k.asset_key.path[0] == "warehouse" for k in graph.asset_check_keys)}))
"""
# Dagster alone, for the same tables and checks per layer: what any code location of that shape costs.
REFERENCE = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
import dagster as dg
n, lake_checks, warehouse_checks = (int(a) for a in sys.argv[1:4])
names = [f"t{i:04d}" for i in range(n)]
source = [dg.AssetSpec(["source", t], group_name="app") for t in names]
lake = [dg.AssetSpec(["lake", t], deps=[s.key], skippable=True, group_name="app") for t, s in zip(names, source)]
warehouse = [dg.AssetSpec(["warehouse", t], deps=[s.key], skippable=True, group_name="app") for t, s in zip(names, lake)]

def checks(specs, count):
    per_table = count // max(len(specs), 1)
    return [dg.AssetCheckSpec(f"check_{j}", asset=s.key) for s in specs for j in range(per_table)]

@dg.multi_observable_source_asset(name="observe", specs=source, can_subset=True)
def observe(context):
    return None

@dg.multi_asset(name="lake", specs=lake, check_specs=checks(lake, lake_checks), can_subset=True)
def extract(context):
    return None

@dg.multi_asset(name="warehouse", specs=warehouse, check_specs=checks(warehouse, warehouse_checks), can_subset=True)
def load(context):
    return None

graph = dg.Definitions(assets=[observe, extract, load]).resolve_asset_graph()
print(json.dumps({"seconds": time.perf_counter() - t0, "assets": len(graph.get_all_asset_keys())}))
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


def _probe(code: str, args: list[str], env: dict[str, str], cwd: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=cwd, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure(n: int, rounds: int = RUNS) -> dict[str, float]:
    """Medians over `rounds` of replicator's build, Dagster's reference and their per-round ratio."""
    with tempfile.TemporaryDirectory() as tmp:
        project = write_tables(Path(tmp) / "project", n)
        env = {**os.environ, "REPLICATOR_PROJECT": str(project)}
        ours, refs = [], []
        for _ in range(rounds):  # interleaved, so a slow spell of the machine weighs on both alike
            ours.append(_probe(PROBE, [], env, tmp))
            counts = [str(n), str(int(ours[-1]["lake_checks"])), str(int(ours[-1]["warehouse_checks"]))]
            refs.append(_probe(REFERENCE, counts, env, tmp))
            if refs[-1]["assets"] != ours[-1]["assets"]:
                raise SystemExit(f"reference built {refs[-1]['assets']} assets, replicator {ours[-1]['assets']}")
        if (Path(tmp) / "project" / "lake").exists():
            raise SystemExit("building the definitions created the lake folder")
        return {
            "tables": n, "assets": ours[0]["assets"], "checks": ours[0]["lake_checks"] + ours[0]["warehouse_checks"],
            "seconds": statistics.median(r["seconds"] for r in ours),
            "dagster_ref_seconds": statistics.median(r["seconds"] for r in refs),
            "x_ref": statistics.median(o["seconds"] / r["seconds"] for o, r in zip(ours, refs)),
        }


def main(argv: list[str]) -> int:
    rounds = RUNS
    if argv[:1] == ["--runs"]:
        rounds, argv = int(argv[1]), argv[2:]
    counts = [int(a) for a in argv] or [1, 50, 500]
    for n in counts:
        m = measure(n, rounds)
        print(f"{n:>5} tables ({m['assets']:.0f} assets, {m['checks']:.0f} checks): median of {rounds} = {m['seconds']:.2f} s;"
              f" dagster_ref {m['dagster_ref_seconds']:.2f} s; {m['x_ref']:.2f}x ref")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
