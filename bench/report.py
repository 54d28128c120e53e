"""Medians over runs, the issue's targets, the machine, and the Markdown/JSON outputs."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["STEPS", "TARGETS", "Target", "machine_info", "memory_scale_markdown", "source_digest", "summarize",
           "timestamp", "to_markdown", "write_outputs"]

# Report order, and a one-line description each (also used by the README).
STEPS: dict[str, str] = {
    "floor": "the reference read, discarded: psql binary COPY; MariaDB: binary protocol in C (bench/mariadb_floor.c)",
    "cli_ref": "MariaDB only: the `mariadb` CLI (text protocol), the issue's stand-in for the binary floor",
    "arrow_ref": "no replicator: the driver's Arrow batches straight into one ParquetWriter (same-run baseline)",
    "full_local": "extract: full read -> Parquet -> commit, local lake",
    "full_s3": "extract: full read -> Parquet -> commit, S3 lake (moto)",
    "incremental_2pct_extract_s3": "extract to that S3 lake after 2% of the rows changed (the full batch "
                                   "before it: full_s3)",
    "no_change_s3": "extract to that S3 lake again right after: nothing changed",
    "sync_ref": "no replicator: arrow_ref, then DuckDB's CREATE TABLE AS SELECT of its file, in one process: "
                "a hand-written whole sync (same-run baseline for full_sync)",
    "sync_overlap_ref": "no replicator: the same script with the DuckDB load overlapped: a thread appends the "
                        "driver's batches to DuckDB while the file is written (what overlapping can gain here)",
    "full_sync": "sync: the full read, the commit and the DuckDB load in one process, as `replicator sync` runs them "
                 "(fresh local lake and warehouse)",
    "warehouse_load": "load: the full batch from the local lake into DuckDB",
    "warehouse_load_pg": "load: the same full batch into the PostgreSQL warehouse (binary COPY, one transaction)",
    "warehouse_floor_pg": "the PostgreSQL warehouse's own floor: binary COPY of the loaded rows from a file into "
                          "an identical table with its key (no replicator)",
    "incremental_floor": "the floor client reading only the changed rows (`where updated_at >= <change time>`) "
                         "right after the UPDATE: the server's own share of an incremental read",
    "incremental_ref": "no replicator: the changed rows (`where updated_at >= <change time>`, right after the same "
                       "UPDATE) by the driver straight into one ParquetWriter: the hand-written watermark script",
    "incremental_2pct_extract": "extract after 2% of the rows changed (the same UPDATE again)",
    "no_change": "extract again right after: nothing changed",
    "incremental_2pct_load": "load of that incremental batch into DuckDB (informational)",
    "incremental_2pct_sync": "sync (extract + DuckDB load) after another 2% change",
}
_MIB = 1024 * 1024


@dataclass(frozen=True)
class Target:
    step: str
    metric: str  # wall_s, x_floor, rows_per_s or peak_rss_mib
    op: str  # "<=" or ">="
    limit: float
    label: str
    dialect: str | None = None

    def applies(self, dialect: str, step: str) -> bool:
        references = ("floor", "cli_ref", "arrow_ref", "sync_ref", "sync_overlap_ref", "incremental_floor", "incremental_ref",
                      "warehouse_floor_pg")  # not replicator
        return self.step in (step, "*") and self.dialect in (None, dialect) and step not in references

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value <= self.limit if self.op == "<=" else value >= self.limit


TARGETS: tuple[Target, ...] = (
    Target("full_local", "x_floor", "<=", 1.4, "<= 1.4x floor", "postgresql"),
    Target("full_local", "x_floor", "<=", 1.7, "<= 1.7x binary floor", "mariadb"),
    Target("full_local", "x_cli", "<=", 0.7, "<= 0.7x CLI ref (stand-in)", "mariadb"),
    Target("full_sync", "x_floor", "<=", 1.5, "<= 1.5x floor", "postgresql"),
    Target("full_sync", "x_floor", "<=", 2.0, "<= 2.0x binary floor", "mariadb"),
    Target("warehouse_load", "rows_per_s", ">=", 1e6, ">= 1M rows/s"),
    Target("warehouse_load_pg", "rows_per_s", ">=", 5e5, ">= 500k rows/s"),
    Target("incremental_2pct_extract", "wall_s", "<=", 1.5, "<= 1.5 s"),
    Target("incremental_2pct_sync", "wall_s", "<=", 2.5, "<= 2.5 s"),
    Target("incremental_2pct_sync", "x_ref", "<=", 2.0, "<= 2x watermark script"),
    Target("no_change", "wall_s", "<=", 0.8, "<= 0.8 s"),
    Target("*", "peak_rss_mib", "<=", 300, "RSS <= 300 MiB"),
)
# The in-process counterpart of a metric (interpreter start and imports excluded).
_IN_PROCESS = {"wall_s": "op_s", "x_floor": "op_x_floor", "rows_per_s": "op_rows_per_s"}


def _derive(step: str, raw: dict[str, Any], floor_wall: float | None, table_rows: int,
            ref_wall: float | None = None, cli_wall: float | None = None,
            incremental_floor_wall: float | None = None, incremental_ref_wall: float | None = None,
            sync_ref_wall: float | None = None) -> dict[str, Any]:
    """Per-run numbers of one step: rows, rows/s and the ratios to the same run's floors and arrow_ref.

    The incremental steps' × floor and × ref are against incremental_floor and incremental_ref (the same
    rows), the others' against the full floor and arrow_ref (full_sync: sync_ref, which loads DuckDB too).
    """
    out = dict(raw)
    if step in ("floor", "cli_ref"):
        rows = table_rows
    elif step in ("warehouse_load", "warehouse_load_pg", "warehouse_floor_pg", "incremental_2pct_load"):
        rows = raw.get("rows_loaded", 0)
    else:
        rows = raw.get("rows_read", 0)
    out["rows"] = rows
    wall, op = raw.get("wall_s"), raw.get("op_s")
    out["rows_per_s"] = rows / wall if wall and rows else None
    out["op_rows_per_s"] = rows / op if op and rows else None
    if step in ("incremental_2pct_extract", "incremental_2pct_extract_s3", "incremental_2pct_sync", "incremental_ref"):
        floor_wall = incremental_floor_wall  # the same rows read by the floor client, not the whole table
    if step.startswith("incremental_2pct"):
        ref_wall = incremental_ref_wall
    elif step == "full_sync":
        ref_wall = sync_ref_wall
    elif not step.startswith("full_"):
        ref_wall = None  # no hand-written counterpart
    out["x_floor"] = wall / floor_wall if wall and floor_wall else None
    out["op_x_floor"] = op / floor_wall if op and floor_wall else None
    out["x_ref"] = wall / ref_wall if wall and ref_wall else None
    out["x_cli"] = wall / cli_wall if wall and cli_wall and step != "cli_ref" else None
    out["startup_s"] = wall - op if wall and op is not None else None
    return out


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


_MEDIAN_KEYS = ("wall_s", "op_s", "cpu_s", "import_s", "startup_s", "rows", "rows_per_s", "op_rows_per_s", "x_floor",
                "op_x_floor", "x_ref", "x_cli", "peak_rss_mib", "bytes", "files", "rows_committed", "rows_loaded", "extract_s", "load_s",
                "server_read_mib")


def _wall(run: dict[str, Any], step: str) -> float | None:
    """The wall time of a reference step in this run, if it ran without error."""
    raw = run["steps"].get(step, {})
    return None if raw.get("error") else raw.get("wall_s")


def summarize(runs: list[dict[str, Any]], table_rows: int) -> dict[str, dict[str, dict[str, Any]]]:
    """{dialect: {step: medians over successful runs, plus `runs`, `errors`, `targets`}}."""
    per: dict[str, dict[str, list[dict[str, Any]]]] = {}
    errors: dict[str, dict[str, list[str]]] = {}
    for run in runs:
        floor_wall, ref_wall, cli_wall, incremental_wall, incremental_ref_wall, sync_ref_wall = (
            _wall(run, s) for s in ("floor", "arrow_ref", "cli_ref", "incremental_floor", "incremental_ref", "sync_ref"))
        for step, raw in run["steps"].items():
            if raw.get("error"):
                errors.setdefault(run["dialect"], {}).setdefault(step, []).append(f"{step}, run {run['run']}: {raw['error']}")
                continue
            per.setdefault(run["dialect"], {}).setdefault(step, []).append(_derive(
                step, raw, floor_wall, table_rows, ref_wall, cli_wall, incremental_wall, incremental_ref_wall,
                sync_ref_wall))
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for dialect in dict.fromkeys([r["dialect"] for r in runs]):
        steps: dict[str, dict[str, Any]] = {}
        for step in [s for s in STEPS if s in per.get(dialect, {}) or s in errors.get(dialect, {})]:
            done = per.get(dialect, {}).get(step, [])
            medians: dict[str, Any] = {k: _median([d.get(k) for d in done]) for k in _MEDIAN_KEYS}
            medians["runs"] = len(done)
            medians["errors"] = errors.get(dialect, {}).get(step, [])
            medians["targets"] = [_evaluate(t, medians) for t in TARGETS if t.applies(dialect, step)]
            steps[step] = medians
        summary[dialect] = steps
    return summary


def _evaluate(target: Target, medians: dict[str, Any]) -> dict[str, Any]:
    value = medians.get(target.metric)
    in_process = _IN_PROCESS.get(target.metric)
    op_value = medians.get(in_process) if in_process else None
    return {"label": target.label, "metric": target.metric, "limit": target.limit, "op": target.op,
            "value": value, "met": target.met(value), "in_process_value": op_value,
            "met_in_process": target.met(op_value) if in_process else None}


def _fmt(value: float | None, spec: str = ".2f", scale: float = 1.0) -> str:
    return "–" if value is None else format(value / scale, spec)


def _rate(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1e6:.2f} M" if value >= 1e6 else f"{value / 1e3:.0f} k"


def _verdict(t: dict[str, Any]) -> str:
    word = {True: "met", False: "**not met**", None: "–"}[t["met"]]
    if t["met_in_process"] is not None and t["met_in_process"] != t["met"]:
        word += f" (in-proc: {'met' if t['met_in_process'] else 'not met'})"
    return word


def to_markdown(summary: dict[str, dict[str, dict[str, Any]]], machine: dict[str, Any], config: dict[str, Any]) -> str:
    lines = [f"# replicator benchmark, {config['started_at']}", ""]
    lines += [f"- machine: {machine['nproc']} cores ({machine['cpu_model']}), {machine['mem_gib']} GiB RAM, "
              f"{machine['kernel']}",
              f"- software: Python {machine['python']}, pyarrow {machine['pyarrow']}, duckdb {machine['duckdb']}, "
              f"SQLAlchemy {machine['sqlalchemy']}, psycopg2 {machine['psycopg2']}, "
              f"adbc-driver-postgresql {machine['adbc_postgresql']}, PyMySQL {machine['pymysql']}, "
              f"connectorx {machine['connectorx']}, moto {machine['moto']}",
              f"- replicator code measured: a copy taken at start, sha256 {machine['replicator_source']['sha256']} of "
              f"{machine['replicator_source']['files']} files, newest change {machine['replicator_source']['newest_change']}",
              f"- servers: {'; '.join(f'{k}: {v}' for k, v in machine['servers'].items())}",
              f"- rows: {config['rows']:,}; runs: {config['runs']} (medians shown); "
              f"dialects: {', '.join(config['dialects'])}{'; S3 skipped' if config['skip_s3'] else ''}",
              "- wall = the child process from spawn to exit (interpreter start and imports included); "
              "in-proc = the operation alone, timed inside the child; CPU = the child's user + system time "
              "(database servers and moto not included); × floor = wall / the same run's floor wall; × CLI = wall / "
              "the same run's `mariadb` CLI wall (MariaDB); × ref = wall / "
              "the same run's arrow_ref wall (the bare driver -> ParquetWriter path, no replicator), for "
              "full_sync its sync_ref wall, for the incremental steps its incremental_ref wall; "
              "peak RSS = the child's ru_maxrss from wait4.",
              *_load_lines(machine, config),
              ""]
    for dialect, steps in summary.items():
        floor_note = ("psql `\\copy ... (format binary)` to /dev/null" if dialect == "postgresql"
                      else "`bench/mariadb_floor.c`, the binary protocol fetched and discarded in C (target 1.7x); "
                           "cli_ref: `mariadb --quick --batch` to /dev/null, the text protocol, which the issue "
                           "measured at 2.45x the binary floor, hence its stand-in target of 0.7x")
        touched = config.get("touched_rows", {}).get(dialect)
        change = f" The 2% change is one UPDATE of {touched:,} rows (id % 50 = 0)." if touched else ""
        disk = any(m.get("server_read_mib") is not None for m in steps.values())
        lines += [f"## {dialect}", "", f"floor: {floor_note}.{change}"
                  + (" server disk MiB: what InnoDB read from its data files during the step." if disk else ""), "",
                  "| step | wall s | in-proc s | CPU s | rows | rows/s | × floor | × CLI | × ref | peak RSS MiB | Parquet MiB | "
                  + ("server disk MiB | " if disk else "") + "target | met |",
                  "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|" + ("--:|" if disk else "") + "---|---|"]
        for step, m in steps.items():
            if not m["runs"]:
                lines.append(f"| {step} | error |" + " |" * (11 + disk))
                continue
            targets = m["targets"]
            lines.append(
                f"| {step} | {_fmt(m['wall_s'])} | {_fmt(m['op_s'])} | {_fmt(m['cpu_s'])} | {_fmt(m['rows'], ',.0f')} | "
                f"{_rate(m['rows_per_s'])} | {_fmt(m['x_floor']) if step != 'floor' else '1.00'} | "
                f"{_fmt(m['x_cli']) if step != 'cli_ref' else '1.00' if dialect != 'postgresql' else '–'} | {_fmt(m['x_ref'])} | "
                f"{_fmt(m['peak_rss_mib'], '.0f')} | {_fmt(m['bytes'], '.1f', _MIB) if m['bytes'] else '–'} | "
                + (f"{_fmt(m.get('server_read_mib'), '.0f')} | " if disk else "")
                + f"{'; '.join(t['label'] for t in targets) or '–'} | {'; '.join(_verdict(t) for t in targets) or '–'} |"
            )
        lines += _out_of_reach(steps)
        errors = [e for m in steps.values() for e in m["errors"]]
        if errors:
            lines += ["", "Errors:", *[f"- {e}" for e in errors]]
        lines.append("")
    return "\n".join(lines)


def _out_of_reach(steps: dict[str, dict[str, Any]]) -> list[str]:
    """Targets missed that no client could meet in this run: the same run's reference step alone misses them."""
    notes = []
    floor = steps.get("incremental_floor", {})
    for step in ("incremental_2pct_extract", "incremental_2pct_sync"):
        for t in steps.get(step, {}).get("targets", []):
            if t["metric"] == "wall_s" and t["met"] is False and (floor.get("wall_s") or 0) > t["limit"]:
                disk = floor.get("server_read_mib")
                notes.append(f"- {step} ({t['label']}): out of reach for any client in this run: the floor client "
                             f"alone needed {floor['wall_s']:.2f} s to receive the same rows (incremental_floor)"
                             + (f", for which the server read {disk:.0f} MiB from disk" if disk is not None else "") + ".")
    for step, ref_step, what in (("full_local", "arrow_ref", "the bare driver -> ParquetWriter path"),
                                 ("full_sync", "sync_ref", "the bare driver -> ParquetWriter -> DuckDB script"),
                                 ("full_sync", "sync_overlap_ref", "that script with the DuckDB load overlapped")):
        ref = steps.get(ref_step, {})
        for t in steps.get(step, {}).get("targets", []):
            if t["metric"] in ("x_floor", "x_cli") and t["met"] is False and (ref.get(t["metric"]) or 0) > t["limit"]:
                notes.append(f"- {step} ({t['label']}): out of reach for {what} too: "
                             f"{ref_step} is {ref[t['metric']]:.2f}x in this run.")
    return ["", *notes] if notes else []


