"""sync = extract (source -> staged Parquet -> manifest -> publish) then load (lake -> warehouse)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import watermark as wm
from .catalog import Project
from .config import TableConfig
from .errors import SchemaChangeError, SourceError
from .lake import (
    BatchWriter,
    LakeStore,
    Manifest,
    acquire_lease,
    active_manifests,
    commit_manifest,
    keys_in_window,
    latest_manifest,
    paths,
)
from .lake.manifest import encode_schema
from .lake.publish import finish_publish, publish
from .lake.reader import manifests_reaching
from .sources import ReadRequest, SqlSource, TableSchema
from .streams import prefetch
from .types import schema_fingerprint

__all__ = ["ExtractResult", "Progress", "extract_table", "lake_schema", "last_sync"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, float], None]
"""Called as progress(table, rows_so_far, rows_per_second) during long reads."""

_PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True)
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


def lake_schema(schema: TableSchema) -> pa.Schema:
    """The source columns plus _batch_id and _loaded_at: every lake file of the table has exactly this."""
    return schema.arrow.append(pa.field("_batch_id", pa.int64(), nullable=False)).append(
        pa.field("_loaded_at", pa.timestamp("us", tz="UTC"), nullable=False)
    )


def _check_schema(name: str, previous: Manifest | None, schema: pa.Schema) -> None:
    if previous is None:
        return
    before, now = previous.schema_fingerprint, schema_fingerprint(schema)
    if before == now:
        return
    old = dict(item.split(":", 1) for item in before.split(";"))
    new = dict(item.split(":", 1) for item in now.split(";"))
    changes = [f"{c} added ({new[c]})" for c in new if c not in old]
    changes += [f"{c} dropped" for c in old if c not in new]
    changes += [f"{c} {old[c]} -> {new[c]}" for c in new if c in old and old[c] != new[c]]
    raise SchemaChangeError(
        f"table {name!r}: the source schema changed since batch {previous.seq} ({'; '.join(changes)}); "
        f"nothing was written. Resync with `replicator sync {name} --full-refresh`"
    )


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
    run_id = uuid.uuid4().hex
    with acquire_lease(store, name, run_id, project.config.defaults.lease_ttl) as lease:
        previous = latest_manifest(store, name)
        if previous is not None:
            before = active_manifests(store, name, as_of=previous.seq - 1) if previous.mode == "full" else []
            finish_publish(store, previous, name, before)
        else:
            finish_publish(store, None, name)
        schema = source.describe(table)
        arrow = lake_schema(schema)
        if not full_refresh:
            _check_schema(name, previous, arrow)

        incremental = table.replication == "incremental" and not full_refresh
        prev_wm = wm.decode(previous.watermark) if previous is not None and incremental else None
        wm_type = schema.column(table.watermark).arrow_type if table.watermark else None
        horizon = source.horizon() if incremental and wm_type is not None and pa.types.is_timestamp(wm_type) else None
        window = wm.read_window(prev_wm, table.lookback)
        complete = window.lower is None
        include_nulls = table.on_null_watermark == "include"
        if table.watermark and not include_nulls and not complete:
            nulls = source.count_rows(table, where_null=table.watermark)
            if nulls:
                raise _null_watermark_error(name, table, nulls)

        seq = (previous.seq if previous else 0) + 1
        loaded_at = dt.datetime.now(dt.timezone.utc)
        # A complete read replaces the whole chain since the last full batch; an incremental one
        # only needs the recent batches that can hold rows of its window, to drop re-read rows.
        active = active_manifests(store, name) if previous is not None and complete else []
        recent = []
        if previous is not None and not complete:
            # NULL-watermark rows can sit in any batch, so `include` compares against the whole chain.
            recent = active_manifests(store, name) if include_nulls else manifests_reaching(store, name, window.lower)
        known = (keys_in_window(store, recent, table.primary_key, table.watermark, window.lower, include_nulls)
                 if recent and table.watermark else None)
        writer = BatchWriter(store, name, seq, run_id, arrow, project.config.lake, table.partition_by,
                             table.partition_granularity, table.watermark, loaded_at.date())
        digest = hashlib.sha256()
        rows_read = rows_committed = null_count = 0
        max_seen: Any = None
        last_report = time.perf_counter()
        try:
            request = ReadRequest(table, schema, window.lower, include_nulls, chunked=complete)
            for batch in prefetch(source.read(request)):
                rows_read += batch.num_rows
                data = pa.Table.from_batches([batch])
                if table.watermark:
                    column = data.column(table.watermark)
                    null_count += column.null_count
                    if column.null_count and not include_nulls:
                        raise _null_watermark_error(name, table, column.null_count)
                    max_seen = _max_of(max_seen, pc.max(column).as_py())
                if known is not None and known.num_rows:
                    data = _drop_known(data, known, table)
                if table.replication == "full":
                    for b in data.to_batches():
                        digest.update(b.serialize())
                rows_committed += data.num_rows
                writer.write(_with_lake_columns(data, seq, loaded_at, arrow))
                lease.renew()
                now = time.perf_counter()
                if progress is not None and now - last_report >= _PROGRESS_EVERY_S:
                    last_report = now
                    progress(name, rows_read, rows_read / max(now - started, 1e-9))
            content_hash = digest.hexdigest() if table.replication == "full" else None
            unchanged = content_hash is not None and previous is not None and previous.content_hash == content_hash
            if rows_committed == 0 or (unchanged and not full_refresh):
                writer.abort()
                _record_sync(store, name, run_id, previous.seq if previous else None, rows_read)
                return ExtractResult(name, False, None, rows_read, 0, prev_wm, prev_wm if incremental else None,
                                     0, 0, store.uri(f"{store.root}/{name}"), time.perf_counter() - started, null_count,
                                     "incremental" if incremental else "full")
            files = writer.close()
        except BaseException:
            writer.abort()
            raise

        new_wm = wm.next_watermark(prev_wm, max_seen, horizon) if table.watermark else None
        prev_max = wm.decode(previous.max_seen) if previous is not None and incremental else None
        manifest = Manifest(
            table=name, seq=seq, run_id=run_id, mode="full" if complete else "incremental",
            created_at=loaded_at.isoformat(), rows=rows_committed, files=tuple(files),
            schema_b64=encode_schema(arrow), schema_fingerprint=schema_fingerprint(arrow),
            watermark_column=table.watermark, watermark_before=wm.encode(prev_wm), watermark=wm.encode(new_wm),
            max_seen=wm.encode(_max_of(prev_max, max_seen)),
            horizon=horizon.isoformat() if horizon else None, read_lower=wm.encode(window.lower),
            content_hash=content_hash, stats={"rows_read": rows_read, "null_watermarks": null_count},
        )
        commit_manifest(store, manifest)
        publish(store, manifest, active)
        store.delete_dir(paths.staging_dir(store.root, name, run_id))
        _record_sync(store, name, run_id, seq, rows_read)
        log.info("table %r: committed batch %d: %d rows in %d files", name, seq, rows_committed, len(files))
        return ExtractResult(
            name, True, seq, rows_read, rows_committed, prev_wm, new_wm, len(files), manifest.total_bytes,
            store.uri(f"{store.root}/{name}"), time.perf_counter() - started, null_count, manifest.mode,
            sorted({f.partition for f in files}),
        )


def _record_sync(store: LakeStore, name: str, run_id: str, batch_id: int | None, rows_read: int) -> None:
    record = {"run_id": run_id, "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(),
              "batch_id": batch_id, "rows_read": rows_read}
    store.write_bytes(paths.last_sync_path(store.root, name), json.dumps(record).encode())


def last_sync(store: LakeStore, name: str) -> dict[str, Any] | None:
    """The record of the table's last successful sync, if any."""
    try:
        data: dict[str, Any] = json.loads(store.read_bytes(paths.last_sync_path(store.root, name)))
        return data
    except FileNotFoundError:
        return None


