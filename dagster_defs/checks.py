"""Asset checks: row-count parity on the warehouse; freshness, schema drift, reconciliation on the lake.

The checks are `check_specs` of the multi-asset that materializes their table (`lake__<source>`,
`warehouse__<source>`), not definitions of their own: an op per kind of check would give Dagster one
input per checked table to build (2,000 for 500 tables) and a step of its own to run. They run in that
step after its tables, for each selected check whose table did not fail there (as a check of a failed
upstream step was skipped before); a check selected alone runs that step with no table selected.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import TYPE_CHECKING

import dagster as dg

from replicator.errors import ReplicatorError

if TYPE_CHECKING:
    from replicator import Replicator, checks

    _Check = Callable[[Replicator, str], checks.CheckOutcome]

# (layer, check name, what it checks, the function of replicator.checks, how bad a failure is); the
# functions are looked up in the step: building the definitions does not import the checks (nor pyarrow).
_CHECKS: list[tuple[str, str, str, str, dg.AssetCheckSeverity]] = [
    ("warehouse", "row_count_parity", "warehouse rows = lake current-state rows (= source rows for full tables)",
     "check_row_count_parity", dg.AssetCheckSeverity.ERROR),
    ("lake", "freshness", "the last successful sync is within the table's freshness",
     "check_freshness", dg.AssetCheckSeverity.WARN),
    ("lake", "schema_drift", "source columns match the YAML (or the lake's schema when the YAML lists none)",
     "check_schema_drift", dg.AssetCheckSeverity.WARN),
    ("lake", "reconciliation", "source and lake agree per hashed key bucket (keys and watermarks)",
     "check_reconciliation", dg.AssetCheckSeverity.WARN),
    # Only for projects with `lake.iceberg` (see check_specs).
    ("lake", "iceberg_published", "the Iceberg table has recorded the lake's latest committed batch",
     "check_iceberg_published", dg.AssetCheckSeverity.WARN),
]
_ICEBERG_ONLY = {"iceberg_published"}
_BY_NAME = {name: (run, severity) for _, name, _, run, severity in _CHECKS}


def check_specs(layer: str, keys: Collection[dg.AssetKey], *, iceberg: bool = False) -> list[dg.AssetCheckSpec]:
    """The checks of `layer` ("lake" or "warehouse") for each asset of `keys` (`iceberg`: publication is on)."""
    return [dg.AssetCheckSpec(name, asset=key, description=description)
            for key in keys for check_layer, name, description, _, _ in _CHECKS
            if check_layer == layer and (iceberg or name not in _ICEBERG_ONLY)]


def check_results(context: dg.AssetExecutionContext, rep: Replicator, names: Mapping[dg.AssetKey, str],
                  failed: Collection[dg.AssetKey], errors: list[ReplicatorError]) -> Iterator[dg.AssetCheckResult]:
    """Run the step's selected checks of the tables `names` (not of those in `failed`); errors go to `errors`."""
    for check_key in sorted(context.selected_asset_check_keys, key=str):
        if check_key.asset_key not in names or check_key.asset_key in failed:
            continue
        function, severity = _BY_NAME[check_key.name]
        run: _Check = getattr(importlib.import_module("replicator.checks"), function)
        try:
            outcome = run(rep, names[check_key.asset_key])
        except ReplicatorError as exc:
            context.log.error(f"{check_key.name} on {names[check_key.asset_key]}: {exc}")
            errors.append(exc)
            continue
        yield dg.AssetCheckResult(asset_key=check_key.asset_key, check_name=check_key.name, passed=outcome.passed,
                                  description=outcome.description, metadata=outcome.metadata, severity=severity)
