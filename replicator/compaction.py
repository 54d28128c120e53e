"""`replicator compact`: rewrite a table's live files as one snapshot batch; drop history past retention.

The snapshot is an ordinary full batch (same commit protocol: staged parts, exclusive manifest, publish)
whose rows keep their own `_batch_id` and `_loaded_at` and land in their original partition folder, so
the current state and every time-travel state inside the retention read exactly as before. The files it
replaces move to `_superseded/`, where they serve time travel until the retention passes.

Its manifest names the batches it compacts (`stats.compaction_of`): a follower standing at the last of
them (the warehouse, the Iceberg current-state table) already holds its state and only records it.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from .current_state import CurrentStateRule
from .lake.batch import Layout
from .lake.manifest import watermark_state
from .lake.table import TableLake

__all__ = ["CompactionResult", "compact_table"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class CompactionResult:
    table: str
    batch_id: int | None
    files_before: int
    files_after: int
    rows_before: int
    rows_after: int
    removed_history_files: int


def compact_table(rep: Any, name: str, retention: dt.timedelta) -> CompactionResult:
    table = rep.project.table(name)
    lake = TableLake(rep.lake, name)
    run_id = uuid.uuid4().hex
    now = dt.datetime.now(dt.timezone.utc)
    with lake.lease(run_id, rep.project.config.defaults.lease_ttl) as lease:
        previous = lake.recover()  # the snapshot reads the live files: they must all be in place
        if previous is None:
            return CompactionResult(table=name, batch_id=None, files_before=0, files_after=0, rows_before=0,
                                    rows_after=0, removed_history_files=0)
        chain = lake.active()
        files_before = sum(len(m.files) for m in chain)
        rows_before = sum(m.rows for m in chain)
        batch_id: int | None = None
        files_after = files_before
        rows_after = rows_before
        if files_before > 1 or rows_before != previous.rows:
            state = lake.current_state(CurrentStateRule.of(table))
            schema = previous.schema
            state = state.select(schema.names).cast(schema)
            # Rows keep their load date as their partition when the table has no partition column.
            layout = Layout(partition_by=tuple(table.partition_by) or ("_loaded_at",), granularity=table.partition_granularity,
                            load_date=now.date())
            with lake.pending_batch(lease=lease, previous=previous, schema=schema, config=rep.project.config.lake,
                                    layout=layout, watermark=table.watermark, fallback=table.null_fallback) as batch:
                for part in state.to_batches(max_chunksize=rep.project.config.lake.row_group_rows):
                    batch.write(part)
                manifest = batch.commit(mode="full", created_at=now, rows=state.num_rows,
                                        watermark=watermark_state(previous), replaced=chain,
                                        content_hash=previous.content_hash,
                                        stats={"compaction_of": [m.seq for m in chain]})
            batch_id, files_after, rows_after = manifest.seq, len(manifest.files), state.num_rows
        expired = lake.expired_history(retention, now)
        for path in expired:
            lake.delete(path)
        log.info("table %r: compacted %d files into %d; removed %d history files", name, files_before, files_after, len(expired))
        return CompactionResult(table=name, batch_id=batch_id, files_before=files_before, files_after=files_after,
                                rows_before=rows_before, rows_after=rows_after, removed_history_files=len(expired))
