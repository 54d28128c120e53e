"""`replicator demo`: build the sample source, sync it fully, change it, sync incrementally, show what landed."""

from __future__ import annotations

import sys
from pathlib import Path

from .demo import write_demo_project
from .demo_data import create_demo_database, mutate_demo_database
from .runner import Replicator

__all__ = ["run_demo"]


def _sync_all(rep: Replicator, title: str) -> None:
    print(f"\n== {title}")
    for name in rep.project.tables:
        result = rep.sync(name)
        e, ld = result.extract, result.load
        batch = f"batch {e.batch_id}" if e.committed else "no new batch"
        print(f"  {name:<9} {e.rows_read:>6,} rows read, {e.rows_committed:>6,} committed ({batch}, {e.files} files); "
              f"warehouse {ld.rows_in_table:,} rows")


def run_demo(folder: Path) -> int:
    folder = folder.resolve()
    try:
        write_demo_project(folder)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = create_demo_database(folder / "app.db")
    print(f"created the sample ride-hailing database {folder / 'app.db'}: "
          + ", ".join(f"{n} {t}" for t, n in counts.items()))
    with Replicator.from_path(folder / "replicator.yml") as rep:
        _sync_all(rep, "full sync")
        changes = mutate_demo_database(folder / "app.db")
        print("\n== source changes: " + ", ".join(f"{k} {v}" for k, v in changes.items() if v))
        _sync_all(rep, "incremental sync")
        _show(rep, folder)
    return 0


def _show(rep: Replicator, folder: Path) -> None:
    import duckdb

    lake = folder / "lake"
    partitions = sorted(p.name for p in (lake / "rides").iterdir() if p.name.startswith("dt="))
    print(f"\n== lake {lake}: rides in {len(partitions)} daily partitions ({partitions[0]} .. {partitions[-1]})")
    for name in rep.project.tables:
        s = rep.status(name)
        print(f"  {name:<9} batches up to {s.last_batch_id}, {s.lake_rows:,} rows in {s.lake_files} files "
              f"({s.lake_bytes / 1024:,.0f} KiB), watermark {s.watermark}")
    warehouse = folder / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        print(f"\n== warehouse {warehouse}: completed rides and revenue per city")
        for city, n, revenue in con.execute(
            "SELECT c.name, count(*), sum(r.price) FROM raw.rides r JOIN raw.cities c ON c.id = r.city_id "
            "WHERE r.status = 'completed' GROUP BY 1 ORDER BY 3 DESC LIMIT 5"
        ).fetchall():
            print(f"  {city:<18} {n:>6,} rides  {revenue:>12,.2f}")
    finally:
        con.close()
    print(f"\nread the lake:  python -c \"import pyarrow.dataset as ds; print(ds.dataset('{lake}/rides', "
          "partitioning='hive').to_table().num_rows)\"")
    if rep.project.config.lake.iceberg is not None:
        current = rep.project.config.lake.iceberg.current
        print(f"read Iceberg:   python -c \"from pyiceberg.catalog.sql import SqlCatalog; "  # noqa: S608 - printed
              f"t = SqlCatalog('replicator', uri='sqlite:///{folder / 'iceberg.db'}').load_table('{current}.rides'); "
              "rides = t.scan().to_arrow(); import duckdb; "
              "print(duckdb.sql('SELECT status, count(*) AS rides FROM rides GROUP BY 1 ORDER BY 2 DESC'))\"  "
              "(the current state, one row per ride; every "
              f"row version: {rep.project.config.lake.iceberg.namespace}.rides)")
    print(f"project file:   {folder / 'replicator.yml'}  (try: replicator --project {folder} status)")
