"""Per source: one multi-asset that extracts its tables into the lake, one that loads them into the warehouse.

One definition per source (not per table) keeps the definitions cheap to build (500 tables: 2 op
definitions per source instead of 1,000); each is subsettable, so a run materializes exactly the tables
selected. A table that fails does not stop the others of its step; the step fails at the end naming them.
"""

# No `from __future__ import annotations`: Dagster reads these type hints at definition time.

from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

import dagster as dg

from replicator import ReplicatorError
from replicator.lake import active_manifests, latest_manifest

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
        raise step_failure(context, [exc]) from exc


def step_failure(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
                 errors: list[ReplicatorError]) -> Exception:
    """RetryRequested if every failure was transient, else a Failure with the library's messages."""
    text = "\n".join(str(e) for e in errors)
    if all(e.retriable for e in errors):
        attempt = getattr(context, "retry_number", 0)
        context.log.warning(f"transient failure, retrying: {text}")
        return dg.RetryRequested(max_retries=_MAX_RETRIES, seconds_to_wait=min(60, 5 * 2**attempt))
    return dg.Failure(description=text, allow_retries=False)


def _each_selected(context: dg.AssetExecutionContext, names: Mapping[dg.AssetKey, str],
                   run: Callable[[str], dict[str, object]]) -> Iterator[dg.MaterializeResult]:
    errors: list[ReplicatorError] = []
    for key in sorted(context.selected_asset_keys & names.keys()):
        try:
            yield dg.MaterializeResult(asset_key=key, metadata=run(names[key]))
        except ReplicatorError as exc:
            context.log.error(str(exc))
            errors.append(exc)
    if errors:
        raise step_failure(context, errors)


def lake_assets(source: str, specs: Mapping[str, dg.AssetSpec]) -> dg.AssetsDefinition:
    """lake/<name> for every table of `source`: extract and commit one batch each."""
    names = {spec.key: name for name, spec in specs.items()}

    @dg.multi_asset(name=f"lake__{source}", specs=[s.replace_attributes(skippable=True) for s in specs.values()],
                    can_subset=True, pool=tr.source_pool(source))
    def extract(context: dg.AssetExecutionContext, config: SyncConfig,
                replicator: ReplicatorResource) -> Iterator[dg.MaterializeResult]:
        with replicator.open() as rep:
            def one(name: str) -> dict[str, object]:
                def progress(table_name: str, rows: int, rate: float) -> None:
                    context.log.info(f"{table_name}: {rows:,} rows so far ({rate:,.0f} rows/s)")

                result = rep.extract(name, full_refresh=config.full_refresh, progress=progress)
                manifest = latest_manifest(rep.lake, name)
                rows = sum(m.rows for m in active_manifests(rep.lake, name))
                return tr.extract_metadata(result, manifest, rows)

            yield from _each_selected(context, names, one)

    return extract


def warehouse_assets(source: str, specs: Mapping[str, dg.AssetSpec], table_names: Mapping[str, str]) -> dg.AssetsDefinition:
    """warehouse/<name> for every table of `source`: load the committed batches it has not loaded yet."""
    names = {spec.key: name for name, spec in specs.items()}

    @dg.multi_asset(name=f"warehouse__{source}", specs=[s.replace_attributes(skippable=True) for s in specs.values()],
                    can_subset=True, pool=tr.warehouse_pool(source))
    def load(context: dg.AssetExecutionContext, replicator: ReplicatorResource) -> Iterator[dg.MaterializeResult]:
        with replicator.open() as rep:
            def one(name: str) -> dict[str, object]:
                result = rep.load(name)
                return tr.load_metadata(result, rep.warehouse.last_loaded_seq(name), table_names[name])

            yield from _each_selected(context, names, one)

    return load
