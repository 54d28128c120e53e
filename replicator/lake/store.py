"""The lake's one I/O boundary: a pyarrow FileSystem plus an atomic create-if-absent."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs

from ..errors import ConfigError
from .errors import lake_error, lake_not_found

__all__ = ["LakeStore", "lake_error", "open_store"]

@dataclass
class LakeStore:
    """A lake rooted at `root` on `fs`; `url` is what the user wrote."""

    fs: pafs.FileSystem
    root: str
    url: str
    s3_bucket: str | None = None

    @property
    def is_local(self) -> bool:
        return self.s3_bucket is None

    def uri(self, path: str) -> str:
        """A URL of `path` that pyarrow, DuckDB and Spark accept."""
        return f"s3://{path}" if not self.is_local else path

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

    def output_stream(self, path: str) -> Any:
        """An open stream for a long-lived writer; the caller closes it (or discards it, on S3)."""
        if not self.is_local:
            from .s3 import SpooledUpload

            return SpooledUpload(path)
        try:
            if self.is_local:
                self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
            return self.fs.open_output_stream(path)
        except (OSError, pa.ArrowException) as exc:
            raise lake_error("write", path, exc) from exc

    def write_bytes(self, path: str, data: bytes) -> None:
        with self.open_output(path) as out:
            out.write(data)

    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Create `path` with `data` atomically unless it exists; False when it already did."""
        if self.is_local:
            return _local_create_exclusive(path, data)
        from .s3 import s3_create_exclusive

        return s3_create_exclusive(self, path, data)

    def move(self, src: str, dst: str) -> None:
        try:
            if self.is_local:
                self.fs.create_dir(dst.rsplit("/", 1)[0], recursive=True)
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


def _local_create_exclusive(path: str, data: bytes) -> bool:
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{uuid.uuid4().hex}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        # link() fails if `path` exists, so the complete file appears atomically or not at all.
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def open_store(url: str) -> LakeStore:
    """A store for `s3://bucket/prefix`, `file:///abs/path` or an absolute local folder."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        from .s3 import s3_filesystem

        if not parsed.netloc:
            raise ConfigError(f"lake.url: {url!r} has no bucket; write s3://bucket/prefix")
        root = "/".join(p for p in (parsed.netloc, parsed.path.strip("/")) if p)
        return LakeStore(fs=s3_filesystem(), root=root, url=url, s3_bucket=parsed.netloc)
    if parsed.scheme == "file":
        return LakeStore(fs=pafs.LocalFileSystem(), root=os.path.abspath(parsed.path), url=url)
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        return LakeStore(fs=pafs.LocalFileSystem(), root=os.path.abspath(url), url=url)
    raise ConfigError(
        f"lake.url: unknown scheme {parsed.scheme!r} in {url!r}; use s3://bucket/prefix, file:///path or a folder path"
    )
