"""Publication of committed lake batches to Apache Iceberg tables (`lake.iceberg` in replicator.yml).

replicator's manifests stay the commit point; this is a publication of them. After a batch commits,
each later manifest the Iceberg table has not recorded is registered in order, by its own Parquet files
(as `add_files` does, from the footers the writer kept: no data is rewritten, nor read back): an
incremental batch as an append, a full batch as one transaction that deletes every earlier file and adds
its own. Every snapshot records `replicator.batch_id` in its summary and gets a tag `batch-<id>` (with a
maximum age, so tags never block snapshot expiry). The last published batch is read back from the table
itself, so a crash between the lake commit and the catalog commit, or a catalog that is down for a sync,
is caught up by the next publication: every batch once.

Each replicated table is published as two Iceberg tables, each recording the batches it has applied:
- the change table `<namespace>.<name>` (every row version with `_batch_id`, `_loaded_at`, `_deleted`),
  located in the replicator table's own folder with its metadata under `_iceberg/` (a name Hive readers
  of the folder skip);
- the current-state table `<current_namespace>.<name>` (one row per key, deletions removed; see
  `iceberg_current`), located in `_current/` of the same folder.
Catalogs: pyiceberg's SQL catalog (SQLite file, PostgreSQL), REST and AWS Glue, by `lake.iceberg.catalog`.
Types: the sources give such a project Iceberg's (`sources.typemap.iceberg_compatible`); a batch written
before, with types Iceberg lacks, is refused naming the column.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .config import IcebergConfig, TableConfig
from .current_state import CurrentStateRule
from .errors import LakeError, ReplicatorError
from .iceberg_current import KEY_RANGE, apply_batch, current_schema, key_range_partitioned
from .lake.errors import catalog_error
from .lake.manifest import Manifest
from .lake.s3 import aws_endpoint, aws_region
from .lake.table import TableLake

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Table
    from pyiceberg.table.metadata import TableMetadata

__all__ = ["BATCH_KEY", "IcebergPublisher", "PublishResult", "file_io_properties", "tag_name"]

log = logging.getLogger(__name__)

BATCH_KEY = "replicator.batch_id"
_METADATA_FOLDER = "_iceberg"
_CURRENT_FOLDER = "_current"


def tag_name(seq: int) -> str:
    return f"batch-{seq}"


@dataclass(frozen=True, kw_only=True)
class PublishResult:
    """What one publication did: `published` the batches it applied (to either table), in order."""

    table: str
    identifier: str  # the change table
    current_identifier: str  # the current-state table
    published: list[int]
    last_batch_id: int  # the batch both tables are at
    snapshot_id: int | None  # the change table's current snapshot
    current_snapshot_id: int | None


def _unsupported(schema: pa.Schema) -> list[str]:
    """Columns whose Arrow type Iceberg has no type for (registered files must already match Iceberg's)."""
    bad = []
    for f in schema:
        t = f.type
        if pa.types.is_unsigned_integer(t) or pa.types.is_decimal256(t) or (
                pa.types.is_timestamp(t) and t.unit == "ns") or pa.types.is_time32(t):
            bad.append(f"{f.name} ({t})")
    return bad


class IcebergPublisher:
    """Publishes a project's tables to one catalog; opened lazily (a sync that publishes nothing needs none)."""

    def __init__(self, config: IcebergConfig, *, lake_url: str) -> None:
        self.config = config
        self.lake_url = lake_url
        self._catalog: Catalog | None = None
        self._catalog_lock = threading.Lock()  # tables synced side by side publish through one catalog

    @property
    def catalog(self) -> Catalog:
        with self._catalog_lock:
            if self._catalog is None:
                self._catalog = self._open_catalog()
            return self._catalog

    def _open_catalog(self) -> Catalog:
        from pyiceberg.catalog import load_catalog

        config = self.config
        uri = config.uri
        if uri is not None and uri.startswith("sqlite") and "://" in self.lake_url \
                and not self.lake_url.startswith("file://"):
            log.warning("lake.iceberg: a SQLite catalog file beside an object-store lake is state on this machine "
                        "only; a step on another worker (Dagster's Kubernetes executor) publishes to a catalog of its "
                        "own. Use a PostgreSQL catalog_uri for such a lake.")
        properties = {**file_io_properties(), **config.catalog_properties, "type": config.catalog}
        if uri is not None:
            properties["uri"] = uri
        if config.catalog == "sql":
            properties["init_catalog_tables"] = "true"
        if config.catalog == "glue" and aws_region():  # boto3 reads AWS_DEFAULT_REGION only; the lake reads both
            properties.setdefault("glue.region", aws_region() or "")
        try:
            # load_catalog adds pyiceberg's PYICEBERG_CATALOG__<NAME>__* variables: the secrets, kept out of the YAML.
            catalog = load_catalog(config.catalog_name, **properties)
            for namespace in (config.namespace, config.current):
                _ensure_namespace(catalog, namespace)
        except Exception as exc:
            raise catalog_error(f"open the Iceberg catalog {config.catalog_name!r}", exc) from exc
        return catalog

    def identifier(self, name: str) -> str:
        """The change table of `name`."""
        return f"{self.config.namespace}.{name}"

    def current_identifier(self, name: str) -> str:
        """The current-state table of `name`."""
        return f"{self.config.current}.{name}"

    def drop(self, name: str) -> None:
        """Forget both Iceberg tables of `name` (their catalog entries; no data file is touched)."""
        from pyiceberg.exceptions import NoSuchTableError

        for identifier in (self.identifier(name), self.current_identifier(name)):
            try:
                self.catalog.drop_table(identifier)
            except NoSuchTableError:
                pass

    def published_batch(self, name: str) -> int:
        """The last batch of `name` both its Iceberg tables record (0: a table not created yet)."""
        from pyiceberg.exceptions import NoSuchTableError

        batches = []
        for identifier in (self.identifier(name), self.current_identifier(name)):
            try:
                with _catalog_errors(f"read {identifier}"):
                    batches.append(self.last_published(self.catalog.load_table(identifier)))
            except NoSuchTableError:
                return 0
        return min(batches)

    def last_published(self, table: Table) -> int:
        """The highest batch id any snapshot of `table` records (0: none)."""
        ids = [int(s.summary.get(BATCH_KEY) or 0) for s in table.snapshots() if s.summary is not None]
        return max(ids, default=0)

    def publish(self, lake: TableLake, table_config: TableConfig) -> PublishResult:
        """Register every committed batch the Iceberg table has not recorded yet, in order.

        The caller holds the table's lease (or accepts that a concurrent publisher's commit conflicts:
        Iceberg's optimistic commit then fails one of them, and its next run finds the batch published).
        """
        identifier, current_identifier = self.identifier(lake.name), self.current_identifier(lake.name)
        rule = CurrentStateRule.of(table_config)
        with _catalog_errors(f"publish {identifier}", missing_passes=False):
            table, changes = self._catch_up(lake, self._table(lake, table_config), self._publish_one)
            current, states = self._catch_up(
                lake, self._current_table(lake, table_config),
                lambda lk, t, m: self._publish_current(lk, t, m, rule))
        published = sorted({*changes, *states})
        if published:
            log.info("table %r: published batches %s to Iceberg %s and %s", lake.name, published, identifier,
                     current_identifier)
        snapshot, current_snapshot = table.current_snapshot(), current.current_snapshot()
        return PublishResult(table=lake.name, identifier=identifier, current_identifier=current_identifier,
                             published=published, last_batch_id=min(self.last_published(table),
                                                                    self.last_published(current)),
                             snapshot_id=snapshot.snapshot_id if snapshot else None,
                             current_snapshot_id=current_snapshot.snapshot_id if current_snapshot else None)

    def _catch_up(self, lake: TableLake, table: Table, publish_one: Any) -> tuple[Table, list[int]]:
        """Apply to `table` every batch after the last it records, in order; each records its batch id."""
        last = self.last_published(table)
        if last:
            table = self._tag(table, last)
        pending = lake.to_apply_after(last)
        for manifest in pending:
            table = publish_one(lake, table, manifest)
        return table, [m.seq for m in pending]

    def _table(self, lake: TableLake, table_config: TableConfig) -> Table:
        from pyiceberg.exceptions import NoSuchTableError

        try:
            return self.catalog.load_table(self.identifier(lake.name))
        except NoSuchTableError:
            pass
        latest = self._latest(lake)
        location = lake.uri()
        tx = self._create(self.identifier(lake.name), self._checked(lake.name, latest.schema), location,
                          f"{location}/{_METADATA_FOLDER}")
        with tx.update_spec() as spec:
            _add_fields(spec, latest.schema, table_config.partition_by or ["_loaded_at"],
                        table_config.partition_granularity)
        tx.commit_transaction()
        return self.catalog.load_table(self.identifier(lake.name))

    def _current_table(self, lake: TableLake, table_config: TableConfig) -> Table:
        from pyiceberg.exceptions import NoSuchTableError
        from pyiceberg.transforms import TruncateTransform

        identifier = self.current_identifier(lake.name)
        try:
            return self.catalog.load_table(identifier)
        except NoSuchTableError:
            pass
        latest = self._latest(lake)
        schema = current_schema(self._checked(lake.name, latest.schema))
        location = f"{lake.uri()}/{_CURRENT_FOLDER}"
        tx = self._create(identifier, schema, location, f"{location}/metadata")
        with tx.update_spec() as spec:
            if table_config.partition_by:
                _add_fields(spec, schema, table_config.partition_by, table_config.partition_granularity)
            elif key_range_partitioned(schema, table_config.primary_key):
                key = table_config.primary_key[0]
                spec.add_field(key, TruncateTransform(KEY_RANGE), f"{key}_range")
        tx.commit_transaction()
        return self.catalog.load_table(identifier)

    @staticmethod
    def _latest(lake: TableLake) -> Manifest:
        latest = lake.latest()
        if latest is None:
            raise LakeError(f"table {lake.name!r}: nothing committed yet, so nothing to publish to Iceberg")
        return latest

    def _create(self, identifier: str, schema: pa.Schema, location: str, metadata: str) -> Any:
        """A transaction creating `identifier`: committed with its partition spec, so never seen unpartitioned."""
        return self.catalog.create_table_transaction(
            identifier, schema=schema, location=location,
            properties={
                # The lake's own retention and compaction manage the files: another engine's maintenance must not.
                "gc.enabled": "false",
                "write.metadata.path": metadata,
                "write.metadata.delete-after-commit.enabled": "true",
                "write.metadata.previous-versions-max": str(self.config.metadata_versions),
            })

    def _checked(self, name: str, schema: pa.Schema) -> pa.Schema:
        bad = _unsupported(schema)
        if bad:
            raise LakeError(f"table {name!r}: Iceberg has no type for {', '.join(bad)}, which the lake holds from "
                            f"before lake.iceberg was set; resync with `replicator sync {name} --full-refresh` "
                            "(new batches get Iceberg's types), or list the table's columns without them")
        return schema

    def _publish_one(self, lake: TableLake, table: Table, manifest: Manifest) -> Table:
        from pyiceberg.expressions import AlwaysTrue
        from pyiceberg.table import TableProperties

        schema = self._checked(lake.name, manifest.schema)
        properties = _properties(manifest)
        with table.transaction() as tx:
            with tx.update_schema() as update:  # added columns, widened types: Iceberg schema evolution
                update.union_by_name(schema)
            _merge_manifests(tx)
            if manifest.mode == "full" and table.current_snapshot() is not None:
                tx.delete(AlwaysTrue(), snapshot_properties=properties)
            if manifest.files:
                if tx.table_metadata.name_mapping() is None:
                    # As add_files does: the files have no Iceberg field ids, so readers map columns by name.
                    mapping = tx.table_metadata.schema().name_mapping.model_dump_json()
                    tx.set_properties({TableProperties.DEFAULT_NAME_MAPPING: mapping})
                files = _data_files_of(tx.table_metadata, lake, manifest)
                with tx.update_snapshot(snapshot_properties=properties).merge_append() as append:
                    for file in files:
                        append.append_data_file(file)
        return self._tag(table.refresh(), manifest.seq)

    def _publish_current(self, lake: TableLake, table: Table, manifest: Manifest, rule: CurrentStateRule) -> Table:
        self._checked(lake.name, manifest.schema)
        unchanged = manifest.compaction_of is not None and manifest.compaction_of == self.last_published(table)
        with table.transaction() as tx:
            _merge_manifests(tx)
            apply_batch(tx, table, lake, manifest, rule, _properties(manifest), unchanged=unchanged)
        return self._tag(table.refresh(), manifest.seq)

    def expire_current(self, lake: TableLake, retention: dt.timedelta, now: dt.datetime) -> int:
        """Forget the current-state table's snapshots older than `retention` and delete the files no kept
        snapshot reads; returns how many files went. The caller holds the table's lease, so no publication
        has files written but not yet committed.

        Kept: the current snapshot, every snapshot of the last `retention`, and each one a batch tag younger
        than `tag_max_age` names (older tags are removed first: pyiceberg never expires a reference).
        """
        from pyiceberg.exceptions import NoSuchTableError

        identifier = self.current_identifier(lake.name)
        try:
            with _catalog_errors(f"expire {identifier}"):
                table = self.catalog.load_table(identifier)
                current = table.current_snapshot()
                if current is None:
                    return 0
                old_tag = int((now - self.config.tag_max_age).timestamp() * 1000)
                stale = [name for name, ref in table.refs().items() if name.startswith("batch-")
                         and table.snapshot_by_id(ref.snapshot_id) is not None
                         and table.snapshot_by_id(ref.snapshot_id).timestamp_ms < old_tag]  # type: ignore[union-attr]
                if stale:
                    with table.manage_snapshots() as refs:
                        for name in stale:
                            refs.remove_tag(name)
                    table = table.refresh()
                pinned = {ref.snapshot_id for ref in table.refs().values()}
                cutoff = int((now - retention).timestamp() * 1000)
                expired = [s.snapshot_id for s in table.snapshots()
                           if s.timestamp_ms < cutoff and s.snapshot_id not in pinned]
                if expired:
                    table.maintenance.expire_snapshots().by_ids(expired).commit()
                    table = table.refresh()
                read = _data_files(table)
                gone = [f for f in lake.current_files() if _plain(lake.store.uri(f)) not in read]
        except NoSuchTableError:
            return 0
        for path in gone:
            lake.delete(path)
        if gone:
            log.info("table %r: %d current-state files no snapshot within %s reads removed", lake.name, len(gone),
                     retention)
        return len(gone)

    def _tag(self, table: Table, seq: int) -> Table:
        """Tag the snapshot that published batch `seq` (a separate commit: a crash before it is repaired
        by the next publication, which tags its last published batch if it has no tag)."""
        if tag_name(seq) in table.refs():
            return table
        snapshots = [s for s in table.snapshots() if s.summary is not None and s.summary.get(BATCH_KEY) == str(seq)]
        if not snapshots:
            return table
        table.manage_snapshots().create_tag(snapshots[-1].snapshot_id, tag_name(seq),
                                            max_ref_age_ms=int(self.config.tag_max_age.total_seconds() * 1000)
                                            ).commit()
        return table.refresh()


def _ensure_namespace(catalog: Catalog, namespace: str) -> None:
    """Create `namespace` unless it exists. Another process may create it at the same moment (a SQL
    catalog then raises its unique-key error, not NamespaceAlreadyExists): it exists afterwards, which is all."""
    try:
        catalog.create_namespace_if_not_exists(namespace)
    except Exception:
        if not catalog.namespace_exists(namespace):
            raise


@contextmanager
def _catalog_errors(action: str, *, missing_passes: bool = True) -> Iterator[None]:
    """The catalog's errors as ours; pyiceberg's NoSuchTableError passes when the caller gives it a meaning."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        yield
    except ReplicatorError:
        raise
    except Exception as exc:
        if missing_passes and isinstance(exc, NoSuchTableError):
            raise
        raise catalog_error(action, exc) from exc


def _data_files(table: Table) -> set[str]:
    """Every data file a snapshot of `table` reads (each manifest read once)."""
    seen: set[str] = set()
    files: set[str] = set()
    for snapshot in table.snapshots():
        for manifest in snapshot.manifests(table.io):
            if manifest.manifest_path in seen:
                continue
            seen.add(manifest.manifest_path)
            files.update(_plain(e.data_file.file_path) for e in manifest.fetch_manifest_entry(table.io))
    return files


def _merge_manifests(tx: Any) -> None:
    """Turn on manifest merging for the table of `tx` (tables published before it was set get it too).

    Every batch adds a manifest to the change table and leaves one in the current-state table, and every
    reader and every later publication reads them all; merged into one once
    `commit.manifest.min-count-to-merge` (100) have piled up, as Java's Iceberg does by default.
    """
    from pyiceberg.table import TableProperties

    if TableProperties.MANIFEST_MERGE_ENABLED not in tx.table_metadata.properties:
        tx.set_properties({TableProperties.MANIFEST_MERGE_ENABLED: "true"})


def _data_files_of(metadata: TableMetadata, lake: TableLake, manifest: Manifest) -> list[DataFile]:
    """The Iceberg data files of a batch, as pyiceberg's `add_files` builds them (`parquet_file_to_data_file`),
    but from each file's footer as the writer kept it (lake/footers.py) and its size from the manifest, so a
    batch this process wrote is registered without reading its files back."""
    from pyiceberg.io.pyarrow import (
        _check_pyarrow_schema_compatible,
        compute_statistics_plan,
        data_file_statistics_from_parquet_metadata,
        parquet_path_to_id_mapping,
    )
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat

    schema, spec = metadata.schema(), metadata.spec()
    plan = compute_statistics_plan(schema, metadata.properties)
    mapping = parquet_path_to_id_mapping(schema)
    checked: list[pa.Schema] = []
    files = []
    for file in manifest.files:
        footer = lake.footer(file)
        arrow_schema = footer.schema.to_arrow_schema()
        if not any(arrow_schema.equals(seen) for seen in checked):  # a batch's files share one schema
            _check_pyarrow_schema_compatible(schema, arrow_schema, format_version=metadata.format_version)
            checked.append(arrow_schema)
        statistics = data_file_statistics_from_parquet_metadata(
            parquet_metadata=footer, stats_columns=plan, parquet_column_mapping=mapping)
        files.append(DataFile.from_args(
            content=DataFileContent.DATA, file_path=lake.file_uri(file), file_format=FileFormat.PARQUET,
            partition=statistics.partition(spec, schema), file_size_in_bytes=file.bytes, sort_order_id=None,
            spec_id=metadata.default_spec_id, equality_ids=None, key_metadata=None,
            **statistics.to_serialized_dict()))
    return files


def _plain(uri: str) -> str:
    """A file's URI as the lake store spells it (pyiceberg writes local paths as file: URIs)."""
    return uri.removeprefix("file://") if uri.startswith("file:///") else uri


def _properties(manifest: Manifest) -> dict[str, str]:
    """A snapshot's summary entries: the batch it applies, and the watermark the lake stored after it."""
    summary = {BATCH_KEY: str(manifest.seq), "replicator.mode": manifest.mode,
               "replicator.created_at": manifest.created_at}
    if manifest.watermark_column is not None:
        summary["replicator.watermark_column"] = manifest.watermark_column
        summary["replicator.watermark"] = "" if manifest.watermark is None else str(manifest.watermark)
    return summary


def file_io_properties() -> dict[str, str]:
    """pyiceberg's S3 settings from the same AWS_* variables the lake uses (credentials: the default chain).

    Nothing secret is passed: a catalog's properties can end up in its logs or its own tables.
    """
    props: dict[str, str] = {}
    endpoint = aws_endpoint()
    if endpoint:
        props["s3.endpoint"] = endpoint
        props["s3.force-virtual-addressing"] = "false"
    region = aws_region()
    if region:
        props["s3.region"] = region
    return props


def _add_fields(spec: Any, schema: pa.Schema, columns: list[str], granularity: str) -> None:
    """Partition fields as the lake's folders are: a date column's transform, named for its folder (dt=);
    an identity one, named for its column."""
    from pyiceberg.transforms import IdentityTransform

    for column in columns:
        transform = _transform(schema.field(column).type, granularity)
        spec.add_field(column, transform, column if isinstance(transform, IdentityTransform) else "dt")


def _transform(arrow_type: pa.DataType, granularity: str) -> Any:
    from pyiceberg.transforms import DayTransform, IdentityTransform, MonthTransform, YearTransform

    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return {"day": DayTransform(), "month": MonthTransform(), "year": YearTransform()}[granularity]
    return IdentityTransform()
