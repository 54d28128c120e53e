"""S3 specifics: a pyarrow S3FileSystem from the standard AWS environment, and conditional create."""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import pyarrow.fs as pafs

from ..errors import LakeError
from .errors import boto_class, boto_code, s3_exists

if TYPE_CHECKING:
    from .store import LakeStore


def s3_filesystem() -> pafs.S3FileSystem:
    """Credentials, region and endpoint from AWS_* variables, so MinIO and moto work unchanged."""
    kwargs: dict[str, object] = {}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        kwargs["region"] = region
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parsed = urlparse(endpoint)
        kwargs["endpoint_override"] = parsed.netloc or parsed.path
        kwargs["scheme"] = parsed.scheme or "https"
        # S3-compatible servers (MinIO, moto) are addressed by path, not by virtual host.
        kwargs["force_virtual_addressing"] = False
    kwargs["retry_strategy"] = pafs.AwsStandardS3RetryStrategy(max_attempts=5)
    return pafs.S3FileSystem(**kwargs)  # type: ignore[arg-type]


_client = None


def _s3_client():  # type: ignore[no-untyped-def]
    global _client
    if _client is None:
        import boto3
        from botocore.config import Config

        _client = boto3.client(
            "s3",
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"}),
        )
    return _client


class SpooledUpload:
    """A write-only file that is uploaded to S3 when closed.

    Parts are spooled to a local temporary file (memory stays flat), then sent with boto3's managed
    transfer: parallel multipart for big files, a plain PUT for small ones. The object appears only
    when the upload completes, so no reader ever sees half of it.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._file = tempfile.NamedTemporaryFile(prefix="replicator-", suffix=".part", delete=False)  # noqa: SIM115
        self.closed = False

    def write(self, data: bytes) -> int:
        return self._file.write(data)

    def tell(self) -> int:
        return self._file.tell()

    def flush(self) -> None:
        self._file.flush()

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._file.close()
        try:
            bucket, _, key = self.path.partition("/")
            _s3_client().upload_file(self._file.name, bucket, key, Config=_transfer_config())
        except Exception as exc:
            raise _translate(exc, f"upload s3://{self.path}") from exc
        finally:
            os.unlink(self._file.name)

    def discard(self) -> None:
        if not self.closed:
            self.closed = True
            self._file.close()
            os.unlink(self._file.name)

    def __enter__(self) -> SpooledUpload:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


def _transfer_config():  # type: ignore[no-untyped-def]
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=64 * 2**20, multipart_chunksize=64 * 2**20, max_concurrency=4)


def _translate(exc: BaseException, action: str) -> LakeError:
    """Classified by the lake's tables (lake/errors.py), through boto3's wrappers; worded by `exc` itself."""
    from botocore.exceptions import ClientError

    cls = boto_class(exc)
    if isinstance(exc, ClientError):
        return cls(f"lake: cannot {action}: {boto_code(exc)[0] or exc}")
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return cls(f"lake: cannot {action}: {text}")


def s3_create_exclusive(store: LakeStore, path: str, data: bytes) -> bool:
    """PUT with If-None-Match: * so exactly one writer creates `path`; False if it existed."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = path.partition("/")
    try:
        _s3_client().put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        return True
    except ClientError as exc:
        if s3_exists(exc):
            return False
        raise boto_class(exc)(f"lake: cannot create s3://{path}: {boto_code(exc)[0] or exc}") from exc
    except BotoCoreError as exc:
        raise boto_class(exc)(f"lake: cannot create s3://{path}: {exc}") from exc
