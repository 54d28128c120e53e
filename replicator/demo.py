"""The embedded demo project: a SQLite ride-hailing source, a local lake folder and a DuckDB warehouse."""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["DEMO_MARKER", "DEMO_PROJECT_YAML", "DEMO_TABLES", "write_demo_project"]

DEMO_MARKER = ".replicator-demo"

DEMO_PROJECT_YAML = """\
# The embedded demo: everything lives in this folder; no server, no network.
sources:
  app:
    url: sqlite:///app.db
lake:
  url: lake
  iceberg: {}   # every committed batch also published to Iceberg (SQLite catalog iceberg.db, beside this file)
warehouse:
  url: duckdb:///warehouse.duckdb
  schema: raw
schemas_dir: schemas
"""

DEMO_TABLES: dict[str, str] = {
    "cities": """\
# A small dimension table: copied whole every run (deleted rows disappear too).
source: app
table: cities
primary_key: [id]
replication: full
description: Cities where the service operates.
""",
    "drivers": """\
source: app
table: drivers
primary_key: [id]
watermark: updated_at
lookback: 5m
description: Drivers, their home city and rating.
""",
    "riders": """\
source: app
table: riders
primary_key: [id]
watermark: updated_at
lookback: 5m
description: Registered riders.
""",
    "rides": """\
source: app
table: rides
primary_key: [id]
watermark: updated_at
lookback: 5m
partition_by: created_at        # lake folders rides/dt=YYYY-MM-DD/; a list nests them: [city_id, created_at]
partition_granularity: day
description: One row per ride request, updated as the ride progresses.
columns: [id, city_id, driver_id, rider_id, status, price, distance_km, created_at, updated_at, notes]
""",
    "payments": """\
source: app
table: payments
primary_key: [id]
watermark: updated_at
lookback: 5m
description: Payments of completed rides.
""",
}


def write_demo_project(folder: Path, *, project_yaml: bool = True) -> None:
    """Lay out the demo project in `folder`, replacing an earlier demo there; refuse any other content."""
    if folder.exists() and any(folder.iterdir()):
        if not (folder / DEMO_MARKER).exists():
            raise FileExistsError(f"{folder} exists and is not a replicator demo folder; pass another --dir")
        shutil.rmtree(folder)
    (folder / "schemas").mkdir(parents=True)
    (folder / DEMO_MARKER).write_text("created by `replicator demo`; safe to delete\n")
    if project_yaml:
        (folder / "replicator.yml").write_text(DEMO_PROJECT_YAML)
    for name, text in DEMO_TABLES.items():
        (folder / "schemas" / f"{name}.yml").write_text(text)
