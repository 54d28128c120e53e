"""Pure translation from a table's YAML model to Dagster asset specs and metadata.

`DagsterReplicatorTranslator.get_asset_spec(data)` is the one place a table becomes an `AssetSpec`, for
each of its three layers (source, lake, warehouse); subclass it (or set the Component's `translation`) to
change keys, groups, kinds, tags. Nothing here reads the lake, a source or the warehouse.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import timedelta
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

import dagster as dg

from replicator import Project, TableConfig

if TYPE_CHECKING:  # loaded in the step that has results: building the definitions needs none of them
    import pyarrow as pa

    from replicator import ExtractResult, LoadResult
    from replicator.lake import Manifest

Layer = Literal["source", "lake", "warehouse"]

# URL scheme -> Dagster kind (the icon names Dagster's UI knows).
_SOURCE_KINDS = {"postgresql": "postgres", "postgres": "postgres", "mysql": "mysql", "mariadb": "mariadb",
                 "sqlite": "sqlite"}
_WAREHOUSE_KINDS = {"duckdb": "duckdb", "postgresql": "postgres", "postgres": "postgres"}


@cache
def _scheme(url: str) -> str:
    return urlparse(url).scheme.split("+")[0].lower()


@cache
def _lake_root(root: Path, url: str) -> str:
    """The lake's base URI: the URL itself for object stores, else the absolute local folder (once per project)."""
    url = url.rstrip("/")
    if "://" in url and not url.startswith("file://"):
        return url
    path = url[len("file://"):] if url.startswith("file://") else url
    return str((root / path).resolve())


@dataclass(frozen=True)
class ReplicatorTranslatorData:
    """What the translator sees of one table layer: the table's model and where its project lives."""

    layer: Layer
    name: str
    table: TableConfig
    project: Project

    @property
    def yaml_path(self) -> str:
        file = self.project.table_files.get(self.name)
        return str(file) if file else str(self.project.schemas_dir / f"{self.name}.yml")

    @property
    def source_kind(self) -> str:
        scheme = _scheme(self.project.config.sources[self.table.source].url)
        return _SOURCE_KINDS.get(scheme, scheme)

    @property
    def warehouse_kind(self) -> str:
        scheme = _scheme(self.project.config.warehouse.url)
        return _WAREHOUSE_KINDS.get(scheme, scheme)

    @property
    def lake_uri(self) -> str:
        return f"{_lake_root(self.project.root, self.project.config.lake.url)}/{self.name}"

    @property
    def warehouse_table(self) -> str:
        return f"{self.project.config.warehouse.schema_}.{self.name}"

    @property
    def freshness(self) -> timedelta:
        return self.table.freshness or self.project.config.defaults.freshness

    @property
    def cron(self) -> str:
        return self.table.schedule or self.project.config.defaults.schedule


class DagsterReplicatorTranslator:
    """Table layer -> AssetSpec. Override `get_asset_spec` (call super and `replace_attributes`) to customize."""

    def get_asset_spec(self, data: ReplicatorTranslatorData) -> dg.AssetSpec:
        if data.layer == "source":
            return self._source_spec(data)
        if data.layer == "lake":
            return self._lake_spec(data)
        return self._warehouse_spec(data)

    # The default keys: source/<source>/<name>, lake/<name>, warehouse/<name>.
    def _source_spec(self, data: ReplicatorTranslatorData) -> dg.AssetSpec:
        return dg.AssetSpec(
            key=dg.AssetKey(["source", data.table.source, data.name]), group_name=data.table.source,
            description=f"{data.table.table} in source {data.table.source!r} (external: read by lake/{data.name})",
            kinds={data.source_kind}, tags=asset_tags(data.table),
            metadata={"dagster/table_name": data.table.table, **_code_reference(data)},
        )

    def _lake_spec(self, data: ReplicatorTranslatorData) -> dg.AssetSpec:
        kinds = ({"parquet"} | ({"s3"} if data.lake_uri.startswith("s3://") else set())
                 | ({"iceberg"} if data.project.config.lake.iceberg is not None else set()))
        metadata: dict[str, Any] = {"dagster/uri": data.lake_uri, **_code_reference(data)}
        if data.table.columns:
            metadata["dagster/column_schema"] = dg.TableSchema(
                columns=[dg.TableColumn(c, "unknown until the first sync") for c in data.table.columns])
        return dg.AssetSpec(
            key=dg.AssetKey(["lake", data.name]), group_name=data.table.source, description=data.table.description,
            owners=data.table.owners or None, tags=asset_tags(data.table), kinds=kinds, metadata=metadata,
            freshness_policy=dg.FreshnessPolicy.time_window(fail_window=data.freshness),
        )

    def _warehouse_spec(self, data: ReplicatorTranslatorData) -> dg.AssetSpec:
        return dg.AssetSpec(
            key=dg.AssetKey(["warehouse", data.name]), group_name=data.table.source,
            description=f"Current state of {data.name} in the warehouse, loaded from committed lake batches",
            owners=data.table.owners or None, tags=asset_tags(data.table), kinds={data.warehouse_kind},
            metadata={"dagster/table_name": data.warehouse_table, **_code_reference(data)},
        )


