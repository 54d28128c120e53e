"""Parquet footers of the files this process wrote, held for a follower in the same process.

Iceberg publication registers every data file of a batch by its footer (row counts, column bounds, the
partition). Reading each footer back costs a HEAD and a ranged GET per file on S3 (about 2 ms per file
on a local disk), right after the writer had it in memory; so a store that publishes keeps them here
until the publication takes them. Bounded: when no publication comes (a catalog that is down), the oldest
are dropped, and a follower that finds none reads the file as before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import pyarrow.parquet as pq

__all__ = ["Footers"]


class Footers:
    """A bounded map of store path -> the footer written there; each footer is taken once."""

    def __init__(self, max_files: int = 1024) -> None:
        self.max_files = max_files
        self._held: OrderedDict[str, pq.FileMetaData] = OrderedDict()
        self._lock = threading.Lock()  # tables are written and published from several threads

    def keep(self, path: str, footer: pq.FileMetaData) -> None:
        with self._lock:
            self._held[path] = footer
            while len(self._held) > self.max_files:
                self._held.popitem(last=False)

    def take(self, path: str) -> pq.FileMetaData | None:
        with self._lock:
            return self._held.pop(path, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)
