"""One measured step, run in its own process: `python -m bench.step STEP [options]`.

The parent times this whole process (interpreter start included) and reads its peak RSS from
`os.wait4`. The process itself reports, as one JSON line prefixed with `RESULT_PREFIX` on stdout, what
only it can see: rows, files and bytes, how long its imports took and how long the operation took.

Steps:
  floor    --dialect D --table T [--binary F] [--since TS]
                                            the reference read of the table, discarded: psql binary COPY;
                                            for MariaDB the C binary-protocol floor F (bench/mariadb_floor.c)
                                            or, without --binary, the `mariadb` CLI (text protocol); with
                                            --since, only the rows with updated_at >= TS (an incremental read)
  arrow_ref --dialect D --table T --out F [--since TS]
                                            the bare Arrow-native path, no replicator: the driver's record
                                            batches (ADBC on PostgreSQL, connectorx on MariaDB) straight into
                                            one ParquetWriter, zstd, in one thread; with --since, only the
                                            rows with updated_at >= TS (the hand-written watermark script)
  arrow_ref ... --warehouse W               then, in the same process, DuckDB's CREATE TABLE AS SELECT of that
                                            file into the new DuckDB file W: a hand-written whole sync
  arrow_ref ... --warehouse W --overlap     instead, DuckDB appends the same batches into W on a thread of its
                                            own while the file is written: the whole sync overlapped by hand
  extract  --project P                      Replicator.extract("rides")
  load     --project P                      Replicator.load("rides") (lake -> the project's warehouse)
  sync     --project P                      Replicator.sync("rides") (extract, then load)
  warehouse_floor_pg --url U --schema S     the PostgreSQL warehouse's own floor: S.rides (just loaded by
                                            replicator) dumped with binary COPY, then, timed, binary COPY of
                                            that file into a fresh copy of the table (same types, same key)
"""

from __future__ import annotations

import time

_STARTED = time.perf_counter()  # before any import below, so import time is measured

import argparse  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

__all__ = ["RESULT_PREFIX", "TABLE", "floor_command", "floor_query", "main"]

RESULT_PREFIX = "BENCH-RESULT "
TABLE = "rides"  # the replicator table name (YAML file stem) in every bench project
_DATABASE = "replicator_bench"  # bench.dataset.DATABASE; not imported so `floor` loads no driver


def floor_query(table: str, since: str | None = None) -> str:
    """`select *` of the table, or of its rows changed since `since` (an ISO timestamp, re-rendered here)."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", table):
        raise ValueError(f"table {table!r}: the bench uses plain lower-case names only")
    if since is None:
        return f"select * from {table}"  # noqa: S608 - name checked above
    stamp = datetime.datetime.fromisoformat(since).isoformat(sep=" ")  # raises on anything but a timestamp
    return f"select * from {table} where updated_at >= '{stamp}'"  # noqa: S608 - both checked above


def floor_command(dialect: str, table: str, since: str | None = None) -> list[str]:
    """The reference read of `table` (or of its rows changed since `since`) by the database's own client."""
    select = floor_query(table, since)
    if dialect == "postgresql":
        return ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", _DATABASE, "-X", "-q", "-c",
                f"\\copy ({select}) to '/dev/null' (format binary)"]
    if dialect == "mariadb":
        # Text protocol: the issue measured it at 2.45x the binary floor, hence the 0.7x target against it.
        return ["mariadb", "-h", "127.0.0.1", "-uroot", "--quick", "--batch", "-e", select, _DATABASE]
    raise ValueError(f"unknown dialect {dialect!r}")


def _floor(args: argparse.Namespace) -> dict[str, Any]:
    command = floor_command(args.dialect, args.table, args.since)
    if args.binary:
        if args.dialect != "mariadb":
            raise ValueError("--binary is the MariaDB floor")
        command = [args.binary, "127.0.0.1", "3306", _DATABASE, floor_query(args.table, args.since)]
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"floor command failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()}")
    return {"op_s": time.perf_counter() - started, "import_s": 0.0}


