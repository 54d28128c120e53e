"""Asset checks: row-count parity on the warehouse; freshness, schema drift, reconciliation on the lake.

One subsettable definition per kind of check, covering every table (cheap to build for many tables).
"""

# No `from __future__ import annotations`: Dagster reads these type hints at definition time.
from collections.abc import Callable, Iterator, Mapping

import dagster as dg

from replicator import Replicator, ReplicatorError, checks

from .assets import step_failure
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


def _build(keys: Mapping[str, dg.AssetKey], check_name: str, description: str, run: _Check,
           severity: dg.AssetCheckSeverity) -> dg.AssetChecksDefinition:
    specs = {dg.AssetCheckKey(key, check_name): name for name, key in keys.items()}

    @dg.multi_asset_check(
        name=check_name, can_subset=True,
        specs=[dg.AssetCheckSpec(check_name, asset=k.asset_key, description=description) for k in specs],
    )
    def check(context: dg.AssetCheckExecutionContext, replicator: ReplicatorResource) -> Iterator[dg.AssetCheckResult]:
        errors: list[ReplicatorError] = []
        with replicator.open() as rep:
            for check_key in sorted(context.selected_asset_check_keys & specs.keys(), key=str):
                try:
                    outcome = run(rep, specs[check_key])
                except ReplicatorError as exc:
                    errors.append(exc)
                    continue
                yield dg.AssetCheckResult(asset_key=check_key.asset_key, check_name=check_name, passed=outcome.passed,
                                          description=outcome.description, metadata=outcome.metadata, severity=severity)
        if errors:
            raise step_failure(context, errors)

    return check


def table_checks(lake_keys: Mapping[str, dg.AssetKey], warehouse_keys: Mapping[str, dg.AssetKey]) -> list[dg.AssetChecksDefinition]:
    return [_build(warehouse_keys if layer == "warehouse" else lake_keys, *spec) for layer, *spec in _CHECKS]
