"""Extract: source -> staged Parquet parts -> one committed lake batch (see lake/batch.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from . import watermark as wm
from .catalog import Project
from .config import TableConfig
from .current_state import CurrentStateRule
from .errors import SourceError
from .evolution import evolve
from .lake import LakeStore, Manifest
from .lake.partitioning import Layout
from .lake.table import SyncRecord, TableLake
from .reading import ReadRequest, TableSchema
from .rereads import drop_unchanged
from .streams import prefetch

if TYPE_CHECKING:
    from .iceberg import PublishResult
    from .sources import SqlSource

__all__ = ["ExtractResult", "Progress", "extract_table", "lake_schema"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, float], None]
"""Called as progress(table, rows_so_far, rows_per_second) during long reads."""

_PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True, kw_only=True)
class ExtractResult:
    table: str
    committed: bool
    batch_id: int | None
    rows_read: int
    rows_committed: int
    watermark_before: Any
    watermark_after: Any
    files: int
    bytes: int
    lake_path: str
    duration_s: float
    null_watermarks: int = 0
    mode: str = "incremental"
    partitions: list[str] = field(default_factory=list)
    # Set by `Replicator.extract` when `lake.iceberg` is on: what was published, or why the catalog is behind.
    published: PublishResult | None = None
    catalog_behind: str | None = None


def lake_schema(schema: TableSchema) -> pa.Schema:
    """The source columns plus _batch_id, _loaded_at and _deleted: every new lake file has exactly this."""
    return (schema.arrow.append(pa.field("_batch_id", pa.int64(), nullable=False))
            .append(pa.field("_loaded_at", pa.timestamp("us", tz="UTC"), nullable=False))
            .append(pa.field("_deleted", pa.bool_(), nullable=False)))


def _target_schema(name: str, table: TableConfig, previous: Manifest | None, current: pa.Schema) -> pa.Schema:
    """The schema of this batch: the source's, evolved from the lake's recorded one when there is one."""
    if previous is None:
        return current
    protected = [c for c in [*table.primary_key, table.watermark, *table.partition_by] if c]
    return evolve(name, previous.schema, current, policy=table.on_schema_change, protected=protected)


@dataclass
class _Plan:
    """What one run reads, decided before the read snapshot opens."""

    incremental: bool
    previous_watermark: Any
    clock: wm.SettleClock | None
    bound: Any  # wm.settle_bound: the lowest watermark value that may still gain rows
    probes: list[wm.Probe]  # integer watermarks: probes not settled yet, carried to the next batch
    request: ReadRequest
    known: pa.Table | None  # per key, the lake's latest version inside the window
    replaced: list[Manifest]  # the chain a complete read replaces

    @property
    def complete(self) -> bool:
        return self.request.lower is None


@dataclass
class _Seen:
    """Running statistics of what was read, over the effective watermark."""

    rows_read: int = 0
    rows_committed: int = 0
    null_watermarks: int = 0
    max_seen: Any = None
    key_at_max: tuple[Any, ...] | None = None

    def add(self, data: pa.Table, table: TableConfig) -> None:
        self.rows_read += data.num_rows
        if not table.watermark or data.num_rows == 0:
            return
        self.null_watermarks += data.column(table.watermark).null_count
        effective = wm.effective(data, table.watermark, table.null_fallback)
        top = pc.max(effective).as_py()
        if top is None or (self.max_seen is not None and top < self.max_seen):
            return
        at_top = data.filter(pc.fill_null(pc.equal(effective, pa.scalar(top, effective.type)), False))
        last = at_top.select(list(table.primary_key)).sort_by([(k, "descending") for k in table.primary_key]).slice(0, 1)
        key = tuple(last.column(k)[0].as_py() for k in table.primary_key)
        if self.max_seen is None or top > self.max_seen or self.key_at_max is None or key > self.key_at_max:
            self.key_at_max = key
        self.max_seen = top


def _plan(table: TableConfig, schema: TableSchema, source: SqlSource, lake: TableLake,
          previous: Manifest | None, full_refresh: bool) -> _Plan:
    name = lake.name
    incremental = table.replication == "incremental" and not full_refresh
    prev_wm = wm.decode(previous.watermark) if previous is not None and incremental else None
    kind = wm.watermark_kind(schema.column(table.watermark).arrow_type) if table.watermark else None
    clock, probes = None, []
    if incremental and kind is not None:
        if kind == "int":
            # The probe's snapshot must begin before the clock is read (see watermark.settle_bound).
            probes = [wm.Probe.from_json(p) for p in (previous.settle_probes if previous else [])]
            probe = source.probe(table)
            probes += [probe] if probe is not None else []
        clock = source.settle_clock()
        if kind == "int" and probe is not None:
            clock = _await_probe(source, probe, clock)
    bound = wm.settle_bound(kind, clock, probes) if kind is not None else None
    window = wm.read_window(prev_wm, table.lookback)
    include_nulls = table.on_null_watermark == "include"
    if table.watermark and table.on_null_watermark == "fail" and window.lower is not None:
        nulls = source.count_rows(table, where_null=table.watermark)
        if nulls:
            raise _null_watermark_error(name, table, nulls)
    # With no lookback, a settled stored watermark carries the key of its last row: the next read
    # resumes after (watermark, key), so rows sharing one watermark are neither re-read nor kept in memory.
    after_key = None
    if (previous is not None and window.lower is not None and window.lower == prev_wm and previous.watermark_key
            and not table.null_fallback and not include_nulls):
        after_key = tuple(wm.decode(v) for v in previous.watermark_key)
    request = ReadRequest(table, schema, window.lower, include_nulls, chunked=window.lower is None, after_key=after_key)
    replaced = lake.active() if previous is not None and window.lower is None else []
    known = None
    if previous is not None and window.lower is not None and after_key is None and table.watermark:
        # NULL-watermark rows can sit in any batch, so `include` compares against the whole chain.
        recent = lake.active() if include_nulls else lake.reaching(window.lower)
        rule = CurrentStateRule.of(table)
        known = lake.latest_in_window(recent, rule, window.lower, include_nulls) if recent else None
    pending = [p for p in probes if clock is None or not p.at < clock.open_since]
    return _Plan(incremental, prev_wm, clock, bound, _carried(pending), request, known, replaced)


# A busy database always has some short transaction in flight that began just before the probe; waiting
# up to ~1.5 s for those to end lets the probe settle in this sync instead of the next one.
_PROBE_WAITS_S = (0.05, 0.1, 0.2, 0.4, 0.8)


def _await_probe(source: SqlSource, probe: wm.Probe, clock: wm.SettleClock | None) -> wm.SettleClock | None:
    """The settle clock once no transaction older than `probe` is open, or after the last short wait."""
    for delay in _PROBE_WAITS_S:
        if clock is None or not clock.concurrent_writers or probe.at < clock.open_since:
            break
        time.sleep(delay)
        clock = source.settle_clock()
    return clock


def _carried(probes: list[wm.Probe]) -> list[wm.Probe]:
    """Unsettled probes worth keeping: the oldest settles first, the newest reach highest."""
    return probes if len(probes) <= 4 else [probes[0], *probes[-3:]]


def extract_table(
    name: str,
    table: TableConfig,
    project: Project,
    source: SqlSource,
    store: LakeStore,
    *,
    full_refresh: bool = False,
    progress: Progress | None = None,
) -> ExtractResult:
    """Read what changed since the last batch and commit it as one lake batch (or nothing if nothing changed)."""
    started = time.perf_counter()
    source.will_read()
    schema = source.describe(table)  # checks the source before anything is written anywhere
    current = lake_schema(schema)
    run_id = uuid.uuid4().hex
    lake = TableLake(store, name)
    lake_path = lake.uri()
    with lake.lease(run_id, project.config.defaults.lease_ttl) as lease:
        previous = lake.recover()
        arrow = current if full_refresh else _target_schema(name, table, previous, current)
        plan = _plan(table, schema, source, lake, previous, full_refresh)
        loaded_at = dt.datetime.now(dt.timezone.utc)
        layout = Layout(partition_by=tuple(table.partition_by), granularity=table.partition_granularity,
                        load_date=loaded_at.date())
        digest = hashlib.sha256()
        seen = _Seen()
        last_report = time.perf_counter()
        with lake.pending_batch(lease=lease, previous=previous, schema=arrow, config=project.config.lake,
                                layout=layout, watermark=table.watermark, fallback=table.null_fallback) as batch:
            batches = source.read(plan.request)
            for record_batch in batches if source.reads_ahead(plan.request) else prefetch(batches):
                data = pa.Table.from_batches([record_batch])
                seen.add(data, table)
                if table.watermark and table.on_null_watermark == "fail" and data.column(table.watermark).null_count:
                    raise _null_watermark_error(name, table, data.column(table.watermark).null_count)
                if plan.known is not None and plan.known.num_rows:
                    data, _ = drop_unchanged(data, _deleted(data, table.soft_delete), plan.known, table.primary_key)
                if table.replication == "full":
                    for b in data.to_batches():
                        digest.update(b.serialize())
                seen.rows_committed += data.num_rows
                batch.write(_with_lake_columns(data, batch.seq, loaded_at, arrow, table.soft_delete))
                now = time.perf_counter()
                if progress is not None and now - last_report >= _PROGRESS_EVERY_S:
                    last_report = now
                    progress(name, seen.rows_read, seen.rows_read / max(now - started, 1e-9))
            content_hash = digest.hexdigest() if table.replication == "full" else None
            unchanged = content_hash is not None and previous is not None and previous.content_hash == content_hash
            if seen.rows_committed == 0 or (unchanged and not full_refresh):
                batch.abort()
                _record_sync(lake, run_id, previous.seq if previous else None, seen.rows_read)
                return ExtractResult(
                    table=name, committed=False, batch_id=None, rows_read=seen.rows_read, rows_committed=0,
                    watermark_before=plan.previous_watermark, watermark_after=plan.previous_watermark, files=0,
                    bytes=0, lake_path=lake_path, duration_s=time.perf_counter() - started,
                    null_watermarks=seen.null_watermarks, mode="incremental" if plan.incremental else "full",
                )
            new_wm = wm.next_watermark(plan.previous_watermark, seen.max_seen, plan.bound) if table.watermark else None
            settled = (seen.max_seen is not None and new_wm == seen.max_seen
                       and wm.is_settled(seen.max_seen, plan.bound) and not table.null_fallback)
            prev_max = wm.decode(previous.max_seen) if previous is not None and plan.incremental else None
            watermark = {
                "watermark_column": table.watermark, "watermark_before": wm.encode(plan.previous_watermark),
                "watermark": wm.encode(new_wm), "max_seen": wm.encode(_max_of(prev_max, seen.max_seen)),
                "watermark_key": [wm.encode(v) for v in seen.key_at_max] if settled and seen.key_at_max else None,
                "horizon": plan.clock.horizon.isoformat() if plan.clock else None,
                "read_lower": wm.encode(plan.request.lower), "settle_probes": [p.to_json() for p in plan.probes],
            }
            manifest = batch.commit(mode="full" if plan.complete else "incremental", created_at=loaded_at,
                                    rows=seen.rows_committed, watermark=watermark, replaced=plan.replaced,
                                    content_hash=content_hash,
                                    stats={"rows_read": seen.rows_read, "null_watermarks": seen.null_watermarks})
        _record_sync(lake, run_id, manifest.seq, seen.rows_read)
        log.info("table %r: committed batch %d: %d rows in %d files", name, manifest.seq, seen.rows_committed,
                 len(manifest.files))
        return ExtractResult(
            table=name, committed=True, batch_id=manifest.seq, rows_read=seen.rows_read,
            rows_committed=seen.rows_committed, watermark_before=plan.previous_watermark, watermark_after=new_wm,
            files=len(manifest.files), bytes=manifest.total_bytes, lake_path=lake_path,
            duration_s=time.perf_counter() - started, null_watermarks=seen.null_watermarks, mode=manifest.mode,
            partitions=sorted({f.partition for f in manifest.files}),
        )


def _record_sync(lake: TableLake, run_id: str, batch_id: int | None, rows_read: int) -> None:
    lake.record_sync(SyncRecord(run_id=run_id, finished_at=dt.datetime.now(dt.timezone.utc).isoformat(),
                                batch_id=batch_id, rows_read=rows_read))


def _null_watermark_error(name: str, table: TableConfig, count: int) -> SourceError:
    return SourceError(
        f"table {name!r}: {count} rows have NULL in watermark column {table.watermark!r}; nothing was written. "
        f"Set `on_null_watermark: include` in its YAML to replicate them, or fill the column"
    )


def _max_of(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else max(a, b)


def _with_lake_columns(data: pa.Table, seq: int, loaded_at: dt.datetime, schema: pa.Schema,
                       soft_delete: str | None) -> pa.Table:
    """Add the lake's own columns, and conform to the (possibly evolved) schema: dropped columns as NULL."""
    n = data.num_rows
    stamp = pa.scalar(loaded_at, pa.timestamp("us", tz="UTC"))
    columns = {
        "_batch_id": pa.repeat(pa.scalar(seq, pa.int64()), n),
        "_loaded_at": pa.repeat(stamp, n),
        "_deleted": _deleted(data, soft_delete),
    }
    arrays = []
    for f in schema:
        if f.name in columns:
            arrays.append(columns[f.name])
        elif f.name in data.column_names:
            arrays.append(data.column(f.name).cast(f.type))
        else:
            arrays.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _deleted(data: pa.Table, soft_delete: str | None) -> pa.Array:
    """A row is deleted when its soft-delete column is set: true for a boolean, non-NULL otherwise."""
    if soft_delete is None:
        return pa.repeat(pa.scalar(False), data.num_rows)
    column = data.column(soft_delete)
    flag = pc.fill_null(column, False) if pa.types.is_boolean(column.type) else pc.is_valid(column)
    return flag.combine_chunks() if isinstance(flag, pa.ChunkedArray) else flag