def _arrow_ref(args: argparse.Namespace) -> dict[str, Any]:
    """The path the issue measured fastest (1.29x / 1.57x its binary floors), as a same-run baseline.

    No conforming to exact types, no commit, no lake columns: what a hand-written script would do.
    """
    imported = time.perf_counter()
    import pyarrow.parquet as pq

    query = floor_query(args.table, args.since)
    if args.dialect == "postgresql":
        import adbc_driver_postgresql.dbapi as adbc_pg

        conn = adbc_pg.connect(f"postgresql://postgres@127.0.0.1:5432/{_DATABASE}", autocommit=True)
        cursor = conn.cursor()
        started = time.perf_counter()
        cursor.execute(query)
        batches = cursor.fetch_record_batch()
    else:
        import connectorx

        conn = None
        started = time.perf_counter()
        batches = connectorx.read_sql(f"mysql://root@127.0.0.1:3306/{_DATABASE}", query,
                                      return_type="arrow_stream", batch_size=50_000)
    writer, rows = None, 0
    loader = _OverlappedLoad(args.warehouse) if args.overlap else None
    for batch in batches:
        if writer is None:
            strings = [f.name for f in batch.schema if str(f.type) in ("string", "large_string")]
            writer = pq.ParquetWriter(args.out, batch.schema, compression="zstd", use_dictionary=strings or False)
        if loader is not None:
            loader.add(batch)
        writer.write_batch(batch)
        rows += batch.num_rows
    if writer is not None:
        writer.close()
    if conn is not None:
        cursor.close()
        conn.close()
    out = {"op_s": time.perf_counter() - started, "import_s": started - imported, "rows_read": rows,
           "bytes": os.path.getsize(args.out) if writer is not None else 0}
    if loader is not None:
        waited = time.perf_counter()
        loader.finish()
        out.update(op_s=time.perf_counter() - started, load_s=time.perf_counter() - waited, rows_loaded=loader.rows)
    elif args.warehouse and writer is not None:
        import duckdb

        loading = time.perf_counter()
        with duckdb.connect(args.warehouse) as con:
            con.execute("CREATE TABLE rides AS SELECT * FROM read_parquet(?)", [args.out])
        out.update(op_s=time.perf_counter() - started, load_s=time.perf_counter() - loading, rows_loaded=rows)
    return out


class _OverlappedLoad:
    """DuckDB appends the driver's batches on a thread of its own while the caller writes the Parquet file:
    the warehouse load overlapped with the extract, as well as a hand-written script can overlap it.

    Batches go over in DuckDB's own row groups (122,880 rows) through a queue of two, so at most three
    groups wait in memory; `finish` waits for the last append.
    """

    _GROUP_ROWS = 122_880

    def __init__(self, path: str) -> None:
        import queue
        import threading

        import duckdb

        self.rows = 0
        self._pending: list[Any] = []
        self._pending_rows = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._con = duckdb.connect(path)
        self._con.execute("SET preserve_insertion_order = false")
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._append, name="overlapped-load")
        self._thread.start()

    def add(self, batch: Any) -> None:
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= self._GROUP_ROWS:
            self._send()

    def finish(self) -> None:
        if self._pending:
            self._send()
        self._queue.put(None)
        self._thread.join()
        self._con.close()
        if self._error is not None:
            raise self._error

    def _send(self) -> None:
        import pyarrow as pa

        self._queue.put(pa.Table.from_batches(self._pending))
        self._pending, self._pending_rows = [], 0

    def _append(self) -> None:
        created = False
        while (table := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain, so the producer never blocks on a dead consumer
            try:
                self._con.register("incoming", table)
                self._con.execute("INSERT INTO rides SELECT * FROM incoming" if created else
                                  "CREATE TABLE rides AS SELECT * FROM incoming")
                self._con.unregister("incoming")
                created = True
                self.rows += table.num_rows
            except BaseException as exc:  # noqa: BLE001 - re-raised by finish() in the caller's thread
                self._error = exc


def _warehouse_floor_pg(args: argparse.Namespace) -> dict[str, Any]:
    """What the server itself takes to COPY the loaded rows into an identical table with its primary key."""
    import tempfile

    import psycopg2

    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.schema):
        raise ValueError(f"schema {args.schema!r}: the bench uses plain lower-case names only")
    table, floor = f'"{args.schema}".{TABLE}', f'"{args.schema}".{TABLE}_floor'
    with tempfile.NamedTemporaryFile(suffix=".pgcopy") as dump, psycopg2.connect(args.url) as con:
        with con.cursor() as cur:
            cur.execute(f"CREATE TABLE {floor} (LIKE {table} INCLUDING ALL)")
            cur.copy_expert(f"COPY {table} TO STDOUT (FORMAT binary)", dump)
            cur.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - names checked above
            rows = int(cur.fetchone()[0])
        con.commit()
        dump.flush()
        dump.seek(0)
        started = time.perf_counter()
        with con.cursor() as cur:
            cur.copy_expert(f"COPY {floor} FROM STDIN (FORMAT binary)", dump)
        con.commit()
        op_s = time.perf_counter() - started
    return {"op_s": op_s, "import_s": 0.0, "rows_loaded": rows}


