"""What the lake needs of a store, and the part every store shares through its pyarrow FileSystem.

`LakeStore` is the type every caller annotates with. An implementation (`store.LocalStore`,
`s3.S3Store`) supplies the three operations a FileSystem cannot do alike everywhere (a URI readers
accept, an output stream that appears whole, an exclusive create) and states its capabilities as
class attributes, so no caller asks which kind of store it holds:

    parallel_moves    a move is an independent server-side copy: several at once hide request latency
    uploads_on_close  closing an output stream uploads it (slow): a writer closes streams in the background

Listing, reading, moving and deleting go through `fs`, with errors translated by `lake/errors.py`.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .errors import lake_error, lake_not_found
from .footers import Footers

__all__ = ["LakeStore"]


@dataclass(kw_only=True, eq=False)
class LakeStore(ABC):
    """A lake rooted at `root` on `fs`; `url` is what the user wrote.

    `footers`, when set, keeps the footer of every data file written through this store for a follower
    in the same process (Iceberg publication), so it need not read the files back (lake/footers.py).
    """

    fs: pafs.FileSystem
    root: str
    url: str
    footers: Footers | None = None

    parallel_moves: ClassVar[bool]
    uploads_on_close: ClassVar[bool]

    @abstractmethod
    def uri(self, path: str) -> str:
        """A URL of `path` that pyarrow, DuckDB and Spark accept."""

    @abstractmethod
    def output_stream(self, path: str) -> Any:
        """An open stream for a long-lived writer; the object appears only when the caller closes it.

        A stream with a `discard()` method is dropped by it instead of closed when the writer fails.
        """

    @abstractmethod
    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Create `path` with `data` atomically unless it exists; False when it already did."""

    def _make_parent(self, path: str) -> None:  # noqa: B027 - an optional hook: most object stores need none
        """Make the folder `path` goes in, where the store has folders (an object store has none)."""

    def list_dir(self, path: str) -> list[pafs.FileInfo]:
        try:
            return self.fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        except (OSError, pa.ArrowException) as exc:
            raise lake_error("list", path, exc) from exc

    def list_files(self, path: str) -> list[pafs.FileInfo]:
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=True))
        except (OSError, pa.ArrowException) as exc:
            raise lake_error("list", path, exc) from exc
        return [i for i in infos if i.type == pafs.FileType.File]

    def exists(self, path: str) -> bool:
        try:
            return self.fs.get_file_info(path).type != pafs.FileType.NotFound
        except (OSError, pa.ArrowException) as exc:
            raise lake_error("check", path, exc) from exc

    def existing(self, paths: list[str]) -> set[str]:
        """Which of `paths` exist, asked in one call."""
        try:
            infos = self.fs.get_file_info(paths)
        except (OSError, pa.ArrowException) as exc:
            raise lake_error("check", paths[0] if paths else "", exc) from exc
        return {i.path for i in infos if i.type == pafs.FileType.File}

    def read_bytes(self, path: str) -> bytes:
        try:
            with self.fs.open_input_stream(path) as stream:
                return bytes(stream.read())
        except FileNotFoundError:
            raise
        except (OSError, pa.ArrowException) as exc:
            if lake_not_found(exc):
                raise FileNotFoundError(path) from exc
            raise lake_error("read", path, exc) from exc

    def read_footer(self, path: str) -> pq.FileMetaData:
        """The Parquet footer of the file at `path` (on S3: a HEAD and a ranged GET of its tail)."""
        try:
            with self.fs.open_input_file(path) as handle:
                return pq.read_metadata(handle)
        except (OSError, pa.ArrowException) as exc:
            raise lake_error("read", path, exc) from exc

    @contextlib.contextmanager
    def open_output(self, path: str) -> Iterator[Any]:
        """A stream whose object becomes visible only when closed (S3 upload completes; local file)."""
        stream = self.output_stream(path)
        try:
            yield stream
        except BaseException:
            getattr(stream, "discard", stream.close)()
            raise
        try:
            stream.close()
        except (OSError, pa.ArrowException) as exc:
            raise lake_error("write", path, exc) from exc

    def write_bytes(self, path: str, data: bytes) -> None:
        with self.open_output(path) as out:
            out.write(data)

    def move(self, src: str, dst: str) -> None:
        try:
            self._make_parent(dst)
            self.fs.move(src, dst)
        except (OSError, pa.ArrowException) as exc:
            raise lake_error("move", f"{src} -> {dst}", exc) from exc

    def delete(self, path: str) -> None:
        try:
            self.fs.delete_file(path)
        except FileNotFoundError:
            return
        except (OSError, pa.ArrowException) as exc:
            if lake_not_found(exc):
                return
            raise lake_error("delete", path, exc) from exc

    def delete_dir(self, path: str) -> None:
        try:
            if self.exists(path):
                self.fs.delete_dir(path)
        except (OSError, pa.ArrowException) as exc:
            raise lake_error("delete", path, exc) from exc
