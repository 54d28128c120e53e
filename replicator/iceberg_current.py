"""The current-state Iceberg table: one row per key, deletions removed, recomputed per batch by partition.

Beside each change table `<namespace>.<name>` replicator keeps `<current_namespace>.<name>`, the table's
current state under `CurrentStateRule` (the rule the lake reader and the warehouses apply). It is the
table a training set is read from. A batch is applied as one Iceberg overwrite snapshot:

- a full batch replaces every file with the batch's current state;
- an incremental batch recomputes only the partitions it touches: the partitions of its live rows, and the
  partitions where any of its keys lived until now (found through the files' key bounds, then their key
  columns). Each such partition's rows, without the batch's keys, plus the batch's latest live version of
  each key, are written as new files, and the partition's old files are dropped from the snapshot.

So a batch costs the partitions it touched, never the whole table (unless it touched every partition), and
a partition stays a few files however many batches passed. Replaced files stay on disk: older snapshots
(time travel by tag or timestamp) still read them.

The partition spec follows the lake's `partition_by`; a table without one is partitioned by its integer
key in ranges of `KEY_RANGE` (recent keys, where most changes are, share a partition), or not at all.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from .current_state import DELETED_COLUMN, CurrentStateRule

if TYPE_CHECKING:
    from pyiceberg.manifest import DataFile
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.table import FileScanTask, Table, Transaction

    from .lake.manifest import Manifest
    from .lake.table import TableLake

__all__ = ["KEY_RANGE", "apply_batch", "current_schema", "key_range_partitioned"]

KEY_RANGE = 1_000_000
_ROW = "__replicator_row"


def current_schema(schema: pa.Schema) -> pa.Schema:
    """The current-state table's columns: the change table's without `_deleted` (always false there)."""
    return pa.schema([f for f in schema if f.name != DELETED_COLUMN], metadata=schema.metadata)


def key_range_partitioned(schema: pa.Schema, key: Sequence[str]) -> bool:
    """Whether a table without `partition_by` gets key ranges: a single integer key."""
    return len(key) == 1 and pa.types.is_integer(schema.field(key[0]).type)


def apply_batch(tx: Transaction, table: Table, lake: TableLake, manifest: Manifest, rule: CurrentStateRule,
                properties: dict[str, str], *, unchanged: bool = False) -> None:
    """Stage batch `manifest` into `tx`, a transaction on the current-state table `table`: one overwrite snapshot.

    Rows are written a piece at a time (a lake file of a full batch, a touched partition), so memory
    follows the largest piece, not the table. `unchanged`: the batch holds the table's state as it is (a
    compaction of the batch it stands at): the snapshot records it and moves no file.
    """
    # pyiceberg's own writer of partitioned data files, without its commit (ours is the one overwrite below).
    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    with tx.update_schema() as update:  # added columns, widened types
        update.union_by_name(current_schema(manifest.schema))
    target = tx.table_metadata.schema().as_arrow()
    tasks = list(table.scan().plan_files()) if table.current_snapshot() is not None else []
    pieces: Iterator[pa.Table]
    if unchanged:
        removed, pieces = [], iter(())
    elif manifest.mode == "full":
        removed = tasks
        pieces = _full_pieces(lake, manifest, rule)
    else:
        latest = rule.latest(lake.read(manifest.files, schema=manifest.schema))
        keys = latest.select(list(rule.key))
        live = _live(latest)
        touched = _partitions(tx.table_metadata.spec(), table, live) | _holding(table, tasks, keys, rule.key)
        removed = [t for t in tasks if _partition_of(t) in touched]
        pieces = _incremental_pieces(table, removed, keys, rule.key, live)
    added: list[DataFile] = []
    for piece in pieces:
        if piece.num_rows:
            added.extend(_dataframe_to_data_files(tx.table_metadata, _conform(piece, target), table.io))
    with _overwrite(tx, table, properties) as snapshot:
        for task in removed:
            snapshot.delete_data_file(task.file)
        for file in added:
            snapshot.append_data_file(file)


def _overwrite(tx: Transaction, table: Table, properties: dict[str, str]) -> Any:
    """pyiceberg's overwrite snapshot (`tx.update_snapshot().overwrite()`), with two things of Java's:

    - it drops the manifests of earlier snapshots that list deleted files only: pyiceberg 0.12 carries
      them into every later snapshot (the next overwrite keeps them, as none of their live entries is
      deleted), so the manifest list grew with every batch, and every batch and reader read them all
      (iceberg-go fixed the same, #1154);
    - it merges manifests as a merging append does (`commit.manifest-merge.enabled`,
      `commit.manifest.min-count-to-merge`): each batch leaves a manifest for the partitions it rewrote,
      so the list would otherwise grow up to the number of partitions.
    """
    from pyiceberg.table.snapshots import Operation

    operation = Operation.OVERWRITE if tx.table_metadata.current_snapshot() is not None else Operation.APPEND
    return _merging_overwrite()(operation=operation, transaction=tx, io=table.io, snapshot_properties=properties)


@functools.cache
def _merging_overwrite() -> type:
    from pyiceberg.manifest import ManifestContent, ManifestFile
    from pyiceberg.table import TableProperties
    from pyiceberg.table.update.snapshot import _ManifestMergeManager, _OverwriteFiles
    from pyiceberg.utils.properties import property_as_bool, property_as_int

    class MergingOverwrite(_OverwriteFiles):
        def _process_manifests(self, manifests: list[ManifestFile]) -> list[ManifestFile]:
            live = [m for m in manifests if m.added_snapshot_id == self._snapshot_id
                    or m.has_added_files() or m.has_existing_files()]
            settings = self._transaction.table_metadata.properties
            merger = _ManifestMergeManager(
                target_size_bytes=property_as_int(settings, TableProperties.MANIFEST_TARGET_SIZE_BYTES)
                or TableProperties.MANIFEST_TARGET_SIZE_BYTES_DEFAULT,
                min_count_to_merge=property_as_int(settings, TableProperties.MANIFEST_MIN_MERGE_COUNT)
                or TableProperties.MANIFEST_MIN_MERGE_COUNT_DEFAULT,
                merge_enabled=property_as_bool(settings, TableProperties.MANIFEST_MERGE_ENABLED,
                                               TableProperties.MANIFEST_MERGE_ENABLED_DEFAULT),
                snapshot_producer=self)
            return (merger.merge_manifests([m for m in live if m.content == ManifestContent.DATA])
                    + [m for m in live if m.content == ManifestContent.DELETES])

    return MergingOverwrite


def _full_pieces(lake: TableLake, manifest: Manifest, rule: CurrentStateRule) -> Iterator[pa.Table]:
    """A full batch's current state: file by file when its keys are unique (a source snapshot, a compaction
    always are), else the whole batch under the rule (a key the source does not enforce, repeated)."""
    if _unique(lake.read(manifest.files, columns=list(rule.key), schema=manifest.schema)):
        for file in manifest.files:
            yield _live(lake.read([file], schema=manifest.schema))
    else:
        yield rule.current(lake.read(manifest.files, schema=manifest.schema))


def _unique(keys: pa.Table) -> bool:
    """Whether no key repeats: sorted, no row equals the one before (a sort needs less memory than a hash)."""
    if keys.num_rows < 2:
        return True
    ordered = keys.sort_by([(name, "ascending") for name in keys.column_names])
    repeated = None
    for name in keys.column_names:
        column = ordered.column(name)
        same = pc.fill_null(pc.equal(column.slice(1), column.slice(0, keys.num_rows - 1)), False)
        repeated = same if repeated is None else pc.and_(repeated, same)
    return not pc.any(repeated).as_py()


def _incremental_pieces(table: Table, removed: Sequence[FileScanTask], keys: pa.Table, key: Sequence[str],
                        live: pa.Table) -> Iterator[pa.Table]:
    """Each touched partition's rows without the batch's keys, partition by partition; then the batch's live rows."""
    by_partition: dict[tuple[Any, ...], list[FileScanTask]] = {}
    for task in removed:
        by_partition.setdefault(_partition_of(task), []).append(task)
    for group in by_partition.values():
        yield _without_keys(_read(table, group), keys, key)
    yield live