def _load_lines(machine: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """The 1-minute load average before each run: other work on the machine makes every number noisier."""
    loads = config.get("load_before_runs") or []
    if not loads:
        return []
    line = f"- load average (1 min) before each run: {', '.join(f'{x:.2f}' for x in loads)}"
    if max(loads) > 0.5 * machine["nproc"]:
        line += (" (**other processes were using the CPU during the bench; wall times are noisy, "
                 "CPU s is the steadier number**)")
    return [line]


def memory_scale_markdown(results: dict[str, dict[int, list[dict[str, Any]]]], machine: dict[str, Any],
                          config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """full_sync at N and 10N rows: is the peak RSS at 10N within 10% of N's?"""
    lines = [f"# replicator memory scale, {config['started_at']}", "",
             f"- machine: {machine['nproc']} cores ({machine['cpu_model']}), Python {machine['python']}, "
             f"pyarrow {machine['pyarrow']}, duckdb {machine['duckdb']}",
             f"- replicator code measured: a copy taken at start, sha256 {machine['replicator_source']['sha256']}",
             f"- full_sync (extract to a local lake, commit, DuckDB load: `replicator sync`) at {config['rows']:,} "
             f"and {10 * config['rows']:,} rows, "
             f"{config['runs']} run(s) each, medians", ""]
    verdicts: dict[str, Any] = {}
    for dialect, by_rows in results.items():
        lines += [f"## {dialect}", "", "| rows | wall s | in-proc s | CPU s | rows/s | peak RSS MiB | Parquet MiB |",
                  "|--:|--:|--:|--:|--:|--:|--:|"]
        rss: dict[int, float | None] = {}
        for rows, raws in sorted(by_rows.items()):
            ok = [_derive("full_sync", r, None, rows) for r in raws if not r.get("error")]
            med = {k: _median([d.get(k) for d in ok]) for k in _MEDIAN_KEYS}
            rss[rows] = med["peak_rss_mib"]
            lines.append(f"| {rows:,} | {_fmt(med['wall_s'])} | {_fmt(med['op_s'])} | {_fmt(med['cpu_s'])} | "
                         f"{_rate(med['rows_per_s'])} | "
                         f"{_fmt(med['peak_rss_mib'], '.0f')} | {_fmt(med['bytes'], '.1f', _MIB)} |")
            lines += [f"| error | {r['error']} | | | | | |" for r in raws if r.get("error")]
        small, big = (rss.get(config["rows"]), rss.get(10 * config["rows"]))
        within = None if small is None or big is None else big <= small * 1.10
        growth = None if small is None or big is None else big / small - 1
        verdicts[dialect] = {"rss_small_mib": small, "rss_big_mib": big, "growth": growth, "within_10pct": within}
        lines += ["", f"Peak RSS at 10x rows vs 1x: {_fmt(growth * 100 if growth is not None else None, '+.1f')}% "
                      f"-> {'within 10%: met' if within else 'within 10%: **not met**' if within is False else '–'}", ""]
    return "\n".join(lines), verdicts


def machine_info(server_versions: dict[str, str], code: Path | None = None) -> dict[str, Any]:
    """Cores, CPU, memory, kernel, package versions, server versions and which replicator code was measured."""
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem_gib: float | None = None
    try:
        kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))
        mem_gib = round(kib / 1024 / 1024, 1)
    except (OSError, StopIteration):
        pass
    packages = {name: _version(dist) for name, dist in (
        ("pyarrow", "pyarrow"), ("duckdb", "duckdb"), ("sqlalchemy", "SQLAlchemy"), ("psycopg2", "psycopg2-binary"),
        ("pymysql", "PyMySQL"), ("adbc_postgresql", "adbc-driver-postgresql"), ("connectorx", "connectorx"), ("boto3", "boto3"), ("moto", "moto"))}
    return {"nproc": len(os.sched_getaffinity(0)), "cpu_model": cpu, "mem_gib": mem_gib,
            "kernel": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            **packages, "servers": server_versions, "replicator_source": source_digest(code)}


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def source_digest(root: Path | None = None) -> dict[str, Any]:
    """A digest of replicator/**/*.py and its newest change: the library is edited while benchmarks run."""
    root = root or Path(__file__).resolve().parent.parent / "replicator"
    files = sorted(root.rglob("*.py"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    newest = max((p.stat().st_mtime for p in files), default=0.0)
    return {"sha256": digest.hexdigest()[:12], "files": len(files),
            "newest_change": dt.datetime.fromtimestamp(newest, dt.timezone.utc).isoformat(timespec="seconds")}


def write_outputs(out_dir: Path, name: str, markdown: str, payload: dict[str, Any], latest: str = "latest",
                  echo: Callable[[str], None] = print) -> tuple[Path, Path]:
    """<out>/<name>.md and .json, copied to <latest>.md and <latest>.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, json_path = out_dir / f"{name}.md", out_dir / f"{name}.json"
    text = json.dumps(payload, indent=2, default=str)
    for path, content in ((md_path, markdown), (out_dir / f"{latest}.md", markdown), (json_path, text),
                          (out_dir / f"{latest}.json", text)):
        path.write_text(content if content.endswith("\n") else content + "\n")
    echo(f"wrote {md_path} and {json_path} (also {latest}.md, {latest}.json)")
    return md_path, json_path


def timestamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
