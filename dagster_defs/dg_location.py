"""The `dg` project's code location (`[tool.dg.project] code_location_target_module`): the defs folder's Components."""

from __future__ import annotations

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(project_root=Path(__file__).resolve().parent.parent)
