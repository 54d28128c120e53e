"""Asset checks per table: row-count parity on the warehouse, freshness and schema drift on the lake."""

# No `from __future__ import annotations`: Dagster reads these type hints at definition time.

import dagster as dg

from replicator import checks

from . import translator as tr
from .assets import run_library
from .resources import ReplicatorResource


def _result(outcome: checks.CheckOutcome, severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=outcome.passed, description=outcome.description,
                               metadata=outcome.metadata, severity=severity)


def table_checks(name: str) -> list[dg.AssetChecksDefinition]:
    @dg.asset_check(asset=tr.warehouse_key(name), name="row_count_parity",
                    description="warehouse rows = lake current-state rows (= source rows for full tables)")
    def parity(context: dg.AssetCheckExecutionContext, replicator: ReplicatorResource) -> dg.AssetCheckResult:
        with replicator.open() as rep:
            return _result(run_library(context, lambda: checks.check_row_count_parity(rep, name)), dg.AssetCheckSeverity.ERROR)

    @dg.asset_check(asset=tr.lake_key(name), name="freshness",
                    description="the last successful sync is within the table's freshness")
    def freshness(context: dg.AssetCheckExecutionContext, replicator: ReplicatorResource) -> dg.AssetCheckResult:
        with replicator.open() as rep:
            return _result(run_library(context, lambda: checks.check_freshness(rep, name)), dg.AssetCheckSeverity.WARN)

    @dg.asset_check(asset=tr.lake_key(name), name="schema_drift",
                    description="source columns match the YAML (or the lake's schema when the YAML lists none)")
    def drift(context: dg.AssetCheckExecutionContext, replicator: ReplicatorResource) -> dg.AssetCheckResult:
        with replicator.open() as rep:
            return _result(run_library(context, lambda: checks.check_schema_drift(rep, name)), dg.AssetCheckSeverity.WARN)

    @dg.asset_check(asset=tr.lake_key(name), name="reconciliation",
                    description="source and lake agree per hashed key bucket (keys and watermarks)")
    def reconciliation(context: dg.AssetCheckExecutionContext, replicator: ReplicatorResource) -> dg.AssetCheckResult:
        with replicator.open() as rep:
            return _result(run_library(context, lambda: checks.check_reconciliation(rep, name)), dg.AssetCheckSeverity.WARN)

    return [parity, freshness, drift, reconciliation]
