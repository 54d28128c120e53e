"""Per source: one multi-asset that extracts its tables into the lake, one that loads them into the warehouse.

One definition per source (not per table) keeps the definitions cheap to build (500 tables: 2 op
definitions per source instead of 1,000); each is subsettable, so a run materializes exactly the tables
selected, and carries its tables' asset checks as `check_specs` (checks.py), run after them in its step.
A table that fails does not stop the others of its step; the step fails at the end naming them.
"""

# No `from __future__ import annotations`: Dagster reads these type hints at definition time.

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, TypeVar

import dagster as dg

from replicator.errors import ReplicatorError

from . import translator as tr
from .checks import check_results, check_specs
from .resources import ReplicatorResource

if TYPE_CHECKING:  # the runner (and pyarrow) load in the step, not when the definitions are built
    from replicator import Replicator

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


def _each_selected(context: dg.AssetExecutionContext, rep: "Replicator", names: Mapping[dg.AssetKey, str],
                   run: Callable[[str], dict[str, object]], *, workers: int | None = 1,
                   ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Materialize each selected table (`workers` at once; None: the project's max_concurrent_tables), then
    run the selected checks of those that did not fail."""
    errors: list[ReplicatorError] = []
    failed: set[dg.AssetKey] = set()
    keys = {names[key]: key for key in sorted(context.selected_asset_keys & names.keys())}
    for name, outcome in rep.each_table(list(keys), run, workers):
        if isinstance(outcome, ReplicatorError):
            context.log.error(str(outcome))
            errors.append(outcome)
            failed.add(keys[name])
        else:
            yield dg.MaterializeResult(asset_key=keys[name], metadata=outcome)
    yield from check_results(context, rep, names, failed, errors)
    if errors:
        raise step_failure(context, errors)


def lake_assets(source: str, specs: Mapping[str, dg.AssetSpec], *, iceberg: bool = False) -> dg.AssetsDefinition:
    """lake/<name> for every table of `source`: extract and commit one batch each (`specs` skippable)."""
    names = {spec.key: name for name, spec in specs.items()}

    @dg.multi_asset(name=f"lake__{source}", specs=list(specs.values()), check_specs=check_specs("lake", names, iceberg=iceberg),
                    can_subset=True, pool=tr.source_pool(source))
    def extract(context: dg.AssetExecutionContext, config: SyncConfig,
                replicator: ReplicatorResource) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        with replicator.open() as rep:
            def one(name: str) -> dict[str, object]:
                def progress(table_name: str, rows: int, rate: float) -> None:
                    context.log.info(f"{table_name}: {rows:,} rows so far ({rate:,.0f} rows/s)")

                result = rep.extract(name, full_refresh=config.full_refresh, progress=progress)
                lake = rep.table_lake(name)
                manifest = lake.latest()
                rows = sum(m.rows for m in lake.active())
                return tr.extract_metadata(result, manifest, rows)

            yield from _each_selected(context, rep, names, one, workers=None)

    return extract


def warehouse_assets(source: str, specs: Mapping[str, dg.AssetSpec], table_names: Mapping[str, str]) -> dg.AssetsDefinition:
    """warehouse/<name> for every table of `source`: load the batches it has not loaded yet (`specs` skippable)."""
    names = {spec.key: name for name, spec in specs.items()}

    @dg.multi_asset(name=f"warehouse__{source}", specs=list(specs.values()), check_specs=check_specs("warehouse", names),
                    can_subset=True, pool=tr.warehouse_pool(source))
    def load(context: dg.AssetExecutionContext,
             replicator: ReplicatorResource) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        with replicator.open() as rep:
            def one(name: str) -> dict[str, object]:
                result = rep.load(name)
                rep.compact_when_due(name)  # here, after the load: a warehouse at the batch compacted moves nothing
                return tr.load_metadata(result, rep.warehouse.last_loaded_seq(name), table_names[name])

            yield from _each_selected(context, rep, names, one)

    return load
