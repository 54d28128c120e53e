"""Module-level job factory, so Dagster's multiprocess executor can reconstruct the job in child processes."""

from __future__ import annotations

import os

import dagster as dg


def two_tables_job() -> dg.JobDefinition:
    """rides and drivers, lake and warehouse assets, without checks: four steps, each its own process."""
    from dagster_defs import build_definitions

    keys = [dg.AssetKey([layer, name]) for name in ("rides", "drivers") for layer in ("lake", "warehouse")]
    job = dg.define_asset_job("two_tables", selection=dg.AssetSelection.assets(*keys).without_checks())
    defs = build_definitions(os.environ["REPLICATOR_PROJECT"])
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[job])).resolve_job_def("two_tables")
