"""Pure translation from a table's YAML model to Dagster asset keys, specs and metadata."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pyarrow as pa

from replicator import ExtractResult, LoadResult, TableConfig
from replicator.types import SOURCE_TYPE_KEY


def source_key(table: TableConfig, name: str) -> dg.AssetKey:
    return dg.AssetKey(["source", table.source, name])


def lake_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["lake", name])


def warehouse_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["warehouse", name])


def source_pool(source: str) -> str:
    """Extracts share one pool per source: its limit bounds the queries replicator runs on that database."""
    return f"replicator-source-{source}"


def table_pool(name: str) -> str:
    """Warehouse loads get one pool per table: a limit of 1 keeps two loads of one table apart."""
    return f"replicator-{name}"


def column_schema(schema: pa.Schema | None, table: TableConfig) -> dg.TableSchema | None:
    """Replicated columns with their lake (Arrow) types, and source types where known."""
    if schema is not None:
        return dg.TableSchema(columns=[
            dg.TableColumn(f.name, str(f.type), description=(f.metadata or {}).get(SOURCE_TYPE_KEY, b"").decode() or None)
            for f in schema
        ])
    if table.columns:
        return dg.TableSchema(columns=[dg.TableColumn(c, "unknown until the first sync") for c in table.columns])
    return None


def asset_tags(table: TableConfig) -> dict[str, str]:
    return {**table.tags, "replicator/replication": table.replication}


def extract_metadata(result: ExtractResult, schema: pa.Schema | None, table: TableConfig) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "rows_extracted": result.rows_read,
        "rows_committed": result.rows_committed,
        "batch_id": result.batch_id if result.batch_id is not None else dg.MetadataValue.null(),
        "committed": result.committed,
        "watermark_before": str(result.watermark_before) if result.watermark_before is not None else dg.MetadataValue.null(),
        "watermark_after": str(result.watermark_after) if result.watermark_after is not None else dg.MetadataValue.null(),
        "files_written": result.files,
        "bytes_written": result.bytes,
        "lake_path": dg.MetadataValue.path(result.lake_path),
        "duration_s": round(result.duration_s, 3),
        "null_watermarks": result.null_watermarks,
        "mode": result.mode,
    }
    columns = column_schema(schema, table)
    if columns is not None:
        meta["dagster/column_schema"] = columns
    return meta


def load_metadata(result: LoadResult) -> dict[str, Any]:
    return {
        "rows_loaded": result.rows_loaded,
        "rows_in_table": result.rows_in_table if result.rows_in_table is not None else dg.MetadataValue.null(),
        "batches_loaded": dg.MetadataValue.json(result.batches),
        "duration_s": round(result.duration_s, 3),
    }
