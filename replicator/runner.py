"""`Replicator`: one project's sources, lake and warehouse, and the operations on its tables."""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from . import watermark as wm
from .catalog import Project, load_project
from .current_state import CurrentStateRule
from .errors import ConfigError, LockError, ReplicatorError
from .extract import ExtractResult, Progress, extract_table
from .lake import LakeStore
from .lake.footers import Footers
from .lake.recovery import Recovery
from .lake.store import open_store
from .lake.table import ReconcileRecord, TableLake
from .load import LoadResult, load_table, rows_in_table
from .machine import usable_cpus
from .warehouse import Loaded, WarehouseLoader, open_warehouse

if TYPE_CHECKING:
    from .compaction import CompactionResult
    from .iceberg import IcebergPublisher, PublishResult
    from .reconcile import ReconcileReport
    from .sources import SqlSource

__all__ = ["Replicator", "SyncResult", "TableStatus"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class SyncResult:
    extract: ExtractResult
    load: LoadResult
    compaction: CompactionResult | None = None  # the table's compaction policy ran after the load


@dataclass(frozen=True)
class TableStatus:
    table: str
    last_batch_id: int | None
    watermark: Any
    last_sync_at: str | None
    lake_rows: int
    lake_bytes: int
    lake_files: int
    warehouse_rows: int | None
    warehouse_batch_id: int
    extra: dict[str, Any] = field(default_factory=dict)


class Replicator:
    """Everything a sync needs, built lazily from a Project; nothing connects until used."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._sources: dict[str, SqlSource] = {}
        self._sources_lock = threading.Lock()  # tables synced side by side share one source object each

    @classmethod
    def from_path(cls, path: str | os.PathLike[str] | None = None) -> Replicator:
        return cls(load_project(path))

    @cached_property
    def lake(self) -> LakeStore:
        store = open_store(self.project.config.lake.url)
        if self.project.config.lake.iceberg is not None:
            store.footers = Footers()  # publication registers the files this process writes without reading them
        return store

    @cached_property
    def warehouse(self) -> WarehouseLoader:
        return open_warehouse(self.project.config.warehouse)

    @cached_property
    def iceberg(self) -> IcebergPublisher | None:
        """The Iceberg publisher of `lake.iceberg`, or None when publication is off."""
        config = self.project.config.lake.iceberg
        if config is None:
            return None
        from .iceberg import IcebergPublisher  # pyiceberg only for projects that publish

        return IcebergPublisher(config, lake_url=self.project.config.lake.url)

    def source(self, name: str) -> SqlSource:
        with self._sources_lock:
            if name not in self._sources:
                # Imported here: SQLAlchemy and the drivers cost 0.2 s that load and status never need.
                from .sources import open_source

                self._sources[name] = open_source(name, self.project.config.sources[name],
                                                  iceberg_types=self.project.config.lake.iceberg is not None)
            return self._sources[name]

    def close(self) -> None:
        for source in self._sources.values():
            source.close()
        self._sources.clear()

    def __enter__(self) -> Replicator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- operations -------------------------------------------------------------------------------
    def extract(self, name: str, *, full_refresh: bool = False, progress: Progress | None = None) -> ExtractResult:
        """Commit what changed in the source since the last batch as one lake batch."""
        table = self.project.table(name)
        try:
            result = extract_table(name, table, self.project, self.source(table.source), self.lake,
                                   full_refresh=full_refresh, progress=progress)
        except ReplicatorError as exc:
            raise type(exc)(_prefix(self.project, name, str(exc))) from exc
        if self.iceberg is None:
            return result
        published, behind = self._publish_after_commit(name)
        return replace(result, published=published, catalog_behind=behind)

    def require_iceberg(self) -> IcebergPublisher:
        """The Iceberg publisher; a ConfigError saying what to add when `lake.iceberg` is not set."""
        if self.iceberg is None:
            raise ConfigError(f"{self.project.path}: lake.iceberg is not set, so there is no Iceberg catalog to "
                              "publish to; add `iceberg: {}` under `lake:` for the embedded SQLite catalog")
        return self.iceberg

    def publish(self, name: str, *, rebuild: bool = False) -> PublishResult:
        """Publish every committed batch of `name` the Iceberg table has not recorded yet, under the table's lease.

        `rebuild` first drops the Iceberg table's catalog entry (never a data file): it is published again
        from the latest full batch on.
        """
        table = self.project.table(name)
        publisher = self.require_iceberg()
        lake = self.table_lake(name)
        with lake.lease(uuid.uuid4().hex, self.project.config.defaults.lease_ttl):
            lake.recover()
            try:
                if rebuild:
                    publisher.drop(name)
                return publisher.publish(lake, table)
            except ReplicatorError as exc:
                raise type(exc)(_prefix(self.project, name, str(exc))) from exc

    def _publish_after_commit(self, name: str) -> tuple[PublishResult | None, str | None]:
        """Publication never fails the lake commit before it: a catalog that is down is caught up next time."""
        try:
            return self.publish(name), None
        except ReplicatorError as exc:
            log.warning("table %r: the Iceberg catalog is behind the lake (the next sync or `replicator publish` "
                        "catches up): %s", name, exc)
            return None, str(exc)

    def recover(self, name: str) -> Recovery:
        """Finish a publish a dead run left undone on table `name`, unless a live run holds its lease.

        Every command that reads lake data calls this first; committing commands recover under the lease
        they hold instead. "busy": a live run holds the lease, nothing moved, readers find each file where it is.
        """
        return self.table_lake(name).recover_for_reading(self.project.config.defaults.lease_ttl)

    def table_lake(self, name: str) -> TableLake:
        """Table `name`'s lake: its manifests, lease, commits, state records and reads."""
        self.project.table(name)
        return TableLake(self.lake, name)

    def load(self, name: str) -> LoadResult:
        """Load every committed lake batch the warehouse has not loaded yet, in order, one transaction each."""
        self.recover(name)
        return self._load(name)

    def _load(self, name: str, loaded: Loaded | None = None) -> LoadResult:
        return load_table(name, self.project.table(name), self.lake, self.warehouse, loaded)

    def sync(self, name: str, *, full_refresh: bool = False, progress: Progress | None = None) -> SyncResult:
        extracted = self._extract_and_reconcile(name, full_refresh=full_refresh, progress=progress)
        loaded = self._load(name)  # the extract recovered the lake under its lease
        return SyncResult(extract=extracted, load=loaded, compaction=self.compact_when_due(name))

    def sync_many(self, names: Sequence[str], *, full_refresh: bool = False, progress: Progress | None = None,
                  workers: int | None = None) -> Iterator[tuple[str, SyncResult | ReplicatorError]]:
        """Sync `names`, up to `workers` (default `defaults.max_concurrent_tables`) extracts at once.

        Yields each table's result, or the error it failed with, as it finishes. Each table is loaded into
        the warehouse here, in the caller's thread, as soon as its extract has committed: the warehouse has
        one writer (a DuckDB file takes one), and its load overlaps the extracts still running.
        """
        def extract(name: str) -> ExtractResult:
            return self._extract_and_reconcile(name, full_refresh=full_refresh, progress=progress)

        loaded = self._loaded_tables(names)
        for name, extracted in self.each_table(names, extract, workers):
            if isinstance(extracted, ReplicatorError):
                yield name, extracted
                continue
            try:
                result = SyncResult(extract=extracted, load=self._load(name, loaded.get(name)))
            except ReplicatorError as exc:
                yield name, exc
                continue
            yield name, replace(result, compaction=self.compact_when_due(name))

    def each_table(self, names: Sequence[str], work: Callable[[str], T], workers: int | None = None,
                   ) -> Iterator[tuple[str, T | ReplicatorError]]:
        """`work(name)` for each table, up to `workers` (default `defaults.max_concurrent_tables`) at once;
        yields each result, or the error it failed with, as it finishes (see `each_table` below)."""
        try:
            self.lake, self.iceberg  # noqa: B018 - built once, before the threads share them
        except ReplicatorError:
            pass  # each table reports it
        return each_table(names, work, workers or self.project.config.defaults.max_concurrent_tables or _cpus(4))

    def _extract_and_reconcile(self, name: str, *, full_refresh: bool, progress: Progress | None) -> ExtractResult:
        extracted = self.extract(name, full_refresh=full_refresh, progress=progress)
        table = self.project.table(name)
        if table.delete_detection == "reconcile" and self._reconcile_due(name, table.reconcile_every):
            self.reconcile(name, apply_deletes=True)
        return extracted

    def reconcile(self, name: str, *, apply_deletes: bool = False) -> ReconcileReport:
        """Compare source and lake keys; with apply_deletes, commit markers for keys gone from the source."""
        from .reconcile import commit_deletes, reconcile_table

        self.project.table(name)
        if apply_deletes:
            # One lease over compare and commit: no batch lands between the key comparison and the markers.
            lake = self.table_lake(name)
            with lake.lease(uuid.uuid4().hex, self.project.config.defaults.lease_ttl) as lease:
                lake.recover()
                report = reconcile_table(self, name)
                if report.deleted_keys:
                    commit_deletes(self, name, lease, report.deleted_keys, report.lake_rows)
        else:
            self.recover(name)
            report = reconcile_table(self, name)
        self.table_lake(name).record_reconcile(ReconcileRecord(
            finished_at=dt.datetime.now(dt.timezone.utc).isoformat(), matches=report.matches,
            deleted=len(report.deleted_keys) if apply_deletes else 0))
        if apply_deletes and report.deleted_keys and self.iceberg is not None:  # the deletion markers' batch
            self._publish_after_commit(name)
        return report

    def compact(self, name: str, retention: dt.timedelta = dt.timedelta(days=7)) -> CompactionResult:
        """Rewrite the table's live files as one snapshot batch and remove history older than `retention`."""
        from .compaction import compact_table

        self.project.table(name)
        result = compact_table(self, name, retention)
        if self.iceberg is not None:
            if result.batch_id is not None:
                self._publish_after_commit(name)
            result = replace(result, removed_history_files=result.removed_history_files
                             + self._expire_iceberg(name, retention))
        return result

    def compact_when_due(self, name: str) -> CompactionResult | None:
        """Compact `name` when a partition of its live batches holds more files than its policy allows
        (`compaction` in its YAML, else `defaults.compaction`), then record the snapshot batch in the
        warehouse (it holds that state: nothing moves). Call it after the table's load.

        A table over `max_rows` row versions is left to `replicator compact` (said in the log), and so is
        one whose lease another run holds; a failed compaction changes nothing and fails no sync.
        """
        policy = self.project.table(name).compaction or self.project.config.defaults.compaction
        if not policy.max_files_per_partition:
            return None
        per_partition, versions = self.table_lake(name).live_files()
        if not per_partition or max(per_partition.values()) <= policy.max_files_per_partition:
            return None
        if policy.max_rows and versions > policy.max_rows:
            log.warning("table %r: a partition holds %d files, over compaction.max_files_per_partition %d, but the "
                        "table's %d row versions are over compaction.max_rows %d: run `replicator compact %s`",
                        name, max(per_partition.values()), policy.max_files_per_partition, versions,
                        policy.max_rows, name)
            return None
        try:
            result = self.compact(name, policy.retention)
            if result.batch_id is not None:
                self._load(name)
        except ReplicatorError as exc:
            log.warning("table %r: compaction by policy did not run (the next sync tries again): %s", name, exc)
            return None
        return result

    def _expire_iceberg(self, name: str, retention: dt.timedelta) -> int:
        """The current-state table's history past `retention`, under the table's lease; a catalog that is
        down leaves it for the next compaction."""
        assert self.iceberg is not None
        lake = self.table_lake(name)
        try:
            with lake.lease(uuid.uuid4().hex, self.project.config.defaults.lease_ttl):
                return self.iceberg.expire_current(lake, retention, dt.datetime.now(dt.timezone.utc))
        except ReplicatorError as exc:
            log.warning("table %r: the Iceberg current-state table's history was not expired: %s", name, exc)
            return 0

    def _reconcile_due(self, name: str, every: dt.timedelta) -> bool:
        record = self.table_lake(name).last_reconcile()
        if record is None:
            return True
        return dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(record.finished_at) >= every

    def statuses(self, names: Sequence[str]) -> Iterator[TableStatus]:
        """`status` of each table, the warehouse's ledger read once for all of them (as `sync_many` does)."""
        loaded = self._loaded_tables(names)
        for name in names:
            yield self.status(name, loaded.get(name))

    def _loaded_tables(self, names: Sequence[str]) -> dict[str, Loaded]:
        """The warehouse's ledger in one look when there are several tables ({}: each asks for its own)."""
        try:
            return self.warehouse.loaded_tables() if len(names) > 1 else {}
        except ReplicatorError:
            return {}  # each table reports it where it asks for its own

    def status(self, name: str, loaded: Loaded | None = None) -> TableStatus:
        """`loaded`: the table's ledger line from `WarehouseLoader.loaded_tables`, if read already."""
        self.recover(name)  # its figures come from manifests, but it is often the first command after a crash
        lake = self.table_lake(name)
        latest = lake.latest()
        manifests = lake.active()
        synced = lake.last_sync()
        return TableStatus(
            table=name,
            last_batch_id=latest.seq if latest else None,
            watermark=wm.decode(latest.watermark) if latest else None,
            last_sync_at=synced.finished_at if synced else (latest.created_at if latest else None),
            lake_rows=sum(m.rows for m in manifests),
            lake_bytes=sum(m.total_bytes for m in manifests),
            lake_files=sum(len(m.files) for m in manifests),
            warehouse_rows=rows_in_table(self.warehouse, name, loaded),
            warehouse_batch_id=self.warehouse.last_loaded_seq(name) if loaded is None else loaded.last_seq,
        )

    def unlock(self, name: str, *, force: bool = False) -> dict[str, Any] | None:
        """Remove the lease a dead run left on table `name`; returns what the lease held (None: there was none).

        A run that died on this machine is noticed by the next sync without this; a run on another machine
        cannot be checked from here, so its lease is removed on your word. Refuses while the holder still
        runs on this machine, unless `force`.
        """
        lake = self.table_lake(name)
        holder = lake.lease_holder()
        if holder is None:
            return None
        if lake.holder_state(holder) == "running" and not force:
            raise LockError(f"table {name!r}: run {holder.get('run_id')} is still running as pid {holder.get('pid')} "
                            "on this machine; stop it first (or pass --force)")
        lake.remove_lease()
        log.warning("table %r: removed the lease of run %s (%s, pid %s)", name, holder.get("run_id"),
                    holder.get("host"), holder.get("pid"))
        return holder

    def read_table(self, name: str, as_of: int | dt.datetime | None = None) -> pa.Table:
        """The table's current state from the lake alone (after batch `as_of`, or as of a UTC time)."""
        table = self.project.table(name)
        self.recover(name)
        lake = self.table_lake(name)
        seq = as_of if isinstance(as_of, int) or as_of is None else lake.batch_at(as_of)
        rule = CurrentStateRule.of(table)
        return lake.current_state(rule, seq)


# Tables side by side. A project of a few hundred small tables spends most of a sync waiting on round
# trips (connect, probe, query, list, put), not on one core, so a few tables at a time finish it several
# times sooner. Each table's work stays what it is alone (its own lease, source connection and commit), so
# nothing of the commit order changes. Threads, not processes: the drivers and pyarrow release the GIL
# while they wait or decode, and a process per table would pay the imports again. The pool lives here,
# beside the operations it runs, so that a sync's calls never leave this module and come back to it.


def each_table(names: Sequence[str], work: Callable[[str], T], workers: int) -> Iterator[tuple[str, T | ReplicatorError]]:
    """`work(name)` for every table on up to `workers` threads; yields (name, result or its error) as each ends.

    A ReplicatorError is that table's outcome and the others go on; any other exception (a bug) stops the
    run once the tables under way have finished. Tables not started yet when the caller stops (an error,
    Ctrl-C) are never started.
    """
    if workers <= 1 or len(names) <= 1:
        for name in names:
            yield name, _outcome(work, name)
        return
    pool = ThreadPoolExecutor(max_workers=min(workers, len(names)), thread_name_prefix="replicator-table")
    try:
        futures: dict[Future[T | ReplicatorError], str] = {pool.submit(_outcome, work, n): n for n in names}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # a table under way finishes and releases its lease


def _outcome(work: Callable[[str], T], name: str) -> T | ReplicatorError:
    try:
        return work(name)
    except ReplicatorError as exc:
        return exc


def _cpus(at_most: int) -> int:
    """The CPUs this process may use, at most `at_most`: a sync of small tables is bound by the client's CPU
    (bench/many_tables.py on 2 cores: 2 at once 1.13x faster than 1, 4 no faster, 8 slower)."""
    return min(at_most, usable_cpus())


def _prefix(project: Project, name: str, message: str) -> str:
    """Name the table's YAML file in a message that does not name it already."""
    file = project.table_files.get(name)
    return message if file is None or str(file) in message else f"{file}: {message}"
