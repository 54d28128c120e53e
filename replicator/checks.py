"""Health checks of one table, as data: row-count parity, freshness, schema drift.

The Dagster layer shows them as asset checks; anything else can call them too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from .config import TableConfig
from .current_state import CurrentStateRule
from .errors import ReplicatorError
from .runner import Replicator

__all__ = ["CheckOutcome", "check_freshness", "check_iceberg_published", "check_reconciliation", "check_row_count_parity", "check_schema_drift",
           "lake_current_keys"]

_SAMPLE = 5


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def lake_current_keys(rep: Replicator, name: str) -> pa.Table:
    """The distinct primary keys of the lake's current state (reads key columns only)."""
    table = rep.project.table(name)
    rep.recover(name)
    lake = rep.table_lake(name)
    manifests = lake.active()
    schema = manifests[-1].schema if manifests else None
    rule = CurrentStateRule.of(table)
    keys = lake.read([f for m in manifests for f in m.files], rule.columns, schema)
    return rule.current(keys).select(list(table.primary_key))


def _key_set(data: pa.Table, key: Sequence[str]) -> set[tuple[Any, ...]]:
    columns = [data.column(k).to_pylist() for k in key]
    return set(zip(*columns))


def check_row_count_parity(rep: Replicator, name: str) -> CheckOutcome:
    """Warehouse rows == lake current-state rows (and == source rows for full tables)."""
    table = rep.project.table(name)
    lake_keys = lake_current_keys(rep, name)
    lake_rows = lake_keys.num_rows
    warehouse_rows = rep.warehouse.row_count(name)
    meta: dict[str, Any] = {"lake_current_rows": lake_rows, "warehouse_rows": warehouse_rows}
    problems = []
    if warehouse_rows is None:
        problems.append(f"warehouse table {rep.warehouse.schema}.{name} does not exist yet")
    elif warehouse_rows != lake_rows:
        warehouse_keys = rep.warehouse.keys(name, table.primary_key)
        lake_set, wh_set = _key_set(lake_keys, table.primary_key), _key_set(warehouse_keys, table.primary_key)
        missing, extra = sorted(lake_set - wh_set)[:_SAMPLE], sorted(wh_set - lake_set)[:_SAMPLE]
        problems.append(
            f"warehouse {rep.warehouse.schema}.{name} has {warehouse_rows:,} rows, the lake's current state "
            f"{lake_rows:,}; {len(lake_set - wh_set):,} keys missing from the warehouse (e.g. {missing}), "
            f"{len(wh_set - lake_set):,} extra (e.g. {extra})"
        )
    if table.replication == "full":
        source_rows = rep.source(table.source).count_rows(table)
        meta["source_rows"] = source_rows
        if source_rows != lake_rows:
            problems.append(f"source {table.table} has {source_rows:,} rows, the lake's current state {lake_rows:,}")
    if problems:
        return CheckOutcome(False, "; ".join(problems), meta)
    return CheckOutcome(True, f"warehouse and lake agree: {lake_rows:,} rows", meta)


def check_freshness(rep: Replicator, name: str, now: dt.datetime | None = None) -> CheckOutcome:
    """The last successful sync finished within the table's `freshness` (or the project default)."""
    table = rep.project.table(name)
    limit = table.freshness or rep.project.config.defaults.freshness
    record = rep.table_lake(name).last_sync()
    if record is None:
        return CheckOutcome(False, f"table {name!r} has never been synced (freshness limit {limit})", {"limit_s": limit.total_seconds()})
    finished = dt.datetime.fromisoformat(record.finished_at)
    age = (now or dt.datetime.now(dt.timezone.utc)) - finished
    meta = {"last_sync_at": record.finished_at, "age_s": round(age.total_seconds(), 1), "limit_s": limit.total_seconds()}
    if age > limit:
        return CheckOutcome(False, f"last successful sync of {name!r} finished {_human(age)} ago, more than the allowed {_human(limit)}", meta)
    return CheckOutcome(True, f"last successful sync {_human(age)} ago (limit {_human(limit)})", meta)


def check_iceberg_published(rep: Replicator, name: str) -> CheckOutcome:
    """The table's Iceberg table has recorded the lake's latest committed batch (`lake.iceberg`)."""
    if rep.iceberg is None:
        return CheckOutcome(True, "Iceberg publication is off (lake.iceberg is not set)", {})
    latest = rep.table_lake(name).latest()
    lake_batch = latest.seq if latest else 0
    published = rep.iceberg.published_batch(name)
    meta = {"lake_batch": lake_batch, "iceberg_batch": published, "iceberg_table": rep.iceberg.identifier(name)}
    if published < lake_batch:
        return CheckOutcome(False, f"Iceberg {rep.iceberg.identifier(name)} is at batch {published}, the lake at "
                                   f"{lake_batch}: the next sync or `replicator publish {name}` catches up", meta)
    return CheckOutcome(True, f"Iceberg {rep.iceberg.identifier(name)} is at the lake's batch {lake_batch}", meta)


def check_schema_drift(rep: Replicator, name: str) -> CheckOutcome:
    """Source columns the YAML does not list, and listed columns the source no longer has."""
    table: TableConfig = rep.project.table(name)
    source = rep.source(table.source)
    try:
        with source.connect() as conn:
            source_columns = [c["name"] for c in source.reflect(conn, table)]
    except ReplicatorError as exc:
        return CheckOutcome(False, str(exc))
    if table.columns is not None:
        expected = list(table.columns)
    else:
        manifests = rep.table_lake(name).active()
        expected = [f.name for f in manifests[-1].schema if not f.name.startswith("_")] if manifests else source_columns
    added = [c for c in source_columns if c not in expected]
    gone = [c for c in expected if c not in source_columns]
    meta = {"source_columns": len(source_columns), "added": added, "gone": gone}
    if not added and not gone:
        return CheckOutcome(True, f"the source's {len(source_columns)} columns match", meta)
    parts = []
    if added:
        parts.append(f"source has columns not in {name}.yml: {', '.join(added)}")
    if gone:
        parts.append(f"columns gone from the source: {', '.join(gone)}")
    return CheckOutcome(False, "; ".join(parts), meta)


def check_reconciliation(rep: Replicator, name: str) -> CheckOutcome:
    """Source and lake agree per hashed key bucket (keys and watermarks), and the warehouse row count too."""
    report = rep.reconcile(name)
    meta = {"source_rows": report.source_rows, "lake_rows": report.lake_rows,
            "warehouse_rows": report.warehouse_rows, "buckets": report.buckets, "seconds": round(report.seconds, 2)}
    if report.matches:
        return CheckOutcome(True, f"source and lake agree on {report.lake_rows:,} keys", meta)
    parts = []
    if report.differing:
        s = report.differing[0]
        parts.append(f"{len(report.differing) - 1} key buckets differ; missing in the lake {s.missing_in_lake}, "
                     f"gone from the source {s.gone_from_source}, watermark differs {s.changed}")
    if report.warehouse_rows is not None and report.warehouse_rows != report.lake_rows:
        parts.append(f"warehouse {report.warehouse_rows:,} rows vs lake {report.lake_rows:,}")
    return CheckOutcome(False, "; ".join(parts), meta)


def _human(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds}s"