def _live(latest: pa.Table) -> pa.Table:
    if DELETED_COLUMN not in latest.column_names:
        return latest
    return latest.filter(pc.invert(pc.fill_null(latest.column(DELETED_COLUMN), False)))


def _partitions(spec: PartitionSpec, table: Table, rows: pa.Table) -> set[tuple[Any, ...]]:
    """The partition of every row of `rows`, as the tuples a data file's partition record holds."""
    if rows.num_rows == 0:
        return set()
    if spec.is_unpartitioned():
        return {()}
    schema = table.schema()
    columns = []
    for field in spec.fields:
        source = schema.find_field(field.source_id)
        values = rows.column(source.name).combine_chunks()
        columns.append(field.transform.pyarrow_transform(source.field_type)(values).to_pylist())
    return set(zip(*columns, strict=True))


def _holding(table: Table, tasks: Sequence[FileScanTask], keys: pa.Table, key: Sequence[str]) -> set[tuple[Any, ...]]:
    """The partitions of files that hold any of `keys`: files pruned by their key bounds, then their keys read.

    The bounds are checked on the files already planned, with the evaluator a scan's planning uses, rather
    than by planning a second scan (which read every manifest again).
    """
    from pyiceberg.expressions.visitors import _InclusiveMetricsEvaluator

    if not tasks or keys.num_rows == 0:
        return set()
    may_hold = _InclusiveMetricsEvaluator(table.schema(), _key_bounds(keys, key)).eval
    found: set[tuple[Any, ...]] = set()
    for task in tasks:
        partition = _partition_of(task)
        if partition in found or not may_hold(task.file):
            continue
        held = _read(table, [task], key).join(keys, keys=list(key), join_type="left semi")
        if held.num_rows:
            found.add(partition)
    return found


