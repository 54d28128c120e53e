"""Asset checks per table: row-count parity on the warehouse; freshness, schema drift, reconciliation on the lake."""

# No `from __future__ import annotations`: Dagster reads these type hints at definition time.
from collections.abc import Callable

import dagster as dg

from replicator import Replicator, checks

from . import translator as tr
from .assets import run_library
from .resources import ReplicatorResource

_Check = Callable[[Replicator, str], checks.CheckOutcome]

# (layer, check name, what it checks, the library function, how bad a failure is)
_CHECKS: list[tuple[str, str, str, _Check, dg.AssetCheckSeverity]] = [
    ("warehouse", "row_count_parity", "warehouse rows = lake current-state rows (= source rows for full tables)",
     checks.check_row_count_parity, dg.AssetCheckSeverity.ERROR),
    ("lake", "freshness", "the last successful sync is within the table's freshness",
     checks.check_freshness, dg.AssetCheckSeverity.WARN),
    ("lake", "schema_drift", "source columns match the YAML (or the lake's schema when the YAML lists none)",
     checks.check_schema_drift, dg.AssetCheckSeverity.WARN),
    ("lake", "reconciliation", "source and lake agree per hashed key bucket (keys and watermarks)",
     checks.check_reconciliation, dg.AssetCheckSeverity.WARN),
]


def _build(name: str, layer: str, check_name: str, description: str, run: _Check,
           severity: dg.AssetCheckSeverity) -> dg.AssetChecksDefinition:
    key = tr.lake_key(name) if layer == "lake" else tr.warehouse_key(name)

    @dg.asset_check(asset=key, name=check_name, description=description)
    def check(context: dg.AssetCheckExecutionContext, replicator: ReplicatorResource) -> dg.AssetCheckResult:
        with replicator.open() as rep:
            outcome = run_library(context, lambda: run(rep, name))
        return dg.AssetCheckResult(passed=outcome.passed, description=outcome.description,
                                   metadata=outcome.metadata, severity=severity)

    return check


def table_checks(name: str) -> list[dg.AssetChecksDefinition]:
    return [_build(name, *spec) for spec in _CHECKS]