def _code_reference(data: ReplicatorTranslatorData) -> dict[str, Any]:
    return {"dagster/code_references": _yaml_reference(data.yaml_path, data.name)}


@lru_cache(maxsize=4096)  # the three layers of a table share one (immutable) value
def _yaml_reference(yaml_path: str, name: str) -> dg.CodeReferencesMetadataValue:
    with warnings.catch_warnings():  # beta in 1.13, and the only way to link an asset to its YAML file
        warnings.simplefilter("ignore", dg.BetaWarning)
        ref = dg.LocalFileCodeReference(file_path=yaml_path, label=f"schemas/{name}.yml")
        return dg.CodeReferencesMetadataValue(code_references=[ref])


def source_pool(source: str) -> str:
    """Extracts share one pool per source: its limit bounds the queries replicator runs on that database."""
    return f"replicator-source-{source}"


def warehouse_pool(source: str) -> str:
    """Loads of a source's tables share one pool: a limit of 1 keeps two loads of one table apart."""
    return f"replicator-warehouse-{source}"


def column_schema(schema: pa.Schema | None) -> dg.TableSchema | None:
    """Replicated columns with their lake (Arrow) types, and source types where known."""
    if schema is None:
        return None
    from replicator.types import SOURCE_TYPE_KEY

    return dg.TableSchema(columns=[
        dg.TableColumn(f.name, str(f.type), description=(f.metadata or {}).get(SOURCE_TYPE_KEY, b"").decode() or None)
        for f in schema
    ])


def asset_tags(table: TableConfig) -> dict[str, str]:
    return {**table.tags, "replicator/replication": table.replication}


def _or_null(value: Any) -> Any:
    return dg.MetadataValue.null() if value is None else value


def extract_metadata(result: ExtractResult, manifest: Manifest | None, lake_rows: int | None) -> dict[str, Any]:
    """A lake materialization run by Dagster; `batch_id` is the latest committed batch (idempotency key)."""
    meta: dict[str, Any] = {
        "rows_extracted": result.rows_read,
        "rows_committed": result.rows_committed,
        "batch_id": _or_null(result.batch_id if result.batch_id is not None else (manifest.seq if manifest else None)),
        "committed": result.committed,
        "watermark_before": _or_null(None if result.watermark_before is None else str(result.watermark_before)),
        "watermark_after": _or_null(None if result.watermark_after is None else str(result.watermark_after)),
        "files_written": result.files,
        "bytes_written": result.bytes,
        "lake_path": dg.MetadataValue.path(result.lake_path),
        "dagster/uri": result.lake_path,
        "duration_s": round(result.duration_s, 3),
        "null_watermarks": result.null_watermarks,
        "mode": result.mode,
    }
    if result.published is not None:  # lake.iceberg: the table engines read, and the snapshot of this batch
        meta["iceberg_table"] = result.published.identifier
        meta["iceberg_snapshot_id"] = _or_null(result.published.snapshot_id)
        meta["iceberg_current_table"] = result.published.current_identifier
        meta["iceberg_current_snapshot_id"] = _or_null(result.published.current_snapshot_id)
    if result.catalog_behind is not None:
        meta["iceberg_behind"] = result.catalog_behind
    if lake_rows is not None:
        meta["dagster/row_count"] = lake_rows
    columns = column_schema(manifest.schema if manifest else None)
    if columns is not None:
        meta["dagster/column_schema"] = columns
    return meta


def manifest_metadata(manifest: Manifest, lake_uri: str, lake_rows: int) -> dict[str, Any]:
    """A lake batch committed outside Dagster (CLI, another orchestrator), from its manifest alone."""
    meta: dict[str, Any] = {
        "batch_id": manifest.seq,
        "rows_committed": manifest.rows,
        "committed": True,
        "mode": manifest.mode,
        "watermark_before": _or_null(None if manifest.watermark_before is None else str(manifest.watermark_before)),
        "watermark_after": _or_null(None if manifest.watermark is None else str(manifest.watermark)),
        "files_written": len(manifest.files),
        "bytes_written": manifest.total_bytes,
        "committed_at": manifest.created_at,
        "replicator/run_id": manifest.run_id,
        "replicator/reported_by": "sensor",
        "dagster/uri": lake_uri,
        "dagster/row_count": lake_rows,
    }
    columns = column_schema(manifest.schema)
    if columns is not None:
        meta["dagster/column_schema"] = columns
    return meta


def load_metadata(result: LoadResult, loaded_seq: int, table_name: str) -> dict[str, Any]:
    return {
        "rows_loaded": result.rows_loaded,
        "rows_in_table": _or_null(result.rows_in_table),
        "dagster/row_count": _or_null(result.rows_in_table),
        "dagster/table_name": table_name,
        "batches_loaded": dg.MetadataValue.json(result.batches),
        "batch_id": loaded_seq,
        "duration_s": round(result.duration_s, 3),
    }
