"""The `replicator` command."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__, native_memory
from .errors import ConfigError, ReplicatorError
from .runner import Replicator

log = logging.getLogger("replicator")


def _print_progress(table: str, rows: int, rate: float) -> None:
    print(f"  {table}: {rows:,} rows so far ({rate:,.0f} rows/s)", file=sys.stderr, flush=True)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of tables, 1 or more")
    return value


def _checked_names(rep: Replicator, args: argparse.Namespace) -> list[str]:
    """The tables named (default all); an unknown name is a ConfigError before any table is touched."""
    names = args.names or list(rep.project.tables)
    for name in names:
        rep.project.table(name)
    return list(names)


def _fmt(value: Any) -> str:
    return "-" if value is None else str(value)


def cmd_sync(rep: Replicator, args: argparse.Namespace) -> int:
    names = _checked_names(rep, args)
    failed = 0
    for name, result in rep.sync_many(names, full_refresh=args.full_refresh, progress=_print_progress,
                                      workers=args.jobs):
        if isinstance(result, ReplicatorError):
            failed += 1
            print(f"{name}: FAILED: {result}", file=sys.stderr, flush=True)
            continue
        e, ld = result.extract, result.load
        batch = f"batch {e.batch_id}" if e.committed else "no new batch"
        nulls = f", {e.null_watermarks:,} NULL watermarks" if e.null_watermarks else ""
        print(
            f"{name}: {e.rows_read:,} rows extracted, {e.rows_committed:,} committed{nulls}, {batch}, "
            f"watermark {_fmt(e.watermark_after)}, {e.duration_s:.2f}s; "
            f"warehouse: {ld.rows_loaded:,} rows loaded, {_fmt(ld.rows_in_table)} rows in table",
            flush=True,
        )
        c = result.compaction
        if c is not None and c.batch_id is not None:
            print(f"{name}: compacted {c.files_before:,} files into {c.files_after:,} (batch {c.batch_id}, "
                  "compaction.max_files_per_partition)", flush=True)
        if e.catalog_behind:
            print(f"{name}: the Iceberg catalog is behind the lake (`replicator publish {name}` catches up): "
                  f"{e.catalog_behind}", file=sys.stderr, flush=True)
    if failed:
        print(f"{failed} of {len(names)} tables failed", file=sys.stderr)
    return 1 if failed else 0


def cmd_publish(rep: Replicator, args: argparse.Namespace) -> int:
    rep.require_iceberg()  # before any table: a missing lake.iceberg is one ConfigError (exit 2)
    names = args.names or list(rep.project.tables)
    failed = 0
    for name in names:
        try:
            result = rep.publish(name, rebuild=args.rebuild)
        except ReplicatorError as exc:
            failed += 1
            print(f"{name}: FAILED: {exc}", file=sys.stderr, flush=True)
            continue
        done = f"published batches {result.published}" if result.published else "up to date"
        print(f"{name}: {done}; Iceberg {result.identifier} at batch {result.last_batch_id}, "
              f"snapshot {_fmt(result.snapshot_id)}", flush=True)
    return 1 if failed else 0


def cmd_status(rep: Replicator, args: argparse.Namespace) -> int:
    rows = []
    names = _checked_names(rep, args)
    for s in rep.statuses(names):
        name = s.table
        rows.append({"table": name, "last_batch_id": s.last_batch_id, "watermark": _fmt(s.watermark),
                     "last_sync_at": s.last_sync_at, "lake_rows": s.lake_rows, "lake_bytes": s.lake_bytes,
                     "lake_files": s.lake_files, "warehouse_rows": s.warehouse_rows,
                     "warehouse_batch_id": s.warehouse_batch_id})
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    headers = list(rows[0]) if rows else []
    widths = {h: max(len(h), *(len(_fmt(r[h])) for r in rows)) for h in headers}
    print("  ".join(h.ljust(widths[h]) for h in headers))
    for r in rows:
        print("  ".join(_fmt(r[h]).ljust(widths[h]) for h in headers))
    return 0


def cmd_reconcile(rep: Replicator, args: argparse.Namespace) -> int:
    differ = 0
    for name in args.names or list(rep.project.tables):
        try:
            r = rep.reconcile(name, apply_deletes=args.apply_deletes)
        except ReplicatorError as exc:
            differ += 1
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
            continue
        head = (f"{name}: source {r.source_rows:,} rows, lake {r.lake_rows:,}, warehouse {_fmt(r.warehouse_rows)}"
                f" ({r.buckets} key buckets, {r.seconds:.2f}s)")
        if r.matches:
            print(f"{head}: match")
            continue
        differ += 1
        print(f"{head}: DIFFERENT")
        if r.differing:
            summary = r.differing[0]
            print(f"  {len(r.differing) - 1} buckets differ: {', '.join(str(d.bucket) for d in r.differing[1:][:20])}")
            print(f"  missing in the lake (not synced yet?): {summary.missing_in_lake or '-'}")
            print(f"  gone from the source (deleted?): {summary.gone_from_source or '-'}")
            print(f"  watermark differs: {summary.changed or '-'}")
        if r.warehouse_rows is not None and r.warehouse_rows != r.lake_rows:
            print(f"  warehouse has {r.warehouse_rows:,} rows, the lake's current state {r.lake_rows:,}")
        if args.apply_deletes and r.deleted_keys:
            print(f"  committed deletion markers for {len(r.deleted_keys):,} keys")
    return 1 if differ else 0


def cmd_compact(rep: Replicator, args: argparse.Namespace) -> int:
    from .config import parse_duration

    retention = parse_duration(args.retention)
    for name in args.names or list(rep.project.tables):
        r = rep.compact(name, retention)
        done = f"batch {r.batch_id}" if r.batch_id else "nothing to rewrite"
        print(f"{name}: {r.files_before} files ({r.rows_before:,} row versions) -> {r.files_after} files "
              f"({r.rows_after:,} rows), {done}; {r.removed_history_files} history files past {args.retention} removed")
    return 0


def cmd_validate(rep: Replicator, args: argparse.Namespace) -> int:
    from .validate import validate_live

    problems = validate_live(rep)
    for line in problems:
        print(line, file=sys.stderr)
    if not problems:
        print(f"ok: {len(rep.project.tables)} tables in {rep.project.schemas_dir} are valid against their sources")
    return 1 if problems else 0


def cmd_onboard(rep: Replicator, args: argparse.Namespace) -> int:
    from .onboard import onboard_table, update_columns

    if args.update:
        path, added = update_columns(rep, args.update)
        print(f"{path}: added {', '.join(added)}" if added else f"{path}: columns already match the source")
        return 0
    if not args.source or not args.table:
        print("error: onboard needs SOURCE and TABLE (or --update NAME)", file=sys.stderr)
        return 2
    path = onboard_table(rep, args.source, args.table, name=args.name)
    print(f"wrote {path}")
    return 0


def cmd_snapshot(rep: Replicator, args: argparse.Namespace) -> int:
    import datetime as dt

    import pyarrow.parquet as pq

    as_of: int | dt.datetime | None = None
    if args.as_of:
        as_of = int(args.as_of) if args.as_of.isdigit() else dt.datetime.fromisoformat(args.as_of)
    data = rep.read_table(args.name, as_of=as_of)
    pq.write_table(data, args.out, compression="zstd")
    print(f"wrote {data.num_rows:,} rows of {args.name} to {args.out}")
    return 0


def cmd_unlock(rep: Replicator, args: argparse.Namespace) -> int:
    holder = rep.unlock(args.name, force=args.force)
    if holder is None:
        print(f"{args.name}: no lease; nothing to do")
        return 0
    print(f"{args.name}: removed the lease of run {holder.get('run_id')} (host {holder.get('host')}, "
          f"pid {holder.get('pid')}, acquired {holder.get('acquired_at')})")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo_run import run_demo

    return run_demo(Path(args.dir))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="replicator", description="Incremental replication of OLTP tables into a Parquet lake and a warehouse.")
    parser.add_argument("--project", help="path of replicator.yml (default: $REPLICATOR_PROJECT, else ./replicator.yml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and decisions")
    parser.add_argument("--version", action="version", version=f"replicator {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="check every YAML file against the model and the live source")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("sync", help="sync tables (default: all): source -> lake -> warehouse")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--full-refresh", action="store_true", help="re-read whole tables; the new batch replaces the old")
    p.add_argument("-j", "--jobs", type=_positive, default=None, metavar="N",
                   help="tables extracted at once (default: defaults.max_concurrent_tables, else the CPUs, at most 4)")
    p.set_defaults(func=cmd_sync)
    p = sub.add_parser("publish", help="publish committed lake batches to the Iceberg catalog (lake.iceberg)")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--rebuild", action="store_true",
                   help="drop the table's Iceberg metadata (not its files) and publish again from the manifests")
    p.set_defaults(func=cmd_publish)
    p = sub.add_parser("status", help="per table: watermark, batches, lake and warehouse rows")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("reconcile", help="compare source and lake (and warehouse) per table, by hashed key buckets")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--apply-deletes", action="store_true",
                   help="commit _deleted markers for keys gone from the source (within delete_guard)")
    p.set_defaults(func=cmd_reconcile)
    p = sub.add_parser("compact", help="rewrite small lake files into a snapshot batch; drop history past retention")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--retention", default="7d", help="keep time travel for this long (default 7d)")
    p.set_defaults(func=cmd_compact)
    p = sub.add_parser("onboard", help="write schemas/<name>.yml for a source table (or --update an existing one)")
    p.add_argument("source", nargs="?")
    p.add_argument("table", nargs="?")
    p.add_argument("--name")
    p.add_argument("--update", metavar="NAME", help="add the source's new columns to NAME's `columns:` list")
    p.set_defaults(func=cmd_onboard)
    p = sub.add_parser("snapshot", help="export a table's state after a batch (or at a UTC time) to Parquet")
    p.add_argument("name")
    p.add_argument("--as-of", help="batch id or ISO UTC timestamp (default: latest)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_snapshot)
    p = sub.add_parser("unlock", help="remove the lease a dead run left on a table (runs on this machine need not)")
    p.add_argument("name")
    p.add_argument("--force", action="store_true", help="even if the holder still runs on this machine")
    p.set_defaults(func=cmd_unlock)
    p = sub.add_parser("demo", help="run the embedded demo (SQLite -> local lake -> DuckDB), no server needed")
    p.add_argument("--dir", default="replicator-demo", help="folder for the demo (default: ./replicator-demo)")
    p.set_defaults(func=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "demo":
            return cmd_demo(args)
        with Replicator.from_path(args.project) as rep:
            return int(args.func(rep, args))
    except ConfigError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    except ReplicatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run() -> None:
    """The console script: `main`, then exit without the interpreter's final garbage collection.

    That collection walks every object the imports created (SQLAlchemy, pydantic, pyarrow) only to
    free memory the OS takes back anyway: 0.09 s of every command (bench/, MariaDB full extract,
    4 runs: 0.10 s from the end of the work to the process's exit, 0.02 s with the objects frozen).
    Everything the command wrote is closed by then; `main` itself stays side-effect free for callers.
    """
    native_memory.allow_process_tuning()  # this process is the command's own, unlike an embedder's
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
