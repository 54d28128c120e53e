"""The lake boundary's error mapping: S3 and filesystem errors -> LakeUnavailable or LakeError.

One table per client, keyed by what the client attaches to its errors:

    client                         key                                      table
    boto3/botocore ClientError     S3 error code, then HTTP status          S3_CODES, HTTP_STATUS
    botocore BotoCoreError         exception type                           BOTOCORE_TYPES
    pyarrow S3FileSystem           AWS SDK error name, then HTTP status     AWS_SDK_ERRORS, HTTP_STATUS
                                   (parsed, see `arrow_s3_codes`)
    OSError (local disk, sockets)  errno                                    driver_errors.OS_ERRNOS
    Iceberg SQL catalog            SQLSTATE of the DBAPI error, then        driver_errors.SQLSTATES,
      (SQLAlchemy)                 SQLAlchemy's exception type              CATALOG_TYPES

Nothing is decided by a path: a key such as `part-00000500-...` or `_manifests/...00000500.json` says
nothing about the failure.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator

from ..driver_errors import Outcome, libpq_refusal, os_errno_outcome, sqlstate_outcome
from ..errors import LakeError, LakeUnavailable

__all__ = ["AWS_SDK_ERRORS", "BOTOCORE_TYPES", "CATALOG_TYPES", "HTTP_STATUS", "S3_CODES", "arrow_s3_codes",
           "boto_class", "boto_code", "boto_error", "catalog_class", "catalog_error", "lake_class", "lake_error",
           "lake_not_found", "s3_exists"]

LAKE_CLASSES: dict[Outcome, type[LakeError]] = {
    Outcome.UNAVAILABLE: LakeUnavailable, Outcome.REFUSED: LakeError, Outcome.FAILED: LakeError,
}
_U, _F = Outcome.UNAVAILABLE, Outcome.FAILED

# S3 error codes (the `<Code>` of the XML error body, botocore's Error.Code) -> outcome.
S3_CODES: dict[str, Outcome] = {
    "SlowDown": _U, "RequestTimeout": _U, "InternalError": _U, "ServiceUnavailable": _U, "Throttling": _U,
    "ThrottlingException": _U, "RequestThrottled": _U, "RequestLimitExceeded": _U, "BandwidthLimitExceeded": _U,
    "AccessDenied": _F, "InvalidAccessKeyId": _F, "SignatureDoesNotMatch": _F, "NoSuchBucket": _F,
    "ExpiredToken": _F, "InvalidToken": _F, "AllAccessDisabled": _F,
}
# A response without a known code is decided by its HTTP status: a server error or throttling is transient.
HTTP_STATUS: dict[range, Outcome] = {range(429, 430): _U, range(500, 600): _U}

# botocore exception classes, by name along the exception's MRO (most specific first) -> outcome.
BOTOCORE_TYPES: dict[str, Outcome] = {
    "NoCredentialsError": _F, "PartialCredentialsError": _F, "NoRegionError": _F, "ParamValidationError": _F,
    "BotoCoreError": _U,  # connection closed/refused, read/connect timeouts, broken response streams
}

# The AWS C++ SDK's error names (Aws::S3::S3Errors, Aws::Client::CoreErrors) that pyarrow prints -> outcome.
AWS_SDK_ERRORS: dict[str, Outcome] = {
    "SLOW_DOWN": _U, "THROTTLING": _U, "INTERNAL_FAILURE": _U, "SERVICE_UNAVAILABLE": _U, "REQUEST_TIMEOUT": _U,
    "NETWORK_CONNECTION": _U,
    "ACCESS_DENIED": _F, "INVALID_ACCESS_KEY_ID": _F, "SIGNATURE_DOES_NOT_MATCH": _F, "NO_SUCH_BUCKET": _F,
    "MISSING_AUTHENTICATION_TOKEN": _F, "INVALID_CLIENT_TOKEN_ID": _F, "EXPIRED_TOKEN": _F,
}
_AWS_SDK_NOT_FOUND = frozenset({"NO_SUCH_KEY", "RESOURCE_NOT_FOUND"})
# S3's answers to a conditional PUT (If-None-Match: *) whose object exists or is being created.
_S3_EXISTS_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
_S3_EXISTS_STATUS = frozenset({409, 412})


def _status_outcome(status: int | None) -> Outcome | None:
    return next((o for r, o in HTTP_STATUS.items() if status in r), None) if status else None


# -- pyarrow ------------------------------------------------------------------------------------------------
_ARROW_S3 = re.compile(r"\bAWS Error (?P<name>[A-Z][A-Z_]*)(?: \(HTTP status (?P<status>\d{3})\))? during ")


def arrow_s3_codes(exc: BaseException) -> tuple[str | None, int | None]:
    """(AWS SDK error name, HTTP status) of a pyarrow S3 error.

    pyarrow turns an AWS SDK error into a plain OSError (no errno, no attributes) whose only content is
    `AWS Error ACCESS_DENIED during HeadObject operation: ...`, or for a response without a body (any
    HEAD) `AWS Error UNKNOWN (HTTP status 503) during ...`. So this one function reads the text, and only
    inside that frame: the name as a whole token, the status only where the frame puts it, never a
    digit elsewhere (the keys and bucket named earlier in the message).
    """
    found = _ARROW_S3.search(str(exc))
    if found is None:
        return None, None
    return found["name"], int(found["status"]) if found["status"] else None


def lake_class(exc: BaseException) -> type[LakeError]:
    """The class of a pyarrow (or local filesystem) error: its errno, else its AWS SDK name or status."""
    outcome = os_errno_outcome(exc.errno) if isinstance(exc, OSError) and exc.errno is not None else None
    if outcome is None:
        name, status = arrow_s3_codes(exc)
        outcome = AWS_SDK_ERRORS.get(name or "") or _status_outcome(status)
    return LAKE_CLASSES[outcome or _F]


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def lake_error(action: str, path: str, exc: BaseException) -> LakeError:
    """Translate a filesystem or S3 error into ours; transient ones are retriable."""
    return lake_class(exc)(f"lake: cannot {action} {path}: {_first_line(exc)}")


def lake_not_found(exc: BaseException) -> bool:
    """True when a pyarrow error says the object or file is not there."""
    if isinstance(exc, FileNotFoundError) or (isinstance(exc, OSError) and exc.errno == errno.ENOENT):
        return True
    name, status = arrow_s3_codes(exc)
    return name in _AWS_SDK_NOT_FOUND or status == 404


# -- boto3 --------------------------------------------------------------------------------------------------
def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it wraps: boto3's S3UploadFailedError hides the ClientError in its __context__."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _botocore(exc: BaseException) -> BaseException | None:
    return next((e for e in _chain(exc) if type(e).__module__.startswith("botocore")), None)


def boto_code(exc: BaseException) -> tuple[str, int | None]:
    """(S3 error code, HTTP status) of a botocore ClientError, found through any wrapper; ("", None) else."""
    found = _botocore(exc)
    response = getattr(found, "response", None)
    if not isinstance(response, dict):
        return "", None
    return response.get("Error", {}).get("Code", "") or "", response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def boto_class(exc: BaseException) -> type[LakeError]:
    """The class of an error from a boto3 call: code, else status, else botocore type, else errno.

    Anything else that escapes a boto3 call (a wrapper without a botocore cause, say) stays retriable,
    as an upload's failure always was.
    """
    code, status = boto_code(exc)
    outcome = S3_CODES.get(code) or _status_outcome(status)
    if outcome is None and (code or status):
        outcome = _F  # S3 answered, with an error no table calls transient
    found = _botocore(exc)
    if outcome is None and found is not None:
        outcome = next((BOTOCORE_TYPES[c.__name__] for c in type(found).__mro__ if c.__name__ in BOTOCORE_TYPES), None)
    if outcome is None:
        outcome = next((os_errno_outcome(e.errno) for e in _chain(exc) if isinstance(e, OSError) and e.errno), None)
    return LAKE_CLASSES[outcome or _U]


def boto_error(action: str, exc: BaseException) -> LakeError:
    """Translate an error from a boto3 call into ours, classed by `boto_class`.

    S3's own answer is worded by its error code alone (botocore's text repeats the operation and key);
    anything else, a wrapper included, by its first line.
    """
    response = getattr(exc, "response", None)
    code = boto_code(exc)[0] if isinstance(response, dict) else ""
    return boto_class(exc)(f"lake: cannot {action}: {code or _first_line(exc)}")


def s3_exists(exc: BaseException) -> bool:
    """True when a conditional create failed because the object exists (or another create of it is under way)."""
    code, status = boto_code(exc)
    return code in _S3_EXISTS_CODES or status in _S3_EXISTS_STATUS


# -- Iceberg catalog ----------------------------------------------------------------------------------------
# SQLAlchemy's exception classes (PEP 249's), by name along the MRO -> outcome, for a DBAPI error without a
# SQLSTATE (sqlite3's, or libpq's refused connection). OperationalError is the database that cannot be
# reached or is busy (connection refused, `database is locked`); anything else is a permanent failure.
CATALOG_TYPES: dict[str, Outcome] = {
    "OperationalError": _U, "InterfaceError": _U, "TimeoutError": _U, "DisconnectionError": _U,
}


def catalog_class(exc: BaseException) -> type[LakeError]:
    """The class of an error from the Iceberg catalog (pyiceberg's SQL, REST or Glue catalog, its metadata files).

    The SQLSTATE of the DBAPI error SQLAlchemy wraps (a PostgreSQL catalog) first, or libpq's refusal
    of the connection, then SQLAlchemy's type; a file-level error of the catalog's metadata (pyarrow's local or S3 filesystem) as the lake's.
    Anything else, pyiceberg's own refusals and a commit conflict included, is permanent: the next
    publication starts again from the table's own last batch.
    """
    orig = getattr(exc, "orig", None)
    outcome = sqlstate_outcome(getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None))
    if outcome is None and type(orig).__module__.startswith("psycopg2") and libpq_refusal(str(orig)):
        outcome = Outcome.REFUSED  # a wrong role, password or database: libpq keeps its SQLSTATE
    if outcome is None and type(exc).__module__.startswith("sqlalchemy"):
        outcome = next((CATALOG_TYPES[c.__name__] for c in type(exc).__mro__ if c.__name__ in CATALOG_TYPES), None)
    if outcome is None and type(exc).__module__.startswith("botocore"):
        return boto_class(exc)  # AWS Glue's API, classed as S3's
    if outcome is None and isinstance(exc, OSError):
        return lake_class(exc)
    return LAKE_CLASSES[outcome or _F]


def catalog_error(action: str, exc: BaseException) -> LakeError:
    """Translate an Iceberg catalog error into ours, classed by `catalog_class`."""
    return catalog_class(exc)(f"iceberg: cannot {action}: {_first_line(exc)}")
