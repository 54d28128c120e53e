"""Read a table back from the lake: its committed batches, keys in a watermark window, current state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .. import watermark as wm
from ..current_state import CurrentStateRule
from ..errors import LakeError
from . import paths
from .manifest import Manifest, list_manifest_seqs, load_manifest
from .store import LakeStore, lake_error

__all__ = ["active_manifests", "current_state", "latest_in_window", "manifests_reaching", "read_files"]


def active_manifests(store: LakeStore, table: str, as_of: int | None = None) -> list[Manifest]:
    """Manifests that make up the table: from the latest full batch (if any) on, up to `as_of`."""
    seqs = [s for s in list_manifest_seqs(store, table) if as_of is None or s <= as_of]
    manifests: list[Manifest] = []
    for seq in reversed(seqs):
        manifest = load_manifest(store, table, seq)
        manifests.append(manifest)
        if manifest.mode == "full":
            break
    return list(reversed(manifests))


def manifests_reaching(store: LakeStore, table: str, lower: Any) -> list[Manifest]:
    """The newest manifests that may hold rows with watermark >= lower, oldest first.

    Each manifest records the highest watermark ever committed (cumulative, so it never decreases):
    walking back, the first manifest below `lower` ends the walk, however long the history.
    """
    found: list[Manifest] = []
    for seq in reversed(list_manifest_seqs(store, table)):
        manifest = load_manifest(store, table, seq)
        top = wm.decode(manifest.max_seen)
        if lower is not None and top is not None and top < lower:
            break
        found.append(manifest)
        if manifest.mode == "full":
            break
    return list(reversed(found))


def sized_fragments(store: LakeStore, paths: Sequence[str], sizes: Sequence[int]) -> list[ds.ParquetFileFragment]:
    """The files at `paths` as fragments that know their sizes (the manifest's, in the same order).

    Read by bare path, pyarrow asks an object store for a file's size before reading it: twice for a
    dataset (discovery, then opening), three times for `pq.read_table`, each a HEAD on S3.
    """
    parquet = ds.ParquetFileFormat()
    return [parquet.make_fragment(path, filesystem=store.fs, file_size=size) for path, size in zip(paths, sizes,
                                                                                                   strict=True)]


def read_files(store: LakeStore, paths: Sequence[str], columns: Sequence[str] | None = None,
               schema: pa.Schema | None = None, sizes: Sequence[int] | None = None) -> pa.Table:
    """The files at `paths`, whole or `columns` only, one after another; `sizes` as `sized_fragments`."""
    wanted = list(columns) if columns else None
    fragments = None if sizes is None else sized_fragments(store, paths, sizes)  # lazy: no I/O until read
    tables = []
    for i, path in enumerate(paths):
        try:
            tables.append(pq.read_table(path, filesystem=store.fs, columns=wanted) if fragments is None
                          else fragments[i].to_table(columns=wanted))
        except (OSError, pa.ArrowException) as exc:
            raise lake_error("read", path, exc) from exc
    if not tables:
        if schema is None:
            return pa.table({})
        return schema.empty_table() if columns is None else schema.empty_table().select(list(columns))
    return pa.concat_tables(tables, promote_options="permissive")


def latest_in_window(store: LakeStore, manifests: Sequence[Manifest], key: Sequence[str], watermark: str,
                     lower: Any, include_nulls: bool = False, fallback: str | None = None) -> pa.Table:
    """Per key, the lake's latest committed version among rows whose watermark is >= lower, every column.

    Only files that can hold such rows are read. The watermark is the effective one (the fallback
    column's value where it is NULL); with `include_nulls`, rows whose effective watermark is NULL
    count as inside the window. A re-read row equal to its key's version here is already in the lake.
    """
    wanted = []
    for manifest in manifests:
        for f in manifest.files:
            hi = wm.decode(f.watermark_max)
            if lower is None or include_nulls or (hi is not None and hi >= lower):
                wanted.append(paths.in_table(store.root, manifest.table, f.path))
    if not wanted:
        return manifests[-1].schema.empty_table() if manifests else pa.table({})
    schema = manifests[-1].schema
    value = pc.field(watermark) if fallback is None else pc.coalesce(pc.field(watermark), pc.field(fallback))
    window = None
    if lower is not None:
        window = value >= pa.scalar(lower, type=schema.field(watermark).type)
        if include_nulls:
            window = window | value.is_null()
    try:
        # Filtered while scanning (and pruned by row-group statistics): only the window's rows are held.
        data = ds.dataset(wanted, schema=schema, format="parquet", filesystem=store.fs).to_table(filter=window)
    except (OSError, pa.ArrowException) as exc:
        raise lake_error("read", wanted[0], exc) from exc
    if data.num_rows == 0:
        return data
    return CurrentStateRule(key=tuple(key), watermark=watermark, fallback=fallback).latest(data)


def latest_per_key(data: pa.Table, key: Sequence[str], watermark: str | None, *, fallback: str | None = None) -> pa.Table:
    """The current state of `data`: per key its latest version, keys whose latest row is deleted dropped.

    The rule is `CurrentStateRule`'s, in Arrow rather than SQL: every lake type (decimal256) stays exact.
    """
    return CurrentStateRule(key=tuple(key), watermark=watermark, fallback=fallback).current(data)


def current_state(store: LakeStore, table: str, key: Sequence[str], watermark: str | None,
                  as_of: int | None = None, *, fallback: str | None = None) -> pa.Table:
    """The table as the lake holds it (after batch `as_of`, default the latest): one row per key.

    Each file is read where it is now (final, staging or superseded path: see `recovery.locate`).
    """
    from .publish import superseded_path
    from .recovery import locate, read_committed  # imported here: recovery imports this module

    manifests = active_manifests(store, table, as_of)
    schema = manifests[-1].schema if manifests else None
    files = [f for m in manifests for f in m.files]
    if as_of is None:
        return latest_per_key(read_committed(store, table, files, schema=schema), key, watermark, fallback=fallback)
    where = locate(store, table, files)
    gone = [f for f, w in zip(files, where) if w is None]
    if gone:
        raise LakeError(
            f"lake: the state of {table!r} after batch {as_of} is older than the retention: its file "
            f"{store.uri(superseded_path(store, table, gone[0].path))} was removed by `replicator compact`"
        )
    data = read_files(store, [w for w in where if w is not None], schema=schema, sizes=[f.bytes for f in files])
    return latest_per_key(data, key, watermark, fallback=fallback)
