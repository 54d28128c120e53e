"""One factory per table: the source as an external asset, then lake/<name> and warehouse/<name>."""

# No `from __future__ import annotations`: Dagster reads these type hints at definition time.

from collections.abc import Callable
from typing import TypeVar

import dagster as dg

from replicator import ReplicatorError, TableConfig
from replicator.lake import latest_manifest

from . import translator as tr
from .resources import ReplicatorResource

T = TypeVar("T")
_MAX_RETRIES = 3


class SyncConfig(dg.Config):  # type: ignore[misc]
    full_refresh: bool = False


def run_library(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext, call: Callable[[], T]) -> T:
    """Transient failures are retried with exponential backoff; permanent ones fail at once, clearly."""
    try:
        return call()
    except ReplicatorError as exc:
        if exc.retriable:
            attempt = getattr(context, "retry_number", 0)
            context.log.warning(f"transient failure, retrying: {exc}")
            raise dg.RetryRequested(max_retries=_MAX_RETRIES, seconds_to_wait=min(60, 5 * 2**attempt)) from exc
        raise dg.Failure(description=str(exc), allow_retries=False) from exc


def table_assets(name: str, table: TableConfig, schema_hint: object = None) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    source_spec = dg.AssetSpec(
        key=tr.source_key(table, name), group_name=table.source,
        description=f"{table.table} in source {table.source!r} (external: read by lake/{name})",
    )
    columns = tr.column_schema(schema_hint, table)  # type: ignore[arg-type]
    lake_meta = {"dagster/column_schema": columns} if columns is not None else {}

    @dg.asset(
        key=tr.lake_key(name), deps=[source_spec], group_name=table.source, description=table.description,
        owners=table.owners or None, tags=tr.asset_tags(table), kinds={"parquet"}, pool=tr.source_pool(table.source),
        metadata={**lake_meta, "yaml": f"schemas/{name}.yml"},
    )
    def lake_asset(context: dg.AssetExecutionContext, config: SyncConfig, replicator: ReplicatorResource) -> dg.MaterializeResult:
        def progress(table_name: str, rows: int, rate: float) -> None:
            context.log.info(f"{table_name}: {rows:,} rows so far ({rate:,.0f} rows/s)")

        with replicator.open() as rep:
            result = run_library(context, lambda: rep.extract(name, full_refresh=config.full_refresh, progress=progress))
            manifest = latest_manifest(rep.lake, name)
        return dg.MaterializeResult(metadata=tr.extract_metadata(result, manifest.schema if manifest else None, table))

    @dg.asset(
        key=tr.warehouse_key(name), deps=[lake_asset], group_name=table.source,
        description=f"Current state of {name} in the warehouse, loaded from committed lake batches",
        owners=table.owners or None, tags=tr.asset_tags(table), kinds={"duckdb"}, pool=tr.table_pool(name),
    )
    def warehouse_asset(context: dg.AssetExecutionContext, replicator: ReplicatorResource) -> dg.MaterializeResult:
        with replicator.open() as rep:
            result = run_library(context, lambda: rep.load(name))
        return dg.MaterializeResult(metadata=tr.load_metadata(result))

    return [source_spec, lake_asset, warehouse_asset]
