"""`replicator onboard --update NAME` adds new source columns to the YAML's list, keeping the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from replicator import Replicator

from ..conftest import execute, write_project


@pytest.mark.parametrize("style", ["flow", "block"])
def test_update_appends_new_columns(style: str, tmp_path: Path, pg_url: str, duckdb_url: str) -> None:
    execute(pg_url, "CREATE TABLE items (id int PRIMARY KEY, name text, updated_at timestamptz NOT NULL DEFAULT now())",
            "INSERT INTO items (id, name) VALUES (1, 'a')")
    columns = ("columns: [id, name, updated_at]  # kept comment\n" if style == "flow"
               else "columns:\n  - id\n  - name\n  - updated_at\n# trailing comment\n")
    path = write_project(tmp_path, sources={"app": pg_url}, lake=str(tmp_path / "lake"), warehouse=duckdb_url, tables={
        "items": "source: app\ntable: items\nprimary_key: [id]\nwatermark: updated_at\n" + columns})
    rep = Replicator.from_path(path)
    rep.sync("items")
    execute(pg_url, "ALTER TABLE items ADD COLUMN color text", "ALTER TABLE items ADD COLUMN \"Size Label\" text",
            "UPDATE items SET color = 'red', updated_at = now() + interval '1 second'")
    run = [sys.executable, "-m", "replicator", "--project", str(path), "onboard", "--update", "items"]
    out = subprocess.run(run, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "added color, Size Label" in out.stdout
    text = (tmp_path / "schemas" / "items.yml").read_text()
    assert ("# kept comment" in text) if style == "flow" else ("# trailing comment" in text)
    rep = Replicator.from_path(path)
    assert rep.project.table("items").columns == ["id", "name", "updated_at", "color", "Size Label"]
    rep.sync("items")
    assert rep.read_table("items").to_pylist()[0]["color"] == "red"
    again = subprocess.run(run, capture_output=True, text=True)
    assert "columns already match the source" in again.stdout
