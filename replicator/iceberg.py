"""Publication of committed lake batches to Apache Iceberg tables (`lake.iceberg` in replicator.yml).

replicator's manifests stay the commit point; this is a publication of them. After a batch commits,
each later manifest the Iceberg table has not recorded is registered in order, by its own Parquet files
(`add_files`: no data is rewritten): an incremental batch as an append, a full batch as one transaction
that deletes every earlier file and adds its own. Every snapshot records `replicator.batch_id` in its
summary and gets a tag `batch-<id>` (with a maximum age, so tags never block snapshot expiry). The last
published batch is read back from the table itself, so a crash between the lake commit and the catalog
commit, or a catalog that is down for a sync, is caught up by the next publication: every batch once.

The Iceberg table is the change table (every row version with `_batch_id`, `_loaded_at`, `_deleted`),
located in the replicator table's own folder with its metadata under `_iceberg/` (a name Hive readers
of the folder skip). Not yet: a current-state table, types Iceberg lacks (they are refused, naming the
column), catalogs other than pyiceberg's SQL catalog.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .config import IcebergConfig, TableConfig
from .errors import LakeError, ReplicatorError
from .lake.errors import catalog_error
from .lake.manifest import Manifest
from .lake.s3 import aws_endpoint, aws_region
from .lake.table import TableLake

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

__all__ = ["BATCH_KEY", "IcebergPublisher", "PublishResult", "file_io_properties", "tag_name"]

log = logging.getLogger(__name__)

BATCH_KEY = "replicator.batch_id"
_METADATA_FOLDER = "_iceberg"


def tag_name(seq: int) -> str:
    return f"batch-{seq}"


@dataclass(frozen=True, kw_only=True)
class PublishResult:
    table: str
    identifier: str
    published: list[int]
    last_batch_id: int
    snapshot_id: int | None


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
        from pyiceberg.catalog.sql import SqlCatalog

        uri = self.config.catalog_uri
        if uri.startswith("sqlite") and "://" in self.lake_url and not self.lake_url.startswith("file://"):
            log.warning("lake.iceberg: a SQLite catalog file beside an object-store lake is state on this machine "
                        "only; a step on another worker (Dagster's Kubernetes executor) publishes to a catalog of its "
                        "own. Use a PostgreSQL catalog_uri for such a lake.")
        try:
            catalog = SqlCatalog(self.config.catalog_name, uri=uri, init_catalog_tables="true", **file_io_properties())
            catalog.create_namespace_if_not_exists(self.config.namespace)
        except Exception as exc:
            raise catalog_error(f"open the Iceberg catalog {self.config.catalog_name!r}", exc) from exc
        return catalog

    def identifier(self, name: str) -> str:
        return f"{self.config.namespace}.{name}"

    def drop(self, name: str) -> None:
        """Forget the Iceberg table of `name` (its catalog entry; no data file is touched)."""
        from pyiceberg.exceptions import NoSuchTableError

        try:
            self.catalog.drop_table(self.identifier(name))
        except NoSuchTableError:
            pass

    def published_batch(self, name: str) -> int:
        """The last batch of `name` its Iceberg table records (0: no table yet)."""
        from pyiceberg.exceptions import NoSuchTableError

        try:
            return self.last_published(self.catalog.load_table(self.identifier(name)))
        except NoSuchTableError:
            return 0
        except ReplicatorError:
            raise
        except Exception as exc:
            raise catalog_error(f"read {self.identifier(name)}", exc) from exc

    def last_published(self, table: Table) -> int:
        """The highest batch id any snapshot of `table` records (0: none)."""
        ids = [int(s.summary.get(BATCH_KEY) or 0) for s in table.snapshots() if s.summary is not None]
        return max(ids, default=0)

    def publish(self, lake: TableLake, table_config: TableConfig) -> PublishResult:
        """Register every committed batch the Iceberg table has not recorded yet, in order.

        The caller holds the table's lease (or accepts that a concurrent publisher's commit conflicts:
        Iceberg's optimistic commit then fails one of them, and its next run finds the batch published).
        """
        identifier = self.identifier(lake.name)
        try:
            table = self._table(lake, table_config)
            last = self.last_published(table)
            if last:
                table = self._tag(table, last)
            pending = lake.to_apply_after(last)
            for manifest in pending:
                table = self._publish_one(lake, table, manifest)
            snapshot = table.current_snapshot()
        except ReplicatorError:
            raise
        except Exception as exc:
            raise catalog_error(f"publish {identifier}", exc) from exc
        if pending:
            log.info("table %r: published batches %s to Iceberg %s", lake.name, [m.seq for m in pending], identifier)
        return PublishResult(table=lake.name, identifier=identifier, published=[m.seq for m in pending],
                             last_batch_id=pending[-1].seq if pending else last,
                             snapshot_id=snapshot.snapshot_id if snapshot else None)

    def _table(self, lake: TableLake, table_config: TableConfig) -> Table:
        from pyiceberg.exceptions import NoSuchTableError
        from pyiceberg.transforms import IdentityTransform

        try:
            return self.catalog.load_table(self.identifier(lake.name))
        except NoSuchTableError:
            pass
        latest = lake.latest()
        if latest is None:
            raise LakeError(f"table {lake.name!r}: nothing committed yet, so nothing to publish to Iceberg")
        location = lake.uri()
        # Created with its partition spec in one commit: a table is never visible unpartitioned.
        tx = self.catalog.create_table_transaction(
            self.identifier(lake.name), schema=self._checked(lake.name, latest.schema), location=location,
            properties={
                # The lake's own retention and compaction manage the files: another engine's maintenance must not.
                "gc.enabled": "false",
                "write.metadata.path": f"{location}/{_METADATA_FOLDER}",
                "write.metadata.delete-after-commit.enabled": "true",
                "write.metadata.previous-versions-max": str(self.config.metadata_versions),
            })
        with tx.update_spec() as spec:
            for column in table_config.partition_by or ["_loaded_at"]:
                transform = _transform(latest.schema.field(column).type, table_config.partition_granularity)
                # A date column's field is named for its folder (dt=), an identity one for its column.
                spec.add_field(column, transform, column if isinstance(transform, IdentityTransform) else "dt")
        tx.commit_transaction()
        return self.catalog.load_table(self.identifier(lake.name))

    def _checked(self, name: str, schema: pa.Schema) -> pa.Schema:
        bad = _unsupported(schema)
        if bad:
            raise LakeError(f"table {name!r}: Iceberg has no type for {', '.join(bad)}; leave lake.iceberg off for "
                            "this project, or list the table's columns without them")
        return schema

    def _publish_one(self, lake: TableLake, table: Table, manifest: Manifest) -> Table:
        from pyiceberg.expressions import AlwaysTrue

        schema = self._checked(lake.name, manifest.schema)
        uris = [lake.file_uri(f) for f in manifest.files]
        properties = {BATCH_KEY: str(manifest.seq), "replicator.mode": manifest.mode,
                      "replicator.created_at": manifest.created_at}
        with table.transaction() as tx:
            with tx.update_schema() as update:  # added columns, widened types: Iceberg schema evolution
                update.union_by_name(schema)
            if manifest.mode == "full" and table.current_snapshot() is not None:
                tx.delete(AlwaysTrue(), snapshot_properties=properties)
            if uris:
                tx.add_files(uris, snapshot_properties=properties, check_duplicate_files=False)
        return self._tag(table.refresh(), manifest.seq)

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


def _transform(arrow_type: pa.DataType, granularity: str) -> Any:
    from pyiceberg.transforms import DayTransform, IdentityTransform, MonthTransform, YearTransform

    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return {"day": DayTransform(), "month": MonthTransform(), "year": YearTransform()}[granularity]
    return IdentityTransform()
