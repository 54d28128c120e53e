"""S3 specifics: a pyarrow S3FileSystem from the standard AWS environment, and conditional create."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import pyarrow.fs as pafs

from ..errors import LakeError, LakeUnavailable

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


def s3_create_exclusive(store: LakeStore, path: str, data: bytes) -> bool:
    """PUT with If-None-Match: * so exactly one writer creates `path`; False if it existed."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = path.partition("/")
    try:
        _s3_client().put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        return True
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
            return False
        cls = LakeUnavailable if (status or 0) >= 500 or code in ("SlowDown", "RequestTimeout") else LakeError
        raise cls(f"lake: cannot create s3://{path}: {code or exc}") from exc
    except BotoCoreError as exc:
        raise LakeUnavailable(f"lake: cannot create s3://{path}: {exc}") from exc