def _partition_of(task: FileScanTask) -> tuple[Any, ...]:
    record = task.file.partition
    return tuple(record[i] for i in range(len(record)))


def _key_bounds(keys: pa.Table, key: Sequence[str]) -> Any:
    """A filter no file without one of `keys` can match by its column bounds (integer and text key columns)."""
    from pyiceberg import expressions as ex

    at_least: Any = ex.GreaterThanOrEqual  # pydantic models, whose generated signature mypy misreads
    at_most: Any = ex.LessThanOrEqual
    bounds: Any = ex.AlwaysTrue()
    for name in key:
        column = keys.column(name)
        if not (pa.types.is_integer(column.type) or pa.types.is_string(column.type)
                or pa.types.is_large_string(column.type)):
            continue
        low, high = pc.min_max(column).values()
        bounds = ex.And(bounds, ex.And(at_least(name, low.as_py()), at_most(name, high.as_py())))
    return bounds


def _read(table: Table, tasks: Iterable[FileScanTask], columns: Sequence[str] | None = None) -> pa.Table:
    """Files of the table, read in its current schema (a file older than a column reads NULL there)."""
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan

    schema = table.schema() if columns is None else table.schema().select(*columns)
    return ArrowScan(table.metadata, table.io, schema, AlwaysTrue()).to_table(list(tasks))


def _without_keys(rows: pa.Table, keys: pa.Table, key: Sequence[str]) -> pa.Table:
    """`rows` without the rows of `keys` (by row number: a join would refuse some column types)."""
    numbered = rows.select(list(key)).append_column(_ROW, pa.array(range(rows.num_rows), pa.int64()))
    hit = numbered.join(keys, keys=list(key), join_type="left semi").column(_ROW)
    return rows.filter(pc.invert(pc.is_in(numbered.column(_ROW), value_set=hit.combine_chunks())))


def _conform(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """`rows` in exactly `schema`'s columns and types (absent columns NULL)."""
    columns = [rows.column(f.name).cast(f.type) if f.name in rows.column_names
               else pa.nulls(rows.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)