def _replicator_step(args: argparse.Namespace) -> dict[str, Any]:
    imported = time.perf_counter()
    import replicator.__main__  # noqa: F401 - the `replicator` command's process settings, before any allocation
    from replicator import Replicator, native_memory
    from replicator.extract import ExtractResult
    from replicator.runner import LoadResult

    native_memory.allow_process_tuning()  # as the `replicator` command does: the steps measure it
    started = time.perf_counter()
    out: dict[str, Any] = {"import_s": started - imported, "replicator_from": replicator.__file__}
    with Replicator.from_path(args.project) as rep:
        extracted: ExtractResult | None = None
        loaded: LoadResult | None = None
        if args.step == "extract":
            extracted = rep.extract(TABLE)
        elif args.step == "load":
            loaded = rep.load(TABLE)
        else:
            synced = rep.sync(TABLE)
            extracted, loaded = synced.extract, synced.load
        out["op_s"] = time.perf_counter() - started
    if extracted is not None:
        out.update(rows_read=extracted.rows_read, rows_committed=extracted.rows_committed,
                   committed=extracted.committed, batch_id=extracted.batch_id, files=extracted.files,
                   bytes=extracted.bytes, extract_s=extracted.duration_s)
    if loaded is not None:
        out.update(rows_loaded=loaded.rows_loaded, rows_in_table=loaded.rows_in_table,
                   batches_loaded=loaded.batches, load_s=loaded.duration_s)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.step", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["floor", "arrow_ref", "extract", "load", "sync", "warehouse_floor_pg"])
    parser.add_argument("--url", help="warehouse_floor_pg: the PostgreSQL warehouse")
    parser.add_argument("--schema", help="warehouse_floor_pg: its schema holding the loaded rides")
    parser.add_argument("--project", help="replicator.yml of the bench project (extract, load, sync)")
    parser.add_argument("--dialect", help="postgresql or mariadb (floor)")
    parser.add_argument("--table", default=TABLE, help="source table (floor, arrow_ref)")
    parser.add_argument("--out", help="the Parquet file arrow_ref writes")
    parser.add_argument("--warehouse", help="arrow_ref: also load the file into this new DuckDB file")
    parser.add_argument("--overlap", action="store_true",
                        help="arrow_ref --warehouse: append to DuckDB on a thread while the file is written")
    parser.add_argument("--binary", help="floor: the compiled MariaDB binary-protocol floor")
    parser.add_argument("--since", help="floor, arrow_ref: read only rows with updated_at >= this ISO timestamp")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    if args.step == "floor":
        result = _floor(args)
    elif args.step == "warehouse_floor_pg":
        if not (args.url and args.schema):
            parser.error("warehouse_floor_pg needs --url and --schema")
        result = _warehouse_floor_pg(args)
    elif args.step == "arrow_ref":
        if not (args.dialect and args.out):
            parser.error("arrow_ref needs --dialect and --out")
        if args.overlap and not args.warehouse:
            parser.error("arrow_ref --overlap needs --warehouse")
        result = _arrow_ref(args)
    else:
        if not args.project:
            parser.error(f"{args.step} needs --project")
        result = _replicator_step(args)
        # The replicator command exits this way (replicator.cli.run): no final collection of the
        # imports' objects. Measuring the step as that command runs it.
        gc.freeze()
    result["step"] = args.step
    result["process_s"] = time.perf_counter() - _STARTED
    result["self_maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
