"""Dagster sees every sync: observe the sources, and report lake batches and warehouse loads made elsewhere.

- `source/...` assets: one observable definition per source; an observation reads the table's highest
  watermark (`max(watermark)` in a read-only snapshot with the source's timeouts; `count(*)` for full
  tables) and records it as the data version.
- `replicator_batches` sensor: reads only the lake's manifests (and, for a table with new batches, the
  warehouse ledger) and reports every committed batch Dagster has not recorded yet as a materialization
  of lake/<name>, and every newly loaded batch as one of warehouse/<name>. Idempotent by batch id: the
  last batch id already recorded is read from the asset's own materializations (Dagster's runs record it
  too), so a sync run through Dagster is never reported twice.
"""

# No `from __future__ import annotations`: Dagster reads these type hints at definition time.
import warnings
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import dagster as dg

from replicator import TableConfig
from replicator.errors import ReplicatorError, WarehouseUnavailable

from . import translator as tr
from .resources import ReplicatorResource

if TYPE_CHECKING:  # the runner (and pyarrow) load when a sensor or step runs, not when definitions are built
    from replicator import Replicator

_LOOKBACK_EVENTS = 20  # materializations scanned for the last recorded batch id (runs that committed nothing have none)


def source_version(rep: "Replicator", table: TableConfig) -> str:
    """The source's current highest watermark (or row count for full tables): cheap, read-only."""
    import sqlalchemy as sa  # here, not at import: definitions never need it

    source = rep.source(table.source)
    if table.watermark is None:
        return f"rows={source.count_rows(table)}"
    clause = source.table_clause(table, [table.watermark])
    with source.snapshot() as conn:
        top = conn.execute(sa.select(sa.func.max(clause.c[table.watermark])).select_from(clause)).scalar_one()
    return f"{table.watermark}={top}"


def source_observations(source: str, specs: Mapping[str, dg.AssetSpec],
                        tables: Mapping[str, TableConfig]) -> dg.AssetsDefinition:
    names = {spec.key: name for name, spec in specs.items()}

    def observe(context: dg.AssetExecutionContext, replicator: ReplicatorResource) -> Iterator[dg.ObserveResult]:
        with replicator.open() as rep:
            for key in sorted(context.selected_asset_keys & names.keys()):
                version = source_version(rep, tables[names[key]])
                yield dg.ObserveResult(asset_key=key, data_version=dg.DataVersion(version),
                                       metadata={"watermark": version})

    with warnings.catch_warnings():  # beta in 1.13; the one way to observe many external assets in one op
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.multi_observable_source_asset(name=f"observe__{source}", specs=list(specs.values()),
                                                can_subset=True)(observe)


def recorded_batch(instance: dg.DagsterInstance, key: dg.AssetKey) -> int:
    """The highest batch id among the asset's latest materializations (0: none recorded)."""
    records = instance.fetch_materializations(key, limit=_LOOKBACK_EVENTS).records
    for record in records:
        materialization = record.asset_materialization
        value = materialization.metadata.get("batch_id") if materialization else None
        if value is not None and isinstance(value.value, int):
            return value.value
    return 0


def batch_events(rep: "Replicator", instance: dg.DagsterInstance, name: str, lake_key: dg.AssetKey,
                 warehouse_key: dg.AssetKey, data: tr.ReplicatorTranslatorData) -> list[dg.AssetMaterialization]:
    """Materializations for the table's batches committed (and loaded) since the ones Dagster recorded."""
    events: list[dg.AssetMaterialization] = []
    lake = rep.table_lake(name)
    seqs = lake.seqs()
    if not seqs:
        return events
    reported = recorded_batch(instance, lake_key)
    if seqs[-1] > reported:
        manifests = lake.after(0)
        rows = 0
        for manifest in manifests:
            rows = manifest.rows if manifest.mode == "full" else rows + manifest.rows  # active row versions
            if manifest.seq > reported:
                events.append(dg.AssetMaterialization(
                    asset_key=lake_key, description=f"batch {manifest.seq} committed outside Dagster",
                    metadata=tr.manifest_metadata(manifest, data.lake_uri, rows)))
    wh_reported = recorded_batch(instance, warehouse_key)
    if seqs[-1] > wh_reported:  # only then is the warehouse asked (one ledger read)
        loaded = rep.warehouse.last_loaded_seq(name)
        if loaded > wh_reported:
            rows_in_table = rep.warehouse.row_count(name)
            events.append(dg.AssetMaterialization(
                asset_key=warehouse_key, description=f"batches up to {loaded} loaded outside Dagster",
                metadata={"batch_id": loaded, "batches_loaded": dg.MetadataValue.json(
                    [s for s in seqs if wh_reported < s <= loaded]),
                    "dagster/row_count": rows_in_table if rows_in_table is not None else dg.MetadataValue.null(),
                    "rows_in_table": rows_in_table if rows_in_table is not None else dg.MetadataValue.null(),
                    "dagster/table_name": data.warehouse_table, "replicator/reported_by": "sensor"}))
    return events


def batches_sensor(project: str, tables: Mapping[str, tuple[dg.AssetKey, dg.AssetKey, tr.ReplicatorTranslatorData]],
                   interval_s: int = 60) -> dg.SensorDefinition:
    @dg.sensor(name="replicator_batches", minimum_interval_seconds=interval_s,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="reports lake batches and warehouse loads made outside Dagster (CLI syncs)")
    def report(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        events: list[dg.AssetMaterialization] = []
        from replicator import Replicator

        with Replicator.from_path(project) as rep:
            for name, (lake_key, warehouse_key, data) in tables.items():
                try:
                    events += batch_events(rep, context.instance, name, lake_key, warehouse_key, data)
                except WarehouseUnavailable as exc:  # a load holds the DuckDB file: report it next tick
                    context.log.info(f"{name}: {exc}")
                except ReplicatorError as exc:
                    context.log.warning(f"{name}: {exc}")
        if not events:
            return dg.SensorResult(skip_reason="no new batches")
        return dg.SensorResult(asset_events=events)

    return report