def _null_watermark_error(name: str, table: TableConfig, count: int) -> SourceError:
    return SourceError(
        f"table {name!r}: {count} rows have NULL in watermark column {table.watermark!r}; nothing was written. "
        f"Set `on_null_watermark: include` in its YAML to replicate them, or fill the column"
    )


def _drop_known(data: pa.Table, known: pa.Table, table: TableConfig) -> pa.Table:
    """Drop rows the lake already holds unchanged: same key and same watermark value."""
    assert table.watermark is not None
    keys = list(dict.fromkeys([*table.primary_key, table.watermark]))  # the key may be the watermark
    is_null = pc.is_null(data.column(table.watermark))
    with_wm = data.filter(pc.invert(is_null))
    kept = with_wm.join(known, keys=keys, join_type="left anti", use_threads=False) if with_wm.num_rows else with_wm
    parts = [kept.select(data.column_names)]
    if pc.any(is_null).as_py():
        nulls = data.filter(is_null)
        known_null = known.filter(pc.is_null(known.column(table.watermark))).select(list(table.primary_key))
        if known_null.num_rows:
            nulls = nulls.join(known_null, keys=list(table.primary_key), join_type="left anti", use_threads=False)
        parts.append(nulls.select(data.column_names))
    return pa.concat_tables(parts)


def _max_of(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else max(a, b)


def _with_lake_columns(data: pa.Table, seq: int, loaded_at: dt.datetime, schema: pa.Schema) -> pa.Table:
    n = data.num_rows
    data = data.append_column("_batch_id", pa.array(np.full(n, seq, dtype=np.int64)))
    stamp = pa.scalar(loaded_at, pa.timestamp("us", tz="UTC"))
    data = data.append_column("_loaded_at", pa.array(np.full(n, stamp.value, dtype=np.int64)).cast(stamp.type))
    return data.cast(schema)
