"""`replicator onboard`: introspect a source table and write its schemas/<name>.yml."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from .config import TableConfig
from .errors import ConfigError, SourceError
from .runner import Replicator
from .sources import TableSchema

__all__ = ["onboard_table", "suggest_watermark"]

_UPDATED_LIKE = re.compile(r"(updated|modified|changed|last_update|last_modified|mtime)", re.IGNORECASE)


def suggest_watermark(schema: TableSchema, primary_key: list[str]) -> str | None:
    """An updated_at-like timestamp column, else a single integer primary key, else None."""
    timestamps = [c.name for c in schema.columns if pa.types.is_timestamp(c.arrow_type)]
    for name in timestamps:
        if _UPDATED_LIKE.search(name):
            return name
    if len(primary_key) == 1 and pa.types.is_integer(schema.column(primary_key[0]).arrow_type):
        return primary_key[0]
    return None


def onboard_table(rep: Replicator, source: str, table: str, *, name: str | None = None) -> Path:
    if source not in rep.project.config.sources:
        raise ConfigError(f"{rep.project.path}: sources: no source named {source!r}; known: {', '.join(rep.project.config.sources)}")
    name = name or re.sub(r"[^A-Za-z0-9_]+", "_", table.rsplit(".", 1)[-1]).strip("_").lower()
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
        raise ConfigError(f"--name: {name!r} is not a valid table name; use letters, digits and underscores")
    path = rep.project.schemas_dir / f"{name}.yml"
    if path.exists():
        raise ConfigError(f"{path}: already exists; onboard refuses to overwrite it (pass --name to choose another)")
    for other, existing in rep.project.tables.items():
        if existing.source == source and existing.table == table:
            raise ConfigError(f"{rep.project.table_files[other]}: already replicates {table!r} of source {source!r}")
    reader = rep.source(source)
    probe = TableConfig(source=source, table=table, primary_key=["_"], replication="full")
    primary_key = reader.primary_key(probe)
    schema = reader.describe(TableConfig(source=source, table=table, primary_key=primary_key or ["_"], replication="full")) if primary_key else None
    if schema is None:
        raise SourceError(f"table {table!r} of source {source!r} has no primary key; write its YAML by hand with primary_key: [...]")
    watermark = suggest_watermark(schema, primary_key)
    lines = [f"source: {source}", f"table: {_yaml_str(table)}", f"primary_key: [{', '.join(_yaml_str(k) for k in primary_key)}]"]
    if watermark and pa.types.is_integer(schema.column(watermark).arrow_type):
        lines += ["replication: incremental", f"watermark: {_yaml_str(watermark)}",
                  "lookback: 0  # ids behind the stored watermark to re-read (ids are handed out before commit)"]
    elif watermark:
        lines += ["replication: incremental", f"watermark: {_yaml_str(watermark)}", "lookback: 5m"]
    else:
        lines += ["replication: full  # no updated_at-like column or integer key found for a watermark"]
    lines.append("columns:")
    lines += [f"  - {_yaml_str(c.name)}  # {c.source_type} -> {c.arrow_type}" for c in schema.columns]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "x", encoding="utf-8") as fh:
        fh.write("# written by `replicator onboard`; edit freely\n" + "\n".join(lines) + "\n")
    return path


def _yaml_str(value: str) -> str:
    return value if re.match(r"^[A-Za-z_][A-Za-z0-9_.]*$", value) else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def update_columns(rep: Replicator, name: str) -> tuple[Path, list[str]]:
    """Add source columns the table's `columns:` list lacks to its YAML file; returns the file and the added names.

    The file is edited in place (comments and order kept): new names are appended to the list.
    """
    table = rep.project.table(name)
    path = rep.project.table_files[name]
    if table.columns is None:
        return path, []  # no list: every column is replicated already
    source = rep.source(table.source)
    with source.connect() as conn:
        present = [c["name"] for c in source.reflect(conn, table)]
    added = [c for c in present if c not in table.columns]
    if not added:
        return path, []
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"^columns\s*:", line))
    flow = re.match(r"^(columns\s*:\s*\[)(.*)\](.*)$", lines[start])
    if flow:
        items = flow.group(2).rstrip().rstrip(",")
        lines[start] = f"{flow.group(1)}{items}, {', '.join(_yaml_str(c) for c in added)}]{flow.group(3)}"
    else:
        end = start + 1
        while end < len(lines) and re.match(r"^\s+-\s", lines[end]):
            end += 1
        indent = re.match(r"^(\s+)-", lines[start + 1]).group(1) if end > start + 1 else "  "  # type: ignore[union-attr]
        lines[end:end] = [f"{indent}- {_yaml_str(c)}" for c in added]
    path.write_text("\n".join(lines) + ("\n" if text.endswith("\n") else ""), encoding="utf-8")
    return path, added
