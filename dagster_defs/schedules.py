"""When tables sync: cron schedules (the default), or Dagster's declarative automation.

Schedules: `sync_all`, plus one job and schedule per distinct cron expression (`sync_default` for
`defaults.schedule`, `sync_cron_<spelled cron>` for the others), not one per table, so 500 tables on a few
crons cost a few definitions. Automation (`automation: conditions`): each lake and warehouse asset gets
`AutomationCondition.on_cron(<its cron>)`, with its `source/...` dependency ignored (the extract reads
the source itself; an external asset is never materialized, so on_cron would otherwise wait for it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import dagster as dg

_SPELLED = {"*": "x", "/": "every", ",": "and", "-": "to", " ": "_"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def job_name(cron: str, default_cron: str) -> str:
    """sync_default for the default cron, else e.g. sync_cron_xevery15_x_x_x_x for "*/15 * * * *" (one-to-one)."""
    if cron == default_cron:
        return "sync_default"
    spelled = "".join(_SPELLED.get(c, c) for c in " ".join(cron.split()))
    return "sync_cron_" + _UNSAFE.sub("_", spelled)


def sync_jobs(keys_by_cron: Mapping[str, Sequence[dg.AssetKey]], default_cron: str,
              running: bool) -> tuple[list[dg.UnresolvedAssetJobDefinition], list[dg.ScheduleDefinition]]:
    status = dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
    every = [k for keys in keys_by_cron.values() for k in keys]
    jobs = [dg.define_asset_job("sync_all", selection=dg.AssetSelection.assets(*every), description="sync every table")]
    schedules = []
    for cron, keys in sorted(keys_by_cron.items()):
        name = job_name(cron, default_cron)
        job = dg.define_asset_job(name, selection=dg.AssetSelection.assets(*keys), description=f"tables on {cron!r}")
        jobs.append(job)
        schedules.append(dg.ScheduleDefinition(name=f"{name}_schedule", job=job, cron_schedule=cron, default_status=status))
    return jobs, schedules


def on_cron(cron: str, sources: Sequence[dg.AssetKey]) -> dg.AutomationCondition:
    """Run on `cron` once the dependencies updated since the tick, ignoring the external source assets."""
    condition = dg.AutomationCondition.on_cron(cron)
    return condition.ignore(dg.AssetSelection.assets(*sources)) if sources else condition


def observe_job(source_keys: Sequence[dg.AssetKey], cron: str,
                running: bool) -> tuple[dg.UnresolvedAssetJobDefinition, dg.ScheduleDefinition]:
    job = dg.define_asset_job("observe_sources", selection=dg.AssetSelection.assets(*source_keys),
                              description="observe each source table's highest watermark (read-only, one query each)")
    status = dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
    return job, dg.ScheduleDefinition(name="observe_sources_schedule", job=job, cron_schedule=cron, default_status=status)
