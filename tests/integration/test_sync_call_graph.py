"""`replicator sync` of one table reads top-down: the modules its calls pass through form a chain of at
most eight, and no module calls back into one that called it.

The call stacks are recorded while a real sync runs (PostgreSQL source, local lake, DuckDB warehouse,
Iceberg publication; a full batch, then an incremental one with an update and an insert), so what is
measured is the code that runs, not the imports: following any call down from `cli.py`, a reader
passes at most eight modules and never returns to one left on the way down. A dialect module is read
together with the base class it extends (`sources/base.py` calls the hooks its subclass overrides), so
the two count as one module.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import duckdb

from replicator.cli import main

from ..conftest import execute, write_project

_DIALECTS = {f"replicator.sources.{m}" for m in ("base", "postgres", "mysql", "sqlite")}


def _module(frame: FrameType) -> str:
    name = str(frame.f_globals.get("__name__", ""))
    return "replicator.sources.<dialect>" if name in _DIALECTS else name


def _module_stacks(run: Callable[[], Any]) -> set[tuple[str, ...]]:
    """Every distinct stack of replicator modules (outermost first, a module's consecutive frames as one)
    that a call reaches while `run` runs; frames of other libraries in between (a callback from pyarrow,
    a context manager's exit) are skipped."""
    stacks: set[tuple[str, ...]] = set()

    def profile(frame: FrameType, event: str, _arg: object) -> None:
        if event != "call" or not _module(frame).startswith("replicator"):
            return
        modules: list[str] = []
        current: FrameType | None = frame
        while current is not None:
            name = _module(current)
            if name.startswith("replicator") and current.f_code.co_name == "<module>":
                return  # an import running a module's body, not the sync's own calls
            if name.startswith("replicator") and (not modules or modules[-1] != name):
                modules.append(name)
            current = current.f_back
        stacks.add(tuple(reversed(modules)))

    sys.setprofile(profile)
    try:
        assert run() == 0
    finally:
        sys.setprofile(None)
    return stacks


def test_sync_passes_at_most_eight_modules_and_never_comes_back(tmp_path: Path, pg_url: str) -> None:
    execute(pg_url, "CREATE TABLE rides (id bigint PRIMARY KEY, city_id int NOT NULL, price numeric(12,2), "
                    "updated_at timestamptz NOT NULL)",
            "INSERT INTO rides SELECT g, g % 5, g * 1.25, now() - interval '1 hour' FROM generate_series(1, 500) g")
    project = write_project(
        tmp_path, sources={"app": pg_url}, lake=str(tmp_path / "lake"),
        warehouse=f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        tables={"rides": "source: app\ntable: public.rides\nprimary_key: [id]\nwatermark: updated_at\n"
                         "lookback: 1m\npartition_by: [city_id]\n"})
    lake = f"  url: '{tmp_path / 'lake'}'\n"
    project.write_text(project.read_text().replace(lake, f"{lake}  iceberg:\n    catalog_uri: 'sqlite:///iceberg.db'\n"))
    sync = ["--project", str(project), "sync", "rides"]

    full = _module_stacks(lambda: main(sync))
    execute(pg_url, "UPDATE rides SET price = 0, updated_at = now() - interval '30 minutes' WHERE id <= 10",
            "INSERT INTO rides VALUES (501, 1, 9.5, now() - interval '30 minutes')")
    incremental = _module_stacks(lambda: main(sync))

    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        assert con.execute("SELECT count(*), count(DISTINCT id), sum(price = 0) FROM raw.rides").fetchone() == (
            501, 501, 10)
    stacks = full | incremental
    back = [s for s in stacks if len(set(s)) < len(s)]
    assert not back, "a module is called back from one it called: " + " -> ".join(min(back, key=len))
    deepest = max(stacks, key=len)
    assert len(deepest) <= 8, " -> ".join(deepest)
    reached = {m for s in stacks for m in s}
    for part in ("replicator.extract", "replicator.lake.batch", "replicator.lake.writer", "replicator.load",
                 "replicator.iceberg", "replicator.warehouse.duckdb", "replicator.sources.<dialect>"):
        assert part in reached, f"the sync never reached {part}: the trace does not show the whole path"
